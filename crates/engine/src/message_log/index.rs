//! The message index: what the log says (live messages, deduplication entries, the
//! highest numbers handed out) as of a place in it, so that a start reads the index and
//! replays only the entries after that place.
//!
//! Written at a clean shutdown, from memory, at the log's end; and while the server runs,
//! each time [`CHECKPOINT_SEGMENTS`] segments' worth more have been appended, by merging the last index with
//! the entries after its place on a thread of its own (never the writer's), holding in
//! memory only what those entries say: a start after a crash then replays at most that
//! much of the log.
//!
//! An index stays usable while the segment holding its place exists: compaction removes
//! only the oldest segment, after copying its live messages to the head (after the
//! place), so replaying from the place re-points them; once compaction removes the
//! place's own segment, a start replays the whole log and the next checkpoint rebuilds
//! the index from it.

use super::*;
use crate::paced_write::PacedWriter;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};

const FILE: &str = "index.snap";
const MAGIC: &[u8] = b"sluice message index 2";

/// How many segments' worth of log may follow the index before a checkpoint writes a
/// new one. A start after a crash reads the index and replays up to this much (plus what
/// arrives while a checkpoint runs): with 64 MiB segments, 128 MiB replays in about
/// 0.15 s warm, beside about 0.6 s to read the index of a million messages, inside the
/// 1 s start target. A checkpoint costs a replay of this much plus a copy of the index,
/// on a thread beside the writer.
pub const CHECKPOINT_SEGMENTS: u64 = 2;

/// The least log (in bytes) a checkpoint waits for per byte of the last index. A
/// checkpoint rewrites the whole index (70 MiB for a million messages, whose log is
/// 1.3 GB): waiting for proportionally more log keeps that rewriting to a quarter of what
/// is appended. The start after a crash then replays at most four times the index's size
/// of log (about 0.3 s for a million messages' 280 MiB, beside 0.45 s to read their index).
const LOG_PER_INDEX_BYTE: u64 = 4;

/// Writes an index to `sink` as it is built: the header (with the number of messages,
/// known before the first is written), then messages, then deduplication entries and
/// the checksum. Streamed in pieces of [`STAGING_BYTES`] rather than built whole: a
/// checkpoint of a million messages held a 100 MB copy of the new index beside the old
/// one and the log after it. Messages go in the order their source lists them, not
/// sorted: a checkpoint's as the last index listed them, then the log's; a shutdown's
/// queue by queue, about as they were sent. A start adds them to a `MessageTable` in
/// that order, in which only the map of places is hashed (when the start's map held
/// whole messages, inserting a million sorted ones landed at random in 218 MB and took
/// 120–150 ms longer than in that map's own order).
struct IndexWriter<W: Write> {
    sink: W,
    staging: Vec<u8>,
    crc: crc32fast::Hasher,
    declared: u64,
    count: u64,
}

/// Bytes an [`IndexWriter`] gathers before handing them to its sink.
const STAGING_BYTES: usize = 64 * 1024;

impl<W: Write> IndexWriter<W> {
    fn new(sink: W, at: Position, max_seq: i64, max_queue_id: i64, messages: u64) -> IndexWriter<W> {
        let mut staging = Vec::with_capacity(2 * STAGING_BYTES);
        let mut w = Writer { out: &mut staging };
        w.bytes(MAGIC);
        w.u32(at.segment);
        w.u64(at.offset);
        w.i64(max_seq);
        w.i64(max_queue_id);
        w.u64(messages);
        IndexWriter { sink, staging, crc: crc32fast::Hasher::new(), declared: messages, count: 0 }
    }

    fn message(&mut self, seq: i64, m: &LiveMessage) -> std::io::Result<()> {
        let mut w = Writer { out: &mut self.staging };
        encode_state(&mut w, seq, &m.state);
        w.u64(m.sent_ms);
        w.u32(m.at.segment);
        w.u32(m.at.offset);
        w.u32(m.at.length);
        w.opt_str(m.group_id.as_deref());
        self.count += 1;
        self.spill()
    }

    /// A message as [`IndexReader::raw_message`] read it.
    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.staging.extend_from_slice(bytes);
        self.count += 1;
        self.spill()
    }

    fn spill(&mut self) -> std::io::Result<()> {
        if self.staging.len() >= STAGING_BYTES {
            self.crc.update(&self.staging);
            self.sink.write_all(&self.staging)?;
            self.staging.clear();
        }
        Ok(())
    }

    /// Ends the index; refused if it holds another number of messages than declared.
    fn finish<'a>(mut self, dedup: impl ExactSizeIterator<Item = &'a DedupRecord>) -> std::io::Result<W> {
        if self.count != self.declared {
            return Err(std::io::Error::other(format!(
                "index declared {} messages and holds {}",
                self.declared, self.count
            )));
        }
        let mut w = Writer { out: &mut self.staging };
        w.u64(dedup.len() as u64);
        for d in dedup {
            w.dedup(d);
        }
        self.crc.update(&self.staging);
        let crc = self.crc.finalize();
        self.staging.extend_from_slice(&crc.to_le_bytes());
        self.sink.write_all(&self.staging)?;
        Ok(self.sink)
    }
}

/// An index's message before its group id: sequence number, state, sent time and place.
const MESSAGE_FIXED_BYTES: usize = 72;

/// The least an index holds of one message: its fixed fields and the group id's length.
const MESSAGE_MIN_BYTES: u64 = MESSAGE_FIXED_BYTES as u64 + 4;

/// The most an index holds of one message or deduplication entry: the fixed fields and
/// ids of at most 128 characters (AWS's limit on group and deduplication ids) are far
/// below it. [`IndexReader`] keeps at least this much in its window while the file has it.
const ITEM_MAX_BYTES: usize = 16 * 1024;

/// What [`IndexReader`] reads from its file at a time.
const WINDOW_BYTES: usize = 256 * 1024;

/// An index read front to back through a window of [`WINDOW_BYTES`], its checksum
/// computed as the bytes arrive and checked at the end ([`IndexReader::dedup`]): a
/// checkpoint of a million messages read the whole last index (53–76 MB) into memory
/// beside the tail's maps, the backlog's memory peak. Whatever is read before the end is
/// unchecked: a caller keeps nothing of it until `dedup` answers.
struct IndexReader<R: Read> {
    at: Position,
    max_seq: i64,
    max_queue_id: i64,
    messages: u64,
    source: R,
    /// Bytes of the index before its checksum not yet read into the window.
    body_left: u64,
    window: Vec<u8>,
    /// How far into the window the reading is.
    read_to: usize,
    crc: crc32fast::Hasher,
}

impl IndexReader<File> {
    fn open(path: &Path) -> Option<IndexReader<File>> {
        let file = File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        IndexReader::new(file, len)
    }
}

impl<R: Read> IndexReader<R> {
    /// The index of `len` bytes `source` holds, its header read.
    fn new(source: R, len: u64) -> Option<IndexReader<R>> {
        let mut index = IndexReader {
            at: Position { segment: 0, offset: 0 },
            max_seq: 0,
            max_queue_id: 0,
            messages: 0,
            source,
            body_left: len.checked_sub(4)?,
            window: Vec::with_capacity(WINDOW_BYTES),
            read_to: 0,
            crc: crc32fast::Hasher::new(),
        };
        let (at, max_seq, max_queue_id, messages) = index.item(|r| {
            if r.bytes()? != MAGIC {
                return None;
            }
            Some((Position { segment: r.u32()?, offset: r.u64()? }, r.i64()?, r.i64()?, r.u64()?))
        })?;
        Some(IndexReader { at, max_seq, max_queue_id, messages, ..index })
    }

    /// Bytes before the checksum not read yet, in the window or still in the file.
    fn unread_bytes(&self) -> u64 {
        self.body_left + (self.window.len() - self.read_to) as u64
    }

    /// At least [`ITEM_MAX_BYTES`] unread in the window, or all the file has left.
    fn fill(&mut self) -> Option<()> {
        if self.window.len() - self.read_to >= ITEM_MAX_BYTES || self.body_left == 0 {
            return Some(());
        }
        self.window.drain(..self.read_to);
        self.read_to = 0;
        let kept = self.window.len();
        let more = (WINDOW_BYTES - kept).min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
        self.window.resize(kept + more, 0);
        self.source.read_exact(&mut self.window[kept..]).ok()?;
        self.crc.update(&self.window[kept..]);
        self.body_left -= more as u64;
        Some(())
    }

    /// The next item, as `parse` reads it.
    fn item<T>(&mut self, parse: impl FnOnce(&mut Reader<'_>) -> Option<T>) -> Option<T> {
        self.fill()?;
        let mut r = Reader::new(&self.window[self.read_to..]);
        let item = parse(&mut r)?;
        self.read_to += r.at;
        Some(item)
    }

    /// The next message's sequence number, queue and bytes as stored, without decoding
    /// the rest; instead of [`IndexReader::message`].
    fn raw_message(&mut self) -> Option<(i64, i64, &[u8])> {
        self.fill()?;
        let mut r = Reader::new(&self.window[self.read_to..]);
        let mut head = Reader::new(r.take(MESSAGE_FIXED_BYTES)?);
        let (seq, queue_id) = (head.i64()?, head.i64()?);
        let group = r.u32()?;
        if group != NONE_LEN {
            r.take(group as usize)?;
        }
        let start = self.read_to;
        self.read_to += r.at;
        Some((seq, queue_id, &self.window[start..self.read_to]))
    }

    /// The next message; to be called `messages` times, then [`IndexReader::dedup`].
    fn message(&mut self) -> Option<(i64, LiveMessage)> {
        self.item(read_message)
    }

    /// The deduplication entries, if the index ends after them and its checksum holds.
    fn dedup(mut self) -> Option<Vec<DedupRecord>> {
        let count = self.item(|r| r.u64())?;
        let dedup = (0..count).map(|_| self.item(|r| r.dedup())).collect::<Option<Vec<_>>>()?;
        if self.read_to != self.window.len() || self.body_left != 0 {
            return None;
        }
        let mut crc = [0; 4];
        self.source.read_exact(&mut crc).ok()?;
        (self.crc.finalize() == u32::from_le_bytes(crc)).then_some(dedup)
    }
}

fn read_message(r: &mut Reader<'_>) -> Option<(i64, LiveMessage)> {
    let (seq, state) = r.state()?;
    let sent_ms = r.u64()?;
    let at = Location { segment: r.u32()?, offset: r.u32()?, length: r.u32()? };
    let group_id = r.opt_str()?.map(Box::from);
    Some((seq, LiveMessage { at, state, sent_ms, group_id }))
}

/// The index in `dir`, if its checksum holds and its place is still in the log
/// (segment `numbers` holds it, at least that long): its place and what it says.
pub(super) fn read(dir: &Path, numbers: &[u32]) -> Option<(Position, Replayed)> {
    let index = IndexReader::open(&dir.join(FILE))?;
    let at = index.at;
    if !numbers.contains(&at.segment) || std::fs::metadata(segment_path(dir, at.segment)).ok()?.len() < at.offset {
        return None;
    }
    let mut replayed =
        Replayed { max_seq: index.max_seq, max_queue_id: index.max_queue_id, from_index: true, ..Default::default() };
    // With room for the tail's inserts too: growing a map of a million after the index
    // filled it copied the whole map (a tenth of a start after a crash). The count is
    // not checked yet (the checksum is, at the end): no more than the file could hold.
    let could_hold = index.unread_bytes() / MESSAGE_MIN_BYTES;
    replayed.messages.reserve(index.messages.min(could_hold) as usize + inserts_after(dir, numbers, at));
    let index = decode_beside(index, &mut |seq, m| {
        replayed.messages.insert((seq, m));
    })?;
    replayed.dedup = index.dedup()?;
    Some((at, replayed))
}

/// Hands `index`'s messages to `take` in order, decoded on a second thread in chunks
/// while this one takes the chunk before: decoding and inserting into a map each took
/// about half of reading a million messages' index. The index, past its messages, or
/// `None` if one does not decode.
fn decode_beside<R: Read + Send>(
    mut index: IndexReader<R>,
    take: &mut dyn FnMut(i64, LiveMessage),
) -> Option<IndexReader<R>> {
    const CHUNK: u64 = 4096;
    type Chunk = Vec<(i64, LiveMessage)>;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Chunk>();
    // Three buffers go round, not a fresh allocation (and its page faults) per chunk.
    for _ in 0..3 {
        let _ = empty_tx.send(Vec::with_capacity(CHUNK as usize));
    }
    std::thread::scope(|scope| {
        let decoder = scope.spawn(move || {
            let mut left = index.messages;
            while left > 0 {
                let mut chunk = empty_rx.recv().ok()?;
                for _ in 0..left.min(CHUNK) {
                    chunk.push(index.message()?);
                }
                left -= chunk.len() as u64;
                full_tx.send(chunk).ok()?;
            }
            Some(index)
        });
        // The receiving ends go when this closure returns, so that the decoder never
        // waits on a channel nobody reads.
        let (full_rx, empty_tx) = (full_rx, empty_tx);
        for mut chunk in full_rx.iter() {
            for (seq, m) in chunk.drain(..) {
                take(seq, m);
            }
            let _ = empty_tx.send(chunk);
        }
        decoder.join().ok().flatten()
    })
}

/// Writes the index `write` streams, replacing the last one whole, paced so that the
/// writer's syncs do not wait behind it ([`crate::paced_write`]); with `sync`, on disk
/// before it returns. A checkpoint does not sync: after a power loss an index whose bytes
/// did not reach the disk fails its checksum and the start replays the whole log, which
/// is slower but loses nothing, while syncing 70 MiB (a million messages) each time
/// competed with the writer's own syncs for the disk. Returns the index's size.
fn store(
    dir: &Path,
    sync: bool,
    write: impl FnOnce(&mut PacedWriter<'_>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let temporary = dir.join(format!("{FILE}.tmp"));
    let mut file = File::create(&temporary).map_err(internal)?;
    let mut paced = PacedWriter::new(&mut file);
    write(&mut paced)?;
    let bytes = paced.finish().map_err(internal)?;
    if sync {
        file.sync_all().map_err(internal)?;
    }
    drop(file);
    std::fs::rename(&temporary, dir.join(FILE)).map_err(internal)?;
    if sync {
        sync_dir(dir).map_err(internal)?;
    }
    Ok(bytes)
}

/// What a whole index is written from: the highest numbers handed out, the live
/// messages, listed without being gathered into one map first, and deduplication entries.
pub trait IndexSource {
    fn max_seq(&self) -> i64;
    fn max_queue_id(&self) -> i64;
    fn message_count(&self) -> u64;
    /// Hands each live message to `visit`, [`IndexSource::message_count`] of them.
    fn each_message(&self, visit: &mut dyn FnMut(i64, &LiveMessage) -> std::io::Result<()>) -> std::io::Result<()>;
    fn dedup(&self) -> Cow<'_, [DedupRecord]>;
}

impl IndexSource for Replayed {
    fn max_seq(&self) -> i64 {
        self.max_seq
    }
    fn max_queue_id(&self) -> i64 {
        self.max_queue_id
    }
    fn message_count(&self) -> u64 {
        self.messages.len() as u64
    }
    fn each_message(&self, visit: &mut dyn FnMut(i64, &LiveMessage) -> std::io::Result<()>) -> std::io::Result<()> {
        self.messages.iter().try_for_each(|(seq, m)| visit(*seq, m))
    }
    fn dedup(&self) -> Cow<'_, [DedupRecord]> {
        Cow::Borrowed(&self.dedup)
    }
}

/// Writes `source` as an index at `at` to `sink`.
fn write_whole(sink: impl Write, at: Position, source: &dyn IndexSource) -> Result<(), StoreError> {
    let mut out = IndexWriter::new(sink, at, source.max_seq(), source.max_queue_id(), source.message_count());
    source.each_message(&mut |seq, m| out.message(seq, m)).map_err(internal)?;
    out.finish(source.dedup().iter()).map(drop).map_err(internal)
}

/// The deduplication entries of `entries` (oldest first) still live at `now_ms`, the
/// latest for each queue, scope and id.
fn live_dedup(entries: impl IntoIterator<Item = DedupRecord>, now_ms: u64) -> Vec<DedupRecord> {
    let mut latest = HashMap::new();
    for d in entries.into_iter().filter(|d| d.expires_ms > now_ms) {
        latest.insert((d.queue_id, d.scope.clone(), d.dedup_id.clone()), d);
    }
    latest.into_values().collect()
}

/// An entry's number in the tail's order, kind and body.
type NumberedEntry = (u64, Kind, Box<[u8]>);

/// What the log says after an index's place, gathered to be merged with the index.
#[derive(Default)]
struct Tail {
    /// Messages inserted after the place: new ones, and compaction's copies, which carry
    /// their message's state and supersede the index's entry. Changes to them apply here.
    born: Replayed,
    /// Every message inserted after the place, even if deleted since: the index's entry
    /// for it is superseded (a compaction copy carries the state of every change before).
    inserted: SeqMap<()>,
    /// Changes (state, move, delete) to other messages, in log order, numbered.
    changes: SeqMap<Vec<NumberedEntry>>,
    /// Purges (queue, up to sequence number), numbered in the same order.
    purges: Vec<(u64, i64, i64)>,
    order: u64,
}

impl Tail {
    fn apply(&mut self, kind: Kind, body: &[u8], at: Location) -> Option<()> {
        self.order += 1;
        let seq = || Reader::new(&body[1..]).i64();
        match kind {
            Kind::Insert => {
                self.changes.remove(&seq()?);
                self.inserted.insert(seq()?, ());
            }
            Kind::State | Kind::Delete | Kind::Move if !self.born.messages.contains(seq()?) => {
                self.changes.entry(seq()?).or_default().push((self.order, kind, body.into()));
            }
            Kind::Purge => {
                let mut r = Reader::new(&body[1..]);
                self.purges.push((self.order, r.i64()?, r.i64()?));
            }
            _ => {}
        }
        self.born.apply(kind, body, at, false)
    }

    /// Message `seq` of the index after this tail's changes; `None` when it is gone.
    fn changed(&self, seq: i64, mut m: LiveMessage) -> Option<Option<LiveMessage>> {
        let mut changes = self.changes.get(&seq).map(Vec::as_slice).unwrap_or_default().iter().peekable();
        let mut purges = self.purges.iter().peekable();
        loop {
            let change_first = match (changes.peek(), purges.peek()) {
                (None, None) => return Some(Some(m)),
                (Some((c, _, _)), Some((p, _, _))) => c < p,
                (c, _) => c.is_some(),
            };
            if change_first {
                let (_, kind, body) = changes.next()?;
                let mut r = Reader::new(&body[1..]);
                r.i64()?;
                if !change_message(*kind, &mut m.state, &mut r)? {
                    return Some(None);
                }
            } else {
                let &(_, queue_id, max_seq) = purges.next()?;
                if m.state.queue_id == queue_id && seq <= max_seq {
                    return Some(None);
                }
            }
        }
    }
}

/// What the merged index holds of one of the last index's messages.
enum Kept<'a> {
    /// Untouched since (most of a large index): copied as it is.
    Raw(&'a [u8]),
    Changed(LiveMessage),
    Gone,
}

impl Tail {
    /// What becomes of message `seq` of queue `queue_id` of the last index, `bytes` as
    /// stored there; `None` if they do not decode.
    fn kept<'a>(&self, seq: i64, queue_id: i64, bytes: &'a [u8]) -> Option<Kept<'a>> {
        if self.inserted.contains_key(&seq) {
            return Some(Kept::Gone);
        }
        if self.changes.contains_key(&seq) {
            let (_, m) = read_message(&mut Reader::new(bytes))?;
            return Some(self.changed(seq, m)?.map_or(Kept::Gone, Kept::Changed));
        }
        let purged = self.purges.iter().any(|&(_, q, max_seq)| q == queue_id && seq <= max_seq);
        Some(if purged { Kept::Gone } else { Kept::Raw(bytes) })
    }
}

/// How many of the last index's messages `tail` leaves, if that index reads back whole
/// and its checksum holds.
fn count_kept(mut old: IndexReader<impl Read>, tail: &Tail) -> Option<u64> {
    let mut kept = 0;
    for _ in 0..old.messages {
        let (seq, queue_id, bytes) = old.raw_message()?;
        if !matches!(tail.kept(seq, queue_id, bytes)?, Kept::Gone) {
            kept += 1;
        }
    }
    old.dedup().map(|_| kept)
}

/// Writes the index at `old`, of which `tail` leaves `kept` messages
/// ([`count_kept`]), followed by `tail`, as an index at `at`, to `sink`.
fn merge(
    mut old: IndexReader<impl Read>,
    kept: u64,
    tail: Tail,
    at: Position,
    now_ms: u64,
    sink: impl Write,
) -> Result<(), StoreError> {
    let unreadable = || internal("the last index does not read back");
    let born = &tail.born.messages;
    let max_seq = old.max_seq.max(tail.born.max_seq);
    let max_queue_id = old.max_queue_id.max(tail.born.max_queue_id);
    let mut out = IndexWriter::new(sink, at, max_seq, max_queue_id, kept + born.len() as u64);
    for _ in 0..old.messages {
        let (seq, queue_id, bytes) = old.raw_message().ok_or_else(unreadable)?;
        match tail.kept(seq, queue_id, bytes).ok_or_else(unreadable)? {
            Kept::Raw(bytes) => out.raw(bytes).map_err(internal)?,
            Kept::Changed(m) => out.message(seq, &m).map_err(internal)?,
            Kept::Gone => {}
        }
    }
    for (seq, m) in born.iter() {
        out.message(*seq, m).map_err(internal)?;
    }
    let dedup = live_dedup(old.dedup().ok_or_else(unreadable)?.into_iter().chain(tail.born.dedup), now_ms);
    out.finish(dedup.iter()).map(drop).map_err(internal)
}

/// The log a checkpoint covers: from `from` to the end of the first sealed segment that
/// brings it to `enough` bytes, or to `end` when the sealed segments hold less. A
/// checkpoint holds in memory what the log after the last index says (about 150 bytes a
/// message); at the lowest CPU priority it can be starved while a backlog of a million
/// grows, and then covered all of it at once. The next checkpoint goes on from the cut.
/// The place is the segment's last group's end, before its seal, which a start then
/// replays (a segment before the head must end with its seal).
fn cut_after_enough(
    end: Position,
    mut segments: Vec<SegmentView>,
    from: Position,
    enough: u64,
) -> (Position, Vec<SegmentView>) {
    let mut covered = 0;
    for i in 0..segments.len() {
        let (n, _, len) = segments[i];
        if n < from.segment {
            continue;
        }
        if n == end.segment {
            break;
        }
        covered += len - if n == from.segment { from.offset } else { 0 };
        let place = Position { segment: n, offset: len.saturating_sub(MARKER_BYTES) };
        if covered >= enough && place > from {
            segments.truncate(i + 1);
            return (place, segments);
        }
    }
    (end, segments)
}

impl MessageLog {
    /// Writes the index of `source`, which must be what the log says at its end now:
    /// at a clean shutdown, with nothing appending.
    pub fn write_index(&self, source: &dyn IndexSource) -> Result<(), StoreError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some((end, _)) = self.view() else { return Ok(()) };
        store(&self.dir, true, |out| write_whole(out, end, source))?;
        *index = Some(end);
        Ok(())
    }

    /// Writes a new index when at least `every` bytes of the log follow the last one's
    /// place, and [`LOG_PER_INDEX_BYTE`] times its size: the last index merged with the
    /// entries after its place, or, with no usable index, the whole log replayed; in
    /// either case only up to the first sealed segment that makes that much
    /// ([`cut_after_enough`]), so that a checkpoint far behind holds a bounded tail. Reads
    /// only what is durably written, so it runs beside the writer; returns at once,
    /// `false`, while another is being written.
    pub fn checkpoint(&self, now_ms: u64, every: u64) -> Result<bool, StoreError> {
        let mut index = match self.index.try_lock() {
            Ok(index) => index,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
        };
        let Some((end, segments)) = self.view() else { return Ok(false) };
        let Some(&(first, _, _)) = segments.first() else { return Ok(false) };
        let last = index.filter(|at| segments.iter().any(|(n, _, _)| *n == at.segment));
        let from = last.unwrap_or(Position { segment: first, offset: 0 });
        let behind: u64 = segments
            .iter()
            .filter(|(n, _, _)| *n >= from.segment)
            .map(|(n, _, len)| len.saturating_sub(if *n == from.segment { from.offset } else { 0 }))
            .sum();
        // A checkpoint rewrites the whole index: with a large one, wait for
        // proportionally more log, so that rewriting stays a fraction of what is appended.
        let index_bytes = last.and_then(|_| std::fs::metadata(self.dir.join(FILE)).ok()).map_or(0, |m| m.len());
        let enough = every.max(LOG_PER_INDEX_BYTE * index_bytes);
        if behind < enough || end == from {
            return Ok(false);
        }
        let (end, segments) = cut_after_enough(end, segments, from, enough);
        let started = std::time::Instant::now();
        let path = self.dir.join(FILE);
        let old = || IndexReader::open(&path).filter(|r| Some(r.at) == last);
        let mut merged = None;
        if old().is_some() {
            let mut tail = Tail::default();
            // Room for the messages the tail could hold, as replay at start reserves.
            let expected = (behind / BYTES_PER_INSERT) as usize;
            tail.born.messages.reserve(expected);
            tail.inserted.reserve(expected);
            replay_view(&segments, from, &mut |kind, body, at| tail.apply(kind, body, at))?;
            // Two passes over the last index, neither holding it: the header names the
            // count of messages, and the first pass also checks the checksum.
            if let Some(kept) = old().and_then(|old| count_kept(old, &tail)) {
                let old = old().ok_or_else(|| internal("the last index is gone"))?;
                merged = Some(store(&self.dir, false, |out| merge(old, kept, tail, end, now_ms, out))?);
            } else {
                tracing::warn!("the last message index does not read back; rebuilding it from the whole log");
            }
        }
        let bytes = match merged {
            Some(bytes) => bytes,
            None => {
                let mut whole = Replayed::default();
                replay_view(&segments, Position { segment: first, offset: 0 }, &mut |kind, body, at| {
                    whole.apply(kind, body, at, false)
                })?;
                whole.dedup = live_dedup(std::mem::take(&mut whole.dedup), now_ms);
                store(&self.dir, false, |out| write_whole(out, end, &whole))?
            }
        };
        *index = Some(end);
        tracing::debug!(
            behind,
            bytes,
            segment = end.segment,
            ms = started.elapsed().as_millis() as u64,
            "message index checkpoint"
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{content, insert, state, write};
    use super::*;

    /// A small deterministic generator (xorshift), so that a failure repeats.
    struct Dice(u64);
    impl Dice {
        fn roll(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// What a start finds, in a form to compare: messages with their places and states,
    /// the highest numbers, and the live deduplication entries.
    fn found(r: &Replayed, now_ms: u64) -> (Vec<(i64, LiveMessage)>, i64, i64, Vec<DedupRecord>) {
        let mut messages: Vec<(i64, LiveMessage)> = r.messages.iter().map(|(s, m)| (*s, m.clone())).collect();
        messages.sort_unstable_by_key(|(s, _)| *s);
        let mut dedup = live_dedup(r.dedup.clone(), now_ms);
        dedup.sort_unstable_by(|a, b| (a.queue_id, &a.dedup_id).cmp(&(b.queue_id, &b.dedup_id)));
        (messages, r.max_seq, r.max_queue_id, dedup)
    }

    /// The messages of an index of several of `decode_beside`'s chunks, as written; and
    /// an index claiming one message more than it holds refused, not waited on.
    #[test]
    fn an_index_of_many_chunks_reads_back_whole_and_a_short_one_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 1), b"").unwrap();
        let at = Position { segment: 1, offset: 0 };
        let mut written = Replayed { max_seq: 10_000, max_queue_id: 3, ..Default::default() };
        for seq in 1..=10_000i64 {
            let mut state = state(1 + seq % 3);
            state.receive_count = (seq % 5) as u32;
            let at = Location { segment: 1, offset: seq as u32 * 10, length: 10 };
            let group_id = (seq % 4 == 0).then(|| format!("g{}", seq % 7).into_boxed_str());
            written.messages.insert((seq, LiveMessage { at, state, sent_ms: seq as u64 * 3, group_id }));
        }
        store(dir.path(), false, |out| write_whole(out, at, &written)).unwrap();
        let (read_at, back) = read(dir.path(), &[1]).expect("the index reads back");
        assert_eq!(read_at, at);
        assert_eq!(found(&back, 0), found(&written, 0));

        // A byte changed in the middle, past the first window's worth: only the checksum
        // at the end tells.
        let mut damaged = std::fs::read(dir.path().join(FILE)).unwrap();
        let middle = damaged.len() / 2;
        assert!(middle > WINDOW_BYTES);
        damaged[middle] ^= 0x40;
        std::fs::write(dir.path().join(FILE), &damaged).unwrap();
        assert!(read(dir.path(), &[1]).is_none());

        // One message, its count raised by one and the checksum made to match.
        let mut bytes = IndexWriter::new(Vec::new(), at, 2, 1, 1);
        bytes.message(1, written.message(1)).unwrap();
        let mut bytes = bytes.finish([].iter()).unwrap();
        let count_at = 4 + MAGIC.len() + 4 + 8 + 8 + 8;
        bytes[count_at..count_at + 8].copy_from_slice(&2u64.to_le_bytes());
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(dir.path().join(FILE), &bytes).unwrap();
        assert!(read(dir.path(), &[1]).is_none());
    }

    /// A writer refuses to end an index holding another number of messages than its
    /// header declares.
    #[test]
    fn an_index_holding_another_count_than_declared_is_not_finished() {
        let m = LiveMessage {
            at: Location { segment: 1, offset: 0, length: 1 },
            state: state(1),
            sent_ms: 0,
            group_id: None,
        };
        let at = Position { segment: 1, offset: 0 };
        let mut short = IndexWriter::new(Vec::new(), at, 1, 1, 2);
        short.message(1, &m).unwrap();
        assert!(short.finish([].iter()).is_err());
        let mut long = IndexWriter::new(Vec::new(), at, 2, 1, 1);
        long.message(1, &m).unwrap();
        long.message(2, &m).unwrap();
        assert!(long.finish([].iter()).is_err());
    }

    /// Runs a random mix of every kind of change, with checkpoints and compactions at
    /// random points, and checks after each crash that the index and what follows it say
    /// exactly what replaying the whole log says.
    #[test]
    fn the_index_and_the_entries_after_it_say_what_the_whole_log_says() {
        const SEGMENT: u64 = 2048;
        const NOW: u64 = 1_000;
        let mut steps_with_more = 0;
        for seed in 1..=12u64 {
            let dir = tempfile::tempdir().unwrap();
            let index_path = dir.path().join(SUBDIR).join(FILE);
            let mirror_dir = tempfile::tempdir().unwrap();
            let mut dice = Dice(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut seq = 0;
            let mut checkpoints = 0;
            for round in 0..6 {
                // A crash abandons a compaction between its steps.
                let mut compacting: Option<CompactionDraft> = None;
                let (log, _) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
                let (mirror, _) = MessageLog::open(mirror_dir.path(), true, 1 << 30).unwrap();
                for _ in 0..40 {
                    let target = 1 + dice.roll(seq.max(1) as u64) as i64;
                    let queue = 1 + dice.roll(3) as i64;
                    // Every change goes to the mirror too, which is never compacted.
                    let both = |changes: &[Change<'_>]| {
                        drop(write(&log, changes));
                        drop(write(&mirror, changes));
                    };
                    match dice.roll(10) {
                        0..=3 => {
                            seq += 1;
                            insert(&log, seq, queue);
                            insert(&mirror, seq, queue);
                        }
                        4 => both(&[Change::Delete { seq: target }]),
                        5 => both(&[Change::State {
                            seq: target,
                            visible_at_ms: dice.roll(500),
                            receive_count: dice.roll(5) as u32,
                            first_receive_ms: 7,
                            receipt_token: dice.roll(1 << 20),
                        }]),
                        6 => both(&[Change::Move {
                            seq: target,
                            to_queue: queue,
                            dlq_source: Some(1),
                            visible_at_ms: 3,
                            reset_receives: dice.roll(2) == 0,
                        }]),
                        7 => both(&[Change::Purge { queue_id: queue, max_seq: target }]),
                        8 => {
                            let d = DedupRecord {
                                queue_id: queue,
                                scope: "q".into(),
                                dedup_id: format!("d{}", dice.roll(8)),
                                expires_ms: NOW - 100 + dice.roll(400),
                                message_id: format!("id-{target}"),
                                seq: target,
                            };
                            both(&[Change::Dedup(&d)]);
                        }
                        _ => {
                            // A step of the compaction under way, or the first of a new one;
                            // other changes come between the steps.
                            let draft = compacting.take().or_else(|| log.draft_compaction().unwrap());
                            let step = log.compaction_step_bytes() * (1 + dice.roll(3) as usize);
                            if let Some(mut plan) = draft.and_then(|d| log.plan_compaction(d, NOW, step).unwrap()) {
                                log.append(&mut plan.entries).unwrap();
                                match plan.rest {
                                    Some(rest) => {
                                        steps_with_more += 1;
                                        compacting = Some(rest);
                                    }
                                    None => log.remove_segment(plan.segment).unwrap(),
                                }
                            }
                        }
                    }
                    if dice.roll(6) == 0 {
                        checkpoints += usize::from(log.checkpoint(NOW, dice.roll(2 * SEGMENT)).unwrap());
                    }
                }
                // A crash: no index written at shutdown.
                drop(log);
                let (_, from_index) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
                let saved = std::fs::read(&index_path).ok();
                let _ = std::fs::remove_file(&index_path);
                let (_, whole) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
                assert!(!whole.from_index);
                assert_eq!(found(&from_index, NOW), found(&whole, NOW), "seed {seed}, round {round}");
                // Compaction, in steps with changes between them, kept every message as it
                // is in the log that was never compacted (places aside).
                drop(mirror);
                let (_, mirrored) = MessageLog::open(mirror_dir.path(), true, 1 << 30).unwrap();
                let states = |r: &Replayed| {
                    let mut v: Vec<_> =
                        r.messages.iter().map(|(s, m)| (*s, m.state, m.sent_ms, m.group_id.clone())).collect();
                    v.sort_unstable_by_key(|(s, ..)| *s);
                    v
                };
                assert_eq!(
                    states(&whole),
                    states(&mirrored),
                    "seed {seed}, round {round}: compaction changed messages"
                );
                if let Some(saved) = saved {
                    std::fs::write(&index_path, saved).unwrap();
                }
            }
            assert!(checkpoints > 2, "seed {seed}: only {checkpoints} checkpoints");
        }
        assert!(steps_with_more > 10, "compactions in steps: {steps_with_more}");
    }

    /// A checkpoint far behind covers sealed segments up to about `every` bytes, ends
    /// before the last one's seal, and leaves the rest to the next ones; a start from
    /// such an index finds what the whole log says.
    #[test]
    fn a_checkpoint_far_behind_covers_enough_log_and_the_next_go_on() {
        const SEGMENT: u64 = 400;
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        for seq in 1..=40 {
            insert(&log, seq, 1 + seq % 3);
            if seq % 4 == 0 {
                write(&log, &[Change::Delete { seq: seq - 2 }]);
            }
        }
        let segments = log.segments().len();
        assert!(segments > 8, "{segments} segments");
        let place = || IndexReader::open(&dir.path().join(SUBDIR).join(FILE)).map(|r| r.at);
        let every = 2 * SEGMENT;
        let mut places = Vec::new();
        while log.checkpoint(0, every).unwrap() {
            let at = place().unwrap();
            places.push(at);
            let head = log.segments().last().unwrap().0;
            if at.segment != head {
                let (_, length) = log.segments().into_iter().find(|(n, _)| *n == at.segment).unwrap();
                assert_eq!(at.offset, length - MARKER_BYTES, "a cut ends before the seal");
            }
        }
        // The first cut short of the head; the next waits for four times the index's size.
        assert!(places.len() >= 2, "checkpoints in steps: {places:?}");
        assert!(places.windows(2).all(|w| w[0] < w[1]), "each goes on: {places:?}");
        assert!(places[0].segment < places.last().unwrap().segment);
        drop(log);
        let (_, from_index) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        assert!(from_index.from_index);
        std::fs::remove_file(dir.path().join(SUBDIR).join(FILE)).unwrap();
        let (_, whole) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        assert_eq!(found(&from_index, 0), found(&whole, 0));
        assert_eq!(whole.messages.len(), 30);
    }

    #[test]
    fn a_checkpoint_waits_for_enough_log_and_follows_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 400).unwrap();
        for seq in 1..=3 {
            insert(&log, seq, 1);
        }
        assert!(!log.checkpoint(0, 1 << 20).unwrap(), "not enough log yet");
        assert!(log.checkpoint(0, 1).unwrap());
        assert!(!log.checkpoint(0, 1).unwrap(), "nothing new since");
        for seq in 4..=12 {
            insert(&log, seq, 1);
        }
        write(&log, &[Change::Delete { seq: 1 }, Change::Delete { seq: 2 }, Change::Delete { seq: 3 }]);
        // Compaction removes the segment holding the index's place: a start replays the
        // whole log, and the next checkpoint rebuilds the index from it.
        let first = log.segments()[0].0;
        let mut plan = log.plan_compaction(log.draft_compaction().unwrap().unwrap(), 0, usize::MAX).unwrap().unwrap();
        assert_eq!(plan.segment, first);
        log.append(&mut plan.entries).unwrap();
        log.remove_segment(plan.segment).unwrap();
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, 400).unwrap();
        assert!(!replayed.from_index, "the index's place is gone");
        assert_eq!(replayed.messages.len(), 9);
        assert!(log.checkpoint(0, 1).unwrap());
        let (content_of_5, state_of_5) = (content(5, None), state(1));
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, 400).unwrap();
        assert!(replayed.from_index);
        assert_eq!(replayed.messages.len(), 9);
        let (seq, read_state, read) = log.read(replayed.message(5).at).unwrap().unwrap();
        assert_eq!((seq, read_state, read.message_id), (5, state_of_5, content_of_5.message_id));

        // A last index damaged after it was read: the next checkpoint finds its checksum
        // wrong and rebuilds the index from the whole log instead of merging.
        let path = dir.path().join(SUBDIR).join(FILE);
        let mut damaged = std::fs::read(&path).unwrap();
        let last_message = damaged.len() - 4 - 8 - 20;
        damaged[last_message] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        write(&log, &[Change::Delete { seq: 4 }]);
        // Enough log after the last index for a checkpoint (four times its size).
        for seq in 13..=60 {
            insert(&log, seq, 1);
        }
        assert!(log.checkpoint(0, 1).unwrap());
        drop(log);
        let (_, replayed) = MessageLog::open(dir.path(), true, 400).unwrap();
        assert!(replayed.from_index);
        let mut seqs: Vec<i64> = replayed.messages.seqs().collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (5..=60).collect::<Vec<_>>());
    }
}
