//! SQS messages as an append-only log: the one durable record of every message and of
//! every change to one (receive, visibility, move, delete, purge) and of FIFO
//! deduplication entries. Replaying the segments in order rebuilds the live messages;
//! SQLite keeps only what is small and rarely changes (queues, move tasks).
//!
//! Why: with SQLite as the record, the writer spends 8–12 µs of CPU per message on
//! statements, B-tree pages and WAL frames (docs/segment-log.md); an entry here is one
//! encode into the group's buffer, and a group commit is one `write` and one `fdatasync`.
//!
//! Layout: `messages/NNNNNNNN.log` segments, each a run of entries
//! `length u32 | crc32 u32 | kind u8 | payload` (length and checksum cover kind and
//! payload). A segment that is not the head ends with a `Seal` entry, written and synced
//! before the next segment's file is created, so:
//! - in the head segment, a bad entry (short, wrong checksum) is a torn write of a group
//!   that was never acknowledged: it and everything after it are cut off at start;
//! - in a sealed segment, a bad entry before the seal is damage, and start is refused.
//!
//! Compaction copies the live messages of the *oldest* segment to the head with their
//! current state, then removes the segment. Only the oldest: an entry about a message
//! (a delete, a receive) can only be dropped once no older segment holds that message's
//! insert, and for the oldest segment nothing is older. Every later entry supersedes
//! what the removed segment said, so replay of the remaining segments gives the same
//! messages.

use crate::at_rest::{Sealer, StoredText, SEALED_OVERHEAD};
use crate::faults::Countdown;
use crate::le_bytes::Reader;
use crate::message_table::MessageTable;
use crate::queue_state::SeqMap;
use crate::record_log::sync_dir;
use crate::store::StoreError;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

mod index;
mod prepared;
pub use index::{IndexSource, CHECKPOINT_SEGMENTS};

/// Bytes before an entry's kind: its length and checksum.
const HEADER_LEN: usize = 8;
const SUBDIR: &str = "messages";
const SUFFIX: &str = ".log";
/// Marks an absent optional string (a real one is shorter than 4 GiB).
const NONE_LEN: u32 = u32::MAX;
/// An insert's body kind saying the body is another insert's, earlier in the same
/// segment: followed by how far back that insert starts and its length. Written only
/// within one append (so one segment), for a holder that has its own body; older
/// versions of Sluice do not read it.
const BODY_EARLIER: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Insert = 1,
    State = 2,
    Delete = 3,
    Move = 4,
    Purge = 5,
    Dedup = 6,
    Seal = 7,
    /// Ends an append: replay applies a group's entries only once it meets this, so a
    /// group torn by a crash takes no effect at all (a FIFO send's deduplication entry
    /// without its message would answer the client's retry as a duplicate of nothing).
    Commit = 8,
}

impl Kind {
    fn of(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Insert,
            2 => Kind::State,
            3 => Kind::Delete,
            4 => Kind::Move,
            5 => Kind::Purge,
            6 => Kind::Dedup,
            7 => Kind::Seal,
            8 => Kind::Commit,
            _ => return None,
        })
    }
}

/// Where an entry is: segment number, byte offset and length (header included).
/// Segments are far smaller than 4 GiB, so 32-bit offsets keep a message's index small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub segment: u32,
    pub offset: u32,
    pub length: u32,
}

/// A place in the log: a segment and a byte offset in it. Ordered as the log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u32,
    pub offset: u64,
}

/// A message's changing state, as an insert carries it and replay keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageState {
    pub queue_id: i64,
    pub visible_at_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub receipt_token: u64,
    /// The queue a dead-lettered message came from.
    pub dlq_source: Option<i64>,
}

/// A message's fixed content: what an insert carries besides its state.
#[derive(Debug, Clone)]
pub struct MessageContent {
    pub message_id: String,
    /// Sealed when the queue asks for server-side encryption.
    pub body: StoredText,
    pub body_md5: Option<StoredText>,
    pub attributes: Option<String>,
    pub system_attributes: Option<String>,
    pub sender_id: Cow<'static, str>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub sent_ms: u64,
}

/// A FIFO deduplication entry: live until it expires, whether or not its message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupRecord {
    pub queue_id: i64,
    pub scope: String,
    pub dedup_id: String,
    pub expires_ms: u64,
    pub message_id: String,
    pub seq: i64,
}

/// A change to write, borrowed from the caller's own structures.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Insert {
        seq: i64,
        state: &'a MessageState,
        content: &'a MessageContent,
        /// `None`: the body is `content`'s. `Some((start, length))`: the body is that of
        /// the insert at `start` of the same buffer (`length` bytes long, holding its own
        /// body), and `content.body` is not written. One body for a publish's deliveries
        /// instead of one per queue.
        body_in: Option<(usize, usize)>,
    },
    /// Receive or visibility change.
    State {
        seq: i64,
        visible_at_ms: u64,
        receive_count: u32,
        first_receive_ms: u64,
        receipt_token: u64,
    },
    Delete {
        seq: i64,
    },
    /// Into another queue (dead-letter redrive, or a move task back to the source), visible
    /// at `visible_at_ms`, never received there yet unless `reset_receives` is false.
    Move {
        seq: i64,
        to_queue: i64,
        dlq_source: Option<i64>,
        visible_at_ms: u64,
        reset_receives: bool,
    },
    /// Every message of `queue_id` up to `max_seq` (PurgeQueue; DeleteQueue with the
    /// next sequence number, so that a later queue given the same id keeps its messages).
    Purge {
        queue_id: i64,
        max_seq: i64,
    },
    Dedup(&'a DedupRecord),
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.out.extend_from_slice(b);
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.bytes(s.as_bytes()),
            None => self.u32(NONE_LEN),
        }
    }
    fn dedup(&mut self, d: &DedupRecord) {
        self.i64(d.queue_id);
        self.u64(d.expires_ms);
        self.i64(d.seq);
        self.bytes(d.scope.as_bytes());
        self.bytes(d.dedup_id.as_bytes());
        self.bytes(d.message_id.as_bytes());
    }
    /// An insert's body held by the insert `back` bytes before it, `length` long.
    fn body_earlier(&mut self, back: usize, length: usize) {
        self.u8(BODY_EARLIER);
        self.u32(back as u32);
        self.u32(length as u32);
    }
    /// As [`Writer::stored`], sealing a plain text with `sealer` as it is written.
    fn stored_sealing(&mut self, t: Option<&StoredText>, sealer: Option<&Sealer>) {
        match (t, sealer) {
            (Some(StoredText::Plain(s)), Some(sealer)) => {
                self.u8(1);
                self.u32((s.len() + SEALED_OVERHEAD) as u32);
                sealer.seal_into(s.as_bytes(), self.out);
            }
            (t, _) => self.stored(t),
        }
    }
    /// 0 plain, 1 sealed, 2 absent.
    fn stored(&mut self, t: Option<&StoredText>) {
        match t {
            Some(StoredText::Plain(s)) => {
                self.u8(0);
                self.bytes(s.as_bytes());
            }
            Some(StoredText::Sealed(b)) => {
                self.u8(1);
                self.bytes(b);
            }
            None => self.u8(2),
        }
    }
}

/// Appends `change` to `out` as one entry; returns its offset in `out` and its length.
pub fn encode(change: &Change<'_>, out: &mut Vec<u8>) -> (usize, usize) {
    encode_sealing(change, None, out)
}

/// As [`encode`], an insert's plain body and digest sealed with `sealer` as they are
/// written (a queue with server-side encryption).
pub fn encode_sealing(change: &Change<'_>, sealer: Option<&Sealer>, out: &mut Vec<u8>) -> (usize, usize) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let mut w = Writer { out };
    match *change {
        Change::Insert { seq, state, content, body_in } => {
            w.u8(Kind::Insert as u8);
            encode_state(&mut w, seq, state);
            w.u64(content.sent_ms);
            // The group first: replay reads the fields up to it and skips the rest.
            w.opt_str(content.group_id.as_deref());
            w.bytes(content.message_id.as_bytes());
            match body_in {
                None => w.stored_sealing(Some(&content.body), sealer),
                Some((holder, length)) => w.body_earlier(start - holder, length),
            }
            w.stored_sealing(content.body_md5.as_ref(), sealer);
            w.opt_str(content.attributes.as_deref());
            w.opt_str(content.system_attributes.as_deref());
            w.bytes(content.sender_id.as_bytes());
            w.opt_str(content.dedup_id.as_deref());
        }
        Change::State { seq, visible_at_ms, receive_count, first_receive_ms, receipt_token } => {
            w.u8(Kind::State as u8);
            w.i64(seq);
            w.u64(visible_at_ms);
            w.u32(receive_count);
            w.u64(first_receive_ms);
            w.u64(receipt_token);
        }
        Change::Delete { seq } => {
            w.u8(Kind::Delete as u8);
            w.i64(seq);
        }
        Change::Move { seq, to_queue, dlq_source, visible_at_ms, reset_receives } => {
            w.u8(Kind::Move as u8);
            w.i64(seq);
            w.i64(to_queue);
            w.i64(dlq_source.unwrap_or(0));
            w.u64(visible_at_ms);
            w.u8(u8::from(reset_receives));
        }
        Change::Purge { queue_id, max_seq } => {
            w.u8(Kind::Purge as u8);
            w.i64(queue_id);
            w.i64(max_seq);
        }
        Change::Dedup(d) => {
            w.u8(Kind::Dedup as u8);
            w.dedup(d);
        }
    }
    seal_header(out, start);
    (start, out.len() - start)
}

fn encode_state(w: &mut Writer<'_>, seq: i64, s: &MessageState) {
    w.i64(seq);
    w.i64(s.queue_id);
    w.u64(s.visible_at_ms);
    w.u32(s.receive_count);
    w.u64(s.first_receive_ms);
    w.u64(s.receipt_token);
    // Queue ids start at 1, so 0 says "none".
    w.i64(s.dlq_source.unwrap_or(0));
}

fn seal_header(out: &mut [u8], start: usize) {
    let body = &out[start + HEADER_LEN..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes of a marker entry ([`push_marker`]): a header and its kind.
const MARKER_BYTES: u64 = HEADER_LEN as u64 + 1;

/// Appends an entry with no payload (a seal or a commit).
fn push_marker(out: &mut Vec<u8>, kind: Kind) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(kind as u8);
    seal_header(out, start);
}

/// The message log's own encodings on top of the shared little-endian reads.
impl<'a> Reader<'a> {
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n as usize)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        let n = self.u32()?;
        if n == NONE_LEN {
            return Some(None);
        }
        std::str::from_utf8(self.take(n as usize)?).ok().map(Some)
    }
    fn stored(&mut self) -> Option<Option<StoredText>> {
        match self.u8()? {
            0 => Some(Some(StoredText::Plain(self.string()?))),
            1 => Some(Some(StoredText::Sealed(self.bytes()?.to_vec()))),
            2 => Some(None),
            _ => None,
        }
    }
    /// An insert's body: its own, or ([`BODY_EARLIER`]) an empty one and how far back the
    /// insert holding it starts and that insert's length.
    fn body(&mut self) -> Option<(StoredText, Option<(u32, u32)>)> {
        if self.bytes.get(self.at) != Some(&BODY_EARLIER) {
            return Some((self.stored()??, None));
        }
        self.u8()?;
        Some((StoredText::Plain(String::new()), Some((self.u32()?, self.u32()?))))
    }
    fn dedup(&mut self) -> Option<DedupRecord> {
        Some(DedupRecord {
            queue_id: self.i64()?,
            expires_ms: self.u64()?,
            seq: self.i64()?,
            scope: self.string()?,
            dedup_id: self.string()?,
            message_id: self.string()?,
        })
    }
    fn state(&mut self) -> Option<(i64, MessageState)> {
        let seq = self.i64()?;
        let state = MessageState {
            queue_id: self.i64()?,
            visible_at_ms: self.u64()?,
            receive_count: self.u32()?,
            first_receive_ms: self.u64()?,
            receipt_token: self.u64()?,
            dlq_source: Some(self.i64()?).filter(|q| *q != 0),
        };
        Some((seq, state))
    }
}

/// The entry at the start of `bytes`, checked: its kind and body (kind byte included) and
/// its whole length; `None` when it is short or its checksum does not match.
fn entry_at(bytes: &[u8]) -> Option<(Kind, &[u8], usize)> {
    let (body, crc) = framed(bytes)?;
    (crc32fast::hash(body) == crc).then_some(())?;
    Some((Kind::of(body[0])?, body, HEADER_LEN + body.len()))
}

/// As [`entry_at`] for bytes [`checked_prefix`] has already checked.
fn checked_entry_at(bytes: &[u8]) -> Option<(Kind, &[u8], usize)> {
    let (body, _) = framed(bytes)?;
    Some((Kind::of(body[0])?, body, HEADER_LEN + body.len()))
}

/// The body (kind byte first) and stored checksum of the entry at the start of `bytes`.
fn framed(bytes: &[u8]) -> Option<(&[u8], u32)> {
    let header = bytes.get(..HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let body = bytes.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
    (len > 0).then_some((body, crc))
}

/// Where the run of whole entries with matching checksums at the start of `bytes` ends.
fn checked_prefix(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some((_, _, len)) = entry_at(&bytes[at..]) {
        at += len;
    }
    at
}

/// A live message as replay leaves it: where its insert is, its state, its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMessage {
    pub at: Location,
    pub state: MessageState,
    pub sent_ms: u64,
    pub group_id: Option<Box<str>>,
}

/// What the log says: its live messages, deduplication entries and the highest sequence
/// number and queue id it has seen (neither may be handed out again).
#[derive(Debug, Default)]
pub struct Replayed {
    /// Found by sequence number, hashed by one multiplication (SipHash made the inserts
    /// a sixth of a million-message start); kept in a vector beside a map of places, not
    /// in the map itself: a million messages' map was 220 MB, the high-water mark of
    /// such a start.
    pub messages: MessageTable<(i64, LiveMessage)>,
    pub dedup: Vec<DedupRecord>,
    pub max_seq: i64,
    pub max_queue_id: i64,
    /// Read from the index a clean shutdown left, not replayed.
    pub from_index: bool,
}

impl Replayed {
    /// Live message `seq`, which tests expect to be there.
    #[cfg(test)]
    pub(crate) fn message(&self, seq: i64) -> &LiveMessage {
        &self.messages.get(seq).unwrap_or_else(|| panic!("message {seq} is live")).1
    }

    /// Applies one checked entry found at `at`; `only_known` limits the changes applied
    /// to messages already known (compaction follows the oldest segment's messages only).
    fn apply(&mut self, kind: Kind, body: &[u8], at: Location, only_known: bool) -> Option<()> {
        let mut r = Reader::new(&body[1..]);
        match kind {
            Kind::Insert => {
                let (seq, state) = r.state()?;
                let sent_ms = r.u64()?;
                let group_id = r.opt_str()?.map(Box::from);
                self.max_seq = self.max_seq.max(seq);
                self.max_queue_id = self.max_queue_id.max(state.queue_id);
                if !only_known || self.messages.contains(seq) {
                    self.messages.insert((seq, LiveMessage { at, state, sent_ms, group_id }));
                }
            }
            Kind::State | Kind::Delete | Kind::Move => {
                let seq = r.i64()?;
                if kind == Kind::Move {
                    let to_queue = r.clone().i64()?;
                    self.max_queue_id = self.max_queue_id.max(to_queue);
                }
                if let Some((_, m)) = self.messages.get_mut(seq) {
                    if !change_message(kind, &mut m.state, &mut r)? {
                        self.messages.remove(seq);
                    }
                }
            }
            Kind::Purge => {
                let (queue_id, max_seq) = (r.i64()?, r.i64()?);
                self.max_queue_id = self.max_queue_id.max(queue_id);
                self.messages.retain(|(seq, m)| m.state.queue_id != queue_id || *seq > max_seq);
            }
            Kind::Dedup => {
                let d = r.dedup()?;
                self.max_seq = self.max_seq.max(d.seq);
                self.max_queue_id = self.max_queue_id.max(d.queue_id);
                if !only_known {
                    self.dedup.push(d);
                }
            }
            Kind::Seal | Kind::Commit => {}
        }
        Some(())
    }
}

/// Applies a state, delete or move entry (`r` just past its sequence number) to the
/// state of its message; whether the message is still live.
fn change_message(kind: Kind, state: &mut MessageState, r: &mut Reader<'_>) -> Option<bool> {
    match kind {
        Kind::State => {
            state.visible_at_ms = r.u64()?;
            state.receive_count = r.u32()?;
            state.first_receive_ms = r.u64()?;
            state.receipt_token = r.u64()?;
        }
        Kind::Move => {
            state.queue_id = r.i64()?;
            state.dlq_source = Some(r.i64()?).filter(|q| *q != 0);
            state.visible_at_ms = r.u64()?;
            state.receipt_token = 0;
            if r.u8()? != 0 {
                state.receive_count = 0;
                state.first_receive_ms = 0;
            }
        }
        Kind::Delete => return Some(false),
        _ => return None,
    }
    Some(true)
}

/// Decodes the insert entry `bytes` (header included) into its content.
/// A decoded insert and, when its body is an earlier insert's, how far back that insert
/// starts and its length (`content.body` is then empty until [`read_insert`] fills it).
type DecodedInsert = (i64, MessageState, MessageContent, Option<(u32, u32)>);

fn decode_insert(bytes: &[u8]) -> Option<DecodedInsert> {
    let (kind, body, _) = entry_at(bytes)?;
    if kind != Kind::Insert {
        return None;
    }
    let mut r = Reader::new(&body[1..]);
    let (seq, state) = r.state()?;
    let sent_ms = r.u64()?;
    let group_id = r.opt_str()?.map(str::to_owned);
    let message_id = r.string()?;
    let (body, body_in) = r.body()?;
    let content = MessageContent {
        message_id,
        body,
        body_md5: r.stored()?,
        attributes: r.opt_str()?.map(str::to_owned),
        system_attributes: r.opt_str()?.map(str::to_owned),
        sender_id: r.string()?.into(),
        group_id,
        dedup_id: r.opt_str()?.map(str::to_owned),
        sent_ms,
    };
    Some((seq, state, content, body_in))
}

/// The insert at `at` of `file` (segment `at.segment`), its body read from the earlier
/// insert holding it when it shares one; and the offset of the insert holding the body
/// (`at`'s own when it has its own).
fn read_insert(file: &File, at: Location) -> Result<(i64, MessageState, MessageContent, u32), StoreError> {
    let not_insert = |offset: u32| corrupt(at.segment, offset as usize, "not a message insert");
    let mut bytes = vec![0; at.length as usize];
    file.read_exact_at(&mut bytes, u64::from(at.offset)).map_err(internal)?;
    let (seq, state, mut content, body_in) = decode_insert(&bytes).ok_or_else(|| not_insert(at.offset))?;
    let Some((back, length)) = body_in else { return Ok((seq, state, content, at.offset)) };
    let holder = at.offset.checked_sub(back).ok_or_else(|| not_insert(at.offset))?;
    bytes.resize(length as usize, 0);
    file.read_exact_at(&mut bytes, u64::from(holder)).map_err(internal)?;
    match decode_insert(&bytes) {
        Some((_, _, held, None)) => content.body = held.body,
        _ => return Err(not_insert(holder)),
    }
    Ok((seq, state, content, holder))
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("message log: {e}"))
}

fn corrupt(segment: u32, offset: usize, what: &str) -> StoreError {
    StoreError::Corrupt(format!("message log segment {segment}, offset {offset}: {what}"))
}

struct Head {
    segment: u32,
    file: Option<Arc<File>>,
    /// End of the last entry written whole: the next append goes here.
    end: u64,
    /// How far the file is written: entries, then zeros ahead of them.
    zeroed: u64,
    /// End of a group whose sync failed: the next append writes zeros after its own
    /// entries up to here, so that replay cannot find part of that group whole behind it
    /// (a failed write must not come back after a restart).
    refused_to: u64,
    /// Without fsync: how far the file's write-back has been started, in entries (see
    /// [`WRITE_BACK_EVERY`]).
    written_back: u64,
    /// In a prepared segment (written whole with zeros ahead of time): how far its pages
    /// have been asked to be read back in, should they have left the page cache.
    fetched: Option<u64>,
    /// Whether the next segment has been asked of the preparer.
    next_wanted: bool,
}

impl Head {
    /// The head at `end` of `segment` (not a file yet when `file` is `None`).
    fn new(segment: u32, file: Option<Arc<File>>, end: u64) -> Head {
        Head { segment, file, end, zeroed: end, refused_to: 0, written_back: end, fetched: None, next_wanted: false }
    }
}

/// A message read back: its sequence number, its state as inserted, and its content.
pub type Read = (i64, MessageState, MessageContent);

/// [`MessageLog::read_many`] reads places this close after the last one's end with it, and
/// its reads span at most this many bytes (kept under glibc's 128 KiB threshold, past
/// which each buffer would be a fresh `mmap`).
const READ_GAP: u64 = 8 * 1024;
const READ_SPAN: u64 = 96 * 1024;

/// The head segment is written with zeros this far ahead of its entries, so that a
/// group's `fdatasync` finds the file's size unchanged and need not commit the
/// filesystem's journal for it: SendMessage on one connection went from 2,662–2,967 to
/// 3,588–3,675 a second (p50 0.32–0.35 → 0.26 ms). Replay stops at the zeros (an entry is
/// never empty), and a sealed segment is cut at its seal.
const ZERO_AHEAD: u64 = 1024 * 1024;

/// Only groups smaller than this are written into zeros ahead; larger ones extend the
/// file themselves. Zeros ahead cost as many bytes as the entries that later fill them
/// (written into the page cache, then to disk, twice in all), which a large group pays
/// in full for a journal commit saved once per sync; a small group the other way round.
/// Side by side (`cpu-split.sh sns-fanout`, five alternating pairs, groups of about
/// 100 KiB): the writer's CPU per publish 54.5 → 45.5 µs, 9.5k → 10.9k publishes/s; the
/// sends of one connection (groups of one message) keep their zeros ahead.
const ZERO_AHEAD_BELOW: u64 = 64 * 1024;

/// The next segment is asked of the preparer once the head is this part of the way
/// in (a quarter): early enough that it is ready at ~300 MB/s of log, late enough that a
/// server whose log stays small never writes one (tests, idle servers), and that its
/// pages are likely still cached when written.
const PREPARE_AT_PART: u64 = 4;

/// Without fsync, the head's write-back is started each time this much more of it has
/// been written, not waited for. Sealing a segment still syncs it (so that a sealed
/// segment is whole after any crash, and the next start does not refuse it), and with
/// 64 MiB left dirty that sync stalled the writer 30-40 ms at every rotation: at 42,000
/// sends/s paced, `--no-fsync` read p99 29-31 ms against 3-9 ms with fsync.
const WRITE_BACK_EVERY: u64 = 1024 * 1024;

/// Writes `length` zero bytes at `offset`, from one block of zeros that is never written.
/// A fresh `vec![0; 1 MiB]` for each megabyte of log was a tenth of the writer's CPU in
/// sqs-send-batch: glibc handed back new pages each time, which faulted in as `memset`
/// zeroed them.
fn write_zeros(file: &File, offset: u64, length: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut done = 0;
    while done < length {
        let n = (length - done).min(ZEROS.len() as u64);
        file.write_all_at(&ZEROS[..n as usize], offset + done)?;
        done += n;
    }
    Ok(())
}

/// Asks the kernel to read `length` bytes of `file` at `offset` into the page cache, not
/// waiting for them.
#[cfg(target_os = "linux")]
fn fetch_ahead(file: &File, offset: u64, length: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise takes a file descriptor, two integers and a flag and shares no
    // memory with the caller; the descriptor is `file`'s, open for the whole call since
    // `file` is borrowed. A range past the end is not an error.
    let result =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), offset as i64, length as i64, libc::POSIX_FADV_WILLNEED) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(result))
    }
}

#[cfg(not(target_os = "linux"))]
fn fetch_ahead(_file: &File, _offset: u64, _length: u64) -> std::io::Result<()> {
    Ok(())
}

/// A compaction planned off the writer thread from the log as it stood at `upto`: the
/// oldest segment's messages still live there, and its deduplication entries.
#[derive(Debug)]
pub struct CompactionDraft {
    segment: u32,
    upto: Position,
    follow: Replayed,
}

/// One step of the compaction of the oldest segment: the copies it writes (whole
/// entries, each a live message's insert with its current state, or a live deduplication
/// entry), and for each copied message its sequence number, queue and place in
/// `entries`; `rest` is the draft of the steps left, `None` when the segment can go once
/// these copies are synced.
#[derive(Debug, Default)]
pub struct CompactionPlan {
    pub segment: u32,
    pub entries: Vec<u8>,
    pub copied: Vec<(i64, i64, usize, usize)>,
    pub rest: Option<CompactionDraft>,
}

/// A compaction step copies at most this share of a segment (it stops after the message
/// that passes it; 4 MiB of the default 64 MiB segments): a segment of live messages
/// copied in one group held every write queued behind it for the whole write and sync.
pub const COMPACTION_STEPS_PER_SEGMENT: u64 = 16;

pub struct MessageLog {
    dir: PathBuf,
    durable: bool,
    segment_bytes: u64,
    head: Mutex<Head>,
    /// Open handles of every segment; a reader keeps its `Arc` while compaction may
    /// remove the file, whose bytes stay readable until the last handle closes.
    files: Mutex<Segments>,
    /// The segment the last compaction removed, still open: a receive that looked up a
    /// message's place just before reads it here, until the next compaction.
    retired: Mutex<Option<(u32, Arc<File>)>>,
    /// Bytes of the inserts of messages not deleted: what compaction would keep, and what
    /// `--max-data-mib` counts of the log. Replay sets it; the writer keeps it.
    live_bytes: AtomicU64,
    /// The index files in use, written or read at start; held while an index file is
    /// written, so that one is written at a time.
    index: Mutex<Option<index::Chain>>,
    /// Group syncs still to fail on purpose (fault-injection tests).
    failing_syncs: Countdown,
    /// With fsync, makes the next segment ahead of the writer.
    preparer: Option<prepared::Preparer>,
}

/// Open segment files by number.
type Segments = BTreeMap<u32, Arc<File>>;

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}{SUFFIX}"))
}

impl MessageLog {
    /// Opens (creating) the log under `data_dir` and replays it. Cuts a torn tail off the
    /// head segment; refuses a sealed segment with a damaged entry.
    pub fn open(data_dir: &Path, durable: bool, segment_bytes: u64) -> Result<(MessageLog, Replayed), StoreError> {
        assert!(segment_bytes < u64::from(u32::MAX), "offsets are 32-bit");
        let dir = data_dir.join(SUBDIR);
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(internal)? {
            let name = entry.map_err(internal)?.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)).and_then(|n| n.parse::<u32>().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        let indexed = index::read(&dir, &numbers);
        let chain = indexed.as_ref().map(|(chain, _)| chain.clone());
        let (files, head, replayed) = replay(&dir, &numbers, durable, indexed.map(|(chain, r)| (chain.at(), r)))?;
        let preparer =
            if durable { Some(prepared::Preparer::start(&dir, segment_bytes).map_err(internal)?) } else { None };
        let log = MessageLog {
            dir,
            durable,
            segment_bytes,
            head: Mutex::new(head),
            files: Mutex::new(files),
            retired: Mutex::new(None),
            live_bytes: AtomicU64::new(replayed.messages.iter().map(|(_, m)| u64::from(m.at.length)).sum()),
            index: Mutex::new(chain),
            failing_syncs: Countdown::default(),
            preparer,
        };
        Ok((log, replayed))
    }

    /// Makes the syncs of the next `n` appended groups fail as an I/O error would.
    #[doc(hidden)]
    pub fn fail_next_syncs(&self, n: usize) {
        self.failing_syncs.arm(n);
    }

    fn sync_group_file(&self, file: &File) -> std::io::Result<()> {
        if self.failing_syncs.fire() {
            return Err(std::io::Error::other("injected sync failure"));
        }
        file.sync_data()
    }

    fn head(&self) -> MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Log bytes per message insert at SQS's usual size (1 KiB bodies), for sizing a
/// replay's map once.
const BYTES_PER_INSERT: u64 = 1200;

/// About how many messages segments `numbers` of `dir` can insert after `from`.
fn inserts_after(dir: &Path, numbers: &[u32], from: Position) -> usize {
    let bytes: u64 = numbers
        .iter()
        .filter(|n| **n >= from.segment)
        .filter_map(|n| {
            let start = if *n == from.segment { from.offset } else { 0 };
            std::fs::metadata(segment_path(dir, *n)).ok().map(|m| m.len().saturating_sub(start))
        })
        .sum();
    (bytes / BYTES_PER_INSERT) as usize
}

/// Replays segments `numbers` of `dir` in order, cutting a torn tail off the head: the
/// segments' open files, the head and what the log says. With an index, from the index's
/// place on, onto what it holds; the segments before that place are only opened.
fn replay(
    dir: &Path,
    numbers: &[u32],
    durable: bool,
    indexed: Option<(Position, Replayed)>,
) -> Result<(Segments, Head, Replayed), StoreError> {
    let open = |path: &Path| std::fs::OpenOptions::new().read(true).write(true).open(path);
    let (from, mut replayed) = indexed.unwrap_or_default();
    let mut files = BTreeMap::new();
    for &n in numbers.iter().filter(|n| **n < from.segment) {
        files.insert(n, Arc::new(open(&segment_path(dir, n)).map_err(internal)?));
    }
    let numbers: Vec<u32> = numbers.iter().copied().filter(|n| *n >= from.segment).collect();
    let start_of = |n: u32| if n == from.segment { from.offset } else { 0 };
    // Without an index: room for what the log could hold, so that the map does not grow
    // (and copy itself) twenty times on the way to a million. An index's map already has
    // room for its tail ([`index::read`]), and this asks for none more.
    replayed.messages.reserve(inserts_after(dir, &numbers, from));
    let mut head = Head::new(1, None, 0);
    // A second thread reads each segment and checks its entries' checksums while this
    // one applies the segment before: a million-message start takes about half as long.
    // Two buffers go back and forth, not a fresh 64 MiB allocation per segment (its page
    // faults cost more than the read).
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<std::io::Result<(File, Vec<u8>, usize)>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        let _ = empty_tx.send(Vec::new());
    }
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let paths: Vec<(PathBuf, u64)> = numbers.iter().map(|n| (segment_path(dir, *n), start_of(*n))).collect();
        scope.spawn(move || {
            for (path, start) in paths {
                let Ok(mut buffer) = empty_rx.recv() else { return };
                let read = open(&path).and_then(|mut file| {
                    buffer.clear();
                    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
                    std::io::Read::read_to_end(&mut &file, &mut buffer)?;
                    let checked = checked_prefix(&buffer);
                    Ok((file, buffer, checked))
                });
                if full_tx.send(read).is_err() {
                    return;
                }
            }
        });
        // Both channel ends held here go when this closure returns, early or not, so
        // that the reader never waits for a buffer or a receiver that is gone.
        let (full_rx, empty_tx) = (full_rx, empty_tx);
        for (i, &segment) in numbers.iter().enumerate() {
            let last = i + 1 == numbers.len();
            let start = start_of(segment);
            let (file, buffer, checked) = full_rx.recv().map_err(internal)?.map_err(internal)?;
            let (end, sealed) = replay_segment(segment, &buffer[..checked], start, &mut |kind, body, at| {
                replayed.apply(kind, body, at, false)
            })?;
            let (end, file_len) = (start + end as u64, start + buffer.len() as u64);
            let _ = empty_tx.send(buffer);
            if !last && !sealed {
                return Err(corrupt(segment, end as usize, "a segment before the head ends without its seal"));
            }
            if last && sealed {
                // A crash between sealing this segment and creating the next one.
                files.insert(segment, Arc::new(file));
                head = Head::new(segment + 1, None, 0);
            } else if last {
                if end < file_len {
                    // A group commit that was cut short by a crash (never acknowledged),
                    // or the zeros written ahead of the entries.
                    file.set_len(end).map_err(internal)?;
                    if durable {
                        file.sync_all().map_err(internal)?;
                    }
                }
                let file = Arc::new(file);
                head = Head::new(segment, Some(file.clone()), end);
                files.insert(segment, file);
            } else {
                files.insert(segment, Arc::new(file));
            }
        }
        Ok(())
    })?;
    Ok((files, head, replayed))
}

impl MessageLog {
    fn files(&self) -> MutexGuard<'_, Segments> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `entries` (whole entries from [`encode`]) and a commit marker at the head
    /// with one write and syncs them; returns the segment and offset they start at. On
    /// failure nothing is acknowledged and the next append writes over whatever part
    /// reached the file. `entries` is as it was on return.
    pub fn append(&self, entries: &mut Vec<u8>) -> Result<(u32, u64), StoreError> {
        let given = entries.len();
        push_marker(entries, Kind::Commit);
        let written = self.write_group(entries);
        entries.truncate(given);
        written
    }

    fn write_group(&self, entries: &[u8]) -> Result<(u32, u64), StoreError> {
        let mut head = self.head();
        let length = entries.len() as u64;
        if head.end > 0 && head.end + length > self.segment_bytes {
            self.rotate(&mut head)?;
        }
        let file = match &head.file {
            Some(file) => file.clone(),
            None => {
                let path = segment_path(&self.dir, head.segment);
                let file = match self.preparer.as_ref().and_then(|p| p.take(&path)) {
                    Some(prepared) => {
                        head.zeroed = self.segment_bytes;
                        head.fetched = Some(0);
                        Arc::new(prepared)
                    }
                    None => Arc::new(crate::record_log::create_segment(&self.dir, &path).map_err(internal)?),
                };
                self.files().insert(head.segment, file.clone());
                head.file = Some(file.clone());
                file
            }
        };
        let offset = head.end;
        if let Some(fetched) = head.fetched.filter(|f| offset + length > *f) {
            // Pages of the prepared file left idle long enough may have been dropped from
            // the page cache; a write into part of one would read it first, on this thread.
            let (from, to) = (fetched.max(offset), offset + length + ZERO_AHEAD);
            let _ = fetch_ahead(&file, from, to - from);
            head.fetched = Some(to);
        }
        if offset + length > head.zeroed && length < ZERO_AHEAD_BELOW {
            let to = (offset + length + ZERO_AHEAD).min(self.segment_bytes.max(offset + length));
            write_zeros(&file, head.zeroed, to - head.zeroed).map_err(internal)?;
            head.zeroed = to;
        }
        file.write_all_at(entries, offset).map_err(internal)?;
        head.zeroed = head.zeroed.max(offset + length);
        if head.refused_to > offset + length {
            write_zeros(&file, offset + length, head.refused_to - offset - length).map_err(internal)?;
        }
        if self.durable {
            if let Err(e) = self.sync_group_file(&file) {
                head.refused_to = head.refused_to.max(offset + length);
                return Err(internal(e));
            }
        } else if offset + length >= head.written_back + WRITE_BACK_EVERY {
            // Up to the entries' end, not past the zeros ahead, which entries will
            // overwrite (dirtying them again). A courtesy to the seal's sync: where the
            // file system refuses it, the kernel writes back on its own schedule.
            let _ = crate::paced_write::start_write_back(&file, head.written_back, offset + length - head.written_back);
            head.written_back = offset + length;
        }
        head.refused_to = 0;
        head.end = offset + length;
        if !head.next_wanted && head.end >= self.segment_bytes / PREPARE_AT_PART {
            if let Some(preparer) = &self.preparer {
                preparer.want();
            }
            head.next_wanted = true;
        }
        Ok((head.segment, offset))
    }

    /// Seals the head segment (a synced `Seal` entry) and moves the head to a new one,
    /// created at the next append.
    fn rotate(&self, head: &mut Head) -> Result<(), StoreError> {
        if let Some(file) = &head.file {
            let mut seal = Vec::new();
            push_marker(&mut seal, Kind::Seal);
            file.write_all_at(&seal, head.end).map_err(internal)?;
            // A sealed segment ends at its seal: the zeros ahead go.
            file.set_len(head.end + seal.len() as u64).map_err(internal)?;
            file.sync_data().map_err(internal)?;
        }
        *head = Head::new(head.segment + 1, None, 0);
        Ok(())
    }

    fn file(&self, segment: u32) -> Option<Arc<File>> {
        if let Some(file) = self.files().get(&segment) {
            return Some(file.clone());
        }
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.as_ref().filter(|(n, _)| *n == segment).map(|(_, f)| f.clone())
    }

    /// The message whose insert is at `at`: its sequence number, state as inserted and
    /// content. `None` when the segment is gone (compaction moved the message on).
    pub fn read(&self, at: Location) -> Result<Option<Read>, StoreError> {
        let Some(file) = self.file(at.segment) else { return Ok(None) };
        read_insert(&file, at).map(|(seq, state, content, _)| Some((seq, state, content)))
    }

    /// [`MessageLog::read`] of each of `places`, in order, with one `pread` for each run of
    /// places near one another in a segment: a receive takes messages sent one after
    /// another, whose inserts lie side by side, and read each with a syscall and an
    /// allocation of its own.
    pub fn read_many(&self, places: &[Location]) -> Result<Vec<Option<Read>>, StoreError> {
        let mut order: Vec<usize> = (0..places.len()).collect();
        order.sort_unstable_by_key(|&i| (places[i].segment, places[i].offset));
        let mut out: Vec<Option<Read>> = std::iter::repeat_with(|| None).take(places.len()).collect();
        let mut rest = &order[..];
        while let Some(&first) = rest.first() {
            let at = places[first];
            let (start, mut end) = (u64::from(at.offset), u64::from(at.offset) + u64::from(at.length));
            let mut run = 1;
            for &next in &rest[1..] {
                let place = places[next];
                let next_end = u64::from(place.offset) + u64::from(place.length);
                if place.segment != at.segment
                    || u64::from(place.offset) > end + READ_GAP
                    || next_end - start > READ_SPAN
                {
                    break;
                }
                end = end.max(next_end);
                run += 1;
            }
            let (span, later) = rest.split_at(run);
            rest = later;
            let Some(file) = self.file(at.segment) else { continue };
            let mut bytes = vec![0; (end - start) as usize];
            file.read_exact_at(&mut bytes, start).map_err(internal)?;
            for &i in span {
                let place = places[i];
                let from = (u64::from(place.offset) - start) as usize;
                let entry = &bytes[from..from + place.length as usize];
                out[i] = match decode_insert(entry) {
                    Some((seq, state, content, None)) => Some((seq, state, content)),
                    // A body held by an earlier insert: read as alone.
                    Some((_, _, _, Some(_))) => self.read(place)?,
                    None => return Err(corrupt(place.segment, place.offset as usize, "not a message insert")),
                };
            }
        }
        Ok(out)
    }

    /// Bytes of live messages' inserts.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Counts inserts appended (`added`) and messages deleted (`freed`, their inserts'
    /// lengths); only the writer calls it, after its append.
    pub(crate) fn account(&self, added: u64, freed: u64) {
        let live = self.live_bytes().saturating_add(added).saturating_sub(freed);
        self.live_bytes.store(live, Ordering::Relaxed);
    }

    /// Segment numbers and sizes, oldest first (the head's is its written end).
    pub fn segments(&self) -> Vec<(u32, u64)> {
        self.segment_views(&self.head()).into_iter().map(|(n, _, len)| (n, len)).collect()
    }

    /// Every segment with its open file and length written (the head's is its end).
    fn segment_views(&self, head: &Head) -> Vec<SegmentView> {
        self.files()
            .iter()
            .map(|(&n, f)| {
                let len = if n == head.segment { head.end } else { f.metadata().map(|m| m.len()).unwrap_or(0) };
                (n, f.clone(), len)
            })
            .collect()
    }

    /// Plans the compaction of the oldest sealed segment from the log as durably written
    /// now, beside the writer: replays the segment for its inserts and deduplication
    /// entries, then every later segment for what became of those messages. The writer
    /// completes it with [`MessageLog::plan_compaction`]. `None` when only the head exists.
    pub fn draft_compaction(&self) -> Result<Option<CompactionDraft>, StoreError> {
        let Some((end, segments)) = self.view() else { return Ok(None) };
        let Some(&(oldest, _, _)) = segments.first().filter(|(n, _, _)| *n != end.segment) else {
            return Ok(None);
        };
        let mut follow = Replayed::default();
        replay_view(&segments, Position { segment: oldest, offset: 0 }, &mut |kind, body, at| {
            follow.apply(kind, body, at, at.segment != oldest)
        })?;
        follow.messages.retain(|(_, m)| m.at.segment == oldest);
        Ok(Some(CompactionDraft { segment: oldest, upto: end, follow }))
    }

    /// How much one compaction step copies ([`COMPACTION_STEPS_PER_SEGMENT`]).
    pub fn compaction_step_bytes(&self) -> usize {
        (self.segment_bytes / COMPACTION_STEPS_PER_SEGMENT) as usize
    }

    /// Takes the next step of `draft` where nothing appends meanwhile (the writer thread),
    /// so that the step reflects every entry written: follows its messages through what
    /// was appended after the draft's place, then encodes copies of the oldest surviving
    /// ones up to `budget` bytes (the live deduplication entries with the last step).
    /// `None` when the segment is gone. Each step's copies must be appended before the
    /// next step is planned.
    pub fn plan_compaction(
        &self,
        draft: CompactionDraft,
        now_ms: u64,
        budget: usize,
    ) -> Result<Option<CompactionPlan>, StoreError> {
        let Some((end, segments)) = self.view() else { return Ok(None) };
        let oldest = draft.segment;
        let Some((_, oldest_file, _)) = segments.iter().find(|(n, _, _)| *n == oldest && *n != end.segment) else {
            return Ok(None);
        };
        let mut follow = draft.follow;
        replay_view(&segments, draft.upto, &mut |kind, body, at| follow.apply(kind, body, at, true))?;
        let mut plan = CompactionPlan { segment: oldest, ..Default::default() };
        let mut survivors: Vec<&(i64, LiveMessage)> =
            follow.messages.iter().filter(|(_, m)| m.at.segment == oldest).collect();
        survivors.sort_unstable_by_key(|(seq, _)| *seq);
        let mut left = survivors.len();
        // The last copy holding its own body: where that body was, and the copy's place
        // in `plan.entries`. Copies of messages that shared one body share it again
        // (fan-out deliveries have consecutive numbers), not one copy each: a body's
        // holder may be gone while the messages sharing it live on.
        let mut held: Option<(u32, (usize, usize))> = None;
        for &(seq, ref m) in survivors {
            if plan.entries.len() >= budget {
                break;
            }
            let (_, _, content, body_from) = read_insert(oldest_file, m.at)?;
            let body_in = held.filter(|(from, _)| *from == body_from).map(|(_, copy)| copy);
            let change = Change::Insert { seq, state: &m.state, content: &content, body_in };
            let (offset, length) = encode(&change, &mut plan.entries);
            if body_in.is_none() {
                held = Some((body_from, (offset, length)));
            }
            plan.copied.push((seq, m.state.queue_id, offset, length));
            left -= 1;
        }
        if left > 0 {
            // Copied ones are followed no more; their copies' inserts, met by the next
            // step, are of messages it no longer knows.
            for (seq, ..) in &plan.copied {
                follow.messages.remove(*seq);
            }
            plan.rest = Some(CompactionDraft { segment: oldest, upto: end, follow });
            return Ok(Some(plan));
        }
        for d in follow.dedup.iter().filter(|d| d.expires_ms > now_ms) {
            encode(&Change::Dedup(d), &mut plan.entries);
        }
        Ok(Some(plan))
    }

    /// Where the durably written log ends and its segments as they stand there; `None`
    /// when an append failed between sealing a segment and creating the next (the head
    /// is not a file yet).
    fn view(&self) -> Option<(Position, Vec<SegmentView>)> {
        let head = self.head();
        head.file.as_ref()?;
        Some((Position { segment: head.segment, offset: head.end }, self.segment_views(&head)))
    }

    /// Removes `segment` once its compaction's copies are synced.
    pub fn remove_segment(&self, segment: u32) -> Result<(), StoreError> {
        if segment == self.head().segment {
            return Err(internal("the head segment is never removed"));
        }
        std::fs::remove_file(segment_path(&self.dir, segment)).map_err(internal)?;
        let file = self.files().remove(&segment);
        *self.retired.lock().unwrap_or_else(|p| p.into_inner()) = file.map(|f| (segment, f));
        if self.durable {
            sync_dir(&self.dir).map_err(internal)?;
        }
        Ok(())
    }
}

/// What replay hands each committed entry: its kind, body (kind byte first) and place;
/// `None` when the body does not decode.
type ApplyEntry<'a> = dyn FnMut(Kind, &[u8], Location) -> Option<()> + 'a;

/// Applies the committed groups of `bytes` (checked by [`checked_prefix`] and cut there),
/// which start at offset `base` of `segment`, through `apply`; returns where the last
/// whole group ends (relative to `base`) and whether a seal closed the segment there. A
/// bad entry, or entries with no commit marker after them, end the segment's good part;
/// `open` decides whether that is a torn tail or damage.
fn replay_segment(
    segment: u32,
    bytes: &[u8],
    base: u64,
    apply: &mut ApplyEntry<'_>,
) -> Result<(usize, bool), StoreError> {
    let mut at = 0;
    let mut committed = 0;
    let mut group: Vec<(Kind, usize, usize)> = Vec::new();
    let offset = |at: usize| base as usize + at;
    while at < bytes.len() {
        let Some((kind, _, len)) = checked_entry_at(&bytes[at..]) else { break };
        match kind {
            Kind::Seal => {
                let end = at + len;
                if !group.is_empty() || end != bytes.len() {
                    return Err(corrupt(segment, offset(at), "a seal that does not end the segment's last group"));
                }
                return Ok((end, true));
            }
            Kind::Commit => {
                for (kind, start, len) in group.drain(..) {
                    let body = &bytes[start + HEADER_LEN..start + len];
                    let location = Location { segment, offset: offset(start) as u32, length: len as u32 };
                    apply(kind, body, location).ok_or_else(|| corrupt(segment, offset(start), "malformed entry"))?;
                }
                committed = at + len;
            }
            _ => group.push((kind, at, len)),
        }
        at += len;
    }
    Ok((committed, false))
}

/// A segment as it stood at one moment: its number, open file and length written.
type SegmentView = (u32, Arc<File>, u64);

/// Replays the committed entries of `segments` from `from` on through `apply`, reading
/// each segment in chunks through one buffer (a fresh 64 MiB buffer per segment cost
/// more in page faults than the replay); a damaged entry is an error (these bytes were
/// all synced).
fn replay_view(segments: &[SegmentView], from: Position, apply: &mut ApplyEntry<'_>) -> Result<(), StoreError> {
    replay_view_until(segments, from, apply, &mut || false).map(drop)
}

/// As [`replay_view`], stopping early at the end of the first chunk of groups after
/// which `enough` says so: where it stopped, or `None` if it went to the end.
fn replay_view_until(
    segments: &[SegmentView],
    from: Position,
    apply: &mut ApplyEntry<'_>,
    enough: &mut dyn FnMut() -> bool,
) -> Result<Option<Position>, StoreError> {
    // Unit tests read in small chunks, so that entries and groups straddle them.
    const CHUNK: usize = if cfg!(test) { 200 } else { 4 << 20 };
    let mut buffer = Vec::new();
    for (n, file, len) in segments.iter().filter(|(n, _, _)| *n >= from.segment) {
        let mut at = if *n == from.segment { from.offset } else { 0 };
        let mut chunk = CHUNK;
        while at < *len {
            let left = (len - at) as usize;
            buffer.resize(left.min(chunk), 0);
            file.read_exact_at(&mut buffer, at).map_err(internal)?;
            let checked = checked_prefix(&buffer);
            let (end, sealed) = replay_segment(*n, &buffer[..checked], at, apply)?;
            if end == 0 && buffer.len() == left {
                return Err(corrupt(*n, at as usize, "an entry that does not read back"));
            }
            if end == 0 {
                // A group longer than the chunk (a large batch of sends, or a compaction
                // step, which stops only after the message that passes its budget).
                chunk *= 2;
            }
            at += end as u64;
            // Not past a seal: a start replays from the place, and a segment before the
            // head must end with its seal.
            if end > 0 && !sealed && enough() {
                return Ok(Some(Position { segment: *n, offset: at }));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn content(n: i64, group: Option<&str>) -> MessageContent {
        MessageContent {
            message_id: format!("id-{n}"),
            body: StoredText::Plain(format!("body {n}")),
            body_md5: Some(StoredText::Sealed(vec![1, 2, 3])),
            attributes: (n % 2 == 0).then(|| "{\"a\":1}".to_owned()),
            system_attributes: None,
            sender_id: "sender".into(),
            group_id: group.map(str::to_owned),
            dedup_id: None,
            sent_ms: 1000 + n as u64,
        }
    }

    pub(super) fn state(queue_id: i64) -> MessageState {
        MessageState { queue_id, visible_at_ms: 5, ..Default::default() }
    }

    pub(super) fn write(log: &MessageLog, changes: &[Change<'_>]) -> Vec<Location> {
        let mut buf = Vec::new();
        let spans: Vec<(usize, usize)> = changes.iter().map(|c| encode(c, &mut buf)).collect();
        let (segment, offset) = log.append(&mut buf).unwrap();
        spans
            .into_iter()
            .map(|(o, l)| Location { segment, offset: (offset + o as u64) as u32, length: l as u32 })
            .collect()
    }

    pub(super) fn insert(log: &MessageLog, seq: i64, queue_id: i64) -> Location {
        let (s, c) = (state(queue_id), content(seq, None));
        write(log, &[Change::Insert { seq, state: &s, content: &c, body_in: None }])[0]
    }

    /// The sequence numbers of the messages `replayed` holds, in order.
    fn live_seqs(replayed: &Replayed) -> Vec<i64> {
        let mut seqs: Vec<i64> = replayed.messages.seqs().collect();
        seqs.sort_unstable();
        seqs
    }

    /// Where the group whose last entry is at `at` ends: after its commit marker.
    fn group_end(at: Location) -> u64 {
        u64::from(at.offset + at.length) + MARKER_LEN as u64
    }

    /// A commit marker's length: a header and its kind.
    const MARKER_LEN: usize = HEADER_LEN + 1;

    /// Inserts sharing an earlier insert's body read back with it, take a fraction of
    /// the bytes, and keep it once compaction copies them without their holder (deleted):
    /// the first copy holds the body, the others share it again.
    #[test]
    fn inserts_sharing_a_body_read_it_back_and_keep_it_through_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        let s = state(1);
        let mut holder = content(1, None);
        holder.body = StoredText::Plain("x".repeat(1000));
        let mut buf = Vec::new();
        let (held_at, held_len) =
            encode(&Change::Insert { seq: 1, state: &s, content: &holder, body_in: None }, &mut buf);
        let mut places = vec![(held_at, held_len)];
        for seq in 2..=4 {
            // The body each carries is never written: the holder's is read instead.
            let sharer = MessageContent { body: StoredText::Plain(String::new()), ..content(seq, None) };
            let change = Change::Insert { seq, state: &s, content: &sharer, body_in: Some((held_at, held_len)) };
            places.push(encode(&change, &mut buf));
        }
        assert!(places[1].1 < held_len / 4, "a sharer's entry is small: {} of {held_len}", places[1].1);
        let (segment, offset) = log.append(&mut buf).unwrap();
        let at = |(o, l): (usize, usize)| Location { segment, offset: (offset + o as u64) as u32, length: l as u32 };
        for (seq, place) in (1..=4).zip(&places) {
            let (read_seq, _, read) = log.read(at(*place)).unwrap().unwrap();
            assert_eq!((read_seq, read.message_id), (seq, format!("id-{seq}")));
            assert!(matches!(read.body, StoredText::Plain(ref b) if *b == "x".repeat(1000)), "seq {seq}");
        }
        // The holder goes; a second segment begins; compaction copies the sharers.
        write(&log, &[Change::Delete { seq: 1 }]);
        log.rotate(&mut log.head()).unwrap();
        insert(&log, 5, 1);
        let mut plan = log.plan_compaction(log.draft_compaction().unwrap().unwrap(), 0, usize::MAX).unwrap().unwrap();
        assert_eq!(plan.segment, segment);
        assert_eq!(plan.copied.iter().map(|(seq, ..)| *seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        // The first copy holds the body, the next two share it again.
        let copy_lengths: Vec<usize> = plan.copied.iter().map(|(.., length)| *length).collect();
        assert!(copy_lengths[0] > 1000 && copy_lengths[1..].iter().all(|l| *l < 200), "{copy_lengths:?}");
        let (copies_segment, copies_offset) = log.append(&mut plan.entries).unwrap();
        log.remove_segment(segment).unwrap();
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert_eq!(live_seqs(&replayed), vec![2, 3, 4, 5]);
        for (seq, _, start, length) in &plan.copied {
            let place = Location {
                segment: copies_segment,
                offset: (copies_offset + *start as u64) as u32,
                length: *length as u32,
            };
            assert_eq!(replayed.message(*seq).at, place);
            let (_, _, read) = log.read(place).unwrap().unwrap();
            assert!(matches!(read.body, StoredText::Plain(ref b) if *b == "x".repeat(1000)), "copy of {seq}");
        }
    }

    /// Many places read at once come back as each read alone, in the order asked: side
    /// by side, far apart, past one read's span, in two segments, a body held by an
    /// earlier insert, and a segment that is gone.
    #[test]
    fn many_places_read_back_as_each_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        let s = state(1);
        let mut places: Vec<Location> = (1..=6).map(|seq| insert(&log, seq, 1)).collect();
        let mut far = content(7, None);
        far.body = StoredText::Plain("f".repeat(3 * READ_GAP as usize));
        places.extend(write(&log, &[Change::Insert { seq: 7, state: &s, content: &far, body_in: None }]));
        places.push(insert(&log, 8, 1));
        // One group longer than a read spans.
        let kib: Vec<MessageContent> = (9..109)
            .map(|seq| MessageContent { body: StoredText::Plain(format!("{seq}").repeat(500)), ..content(seq, None) })
            .collect();
        let changes: Vec<Change<'_>> =
            kib.iter().zip(9..).map(|(c, seq)| Change::Insert { seq, state: &s, content: c, body_in: None }).collect();
        places.extend(write(&log, &changes));
        // A body held by an earlier insert.
        let mut buf = Vec::new();
        let holder = content(109, None);
        let held = encode(&Change::Insert { seq: 109, state: &s, content: &holder, body_in: None }, &mut buf);
        let sharer = MessageContent { body: StoredText::Plain(String::new()), ..content(110, None) };
        let shares = encode(&Change::Insert { seq: 110, state: &s, content: &sharer, body_in: Some(held) }, &mut buf);
        let (segment, offset) = log.append(&mut buf).unwrap();
        let at = |(o, l): (usize, usize)| Location { segment, offset: (offset + o as u64) as u32, length: l as u32 };
        places.extend([at(held), at(shares)]);
        log.rotate(&mut log.head()).unwrap();
        places.push(insert(&log, 111, 1));
        let mut asked: Vec<Location> = places.iter().rev().copied().collect();
        asked.swap(3, 60);
        asked.insert(5, Location { segment: 99, offset: 0, length: 10 });

        let text = |t: &StoredText| match t {
            StoredText::Plain(t) => t.clone(),
            StoredText::Sealed(_) => unreachable!("written plain"),
        };
        let summary = |read: Option<Read>| read.map(|(seq, state, c)| (seq, state, c.message_id, text(&c.body)));
        let many = log.read_many(&asked).unwrap();
        assert_eq!(many.len(), asked.len());
        for (place, read) in asked.iter().zip(many) {
            assert_eq!(summary(read), summary(log.read(*place).unwrap()), "{place:?}");
        }
        let (_, _, shared) = log.read_many(&[at(shares)]).unwrap().remove(0).unwrap();
        assert_eq!(text(&shared.body), "body 109", "the holder's body");
        assert!(log.read_many(&[]).unwrap().is_empty());
    }

    /// An insert encoded with a sealer keeps its body and digest only sealed in the log,
    /// and they open to what was given; an insert sharing its body stays as small.
    #[test]
    fn inserts_encoded_with_a_sealer_are_sealed_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        let sealer = Sealer::new(&[9; 32]);
        let s = state(1);
        let mut plain = content(1, None);
        plain.body = StoredText::Plain("secret body 7f3a".into());
        plain.body_md5 = Some(StoredText::Plain("secret digest 7f3a".into()));
        let mut buf = Vec::new();
        let held = encode_sealing(
            &Change::Insert { seq: 1, state: &s, content: &plain, body_in: None },
            Some(&sealer),
            &mut buf,
        );
        let sharer = MessageContent { body: StoredText::Plain(String::new()), body_md5: None, ..content(2, None) };
        let shares = encode_sealing(
            &Change::Insert { seq: 2, state: &s, content: &sharer, body_in: Some(held) },
            Some(&sealer),
            &mut buf,
        );
        for secret in ["secret body", "secret digest"] {
            assert!(!buf.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is sealed");
        }
        let (segment, offset) = log.append(&mut buf).unwrap();
        let at = |(o, l): (usize, usize)| Location { segment, offset: (offset + o as u64) as u32, length: l as u32 };
        let (_, _, read) = log.read(at(held)).unwrap().unwrap();
        assert!(matches!(read.body, StoredText::Sealed(_)));
        assert_eq!(read.body.open(&sealer).unwrap(), "secret body 7f3a");
        assert_eq!(read.body_md5.unwrap().open(&sealer).unwrap(), "secret digest 7f3a");
        let (_, _, shared) = log.read(at(shares)).unwrap().unwrap();
        assert_eq!(shared.body.open(&sealer).unwrap(), "secret body 7f3a");
        assert!(shared.body_md5.is_none());
    }

    #[test]
    fn inserts_read_back_and_replay_applies_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert!(replayed.messages.is_empty());
        let (s, c) = (state(1), content(1, Some("g")));
        let at = write(&log, &[Change::Insert { seq: 1, state: &s, content: &c, body_in: None }])[0];
        for seq in 2..=6 {
            insert(&log, seq, 1);
        }
        insert(&log, 7, 2);
        let dedup = DedupRecord {
            queue_id: 1,
            scope: "q".into(),
            dedup_id: "d".into(),
            expires_ms: 99,
            message_id: "id-1".into(),
            seq: 1,
        };
        write(
            &log,
            &[
                Change::State { seq: 1, visible_at_ms: 50, receive_count: 2, first_receive_ms: 40, receipt_token: 7 },
                Change::Delete { seq: 2 },
                Change::Move { seq: 3, to_queue: 2, dlq_source: Some(1), visible_at_ms: 60, reset_receives: false },
                Change::Purge { queue_id: 1, max_seq: 5 },
                Change::Dedup(&dedup),
            ],
        );
        let (seq, read_state, read) = log.read(at).unwrap().unwrap();
        assert_eq!((seq, read_state), (1, s));
        assert_eq!(read.group_id.as_deref(), Some("g"));
        assert_eq!(read.message_id, "id-1");
        assert!(matches!(read.body, StoredText::Plain(ref b) if b == "body 1"));
        assert!(matches!(read.body_md5, Some(StoredText::Sealed(ref b)) if b == &[1, 2, 3]));
        drop(log);

        let (_log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        // 1 received, 2 deleted, 3 moved out before the purge, 4 and 5 purged.
        assert_eq!(live_seqs(&replayed), vec![3, 6, 7]);
        assert_eq!(replayed.max_seq, 7);
        assert_eq!(replayed.max_queue_id, 2);
        let moved = &replayed.message(3).state;
        assert_eq!((moved.queue_id, moved.dlq_source, moved.visible_at_ms), (2, Some(1), 60));
        assert_eq!(replayed.dedup, vec![dedup]);
    }

    #[test]
    fn a_group_whose_sync_failed_is_written_over_and_never_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        let first = insert(&log, 1, 1);
        // The refused group's first insert is as long as the next group (an insert and
        // its commit marker): its second and third inserts, with their commit marker,
        // would follow that group whole if nothing wrote over them.
        let mut longer = content(3, None);
        longer.body = StoredText::Plain(format!("body 3{}", "x".repeat(MARKER_LEN)));
        let (s, contents) = (state(1), [longer, content(5, None), content(7, None)]);
        let mut refused = Vec::new();
        let spans: Vec<(usize, usize)> = [3, 5, 7]
            .into_iter()
            .zip(&contents)
            .map(|(seq, c)| encode(&Change::Insert { seq, state: &s, content: c, body_in: None }, &mut refused))
            .collect();
        log.fail_next_syncs(1);
        assert!(log.append(&mut refused).is_err());
        let next = insert(&log, 9, 1);
        assert_eq!(u64::from(next.offset), group_end(first), "written where it failed");
        assert_eq!(next.length as usize + MARKER_LEN, spans[0].1);
        drop(log);
        let (_log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert_eq!(live_seqs(&replayed), vec![1, 9], "no part of the refused group comes back");
    }

    #[test]
    fn a_large_group_extends_the_file_and_a_small_one_is_written_into_zeros_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 16 << 20).unwrap();
        let s = state(1);
        let mut large = content(1, None);
        large.body = StoredText::Plain("x".repeat(ZERO_AHEAD_BELOW as usize));
        let at = write(&log, &[Change::Insert { seq: 1, state: &s, content: &large, body_in: None }])[0];
        let path = segment_path(&dir.path().join(SUBDIR), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), group_end(at), "no zeros ahead of a large group");
        let small = insert(&log, 2, 1);
        let zeros_to = group_end(small) + ZERO_AHEAD;
        assert_eq!(std::fs::metadata(&path).unwrap().len(), zeros_to, "a small group's zeros ahead");
        drop(log);
        let (_log, replayed) = MessageLog::open(dir.path(), true, 16 << 20).unwrap();
        assert_eq!(live_seqs(&replayed), vec![1, 2]);
    }

    /// Without fsync, the head's write-back is started every megabyte of entries, so that
    /// sealing it has little left to sync; with fsync every group is synced anyway.
    /// Either way every message replays, across the seal.
    #[test]
    fn without_fsync_the_heads_write_back_is_started_every_megabyte() {
        const ENTRY_AT_MOST: u64 = 21_000;
        for durable in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = MessageLog::open(dir.path(), durable, 4 << 20).unwrap();
            let s = state(1);
            let mut c = content(1, None);
            c.body = StoredText::Plain("x".repeat(20_000));
            let mut segments = std::collections::BTreeSet::new();
            for seq in 1..=300 {
                write(&log, &[Change::Insert { seq, state: &s, content: &c, body_in: None }]);
                let head = log.head();
                segments.insert(head.segment);
                if durable {
                    assert_eq!(head.written_back, 0, "durable: nothing to start");
                } else {
                    assert!(head.written_back <= head.end);
                    assert!(head.end - head.written_back < WRITE_BACK_EVERY + ENTRY_AT_MOST, "seq {seq}");
                }
            }
            assert_eq!(segments.len(), 2, "the log rotated");
            drop(log);
            let (_log, replayed) = MessageLog::open(dir.path(), durable, 4 << 20).unwrap();
            assert_eq!(live_seqs(&replayed), (1..=300).collect::<Vec<_>>(), "durable {durable}");
        }
    }

    /// With fsync, the segment after the head is made ahead (once the head is a quarter
    /// in) and takes the head's place whole: from its first group on, the file's size is
    /// the segment's and no group changes it, so no group's sync commits the journal.
    /// Every message replays across both kinds of segment, and appends go on after them.
    #[test]
    fn a_prepared_segment_takes_the_heads_place_whole_and_no_group_grows_it() {
        const SEGMENT: u64 = 4 << 20;
        let dir = tempfile::tempdir().unwrap();
        let messages = dir.path().join(SUBDIR);
        let prepared = messages.join(prepared::PREPARED_NAME);
        let (log, _) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        let s = state(1);
        let mut c = content(1, None);
        c.body = StoredText::Plain("x".repeat(2_000));
        let seq = std::cell::Cell::new(0);
        let insert_big = |log: &MessageLog| {
            seq.set(seq.get() + 1);
            write(log, &[Change::Insert { seq: seq.get(), state: &s, content: &c, body_in: None }])[0]
        };
        while log.head().end < SEGMENT / PREPARE_AT_PART {
            insert_big(&log);
            // Only while the head is still short of a quarter: the insert that takes it
            // past asks at once, and the preparer may have made the file before this looks.
            if log.head().end < SEGMENT / PREPARE_AT_PART {
                assert!(!prepared.exists(), "not asked for before the head is a quarter in");
            }
        }
        insert_big(&log);
        log.preparer.as_ref().unwrap().wait_ready();
        assert_eq!(std::fs::metadata(&prepared).unwrap().len(), SEGMENT, "made whole");
        while log.head().segment == 1 {
            insert_big(&log);
        }
        let second = segment_path(&messages, 2);
        for _ in 0..50 {
            let at = insert_big(&log);
            assert_eq!(at.segment, 2);
            assert_eq!(std::fs::metadata(&second).unwrap().len(), SEGMENT, "the size never changes");
        }
        let written = seq.get();
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        assert_eq!(live_seqs(&replayed), (1..=written).collect::<Vec<_>>());
        assert!(!prepared.exists(), "a start removes a prepared file it did not make");
        while log.head().segment == 2 {
            insert_big(&log);
        }
        let written = seq.get();
        drop(log);
        let (_log, replayed) = MessageLog::open(dir.path(), true, SEGMENT).unwrap();
        assert_eq!(live_seqs(&replayed), (1..=written).collect::<Vec<_>>());
    }

    /// A crash right after a prepared file became the head (renamed, nothing written in
    /// it yet) leaves a segment of zeros: replay finds no entry in it and appends go there;
    /// a prepared file left half written is removed, never read as a segment.
    #[test]
    fn a_head_of_zeros_replays_empty_and_a_leftover_prepared_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let messages = dir.path().join(SUBDIR);
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        for seq in 1..=3 {
            insert(&log, seq, 1);
        }
        log.preparer.as_ref().unwrap().want();
        log.preparer.as_ref().unwrap().wait_ready();
        log.rotate(&mut log.head()).unwrap();
        drop(log);
        std::fs::rename(messages.join(prepared::PREPARED_NAME), segment_path(&messages, 2)).unwrap();
        std::fs::write(messages.join(prepared::PREPARED_NAME), b"half written").unwrap();
        let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert_eq!(live_seqs(&replayed), vec![1, 2, 3]);
        assert!(!messages.join(prepared::PREPARED_NAME).exists());
        let at = insert(&log, 4, 1);
        assert_eq!((at.segment, at.offset), (2, 0), "appended at the start of the head of zeros");
        drop(log);
        let (_log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert_eq!(live_seqs(&replayed), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_message_whose_bytes_changed_on_disk_fails_its_read() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        let at = insert(&log, 1, 1);
        let path = segment_path(&dir.path().join(SUBDIR), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at.offset as usize + at.length as usize - 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(log.read(at), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_torn_group_is_cut_off_whole_wherever_the_crash_fell() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        insert(&log, 1, 1);
        insert(&log, 2, 1);
        let last = write(
            &log,
            &[
                Change::Delete { seq: 1 },
                Change::State { seq: 2, visible_at_ms: 9, receive_count: 1, first_receive_ms: 9, receipt_token: 3 },
            ],
        );
        let written = log.segments()[0].1 as usize;
        drop(log);
        let path = segment_path(&dir.path().join(SUBDIR), 1);
        let whole = std::fs::read(&path).unwrap()[..written].to_vec();
        let group_start = last[0].offset as usize;
        for cut in group_start..whole.len() {
            // Cut short; cut with its last byte damaged; cut and followed by zeros (a crash
            // after the file's size grew and before its data reached the disk).
            for (damage, zeros) in [(false, 0), (true, 0), (false, 64)] {
                let mut bytes = whole[..cut].to_vec();
                if damage && cut > group_start {
                    *bytes.last_mut().unwrap() ^= 0xff;
                }
                bytes.resize(cut + zeros, 0);
                std::fs::write(&path, &bytes).unwrap();
                let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
                // Neither the delete nor the receive: the group lacks its commit marker.
                assert_eq!(replayed.messages.len(), 2, "cut at {cut}");
                assert_eq!(replayed.message(2).state.receive_count, 0, "cut at {cut}");
                assert_eq!(std::fs::metadata(&path).unwrap().len(), group_start as u64, "cut at {cut}");
                // The next append goes where the good part ends.
                insert(&log, 3, 1);
                drop(log);
                let (_, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
                assert_eq!(replayed.messages.len(), 3, "cut at {cut}");
            }
        }
        std::fs::write(&path, &whole).unwrap();
        let (_, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert_eq!(replayed.messages.len(), 1, "the whole group applies");
    }

    #[test]
    fn segments_rotate_sealed_and_damage_before_a_seal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 300).unwrap();
        for seq in 1..=10 {
            insert(&log, seq, 1);
        }
        let segments = log.segments();
        assert!(segments.len() > 2, "{segments:?}");
        drop(log);
        let (_, replayed) = MessageLog::open(dir.path(), true, 300).unwrap();
        assert_eq!(replayed.messages.len(), 10);
        let first = segment_path(&dir.path().join(SUBDIR), 1);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[HEADER_LEN + 3] ^= 1;
        std::fs::write(&first, &bytes).unwrap();
        let err = MessageLog::open(dir.path(), true, 300).err().expect("damage refused");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn a_crash_between_sealing_and_the_next_segment_starts_a_new_head() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 300).unwrap();
        let mut seq = 0;
        while log.segments().len() < 2 {
            seq += 1;
            insert(&log, seq, 1);
        }
        let (newest, _) = *log.segments().last().unwrap();
        drop(log);
        // The message that opened the newest segment was never acknowledged.
        std::fs::remove_file(segment_path(&dir.path().join(SUBDIR), newest)).unwrap();
        let (log, replayed) = MessageLog::open(dir.path(), true, 300).unwrap();
        assert_eq!(replayed.messages.len() as i64, seq - 1);
        let at = insert(&log, seq, 1);
        assert_eq!(at.segment, newest);
        drop(log);
        let (_, replayed) = MessageLog::open(dir.path(), true, 300).unwrap();
        assert_eq!(replayed.messages.len() as i64, seq);
    }

    /// A clean shutdown's index is read at the next start; appends after that start land
    /// where a later start, after a crash, finds them: the index again, then the tail.
    #[test]
    fn the_index_is_read_at_the_next_start_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        insert(&log, 1, 1);
        insert(&log, 2, 1);
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert!(!replayed.from_index);
        insert(&log, 3, 1);
        let (_, view) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        log.write_index(&view).unwrap();
        drop(log);
        let (log, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert!(replayed.from_index, "the index was read");
        assert_eq!(replayed.messages.len(), 3);
        insert(&log, 4, 1);
        write(&log, &[Change::Delete { seq: 1 }]);
        drop(log);
        let (_, replayed) = MessageLog::open(dir.path(), true, 1 << 20).unwrap();
        assert!(replayed.from_index, "still its place in the log");
        assert_eq!(live_seqs(&replayed), vec![2, 3, 4]);
    }

    #[test]
    fn compacting_the_oldest_segment_keeps_what_replay_said() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = MessageLog::open(dir.path(), true, 400).unwrap();
        for seq in 1..=12 {
            insert(&log, seq, 1);
        }
        let dedup_live = DedupRecord {
            queue_id: 1,
            scope: "s".into(),
            dedup_id: "a".into(),
            expires_ms: 500,
            message_id: "m".into(),
            seq: 1,
        };
        let dedup_old = DedupRecord { expires_ms: 50, dedup_id: "b".into(), ..dedup_live.clone() };
        write(&log, &[Change::Dedup(&dedup_live), Change::Dedup(&dedup_old)]);
        drop(log);
        let (log, _) = MessageLog::open(dir.path(), true, 400).unwrap();
        let oldest = log.segments()[0].0;
        let draft = log.draft_compaction().unwrap().expect("a sealed segment");
        // Appended after the draft: the writer's half of the plan follows them.
        write(
            &log,
            &[
                Change::Delete { seq: 1 },
                Change::State { seq: 2, visible_at_ms: 77, receive_count: 3, first_receive_ms: 70, receipt_token: 5 },
            ],
        );
        let (_, before) = MessageLog::open(dir.path(), true, 400).unwrap();
        let mut plan = log.plan_compaction(draft, 100, usize::MAX).unwrap().expect("a sealed segment");
        assert!(plan.rest.is_none(), "one step");
        assert_eq!(plan.segment, oldest);
        let copied: Vec<i64> = plan.copied.iter().map(|c| c.0).collect();
        assert!(!copied.contains(&1), "deleted messages are not copied: {copied:?}");
        assert!(copied.contains(&2));
        log.append(&mut plan.entries).unwrap();
        let old_place = before.message(2).at;
        assert_eq!(old_place.segment, oldest);
        log.remove_segment(plan.segment).unwrap();
        let (_, _, still) = log.read(old_place).unwrap().expect("a removed segment reads until the next compaction");
        assert_eq!(still.message_id, "id-2");
        drop(log);
        let (log, after) = MessageLog::open(dir.path(), true, 400).unwrap();
        assert!(!log.segments().iter().any(|(n, _)| *n == oldest));
        let view = |r: &Replayed| {
            let mut v: Vec<(i64, MessageState)> = r.messages.iter().map(|(s, m)| (*s, m.state)).collect();
            v.sort_unstable_by_key(|(s, _)| *s);
            v
        };
        assert_eq!(view(&after), view(&before));
        assert_eq!(after.message(2).state.receive_count, 3);
        let (_, _, body) = log.read(after.message(2).at).unwrap().unwrap();
        assert_eq!(body.message_id, "id-2");
        // Deduplication entries that had not expired are all still there.
        let unexpired = |r: &Replayed| {
            let mut v: Vec<String> =
                r.dedup.iter().filter(|d| d.expires_ms > 100).map(|d| d.dedup_id.clone()).collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(unexpired(&after), vec!["a".to_owned()]);
        assert_eq!(unexpired(&before), unexpired(&after));
    }
}
