#!/usr/bin/env bash
# Two builds side by side on one scenario: cpu-split.sh for each, ROUNDS times, in the
# order A B B A (then again), since this machine's speed drifts within minutes and a
# fixed order credits the drift to whichever build runs second. Prints each run, then
# the mean and range of the throughput and of each thread's CPU per unit.
#   bench/ab.sh BUILD_A BUILD_B ROUNDS SCENARIO [sluice bench options...]
#   e.g. bench/ab.sh /tmp/sluice-before target/release/sluice 2 sqs-send --connections 64
set -euo pipefail
cd "$(dirname "$0")/.."
a="$1" b="$2" rounds="$3"; shift 3
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for _ in $(seq "$rounds"); do
    for build in A B B A; do
        bin="$a"; [ "$build" = B ] && bin="$b"
        echo "== $build"
        BIN="$bin" bench/cpu-split.sh "$@"
    done
done | tee "$log"
python3 - "$log" <<'PY'
import collections, re, statistics, sys
runs = collections.defaultdict(lambda: collections.defaultdict(list))
build = None
for line in open(sys.argv[1]):
    if line.startswith("== "):
        build = line.split()[1]
    elif m := re.match(r"\S+: (\d+) \S+/s;", line):
        runs[build]["throughput"].append(float(m.group(1)))
    elif m := re.match(r"\s+(\S+)\s+([\d.]+)\s+\(", line):
        runs[build][f"{m.group(1)} µs"].append(float(m.group(2)))
print("\nmean (min–max) over", len(runs["A"]["throughput"]), "runs each")
for key in runs["A"]:
    digits = 0 if key == "throughput" else 1
    cells = [f"{statistics.mean(runs[x][key]):.{digits}f} ({min(runs[x][key]):g}–{max(runs[x][key]):g})" for x in "AB" if runs[x][key]]
    print(f"  {key:<22} A {cells[0]:<28} B {cells[1] if len(cells) > 1 else '-'}")
PY
