//! What the server asks of the C library and the kernel: how many freed blocks each
//! thread keeps, where the allocator takes large blocks from, and a background thread's
//! CPU priority.

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

/// Fixes glibc's mmap threshold at 4 MiB. Left alone, glibc raises the
/// threshold (up to 32 MiB) each time a large block is freed, after which blocks of that
/// size come from an arena and stay with the process once freed. The message index
/// checkpoint allocates and frees tables of several MiB on a thread of its own: with the
/// threshold moving, a server filled with a million messages held 337 MiB; with it fixed
/// at 128 KiB, 297 MiB (the build before checkpoints: 284–291 MiB), but then every block
/// of a few hundred KiB on the request path is mapped and unmapped; at 4 MiB, 283 MiB.
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        const MMAP_THRESHOLD: std::os::raw::c_int = 4 << 20;
        unsafe extern "C" {
            fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
        }
        // SAFETY: mallopt only sets a parameter of the allocator under its own lock; it
        // takes two plain integers, and M_MMAP_THRESHOLD changes where future blocks come
        // from, never a block already handed out. Called once, before any other thread.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
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
