# Shared by the bench scripts, sourced from the repository's root: the build to measure
# (this tree's release build, or BIN=path) in $sluice, a scratch directory in $work, and
# one server at a time, stopped and the directory removed on exit.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; fi
sluice="${BIN:-$PWD/target/release/sluice}"
work="$(mktemp -d)"
server=""

stop_server() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; fi
}
trap 'stop_server; rm -rf "$work"' EXIT

# Seconds the machine is given after a previous run's data directory is removed, before
# the next server starts: sqs-send paced at half the peak right after removing the last
# run's ~700 MB read p99 4.2, 8.4, 13.8 and 32.7 ms, and 4.1, 5.0, 5.3 and 5.6 ms with
# `sync` and 5 s between (alternating pairs; bench/README "The run after a removal").
# The removal's aftermath is this VM's (its discards on a `discard`-mounted disk, its
# freed page cache handed back to the host), not the next server's.
settle_seconds=5

# start_server [PREFIX...]: a fresh durable Sluice on $work/data with $SERVER_ARGS, run
# under PREFIX when given (valgrind, say); sets $server and $endpoint once it listens.
# A server already running is stopped and its data directory removed first.
start_server() {
    stop_server
    if [ -e "$work/data" ]; then
        rm -rf "$work/data"
        sync
        sleep "$settle_seconds"
    fi
    # shellcheck disable=SC2086
    SLUICE_LOG=warn "$@" "$sluice" serve --listen 127.0.0.1:0 --data-dir "$work/data" ${SERVER_ARGS:-} \
        > "$work/out" 2> "$work/server.log" &
    server=$!
    for _ in $(seq 400); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.05; done
    endpoint="$(sed -n 's/^sluice listening on //p' "$work/out" | head -1)"
}
