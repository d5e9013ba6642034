//! Optional per-shard throughput limits (off by default, for developers): writes of
//! 1 MiB or 1,000 records a second, reads of 2 MiB and 5 GetRecords calls a second
//! (AWS "Kinesis Data Streams quotas and limits"). Token buckets on the injected clock;
//! a read that returns more than the budget leaves a debt, so "if a call returns 10 MiB,
//! subsequent calls made within the next 5 seconds throw".

use std::collections::HashMap;

pub const WRITE_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
pub const WRITE_RECORDS_PER_SEC: f64 = 1000.0;
pub const READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;
pub const READ_CALLS_PER_SEC: f64 = 5.0;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    rate: f64,
    updated_ms: u64,
}

impl Bucket {
    fn new(rate: f64, now: u64) -> Bucket {
        Bucket { tokens: rate, rate, updated_ms: now }
    }
    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.updated_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated_ms = now;
    }
}

#[derive(Debug)]
struct ShardBuckets {
    write_bytes: Bucket,
    write_records: Bucket,
    read_bytes: Bucket,
    read_calls: Bucket,
}

#[derive(Debug, Default)]
pub struct Limiter {
    shards: HashMap<i64, ShardBuckets>,
}

impl Limiter {
    fn shard(&mut self, uid: i64, now: u64) -> &mut ShardBuckets {
        let s = self.shards.entry(uid).or_insert_with(|| ShardBuckets {
            write_bytes: Bucket::new(WRITE_BYTES_PER_SEC, now),
            write_records: Bucket::new(WRITE_RECORDS_PER_SEC, now),
            read_bytes: Bucket::new(READ_BYTES_PER_SEC, now),
            read_calls: Bucket::new(READ_CALLS_PER_SEC, now),
        });
        for b in [&mut s.write_bytes, &mut s.write_records, &mut s.read_bytes, &mut s.read_calls] {
            b.refill(now);
        }
        s
    }

    /// Takes one record of `bytes` from the shard's write budget, if it has room.
    pub fn try_write(&mut self, uid: i64, bytes: usize, now: u64) -> bool {
        let s = self.shard(uid, now);
        if s.write_records.tokens < 1.0 || s.write_bytes.tokens < bytes as f64 {
            return false;
        }
        s.write_records.tokens -= 1.0;
        s.write_bytes.tokens -= bytes as f64;
        true
    }

    /// Admits a GetRecords call if the shard has calls and bytes left this second.
    pub fn try_read(&mut self, uid: i64, now: u64) -> bool {
        let s = self.shard(uid, now);
        if s.read_calls.tokens < 1.0 || s.read_bytes.tokens <= 0.0 {
            return false;
        }
        s.read_calls.tokens -= 1.0;
        true
    }

    /// Charges the bytes a GetRecords call returned (may leave a debt).
    pub fn charge_read(&mut self, uid: i64, bytes: usize, now: u64) {
        self.shard(uid, now).read_bytes.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_records_a_second() {
        let mut l = Limiter::default();
        for _ in 0..1000 {
            assert!(l.try_write(1, 10, 0));
        }
        assert!(!l.try_write(1, 10, 0));
        assert!(l.try_write(2, 10, 0), "shards are independent");
        assert!(l.try_write(1, 10, 1000), "the budget refills");
    }

    #[test]
    fn a_ten_mebibyte_read_blocks_reads_for_five_seconds() {
        let mut l = Limiter::default();
        assert!(l.try_read(1, 0));
        l.charge_read(1, 10 * 1024 * 1024, 0);
        assert!(!l.try_read(1, 4_000));
        assert!(l.try_read(1, 4_100), "2 MiB + 4.1 s × 2 MiB/s covers the 10 MiB debt");
        for _ in 0..4 {
            assert!(l.try_read(2, 0));
        }
        assert!(l.try_read(2, 0));
        assert!(!l.try_read(2, 0), "five calls a second");
    }
}
