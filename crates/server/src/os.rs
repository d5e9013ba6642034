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

/// `ioprio_set`'s terms (linux/ioprio.h): `who` names a thread, and the class sits above
/// the level's 13 bits.
#[cfg(target_os = "linux")]
const IOPRIO_WHO_PROCESS: libc::c_long = 1;
#[cfg(target_os = "linux")]
const IOPRIO_CLASS_IDLE: libc::c_long = 3;
#[cfg(target_os = "linux")]
const IOPRIO_CLASS_SHIFT: libc::c_long = 13;

/// Makes the calling thread background work that takes only the CPU and the disk that
/// requests leave: the idle scheduling class (`SCHED_IDLE`) and the idle I/O class. At
/// nice 19 the message index checkpoint still took a whole core for 10-20 ms at a time
/// while sends waited (perf during sqs-send paced at 40,000 a second); in the idle class
/// it runs only where nothing else is runnable. Both settings belong to the thread (`0`
/// is the calling thread), not to the whole process. Falls back to nice 19 where the
/// idle class is refused.
pub fn lower_this_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid, initialized sched_param that outlives the call, which
        // only reads it; pid 0 is the calling thread, whose scheduling class alone changes.
        let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
        if !idle {
            // SAFETY: setpriority takes three plain integers and changes only the
            // scheduling weight of the calling thread; no memory is shared with the call.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            }
        }
        // SAFETY: ioprio_set takes three plain integers and changes only the I/O class of
        // the calling thread (who 0); no memory is shared with the call. A kernel without
        // it answers ENOSYS, which leaves the thread as it was.
        unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0 as libc::c_long,
                IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tunables_with_larger_cache;
    #[cfg(target_os = "linux")]
    use super::{IOPRIO_CLASS_IDLE, IOPRIO_CLASS_SHIFT, IOPRIO_WHO_PROCESS};

    /// The thread that asks is put in both idle classes; the thread beside it is not.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_background_thread_is_in_the_idle_classes_and_only_it() {
        // SAFETY: both calls take plain integers (0: the calling thread) and only read
        // its scheduling class and I/O priority.
        let classes = || unsafe {
            let io = libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long);
            (libc::sched_getscheduler(0), io >> IOPRIO_CLASS_SHIFT)
        };
        let background = std::thread::spawn(move || {
            super::lower_this_thread_priority();
            classes()
        });
        assert_eq!(background.join().unwrap(), (libc::SCHED_IDLE, IOPRIO_CLASS_IDLE));
        assert_ne!(classes().0, libc::SCHED_IDLE);
    }

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
