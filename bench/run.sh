#!/usr/bin/env bash
# Reproduces every figure in bench/README.md on this machine: builds the release binary,
# measures the nginx ceiling, then runs each scenario against a fresh durable Sluice
# (fsync on) and prints one Markdown table row per measurement.
#   bench/run.sh [SECONDS_PER_RUN]      (default 10)
# Needs nginx (Debian: apt-get install nginx). Results also go to bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
# shellcheck source=bench/lib.sh
. bench/lib.sh
results="$PWD/bench/results.jsonl"
: > "$results"
trap 'pkill -F "$work/nginx/nginx.pid" 2>/dev/null || true; stop_server; rm -rf "$work"' EXIT

row() { # scenario label json
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
scenario, label, text = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.loads(text)
lat = r["latency_us"]
e2e = r.get("end_to_end_latency_us")
errors = sum(r["errors"].values())
extra = f", send→receive p50 {e2e['p50']/1000:.2f} ms p99 {e2e['p99']/1000:.2f} ms" if e2e else ""
print(f"| {scenario} | {label} | {r['requests_per_s']:.0f} | {r['units_per_s']:.0f} {r['unit']} | "
      f"{lat['p50']/1000:.2f} / {lat['p99']/1000:.2f} / {lat['max']/1000:.1f}{extra} | {errors} |")
EOF
}

measure() { # scenario label endpoint args...
    local scenario="$1" label="$2" endpoint="$3"; shift 3
    local out
    out="$("$sluice" bench "$scenario" --endpoint "$endpoint" --json "$@")"
    echo "$out" >> "$results"
    row "$scenario" "$label" "$out"
}

echo "| scenario | setting | requests/s | throughput | latency p50 / p99 / max (ms) | errors |"
echo "|---|---|---|---|---|---|"

mkdir -p "$work/nginx/logs"
ceiling() { # label
    nginx -c "$PWD/bench/nginx.conf" -p "$work/nginx"
    # One generator thread: nginx runs one worker, so each has a core (two generator
    # threads measured 10-15% lower here, side by side). nginx's best is at 32-64
    # connections (256 measured 125-139k against 137-151k at 64), so both are run and
    # the higher is the ceiling.
    measure http-post "$1, 32 connections, 1 generator thread" http://127.0.0.1:8081 --connections 32 --threads 1 --duration "$seconds"
    measure http-post "$1, 64 connections, 1 generator thread" http://127.0.0.1:8081 --connections 64 --threads 1 --duration "$seconds"
    pkill -F "$work/nginx/nginx.pid" || true
    sleep 0.2
}
best_of_last() { # n: the highest requests/s among the last n results
    tail -"$1" "$results" | python3 -c 'import json,sys; print(max(int(json.loads(l)["requests_per_s"]) for l in sys.stdin))'
}
connections_of_best() { # n: the connections of the row best_of_last n names
    tail -"$1" "$results" | python3 -c 'import json,sys; print(max((json.loads(l) for l in sys.stdin), key=lambda r: r["requests_per_s"])["connections"])'
}
ceiling "nginx ceiling"
ceiling_before=$(best_of_last 2)
# sqs-send's peak between two ceilings: this machine's speed drifts by 10-25% within
# minutes, so the ratio the target asks for is read from adjacent runs (the series
# below runs later, on one server that keeps every message sent). Each setting gets a
# fresh server; group commit gathers more with more connections, so the peak is the
# higher of 64 and 256.
start_server
measure sqs-send "64 connections, fresh server, between two ceilings" "$endpoint" --connections 64 --duration "$seconds"
start_server
measure sqs-send "256 connections, fresh server, between two ceilings" "$endpoint" --connections 256 --duration "$seconds"
peak=$(best_of_last 2)
peak_connections=$(connections_of_best 2)
stop_server
ceiling "nginx ceiling again"
ceiling_after=$(best_of_last 2)
permille=$(( peak * 4000 / (ceiling_before + ceiling_after) ))
echo "sqs-send peak $peak against nginx ceilings $ceiling_before and $ceiling_after:" \
    "$(( permille / 10 )).$(( permille % 10 ))% of half their mean"

# Latency at half the peak just measured, paced (no coordinated omission) on a fresh
# server, for three times as long as the other rows: its p99 is set by a few stalls of
# 20-100 ms (the machine's kdamond taking a core, see bench/README), and a 10-second
# run holds two or three of them, so one run's p99 ranged 2.8-12.7 ms with the same
# binary. The target's row paces over the connections the peak was measured with (the
# same clients at half the rate); over 64 as well, as before 2026-11-25: with fewer
# connections a stall holds up more of the schedule (20-second runs at 44,500/s, three
# each alternating: p99 3.6-5.0 ms over 64, 2.6-4.5 over 128, 2.6-3.3 over 256).
start_server
measure sqs-send "at half the peak rate ($((peak / 2))/s), $peak_connections connections as the peak, $((seconds * 3)) s" "$endpoint" --connections "$peak_connections" --duration $((seconds * 3)) --rate $((peak / 2))
start_server
measure sqs-send "at half the peak rate ($((peak / 2))/s), 64 connections, $((seconds * 3)) s" "$endpoint" --connections 64 --duration $((seconds * 3)) --rate $((peak / 2))
start_server
for c in 1 4 16 64 256; do
    measure sqs-send "$c connections" "$endpoint" --connections "$c" --duration "$seconds"
done
start_server
measure sqs-send-batch "16 connections, batches of 10" "$endpoint" --connections 16 --duration "$seconds"
start_server
measure sqs-send-batch "64 connections, batches of 10" "$endpoint" --connections 64 --duration "$seconds"
start_server
measure sqs-cycle "8 senders, 8 receivers" "$endpoint" --connections 16 --duration "$seconds"
start_server
measure sqs-cycle "32 senders, 32 receivers" "$endpoint" --connections 64 --duration "$seconds"
# As for sqs-send, a group commit gathers more with more senders waiting: the writer's
# CPU a message fell from 8-10 us at 64 connections to 6 us at 256 (one fdatasync's
# VM exits and block-layer work shared by more messages).
start_server
measure sqs-cycle "128 senders, 128 receivers" "$endpoint" --connections 256 --duration "$seconds"
# Producers sending SendMessageBatch of 10: unpaced (the backlog grows, the consumers set
# the rate), then paced at 6,400 requests/s over all connections (about 32,000 messages/s
# when the consumers keep up: the send→receive latency then stays in milliseconds).
start_server
measure sqs-cycle "32 batch senders, 32 receivers" "$endpoint" --connections 64 --duration "$seconds" --batch
start_server
measure sqs-cycle "32 batch senders, 32 receivers, 6,400 requests/s" "$endpoint" --connections 64 --duration "$seconds" --batch --rate 6400
start_server
measure sqs-fifo "16 connections, 16 groups" "$endpoint" --connections 16 --duration "$seconds"
start_server
measure sns-fanout "16 connections, 10 queues" "$endpoint" --connections 16 --duration "$seconds" --queues 10
start_server
measure sns-fanout "64 connections, 10 queues" "$endpoint" --connections 64 --duration "$seconds" --queues 10
start_server
measure kinesis-put "8 connections, 2 shards, PutRecords of 500" "$endpoint" --connections 8 --duration "$seconds"
start_server
measure kinesis-get "2 connections, 2 shards, 200,000 records" "$endpoint" --connections 2 --duration "$seconds" --prefill 200000
start_server
measure firehose-put "8 connections, PutRecordBatch of 500" "$endpoint" --connections 8 --duration "$seconds"

# Memory and start-up.
start_server
rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
echo "idle RSS, empty data directory: $((rss / 1024)) MiB"
stop_server
startup() { # label data-dir
    python3 - "$sluice" "$2" "$1" <<'EOF'
import subprocess, sys, time, urllib.request
sluice, data, label = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.monotonic()
p = subprocess.Popen([sluice, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
url = p.stdout.readline().strip().removeprefix("sluice listening on ")
urllib.request.urlopen(url + "/health").read()
elapsed = (time.monotonic() - t0) * 1000
# The start's high-water mark: loading the queues holds the most memory a start does.
peak = next(int(line.split()[1]) for line in open(f"/proc/{p.pid}/status") if line.startswith("VmHWM"))
print(f"exec to first served request, {label}: {elapsed:.0f} ms (high-water mark {peak // 1024} MiB)")
p.terminate(); p.wait()
EOF
}
startup "empty data directory" "$work/startup"

# A backlog of 1,000,000 messages: receive latency against a small queue's, memory, and
# start-up (three starts; the database is in the page cache after the first).
start_server
measure sqs-receive "backlog of 1,000 messages" "$endpoint" --connections 16 --duration "$seconds" --prefill 1000
start_server
measure sqs-receive "backlog of 1,000,000 messages" "$endpoint" --connections 16 --duration "$seconds" --prefill 1000000
rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
echo "RSS holding 1,000,000 messages: $((rss / 1024)) MiB (high-water mark $((peak / 1024)) MiB)"
stop_server
for _ in 1 2 3; do startup "1,000,000 stored messages" "$work/data"; done

# 10,000 idle long polls: memory, and CPU while they wait.
SERVER_ARGS="--max-concurrent-requests 20000" start_server
# Each connection starts its 20-second poll within the first 5 seconds (with a
# 1-second run, a connection not yet set up when the run ended never polled: 5,600-7,300
# of the 10,000 were open when sampled), so all are waiting from 8 to 13 seconds.
"$sluice" bench sqs-idle-pollers --endpoint "$endpoint" --connections 10000 --duration 5 --json > "$work/pollers.json" &
pollers=$!
sleep 8
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
before=$(ticks); sleep 5; after=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
open=$(ss -Htn state established "( sport = :${endpoint##*:} )" | wc -l)
hz=$(getconf CLK_TCK)
echo "10,000 idle long polls: RSS $((rss / 1024)) MiB with $open connections open, CPU $(( (after - before) * 1000 / hz / 5 )) ms per second while idle"
wait "$pollers"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  polls completed: %d, errors: %s" % (r["units"], r["errors"]))' "$work/pollers.json"
