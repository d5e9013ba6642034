//! Firehose delivery streams in the embedded backend: configuration as one JSON document
//! per stream (opaque to the engine), and the buffer of accepted, undelivered records in
//! the record log with a `firehose_chunks` row per stream and append, so buffers survive
//! restarts and a 200 means the record is on disk.

use crate::db::{internal, SqlOp};
use crate::embedded::{undo_in, EmbeddedStore};
use crate::record_log::{read_fresh, ChunkKind, RecordChunk};
use crate::store::*;
use rusqlite::params;
use std::collections::{BTreeMap, HashMap};

/// A delivery stream: its id and its configuration document.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryStream {
    pub id: i64,
    pub account: String,
    pub region: String,
    pub name: String,
    pub config: serde_json::Value,
}

/// One buffered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffered {
    pub seq: i64,
    pub arrival_ms: u64,
    pub data: Vec<u8>,
}

/// Size and age of a stream's buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    pub records: u64,
    pub bytes: u64,
    pub oldest_arrival_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct BufferState {
    next_seq: i64,
    stats: BufferStats,
}

#[derive(Default)]
pub(crate) struct FirehoseRegistry {
    streams: BTreeMap<(String, String, String), DeliveryStream>,
    buffers: HashMap<i64, BufferState>,
    next_id: i64,
}

impl FirehoseRegistry {
    pub(crate) fn load(conn: &rusqlite::Connection) -> rusqlite::Result<FirehoseRegistry> {
        let mut reg = FirehoseRegistry { next_id: 1, ..Default::default() };
        let mut stmt = conn.prepare("SELECT id, record FROM delivery_streams")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, text) = row?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
            let stream = DeliveryStream {
                id,
                account: s("account"),
                region: s("region"),
                name: s("name"),
                config: v["config"].clone(),
            };
            reg.next_id = reg.next_id.max(id + 1);
            // Sizes are the records' own, without what sealing adds.
            let (count, bytes, oldest, max_seq): (i64, i64, Option<i64>, Option<i64>) = conn.query_row(
                "SELECT coalesce(sum(count),0), coalesce(sum(bytes),0), min(arrival_ms), max(first_seq+count-1) \
                 FROM firehose_chunks WHERE stream_id=?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            reg.buffers.insert(
                id,
                BufferState {
                    next_seq: max_seq.unwrap_or(0) + 1,
                    stats: BufferStats {
                        records: count as u64,
                        bytes: bytes as u64,
                        oldest_arrival_ms: oldest.map(|v| v as u64),
                    },
                },
            );
            reg.streams.insert((stream.account.clone(), stream.region.clone(), stream.name.clone()), stream);
        }
        Ok(reg)
    }
}

/// What Firehose needs from storage.
pub trait DeliveryStore: Send + Sync {
    /// Creates the stream; `None` if the name is taken.
    fn create_delivery_stream(
        &self,
        account: &str,
        region: &str,
        name: &str,
        config: serde_json::Value,
    ) -> Result<Option<Durable<DeliveryStream>>, StoreError>;
    fn delivery_stream(&self, account: &str, region: &str, name: &str) -> Option<DeliveryStream>;
    fn delivery_streams(&self) -> Vec<DeliveryStream>;
    fn delete_delivery_stream(&self, id: i64) -> Result<Durable<()>, StoreError>;
    /// Replaces the stream's configuration if `f` accepts the current one.
    fn update_delivery_stream(
        &self,
        id: i64,
        f: &mut dyn FnMut(&mut serde_json::Value) -> Result<(), StoreError>,
    ) -> Result<Durable<()>, StoreError>;
    /// Buffers records durably, optionally replacing the configuration in the same
    /// commit (a Kinesis source's checkpoint moves with the records it read).
    fn buffer_records(
        &self,
        id: i64,
        records: Vec<Vec<u8>>,
        config: Option<serde_json::Value>,
    ) -> Result<Durable<Vec<i64>>, StoreError>;
    fn buffer_stats(&self, id: i64) -> BufferStats;
    /// The oldest buffered records, up to about `max_bytes`.
    fn read_buffer(&self, id: i64, max_bytes: u64) -> Result<Vec<Buffered>, StoreError>;
    /// Forgets delivered records up to `max_seq`.
    fn remove_buffered(&self, id: i64, max_seq: i64, removed: &[Buffered]) -> Result<Durable<()>, StoreError>;
}

fn stream_op(s: &DeliveryStream) -> Result<SqlOp, StoreError> {
    let record = serde_json::json!({"account": s.account, "region": s.region, "name": s.name, "config": s.config});
    Ok(SqlOp::UpsertDeliveryStream { id: s.id, record: serde_json::to_string(&record).map_err(internal)? })
}

impl DeliveryStore for EmbeddedStore {
    fn create_delivery_stream(
        &self,
        account: &str,
        region: &str,
        name: &str,
        config: serde_json::Value,
    ) -> Result<Option<Durable<DeliveryStream>>, StoreError> {
        let mut reg = self.firehose_registry();
        let key = (account.to_owned(), region.to_owned(), name.to_owned());
        if reg.streams.contains_key(&key) {
            return Ok(None);
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let stream = DeliveryStream { id, account: account.into(), region: region.into(), name: name.into(), config };
        let op = stream_op(&stream)?;
        reg.streams.insert(key.clone(), stream.clone());
        reg.buffers.insert(id, BufferState { next_seq: 1, stats: BufferStats::default() });
        let undo = undo_in(&self.firehose, move |reg| {
            if reg.streams.get(&key).is_some_and(|s| s.id == id) {
                reg.streams.remove(&key);
                reg.buffers.remove(&id);
            }
        });
        self.commit_or_undo(stream, vec![op], None, undo).map(Some)
    }

    fn delivery_stream(&self, account: &str, region: &str, name: &str) -> Option<DeliveryStream> {
        self.firehose_registry().streams.get(&(account.to_owned(), region.to_owned(), name.to_owned())).cloned()
    }

    fn delivery_streams(&self) -> Vec<DeliveryStream> {
        self.firehose_registry().streams.values().cloned().collect()
    }

    fn delete_delivery_stream(&self, id: i64) -> Result<Durable<()>, StoreError> {
        let mut reg = self.firehose_registry();
        let removed: Vec<_> =
            reg.streams.iter().filter(|(_, s)| s.id == id).map(|(k, s)| (k.clone(), s.clone())).collect();
        reg.streams.retain(|_, s| s.id != id);
        let buffer = reg.buffers.remove(&id);
        // Not written: the delivery stream and its buffer are still on disk, so still served.
        let undo = undo_in(&self.firehose, move |reg| {
            for (key, stream) in removed {
                reg.streams.entry(key).or_insert(stream);
            }
            if let Some(b) = buffer {
                reg.buffers.entry(id).or_insert(b);
            }
        });
        self.commit_or_undo((), vec![SqlOp::DeleteDeliveryStream { id }], None, undo)
    }

    fn update_delivery_stream(
        &self,
        id: i64,
        f: &mut dyn FnMut(&mut serde_json::Value) -> Result<(), StoreError>,
    ) -> Result<Durable<()>, StoreError> {
        let mut reg = self.firehose_registry();
        let stream = reg.streams.values_mut().find(|s| s.id == id).ok_or(StoreError::ResourceNotFound)?;
        let mut config = stream.config.clone();
        f(&mut config)?;
        let before = std::mem::replace(&mut stream.config, config.clone());
        let op = stream_op(stream)?;
        let undo = undo_in(&self.firehose, move |reg| {
            if let Some(s) = reg.streams.values_mut().find(|s| s.id == id && s.config == config) {
                s.config = before;
            }
        });
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn buffer_records(
        &self,
        id: i64,
        records: Vec<Vec<u8>>,
        config: Option<serde_json::Value>,
    ) -> Result<Durable<Vec<i64>>, StoreError> {
        let now = self.clock.now_ms();
        let mut reg = self.firehose_registry();
        let mut ops = Vec::with_capacity(records.len() + 1);
        if let Some(config) = config {
            let stream = reg.streams.values_mut().find(|s| s.id == id).ok_or(StoreError::ResourceNotFound)?;
            stream.config = config;
            ops.push(stream_op(stream)?);
        }
        let sealed =
            reg.streams.values().find(|s| s.id == id).is_some_and(|s| s.config["encryption"]["Status"] == "ENABLED");
        let buffer = reg.buffers.get_mut(&id).ok_or(StoreError::ResourceNotFound)?;
        let mut seqs = Vec::with_capacity(records.len());
        let added_bytes: u64 = records.iter().map(|d| d.len() as u64).sum();
        let mut chunk = RecordChunk {
            kind: ChunkKind::FirehoseBuffer,
            owner: id,
            first_index: buffer.next_seq as u64,
            arrival_ms: now,
            sealed,
            records: Vec::with_capacity(records.len()),
        };
        for data in records {
            let seq = buffer.next_seq;
            buffer.next_seq += 1;
            buffer.stats.records += 1;
            buffer.stats.bytes += data.len() as u64;
            buffer.stats.oldest_arrival_ms.get_or_insert(now);
            seqs.push(seq);
            chunk.records.push((String::new(), if sealed { self.sealer.seal_vec(data) } else { data }));
        }
        if !chunk.records.is_empty() {
            ops.push(SqlOp::AppendChunk(Box::new(chunk)));
        }
        // Records that were not written do not count towards the buffer's size (their
        // sequence numbers stay unused, which readers never notice).
        let (count, bytes) = (seqs.len() as u64, added_bytes);
        let undo = undo_in(&self.firehose, move |reg| {
            if let Some(b) = reg.buffers.get_mut(&id) {
                b.stats.records = b.stats.records.saturating_sub(count);
                b.stats.bytes = b.stats.bytes.saturating_sub(bytes);
            }
        });
        self.commit_or_undo(seqs, ops, None, undo)
    }

    fn buffer_stats(&self, id: i64) -> BufferStats {
        self.firehose_registry().buffers.get(&id).map(|b| b.stats).unwrap_or_default()
    }

    fn read_buffer(&self, id: i64, max_bytes: u64) -> Result<Vec<Buffered>, StoreError> {
        let log = &self.db.record_log;
        read_fresh(|| {
            self.db.read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT first_seq, count, segment, position, length FROM firehose_chunks \
                     WHERE stream_id=?1 ORDER BY first_seq",
                )?;
                let mut rows = stmt.query(params![id])?;
                let mut out = Vec::new();
                let mut bytes = 0u64;
                while let Some(r) = rows.next()? {
                    let Some((first, chunk)) = log.chunk_of_row(r, ChunkKind::FirehoseBuffer, id)? else {
                        // Its segment went after this snapshot was taken: read again.
                        return Ok(None);
                    };
                    let skip = (first - chunk.first_index) as usize;
                    for (i, (_, data)) in chunk.records.into_iter().enumerate().skip(skip) {
                        let data = if chunk.sealed {
                            self.sealer.open(data).map_err(crate::at_rest::read_failure)?
                        } else {
                            data
                        };
                        if !out.is_empty() && bytes + data.len() as u64 > max_bytes {
                            return Ok(Some(out));
                        }
                        bytes += data.len() as u64;
                        out.push(Buffered {
                            seq: (chunk.first_index + i as u64) as i64,
                            arrival_ms: chunk.arrival_ms,
                            data,
                        });
                    }
                }
                Ok(Some(out))
            })
        })
    }

    fn remove_buffered(&self, id: i64, max_seq: i64, removed: &[Buffered]) -> Result<Durable<()>, StoreError> {
        let mut reg = self.firehose_registry();
        if let Some(b) = reg.buffers.get_mut(&id) {
            b.stats.records = b.stats.records.saturating_sub(removed.len() as u64);
            b.stats.bytes = b.stats.bytes.saturating_sub(removed.iter().map(|r| r.data.len() as u64).sum());
            b.stats.oldest_arrival_ms = None;
        }
        drop(reg);
        let oldest: Option<i64> = self
            .db
            .read(|conn| {
                conn.query_row(
                    "SELECT min(arrival_ms) FROM firehose_chunks WHERE stream_id=?1 AND first_seq+count-1>?2",
                    params![id, max_seq],
                    |r| r.get(0),
                )
            })
            .unwrap_or(None);
        let now = self.clock.now_ms();
        if let Some(b) = self.firehose_registry().buffers.get_mut(&id) {
            b.stats.oldest_arrival_ms = if b.stats.records == 0 {
                None
            } else {
                // Records counted but not yet committed (a put racing this flush) are not
                // in the table yet; they arrived just now, and without an age the buffer
                // would never become due.
                Some(oldest.map_or(now, |v| v as u64))
            };
        }
        let released = removed.iter().map(|r| (r.seq, r.data.len() as u64)).collect();
        self.commit((), vec![SqlOp::RemoveBuffered { stream_id: id, max_seq, released }], None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, EmbeddedOptions, ManualClock};
    use std::sync::Arc;

    fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> EmbeddedStore {
        EmbeddedStore::open(EmbeddedOptions::for_tests(dir), clock as Arc<dyn Clock>).unwrap()
    }

    /// A delivery can end inside one put's records (one chunk in the log): the rest stay
    /// buffered with their own size and order, before and after a restart, sealed or not.
    #[tokio::test]
    async fn a_delivery_that_ends_inside_a_put_keeps_the_rest_buffered() {
        for encryption in ["DISABLED", "ENABLED"] {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(1_000));
            let store = open(dir.path(), clock.clone());
            let config = serde_json::json!({"encryption": {"Status": encryption}});
            let stream = store.create_delivery_stream("000000000000", "us-east-1", "s", config).unwrap().unwrap();
            let id = stream.wait().await.unwrap().id;
            let records: Vec<Vec<u8>> = (1..=5).map(|i| vec![b'a' + i as u8; i * 10]).collect();
            store.buffer_records(id, records.clone(), None).unwrap().wait().await.unwrap();
            clock.advance_ms(100);
            store.buffer_records(id, vec![b"later".to_vec()], None).unwrap().wait().await.unwrap();

            let batch = store.read_buffer(id, 30).unwrap();
            assert_eq!(batch.iter().map(|b| b.data.clone()).collect::<Vec<_>>(), records[..2], "{encryption}");
            store.remove_buffered(id, batch[1].seq, &batch).unwrap().wait().await.unwrap();
            let expect = |store: &EmbeddedStore| {
                let left: Vec<Vec<u8>> = store.read_buffer(id, u64::MAX).unwrap().into_iter().map(|b| b.data).collect();
                let mut want = records[2..].to_vec();
                want.push(b"later".to_vec());
                assert_eq!(left, want, "{encryption}");
                let stats = store.buffer_stats(id);
                assert_eq!((stats.records, stats.bytes), (4, 30 + 40 + 50 + 5), "{encryption}");
                assert_eq!(stats.oldest_arrival_ms, Some(1_000), "{encryption}");
            };
            expect(&store);
            drop(store);
            let store = open(dir.path(), clock.clone());
            expect(&store);

            let rest = store.read_buffer(id, u64::MAX).unwrap();
            store.remove_buffered(id, rest.last().unwrap().seq, &rest).unwrap().wait().await.unwrap();
            assert_eq!(store.buffer_stats(id), BufferStats::default());
            let next = store.buffer_records(id, vec![b"next".to_vec()], None).unwrap().wait().await.unwrap();
            assert!(next[0] > rest.last().unwrap().seq, "indexes are not reused while the process runs");
        }
    }

    /// Releasing a delivered batch while a put is still committing must leave the buffer
    /// with an age, or it would never become due again.
    #[tokio::test]
    async fn buffer_keeps_an_age_when_a_put_races_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let store =
            EmbeddedStore::open(EmbeddedOptions::for_tests(dir.path()), clock.clone() as Arc<dyn Clock>).unwrap();
        let stream = store
            .create_delivery_stream("000000000000", "us-east-1", "s", serde_json::json!({}))
            .unwrap()
            .unwrap()
            .wait()
            .await
            .unwrap();
        store.buffer_records(stream.id, vec![b"first".to_vec()], None).unwrap().wait().await.unwrap();
        let batch = store.read_buffer(stream.id, u64::MAX).unwrap();
        clock.advance_ms(500);
        let racing = store.buffer_records(stream.id, vec![b"second".to_vec()], None).unwrap();
        store.remove_buffered(stream.id, batch[0].seq, &batch).unwrap().wait().await.unwrap();
        let stats = store.buffer_stats(stream.id);
        assert_eq!(stats.records, 1);
        assert_eq!(stats.oldest_arrival_ms, Some(1_500), "committed or not, the racing record has an age");
        racing.wait().await.unwrap();
        assert_eq!(store.read_buffer(stream.id, u64::MAX).unwrap()[0].data, b"second");
    }
}
