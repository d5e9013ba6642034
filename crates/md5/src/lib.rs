//! MD5, the digest SQS answers a message's body and attributes with (MD5OfMessageBody),
//! in a crate of its own so that both the wire layer (which answers it) and the engine's
//! writer (which hashes a group's bodies side by side) use one implementation.
//!
//! Several inputs at once go one per 32-bit lane of a vector register: MD5's steps
//! depend each on the one before, so one digest uses a sliver of a core, while eight
//! independent digests (the bodies of one group commit) run side by side in the time
//! of about two. With AVX-512 sixteen lanes hold a whole batch of ten in one pass, and
//! each step's rotation and mixing function are one instruction each. Without AVX2, or
//! for a single input, each digest is computed alone.

// The lanes' tables and padding serve the x86-64 path only.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// The MD5 digest of each of `inputs`, in order.
pub fn md5_many(inputs: &[&[u8]]) -> Vec<[u8; 16]> {
    let mut out = Vec::with_capacity(inputs.len());
    #[cfg(target_arch = "x86_64")]
    if inputs.len() > 1 && std::arch::is_x86_feature_detected!("avx512f") {
        for group in inputs.chunks(WIDE_LANES) {
            // SAFETY: the CPU was just found to support AVX-512F, the only feature the
            // function is compiled for.
            let digests = unsafe { avx512::md5_lanes(group) };
            out.extend_from_slice(&digests[..group.len()]);
        }
        return out;
    }
    #[cfg(target_arch = "x86_64")]
    if inputs.len() > 1 && std::arch::is_x86_feature_detected!("avx2") {
        for group in inputs.chunks(LANES) {
            // SAFETY: the CPU was just found to support AVX2, the only feature the
            // function is compiled for.
            let digests = unsafe { avx2::md5_lanes(group) };
            out.extend_from_slice(&digests[..group.len()]);
        }
        return out;
    }
    out.extend(inputs.iter().map(|input| md5_one(input)));
    out
}

/// The MD5 digest of one input, computed alone. Each step waits on the one before
/// through `b`, so a digest's time is the chain of dependent operations per step, not
/// their number: here the mixing functions take forms whose dependence on `b` is
/// shortest, and each step's constant and word are added to `a` apart from the chain.
/// 1,447 ns for a 1 KiB body against the md-5 crate's 1,620 (scalar, this machine).
pub fn md5_one(input: &[u8]) -> [u8; 16] {
    let padded = Padded::new(input);
    let mut state = INITIAL;
    for block in 0..padded.blocks {
        state = scalar::compress(state, padded.block(block));
    }
    digests(state.map(|word| [word]))[0]
}

/// The MD5 of `data` in lower-case hex, as SQS shows it.
pub fn md5_hex(data: &[u8]) -> String {
    hex_digest(md5_one(data))
}

/// [`md5_hex`] of each of `inputs`, hashed side by side.
pub fn md5_hex_many(inputs: &[&[u8]]) -> Vec<String> {
    md5_many(inputs).into_iter().map(hex_digest).collect()
}

/// A digest in lower-case hex, written into a fixed buffer and copied once into its
/// `String` (pushing char by char was 0.6% of the HTTP workers in sqs-send-batch).
fn hex_digest(digest: [u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (pair, byte) in text.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 15)];
    }
    String::from_utf8(text.to_vec()).expect("hex digits are ASCII")
}

/// Inputs hashed side by side: the 32-bit lanes of a 256-bit register.
const LANES: usize = 8;

/// The 32-bit lanes of a 512-bit register: a SendMessageBatch's ten bodies in one pass
/// (two with eight lanes, the second mostly empty).
const WIDE_LANES: usize = 16;

/// The state MD5 starts from (RFC 1321, 3.3).
const INITIAL: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Each step's constant: floor(abs(sin(i + 1)) * 2^32) (RFC 1321, 3.4).
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// Each step's left rotation (RFC 1321, 3.4).
const SHIFTS: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, //
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, //
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, //
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// Which word of the block step `i` adds (RFC 1321, 3.4).
const fn word_index(i: usize) -> usize {
    match i / 16 {
        0 => i,
        1 => (5 * i + 1) % 16,
        2 => (3 * i + 5) % 16,
        _ => (7 * i) % 16,
    }
}

/// One input laid out as MD5 reads it: its whole 64-byte blocks in place, then the
/// padded end (the last bytes, 0x80, zeros, the length in bits) in one or two blocks.
struct Padded<'a> {
    whole: &'a [u8],
    end: [u8; 128],
    blocks: usize,
}

impl<'a> Padded<'a> {
    fn new(input: &'a [u8]) -> Padded<'a> {
        let whole_len = input.len() / 64 * 64;
        let rest = &input[whole_len..];
        let mut end = [0u8; 128];
        end[..rest.len()].copy_from_slice(rest);
        end[rest.len()] = 0x80;
        // The length (8 bytes) must fit after the 0x80 in the same block.
        let end_blocks = if rest.len() + 9 <= 64 { 1 } else { 2 };
        let bits = (input.len() as u64).wrapping_mul(8);
        end[end_blocks * 64 - 8..end_blocks * 64].copy_from_slice(&bits.to_le_bytes());
        Padded { whole: &input[..whole_len], end, blocks: whole_len / 64 + end_blocks }
    }

    /// Block `block` (below `blocks`).
    fn block(&self, block: usize) -> &[u8; 64] {
        let whole_blocks = self.whole.len() / 64;
        let at =
            if block < whole_blocks { &self.whole[block * 64..] } else { &self.end[(block - whole_blocks) * 64..] };
        at[..64].try_into().expect("64 bytes")
    }
}

/// `inputs` padded, one to a lane, the lanes past them holding an empty input. On the
/// stack: as a vector (152 bytes a lane, 1.2-2.4 KB) they were past glibc's small-bin
/// sizes, so each group's allocation consolidated its fast bins first (2% of the writer's
/// time in sqs-send).
fn padded_lanes<'a, const N: usize>(inputs: &[&'a [u8]]) -> [Padded<'a>; N] {
    std::array::from_fn(|lane| Padded::new(inputs.get(lane).copied().unwrap_or_default()))
}

/// Block `block` of each input as MD5's sixteen little-endian words, word by word with one
/// lane per input, and which lanes have such a block: the others compute on zeros and
/// keep their state.
fn columns<const N: usize>(padded: &[Padded<'_>], block: usize) -> ([[u32; N]; 16], [bool; N]) {
    let mut columns = [[0u32; N]; 16];
    let mut active = [false; N];
    for (lane, p) in padded.iter().enumerate().filter(|(_, p)| block < p.blocks) {
        let bytes = p.block(block);
        for (w, column) in columns.iter_mut().enumerate() {
            column[lane] = u32::from_le_bytes([bytes[w * 4], bytes[w * 4 + 1], bytes[w * 4 + 2], bytes[w * 4 + 3]]);
        }
        active[lane] = true;
    }
    (columns, active)
}

/// Each lane's digest from the four state words, word by word.
fn digests<const N: usize>(state: [[u32; N]; 4]) -> [[u8; 16]; N] {
    let mut digests = [[0u8; 16]; N];
    for (lane, digest) in digests.iter_mut().enumerate() {
        for (i, s) in state.iter().enumerate() {
            digest[i * 4..i * 4 + 4].copy_from_slice(&s[lane].to_le_bytes());
        }
    }
    digests
}

/// MD5's 64 steps over one block, each `$step!(mix, a, b, c, d, n)` as the caller
/// defines it for its registers, with the rounds' mixing functions `$f`, `$g`, `$h`, `$i`.
/// Unrolled so that each rotation is by a constant.
macro_rules! md5_steps {
    ($step:ident, [$f:ident, $g:ident, $h:ident, $i:ident], $a:ident, $b:ident, $c:ident, $d:ident) => {
        md5_steps!(@four $step, $f, $a, $b, $c, $d, 0, 1, 2, 3);
        md5_steps!(@four $step, $f, $a, $b, $c, $d, 4, 5, 6, 7);
        md5_steps!(@four $step, $f, $a, $b, $c, $d, 8, 9, 10, 11);
        md5_steps!(@four $step, $f, $a, $b, $c, $d, 12, 13, 14, 15);
        md5_steps!(@four $step, $g, $a, $b, $c, $d, 16, 17, 18, 19);
        md5_steps!(@four $step, $g, $a, $b, $c, $d, 20, 21, 22, 23);
        md5_steps!(@four $step, $g, $a, $b, $c, $d, 24, 25, 26, 27);
        md5_steps!(@four $step, $g, $a, $b, $c, $d, 28, 29, 30, 31);
        md5_steps!(@four $step, $h, $a, $b, $c, $d, 32, 33, 34, 35);
        md5_steps!(@four $step, $h, $a, $b, $c, $d, 36, 37, 38, 39);
        md5_steps!(@four $step, $h, $a, $b, $c, $d, 40, 41, 42, 43);
        md5_steps!(@four $step, $h, $a, $b, $c, $d, 44, 45, 46, 47);
        md5_steps!(@four $step, $i, $a, $b, $c, $d, 48, 49, 50, 51);
        md5_steps!(@four $step, $i, $a, $b, $c, $d, 52, 53, 54, 55);
        md5_steps!(@four $step, $i, $a, $b, $c, $d, 56, 57, 58, 59);
        md5_steps!(@four $step, $i, $a, $b, $c, $d, 60, 61, 62, 63);
    };
    (@four $step:ident, $mix:ident, $a:ident, $b:ident, $c:ident, $d:ident, $n:literal, $n1:literal, $n2:literal, $n3:literal) => {
        $step!($mix, $a, $b, $c, $d, $n);
        $step!($mix, $d, $a, $b, $c, $n1);
        $step!($mix, $c, $d, $a, $b, $n2);
        $step!($mix, $b, $c, $d, $a, $n3);
    };
}

mod scalar {
    use super::{word_index, K, SHIFTS};

    /// One block's 64 steps; the state after (added to the one before).
    #[inline]
    pub(super) fn compress(state: [u32; 4], bytes: &[u8; 64]) -> [u32; 4] {
        let mut x = [0u32; 16];
        for (word, chunk) in x.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        // (b & c) | (!b & d): b's and, then one xor.
        let f = |b: u32, c: u32, d: u32| d ^ (b & (c ^ d));
        // (b & d) | (c & !d): the halves share no bit, so the or is a sum, and the half
        // without b joins `a` early.
        let g = |b: u32, c: u32, d: u32| (c & !d).wrapping_add(b & d);
        let h = |b: u32, c: u32, d: u32| b ^ (c ^ d);
        let i = |b: u32, c: u32, d: u32| c ^ (b | !d);
        // Step `n`: a = b + ((a + K[n] + x[word(n)] + mix(b, c, d)) <<< SHIFTS[n]).
        macro_rules! step {
            ($mix:ident, $a:ident, $b:ident, $c:ident, $d:ident, $n:literal) => {
                $a = $a
                    .wrapping_add(K[$n].wrapping_add(x[word_index($n)]))
                    .wrapping_add($mix($b, $c, $d))
                    .rotate_left(SHIFTS[$n])
                    .wrapping_add($b);
            };
        }
        md5_steps!(step, [f, g, h, i], a, b, c, d);
        [state[0].wrapping_add(a), state[1].wrapping_add(b), state[2].wrapping_add(c), state[3].wrapping_add(d)]
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{columns, digests, padded_lanes, word_index, INITIAL, K, LANES, SHIFTS};
    use std::arch::x86_64::*;

    /// The digests of `inputs` (at most [`LANES`]) in their lanes; lanes past
    /// `inputs.len()` hash nothing and are to be ignored.
    #[target_feature(enable = "avx2")]
    pub(super) fn md5_lanes(inputs: &[&[u8]]) -> [[u8; 16]; LANES] {
        assert!(inputs.len() <= LANES);
        let lanes = padded_lanes::<LANES>(inputs);
        let padded = &lanes[..inputs.len()];
        let blocks = padded.iter().map(|p| p.blocks).max().unwrap_or(0);
        let mut state = INITIAL.map(|v| _mm256_set1_epi32(v as i32));
        for block in 0..blocks {
            let (columns, active) = columns::<LANES>(padded, block);
            let words: [__m256i; 16] = std::array::from_fn(|w| from_lanes(columns[w]));
            let after = compress(state, &words);
            let active = from_lanes(active.map(|a| if a { u32::MAX } else { 0 }));
            for (s, a) in state.iter_mut().zip(after) {
                *s = _mm256_blendv_epi8(*s, a, active);
            }
        }
        digests(state.map(|v| to_lanes(v)))
    }

    /// One block's 64 steps on every lane; the state after (added to the one before).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn compress(state: [__m256i; 4], x: &[__m256i; 16]) -> [__m256i; 4] {
        let [mut a, mut b, mut c, mut d] = state;
        let ones = _mm256_set1_epi32(-1);
        // (b & c) | (!b & d)
        let f = |b, c, d| _mm256_or_si256(_mm256_and_si256(b, c), _mm256_andnot_si256(b, d));
        // (b & d) | (c & !d)
        let g = |b, c, d| _mm256_or_si256(_mm256_and_si256(b, d), _mm256_andnot_si256(d, c));
        // b ^ c ^ d
        let h = |b, c, d| _mm256_xor_si256(_mm256_xor_si256(b, c), d);
        // c ^ (b | !d)
        let i = |b, c, d| _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, ones)));
        // Step `n`: a = b + ((a + mix(b, c, d) + K[n] + x[word(n)]) <<< SHIFTS[n]).
        macro_rules! step {
            ($mix:ident, $a:ident, $b:ident, $c:ident, $d:ident, $n:literal) => {
                $a = {
                    let sum = _mm256_add_epi32(
                        _mm256_add_epi32($a, $mix($b, $c, $d)),
                        _mm256_add_epi32(_mm256_set1_epi32(K[$n] as i32), x[word_index($n)]),
                    );
                    const SHIFT: i32 = SHIFTS[$n] as i32;
                    let rotated =
                        _mm256_or_si256(_mm256_slli_epi32::<SHIFT>(sum), _mm256_srli_epi32::<{ 32 - SHIFT }>(sum));
                    _mm256_add_epi32($b, rotated)
                };
            };
        }
        md5_steps!(step, [f, g, h, i], a, b, c, d);
        [
            _mm256_add_epi32(state[0], a),
            _mm256_add_epi32(state[1], b),
            _mm256_add_epi32(state[2], c),
            _mm256_add_epi32(state[3], d),
        ]
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn from_lanes(values: [u32; LANES]) -> __m256i {
        let v = values.map(|v| v as i32);
        _mm256_setr_epi32(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn to_lanes(v: __m256i) -> [u32; LANES] {
        let mut out = [0u32; LANES];
        // SAFETY: `out` is 32 writable bytes, the size of `v`; the unaligned store has
        // no alignment requirement.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), v) };
        out
    }
}

/// The AVX2 code's steps with AVX-512F: sixteen lanes, the rotation one `vprold`, each
/// round's mixing function one `vpternlogd` (its truth table as the constant), so a step's
/// chain of dependent instructions is four long instead of about seven.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{columns, digests, padded_lanes, word_index, INITIAL, K, SHIFTS, WIDE_LANES};
    use std::arch::x86_64::*;

    /// The digests of `inputs` (at most [`WIDE_LANES`]) in their lanes; lanes past
    /// `inputs.len()` hash nothing and are to be ignored.
    #[target_feature(enable = "avx512f")]
    pub(super) fn md5_lanes(inputs: &[&[u8]]) -> [[u8; 16]; WIDE_LANES] {
        assert!(inputs.len() <= WIDE_LANES);
        let lanes = padded_lanes::<WIDE_LANES>(inputs);
        let padded = &lanes[..inputs.len()];
        let blocks = padded.iter().map(|p| p.blocks).max().unwrap_or(0);
        let mut state = INITIAL.map(|v| _mm512_set1_epi32(v as i32));
        for block in 0..blocks {
            let (columns, active) = columns::<WIDE_LANES>(padded, block);
            let words: [__m512i; 16] = std::array::from_fn(|w| from_lanes(&columns[w]));
            let after = compress(state, &words);
            let active: __mmask16 = active.iter().enumerate().fold(0, |mask, (lane, &a)| mask | (u16::from(a) << lane));
            for (s, a) in state.iter_mut().zip(after) {
                *s = _mm512_mask_mov_epi32(*s, active, a);
            }
        }
        digests(state.map(|v| to_lanes(v)))
    }

    /// One block's 64 steps on every lane; the state after (added to the one before).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress(state: [__m512i; 4], x: &[__m512i; 16]) -> [__m512i; 4] {
        let [mut a, mut b, mut c, mut d] = state;
        // Truth tables over (b, c, d), b the high bit of the index: F = b ? c : d (0xCA),
        // G = d ? b : c (0xE4), H = b ^ c ^ d (0x96), I = c ^ (b | !d) (0x39).
        let f = |b, c, d| _mm512_ternarylogic_epi32::<0xCA>(b, c, d);
        let g = |b, c, d| _mm512_ternarylogic_epi32::<0xE4>(b, c, d);
        let h = |b, c, d| _mm512_ternarylogic_epi32::<0x96>(b, c, d);
        let i = |b, c, d| _mm512_ternarylogic_epi32::<0x39>(b, c, d);
        // Step `n`: a = b + ((a + mix(b, c, d) + K[n] + x[word(n)]) <<< SHIFTS[n]).
        macro_rules! step {
            ($mix:ident, $a:ident, $b:ident, $c:ident, $d:ident, $n:literal) => {
                $a = {
                    let sum = _mm512_add_epi32(
                        _mm512_add_epi32($a, $mix($b, $c, $d)),
                        _mm512_add_epi32(_mm512_set1_epi32(K[$n] as i32), x[word_index($n)]),
                    );
                    const SHIFT: i32 = SHIFTS[$n] as i32;
                    _mm512_add_epi32($b, _mm512_rol_epi32::<SHIFT>(sum))
                };
            };
        }
        md5_steps!(step, [f, g, h, i], a, b, c, d);
        [
            _mm512_add_epi32(state[0], a),
            _mm512_add_epi32(state[1], b),
            _mm512_add_epi32(state[2], c),
            _mm512_add_epi32(state[3], d),
        ]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn from_lanes(values: &[u32; WIDE_LANES]) -> __m512i {
        // SAFETY: `values` is 64 readable bytes, the size of the vector; the unaligned
        // load has no alignment requirement.
        unsafe { _mm512_loadu_si512(values.as_ptr().cast::<__m512i>()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn to_lanes(v: __m512i) -> [u32; WIDE_LANES] {
        let mut out = [0u32; WIDE_LANES];
        // SAFETY: `out` is 64 writable bytes, the size of `v`; the unaligned store has
        // no alignment requirement.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast::<__m512i>(), v) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    /// Every length around the block and padding boundaries, in groups of every size
    /// up to `max_group`, hashed by `hash` against the md-5 crate.
    fn check_against_md5(max_group: usize, hash: impl Fn(&[&[u8]]) -> Vec<[u8; 16]>) {
        let data: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let lengths: Vec<usize> = (0..=200).chain([447, 448, 449, 511, 512, 513, 640, 700]).collect();
        for group in 1..=max_group {
            for start in (0..lengths.len()).step_by(group) {
                let inputs: Vec<&[u8]> =
                    lengths[start..(start + group).min(lengths.len())].iter().map(|&n| &data[..n]).collect();
                let expected: Vec<[u8; 16]> = inputs.iter().map(|i| <[u8; 16]>::from(Md5::digest(i))).collect();
                assert_eq!(hash(&inputs), expected, "group of {group} from length {}", lengths[start]);
            }
        }
    }

    #[test]
    fn digests_match_md5_for_every_length_and_group_size() {
        check_against_md5(WIDE_LANES + 3, md5_many);
    }

    #[test]
    fn one_input_alone_matches_md5_for_every_length() {
        check_against_md5(1, |inputs| vec![md5_one(inputs[0])]);
    }

    /// Each register width on its own, whichever `md5_many` picks on this CPU.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn both_register_widths_match_md5() {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was just detected.
            check_against_md5(LANES, |inputs| unsafe { avx2::md5_lanes(inputs) }[..inputs.len()].to_vec());
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was just detected.
            check_against_md5(WIDE_LANES, |inputs| unsafe { avx512::md5_lanes(inputs) }[..inputs.len()].to_vec());
        }
    }

    #[test]
    fn known_digests() {
        let inputs: [&[u8]; 3] = [b"", b"abc", b"The quick brown fox jumps over the lazy dog"];
        let hex: Vec<String> = md5_hex_many(&inputs);
        assert_eq!(
            hex,
            [
                "d41d8cd98f00b204e9800998ecf8427e",
                "900150983cd24fb0d6963f7d28e17f72",
                "9e107d9d372bb6826bd81d3542a419d6"
            ]
        );
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }
}
