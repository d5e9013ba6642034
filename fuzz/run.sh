#!/usr/bin/env bash
# Runs every fuzz target for a fixed budget and prints what each did.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 seconds, all targets)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs that
# grow coverage go to fuzz/corpus/<target>/ (not committed); crashes go to
# fuzz/artifacts/<target>/ and the run stops with status 1. Seeds are in fuzz/seeds/.
set -euo pipefail
cd "$(dirname "$0")"
budget="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O
status=0
printf '%-14s %12s %10s %14s %8s\n' target runs exec/s bytes-fuzzed corpus
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log="$(mktemp)"
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$budget" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 >"$log" 2>&1; then
        status=1
        echo "$t: CRASH, see fuzz/artifacts/$t/"; tail -40 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    speed=$(( ${runs:-0} / budget ))
    # The targets print a running count every 65,536 inputs: a lower bound on bytes fed.
    fuzzed=$(grep -o 'sluice-fuzz: [0-9]* inputs, [0-9]* bytes' "$log" | tail -1 | awk '{print $4}')
    files=$(find "corpus/$t" -type f | wc -l)
    printf '%-14s %12s %10s %14s %8s\n' "$t" "${runs:-?}" "${speed:-?}" "${fuzzed:-0}" "$files"
    rm -f "$log"
done
exit $status
