//! What the server asks of the C library and the kernel: where the allocator takes large
//! blocks from, and a background thread's CPU priority.

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

/// Gives the calling thread the lowest CPU priority (nice 19): for background work that
/// should take only the CPU that requests leave. On Linux the nice value belongs to the
/// thread (`who` 0 is the calling thread), not to the whole process.
pub fn lower_this_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        const PRIO_PROCESS: std::os::raw::c_int = 0;
        unsafe extern "C" {
            fn setpriority(which: std::os::raw::c_int, who: u32, prio: std::os::raw::c_int) -> std::os::raw::c_int;
        }
        // SAFETY: setpriority takes three plain integers and changes only the scheduling
        // weight of the calling thread; no memory is shared with the call.
        unsafe {
            setpriority(PRIO_PROCESS, 0, 19);
        }
    }
}
