//! One queue's in-memory indexes: which messages are visible, delayed or in flight,
//! FIFO group blocking, deduplication and receive-attempt history. Pure state: time
//! is passed in, and persistence is the caller's job.

use crate::limits::*;
use crate::message_log::Location;
use crate::message_table::MessageTable;
use crate::store::{Attributes, QueueCounts, QueueKey, Tags};
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes a message's sequence number by one multiplication (Fibonacci hashing), its high
/// half folded into the low, instead of SipHash: sequence numbers are assigned by the
/// store, never chosen by a client, so there is no flooding to defend against, and this
/// map takes one insert per message sent.
#[derive(Default)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i64(&mut self, seq: i64) {
        let product = (seq as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The map picks a bucket by the hash's low bits, and a product's low bits depend
        // only on the number's low bits: a queue whose sequence numbers come in strides
        // (every 1,024th, when a topic delivers to 1,024 queues) used a 1,024th of the
        // buckets' low bits, and lookups into a million took 7 times as long. The high
        // half, mixed in, depends on every bit.
        self.0 = product ^ (product >> 32);
    }
}

pub type SeqMap<V> = HashMap<i64, V, BuildHasherDefault<SeqHasher>>;

/// The attributes the engine acts on, parsed from the queue's attribute map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub fifo: bool,
    pub visibility_timeout_ms: u64,
    pub delay_ms: u64,
    pub retention_ms: u64,
    pub content_based_dedup: bool,
    /// DeduplicationScope=messageGroup: dedup ids are scoped per message group.
    pub dedup_per_group: bool,
    pub redrive: Option<Redrive>,
    /// Bodies are sealed at rest: SSE-SQS (`SqsManagedSseEnabled`, on by default for new
    /// queues as on AWS) or SSE-KMS (`KmsMasterKeyId`), both with the local key.
    pub sealed: bool,
    /// MaximumMessageSize: the longest body plus attributes a send may carry.
    pub max_message_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_target: QueueKey,
    pub max_receive_count: u32,
}

fn num(attrs: &Attributes, name: &str, default: u64) -> u64 {
    attrs.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

impl QueueConfig {
    pub fn from_attributes(attrs: &Attributes) -> QueueConfig {
        let redrive = attrs.get("RedrivePolicy").and_then(|p| parse_redrive_policy(p));
        QueueConfig {
            fifo: attrs.get("FifoQueue").is_some_and(|v| v == "true"),
            visibility_timeout_ms: num(attrs, "VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT_S) * 1000,
            delay_ms: num(attrs, "DelaySeconds", 0) * 1000,
            retention_ms: num(attrs, "MessageRetentionPeriod", DEFAULT_RETENTION_S) * 1000,
            content_based_dedup: attrs.get("ContentBasedDeduplication").is_some_and(|v| v == "true"),
            dedup_per_group: attrs.get("DeduplicationScope").is_some_and(|v| v == "messageGroup"),
            redrive,
            sealed: attrs.get("SqsManagedSseEnabled").is_some_and(|v| v == "true")
                || attrs.get("KmsMasterKeyId").is_some_and(|v| !v.is_empty()),
            max_message_size: num(attrs, "MaximumMessageSize", DEFAULT_MAX_MESSAGE_SIZE),
        }
    }
}

/// `{"deadLetterTargetArn":"arn:…","maxReceiveCount":"5"}`; AWS accepts the count as
/// a string or a number.
pub fn parse_redrive_policy(policy: &str) -> Option<Redrive> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    let arn = v.get("deadLetterTargetArn")?.as_str()?;
    let count = match v.get("maxReceiveCount")? {
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        serde_json::Value::Number(n) => n.as_u64()? as u32,
        _ => return None,
    };
    Some(Redrive { dead_letter_target: QueueKey::from_arn(arn)?, max_receive_count: count })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgState {
    Delayed,
    Visible,
    InFlight,
}

#[derive(Debug, Clone)]
pub struct MsgMeta {
    pub seq: i64,
    pub sent_ms: u64,
    pub visible_at_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub receipt_token: u64,
    pub group: Option<Arc<str>>,
    pub state: MsgState,
    pub dlq_source: Option<i64>,
    /// Where the message's insert is in the message log (its body and fixed attributes).
    pub at: Location,
}

#[derive(Debug, Clone)]
pub struct DedupEntry {
    pub expires_ms: u64,
    pub message_id: String,
    pub seq: i64,
}

#[derive(Debug, Clone)]
struct Attempt {
    expires_ms: u64,
    taken: Vec<(i64, u64)>,
}

/// A message handed out by a receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub seq: i64,
    pub receipt_token: u64,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub visible_at_ms: u64,
    pub dlq_source: Option<i64>,
    pub at: Location,
}

#[derive(Debug, Default)]
pub struct ReceiveOutcome {
    pub taken: Vec<Taken>,
    /// Messages whose receive count exceeded maxReceiveCount: to the dead-letter queue.
    pub to_dead_letter: Vec<MsgMeta>,
}

/// Ordered index keys gathered while loading, built into a queue's ordered sets by
/// [`PendingIndexes::build`] and [`QueueState::finish_load`].
#[derive(Debug, Default)]
pub struct PendingIndexes {
    visible: Vec<i64>,
    timers: Vec<(u64, i64)>,
    by_sent: Vec<(u64, i64)>,
}

impl PendingIndexes {
    /// The keys of a message that [`QueueState::load`] loads.
    pub fn add(&mut self, seq: i64, state: MsgState, visible_at_ms: u64, sent_ms: u64) {
        match state {
            MsgState::Visible => self.visible.push(seq),
            MsgState::Delayed | MsgState::InFlight => self.timers.push((visible_at_ms, seq)),
        }
        self.by_sent.push((sent_ms, seq));
    }

    /// How many messages' keys.
    pub fn len(&self) -> usize {
        self.by_sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sent.is_empty()
    }

    /// The ordered sets, apart from any queue, so that a start can build them on one
    /// core while the other fills the queues' maps. A `BTreeSet` collected from sorted
    /// keys is built bottom-up, several times faster than a million single inserts
    /// (which took a third of start-up with 1,000,000 messages). The keys come in the
    /// order the index or the log lists the messages; sorting them here, small as they
    /// are, is cheaper than sorting the messages before.
    pub fn build(self) -> LoadedIndexes {
        fn sorted<K: Ord>(mut keys: Vec<K>) -> BTreeSet<K> {
            keys.sort_unstable();
            keys.into_iter().collect()
        }
        LoadedIndexes { visible: sorted(self.visible), timers: sorted(self.timers), by_sent: sorted(self.by_sent) }
    }
}

/// A queue's ordered sets as [`PendingIndexes::build`] made them.
#[derive(Debug)]
pub struct LoadedIndexes {
    visible: BTreeSet<i64>,
    timers: BTreeSet<(u64, i64)>,
    by_sent: BTreeSet<(u64, i64)>,
}

impl MsgState {
    /// The state of a message read from the log at `now_ms`: due, or waiting for its
    /// visibility timeout (received) or its delay (never received).
    pub fn loaded(visible_at_ms: u64, receipt_token: u64, now_ms: u64) -> MsgState {
        if visible_at_ms <= now_ms {
            MsgState::Visible
        } else if receipt_token != 0 {
            MsgState::InFlight
        } else {
            MsgState::Delayed
        }
    }
}

#[derive(Debug)]
pub struct QueueState {
    pub id: i64,
    pub key: Arc<QueueKey>,
    /// Shared with every [`crate::QueueInfo`] handed out, so that a send's lookup of its
    /// queue copies no attribute map; changed by replacing (or `Arc::make_mut`).
    pub attributes: Arc<Attributes>,
    pub tags: Arc<Tags>,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub last_purge_ms: Option<u64>,
    pub config: QueueConfig,
    pub deleted: bool,
    msgs: MessageTable,
    visible: BTreeSet<i64>,
    timers: BTreeSet<(u64, i64)>,
    by_sent: BTreeSet<(u64, i64)>,
    inflight_groups: HashMap<Arc<str>, u32>,
    in_flight: u64,
    delayed: u64,
    pub dedup: HashMap<(String, String), DedupEntry>,
    attempts: HashMap<String, Attempt>,
}

impl QueueState {
    pub fn new(id: i64, key: QueueKey, attributes: Attributes, tags: Tags, created_ms: u64, modified_ms: u64) -> Self {
        let config = QueueConfig::from_attributes(&attributes);
        QueueState {
            id,
            key: Arc::new(key),
            attributes: Arc::new(attributes),
            tags: Arc::new(tags),
            created_ms,
            modified_ms,
            last_purge_ms: None,
            config,
            deleted: false,
            msgs: MessageTable::default(),
            visible: BTreeSet::new(),
            timers: BTreeSet::new(),
            by_sent: BTreeSet::new(),
            inflight_groups: HashMap::new(),
            in_flight: 0,
            delayed: 0,
            dedup: HashMap::new(),
            attempts: HashMap::new(),
        }
    }

    pub fn set_attributes(&mut self, attributes: Arc<Attributes>) {
        self.config = QueueConfig::from_attributes(&attributes);
        self.attributes = attributes;
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub fn messages(&self) -> impl Iterator<Item = &MsgMeta> {
        self.msgs.iter()
    }

    pub fn get(&self, seq: i64) -> Option<&MsgMeta> {
        self.msgs.get(seq)
    }

    pub fn max_seq(&self) -> Option<i64> {
        self.msgs.seqs().max()
    }

    /// Adds a message in whatever state its fields describe.
    pub fn insert(&mut self, meta: MsgMeta) {
        let seq = meta.seq;
        match meta.state {
            MsgState::Visible => {
                self.visible.insert(seq);
            }
            MsgState::Delayed | MsgState::InFlight => {
                self.timers.insert((meta.visible_at_ms, seq));
            }
        }
        self.by_sent.insert((meta.sent_ms, seq));
        self.count(&meta);
        self.msgs.insert(meta);
    }

    /// Room for `n` more messages, before loading them.
    pub fn reserve(&mut self, n: usize) {
        self.msgs.reserve(n);
    }

    /// Start-up's [`Self::insert`]: the message goes in the map at once, its ordered index
    /// keys (gathered apart, [`PendingIndexes`]) by [`Self::finish_load`].
    pub fn load(&mut self, meta: MsgMeta) {
        self.count(&meta);
        self.msgs.insert(meta);
    }

    /// Adds the ordered sets built from the keys of the messages [`Self::load`] loaded.
    /// (`append` into an empty set takes the other whole; into a full one, it merges
    /// both in one bottom-up build.)
    pub fn finish_load(&mut self, mut loaded: LoadedIndexes) {
        self.visible.append(&mut loaded.visible);
        self.timers.append(&mut loaded.timers);
        self.by_sent.append(&mut loaded.by_sent);
    }

    /// The counters and FIFO group holds a message adds to.
    fn count(&mut self, meta: &MsgMeta) {
        match meta.state {
            MsgState::InFlight => {
                self.in_flight += 1;
                if let Some(g) = &meta.group {
                    *self.inflight_groups.entry(g.clone()).or_default() += 1;
                }
            }
            MsgState::Delayed => self.delayed += 1,
            MsgState::Visible => {}
        }
    }

    /// Points the message at the copy compaction made of its insert, unless it is no
    /// longer the one that was in `from_segment` (deleted, or sent again meanwhile).
    /// Returns whether it did.
    pub fn relocate(&mut self, seq: i64, from_segment: u32, to: Location) -> bool {
        let Some(meta) = self.msgs.get_mut(seq).filter(|m| m.at.segment == from_segment) else { return false };
        meta.at = to;
        true
    }

    pub fn remove(&mut self, seq: i64) -> Option<MsgMeta> {
        let meta = self.msgs.remove(seq)?;
        self.visible.remove(&seq);
        self.timers.remove(&(meta.visible_at_ms, seq));
        self.by_sent.remove(&(meta.sent_ms, seq));
        match meta.state {
            MsgState::InFlight => {
                self.in_flight -= 1;
                self.release_group(&meta.group);
            }
            MsgState::Delayed => self.delayed -= 1,
            MsgState::Visible => {}
        }
        Some(meta)
    }

    fn release_group(&mut self, group: &Option<Arc<str>>) {
        if let Some(g) = group {
            if let Some(n) = self.inflight_groups.get_mut(g) {
                *n -= 1;
                if *n == 0 {
                    self.inflight_groups.remove(g);
                }
            }
        }
    }

    /// Makes due delayed and in-flight messages visible.
    pub fn advance(&mut self, now: u64) {
        while let Some(&(at, seq)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(meta) = self.msgs.get_mut(seq) else { continue };
            let previous = meta.state;
            meta.state = MsgState::Visible;
            let group = meta.group.clone();
            self.visible.insert(seq);
            match previous {
                MsgState::InFlight => {
                    self.in_flight -= 1;
                    self.release_group(&group);
                }
                MsgState::Delayed => self.delayed -= 1,
                MsgState::Visible => {}
            }
        }
    }

    /// Whether a message is visible now (as of the last `advance`).
    pub fn has_visible(&self) -> bool {
        !self.visible.is_empty()
    }

    /// When the next delayed or in-flight message becomes visible.
    pub fn next_event_ms(&self) -> Option<u64> {
        self.timers.first().map(|(at, _)| *at)
    }

    pub fn counts(&mut self, now: u64) -> QueueCounts {
        self.advance(now);
        QueueCounts { visible: self.visible.len() as u64, in_flight: self.in_flight, delayed: self.delayed }
    }

    /// Picks up to `max` visible messages, makes them in flight until
    /// `now + visibility_ms`, and sets aside those that exceeded maxReceiveCount.
    pub fn receive(
        &mut self,
        now: u64,
        max: usize,
        visibility_ms: u64,
        attempt_id: Option<&str>,
        mut new_token: impl FnMut() -> u64,
    ) -> ReceiveOutcome {
        self.advance(now);
        self.attempts.retain(|_, a| a.expires_ms > now);
        if let Some(id) = attempt_id {
            if let Some(attempt) = self.attempts.get(id) {
                // A retried attempt returns the same messages while they are still
                // in flight under the same receipt.
                let again: Vec<Taken> = attempt
                    .taken
                    .iter()
                    .filter_map(|(seq, token)| {
                        let m = self.msgs.get(*seq)?;
                        (m.state == MsgState::InFlight && m.receipt_token == *token).then_some(Taken {
                            seq: *seq,
                            receipt_token: *token,
                            receive_count: m.receive_count,
                            first_receive_ms: m.first_receive_ms,
                            visible_at_ms: m.visible_at_ms,
                            dlq_source: m.dlq_source,
                            at: m.at,
                        })
                    })
                    .collect();
                if !again.is_empty() {
                    return ReceiveOutcome { taken: again, to_dead_letter: vec![] };
                }
            }
        }
        let mut chosen = Vec::new();
        let mut skipped_groups: Vec<Arc<str>> = Vec::new();
        let mut taken_groups: Vec<Arc<str>> = Vec::new();
        for &seq in &self.visible {
            if chosen.len() >= max {
                break;
            }
            let meta = self.msgs.get(seq).expect("indexed");
            if self.config.fifo {
                if let Some(g) = &meta.group {
                    if skipped_groups.contains(g) {
                        continue;
                    }
                    let blocked = self.inflight_groups.contains_key(g) && !taken_groups.contains(g);
                    if blocked {
                        skipped_groups.push(g.clone());
                        continue;
                    }
                    if !taken_groups.contains(g) {
                        taken_groups.push(g.clone());
                    }
                }
            }
            chosen.push(seq);
        }
        let mut out = ReceiveOutcome::default();
        for seq in chosen {
            self.visible.remove(&seq);
            let redrive_limit = self.config.redrive.as_ref().map(|r| r.max_receive_count);
            let meta = self.msgs.get_mut(seq).expect("visible message is indexed");
            if redrive_limit.is_some_and(|limit| meta.receive_count >= limit) {
                let meta = self.msgs.remove(seq).expect("indexed");
                self.by_sent.remove(&(meta.sent_ms, seq));
                out.to_dead_letter.push(meta);
                continue;
            }
            meta.receive_count += 1;
            if meta.first_receive_ms == 0 {
                meta.first_receive_ms = now;
            }
            meta.receipt_token = new_token();
            meta.visible_at_ms = now + visibility_ms;
            meta.state = MsgState::InFlight;
            let group = meta.group.clone();
            let taken = Taken {
                seq,
                receipt_token: meta.receipt_token,
                receive_count: meta.receive_count,
                first_receive_ms: meta.first_receive_ms,
                visible_at_ms: meta.visible_at_ms,
                dlq_source: meta.dlq_source,
                at: meta.at,
            };
            self.timers.insert((taken.visible_at_ms, seq));
            self.in_flight += 1;
            if let Some(g) = group {
                *self.inflight_groups.entry(g).or_default() += 1;
            }
            out.taken.push(taken);
        }
        if let Some(id) = attempt_id {
            if !out.taken.is_empty() {
                self.attempts.insert(
                    id.to_owned(),
                    Attempt {
                        expires_ms: now + RECEIVE_ATTEMPT_WINDOW_MS,
                        taken: out.taken.iter().map(|t| (t.seq, t.receipt_token)).collect(),
                    },
                );
            }
        }
        out
    }

    /// Sets a new visibility timeout on an in-flight message. Returns the updated
    /// (visible_at, receive_count, first_receive, token).
    pub fn change_visibility(
        &mut self,
        seq: i64,
        token: u64,
        now: u64,
        timeout_s: u64,
    ) -> Result<MsgMeta, crate::store::StoreError> {
        use crate::store::StoreError;
        self.advance(now);
        let meta = self.msgs.get(seq).ok_or(StoreError::ReceiptHandleInvalid)?.clone();
        if meta.state != MsgState::InFlight {
            return Err(StoreError::MessageNotInflight);
        }
        if meta.receipt_token != token {
            return Err(StoreError::ReceiptHandleExpired);
        }
        if now + timeout_s * 1000 > meta.first_receive_ms + MAX_VISIBILITY_TIMEOUT_S * 1000 {
            return Err(StoreError::VisibilityLimitExceeded);
        }
        self.timers.remove(&(meta.visible_at_ms, seq));
        let m = self.msgs.get_mut(seq).expect("present");
        m.visible_at_ms = now + timeout_s * 1000;
        if timeout_s == 0 {
            m.state = MsgState::Visible;
            let group = m.group.clone();
            self.visible.insert(seq);
            self.in_flight -= 1;
            self.release_group(&group);
        } else {
            self.timers.insert((m.visible_at_ms, seq));
        }
        Ok(self.msgs.get(seq).expect("present").clone())
    }

    /// Messages older than the retention period.
    pub fn expired(&self, now: u64) -> Vec<i64> {
        let retention = self.config.retention_ms;
        self.by_sent.iter().take_while(|(sent, _)| sent + retention <= now).map(|(_, seq)| *seq).collect()
    }

    pub fn all_seqs_up_to(&self, max_seq: i64) -> Vec<i64> {
        self.msgs.seqs().filter(|s| *s <= max_seq).collect()
    }

    /// Visible messages with `seq <= max_seq`, oldest first, for a move task.
    pub fn take_visible_up_to(&mut self, now: u64, max_seq: i64, n: usize) -> Vec<MsgMeta> {
        self.advance(now);
        let seqs: Vec<i64> = self.visible.iter().copied().take_while(|s| *s <= max_seq).take(n).collect();
        seqs.into_iter().filter_map(|s| self.remove(s)).collect()
    }

    /// Messages that a move task started at `max_seq` has left to move.
    pub fn count_up_to(&self, max_seq: i64) -> u64 {
        self.msgs.seqs().filter(|s| *s <= max_seq).count() as u64
    }

    pub fn dedup_scope(&self, group: Option<&str>) -> String {
        if self.config.dedup_per_group {
            group.unwrap_or_default().to_owned()
        } else {
            String::new()
        }
    }

    /// Forgets expired dedup entries; returns how many.
    pub fn prune_dedup(&mut self, now: u64) -> usize {
        let before = self.dedup.len();
        self.dedup.retain(|_, e| e.expires_ms > now);
        before - self.dedup.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(fifo: bool) -> QueueState {
        let mut attrs = Attributes::new();
        if fifo {
            attrs.insert("FifoQueue".into(), "true".into());
        }
        QueueState::new(1, QueueKey::new("1", "r", "q"), attrs, Tags::new(), 0, 0)
    }

    fn msg(seq: i64, group: Option<&str>) -> MsgMeta {
        MsgMeta {
            seq,
            sent_ms: 0,
            visible_at_ms: 0,
            receive_count: 0,
            first_receive_ms: 0,
            receipt_token: 0,
            group: group.map(Arc::from),
            state: MsgState::Visible,
            dlq_source: None,
            at: Location { segment: 1, offset: 0, length: 100 },
        }
    }

    /// Messages in every state, FIFO groups held by in-flight ones, loaded at start-up in
    /// the scan's order, must give the same counts and receives as one insert each.
    #[test]
    fn a_loaded_queue_behaves_as_one_built_by_inserts() {
        let metas = || {
            (1..=300).map(|seq| {
                let mut m = msg(seq, Some(["a", "b", "c"][seq as usize % 3]));
                m.sent_ms = 1_000 - seq as u64 % 7; // not in sequence order
                match seq % 4 {
                    0 => (m.state, m.visible_at_ms, m.receipt_token) = (MsgState::InFlight, 5_000 + seq as u64, 7),
                    1 => (m.state, m.visible_at_ms) = (MsgState::Delayed, 4_000 - seq as u64),
                    _ => {}
                }
                m
            })
        };
        let mut inserted = state(true);
        metas().for_each(|m| inserted.insert(m));
        let mut loaded = state(true);
        loaded.insert(msg(1_000, Some("d"))); // already there before the load
        inserted.insert(msg(1_000, Some("d")));
        let mut pending = PendingIndexes::default();
        metas().for_each(|m| {
            pending.add(m.seq, m.state, m.visible_at_ms, m.sent_ms);
            loaded.load(m);
        });
        loaded.finish_load(pending.build());
        for now in [0, 4_500, 10_000] {
            assert_eq!(loaded.counts(now), inserted.counts(now), "at {now}");
            let taken = |s: &mut QueueState| {
                s.receive(now, 10, 30_000, None, || 1).taken.iter().map(|t| t.seq).collect::<Vec<_>>()
            };
            assert_eq!(taken(&mut loaded), taken(&mut inserted), "at {now}");
        }
    }

    /// Sequence numbers in strides (a queue receiving every 1,024th number) still spread
    /// over the buckets a map picks by the hash's low bits.
    #[test]
    fn sequence_numbers_in_strides_spread_over_the_low_bits() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hasher = BuildHasherDefault::<SeqHasher>::default();
        for stride in [1i64, 10, 64, 1024, 4096] {
            let low_bits: std::collections::HashSet<u64> =
                (0..4096i64).map(|i| hasher.hash_one(i * stride + 7) & 4095).collect();
            // 4,096 keys into 4,096 residues at random leave about 63% distinct.
            assert!(low_bits.len() > 2_000, "stride {stride}: {} distinct low 12 bits", low_bits.len());
        }
    }

    #[test]
    fn fifo_group_is_blocked_while_in_flight() {
        let mut s = state(true);
        s.insert(msg(1, Some("a")));
        s.insert(msg(2, Some("a")));
        s.insert(msg(3, Some("b")));
        let mut t = 0;
        let r = s.receive(0, 1, 30_000, None, || {
            t += 1;
            t
        });
        assert_eq!(r.taken.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1]);
        let r = s.receive(0, 10, 30_000, None, || 9);
        assert_eq!(r.taken.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![3]);
        s.remove(1);
        let r = s.receive(0, 10, 30_000, None, || 9);
        assert_eq!(r.taken.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn fifo_receive_returns_several_of_one_group_in_order() {
        let mut s = state(true);
        for i in 1..=4 {
            s.insert(msg(i, Some("g")));
        }
        let r = s.receive(0, 10, 30_000, None, || 1);
        assert_eq!(r.taken.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    fn brute_counts(s: &QueueState) -> QueueCounts {
        let mut c = QueueCounts::default();
        for m in s.msgs.iter() {
            match m.state {
                MsgState::Visible => c.visible += 1,
                MsgState::InFlight => c.in_flight += 1,
                MsgState::Delayed => c.delayed += 1,
            }
        }
        c
    }

    /// The O(1) counters agree with a recount after any mix of operations.
    #[test]
    fn counters_match_a_recount_after_random_operations() {
        let mut rng_state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        for fifo in [false, true] {
            let mut s = state(fifo);
            let mut now = 0u64;
            let mut seq = 0i64;
            let mut handed_out: Vec<(i64, u64)> = Vec::new();
            for _ in 0..2_000 {
                match next() % 6 {
                    0 | 1 => {
                        seq += 1;
                        let delay = if next() % 3 == 0 { 5_000 } else { 0 };
                        let group = ["a", "b", "c"][(next() % 3) as usize];
                        s.insert(MsgMeta {
                            seq,
                            sent_ms: now,
                            visible_at_ms: now + delay,
                            receive_count: 0,
                            first_receive_ms: 0,
                            receipt_token: 0,
                            group: Some(Arc::from(group)),
                            state: if delay > 0 { MsgState::Delayed } else { MsgState::Visible },
                            dlq_source: None,
                            at: Location { segment: 1, offset: 0, length: 100 },
                        });
                    }
                    2 => {
                        let r = s.receive(now, (next() % 10 + 1) as usize, next() % 10_000, None, &mut next);
                        handed_out.extend(r.taken.iter().map(|t| (t.seq, t.receipt_token)));
                    }
                    3 => {
                        if let Some((seq, _)) = handed_out.pop() {
                            s.remove(seq);
                        }
                    }
                    4 => {
                        if let Some((seq, token)) = handed_out.last().copied() {
                            let _ = s.change_visibility(seq, token, now, next() % 3);
                        }
                    }
                    _ => now += next() % 4_000,
                }
                assert_eq!(s.counts(now), brute_counts(&s));
            }
        }
    }
}
