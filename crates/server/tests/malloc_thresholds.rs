//! glibc's mmap and trim thresholds as the server sets them (crates/server/src/os.rs): a
//! block of 12 MiB, the size of a large Kinesis GetRecords reply, comes from an arena
//! rather than a mapping of its own (as under the 4 MiB mmap threshold before), and once
//! freed it stays with the process for the next reply (under glibc's 128 KiB trim
//! threshold it went back to the kernel at once). Counted by `mallinfo2`: mapped blocks,
//! and free bytes in arenas.
//!
//! No test harness (`harness = false`): glibc documents `mallopt` as unsafe beside other
//! threads' allocations, so it runs here as the server runs it, before any other thread.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    const BLOCK: usize = 12 << 20;
    sluice::os::fix_malloc_thresholds();
    // SAFETY: mallinfo2 takes nothing and returns its counters by value.
    let counts = || unsafe { libc::mallinfo2() };
    let before = counts();
    let block = std::hint::black_box(vec![1u8; BLOCK]);
    let held = counts();
    assert_eq!(held.hblks, before.hblks, "the block was mapped apart");
    drop(block);
    let after = counts();
    assert!(
        after.fordblks >= held.fordblks + BLOCK,
        "the freed block went back to the kernel: {} free bytes after, {} before",
        after.fordblks,
        held.fordblks
    );
    // In the harness's words, so that .ci/run's tally counts it.
    println!("test a_reply_sized_block_comes_from_an_arena_and_stays_once_freed ... ok");
    println!("test result: ok. 1 passed; 0 failed");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {}
