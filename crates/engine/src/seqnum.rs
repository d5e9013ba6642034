//! Kinesis sequence numbers in AWS's layout, as kinesalite reverse-engineered it and as a
//! real AWS value decodes (aws-notes "Sequence numbers"): the hex digits
//! `2 | shard creation secs (9) | shard index low nibble (1) | per-shard index (16) | 00 |
//! arrival secs (9) | shard index (8) | 2`, written in decimal.

/// Encodes the sequence number of record `seq_ix` of shard `shard_index`.
pub fn encode(shard_created_secs: u64, shard_index: u32, seq_ix: u64, arrival_secs: u64) -> String {
    // The hex layout `2{:09x}{:01x}{:016x}00{:09x}{:08x}2`, as (value, bits) fields of one
    // 188-bit number; converted straight to decimal (once per record written and read).
    let fields = [
        (2, 4),
        (shard_created_secs & 0xf_ffff_ffff, 36),
        (u64::from(shard_index & 0xf), 4),
        (seq_ix, 64),
        (0, 8),
        (arrival_secs & 0xf_ffff_ffff, 36),
        (u64::from(shard_index), 32),
        (2, 4),
    ];
    // Little-endian 64-bit limbs.
    let mut limbs = [0u64; 3];
    let shl = |x: u64, n: u32| x.checked_shl(n).unwrap_or(0);
    let shr = |x: u64, n: u32| x.checked_shr(n).unwrap_or(0);
    for (value, bits) in fields {
        limbs[2] = shl(limbs[2], bits) | shr(limbs[1], 64 - bits);
        limbs[1] = shl(limbs[1], bits) | shr(limbs[0], 64 - bits);
        limbs[0] = shl(limbs[0], bits) | value;
    }
    // Base 10^19 digits, most significant first.
    const CHUNK: u128 = 10_000_000_000_000_000_000;
    let mut chunks = [0u64; 4];
    for chunk in chunks.iter_mut().rev() {
        let mut rem: u128 = 0;
        for limb in limbs.iter_mut().rev() {
            let v = (rem << 64) | u128::from(*limb);
            *limb = (v / CHUNK) as u64;
            rem = v % CHUNK;
        }
        *chunk = rem as u64;
    }
    let mut out = String::with_capacity(57);
    let mut started = false;
    for chunk in chunks {
        if started {
            out.push_str(&format!("{chunk:019}"));
        } else if chunk != 0 {
            out.push_str(&chunk.to_string());
            started = true;
        }
    }
    out
}

/// Decoded fields of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub shard_created_secs: u64,
    pub shard_index: u32,
    pub seq_ix: u64,
    pub arrival_secs: u64,
}

pub fn decode(decimal: &str) -> Option<Decoded> {
    let hex = decimal_to_hex(decimal)?;
    if hex.len() != 47 || !hex.starts_with('2') || !hex.ends_with('2') {
        return None;
    }
    let field = |from: usize, len: usize| u64::from_str_radix(&hex[from..from + len], 16).ok();
    Some(Decoded {
        shard_created_secs: field(1, 9)?,
        seq_ix: field(11, 16)?,
        arrival_secs: field(29, 9)?,
        shard_index: field(38, 8)? as u32,
    })
}

/// Big-number base conversion on little-endian limbs of base 10^9: the reference the
/// direct conversion in `encode` is checked against.
#[cfg(test)]
fn hex_to_decimal(hex: &str) -> String {
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = vec![0];
    for c in hex.chars() {
        let mut carry = c.to_digit(16).unwrap_or(0) as u64;
        for limb in limbs.iter_mut() {
            let v = *limb * 16 + carry;
            *limb = v % BASE;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    }
    let mut out = limbs.last().map(|l| l.to_string()).unwrap_or_default();
    for limb in limbs.iter().rev().skip(1) {
        out.push_str(&format!("{limb:09}"));
    }
    out
}

fn decimal_to_hex(decimal: &str) -> Option<String> {
    if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Little-endian base-16 digits.
    let mut digits: Vec<u32> = vec![0];
    for c in decimal.bytes() {
        let mut carry = (c - b'0') as u32;
        for d in digits.iter_mut() {
            let v = *d * 10 + carry;
            *d = v % 16;
            carry = v / 16;
        }
        while carry > 0 {
            digits.push(carry % 16);
            carry /= 16;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    Some(digits.iter().rev().map(|d| std::char::from_digit(*d, 16).unwrap_or('0')).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's sample Lambda Kinesis event: shardId-000000000006, arrival 1545084650.987.
    #[test]
    fn decodes_a_real_aws_sequence_number() {
        let d = decode("49590338271490256608559692538361571095921575989136588898").unwrap();
        assert_eq!(d.shard_index, 6);
        assert_eq!(d.arrival_secs, 1_545_084_650);
        assert_eq!(d.shard_created_secs, 1_542_776_258);
        assert_eq!(d.seq_ix, 1_734_642_199);
        assert_eq!(
            encode(d.shard_created_secs, 6, d.seq_ix, d.arrival_secs),
            "49590338271490256608559692538361571095921575989136588898"
        );
    }

    #[test]
    fn the_direct_conversion_agrees_with_the_hex_layout() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..2000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (created, index, seq_ix, arrival) = match i {
                0 => (0, 0, 0, 0),
                1 => (u64::MAX, u32::MAX, u64::MAX, u64::MAX),
                _ => (x >> 28, (x >> 3) as u32, x.rotate_left(i as u32), x >> (i % 64)),
            };
            let hex = format!(
                "2{:09x}{:01x}{:016x}00{:09x}{:08x}2",
                created & 0xf_ffff_ffff,
                index & 0xf,
                seq_ix,
                arrival & 0xf_ffff_ffff,
                index
            );
            assert_eq!(encode(created, index, seq_ix, arrival), hex_to_decimal(&hex), "{hex}");
        }
    }

    #[test]
    fn sequence_numbers_grow_with_the_index_whatever_the_time() {
        let a = encode(1_700_000_000, 3, 41, 1_700_000_500);
        let b = encode(1_700_000_000, 3, 42, 1_700_000_100);
        assert_eq!(a.len(), b.len());
        assert!(a < b, "same length, so string order is numeric order");
        assert_eq!(decode(&b).unwrap().seq_ix, 42);
        assert_eq!(decode("12"), None);
        assert_eq!(decode("abc"), None);
    }
}
