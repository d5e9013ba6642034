//! Byte scans written as plain folds, which the compiler vectorises, run from a copy of
//! themselves compiled for AVX2 when the CPU has it. The release build targets baseline
//! x86-64 (SSE2, 16 bytes a register); with AVX2 a fold over a 1 KiB body takes about a
//! quarter of the instructions (`bench/README.md`, "A larger malloc cache per thread").

/// `scan()`, compiled for AVX2 when the CPU has it. `scan` should be a short closure
/// over a fold: it is inlined into the AVX2 copy, and what it calls that is not inlined
/// keeps the baseline build.
#[inline(always)]
pub fn with_avx2<R>(scan: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just found to support AVX2, the only feature `avx2` is
        // compiled for; it only calls `scan`, safe code.
        return unsafe { avx2(scan) };
    }
    scan()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2<R>(scan: impl FnOnce() -> R) -> R {
    scan()
}
