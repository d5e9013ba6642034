//! Kinesis records and Firehose buffers in append-only segment files beside the database.
//!
//! Records used to be SQLite rows: every byte went to the WAL and then again into the
//! database file at checkpoint, and `kinesis-put` was bound by that double write. Now the
//! writer appends a group commit's records to the head segment with one write and one
//! `fdatasync`, then commits, in the same SQLite transaction as everything else, one row
//! per owner (shard or delivery stream) and append saying where the bytes are
//! (`record_chunks`, `firehose_chunks`).
//!
//! SQLite stays the source of truth: bytes past the last committed chunk (a crash between
//! the two syncs, a failed transaction, a torn write) are referenced by nothing, are cut
//! off at the next start and overwritten by the next append before that. A segment goes
//! away whole once retention, delivery or deletion has removed every chunk in it.

use crate::le_bytes::Reader;
use crate::store::StoreError;
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A segment is closed once an append would take it past this size. Big enough that
/// rotation (a file creation and a directory fsync) is rare; small enough that retention
/// frees space in steps that matter on a small disk.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Live chunk bytes a compaction pass copies at most: a pass is one group commit, and
/// every write queued behind it waits for the copy.
pub const COMPACTION_STEP_BYTES: u64 = 4 * 1024 * 1024;

const SEGMENT_PREFIX: &str = "records.";
const SEGMENT_SUFFIX: &str = ".seg";

/// Bytes before a chunk's payload: payload length and CRC-32 of the payload.
const HEADER_LEN: usize = 8;

/// Whose records a chunk holds; each kind has its table of chunk rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// A Kinesis shard's records (`record_chunks`); the owner is the shard's uid.
    KinesisShard = 1,
    /// A Firehose delivery stream's buffer (`firehose_chunks`); the owner is its id.
    FirehoseBuffer = 2,
}

/// One append's records of one owner: consecutive indexes from `first_index`, one
/// arrival time, sealed or not as the stream was when they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChunk {
    pub kind: ChunkKind,
    pub owner: i64,
    pub first_index: u64,
    pub arrival_ms: u64,
    pub sealed: bool,
    /// (partition key, data); data already sealed when `sealed`.
    pub records: Vec<(String, Vec<u8>)>,
}

impl RecordChunk {
    /// Whether this is the chunk a row names: its kind and owner, and records from
    /// `first` (a row may start after the chunk's first record: those were delivered)
    /// to the chunk's end.
    pub fn holds(&self, kind: ChunkKind, owner: i64, first: u64, count: u64) -> bool {
        let end = self.first_index + self.records.len() as u64;
        self.kind == kind && self.owner == owner && self.first_index <= first && first + count == end
    }
}

/// Where a committed chunk's bytes are, as its row stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlace {
    pub segment: u32,
    pub offset: u64,
    pub length: u64,
}

/// Appends `chunk` to `out` as `len u32 | crc32 u32 | payload`. The payload names its
/// kind, owner, first index, arrival and sealing as well, so that a chunk can be checked
/// against its row and the log can be read without the database.
pub fn encode_chunk(chunk: &RecordChunk, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(chunk.kind as u8);
    out.extend_from_slice(&chunk.owner.to_le_bytes());
    out.extend_from_slice(&chunk.first_index.to_le_bytes());
    out.extend_from_slice(&chunk.arrival_ms.to_le_bytes());
    out.push(u8::from(chunk.sealed));
    out.extend_from_slice(&(chunk.records.len() as u32).to_le_bytes());
    for (key, data) in &chunk.records {
        // Partition keys are at most 256 characters, so at most 1,024 bytes.
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    let payload_len = (out.len() - start - HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes one chunk written by [`encode_chunk`], refusing a wrong length or checksum.
pub fn decode_chunk(bytes: &[u8]) -> Result<RecordChunk, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("record log: {what}"));
    let mut r = Reader::new(bytes);
    let len = r.u32().ok_or_else(|| corrupt("short chunk header"))? as usize;
    let crc = r.u32().ok_or_else(|| corrupt("short chunk header"))?;
    let payload = bytes.get(HEADER_LEN..).filter(|p| p.len() == len).ok_or_else(|| corrupt("chunk length"))?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("chunk checksum mismatch"));
    }
    let mut r = Reader::new(payload);
    let mut decode = || -> Option<RecordChunk> {
        let kind = match r.take(1)?[0] {
            1 => ChunkKind::KinesisShard,
            2 => ChunkKind::FirehoseBuffer,
            _ => return None,
        };
        let owner = r.u64()? as i64;
        let first_index = r.u64()?;
        let arrival_ms = r.u64()?;
        let sealed = r.take(1)?[0] != 0;
        let count = r.u32()? as usize;
        let mut records = Vec::with_capacity(count.min(payload.len()));
        for _ in 0..count {
            let key_len = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
            let key = String::from_utf8(r.take(key_len)?.to_vec()).ok()?;
            let data_len = r.u32()? as usize;
            records.push((key, r.take(data_len)?.to_vec()));
        }
        (r.at == payload.len()).then_some(RecordChunk { kind, owner, first_index, arrival_ms, sealed, records })
    };
    decode().ok_or_else(|| corrupt("malformed chunk"))
}

/// Runs `read` until it completes on a snapshot whose segments all exist. A read that met
/// a segment removed after its snapshot was taken returns `None`; a fresh snapshot no
/// longer names that segment (its rows were deleted or moved by the commit before the
/// removal), so the second attempt succeeds unless compaction moved on again.
pub(crate) fn read_fresh<T>(mut read: impl FnMut() -> Result<Option<T>, StoreError>) -> Result<T, StoreError> {
    for _ in 0..8 {
        if let Some(value) = read()? {
            return Ok(value);
        }
    }
    Err(internal("segments kept disappearing under a read"))
}

/// A committed chunk to copy to the head of the log: the writer appends `bytes` and moves
/// the chunk's row from `from` to the copy, if the row is still there.
#[derive(Debug, Clone)]
pub struct Relocation {
    pub kind: ChunkKind,
    pub from: ChunkPlace,
    pub bytes: Vec<u8>,
}

/// An append written (and synced) but not yet committed: it counts only once the
/// transaction naming it has committed ([`RecordLog::committed`]).
#[derive(Debug, Clone, Copy)]
pub struct PendingAppend {
    pub segment: u32,
    pub offset: u64,
    pub length: u64,
}

struct Head {
    segment: u32,
    /// `None` until the head segment's file exists.
    file: Option<File>,
    /// End of the last committed chunk: the next append goes here.
    end: u64,
    /// Committed bytes per live segment (the head included), for the size limit.
    sizes: BTreeMap<u32, u64>,
}

pub struct RecordLog {
    dir: PathBuf,
    durable: bool,
    /// Where a segment ends (`--record-segment-mib`; tests use small ones).
    segment_bytes: u64,
    head: Mutex<Head>,
    /// Read handles, shared by GetRecords calls.
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{segment:08}{SEGMENT_SUFFIX}"))
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("record log: {e}"))
}

/// `aggregate` (an SQL aggregate over `log_chunks`) for each segment some chunk names.
fn per_segment(conn: &Connection, aggregate: &str) -> Result<BTreeMap<u32, u64>, StoreError> {
    let sql = format!("SELECT segment, {aggregate} FROM log_chunks GROUP BY segment");
    let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?))).map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

/// Makes a directory's entries (a new or removed file's name) survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates (or empties) a log segment file in `dir` and syncs the directory: the name
/// must survive a crash before anything in the file is acknowledged.
pub(crate) fn create_segment(dir: &Path, path: &Path) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    sync_dir(dir)?;
    Ok(file)
}

impl RecordLog {
    /// Opens the log in `dir` (the data directory) against the committed chunk rows in
    /// `conn`: refuses a segment that lost committed bytes, cuts uncommitted bytes off
    /// the head and removes segments no chunk refers to.
    pub fn open(dir: &Path, conn: &Connection, durable: bool, segment_bytes: u64) -> Result<RecordLog, StoreError> {
        let committed = per_segment(conn, "max(position + length)")?;
        let mut on_disk: BTreeMap<u32, u64> = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(internal)? {
            let entry = entry.map_err(internal)?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix(SEGMENT_PREFIX))
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            on_disk.insert(number, entry.metadata().map_err(internal)?.len());
        }
        for (segment, end) in &committed {
            match on_disk.get(segment) {
                Some(len) if len >= end => {}
                Some(len) => {
                    return Err(StoreError::Corrupt(format!(
                        "record log segment {segment} holds {len} bytes, committed records reach {end}"
                    )))
                }
                None => return Err(StoreError::Corrupt(format!("record log segment {segment} is missing"))),
            }
        }
        let head_segment = on_disk.keys().chain(committed.keys()).max().copied().unwrap_or(1);
        for segment in on_disk.keys().filter(|s| **s != head_segment && !committed.contains_key(s)) {
            std::fs::remove_file(segment_path(dir, *segment)).map_err(internal)?;
        }
        let end = committed.get(&head_segment).copied().unwrap_or(0);
        // Created at the first append: a data directory that holds no records has no
        // segment, and its start pays for no file creation and directory sync.
        let file = if on_disk.contains_key(&head_segment) {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(segment_path(dir, head_segment))
                .map_err(internal)?;
            // What lies past the committed end was never acknowledged.
            if file.metadata().map_err(internal)?.len() > end {
                file.set_len(end).map_err(internal)?;
            }
            Some(file)
        } else {
            None
        };
        let mut sizes = committed;
        sizes.insert(head_segment, end);
        Ok(RecordLog {
            dir: dir.to_owned(),
            durable,
            segment_bytes,
            head: Mutex::new(Head { segment: head_segment, file, end, sizes }),
            readers: Mutex::new(HashMap::new()),
        })
    }

    fn head(&self) -> MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `bytes` (whole chunks) at the head and syncs them. Nothing is committed:
    /// until [`RecordLog::committed`], the next append writes over them.
    pub fn append(&self, bytes: &[u8]) -> Result<PendingAppend, StoreError> {
        let mut head = self.head();
        let length = bytes.len() as u64;
        if head.end > 0 && head.end + length > self.segment_bytes {
            let next = head.segment + 1;
            head.file = None;
            head.segment = next;
            head.end = 0;
            head.sizes.insert(next, 0);
        }
        let file = match head.file.take() {
            Some(file) => file,
            None => create_segment(&self.dir, &segment_path(&self.dir, head.segment)).map_err(internal)?,
        };
        let (segment, offset) = (head.segment, head.end);
        let file = head.file.insert(file);
        file.write_all_at(bytes, offset).map_err(internal)?;
        if self.durable {
            file.sync_data().map_err(internal)?;
        }
        Ok(PendingAppend { segment, offset, length })
    }

    /// Committed bytes in every segment, for the writer's size limit (`--max-data-mib`).
    pub fn bytes(&self) -> u64 {
        self.head().sizes.values().sum()
    }

    /// The transaction naming `append`'s chunks has committed.
    pub fn committed(&self, append: PendingAppend) {
        let mut head = self.head();
        if head.segment == append.segment {
            let end = append.offset + append.length;
            head.end = end;
            head.sizes.insert(append.segment, end);
        }
    }

    /// Deletes the segments, other than the head, that no chunk refers to any more.
    pub fn remove_unreferenced(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut head = self.head();
        let head_segment = head.segment;
        let candidates: Vec<u32> = head.sizes.keys().copied().filter(|s| *s != head_segment).collect();
        for segment in candidates {
            let referenced: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM log_chunks WHERE segment=?1)")
                .and_then(|mut s| s.query_row(params![segment], |r| r.get(0)))
                .map_err(internal)?;
            if !referenced {
                match std::fs::remove_file(segment_path(&self.dir, segment)) {
                    // A segment whose file was never created (a failed rotation) is gone too.
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(internal(e)),
                    _ => {}
                }
                head.sizes.remove(&segment);
                self.readers.lock().unwrap_or_else(|p| p.into_inner()).remove(&segment);
            }
        }
        Ok(())
    }

    /// A committed chunk, or `None` when its segment has been removed since the caller's
    /// snapshot (retention, delivery or compaction got there first): the caller reads
    /// again with a fresh snapshot, which no longer names that segment.
    pub fn read(&self, place: ChunkPlace) -> Result<Option<RecordChunk>, StoreError> {
        match self.read_bytes(place)? {
            Some(bytes) => decode_chunk(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The chunk a row names, checked against it. The row's first columns are (first
    /// index, count, segment, position, length), as both chunk tables are read. `None`
    /// when the segment went after the row's snapshot was taken (see [`read_fresh`]).
    pub(crate) fn chunk_of_row(
        &self,
        row: &rusqlite::Row<'_>,
        kind: ChunkKind,
        owner: i64,
    ) -> rusqlite::Result<Option<(u64, RecordChunk)>> {
        let first = row.get::<_, i64>(0)? as u64;
        let count = row.get::<_, i64>(1)? as u64;
        let place = ChunkPlace {
            segment: row.get(2)?,
            offset: row.get::<_, i64>(3)? as u64,
            length: row.get::<_, i64>(4)? as u64,
        };
        let Some(chunk) = self.read(place).map_err(crate::at_rest::read_failure)? else { return Ok(None) };
        if !chunk.holds(kind, owner, first, count) {
            return Err(crate::at_rest::read_failure(StoreError::Corrupt(format!(
                "record log chunk at segment {} offset {} holds {:?} {} from {}; its row names {kind:?} {owner} from {first}",
                place.segment, place.offset, chunk.kind, chunk.owner, chunk.first_index
            ))));
        }
        Ok(Some((first, chunk)))
    }

    /// A committed chunk's bytes as written (header included), unchecked.
    fn read_bytes(&self, place: ChunkPlace) -> Result<Option<Vec<u8>>, StoreError> {
        let file = {
            let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            match readers.get(&place.segment) {
                Some(f) => f.clone(),
                None => match File::open(segment_path(&self.dir, place.segment)) {
                    Ok(f) => readers.entry(place.segment).or_insert(Arc::new(f)).clone(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(internal(e)),
                },
            }
        };
        let mut bytes = vec![0; place.length as usize];
        file.read_exact_at(&mut bytes, place.offset).map_err(internal)?;
        Ok(Some(bytes))
    }

    /// The next compaction step: up to [`COMPACTION_STEP_BYTES`] of the live chunks of the
    /// emptiest segment that is less than half live (streams with different retention
    /// share segments, so one long-lived chunk would otherwise keep a whole segment), each
    /// checked and ready to append at the head. Empty when no segment needs it.
    pub fn compaction_step(&self, conn: &Connection) -> Result<Vec<Relocation>, StoreError> {
        let sizes: BTreeMap<u32, u64> = {
            let head = self.head();
            head.sizes.iter().filter(|(s, _)| **s != head.segment).map(|(s, b)| (*s, *b)).collect()
        };
        if sizes.is_empty() {
            return Ok(Vec::new());
        }
        let live = per_segment(conn, "sum(length)")?;
        // Live share in thousandths, emptiest first.
        let candidate = sizes
            .iter()
            .filter_map(|(segment, size)| {
                let live = live.get(segment).copied().unwrap_or(0);
                (*size > 0 && live * 2 < *size).then_some((live * 1000 / size, *segment))
            })
            .min();
        let Some((_, segment)) = candidate else { return Ok(Vec::new()) };
        let mut stmt = conn
            .prepare_cached("SELECT position, length FROM log_chunks WHERE segment=?1 ORDER BY position")
            .map_err(internal)?;
        let rows =
            stmt.query_map(params![segment], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?))).map_err(internal)?;
        let mut out = Vec::new();
        let mut step = 0;
        for row in rows {
            let (offset, length) = row.map_err(internal)?;
            if step > 0 && step + length > COMPACTION_STEP_BYTES {
                break;
            }
            let from = ChunkPlace { segment, offset, length };
            let Some(bytes) = self.read_bytes(from)? else { break };
            // A damaged chunk is not spread further; reads of it keep failing. The chunk
            // names its kind, which says whose row follows the copy.
            let kind = decode_chunk(&bytes)?.kind;
            step += length;
            out.push(Relocation { kind, from, bytes });
        }
        Ok(out)
    }

    /// Live segments and their committed bytes (tests and diagnostics).
    pub fn segments(&self) -> Vec<(u32, u64)> {
        self.head().sizes.iter().map(|(s, b)| (*s, *b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(owner: i64, first: u64, n: usize) -> RecordChunk {
        RecordChunk {
            kind: if owner % 2 == 0 { ChunkKind::FirehoseBuffer } else { ChunkKind::KinesisShard },
            owner,
            first_index: first,
            arrival_ms: 1_700_000_000_123,
            sealed: first.is_multiple_of(2),
            records: (0..n).map(|i| (format!("key-{i}"), vec![i as u8; i * 7])).collect(),
        }
    }

    #[test]
    fn chunks_round_trip_and_any_damage_is_refused() {
        let mut firehose = Vec::new();
        encode_chunk(&chunk(4, 7, 2), &mut firehose);
        assert_eq!(decode_chunk(&firehose).unwrap(), chunk(4, 7, 2), "a Firehose chunk keeps its kind");
        let original = chunk(3, 41, 5);
        let mut bytes = Vec::new();
        encode_chunk(&original, &mut bytes);
        assert_eq!(decode_chunk(&bytes).unwrap(), original);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(matches!(decode_chunk(&damaged), Err(StoreError::Corrupt(_))), "flip at {at} went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(decode_chunk(&bytes[..len]).is_err(), "truncated to {len}");
        }
    }

    /// A database with the current schema in `dir`.
    fn fresh_database(dir: &Path) -> Connection {
        let conn = Connection::open(dir.join("sluice.db")).unwrap();
        crate::db::migrate(&conn).unwrap();
        conn
    }

    fn committed_chunk(log: &RecordLog, conn: &Connection, chunk: &RecordChunk) -> ChunkPlace {
        let mut bytes = Vec::new();
        encode_chunk(chunk, &mut bytes);
        let append = log.append(&bytes).unwrap();
        let place = ChunkPlace { segment: append.segment, offset: append.offset, length: append.length };
        crate::db::insert_chunk_row(conn, &crate::db::ChunkRow::of(chunk, place)).unwrap();
        log.committed(append);
        place
    }

    #[test]
    fn segments_rotate_and_go_once_no_chunk_refers_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let conn = fresh_database(dir.path());
        let log = RecordLog::open(dir.path(), &conn, true, 1000).unwrap();
        assert!(!segment_path(dir.path(), 1).exists(), "no segment file before the first record");
        let a = committed_chunk(&log, &conn, &chunk(1, 1, 12));
        let b = committed_chunk(&log, &conn, &chunk(1, 13, 12));
        assert!(a.length > 500 && b.length > 500, "two chunks do not fit one segment");
        assert_eq!((a.segment, b.segment), (1, 2), "the second append opened a new segment");
        assert_eq!(log.segments(), [(1, a.length), (2, b.length)]);

        conn.execute("DELETE FROM record_chunks WHERE first_seq_ix=1", []).unwrap();
        assert_eq!(log.segments().len(), 2, "not yet removed");
        log.remove_unreferenced(&conn).unwrap();
        assert!(!segment_path(dir.path(), 1).exists(), "nothing refers to segment 1");
        assert_eq!(log.segments(), [(2, b.length)]);
        assert_eq!(log.read(a).unwrap(), None, "a removed segment reads as trimmed");
        assert_eq!(log.read(b).unwrap().unwrap(), chunk(1, 13, 12));
        drop(log);

        let log = RecordLog::open(dir.path(), &conn, true, 1000).unwrap();
        assert_eq!(log.segments(), [(2, b.length)], "the head and its end survive a restart");
        let c = committed_chunk(&log, &conn, &chunk(1, 25, 1));
        assert_eq!((c.segment, c.offset), (2, b.length), "appends continue after the last chunk");
    }
}
