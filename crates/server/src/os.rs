//! What the server asks of the C library: how many freed blocks each thread keeps, where
//! the allocator takes large blocks from, and when it gives free memory back.

/// glibc's per-thread cache (tcache) keeps 7 freed blocks of each size by default. A
/// group commit answers its requests together, so an HTTP worker frees the blocks of a
/// few dozen requests in one burst and allocates them again for the next: past the
/// seventh, each free and each allocation takes the arena's slow path under its lock.
/// Keeping 128 took SendMessage from 59,957 to 56,405 user-space instructions a message
/// (`bench/callgrind.sh 20000 sqs-send --connections 16`; 58,037 at 32, 55,977 at 256)
/// and the HTTP workers from 15.3 to 14.5 µs a message (`bench/ab.sh`, 64 connections).
const TCACHE_COUNT: u32 = 128;

/// `GLIBC_TUNABLES` with the cache's size added, or `None` when `set` (the variable's
/// value, if any) names it already: the operator's setting wins, and the exec is not
/// repeated.
#[cfg(any(test, all(target_os = "linux", target_env = "gnu")))]
fn tunables_with_larger_cache(set: Option<&str>) -> Option<String> {
    const TUNABLE: &str = "glibc.malloc.tcache_count";
    match set {
        Some(set) if set.contains(TUNABLE) => None,
        Some(set) if !set.is_empty() => Some(format!("{set}:{TUNABLE}={TCACHE_COUNT}")),
        _ => Some(format!("{TUNABLE}={TCACHE_COUNT}")),
    }
}

/// Runs this program again with `glibc.malloc.tcache_count` added to `GLIBC_TUNABLES`,
/// unless that tunable is already set there (by the operator, or by this call before the
/// exec). glibc reads tunables only when a process starts and offers no call to change
/// the cache's size later, so the setting takes an exec; the process keeps its id. Must
/// be called before any thread starts. When the exec fails (the binary gone), the server
/// goes on with glibc's default.
pub fn exec_with_larger_malloc_cache() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let set = match std::env::var("GLIBC_TUNABLES") {
            Ok(set) => Some(set),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => return,
        };
        let Some(tunables) = tunables_with_larger_cache(set.as_deref()) else { return };
        let Ok(exe) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(exe);
        if let Some(name) = args.next() {
            command.arg0(name);
        }
        let error = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
        eprintln!("sluice: could not run again with a larger malloc cache ({error}); going on without");
    }
}

/// Fixes glibc's mmap and trim thresholds. Left alone, glibc raises the mmap threshold
/// (up to 32 MiB) each time a large block is freed, after which blocks of that size come
/// from an arena and stay with the process once freed; fixed, it stays where it is set.
///
/// The mmap threshold is 32 MiB, so that a Kinesis GetRecords reply (up to 10 MB of
/// records, ~15 MB once in base64 and JSON) comes from the worker's arena. Mapped afresh
/// for each call, its pages were faulted in and zeroed each time: a fifth of the HTTP
/// workers' time in `kinesis-get` (`perf`: `exc_page_fault`, `clear_page_erms` under the
/// base64 encoder). The trim threshold is 16 MiB: at glibc's 128 KiB default, an arena
/// whose free top passed it gave those pages back on the next free, and the next reply
/// faulted them in again. (A top past the threshold goes back whole, so 16 MiB keeps a
/// reply's ~15 MB and no more.) kinesis-get 567k -> 664-755k records/s, workers 2.0 ->
/// 1.4-1.5 µs a record (2026-11-24; bench/README "A new machine").
///
/// What it costs: an arena keeps up to 16 MiB free at its top, and the message index
/// checkpoint's tables of several MiB come from its arena. With 1,000,000 messages
/// stored, 241 MiB instead of 209 (the target is 300); idle and 10,000 long polls
/// unchanged (14 MiB, 186 against 184 MiB). (With the mmap threshold moving, that
/// server held 337 MiB; fixed at 128 KiB every block of a few hundred KiB on the request
/// path was mapped and unmapped.)
pub fn fix_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD: libc::c_int = 16 << 20;
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt takes two plain integers, and neither threshold changes a block
        // already handed out, only where future blocks come from and when free memory goes
        // back to the kernel. glibc marks mallopt unsafe beside other threads' allocations:
        // it is called once, before any other thread starts (in the server's `main`, and
        // in its test, which runs without a harness).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tunables_with_larger_cache;

    #[test]
    fn the_cache_tunable_is_added_after_the_operators_and_never_over_theirs() {
        let ours = "glibc.malloc.tcache_count=128";
        assert_eq!(tunables_with_larger_cache(None).as_deref(), Some(ours));
        assert_eq!(tunables_with_larger_cache(Some("")).as_deref(), Some(ours));
        assert_eq!(
            tunables_with_larger_cache(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=128")
        );
        assert_eq!(tunables_with_larger_cache(Some("glibc.malloc.tcache_count=20")), None);
        assert_eq!(tunables_with_larger_cache(Some(ours)), None);
    }
}
