//! Kinesis streams in the embedded backend: stream metadata in memory (written through
//! the group-commit writer as one JSON document per stream), record bytes in the record
//! log with a `record_chunks` row per shard and append, keyed by (shard, first record
//! index), so reading from any position costs O(records read).

use crate::db::{internal, SqlOp};
use crate::embedded::{undo_in, EmbeddedStore};
use crate::record_log::{read_fresh, ChunkKind, RecordChunk};
use crate::seqnum;
use crate::store::*;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub account: String,
    pub region: String,
    pub name: String,
}

impl StreamKey {
    pub fn arn(&self) -> String {
        format!("arn:aws:kinesis:{}:{}:stream/{}", self.region, self.account, self.name)
    }
    /// Parses `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    pub fn from_arn(arn: &str) -> Option<StreamKey> {
        let rest = arn.strip_prefix("arn:")?;
        let mut p = rest.splitn(5, ':');
        p.next()?;
        if p.next()? != "kinesis" {
            return None;
        }
        let region = p.next()?;
        let account = p.next()?;
        let name = p.next()?.strip_prefix("stream/")?;
        let name = name.split('/').next()?;
        (!region.is_empty() && !account.is_empty() && !name.is_empty()).then(|| StreamKey {
            account: account.into(),
            region: region.into(),
            name: name.into(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Store-wide id of the shard's records.
    pub uid: i64,
    /// N of `shardId-00000000000N`.
    pub index: u32,
    /// Decimal u128.
    pub start_hash: String,
    pub end_hash: String,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub created_ms: u64,
    /// Set when the shard is closed by a split, merge or resharding: its last record index
    /// (records up to it exist or existed), or `None` while open.
    pub ending_seq_ix: Option<u64>,
    /// The shard was closed before it received any record.
    #[serde(default)]
    pub closed_empty: bool,
    /// Arrival time of the shard's last record, once closed (its EndingSequenceNumber).
    #[serde(default)]
    pub ending_arrival_ms: Option<u64>,
}

impl ShardMeta {
    pub fn shard_id(&self) -> String {
        format!("shardId-{:012}", self.index)
    }
    pub fn is_open(&self) -> bool {
        self.ending_seq_ix.is_none() && !self.closed_empty
    }
    pub fn range(&self) -> (u128, u128) {
        (self.start_hash.parse().unwrap_or(0), self.end_hash.parse().unwrap_or(u128::MAX))
    }
    pub fn sequence_number(&self, seq_ix: u64, arrival_ms: u64) -> String {
        seqnum::encode(self.created_ms / 1000, self.index, seq_ix, arrival_ms / 1000)
    }
    pub fn starting_sequence_number(&self) -> String {
        self.sequence_number(0, self.created_ms)
    }
    /// The sequence number of the shard's last record, once it is closed.
    pub fn ending_sequence_number(&self) -> Option<String> {
        match (self.ending_seq_ix, self.closed_empty) {
            (Some(ix), _) => Some(self.sequence_number(ix, self.ending_arrival_ms.unwrap_or(self.created_ms))),
            (None, true) => Some(self.starting_sequence_number()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    pub arn: String,
    pub created_ms: u64,
}

/// Everything about a stream except its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub id: i64,
    pub account: String,
    pub region: String,
    pub name: String,
    pub stream_id: String,
    pub status: String,
    /// `status` (CREATING, UPDATING) holds until this time, then the stream is ACTIVE.
    #[serde(default)]
    pub status_until_ms: Option<u64>,
    pub mode: String,
    pub retention_hours: u32,
    pub created_ms: u64,
    pub tags: BTreeMap<String, String>,
    pub encryption_type: String,
    pub key_id: Option<String>,
    pub enhanced_metrics: Vec<String>,
    pub max_record_size_kib: u32,
    pub consumers: Vec<ConsumerMeta>,
    pub shards: Vec<ShardMeta>,
    pub resource_policy: Option<String>,
    #[serde(default)]
    pub consumer_policies: BTreeMap<String, String>,
    pub warm_throughput_mibps: Option<u32>,
    pub next_shard_index: u32,
}

impl StreamMeta {
    /// An ACTIVE provisioned stream in the default account and region, with AWS's
    /// defaults (24 hours' retention, no encryption, 1 MiB records): what tests and
    /// benchmarks create.
    pub fn for_tests(name: &str) -> StreamMeta {
        StreamMeta {
            id: 0,
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: name.into(),
            stream_id: "1".into(),
            status: "ACTIVE".into(),
            status_until_ms: None,
            mode: "PROVISIONED".into(),
            retention_hours: 24,
            created_ms: 1_700_000_000_000,
            tags: Default::default(),
            encryption_type: "NONE".into(),
            key_id: None,
            enhanced_metrics: vec![],
            max_record_size_kib: 1024,
            consumers: vec![],
            shards: vec![],
            resource_policy: None,
            consumer_policies: Default::default(),
            warm_throughput_mibps: None,
            next_shard_index: 0,
        }
    }

    pub fn key(&self) -> StreamKey {
        StreamKey { account: self.account.clone(), region: self.region.clone(), name: self.name.clone() }
    }
    pub fn arn(&self) -> String {
        self.key().arn()
    }
    /// The status at `now`: CREATING/UPDATING until their time is up, then ACTIVE.
    pub fn status_at(&self, now: u64) -> &str {
        match self.status_until_ms {
            Some(until) if now < until => &self.status,
            _ => "ACTIVE",
        }
    }

    pub fn shard(&self, shard_id: &str) -> Option<&ShardMeta> {
        self.shards.iter().find(|s| s.shard_id() == shard_id)
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub seq_ix: u64,
    pub sequence_number: String,
    pub arrival_ms: u64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// A record to append; the shard is chosen by the caller's hash routing.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub shard_index: u32,
    pub partition_key: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedRecord {
    pub shard_id: String,
    pub sequence_number: String,
}

/// What GetRecords found.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Vec<StreamRecord>,
    /// Where the next read starts.
    pub next_seq_ix: u64,
    /// The shard is closed and everything in it has been read.
    pub shard_ended: bool,
    /// The arrival time of the newest record in the shard, for MillisBehindLatest.
    pub latest_arrival_ms: Option<u64>,
}

/// Records are numbered from 1 within a shard; index 0 is the shard's
/// StartingSequenceNumber, below every record, so AFTER_SEQUENCE_NUMBER of it reads the
/// first record.
pub const FIRST_SEQ_IX: u64 = 1;

/// Per-shard runtime state, beside the persisted metadata.
#[derive(Debug)]
pub(crate) struct ShardRuntime {
    next_seq_ix: u64,
    latest_arrival_ms: Option<u64>,
    /// Woken when records are committed (SubscribeToShard waits on it).
    signal: Arc<Notify>,
}

impl Default for ShardRuntime {
    fn default() -> Self {
        ShardRuntime { next_seq_ix: FIRST_SEQ_IX, latest_arrival_ms: None, signal: Arc::new(Notify::new()) }
    }
}

#[derive(Default)]
pub(crate) struct StreamRegistry {
    streams: BTreeMap<StreamKey, StreamMeta>,
    shards: HashMap<i64, ShardRuntime>,
    next_stream_id: i64,
    next_shard_uid: i64,
}

impl StreamRegistry {
    pub(crate) fn load(conn: &rusqlite::Connection) -> rusqlite::Result<StreamRegistry> {
        let mut reg = StreamRegistry { next_stream_id: 1, next_shard_uid: 1, ..Default::default() };
        let mut stmt = conn.prepare("SELECT record FROM streams")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            let meta: StreamMeta =
                serde_json::from_str(&row?).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            reg.next_stream_id = reg.next_stream_id.max(meta.id + 1);
            for shard in &meta.shards {
                reg.next_shard_uid = reg.next_shard_uid.max(shard.uid + 1);
                let next: i64 = conn
                    .query_row("SELECT next_seq_ix FROM shard_seq WHERE shard_uid=?1", params![shard.uid], |r| r.get(0))
                    .unwrap_or(FIRST_SEQ_IX as i64);
                let latest: Option<i64> = conn
                    .query_row(
                        "SELECT arrival_ms FROM record_chunks WHERE shard_uid=?1 ORDER BY first_seq_ix DESC LIMIT 1",
                        params![shard.uid],
                        |r| r.get(0),
                    )
                    .ok();
                reg.shards.insert(
                    shard.uid,
                    ShardRuntime {
                        next_seq_ix: (next as u64).max(FIRST_SEQ_IX),
                        latest_arrival_ms: latest.map(|v| v as u64),
                        signal: Arc::new(Notify::new()),
                    },
                );
            }
            reg.streams.insert(meta.key(), meta);
        }
        Ok(reg)
    }
}

/// Even split of the 128-bit hash key space into `n` ranges; the last takes the remainder.
pub fn even_ranges(n: u32) -> Vec<(u128, u128)> {
    let n = n.max(1) as u128;
    if n == 1 {
        return vec![(0, u128::MAX)];
    }
    // floor(2^128 / n), computed without overflow.
    let size = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    (0..n).map(|i| (i * size, if i == n - 1 { u128::MAX } else { (i + 1) * size - 1 })).collect()
}

/// What Kinesis needs from storage.
pub trait StreamStore: Send + Sync {
    /// Creates a stream with `shard_count` shards; `false` if it already exists.
    fn create_stream(&self, meta: StreamMeta, shard_count: u32) -> Result<Durable<bool>, StoreError>;
    fn stream(&self, key: &StreamKey) -> Option<StreamMeta>;
    fn streams(&self, account: &str, region: &str) -> Vec<StreamMeta>;
    fn stream_by_id(&self, id: i64) -> Option<StreamMeta>;
    fn delete_stream(&self, key: &StreamKey) -> Result<Durable<()>, StoreError>;
    /// Changes a stream's metadata under its lock. New shards get uid 0 (assigned here);
    /// a shard closed with `ending_seq_ix = Some(u64::MAX)` gets its last record index.
    fn update_stream(
        &self,
        key: &StreamKey,
        // `f` may refuse with [`StoreError::UpdateRefused`]; nothing is then written.
        f: &mut dyn FnMut(&mut StreamMeta) -> Result<(), StoreError>,
    ) -> Result<Durable<()>, StoreError>;
    fn append_records(
        &self,
        key: &StreamKey,
        records: Vec<NewRecord>,
    ) -> Result<Durable<Vec<AppendedRecord>>, StoreError>;
    fn shard_next_seq_ix(&self, shard_uid: i64) -> u64;
    fn shard_seq_ix_at(&self, shard_uid: i64, at_ms: u64) -> Result<u64, StoreError>;
    fn read_records(
        &self,
        meta: &StreamMeta,
        shard_uid: i64,
        from_seq_ix: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ReadResult, StoreError>;
    fn trim_streams(&self) -> Result<Durable<u64>, StoreError>;
    /// Notified after records of the shard are committed.
    fn shard_signal(&self, shard_uid: i64) -> Arc<Notify>;
    fn iterator_secret(&self) -> Result<Vec<u8>, StoreError>;
}

fn stream_op(meta: &StreamMeta) -> Result<SqlOp, StoreError> {
    Ok(SqlOp::UpsertStream { id: meta.id, record: serde_json::to_string(meta).map_err(internal)? })
}

impl StreamStore for EmbeddedStore {
    fn create_stream(&self, mut meta: StreamMeta, shard_count: u32) -> Result<Durable<bool>, StoreError> {
        let mut reg = self.stream_registry();
        if reg.streams.contains_key(&meta.key()) {
            return Ok(Durable::ready(false));
        }
        meta.id = reg.next_stream_id;
        reg.next_stream_id += 1;
        meta.shards = even_ranges(shard_count)
            .into_iter()
            .enumerate()
            .map(|(i, (start, end))| {
                let uid = reg.next_shard_uid;
                reg.next_shard_uid += 1;
                ShardMeta {
                    uid,
                    index: i as u32,
                    start_hash: start.to_string(),
                    end_hash: end.to_string(),
                    parent: None,
                    adjacent_parent: None,
                    created_ms: meta.created_ms,
                    ending_seq_ix: None,
                    closed_empty: false,
                    ending_arrival_ms: None,
                }
            })
            .collect();
        meta.next_shard_index = shard_count;
        for s in &meta.shards {
            reg.shards.insert(s.uid, ShardRuntime::default());
        }
        let op = stream_op(&meta)?;
        let (key, id, uids) = (meta.key(), meta.id, meta.shards.iter().map(|s| s.uid).collect::<Vec<_>>());
        reg.streams.insert(meta.key(), meta);
        // A stream that was not written is not served (a retry creates it).
        let undo = undo_in(&self.streams, move |reg| {
            if reg.streams.get(&key).is_some_and(|m| m.id == id) {
                reg.streams.remove(&key);
                for uid in uids {
                    reg.shards.remove(&uid);
                }
            }
        });
        self.commit_or_undo(true, vec![op], None, undo)
    }

    fn stream(&self, key: &StreamKey) -> Option<StreamMeta> {
        self.stream_registry().streams.get(key).cloned()
    }

    fn streams(&self, account: &str, region: &str) -> Vec<StreamMeta> {
        self.stream_registry()
            .streams
            .values()
            .filter(|s| s.account == account && s.region == region)
            .cloned()
            .collect()
    }

    fn stream_by_id(&self, id: i64) -> Option<StreamMeta> {
        self.stream_registry().streams.values().find(|s| s.id == id).cloned()
    }

    fn delete_stream(&self, key: &StreamKey) -> Result<Durable<()>, StoreError> {
        let mut reg = self.stream_registry();
        let meta = reg.streams.remove(key).ok_or(StoreError::ResourceNotFound)?;
        let shard_uids: Vec<i64> = meta.shards.iter().map(|s| s.uid).collect();
        let runtimes: Vec<(i64, ShardRuntime)> =
            shard_uids.iter().filter_map(|uid| reg.shards.remove(uid).map(|r| (*uid, r))).collect();
        let op = SqlOp::DeleteStream { id: meta.id, shard_uids };
        // Not written: the stream and its records are still on disk, so still served, with
        // each shard's next record index kept.
        let key = key.clone();
        let undo = undo_in(&self.streams, move |reg| {
            if reg.streams.contains_key(&key) {
                return;
            }
            reg.streams.insert(key, meta);
            reg.shards.extend(runtimes);
        });
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn update_stream(
        &self,
        key: &StreamKey,
        f: &mut dyn FnMut(&mut StreamMeta) -> Result<(), StoreError>,
    ) -> Result<Durable<()>, StoreError> {
        let mut reg = self.stream_registry();
        let mut meta = reg.streams.get(key).cloned().ok_or(StoreError::ResourceNotFound)?;
        f(&mut meta)?;
        for i in 0..meta.shards.len() {
            if meta.shards[i].uid == 0 {
                meta.shards[i].uid = reg.next_shard_uid;
                reg.next_shard_uid += 1;
                reg.shards.insert(meta.shards[i].uid, ShardRuntime::default());
            }
            if meta.shards[i].ending_seq_ix == Some(u64::MAX) {
                let runtime = reg.shards.get(&meta.shards[i].uid);
                let next = runtime.map(|r| r.next_seq_ix).unwrap_or(FIRST_SEQ_IX);
                meta.shards[i].ending_arrival_ms = runtime.and_then(|r| r.latest_arrival_ms);
                if next == FIRST_SEQ_IX {
                    meta.shards[i].ending_seq_ix = None;
                    meta.shards[i].closed_empty = true;
                } else {
                    meta.shards[i].ending_seq_ix = Some(next - 1);
                }
            }
        }
        let op = stream_op(&meta)?;
        let before = reg.streams.insert(key.clone(), meta.clone());
        // Not written: the stream keeps its stored metadata (shards a failed reshard
        // created stay unused in the runtime map).
        let key = key.clone();
        let undo = undo_in(&self.streams, move |reg| {
            if let (Some(before), true) = (before, reg.streams.get(&key) == Some(&meta)) {
                reg.streams.insert(key, before);
            }
        });
        // Submitted under the registry lock, so that stream writes and appends commit in order.
        self.commit_or_undo((), vec![op], None, undo)
    }

    /// Every target shard must be open. Record indices are assigned and submitted under
    /// the registry lock, so each shard's records commit in index order.
    fn append_records(
        &self,
        key: &StreamKey,
        records: Vec<NewRecord>,
    ) -> Result<Durable<Vec<AppendedRecord>>, StoreError> {
        let now = self.clock.now_ms();
        let mut reg = self.stream_registry();
        let meta = reg.streams.get(key).cloned().ok_or(StoreError::ResourceNotFound)?;
        // StartStreamEncryption turns sealing on for records written from then on.
        let sealed = meta.encryption_type == "KMS";
        let mut out = Vec::with_capacity(records.len());
        let mut signals: Vec<Arc<Notify>> = Vec::new();
        // One chunk per shard written: its records have consecutive indexes, and one
        // ShardAppended op each instead of bookkeeping per record.
        let mut chunks: Vec<RecordChunk> = Vec::new();
        for r in records {
            let shard = meta
                .shards
                .iter()
                .find(|s| s.index == r.shard_index && s.is_open())
                .ok_or_else(|| StoreError::Internal(format!("shard {} is not open", r.shard_index)))?;
            let runtime = reg.shards.entry(shard.uid).or_default();
            let seq_ix = runtime.next_seq_ix;
            runtime.next_seq_ix += 1;
            runtime.latest_arrival_ms = Some(now);
            if !signals.iter().any(|s| Arc::ptr_eq(s, &runtime.signal)) {
                signals.push(runtime.signal.clone());
            }
            out.push(AppendedRecord {
                shard_id: shard.shard_id(),
                sequence_number: shard.sequence_number(seq_ix, now),
            });
            let data = if sealed { self.sealer.seal_vec(r.data) } else { r.data };
            match chunks.iter_mut().find(|c| c.owner == shard.uid) {
                Some(chunk) => chunk.records.push((r.partition_key, data)),
                None => chunks.push(RecordChunk {
                    kind: ChunkKind::KinesisShard,
                    owner: shard.uid,
                    first_index: seq_ix,
                    arrival_ms: now,
                    sealed,
                    records: vec![(r.partition_key, data)],
                }),
            }
        }
        let mut ops = Vec::with_capacity(chunks.len() * 2);
        for chunk in chunks {
            ops.push(SqlOp::ShardAppended {
                shard_uid: chunk.owner,
                next_seq_ix: (chunk.first_index + chunk.records.len() as u64) as i64,
                second: (now / 1000) as i64,
                first_seq_ix: chunk.first_index as i64,
            });
            ops.push(SqlOp::AppendChunk(Box::new(chunk)));
        }
        let hook: crate::db::CommitHook = Box::new(move || signals.iter().for_each(|s| s.notify_waiters()));
        // A failed append leaves a gap in the shard's record indexes: readers skip it and
        // sequence numbers stay increasing, so nothing needs undoing.
        self.commit(out, ops, Some(hook))
    }

    /// The index the next record of `shard_uid` will get (LATEST).
    fn shard_next_seq_ix(&self, shard_uid: i64) -> u64 {
        self.stream_registry().shards.get(&shard_uid).map(|r| r.next_seq_ix).unwrap_or(FIRST_SEQ_IX)
    }

    /// The first record index at or after `at_ms` (AT_TIMESTAMP), via the per-second table.
    fn shard_seq_ix_at(&self, shard_uid: i64, at_ms: u64) -> Result<u64, StoreError> {
        let next = self.shard_next_seq_ix(shard_uid);
        self.db.read(|conn| {
            let from: Option<i64> = conn.query_row(
                "SELECT min(first_seq_ix) FROM record_times WHERE shard_uid=?1 AND second>=?2",
                params![shard_uid, (at_ms / 1000) as i64],
                |r| r.get(0),
            )?;
            let Some(from) = from else { return Ok(next) };
            // `from` starts a chunk (it is the first index of an append), and a chunk's
            // records share one arrival time.
            let exact: Option<i64> = conn.query_row(
                "SELECT min(first_seq_ix) FROM record_chunks WHERE shard_uid=?1 AND first_seq_ix>=?2 AND arrival_ms>=?3",
                params![shard_uid, from, at_ms as i64],
                |r| r.get(0),
            )?;
            Ok(exact.map(|v| v as u64).unwrap_or(next))
        })
    }

    /// Reads up to `limit` records (and about `max_bytes`) from `from_seq_ix`.
    fn read_records(
        &self,
        meta: &StreamMeta,
        shard_uid: i64,
        from_seq_ix: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ReadResult, StoreError> {
        let shard = meta.shards.iter().find(|s| s.uid == shard_uid).ok_or(StoreError::ResourceNotFound)?.clone();
        let (next_seq_ix, latest) = {
            let reg = self.stream_registry();
            let rt = reg.shards.get(&shard_uid);
            (rt.map(|r| r.next_seq_ix).unwrap_or(FIRST_SEQ_IX), rt.and_then(|r| r.latest_arrival_ms))
        };
        let log = &self.db.record_log;
        let read = || -> Result<Option<Vec<StreamRecord>>, StoreError> {
            self.db.read(|conn| {
                // The chunk holding `from_seq_ix` (or the first after it), and those that follow.
                let mut stmt = conn.prepare_cached(
                    "SELECT first_seq_ix, count, segment, position, length FROM record_chunks \
                     WHERE shard_uid=?1 AND first_seq_ix < ?3 AND first_seq_ix >= \
                     coalesce((SELECT max(first_seq_ix) FROM record_chunks WHERE shard_uid=?1 AND first_seq_ix<=?2), 0) \
                     ORDER BY first_seq_ix",
                )?;
                let mut rows = stmt.query(params![shard_uid, from_seq_ix as i64, next_seq_ix as i64])?;
                let mut out = Vec::new();
                if limit == 0 {
                    return Ok(Some(out));
                }
                let mut bytes = 0;
                'chunks: while let Some(r) = rows.next()? {
                    let Some((first, chunk)) = log.chunk_of_row(r, ChunkKind::KinesisShard, shard_uid)? else {
                        // Its segment went after this snapshot was taken: read again.
                        return Ok(None);
                    };
                    let skip = from_seq_ix.max(first) - chunk.first_index;
                    for (i, (partition_key, data)) in chunk.records.into_iter().enumerate().skip(skip as usize) {
                        let seq_ix = chunk.first_index + i as u64;
                        let data = if chunk.sealed {
                            self.sealer.open(data).map_err(crate::at_rest::read_failure)?
                        } else {
                            data
                        };
                        bytes += data.len();
                        out.push(StreamRecord {
                            seq_ix,
                            sequence_number: shard.sequence_number(seq_ix, chunk.arrival_ms),
                            arrival_ms: chunk.arrival_ms,
                            partition_key,
                            data,
                        });
                        if bytes >= max_bytes || out.len() >= limit {
                            break 'chunks;
                        }
                    }
                }
                Ok(Some(out))
            })
        };
        let records = read_fresh(read)?;
        let next = records.last().map(|r| r.seq_ix + 1).unwrap_or(from_seq_ix);
        let shard_ended = match (shard.ending_seq_ix, shard.closed_empty) {
            (Some(end), _) => next > end,
            (None, true) => true,
            _ => false,
        };
        Ok(ReadResult { records, next_seq_ix: next, shard_ended, latest_arrival_ms: latest })
    }

    /// Deletes records past each stream's retention period.
    fn trim_streams(&self) -> Result<Durable<u64>, StoreError> {
        let now = self.clock.now_ms();
        let shards: Vec<(i64, u64)> = self
            .stream_registry()
            .streams
            .values()
            .flat_map(|m| {
                let cutoff = now.saturating_sub(u64::from(m.retention_hours) * 3_600_000);
                m.shards.iter().map(move |s| (s.uid, cutoff)).collect::<Vec<_>>()
            })
            .collect();
        let mut ops = Vec::new();
        for (uid, cutoff) in shards {
            let next = self.shard_next_seq_ix(uid);
            let boundary: Option<i64> = self.db.read(|conn| {
                let oldest: Option<i64> =
                    conn.query_row("SELECT min(second) FROM record_times WHERE shard_uid=?1", params![uid], |r| {
                        r.get(0)
                    })?;
                if oldest.is_none_or(|o| o >= (cutoff / 1000) as i64) {
                    return Ok(None);
                }
                let keep_from: Option<i64> = conn.query_row(
                    "SELECT min(first_seq_ix) FROM record_times WHERE shard_uid=?1 AND second>=?2",
                    params![uid, (cutoff / 1000) as i64],
                    |r| r.get(0),
                )?;
                Ok(Some(keep_from.unwrap_or(next as i64)))
            })?;
            if let Some(below) = boundary {
                ops.push(SqlOp::TrimRecords { shard_uid: uid, below_seq_ix: below });
            }
        }
        if ops.is_empty() {
            return Ok(Durable::ready(0));
        }
        let n = ops.len() as u64;
        self.commit(n, ops, None)
    }

    fn shard_signal(&self, shard_uid: i64) -> Arc<Notify> {
        self.stream_registry().shards.entry(shard_uid).or_default().signal.clone()
    }

    /// A secret for shard iterator MACs, created once per data directory.
    fn iterator_secret(&self) -> Result<Vec<u8>, StoreError> {
        // Held until the secret is cached: two first callers racing would each create
        // one, and iterators signed with the one not kept would be refused as invalid
        // (seen as one InvalidArgumentException in a kinesis-get run).
        let mut cached = self.secret.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.clone() {
            return Ok(s);
        }
        let existing: Option<String> = self
            .db
            .read(|conn| {
                conn.query_row("SELECT value FROM meta WHERE key='iterator_secret'", [], |r| r.get(0)).or_else(|e| {
                    match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(String::new()),
                        e => Err(e),
                    }
                })
            })
            .map(|v: String| if v.is_empty() { None } else { Some(v) })?;
        let secret = match existing {
            Some(hex) => hex.into_bytes(),
            None => {
                let value: String = (0..4).map(|_| format!("{:016x}", rand::random::<u64>())).collect();
                let d = self.commit((), vec![SqlOp::SetMeta { key: "iterator_secret", value: value.clone() }], None)?;
                drop(d);
                value.into_bytes()
            }
        };
        *cached = Some(secret.clone());
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent first requests for the iterator secret all get the same one.
    #[test]
    fn racing_first_callers_share_one_iterator_secret() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let options = crate::EmbeddedOptions::for_tests(dir.path());
            let clock = Arc::new(crate::ManualClock::new(0)) as Arc<dyn crate::Clock>;
            let store = Arc::new(EmbeddedStore::open(options, clock).unwrap());
            let start = Arc::new(std::sync::Barrier::new(8));
            let callers: Vec<_> = (0..8)
                .map(|_| {
                    let (store, start) = (store.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        store.iterator_secret().unwrap()
                    })
                })
                .collect();
            let secrets: std::collections::HashSet<Vec<u8>> = callers.into_iter().map(|c| c.join().unwrap()).collect();
            assert_eq!(secrets.len(), 1, "one secret for everyone");
        }
    }

    #[test]
    fn hash_ranges_cover_the_key_space_without_gaps() {
        for n in [1u32, 2, 3, 4, 7, 500] {
            let r = even_ranges(n);
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].0, 0);
            assert_eq!(r.last().unwrap().1, u128::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0, "n={n}");
            }
        }
        assert_eq!(even_ranges(2)[1].0, 1u128 << 127);
    }

    #[test]
    fn stream_arns_parse_with_and_without_consumers() {
        let k = StreamKey::from_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/clicks").unwrap();
        assert_eq!((k.region.as_str(), k.account.as_str(), k.name.as_str()), ("eu-west-1", "123456789012", "clicks"));
        assert_eq!(k.arn(), "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks");
        let c = StreamKey::from_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/clicks/consumer/app:1700000000")
            .unwrap();
        assert_eq!(c, k);
        assert!(StreamKey::from_arn("arn:aws:sqs:eu-west-1:1:q").is_none());
    }
}
