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

# start_server [PREFIX...]: a fresh durable Sluice on $work/data with $SERVER_ARGS, run
# under PREFIX when given (valgrind, say); sets $server and $endpoint once it listens.
start_server() {
    # shellcheck disable=SC2086
    SLUICE_LOG=warn "$@" "$sluice" serve --listen 127.0.0.1:0 --data-dir "$work/data" ${SERVER_ARGS:-} \
        > "$work/out" 2> "$work/server.log" &
    server=$!
    for _ in $(seq 400); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.05; done
    endpoint="$(sed -n 's/^sluice listening on //p' "$work/out" | head -1)"
}
