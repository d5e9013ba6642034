#!/usr/bin/env bash
# User-space instructions per message (or publish, or record) of the server under
# callgrind, for one scenario against a fresh durable Sluice. Unlike CPU time and
# throughput, which move by 10-25% with this machine's phase, the count repeats within
# about 0.3%, so a change of a few percent shows. Kernel time is not counted (the
# syscalls per request are another matter: see cpu-split.sh and strace).
#   bench/callgrind.sh COUNT SCENARIO [sluice bench options...]
#   e.g. bench/callgrind.sh 20000 sqs-send-batch --connections 16
# COUNT requests are measured after 2,000 to warm up. Needs valgrind (Debian: apt-get
# install valgrind). BIN=path measures another build instead of building this one; TOP=N
# lists the N costliest functions; the profile is left in callgrind.out for
# callgrind_annotate (--tree=caller shows who calls what).
set -euo pipefail
cd "$(dirname "$0")/.."
count="$1"; shift
# shellcheck source=bench/lib.sh
. bench/lib.sh
# The server runs itself again with a larger malloc cache (crates/server/src/os.rs), which
# would leave valgrind behind; given the tunable already, it does not.
start_server env GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.tcache_count=128}" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out"
"$sluice" bench "$@" --endpoint "$endpoint" --count 2000 --json > /dev/null
callgrind_control --instr=on "$server" > /dev/null 2>&1
"$sluice" bench "$@" --endpoint "$endpoint" --count "$count" --json > "$work/result.json"
callgrind_control --instr=off "$server" > /dev/null 2>&1
stop_server
cp "$work/callgrind.out" callgrind.out
python3 - "$work/result.json" callgrind.out "${TOP:-0}" <<'PY'
import json, re, subprocess, sys
result = json.load(open(sys.argv[1]))
report = subprocess.run(["callgrind_annotate", sys.argv[2]], capture_output=True, text=True).stdout
total = int(re.search(r"([\d,]+) \S*\s*PROGRAM TOTALS", report).group(1).replace(",", ""))
print(f"{result['scenario']}: {result['units']} {result['unit']}, "
      f"{total / result['units']:,.0f} instructions per {result['unit'].rstrip('s')}")
top = int(sys.argv[3])
if top:
    lines = report.split("file:function", 1)[1].splitlines()[2:2 + top]
    print("\n".join(line[:150] for line in lines))
PY
