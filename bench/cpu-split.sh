#!/usr/bin/env bash
# CPU per message (or record, or publish) of each server thread and of the generator, for
# one scenario against a fresh durable Sluice: where a scenario's time goes, in µs per unit.
# CPU time is steadier than throughput on this machine, whose runs move by 10-25%.
#   bench/cpu-split.sh SCENARIO [sluice bench options...]     e.g. bench/cpu-split.sh sqs-send --connections 16
# Builds the release binary (BIN=path measures another build instead); extra server flags
# go in SERVER_ARGS (e.g. SERVER_ARGS=--no-fsync).
# BESIDE runs a second scenario beside the measured one, e.g. long polls on the queue it
# sends to: BESIDE="sqs-idle-pollers --connections 100 --queue herd" bench/cpu-split.sh sqs-send --queue herd
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="$1"; shift
# shellcheck source=bench/lib.sh
. bench/lib.sh
start_server
beside=""
if [ -n "${BESIDE:-}" ]; then
    # shellcheck disable=SC2086
    "$sluice" bench $BESIDE --endpoint "$endpoint" --duration 14 > "$work/beside.txt" &
    beside=$!
    sleep 1
fi
"$sluice" bench "$scenario" --endpoint "$endpoint" --duration 10 --json "$@" > "$work/result.json" &
generator=$!
# Thread name and user+system clock ticks of every server thread, and of the generator.
snapshot() {
    for t in "/proc/$server/task/"*; do echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done
    echo "generator $(awk '{print $14 + $15}' "/proc/$generator/stat")"
}
sleep 2; snapshot > "$work/before"; sleep 6; snapshot > "$work/after"
wait "$generator"
if [ -n "$beside" ]; then wait "$beside"; fi
python3 - "$work/result.json" "$work/before" "$work/after" "$(getconf CLK_TCK)" <<'PY'
import collections, json, sys
result = json.load(open(sys.argv[1])); hz = int(sys.argv[4])
def ticks(path):
    total = collections.Counter()
    for line in open(path):
        name, t = line.rsplit(" ", 1)
        total[name] += int(t)
    return total
before, after = ticks(sys.argv[2]), ticks(sys.argv[3])
rate = result["units_per_s"]
print(f"{result['scenario']}: {rate:.0f} {result['unit']}/s; CPU in µs per unit ({result['unit']}):")
for name in sorted(after):
    used = (after[name] - before[name]) / hz / 6  # cores over the 6-second window
    if used > 0:
        print(f"  {name:<18} {used * 1e6 / rate:7.1f}   ({used:.2f} cores)")
PY
