//! The server runs itself again under a larger glibc malloc cache per thread, unless the
//! operator set that tunable (crates/server/src/os.rs; how it joins other tunables is a
//! unit test there).
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod common;

use common::*;

/// The `GLIBC_TUNABLES` of the running server process as /proc shows it. glibc cuts the
/// shown value at its first tunable when it parses a list, so only lists of one are read.
fn tunables_of(server: &Server) -> String {
    let environ = std::fs::read(format!("/proc/{}/environ", server.child.id())).expect("read environ");
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| entry.strip_prefix(b"GLIBC_TUNABLES="))
        .map(|value| String::from_utf8(value.to_vec()).expect("UTF-8"))
        .next()
        .unwrap_or_default()
}

fn serve_with_tunables(set: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn_with_env(dir.path(), &[], &[("GLIBC_TUNABLES", set)]);
    (dir, server)
}

#[test]
fn the_server_runs_under_its_malloc_cache_unless_the_operator_sized_it() {
    // None set: the server's own, in the process the test started (an exec keeps the id).
    let (_dir, server) = serve_with_tunables("");
    assert_eq!(tunables_of(&server), "glibc.malloc.tcache_count=128");
    let (status, body, _) = json_call(&agent(), &server.endpoint, "ListQueues", "{}");
    assert_eq!(status, 200, "{body}");
    server.kill();

    let (_dir, server) = serve_with_tunables("glibc.malloc.tcache_count=20");
    assert_eq!(tunables_of(&server), "glibc.malloc.tcache_count=20");
    server.kill();
}
