//! The message index: what the log says (live messages, deduplication entries, the
//! highest numbers handed out) as of a place in it, so that a start reads the index and
//! replays only the entries after that place.
//!
//! An index is a chain of files: a whole index (the base) and the deltas written after
//! it, each going on from the place the one before it ends at and named by that place.
//! A delta holds what the log between its two places says: the messages inserted there
//! that are still live, and the changes to the messages of the files before it. A start
//! reads the base, then each delta in turn, and replays the log after the last one.
//!
//! A clean shutdown writes a base from memory at the log's end. While the server runs, a
//! thread of its own (never the writer's) writes a delta each time [`CHECKPOINT_SEGMENTS`]
//! segments' worth more have been appended, holding in memory only what those entries
//! say: a start after a crash then replays at most that much of the log. Now and then it
//! merges the chain and the new entries into a new base instead ([`Chain::due_for_merge`]).
//! A delta costs what its stretch of log says, not the size of the whole index: when each
//! checkpoint rewrote the whole index, behind a backlog of 1.5 million messages it wrote
//! 250 MB every five seconds beside the writer, whose sends slowed by a quarter.
//!
//! A chain stays usable while the segment holding its last place exists: compaction
//! removes only the oldest segment, after copying its live messages to the head (after
//! the place), so replaying from the place re-points them; once compaction removes the
//! place's own segment, a start replays the whole log and the next checkpoint rebuilds
//! the index from it.

use super::*;
use crate::paced_write::PacedWriter;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};

const FILE: &str = "index.snap";
const MAGIC: &[u8] = b"sluice message index 2";
const DELTA_MAGIC: &[u8] = b"sluice message index delta 1";
const DELTA_SUFFIX: &str = ".delta";

/// How many segments' worth of log may follow the index before a checkpoint writes a
/// delta. A start after a crash reads the index and replays up to this much (plus what
/// arrives while a checkpoint runs): with 64 MiB segments, 128 MiB replays in about
/// 0.15 s warm, beside about 0.45 s to read the index of a million messages, inside the
/// 1 s start target. A checkpoint costs a replay of this much on a thread beside the
/// writer.
pub const CHECKPOINT_SEGMENTS: u64 = 2;

/// The most deltas a chain holds before the next checkpoint merges it into a base. A
/// delta costs a start little beyond opening it, as the messages it holds would be in
/// the base anyway.
const MAX_DELTAS: usize = 32;

/// A chain is merged into a new base once its deltas hold one change (a state change,
/// delete, move, purge or replaced message) for every this many messages it holds: each
/// is read at a start beside the message it changes, and a merge holds the deltas'
/// changes in memory (about 100 bytes each). A backlog that only grows never gets there
/// (its deltas hold new messages only) and is merged every [`MAX_DELTAS`] deltas.
const MESSAGES_PER_CHANGE: u64 = 4;

/// The most changes to earlier messages a checkpoint gathers (about 100 bytes each in
/// memory) before it stops and writes what it has, mid-segment if need be: the entries
/// that receive, delete or move a backlog are small (40–60 bytes of log each), and two
/// segments' worth of them held millions, 280 MiB of memory behind a backlog of a
/// million being received. A merge holds its deltas' changes, at most a quarter of the
/// chain's messages ([`MESSAGES_PER_CHANGE`]), beside this many.
/// Unit tests stop after a few, so that their checkpoints stop mid-segment too.
const MAX_TAIL_CHANGES: u64 = if cfg!(test) { 6 } else { 1 << 17 };

/// The delta going on from `from`.
fn delta_name(from: Position) -> String {
    format!("index-{:08}-{:012}{DELTA_SUFFIX}", from.segment, from.offset)
}

/// What a delta's header says: the places it goes from and to, the highest numbers
/// handed out by its place, and how many entries of each kind it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeltaHead {
    from: Position,
    at: Position,
    max_seq: i64,
    max_queue_id: i64,
    replaced: u64,
    changes: u64,
    messages: u64,
}

/// The files of the index in use: the base's place and message count, the deltas after
/// it in order, and the highest numbers handed out by the last place.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    base_at: Position,
    base_messages: u64,
    deltas: Vec<DeltaHead>,
    max_seq: i64,
    max_queue_id: i64,
}

impl Chain {
    fn base(at: Position, messages: u64, max_seq: i64, max_queue_id: i64) -> Chain {
        Chain { base_at: at, base_messages: messages, deltas: Vec::new(), max_seq, max_queue_id }
    }

    /// Where the last file of the chain stands in the log.
    pub(super) fn at(&self) -> Position {
        self.deltas.last().map_or(self.base_at, |d| d.at)
    }

    fn push(&mut self, delta: DeltaHead) {
        self.max_seq = delta.max_seq;
        self.max_queue_id = delta.max_queue_id;
        self.deltas.push(delta);
    }

    /// Whether the next checkpoint merges the chain into a new base rather than adding
    /// a delta to it.
    fn due_for_merge(&self) -> bool {
        let changes: u64 = self.deltas.iter().map(|d| d.replaced + d.changes).sum();
        let messages = self.base_messages + self.deltas.iter().map(|d| d.messages).sum::<u64>();
        self.deltas.len() >= MAX_DELTAS || changes * MESSAGES_PER_CHANGE > messages
    }
}

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

    /// A delta's writer: its header, the sequence numbers of the messages it replaces
    /// and the changes to earlier messages (entry bodies, in log order) before the
    /// messages born in its stretch of log.
    fn delta(
        sink: W,
        head: &DeltaHead,
        replaced: &[i64],
        changes: &[Cow<'_, [u8]>],
    ) -> std::io::Result<IndexWriter<W>> {
        let mut out = IndexWriter {
            sink,
            staging: Vec::with_capacity(2 * STAGING_BYTES),
            crc: crc32fast::Hasher::new(),
            declared: head.messages,
            count: 0,
        };
        let mut w = Writer { out: &mut out.staging };
        w.bytes(DELTA_MAGIC);
        for place in [head.from, head.at] {
            w.u32(place.segment);
            w.u64(place.offset);
        }
        w.i64(head.max_seq);
        w.i64(head.max_queue_id);
        w.u64(head.replaced);
        w.u64(head.changes);
        w.u64(head.messages);
        for seq in replaced {
            Writer { out: &mut out.staging }.i64(*seq);
            out.spill()?;
        }
        for body in changes {
            Writer { out: &mut out.staging }.bytes(body);
            out.spill()?;
        }
        Ok(out)
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

/// A delta read up to its messages ([`IndexReader::delta`]): its header, the sequence
/// numbers it replaces, its change entries in log order, and the reader at its messages.
type DeltaRead<R> = (DeltaHead, Vec<i64>, Vec<Box<[u8]>>, IndexReader<R>);

impl IndexReader<File> {
    fn open(path: &Path) -> Option<IndexReader<File>> {
        let (file, len) = open_with_len(path)?;
        IndexReader::new(file, len)
    }

    /// The delta of `dir` that goes on from `from`.
    fn open_delta(dir: &Path, from: Position) -> Option<DeltaRead<File>> {
        let (file, len) = open_with_len(&dir.join(delta_name(from)))?;
        IndexReader::delta(file, len)
    }

    /// The delta of `dir` a chain knows, if it still has the header the chain knows.
    fn open_known_delta(dir: &Path, known: &DeltaHead) -> Option<DeltaRead<File>> {
        IndexReader::open_delta(dir, known.from).filter(|(head, ..)| head == known)
    }
}

fn open_with_len(path: &Path) -> Option<(File, u64)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    Some((file, len))
}

impl<R: Read> IndexReader<R> {
    /// The index of `len` bytes `source` holds, its header read.
    fn new(source: R, len: u64) -> Option<IndexReader<R>> {
        let mut index = IndexReader::unread(source, len)?;
        let (at, max_seq, max_queue_id, messages) = index.item(|r| {
            if r.bytes()? != MAGIC {
                return None;
            }
            Some((Position { segment: r.u32()?, offset: r.u64()? }, r.i64()?, r.i64()?, r.u64()?))
        })?;
        Some(IndexReader { at, max_seq, max_queue_id, messages, ..index })
    }

    /// The delta of `len` bytes `source` holds, read up to its messages: its header, the
    /// sequence numbers it replaces and its changes to earlier messages, in log order.
    fn delta(source: R, len: u64) -> Option<DeltaRead<R>> {
        let mut index = IndexReader::unread(source, len)?;
        let head = index.item(|r| {
            if r.bytes()? != DELTA_MAGIC {
                return None;
            }
            Some(DeltaHead {
                from: Position { segment: r.u32()?, offset: r.u64()? },
                at: Position { segment: r.u32()?, offset: r.u64()? },
                max_seq: r.i64()?,
                max_queue_id: r.i64()?,
                replaced: r.u64()?,
                changes: r.u64()?,
                messages: r.u64()?,
            })
        })?;
        // Counts not yet checked (the checksum is, at the end): no room reserved for them.
        let mut replaced = Vec::new();
        for _ in 0..head.replaced {
            replaced.push(index.item(|r| r.i64())?);
        }
        let mut changes = Vec::new();
        for _ in 0..head.changes {
            let body = index.item(|r| r.bytes().map(Box::<[u8]>::from))?;
            matches!(
                body.first().copied().and_then(Kind::of),
                Some(Kind::State | Kind::Delete | Kind::Move | Kind::Purge)
            )
            .then_some(())?;
            changes.push(body);
        }
        let index = IndexReader {
            at: head.at,
            max_seq: head.max_seq,
            max_queue_id: head.max_queue_id,
            messages: head.messages,
            ..index
        };
        Some((head, replaced, changes, index))
    }

    /// `source`'s `len` bytes, nothing read yet.
    fn unread(source: R, len: u64) -> Option<IndexReader<R>> {
        Some(IndexReader {
            at: Position { segment: 0, offset: 0 },
            max_seq: 0,
            max_queue_id: 0,
            messages: 0,
            source,
            body_left: len.checked_sub(4)?,
            window: Vec::with_capacity(WINDOW_BYTES),
            read_to: 0,
            crc: crc32fast::Hasher::new(),
        })
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

/// The index in `dir`, if its base's checksum holds and its place is still in the log
/// (segment `numbers` holds it, at least that long): its chain and what it says. The
/// chain goes as far as its deltas read back whole and stay in the log.
pub(super) fn read(dir: &Path, numbers: &[u32]) -> Option<(Chain, Replayed)> {
    let in_log = |at: Position| {
        numbers.contains(&at.segment)
            && std::fs::metadata(segment_path(dir, at.segment)).is_ok_and(|m| m.len() >= at.offset)
    };
    let index = IndexReader::open(&dir.join(FILE)).filter(|index| in_log(index.at))?;
    let mut chain = Chain::base(index.at, index.messages, index.max_seq, index.max_queue_id);
    let mut replayed =
        Replayed { max_seq: index.max_seq, max_queue_id: index.max_queue_id, from_index: true, ..Default::default() };
    // With room for the deltas' and the tail's inserts too: growing a map of a million
    // after the index filled it copied the whole map (a tenth of a start after a crash).
    // The count is not checked yet (the checksum is, at the end): no more than the file
    // could hold.
    let could_hold = index.unread_bytes() / MESSAGE_MIN_BYTES;
    replayed.messages.reserve(index.messages.min(could_hold) as usize + inserts_after(dir, numbers, index.at));
    let index = decode_beside(index, &mut |seq, m| {
        replayed.messages.insert((seq, m));
    })?;
    replayed.dedup = index.dedup()?;
    while let Some((head, _, _, mut delta)) = IndexReader::open_delta(dir, chain.at()) {
        if head.from != chain.at() || head.at <= head.from || !in_log(head.at) {
            break;
        }
        // Read through and checked before any of it applies (a delta torn by a crash
        // leaves the chain at the one before), then read again to apply, its messages
        // decoded beside their inserts as the base's are: decoding them first into a
        // vector made a start after a crash 50 ms slower than with one whole index.
        let skipped = (0..head.messages).all(|_| delta.raw_message().is_some());
        let Some(dedup) = delta.dedup().filter(|_| skipped) else { break };
        let (_, replaced, changes, delta) = IndexReader::open_known_delta(dir, &head)?;
        apply_changes(&mut replayed, &replaced, &changes)?;
        decode_beside(delta, &mut |seq, m| replayed.messages.insert((seq, m)))?;
        replayed.dedup.extend(dedup);
        replayed.max_seq = replayed.max_seq.max(head.max_seq);
        replayed.max_queue_id = replayed.max_queue_id.max(head.max_queue_id);
        chain.push(head);
    }
    Some((chain, replayed))
}

/// Applies a delta's changes to what the files before it say, in log order, then takes
/// away the messages it replaces; the messages born in its stretch of log come after.
fn apply_changes(replayed: &mut Replayed, replaced: &[i64], changes: &[Box<[u8]>]) -> Option<()> {
    // A change's place is never used: only inserts keep theirs.
    let nowhere = Location { segment: 0, offset: 0, length: 0 };
    for body in changes {
        replayed.apply(Kind::of(body[0])?, body, nowhere, false)?;
    }
    for seq in replaced {
        replayed.messages.remove(*seq);
    }
    Some(())
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

/// Writes the index file `name` that `write` streams, replacing any before it whole,
/// paced so that the writer's syncs do not wait behind it ([`crate::paced_write`]); with
/// `sync`, on disk before it returns. A checkpoint does not sync: after a power loss a
/// file whose bytes did not reach the disk fails its checksum and the start replays the
/// log from the file before it (or the whole log), which is slower but loses nothing,
/// while syncing 70 MiB (a million messages' base) each time competed with the writer's
/// own syncs for the disk. Returns the file's size.
fn store(
    dir: &Path,
    name: &str,
    sync: bool,
    write: impl FnOnce(&mut PacedWriter<'_>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temporary).map_err(internal)?;
    let mut paced = PacedWriter::new(&mut file);
    write(&mut paced)?;
    let bytes = paced.finish().map_err(internal)?;
    if sync {
        file.sync_all().map_err(internal)?;
    }
    drop(file);
    std::fs::rename(&temporary, dir.join(name)).map_err(internal)?;
    if sync {
        sync_dir(dir).map_err(internal)?;
    }
    Ok(bytes)
}

/// Removes the deltas (and any half-written ones) of `dir`, once a new base stands
/// without them. A delta left by a crash before this is harmless: it is named by a place
/// before the new base's, so no chain reaches it.
fn remove_deltas(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(DELTA_SUFFIX) || n.ends_with(&format!("{DELTA_SUFFIX}.tmp"))) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(error = %e, file = ?entry.path(), "could not remove an index delta");
            }
        }
    }
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

/// An entry's number in log order, kind and body.
type NumberedEntry = (u64, Kind, Box<[u8]>);

/// What a stretch of log, or a delta, does to the messages of the index files before it.
#[derive(Default)]
struct Changes {
    /// Messages inserted again: compaction's copies, which carry their message's state
    /// (in a tail still being read, every insert). The earlier file's entry for each is
    /// superseded, even if the copy was deleted since.
    replaced: SeqMap<()>,
    /// Changes (state, move, delete) to earlier messages, in log order, numbered.
    changes: SeqMap<Vec<NumberedEntry>>,
    /// Purges (queue, up to sequence number), numbered in the same order.
    purges: Vec<(u64, i64, i64)>,
    /// Entries held in `changes` and `purges`.
    count: u64,
}

impl Changes {
    /// A delta's changes as read back, numbered by their place in it.
    fn of_delta(replaced: &[i64], entries: Vec<Box<[u8]>>) -> Option<Changes> {
        let mut changes = Changes::default();
        for seq in replaced {
            changes.replaced.insert(*seq, ());
        }
        for (order, body) in entries.into_iter().enumerate() {
            changes.add(order as u64, body)?;
        }
        Some(changes)
    }

    /// Adds change entry `body` (its kind byte first), number `order` in log order.
    fn add(&mut self, order: u64, body: Box<[u8]>) -> Option<()> {
        let kind = Kind::of(*body.first()?)?;
        let mut r = Reader::new(&body[1..]);
        if kind == Kind::Purge {
            self.purges.push((order, r.i64()?, r.i64()?));
        } else {
            let entries = self.changes.entry(r.i64()?).or_default();
            // A state change sets every field it carries and never the queue, which is
            // all a purge between two of them looks at: the later one stands for both (a
            // message received again and again holds one entry).
            if let Some(last) = entries.last_mut().filter(|(_, last, _)| kind == Kind::State && *last == Kind::State) {
                *last = (order, kind, body);
                return Some(());
            }
            entries.push((order, kind, body));
        }
        self.count += 1;
        Some(())
    }

    /// The change entries' bodies in log order, as a delta stores them.
    fn in_order(&self) -> Vec<Cow<'_, [u8]>> {
        let mut entries: Vec<(u64, Cow<'_, [u8]>)> =
            self.changes.values().flatten().map(|(order, _, body)| (*order, Cow::Borrowed(&body[..]))).collect();
        for &(order, queue_id, max_seq) in &self.purges {
            let mut body = Vec::with_capacity(17);
            let mut w = Writer { out: &mut body };
            w.u8(Kind::Purge as u8);
            w.i64(queue_id);
            w.i64(max_seq);
            entries.push((order, Cow::Owned(body)));
        }
        entries.sort_unstable_by_key(|(order, _)| *order);
        entries.into_iter().map(|(_, body)| body).collect()
    }

    /// Message `seq` of an earlier file after these changes; `None` when it is gone.
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

    /// What becomes of message `seq` of queue `queue_id` of an earlier file, `bytes` as
    /// stored there; `None` if they do not decode.
    fn kept<'a>(&self, seq: i64, queue_id: i64, bytes: &'a [u8]) -> Option<Kept<'a>> {
        if self.replaced.contains_key(&seq) {
            return Some(Kept::Gone);
        }
        if self.changes.contains_key(&seq) {
            let (_, m) = read_message(&mut Reader::new(bytes))?;
            return Some(self.changed(seq, m)?.map_or(Kept::Gone, Kept::Changed));
        }
        let purged = self.purges.iter().any(|&(_, q, max_seq)| q == queue_id && seq <= max_seq);
        Some(if purged { Kept::Gone } else { Kept::Raw(bytes) })
    }

    /// As [`Changes::kept`], for a message an earlier file's changes have decoded.
    fn kept_decoded<'a>(&self, seq: i64, m: LiveMessage) -> Option<Kept<'a>> {
        if self.replaced.contains_key(&seq) {
            return Some(Kept::Gone);
        }
        Some(self.changed(seq, m)?.map_or(Kept::Gone, Kept::Changed))
    }
}

/// What the log says after the index's place, gathered to be written as a delta or
/// merged with the index.
#[derive(Default)]
struct Tail {
    /// Messages inserted after the place: new ones, and compaction's copies, which carry
    /// their message's state and supersede the index's entry. Changes to them apply here.
    born: Replayed,
    /// What the tail does to the index's messages.
    changes: Changes,
    order: u64,
}

impl Tail {
    fn apply(&mut self, kind: Kind, body: &[u8], at: Location) -> Option<()> {
        self.order += 1;
        let seq = || Reader::new(&body[1..]).i64();
        match kind {
            Kind::Insert => {
                self.changes.changes.remove(&seq()?);
                self.changes.replaced.insert(seq()?, ());
            }
            Kind::State | Kind::Delete | Kind::Move if !self.born.messages.contains(seq()?) => {
                self.changes.add(self.order, body.into())?;
            }
            Kind::Purge => self.changes.add(self.order, body.into())?,
            _ => {}
        }
        self.born.apply(kind, body, at, false)
    }
}

/// What a new base holds of a message of one of the chain's files.
enum Kept<'a> {
    /// Untouched since (most of a large index): copied as it is.
    Raw(&'a [u8]),
    Changed(LiveMessage),
    Gone,
}

/// What becomes of message `seq` of queue `queue_id`, `bytes` as a file of the chain
/// stores it, through `later` (what each file after it, then the tail, does); `None` if
/// they do not decode.
fn kept_through<'a>(later: &[&Changes], seq: i64, queue_id: i64, bytes: &'a [u8]) -> Option<Kept<'a>> {
    let mut kept = Kept::Raw(bytes);
    for changes in later {
        kept = match kept {
            Kept::Raw(bytes) => changes.kept(seq, queue_id, bytes)?,
            Kept::Changed(m) => changes.kept_decoded(seq, m)?,
            Kept::Gone => break,
        };
    }
    Some(kept)
}

/// What each delta of `chain` does to the files before it, if each reads back with the
/// header the chain knows.
fn read_layers(dir: &Path, chain: &Chain) -> Option<Vec<Changes>> {
    chain
        .deltas
        .iter()
        .map(|known| {
            let (_, replaced, changes, _) = IndexReader::open_known_delta(dir, known)?;
            Changes::of_delta(&replaced, changes)
        })
        .collect()
}

/// Hands every message of `chain`'s files to `visit`, in file order, with what becomes of
/// it through the files after its own (`layers`, [`read_layers`]) and `tail`. Returns the
/// files' deduplication entries, oldest first, or `None` if a file does not read back
/// whole with its checksum (checked at each file's end: a first pass, counting, checks
/// them all before a second writes).
fn each_kept(
    dir: &Path,
    chain: &Chain,
    layers: &[Changes],
    tail: &Changes,
    visit: &mut dyn FnMut(i64, Kept<'_>) -> std::io::Result<()>,
) -> Result<Option<Vec<DedupRecord>>, StoreError> {
    let later: Vec<&Changes> = layers.iter().chain([tail]).collect();
    let base = IndexReader::open(&dir.join(FILE)).filter(|base| base.at == chain.base_at);
    let deltas = chain.deltas.iter().map(|known| IndexReader::open_known_delta(dir, known).map(|(.., reader)| reader));
    let mut dedup = Vec::new();
    for (i, file) in std::iter::once(base).chain(deltas).enumerate() {
        let Some(mut file) = file else { return Ok(None) };
        for _ in 0..file.messages {
            let Some((seq, queue_id, bytes)) = file.raw_message() else { return Ok(None) };
            let Some(kept) = kept_through(&later[i..], seq, queue_id, bytes) else { return Ok(None) };
            visit(seq, kept).map_err(internal)?;
        }
        let Some(entries) = file.dedup() else { return Ok(None) };
        dedup.extend(entries);
    }
    Ok(Some(dedup))
}

/// Writes `chain`'s files and `tail` after them as a new base at `at`; how many messages
/// it holds, or `None` if one of the files does not read back.
fn merge(dir: &Path, chain: &Chain, tail: &Tail, at: Position, now_ms: u64) -> Result<Option<u64>, StoreError> {
    let Some(layers) = read_layers(dir, chain) else { return Ok(None) };
    // The header names the count of messages: a first pass counts them.
    let mut kept = 0;
    let counted = each_kept(dir, chain, &layers, &tail.changes, &mut |_, k| {
        kept += u64::from(!matches!(k, Kept::Gone));
        Ok(())
    })?;
    if counted.is_none() {
        return Ok(None);
    }
    let born = &tail.born.messages;
    let max_seq = chain.max_seq.max(tail.born.max_seq);
    let max_queue_id = chain.max_queue_id.max(tail.born.max_queue_id);
    let messages = kept + born.len() as u64;
    store(dir, FILE, false, |sink| {
        let mut out = IndexWriter::new(sink, at, max_seq, max_queue_id, messages);
        let dedup = each_kept(dir, chain, &layers, &tail.changes, &mut |seq, kept| match kept {
            Kept::Raw(bytes) => out.raw(bytes),
            Kept::Changed(m) => out.message(seq, &m),
            Kept::Gone => Ok(()),
        })?
        .ok_or_else(|| internal("the last index does not read back"))?;
        for (seq, m) in born.iter() {
            out.message(*seq, m).map_err(internal)?;
        }
        let dedup = live_dedup(dedup.into_iter().chain(tail.born.dedup.iter().cloned()), now_ms);
        out.finish(dedup.iter()).map(drop).map_err(internal)
    })?;
    Ok(Some(messages))
}

/// Writes `tail`, the log from where `chain` ends to `at`, as a delta; its header.
fn write_delta(dir: &Path, chain: &Chain, tail: &Tail, at: Position, now_ms: u64) -> Result<DeltaHead, StoreError> {
    // Only a compaction copy can replace a message of the files before: a new message's
    // number is above every number handed out before the tail.
    let replaced: Vec<i64> = tail.changes.replaced.keys().copied().filter(|seq| *seq <= chain.max_seq).collect();
    let changes = tail.changes.in_order();
    let born = &tail.born.messages;
    let head = DeltaHead {
        from: chain.at(),
        at,
        max_seq: chain.max_seq.max(tail.born.max_seq),
        max_queue_id: chain.max_queue_id.max(tail.born.max_queue_id),
        replaced: replaced.len() as u64,
        changes: changes.len() as u64,
        messages: born.len() as u64,
    };
    let dedup = live_dedup(tail.born.dedup.iter().cloned(), now_ms);
    store(dir, &delta_name(head.from), false, |sink| {
        let mut out = IndexWriter::delta(sink, &head, &replaced, &changes).map_err(internal)?;
        for (seq, m) in born.iter() {
            out.message(*seq, m).map_err(internal)?;
        }
        out.finish(dedup.iter()).map(drop).map_err(internal)
    })?;
    Ok(head)
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
    /// Writes the index of `source`, which must be what the log says at its end now, as
    /// a new base: at a clean shutdown, with nothing appending.
    pub fn write_index(&self, source: &dyn IndexSource) -> Result<(), StoreError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some((end, _)) = self.view() else { return Ok(()) };
        store(&self.dir, FILE, true, |out| write_whole(out, end, source))?;
        remove_deltas(&self.dir);
        *index = Some(Chain::base(end, source.message_count(), source.max_seq(), source.max_queue_id()));
        Ok(())
    }

    /// Where the index in use ends in the log.
    #[cfg(test)]
    pub(super) fn index_place(&self) -> Option<Position> {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(Chain::at)
    }

    /// Extends the index when at least `every` bytes of the log follow its place: with a
    /// delta of the entries after the place, or, when the chain is due
    /// ([`Chain::due_for_merge`]), with a new base merging the chain and those entries;
    /// with no usable index, a base of the whole log replayed. In every case only up to
    /// the first sealed segment that makes `every` bytes ([`cut_after_enough`]), so that a
    /// checkpoint far behind holds a bounded tail. Reads only what is durably written, so
    /// it runs beside the writer; returns at once, `false`, while another is being
    /// written.
    pub fn checkpoint(&self, now_ms: u64, every: u64) -> Result<bool, StoreError> {
        let mut index = match self.index.try_lock() {
            Ok(index) => index,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
        };
        let Some((end, segments)) = self.view() else { return Ok(false) };
        let Some(&(first, _, _)) = segments.first() else { return Ok(false) };
        let chain = index.clone().filter(|chain| segments.iter().any(|(n, _, _)| *n == chain.at().segment));
        let from = chain.as_ref().map_or(Position { segment: first, offset: 0 }, Chain::at);
        let behind: u64 = segments
            .iter()
            .filter(|(n, _, _)| *n >= from.segment)
            .map(|(n, _, len)| len.saturating_sub(if *n == from.segment { from.offset } else { 0 }))
            .sum();
        if behind < every || end == from {
            return Ok(false);
        }
        let (end, segments) = cut_after_enough(end, segments, from, every);
        let started = std::time::Instant::now();
        let mut extended = None;
        if let Some(mut chain) = chain {
            let mut tail = Tail::default();
            // Room for the messages the tail could hold, as replay at start reserves.
            let expected = (behind.min(every.saturating_mul(2)) / BYTES_PER_INSERT) as usize;
            tail.born.messages.reserve(expected);
            tail.changes.replaced.reserve(expected);
            let full = std::cell::Cell::new(false);
            let mut apply = |kind, body: &[u8], at| {
                let applied = tail.apply(kind, body, at);
                full.set(tail.changes.count >= MAX_TAIL_CHANGES);
                applied
            };
            let stopped = replay_view_until(&segments, from, &mut apply, &mut || full.get())?;
            let end = stopped.unwrap_or(end);
            if !chain.due_for_merge() {
                chain.push(write_delta(&self.dir, &chain, &tail, end, now_ms)?);
                extended = Some((chain, "delta"));
            } else if let Some(messages) = merge(&self.dir, &chain, &tail, end, now_ms)? {
                let max_seq = chain.max_seq.max(tail.born.max_seq);
                let max_queue_id = chain.max_queue_id.max(tail.born.max_queue_id);
                remove_deltas(&self.dir);
                extended = Some((Chain::base(end, messages, max_seq, max_queue_id), "merge"));
            } else {
                tracing::warn!("the message index does not read back; rebuilding it from the whole log");
            }
        }
        let (chain, how) = match extended {
            Some(extended) => extended,
            None => {
                let mut whole = Replayed::default();
                replay_view(&segments, Position { segment: first, offset: 0 }, &mut |kind, body, at| {
                    whole.apply(kind, body, at, false)
                })?;
                whole.dedup = live_dedup(std::mem::take(&mut whole.dedup), now_ms);
                store(&self.dir, FILE, false, |out| write_whole(out, end, &whole))?;
                remove_deltas(&self.dir);
                (Chain::base(end, whole.message_count(), whole.max_seq, whole.max_queue_id), "rebuild")
            }
        };
        *index = Some(chain);
        tracing::debug!(
            behind,
            how,
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
        store(dir.path(), FILE, false, |out| write_whole(out, at, &written)).unwrap();
        let (read_at, back) = read(dir.path(), &[1]).expect("the index reads back");
        assert_eq!(read_at.at(), at);
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
        let (mut deltas, mut merged, mut stopped_early) = (0, 0, 0);
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
                        let deltas_before = log.index.lock().unwrap().as_ref().map_or(0, |c| c.deltas.len());
                        if log.checkpoint(NOW, dice.roll(2 * SEGMENT)).unwrap() {
                            checkpoints += 1;
                            let place = log.index_place().unwrap();
                            let segments = log.segments();
                            let (_, length) = segments.iter().copied().find(|(n, _)| *n == place.segment).unwrap();
                            let head = segments.last().unwrap().0;
                            let cut = if place.segment == head { length } else { length - MARKER_BYTES };
                            stopped_early += usize::from(place.offset < cut);
                            match log.index.lock().unwrap().as_ref().unwrap().deltas.len() {
                                0 if deltas_before > 0 => merged += 1,
                                0 => {}
                                _ => deltas += 1,
                            }
                        }
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
        assert!(deltas > 40 && merged > 20, "{deltas} deltas, {merged} merges");
        assert!(stopped_early > 10, "{stopped_early} checkpoints stopped at their count of changes");
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
        let every = 2 * SEGMENT;
        let mut places = Vec::new();
        while log.checkpoint(0, every).unwrap() {
            let at = log.index_place().unwrap();
            places.push(at);
            let head = log.segments().last().unwrap().0;
            if at.segment != head {
                let (_, length) = log.segments().into_iter().find(|(n, _)| *n == at.segment).unwrap();
                assert_eq!(at.offset, length - MARKER_BYTES, "a cut ends before the seal");
            }
        }
        // The first cut short of the head, the next going on from it.
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

        // A base damaged after it was read. A checkpoint writing a delta does not read
        // it; a start finds its checksum wrong and replays the whole log, and the next
        // checkpoint rebuilds the index from it.
        let path = dir.path().join(SUBDIR).join(FILE);
        let mut damaged = std::fs::read(&path).unwrap();
        let last_message = damaged.len() - 4 - 8 - 20;
        damaged[last_message] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        write(&log, &[Change::Delete { seq: 4 }]);
        for seq in 13..=60 {
            insert(&log, seq, 1);
        }
        assert!(log.checkpoint(0, 1).unwrap());
        assert_eq!(log.index.lock().unwrap().as_ref().unwrap().deltas.len(), 1, "a delta after the damaged base");
        drop(log);
        let expected: Vec<i64> = (5..=60).collect();
        let seqs = |r: &Replayed| {
            let mut seqs: Vec<i64> = r.messages.seqs().collect();
            seqs.sort_unstable();
            seqs
        };
        let (log, replayed) = MessageLog::open(dir.path(), true, 400).unwrap();
        assert!(!replayed.from_index, "the base does not read back");
        assert_eq!(seqs(&replayed), expected);
        assert!(log.checkpoint(0, 1).unwrap());
        assert!(delta_files(dir.path()).is_empty(), "a rebuilt base removes the deltas");
        drop(log);
        let (_, replayed) = MessageLog::open(dir.path(), true, 400).unwrap();
        assert!(replayed.from_index);
        assert_eq!(seqs(&replayed), expected);
    }

    /// Two state changes to one message collapse into the later, but not across a move:
    /// a message moved to another queue and received there survives a purge of its first
    /// queue, in a delta and in the merge after it.
    #[test]
    fn a_moved_message_keeps_its_queue_through_later_state_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        for seq in 1..=2 {
            insert(&log, seq, 1);
        }
        assert!(log.checkpoint(0, 1).unwrap());
        let received = |seq, token| Change::State {
            seq,
            visible_at_ms: 50,
            receive_count: token as u32,
            first_receive_ms: 5,
            receipt_token: token,
        };
        write(&log, &[received(1, 1), received(1, 2), received(2, 1)]);
        write(
            &log,
            &[Change::Move { seq: 1, to_queue: 2, dlq_source: Some(1), visible_at_ms: 9, reset_receives: true }],
        );
        write(&log, &[received(1, 3), Change::Purge { queue_id: 1, max_seq: 2 }]);
        assert!(log.checkpoint(0, 1).unwrap());
        assert_eq!(log.index.lock().unwrap().as_ref().unwrap().deltas.len(), 1);
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert!(replayed.from_index);
        assert_eq!(replayed.messages.seqs().collect::<Vec<_>>(), vec![1]);
        let m = replayed.message(1);
        assert_eq!((m.state.queue_id, m.state.receipt_token, m.state.dlq_source), (2, 3, Some(1)));
        // The same through a merge of the base and the delta.
        let chain = log.index.lock().unwrap().clone().unwrap();
        assert_eq!(merge(&log.dir, &chain, &Tail::default(), chain.at(), 0).unwrap(), Some(1));
        let (_, merged) = read(&log.dir, &log.segments().iter().map(|(n, _)| *n).collect::<Vec<_>>()).unwrap();
        assert_eq!(merged.message(1).state, m.state);
    }

    /// The deltas of the index directory, by name.
    fn delta_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(SUBDIR))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.ends_with(DELTA_SUFFIX))
            .collect();
        names.sort_unstable();
        names
    }

    /// Checkpoints add deltas, each named by the place the chain ended at, while the log
    /// mostly grows; once the deltas hold enough changes to earlier messages, one merges
    /// them into a new base and removes them. A delta torn by a crash ends the chain at
    /// the one before it. Every start finds what the whole log says.
    #[test]
    fn deltas_follow_the_base_until_a_merge_replaces_them() {
        const SEGMENT: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        let chain = |log: &MessageLog| log.index.lock().unwrap().clone().unwrap();
        let starts_as_the_whole_log = |dir: &Path| {
            let (_, from_index) = MessageLog::open(dir, true, SEGMENT).unwrap();
            assert!(from_index.from_index);
            let saved = std::fs::read(dir.join(SUBDIR).join(FILE)).unwrap();
            std::fs::remove_file(dir.join(SUBDIR).join(FILE)).unwrap();
            let (_, whole) = MessageLog::open(dir, true, SEGMENT).unwrap();
            assert!(!whole.from_index);
            std::fs::write(dir.join(SUBDIR).join(FILE), saved).unwrap();
            assert_eq!(found(&from_index, 0), found(&whole, 0));
            whole.messages.len()
        };
        for seq in 1..=20 {
            insert(&log, seq, 1 + seq % 2);
        }
        assert!(log.checkpoint(0, 1).unwrap());
        assert!(chain(&log).deltas.is_empty(), "the first checkpoint writes a base");
        // Growth with a few changes to the base's messages: deltas.
        let mut seq = 20;
        for round in 1..=3i64 {
            let from = chain(&log).at();
            for _ in 0..10 {
                seq += 1;
                insert(&log, seq, 1 + seq % 2);
            }
            write(&log, &[Change::Delete { seq: round }]);
            write(&log, &[Change::Purge { queue_id: 2, max_seq: 2 * round }]);
            assert!(log.checkpoint(0, 1).unwrap());
            let after = chain(&log);
            assert_eq!(after.deltas.len(), round as usize, "round {round}");
            assert_eq!(after.deltas.last().unwrap().from, from);
            assert!(delta_files(dir.path()).contains(&delta_name(from)));
            starts_as_the_whole_log(dir.path());
        }
        let deltas = delta_files(dir.path());
        assert_eq!(deltas.len(), 3);

        // The last delta torn: the chain stops at the one before, the log after it replays.
        let last = dir.path().join(SUBDIR).join(&deltas[2]);
        let whole_delta = std::fs::read(&last).unwrap();
        std::fs::write(&last, &whole_delta[..whole_delta.len() / 2]).unwrap();
        drop(log);
        let (log, _) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        assert_eq!(chain(&log).deltas.len(), 2, "the torn delta is left out");
        let live = starts_as_the_whole_log(dir.path());

        // Deletes of earlier messages until the deltas hold one change per four messages.
        let mut deleted = 0;
        for victim in 21..=seq {
            if !chain(&log).due_for_merge() {
                write(&log, &[Change::Delete { seq: victim }]);
                deleted += 1;
                insert(&log, 1000 + victim, 1);
                assert!(log.checkpoint(0, 1).unwrap());
            }
        }
        assert!(chain(&log).due_for_merge(), "{deleted} deletes later");
        write(&log, &[Change::Delete { seq }]);
        assert!(log.checkpoint(0, 1).unwrap());
        assert!(chain(&log).deltas.is_empty(), "the merge writes a base");
        assert!(delta_files(dir.path()).is_empty(), "and removes the deltas");
        drop(log);
        assert_eq!(starts_as_the_whole_log(dir.path()), live - 1);
    }
}
