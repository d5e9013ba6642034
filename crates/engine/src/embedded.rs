//! The embedded backend: queues' in-memory indexes, rebuilt from SQLite at start,
//! with every write going through the group-commit writer.

use crate::at_rest::{Sealer, StoredText};
use crate::clock::Clock;
use crate::db::{
    internal, CommitHook, CompactionRequest, Database, MessageRow, MoveTaskRow, OnCommit, ShowSent, SqlOp, WriteItem,
};
use crate::limits::*;
use crate::message_log::{DedupRecord, IndexSource, LiveMessage, Location, MessageContent, MessageState, Replayed};
use crate::queue_state::{DedupEntry, MsgMeta, MsgState, PendingIndexes, QueueState, SeqMap};
use crate::store::*;
use base64::Engine as _;
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::{oneshot, Notify};

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Data directory; `None` keeps the database in a temporary directory that is
    /// removed on exit (`--in-memory`), without fsync.
    pub data_dir: Option<PathBuf>,
    /// fsync every group commit (SQLite `synchronous=FULL`).
    pub durable: bool,
    /// Skip AWS's 60-second rules (PurgeQueueInProgress, QueueDeletedRecently): for tests.
    pub relax_cooldowns: bool,
    /// Largest the database may grow; writes past it fail as on a full disk.
    pub max_data_bytes: Option<u64>,
    /// The at-rest encryption key; `None` uses (and first creates) `sluice.key` in the
    /// data directory.
    pub encryption_key: Option<[u8; 32]>,
    /// Size at which the record log starts a new segment file.
    pub record_segment_bytes: u64,
}

impl EmbeddedOptions {
    /// A durable store in `dir` with the data directory's own key, no size limit and
    /// AWS's 60-second cooldowns relaxed: what tests and benchmarks start from.
    pub fn for_tests(dir: &std::path::Path) -> EmbeddedOptions {
        EmbeddedOptions {
            data_dir: Some(dir.to_owned()),
            durable: true,
            relax_cooldowns: true,
            max_data_bytes: None,
            encryption_key: None,
            record_segment_bytes: crate::record_log::SEGMENT_BYTES,
        }
    }
}

struct QueueHandle {
    state: Mutex<QueueState>,
    notify: Arc<Notify>,
}

impl QueueHandle {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock leaves indexes as they were mid-operation;
        // continuing is safer than poisoning every later request for the queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes one long poll, on a message becoming receivable outside a group commit's
    /// hooks (which wake through [`crate::db::wake_one_poll_after_group`]). One poll, not
    /// every poll of the queue: with 100 polls waiting, waking all of them for each
    /// message cost the server about 1 ms per message. A poll that takes messages and
    /// leaves some visible wakes the next (`receive_messages`), so a run of messages wakes
    /// as many polls as it fills. A poll woken but gone (its request dropped) passes the
    /// wake-up on (tokio's `Notified` forwards an unconsumed `notify_one` when dropped),
    /// and a poll woken while busy re-checks the queue before it sleeps again. Events
    /// that end the polls (queue deleted) or undo a write still wake every poll, and so
    /// does an earlier timer (`wake_on_earlier_timer`).
    fn wake_a_receiver(&self) {
        self.notify.notify_one();
    }

    /// A sleeping poll wakes at the earliest timer (delay or visibility timeout) it saw
    /// when it went to sleep; when the queue's earliest timer moves earlier (a delayed
    /// send, a receive or visibility change on a queue whose timers were later or none),
    /// every poll must wake to see it, or a message reappearing after a short visibility
    /// timeout would wait for the end of the polls' 20 seconds.
    fn wake_on_earlier_timer(&self, before: Option<u64>, after: Option<u64>) {
        let earlier = match (before, after) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(a)) => a < b,
        };
        if earlier {
            self.notify.notify_waiters();
        }
    }
}

/// Queues by key, looked up on every SQS request and every SNS delivery: foldhash
/// (seeded per process) rather than SipHash, which took ~500 instructions to hash a
/// key's three strings, 4% of a publish to ten queues.
type KeyMap<V> = HashMap<QueueKey, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Registry {
    by_key: KeyMap<Arc<QueueHandle>>,
    by_id: HashMap<i64, Arc<QueueHandle>>,
    deleted_at: KeyMap<u64>,
}

struct TaskState {
    /// The working state, ahead of the disk while a move step commits.
    row: MoveTaskRow,
    /// What ListMessageMoveTasks reports: the state as last committed. A step's moved
    /// messages enter their queue in its commit hook, so a task must not read COMPLETED
    /// before then, or a client would receive from the destination and find nothing.
    committed: MoveTaskRow,
}

pub struct EmbeddedStore {
    pub(crate) db: Database,
    pub(crate) clock: Arc<dyn Clock>,
    options: EmbeddedOptions,
    /// Shared with undo hooks, which run on the writer thread.
    registry: Arc<RwLock<Registry>>,
    pub(crate) next_seq: AtomicI64,
    /// Shared with undo hooks, which run on the writer thread.
    pub(crate) topics: Arc<Mutex<crate::topics::TopicRegistry>>,
    pub(crate) streams: Arc<Mutex<crate::streams::StreamRegistry>>,
    pub(crate) firehose: Arc<Mutex<crate::firehose::FirehoseRegistry>>,
    pub(crate) secret: Mutex<Option<Vec<u8>>>,
    pub(crate) sealer: Sealer,
    next_queue_id: AtomicI64,
    tasks: Arc<Mutex<Vec<TaskState>>>,
    /// Where the last message log compaction copied each message: for a receive that
    /// looked a message up before its segment went, and for one that was between queues
    /// (a dead-letter move in flight) when compaction re-pointed the queues' indexes.
    /// The flag marks a message no queue held when its compaction ran (a stray): its entry
    /// stays through later compactions, the others only until the next one.
    relocated: Arc<Mutex<HashMap<i64, (Location, bool)>>>,
    /// The start read the index a clean shutdown left instead of replaying the log.
    from_index: std::sync::atomic::AtomicBool,
    _temp_dir: Option<tempfile::TempDir>,
}

/// A hook that runs `f` on a registry if a write fails, so memory keeps agreeing with
/// disk. Registries are shared through `Arc` because hooks run on the writer thread.
pub(crate) fn undo_in<R: Send + 'static>(
    registry: &Arc<Mutex<R>>,
    f: impl FnOnce(&mut R) + Send + 'static,
) -> CommitHook {
    let registry = registry.clone();
    Box::new(move || f(&mut registry.lock().unwrap_or_else(|p| p.into_inner())))
}

/// Sends checked and numbered but not yet written, to one queue or to several in one
/// write (SNS fan-out): its ops, each new message with its queue (shown in memory once
/// durable) and the FIFO deduplication entries taken ahead of the write (given back if
/// it fails). Shared by all the queues of a write: vectors and hooks of its own per
/// queue were five of the twenty allocations of each delivery of a fan-out.
#[derive(Default)]
struct SendWrite {
    ops: Vec<SqlOp>,
    inserted: Vec<(Arc<QueueHandle>, MsgMeta)>,
    taken_dedup: Vec<(Arc<QueueHandle>, (String, String), i64)>,
    /// The body run ([`body_runs`]) and sealing of the last message this write inserts
    /// with its own body: a message of the same run, sealed alike, shares it.
    body_holder: Option<(usize, bool)>,
}

/// For each message, the index of the first of the run of equal bodies it is in (its own
/// index when its body differs from the one before; a body given as the previous one's,
/// [`NewMessage::body_as_previous`], is in the previous run). A fan-out's deliveries carry
/// one text, and a run's messages store it once in the log: a publish to ten queues wrote
/// ten 1 KiB bodies, and with 100-byte bodies sns-fanout ran about 50% faster.
fn body_runs<'a>(messages: impl Iterator<Item = &'a NewMessage>) -> Vec<usize> {
    let mut previous: Option<&str> = None;
    let mut run = 0;
    messages
        .enumerate()
        .map(|(i, m)| {
            if !m.body_as_previous {
                if previous != Some(m.body.as_str()) {
                    run = i;
                }
                previous = Some(&m.body);
            }
            run
        })
        .collect()
}

/// Gives each outcome of a message the writer hashed its body's digest, from the
/// committed ops: each insert's row follows its outcome's order, and a FIFO duplicate's
/// outcome (which has no row, and may repeat an earlier one's id) is passed over.
fn take_computed_digests<'a>(outcomes: impl Iterator<Item = &'a mut SendOutcome>, ops: Vec<SqlOp>) {
    let mut computed = ops.into_iter().filter_map(|op| match op {
        SqlOp::InsertMessage(row) => {
            let row = *row;
            let md5 = match (row.md5_computed, row.content.body_md5) {
                (true, Some(StoredText::Plain(md5))) => md5,
                _ => return None,
            };
            Some((row.content.message_id, md5))
        }
        _ => None,
    });
    let mut next = computed.next();
    for outcome in outcomes.filter(|o| !o.duplicate) {
        if next.as_ref().is_some_and(|(id, _)| *id == outcome.message_id) {
            outcome.body_md5 = next.take().map(|(_, md5)| md5);
            next = computed.next();
        }
    }
}

/// A message's run of equal bodies ([`body_runs`]), and the run's text when the message
/// was given its body as the previous one's: a message that cannot share the run's stored
/// body (its queue is sealed otherwise) stores a copy of it.
#[derive(Clone, Copy)]
struct BodyRun<'a> {
    run: usize,
    text: Option<&'a str>,
}

impl SendWrite {
    /// The write's ops, ending with the highest sequence number it hands out (its last
    /// new message's: numbers are taken in order), and the hooks that show its messages
    /// once it commits or give its deduplication entries back if it fails.
    fn into_parts(self) -> (Vec<SqlOp>, OnCommit, Option<CommitHook>) {
        let SendWrite { mut ops, mut inserted, taken_dedup, .. } = self;
        if let Some((_, last)) = inserted.last() {
            ops.push(SqlOp::RaiseLastSeq { seq: last.seq });
        }
        let on_failure = (!taken_dedup.is_empty()).then(|| {
            Box::new(move || {
                for (handle, key, seq) in taken_dedup {
                    let mut st = handle.lock();
                    if st.dedup.get(&key).is_some_and(|e| e.seq == seq) {
                        st.dedup.remove(&key);
                    }
                }
            }) as CommitHook
        });
        let on_commit = match inserted.len() {
            // A SendMessage's one message goes in the write, and its vector is freed here,
            // on the thread that made it.
            1 => {
                let (queue, meta) = inserted.pop().expect("one message");
                OnCommit::Show(queue, meta)
            }
            _ => OnCommit::Hook(Box::new(move || show_sent(inserted))),
        };
        (ops, on_commit, on_failure)
    }
}

impl ShowSent for QueueHandle {
    fn show(self: Arc<Self>, meta: MsgMeta) {
        show_sent([(self, meta)]);
    }
}

/// Makes messages just written receivable, one lock per run of one queue's messages,
/// and has one of the queue's waiting receives woken once the group commit ends.
fn show_sent(inserted: impl IntoIterator<Item = (Arc<QueueHandle>, MsgMeta)>) {
    let mut rest = inserted.into_iter().peekable();
    while let Some((handle, first)) = rest.next() {
        let mut st = handle.lock();
        let deleted = st.deleted;
        let timer_before = st.next_event_ms();
        let mut receivable = 0;
        let mut next = Some(first);
        while let Some(mut meta) = next {
            next = rest.next_if(|(h, _)| Arc::ptr_eq(h, &handle)).map(|(_, m)| m);
            if deleted {
                continue;
            }
            let Some(at) = crate::db::logged_location(meta.seq) else {
                tracing::error!(seq = meta.seq, "a sent message has no place in the message log");
                continue;
            };
            meta.at = at;
            receivable += usize::from(meta.state == MsgState::Visible);
            st.insert(meta);
        }
        if deleted {
            continue;
        }
        let timer_after = st.next_event_ms();
        drop(st);
        if receivable > 0 {
            crate::db::wake_one_poll_after_group(&handle.notify);
        }
        handle.wake_on_earlier_timer(timer_before, timer_after);
    }
}

/// Undoes an attribute or tag change whose write failed, unless it changed again since.
fn restore_queue_maps(
    handle: Arc<QueueHandle>,
    before: (Arc<Attributes>, Arc<Tags>),
    after: (Arc<Attributes>, Arc<Tags>),
) -> CommitHook {
    Box::new(move || {
        let mut st = handle.lock();
        if Arc::ptr_eq(&st.attributes, &after.0) && Arc::ptr_eq(&st.tags, &after.1) {
            st.set_attributes(before.0);
            st.tags = before.1;
        }
    })
}

const HANDLE_VERSION: u8 = 1;

fn encode_handle(queue_id: i64, seq: i64, token: u64) -> String {
    let mut bytes = Vec::with_capacity(25);
    bytes.push(HANDLE_VERSION);
    bytes.extend_from_slice(&queue_id.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&token.to_be_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_handle(handle: &str) -> Option<(i64, i64, u64)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(handle.trim()).ok()?;
    if bytes.len() != 25 || bytes[0] != HANDLE_VERSION {
        return None;
    }
    let queue_id = i64::from_be_bytes(bytes[1..9].try_into().ok()?);
    let seq = i64::from_be_bytes(bytes[9..17].try_into().ok()?);
    let token = u64::from_be_bytes(bytes[17..25].try_into().ok()?);
    Some((queue_id, seq, token))
}

fn new_token() -> u64 {
    // Zero marks "never received".
    rand::random::<u64>() | 1
}

pub fn sequence_number(seq: i64) -> String {
    (SEQUENCE_NUMBER_BASE + seq as u128).to_string()
}

fn to_json(map: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

impl EmbeddedStore {
    pub fn open(options: EmbeddedOptions, clock: Arc<dyn Clock>) -> Result<EmbeddedStore, StoreError> {
        let (dir, temp_dir) = match &options.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("sluice-").tempdir().map_err(internal)?;
                (t.path().to_owned(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let durable = options.durable && options.data_dir.is_some();
        let sealer = match &options.encryption_key {
            Some(key) => Sealer::new(key),
            None => Sealer::load_or_create(&dir.join(crate::at_rest::KEY_FILE))?,
        };
        let opening = std::time::Instant::now();
        let (db, conn, replayed) = Database::open(
            &dir.join("sluice.db"),
            durable,
            options.max_data_bytes,
            options.record_segment_bytes,
            sealer.clone(),
        )?;
        let (opened, messages) = (opening.elapsed(), replayed.messages.len());
        let store = EmbeddedStore {
            db,
            clock,
            options,
            registry: Arc::new(RwLock::new(Registry::default())),
            next_seq: AtomicI64::new(1),
            next_queue_id: AtomicI64::new(1),
            tasks: Arc::new(Mutex::new(Vec::new())),
            relocated: Arc::new(Mutex::new(HashMap::new())),
            from_index: std::sync::atomic::AtomicBool::new(replayed.from_index),
            topics: Arc::new(Mutex::new(Default::default())),
            streams: Arc::new(Mutex::new(Default::default())),
            firehose: Arc::new(Mutex::new(Default::default())),
            secret: Mutex::new(None),
            sealer,
            _temp_dir: temp_dir,
        };
        store.check_key(&conn)?;
        let (from_index, loading) = (replayed.from_index, std::time::Instant::now());
        store.load(&conn, replayed).map_err(internal)?;
        tracing::info!(
            messages,
            from_index,
            open_ms = opened.as_millis() as u64,
            load_ms = loading.elapsed().as_millis() as u64,
            "SQS messages replayed and loaded"
        );
        Ok(store)
    }

    /// Refuses a key that does not open what this data directory was written with; the
    /// first start records a value sealed under the key for later starts to check.
    fn check_key(&self, conn: &rusqlite::Connection) -> Result<(), StoreError> {
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='key_check'", [], |r| r.get(0))
            .optional()
            .map_err(internal)?;
        match stored {
            Some(hex) => {
                let sealed = crate::at_rest::from_hex(&hex)?;
                match self.sealer.open(sealed) {
                    Ok(plain) if plain == crate::at_rest::KEY_CHECK_PLAINTEXT => Ok(()),
                    _ => Err(StoreError::EncryptionKey(
                        "this is not the key the data directory's encrypted data was written with".into(),
                    )),
                }
            }
            None => {
                let value = crate::at_rest::to_hex(&self.sealer.seal(crate::at_rest::KEY_CHECK_PLAINTEXT));
                // Through the writer, like every write (its commits drive the WAL's
                // checkpoints), and waited for: a write still queued when `open` returned
                // took the fault a test injected right after it (a rare failure of
                // `failed_queue_changes_leave_memory_as_on_disk`).
                self.db.commit_blocking(vec![SqlOp::SetMeta { key: "key_check", value }])
            }
        }
    }

    /// Rebuilds the in-memory indexes: queues and move tasks from the database, messages
    /// and deduplication entries from the message log's replay.
    fn load(&self, conn: &rusqlite::Connection, replayed: Replayed) -> rusqlite::Result<()> {
        let now = self.clock.now_ms();
        let mut reg = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let mut max_queue_id = 0;
        {
            let mut stmt = conn.prepare(
                "SELECT id, account, region, name, attributes, tags, created_ms, modified_ms, last_purge_ms FROM queues",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    QueueKey::new(&r.get::<_, String>(1)?, &r.get::<_, String>(2)?, &r.get::<_, String>(3)?),
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                ))
            })?;
            for row in rows {
                let (id, key, attrs, tags, created, modified, last_purge) = row?;
                let attrs: Attributes = serde_json::from_str(&attrs).unwrap_or_default();
                let tags: Tags = serde_json::from_str(&tags).unwrap_or_default();
                let mut state = QueueState::new(id, key.clone(), attrs, tags, created as u64, modified as u64);
                state.last_purge_ms = last_purge.map(|v| v as u64);
                let handle = Arc::new(QueueHandle { state: Mutex::new(state), notify: Arc::new(Notify::new()) });
                reg.by_key.insert(key, handle.clone());
                reg.by_id.insert(id, handle);
                max_queue_id = max_queue_id.max(id);
            }
        }
        let max_seq = crate::db::stored_last_seq(conn).max(replayed.max_seq);
        max_queue_id = max_queue_id.max(replayed.max_queue_id);
        // A first pass gathers each queue's ordered index keys (and so its size: each
        // queue's map is sized once, not grown and copied on the way to a million). The
        // sets are then built on a second thread while this one fills the maps: the two
        // took about 80 and 200 ms one after the other for a million messages.
        // Keyed by queue id with the sequence numbers' multiplicative hash (queue ids are
        // the store's numbers too, never a client's), and looked up once per run of one
        // queue's messages: SipHash per message took 90 ms of a million-message start.
        let mut pending: SeqMap<PendingIndexes> = SeqMap::default();
        {
            let mut live = replayed.messages.iter().peekable();
            while let Some(row) = live.next() {
                let queue_id = row.1.state.queue_id;
                let keys = pending.entry(queue_id).or_default();
                let mut next = Some(row);
                while let Some((seq, m)) = next {
                    let state = MsgState::loaded(m.state.visible_at_ms, m.state.receipt_token, now);
                    keys.add(*seq, state, m.state.visible_at_ms, m.sent_ms);
                    next = live.next_if(|(_, m)| m.state.queue_id == queue_id);
                }
            }
        }
        pending.retain(|queue_id, keys| match reg.by_id.get(queue_id) {
            Some(handle) => {
                handle.lock().reserve(keys.len());
                true
            }
            None => false,
        });
        std::thread::scope(|scope| {
            let built = scope.spawn(move || pending.into_iter().map(|(q, keys)| (q, keys.build())).collect::<Vec<_>>());
            let mut groups: HashMap<Box<str>, Arc<str>> = HashMap::new();
            let mut live = replayed.messages.into_rows_freed_as_taken().peekable();
            while let Some((seq, m)) = live.next() {
                let queue_id = m.state.queue_id;
                let Some(handle) = reg.by_id.get(&queue_id) else { continue };
                let mut state = handle.lock();
                // One lookup and one lock per run of a queue's messages, not per message.
                let mut next = Some((seq, m));
                while let Some((seq, m)) = next {
                    let group = m.group_id.map(|g| groups.entry(g.clone()).or_insert_with(|| Arc::from(&*g)).clone());
                    let (visible_at, token) = (m.state.visible_at_ms, m.state.receipt_token);
                    state.load(MsgMeta {
                        seq,
                        sent_ms: m.sent_ms,
                        visible_at_ms: visible_at,
                        receive_count: m.state.receive_count,
                        first_receive_ms: m.state.first_receive_ms,
                        receipt_token: token,
                        group,
                        state: MsgState::loaded(visible_at, token, now),
                        dlq_source: m.state.dlq_source,
                        at: m.at,
                    });
                    next = live.next_if(|(_, m)| m.state.queue_id == queue_id);
                }
            }
            drop(live);
            let built = built.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (queue_id, indexes) in built {
                if let Some(handle) = reg.by_id.get(&queue_id) {
                    handle.lock().finish_load(indexes);
                }
            }
        });
        for d in replayed.dedup.into_iter().filter(|d| d.expires_ms > now) {
            if let Some(handle) = reg.by_id.get(&d.queue_id) {
                handle.lock().dedup.insert(
                    (d.scope, d.dedup_id),
                    DedupEntry { expires_ms: d.expires_ms, message_id: d.message_id, seq: d.seq },
                );
            }
        }
        {
            let mut stmt = conn.prepare(
                "SELECT handle, source_queue_id, source_arn, destination_arn, max_per_second, status, moved, to_move, started_ms, failure_reason, max_seq FROM move_tasks",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(MoveTaskRow {
                    handle: r.get(0)?,
                    source_queue_id: r.get(1)?,
                    source_arn: r.get(2)?,
                    destination_arn: r.get(3)?,
                    max_per_second: r.get(4)?,
                    status: r.get(5)?,
                    moved: r.get(6)?,
                    to_move: r.get(7)?,
                    started_ms: r.get(8)?,
                    failure_reason: r.get(9)?,
                    max_seq: r.get(10)?,
                })
            })?;
            let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            for row in rows {
                let row = row?;
                tasks.push(TaskState { committed: row.clone(), row });
            }
        }
        *self.topic_registry() = crate::topics::TopicRegistry::load(conn, now, &self.sealer)?;
        *self.stream_registry() = crate::streams::StreamRegistry::load(conn)?;
        *self.firehose_registry() = crate::firehose::FirehoseRegistry::load(conn)?;
        self.next_seq.store(max_seq + 1, Ordering::SeqCst);
        self.next_queue_id.store(max_queue_id + 1, Ordering::SeqCst);
        Ok(())
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn firehose_registry(&self) -> MutexGuard<'_, crate::firehose::FirehoseRegistry> {
        self.firehose.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stream_registry(&self) -> MutexGuard<'_, crate::streams::StreamRegistry> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn topic_registry(&self) -> MutexGuard<'_, crate::topics::TopicRegistry> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, key: &QueueKey) -> Result<Arc<QueueHandle>, StoreError> {
        self.registry().by_key.get(key).cloned().ok_or(StoreError::QueueDoesNotExist)
    }

    pub(crate) fn commit<T>(
        &self,
        value: T,
        ops: Vec<SqlOp>,
        on_commit: Option<CommitHook>,
    ) -> Result<Durable<T>, StoreError> {
        self.submit(value, ops, on_commit.map(OnCommit::Hook), None)
    }

    /// One step of record log compaction (the server's worker runs it every second, after
    /// the retention sweeps that leave segments sparse); resolves to the chunks moved. A
    /// write of its own, so that on a full disk only the copy fails, not retention.
    pub fn compact_record_log(&self) -> Result<Durable<u64>, StoreError> {
        let log = &self.db.record_log;
        let relocations = self.db.read(|conn| log.compaction_step(conn).map_err(crate::at_rest::read_failure))?;
        if relocations.is_empty() {
            return Ok(Durable::ready(0));
        }
        let n = relocations.len() as u64;
        self.commit(n, relocations.into_iter().map(|r| SqlOp::RelocateChunk(Box::new(r))).collect(), None)
    }

    /// Record log segments and their committed bytes.
    #[doc(hidden)]
    pub fn record_segments(&self) -> Vec<(u32, u64)> {
        self.db.record_log.segments()
    }

    /// Makes the next `n` writes fail as an I/O error would, for fault-injection tests.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: usize) {
        self.db.inject_commit_failures(n);
    }

    /// Makes the next `n` syncs of the message log fail as an I/O error would (after the
    /// groups were written), for fault-injection tests.
    #[doc(hidden)]
    pub fn inject_sync_failures(&self, n: usize) {
        self.db.message_log.fail_next_syncs(n);
    }

    /// Checks and numbers `messages` for `key`'s queue (taking FIFO deduplication entries at
    /// once) into `write`, without writing, and their outcomes into `outcomes`, one per
    /// message; the caller commits the write, for this queue alone or with others. Each
    /// message comes with its body run ([`body_runs`]), if its body may be shared.
    fn prepare_send<'t>(
        &self,
        write: &mut SendWrite,
        key: &QueueKey,
        messages: impl IntoIterator<Item = (NewMessage, Option<BodyRun<'t>>)>,
        outcomes: &mut Vec<SendOutcome>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let handle = self.handle(key)?;
        let mut st = handle.lock();
        if st.deleted {
            return Err(StoreError::QueueDoesNotExist);
        }
        let fifo = st.config.fifo;
        let sse = st.config.sealed;
        for (m, body_run) in messages {
            if fifo {
                if let Some(dedup_id) = &m.dedup_id {
                    let scope = st.dedup_scope(m.group_id.as_deref());
                    if let Some(e) = st.dedup.get(&(scope.clone(), dedup_id.clone())) {
                        if e.expires_ms > now {
                            // Nothing is written for it, so the writer computes no digest.
                            let body_md5 = (m.body_md5.is_none() && !m.body_as_previous)
                                .then(|| sluice_md5::md5_hex(m.body.as_bytes()));
                            outcomes.push(SendOutcome {
                                message_id: e.message_id.clone(),
                                sequence_number: Some(sequence_number(e.seq)),
                                duplicate: true,
                                body_md5,
                            });
                            continue;
                        }
                    }
                }
            }
            let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
            let message_id = crate::store::new_message_id();
            let delay_ms = m.delay_s.map(|d| d * 1000).unwrap_or(st.config.delay_ms);
            if fifo {
                if let Some(dedup_id) = &m.dedup_id {
                    let scope = st.dedup_scope(m.group_id.as_deref());
                    let expires_ms = now + DEDUP_WINDOW_MS;
                    st.dedup.insert(
                        (scope.clone(), dedup_id.clone()),
                        DedupEntry { expires_ms, message_id: message_id.clone(), seq },
                    );
                    write.taken_dedup.push((handle.clone(), (scope.clone(), dedup_id.clone()), seq));
                    write.ops.push(SqlOp::InsertDedup(Box::new(DedupRecord {
                        queue_id: st.id,
                        scope,
                        dedup_id: dedup_id.clone(),
                        expires_ms,
                        message_id: message_id.clone(),
                        seq,
                    })));
                }
            }
            let meta = MsgMeta {
                seq,
                sent_ms: now,
                visible_at_ms: now + delay_ms,
                receive_count: 0,
                first_receive_ms: 0,
                receipt_token: 0,
                group: m.group_id.as_deref().map(Arc::from),
                state: if delay_ms > 0 { MsgState::Delayed } else { MsgState::Visible },
                dlq_source: None,
                // Known once the writer has appended it (`logged_location`, in the hook).
                at: Location { segment: 0, offset: 0, length: 0 },
            };
            write.inserted.push((handle.clone(), meta));
            outcomes.push(SendOutcome {
                message_id: message_id.clone(),
                sequence_number: fifo.then(|| sequence_number(seq)),
                duplicate: false,
                // The writer's, taken in once the write commits (`take_computed_digests`).
                body_md5: None,
            });
            // Sealed alike, so that a queue with server-side encryption never keeps its
            // body in another queue's plain text (nor the reverse).
            let holder = body_run.map(|r| (r.run, sse));
            let shares_body = holder.is_some() && holder == write.body_holder;
            let body = if shares_body {
                StoredText::Plain(String::new())
            } else {
                write.body_holder = holder;
                let body = if m.body_as_previous {
                    let missing = || StoreError::Internal("a message repeats the body of none before it".into());
                    body_run.and_then(|r| r.text).ok_or_else(missing)?.to_owned()
                } else {
                    m.body
                };
                StoredText::Plain(body)
            };
            write.ops.push(SqlOp::InsertMessage(Box::new(MessageRow {
                seq,
                state: MessageState { queue_id: st.id, visible_at_ms: now + delay_ms, ..Default::default() },
                shares_body,
                // Sealed by the writer, after it hashes the body.
                seal: sse,
                md5_computed: false,
                content: MessageContent {
                    message_id,
                    body,
                    body_md5: m.body_md5.map(StoredText::Plain),
                    attributes: m.attributes,
                    system_attributes: m.system_attributes,
                    sender_id: m.sender_id,
                    group_id: m.group_id,
                    dedup_id: m.dedup_id,
                    sent_ms: now,
                },
            })));
        }
        Ok(())
    }

    /// Submits `write` to the writer, answering `value` once it is durable, with the
    /// body digests the writer computed taken in by `settle`.
    fn commit_sends<T>(
        &self,
        write: SendWrite,
        value: T,
        settle: fn(&mut T, Vec<SqlOp>),
    ) -> Result<Durable<T>, StoreError> {
        let (ops, on_commit, on_failure) = write.into_parts();
        let mut durable = self.submit(value, ops, Some(on_commit), on_failure)?;
        durable.settle = Some(settle);
        Ok(durable)
    }

    /// As [`Self::commit`], with `on_failure` undoing in-memory changes if the write fails.
    pub(crate) fn commit_or_undo<T>(
        &self,
        value: T,
        ops: Vec<SqlOp>,
        on_commit: Option<CommitHook>,
        on_failure: CommitHook,
    ) -> Result<Durable<T>, StoreError> {
        self.submit(value, ops, on_commit.map(OnCommit::Hook), Some(on_failure))
    }

    /// Hands a write to the writer thread; `value` is answered once it is durable.
    fn submit<T>(
        &self,
        value: T,
        ops: Vec<SqlOp>,
        on_commit: Option<OnCommit>,
        on_failure: Option<CommitHook>,
    ) -> Result<Durable<T>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.db.submit(WriteItem { ops, on_commit, on_failure, done: Some(tx), route: None })?;
        Ok(Durable { value, commit: Some(rx), settle: None })
    }

    fn info(state: &QueueState) -> QueueInfo {
        QueueInfo {
            key: state.key.clone(),
            attributes: state.attributes.clone(),
            tags: state.tags.clone(),
            created_ms: state.created_ms,
            modified_ms: state.modified_ms,
            limits: Self::send_limits_of(state),
        }
    }

    fn send_limits_of(state: &QueueState) -> SendLimits {
        SendLimits {
            fifo: state.config.fifo,
            content_based_dedup: state.config.content_based_dedup,
            max_message_size: state.config.max_message_size,
        }
    }

    fn update_queue_op(state: &QueueState) -> SqlOp {
        SqlOp::UpdateQueue {
            id: state.id,
            attributes: to_json(&state.attributes),
            tags: to_json(&state.tags),
            modified_ms: state.modified_ms as i64,
        }
    }

    /// Reads the messages at `places` (sequence number, insert's location) from the log,
    /// opening sealed bodies; a message compaction moved since it was looked up is read
    /// where it went.
    fn read_messages(&self, places: &[(i64, Location)]) -> Result<HashMap<i64, ReceivedMessage>, StoreError> {
        let log = &self.db.message_log;
        let mut out = HashMap::with_capacity(places.len());
        let locations: Vec<Location> = places.iter().map(|&(_, at)| at).collect();
        for (&(seq, at), read) in places.iter().zip(log.read_many(&locations)?) {
            let read = match read {
                Some(found) => Some(found),
                None => match self.relocated(seq) {
                    Some(moved) => log.read(moved)?,
                    None => None,
                },
            };
            let Some((_, state, c)) = read.filter(|(s, _, _)| *s == seq) else {
                tracing::error!(seq, ?at, "a received message is not in the message log");
                continue;
            };
            out.insert(
                seq,
                ReceivedMessage {
                    message_id: c.message_id,
                    receipt_handle: String::new(),
                    body: c.body.open(&self.sealer)?,
                    body_md5: c.body_md5.map(|md5| md5.open(&self.sealer)).transpose()?,
                    attributes: c.attributes,
                    system_attributes: c.system_attributes,
                    sender_id: c.sender_id.into_owned(),
                    group_id: c.group_id,
                    dedup_id: c.dedup_id,
                    sent_ms: c.sent_ms,
                    receive_count: 0,
                    first_receive_ms: 0,
                    sequence_number: None,
                    dead_letter_source_arn: state.dlq_source.map(|id| id.to_string()),
                },
            );
        }
        Ok(out)
    }

    /// Where the last compaction put message `seq`, for a reader that looked it up before.
    fn relocated(&self, seq: i64) -> Option<Location> {
        self.relocated.lock().unwrap_or_else(|p| p.into_inner()).get(&seq).map(|(at, _)| *at)
    }

    /// One step of message log compaction (the server's worker runs it every second): when
    /// the log holds more than twice its live bytes and a segment besides, the writer
    /// copies the oldest segment's live messages to the head and removes it. The plan is
    /// drafted here, replaying the log, so blocks: call it off the async workers.
    pub fn compact_message_log(&self) -> Result<Durable<()>, StoreError> {
        let segments = self.db.message_log.segments();
        let total: u64 = segments.iter().map(|(_, size)| size).sum();
        let live = self.db.message_log.live_bytes();
        if segments.len() < 2 || total <= 2 * live + self.options.record_segment_bytes {
            return Ok(Durable::ready(()));
        }
        // Drafted here, not on the writer: the draft replays the whole log, which stalled
        // every write queued behind it; the writer only follows what came after.
        let Some(draft) = self.db.message_log.draft_compaction()? else { return Ok(Durable::ready(())) };
        let request = Arc::new(CompactionRequest {
            now_ms: self.clock.now_ms(),
            draft: Mutex::new(Some(draft)),
            outcome: Mutex::new(None),
        });
        let (registry, relocated) = (self.registry.clone(), self.relocated.clone());
        let outcome = request.clone();
        // The writer answers the compaction's write alone, after its last step (the copies
        // synced and the segment removed): the copied messages are read where they went.
        let repoint: CommitHook = Box::new(move || {
            let Some(done) = outcome.outcome.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
            let reg = registry.read().unwrap_or_else(|p| p.into_inner());
            let mut relocated = relocated.lock().unwrap_or_else(|p| p.into_inner());
            relocated.retain(|_, (_, stray)| *stray);
            for (seq, queue_id, at) in done.moved {
                let in_queue = |h: &Arc<QueueHandle>| h.lock().relocate(seq, done.segment, at);
                let found = reg.by_id.get(&queue_id).is_some_and(in_queue) || reg.by_id.values().any(in_queue);
                relocated.insert(seq, (at, !found));
            }
        });
        self.commit((), vec![SqlOp::CompactMessages(request)], Some(repoint))
    }

    /// Extends the message index (with a delta, now and then a new base) when the log has
    /// grown by [`CHECKPOINT_SEGMENTS`](crate::message_log::CHECKPOINT_SEGMENTS) segments
    /// since it, so that a start after a crash replays only what follows it; the caller
    /// runs it off the async workers (a merge can take a second for a million messages).
    /// Returns whether it wrote one; one covers a bounded stretch of log, so the caller
    /// calls again while it does.
    pub fn checkpoint_message_index(&self) -> Result<bool, StoreError> {
        let every = crate::message_log::CHECKPOINT_SEGMENTS * self.options.record_segment_bytes;
        self.db.message_log.checkpoint(self.clock.now_ms(), every)
    }

    /// Whether this start read the message index instead of replaying the log.
    #[doc(hidden)]
    pub fn started_from_index(&self) -> bool {
        self.from_index.load(Ordering::Relaxed)
    }

    /// Message log segments and their sizes.
    #[doc(hidden)]
    pub fn message_segments(&self) -> Vec<(u32, u64)> {
        self.db.message_log.segments()
    }

    /// Stops the writer after everything submitted so far is committed.
    pub fn shutdown(&self) {
        self.db.shutdown();
        // Every write is committed and the writer is gone: memory is what the log says.
        if let Err(e) = self.db.message_log.write_index(&self.durable_view()) {
            tracing::warn!(error = %e, "could not write the message index; the next start replays the log");
        }
    }

    /// The queues' messages and deduplication entries as replaying the log would give them.
    fn durable_view(&self) -> DurableView<'_> {
        DurableView {
            registry: self.registry(),
            relocated: self.relocated.lock().unwrap_or_else(|p| p.into_inner()),
            live: self.db.message_log.segments().into_iter().map(|(n, _)| n).collect(),
            max_seq: self.next_seq.load(Ordering::SeqCst) - 1,
            max_queue_id: self.next_queue_id.load(Ordering::SeqCst) - 1,
        }
    }

    fn queue_arn_by_id(&self, id: i64) -> Option<String> {
        self.registry().by_id.get(&id).map(|h| h.lock().key.arn())
    }
}

/// The queues' messages and deduplication entries as replaying the log would give them,
/// listed from the queues' own state as the index is written: gathering them into one map
/// first was a clean shutdown's memory peak (about 200 MB more for a million messages).
struct DurableView<'a> {
    registry: std::sync::RwLockReadGuard<'a, Registry>,
    relocated: MutexGuard<'a, HashMap<i64, (Location, bool)>>,
    live: std::collections::HashSet<u32>,
    max_seq: i64,
    max_queue_id: i64,
}

impl IndexSource for DurableView<'_> {
    fn max_seq(&self) -> i64 {
        self.max_seq
    }

    fn max_queue_id(&self) -> i64 {
        self.max_queue_id
    }

    fn message_count(&self) -> u64 {
        self.registry.by_id.values().map(|h| h.lock().len() as u64).sum()
    }

    fn each_message(&self, visit: &mut dyn FnMut(i64, &LiveMessage) -> std::io::Result<()>) -> std::io::Result<()> {
        for handle in self.registry.by_id.values() {
            let st = handle.lock();
            for m in st.messages() {
                // A message re-pointed only through the relocation map has its new place there.
                let at = match self.relocated.get(&m.seq) {
                    Some((moved, _)) if !self.live.contains(&m.at.segment) => *moved,
                    _ => m.at,
                };
                let state = MessageState {
                    queue_id: st.id,
                    visible_at_ms: m.visible_at_ms,
                    receive_count: m.receive_count,
                    first_receive_ms: m.first_receive_ms,
                    receipt_token: m.receipt_token,
                    dlq_source: m.dlq_source,
                };
                let group_id = m.group.as_deref().map(Box::from);
                visit(m.seq, &LiveMessage { at, state, sent_ms: m.sent_ms, group_id })?;
            }
        }
        Ok(())
    }

    fn dedup(&self) -> std::borrow::Cow<'_, [DedupRecord]> {
        let mut dedup = Vec::new();
        for handle in self.registry.by_id.values() {
            let st = handle.lock();
            for ((scope, dedup_id), d) in &st.dedup {
                dedup.push(DedupRecord {
                    queue_id: st.id,
                    scope: scope.clone(),
                    dedup_id: dedup_id.clone(),
                    expires_ms: d.expires_ms,
                    message_id: d.message_id.clone(),
                    seq: d.seq,
                });
            }
        }
        dedup.into()
    }
}

impl Store for EmbeddedStore {
    fn create_queue(
        &self,
        key: &QueueKey,
        attributes: Attributes,
        tags: Tags,
    ) -> Result<Durable<(QueueInfo, bool)>, StoreError> {
        let now = self.clock.now_ms();
        let mut reg = self.registry.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = reg.by_key.get(key) {
            let info = Self::info(&existing.lock());
            return self.commit((info, false), vec![], None);
        }
        if let Some(at) = reg.deleted_at.get(key) {
            if !self.options.relax_cooldowns && now < at + QUEUE_COOLDOWN_MS {
                return Err(StoreError::QueueDeletedRecently);
            }
        }
        reg.deleted_at.remove(key);
        let id = self.next_queue_id.fetch_add(1, Ordering::SeqCst);
        let state = QueueState::new(id, key.clone(), attributes, tags, now, now);
        let op = SqlOp::InsertQueue {
            id,
            account: key.account.clone(),
            region: key.region.clone(),
            name: key.name.clone(),
            attributes: to_json(&state.attributes),
            tags: to_json(&state.tags),
            now: now as i64,
        };
        let info = Self::info(&state);
        let handle = Arc::new(QueueHandle { state: Mutex::new(state), notify: Arc::new(Notify::new()) });
        reg.by_key.insert(key.clone(), handle.clone());
        reg.by_id.insert(id, handle.clone());
        // A queue that was not written must not be served: the client's retry would find
        // it and answer success, and it would vanish at the next restart.
        let registry = self.registry.clone();
        let key = key.clone();
        let undo: CommitHook = Box::new(move || {
            let mut reg = registry.write().unwrap_or_else(|p| p.into_inner());
            if reg.by_key.get(&key).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                reg.by_key.remove(&key);
                reg.by_id.remove(&id);
            }
            handle.lock().deleted = true;
            handle.notify.notify_waiters();
        });
        self.commit_or_undo((info, true), vec![op], None, undo)
    }

    fn get_queue(&self, key: &QueueKey) -> Result<QueueInfo, StoreError> {
        Ok(Self::info(&self.handle(key)?.lock()))
    }

    fn send_limits(&self, key: &QueueKey) -> Result<SendLimits, StoreError> {
        Ok(Self::send_limits_of(&self.handle(key)?.lock()))
    }

    fn list_queues(&self, account: &str, region: &str, prefix: &str) -> Vec<QueueKey> {
        let mut keys: Vec<QueueKey> = self
            .registry()
            .by_key
            .keys()
            .filter(|k| k.account == account && k.region == region && k.name.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn delete_queue(&self, key: &QueueKey) -> Result<Durable<()>, StoreError> {
        let now = self.clock.now_ms();
        let mut reg = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let handle = reg.by_key.remove(key).ok_or(StoreError::QueueDoesNotExist)?;
        let (id, freed) = {
            let mut st = handle.lock();
            st.deleted = true;
            (st.id, st.messages().map(|m| u64::from(m.at.length)).sum())
        };
        reg.by_id.remove(&id);
        reg.deleted_at.insert(key.clone(), now);
        handle.notify.notify_waiters();
        // A delete that was not written leaves the queue served, as it is still on disk.
        let registry = self.registry.clone();
        let key = key.clone();
        let undo: CommitHook = Box::new(move || {
            let mut reg = registry.write().unwrap_or_else(|p| p.into_inner());
            if reg.by_key.contains_key(&key) {
                return;
            }
            handle.lock().deleted = false;
            reg.deleted_at.remove(&key);
            reg.by_key.insert(key, handle.clone());
            reg.by_id.insert(id, handle);
        });
        self.commit_or_undo((), vec![SqlOp::DeleteQueue { id, freed }], None, undo)
    }

    fn set_queue_attributes(&self, key: &QueueKey, attributes: Attributes) -> Result<Durable<()>, StoreError> {
        let handle = self.handle(key)?;
        let mut st = handle.lock();
        let before = (st.attributes.clone(), st.tags.clone());
        let mut merged = Attributes::clone(&st.attributes);
        merged.extend(attributes);
        st.set_attributes(Arc::new(merged));
        st.modified_ms = self.clock.now_ms();
        let op = Self::update_queue_op(&st);
        let after = (st.attributes.clone(), st.tags.clone());
        drop(st);
        let undo = restore_queue_maps(handle.clone(), before, after);
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn tag_queue(&self, key: &QueueKey, tags: Tags) -> Result<Durable<()>, StoreError> {
        let handle = self.handle(key)?;
        let mut st = handle.lock();
        let before = (st.attributes.clone(), st.tags.clone());
        Arc::make_mut(&mut st.tags).extend(tags);
        let op = Self::update_queue_op(&st);
        let after = (st.attributes.clone(), st.tags.clone());
        drop(st);
        let undo = restore_queue_maps(handle.clone(), before, after);
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn untag_queue(&self, key: &QueueKey, keys: &[String]) -> Result<Durable<()>, StoreError> {
        let handle = self.handle(key)?;
        let mut st = handle.lock();
        let before = (st.attributes.clone(), st.tags.clone());
        for k in keys {
            Arc::make_mut(&mut st.tags).remove(k);
        }
        let op = Self::update_queue_op(&st);
        let after = (st.attributes.clone(), st.tags.clone());
        drop(st);
        let undo = restore_queue_maps(handle.clone(), before, after);
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn purge_queue(&self, key: &QueueKey) -> Result<Durable<()>, StoreError> {
        let now = self.clock.now_ms();
        let handle = self.handle(key)?;
        let mut st = handle.lock();
        if let Some(last) = st.last_purge_ms {
            if !self.options.relax_cooldowns && now < last + QUEUE_COOLDOWN_MS {
                return Err(StoreError::PurgeInProgress);
            }
        }
        let last_purge = st.last_purge_ms.replace(now);
        let max_seq = self.next_seq.load(Ordering::SeqCst) - 1;
        let purged: Vec<_> = st.all_seqs_up_to(max_seq).into_iter().filter_map(|seq| st.remove(seq)).collect();
        let freed = purged.iter().map(|m| u64::from(m.at.length)).sum();
        let ops = vec![
            SqlOp::PurgeMessages { queue_id: st.id, max_seq, freed },
            SqlOp::SetLastPurge { id: st.id, at: now as i64 },
        ];
        drop(st);
        // A purge that was not written leaves the messages, which are still on disk.
        let undo_handle = handle.clone();
        let undo: CommitHook = Box::new(move || {
            let mut st = undo_handle.lock();
            if st.deleted {
                return;
            }
            st.last_purge_ms = last_purge;
            for meta in purged {
                if st.get(meta.seq).is_none() {
                    st.insert(meta);
                }
            }
            drop(st);
            undo_handle.notify.notify_waiters();
        });
        self.commit_or_undo((), ops, None, undo)
    }

    fn queue_counts(&self, key: &QueueKey) -> Result<QueueCounts, StoreError> {
        Ok(self.handle(key)?.lock().counts(self.clock.now_ms()))
    }

    fn send_messages(
        &self,
        key: &QueueKey,
        messages: Vec<NewMessage>,
    ) -> Result<Durable<Vec<SendOutcome>>, StoreError> {
        let mut write = SendWrite {
            // An insert a message, a deduplication entry each in a FIFO queue, and the
            // raise of `last_seq`: growing the vector for that last op was a `realloc`
            // per SendMessage.
            ops: Vec::with_capacity(2 * messages.len() + 1),
            inserted: Vec::with_capacity(messages.len()),
            ..Default::default()
        };
        let mut outcomes = Vec::with_capacity(messages.len());
        self.prepare_send(&mut write, key, messages.into_iter().map(|m| (m, None)), &mut outcomes)?;
        // Written even with nothing new (every message a duplicate): the answer then
        // waits for the writes queued before it, the original's among them.
        self.commit_sends(write, outcomes, |outcomes, ops| take_computed_digests(outcomes.iter_mut(), ops))
    }

    fn send_to_queues(&self, sends: Vec<(&QueueKey, NewMessage)>) -> Result<Durable<PerQueueSends>, StoreError> {
        let mut write = SendWrite {
            ops: Vec::with_capacity(sends.len() + 1),
            inserted: Vec::with_capacity(sends.len()),
            ..Default::default()
        };
        let mut outcome = Vec::with_capacity(1);
        let runs = body_runs(sends.iter().map(|(_, m)| m));
        // One copy of a repeated text, taken before its first message's body is sealed in
        // place, for a later message that cannot share it.
        let mut run_text: Option<String> = None;
        let mut results: PerQueueSends = Vec::with_capacity(sends.len());
        let mut sends = sends.into_iter().zip(runs).peekable();
        while let Some(((key, message), run)) = sends.next() {
            if !message.body_as_previous {
                let repeated = sends.peek().is_some_and(|((_, next), _)| next.body_as_previous);
                run_text = repeated.then(|| message.body.clone());
            }
            let body_run = BodyRun { run, text: run_text.as_deref() };
            let result = self.prepare_send(&mut write, key, [(message, Some(body_run))], &mut outcome);
            results.push(result.map(|()| outcome.pop().expect("one outcome per message")));
        }
        if write.ops.is_empty() {
            return Ok(Durable::ready(results));
        }
        self.commit_sends(write, results, |results, ops| {
            take_computed_digests(results.iter_mut().filter_map(|r| r.as_mut().ok()), ops)
        })
    }

    fn receive_messages(
        &self,
        key: &QueueKey,
        params: &ReceiveParams,
    ) -> Result<Durable<Vec<ReceivedMessage>>, StoreError> {
        let now = self.clock.now_ms();
        let handle = self.handle(key)?;
        let redrive = handle.lock().config.redrive.clone();
        let dlq = redrive.as_ref().and_then(|r| self.registry().by_key.get(&r.dead_letter_target).cloned());
        let mut st = handle.lock();
        if st.deleted {
            return Err(StoreError::QueueDoesNotExist);
        }
        if dlq.is_none() {
            // A RedrivePolicy whose target is gone: messages stay in the source queue.
            st.config.redrive = None;
        }
        let visibility_ms = params.visibility_timeout_s.map(|v| v * 1000).unwrap_or(st.config.visibility_timeout_ms);
        let timer_before = st.next_event_ms();
        let outcome = st.receive(now, params.max_messages, visibility_ms, params.attempt_id.as_deref(), new_token);
        st.config.redrive = redrive;
        let source_id = st.id;
        let timer_after = st.next_event_ms();
        // A send's group commit wakes one poll however many messages it made receivable;
        // a receive that took some (or moved them to the dead-letter queue) and leaves
        // others visible wakes the next. A long poll is among the waiters while it
        // receives, and a wake-up it gets itself then is passed on when it returns, or
        // makes it look again if it took nothing.
        let leaves_some = (!outcome.taken.is_empty() || !outcome.to_dead_letter.is_empty()) && st.has_visible();
        drop(st);
        if leaves_some {
            handle.wake_a_receiver();
        }
        handle.wake_on_earlier_timer(timer_before, timer_after);

        let mut ops = Vec::with_capacity(outcome.taken.len());
        for t in &outcome.taken {
            ops.push(SqlOp::UpdateVisibility {
                seq: t.seq,
                visible_at_ms: t.visible_at_ms as i64,
                receive_count: t.receive_count as i64,
                first_receive_ms: t.first_receive_ms as i64,
                receipt_token: t.receipt_token as i64,
            });
        }
        // If the write fails, the client gets an error and never sees these receipt
        // handles: the messages become visible again with their stored receive counts,
        // and those bound for the dead-letter queue go back to the source.
        let taken_tokens: Vec<(i64, u64)> = outcome.taken.iter().map(|t| (t.seq, t.receipt_token)).collect();
        let not_moved = outcome.to_dead_letter.clone();
        let undo_handle = handle.clone();
        let undo: CommitHook = Box::new(move || {
            let mut st = undo_handle.lock();
            if st.deleted {
                return;
            }
            for (seq, token) in taken_tokens {
                if !st.get(seq).is_some_and(|m| m.receipt_token == token && m.state == MsgState::InFlight) {
                    continue;
                }
                let Some(mut meta) = st.remove(seq) else { continue };
                meta.state = MsgState::Visible;
                meta.visible_at_ms = now;
                meta.receive_count = meta.receive_count.saturating_sub(1);
                if meta.receive_count == 0 {
                    meta.first_receive_ms = 0;
                }
                st.insert(meta);
            }
            for meta in not_moved {
                if st.get(meta.seq).is_none() {
                    st.insert(meta);
                }
            }
            drop(st);
            undo_handle.notify.notify_waiters();
        });
        let mut hook: Option<CommitHook> = None;
        if let (Some(dlq), false) = (dlq, outcome.to_dead_letter.is_empty()) {
            let dlq_id = dlq.lock().id;
            let mut moved = Vec::new();
            for mut meta in outcome.to_dead_letter {
                ops.push(SqlOp::MoveMessage {
                    seq: meta.seq,
                    to_queue: dlq_id,
                    dlq_source_queue_id: Some(source_id),
                    visible_at_ms: now as i64,
                    reset_receives: false,
                });
                meta.state = MsgState::Visible;
                meta.visible_at_ms = now;
                meta.receipt_token = 0;
                meta.dlq_source = Some(source_id);
                moved.push(meta);
            }
            hook = Some(Box::new(move || {
                let mut st = dlq.lock();
                if !st.deleted {
                    for m in moved {
                        st.insert(m);
                    }
                }
                drop(st);
                dlq.notify.notify_waiters();
            }));
        }
        let places: Vec<(i64, Location)> = outcome.taken.iter().map(|t| (t.seq, t.at)).collect();
        let mut rows = self.read_messages(&places)?;
        let fifo = handle.lock().config.fifo;
        let mut out = Vec::with_capacity(places.len());
        for t in outcome.taken {
            let Some(mut m) = rows.remove(&t.seq) else { continue };
            m.receipt_handle = encode_handle(source_id, t.seq, t.receipt_token);
            m.receive_count = t.receive_count;
            m.first_receive_ms = t.first_receive_ms;
            m.sequence_number = fifo.then(|| sequence_number(t.seq));
            m.dead_letter_source_arn = t.dlq_source.and_then(|id| self.queue_arn_by_id(id));
            out.push(m);
        }
        if ops.is_empty() && hook.is_none() {
            // An empty receive writes nothing; answer without a trip through the writer.
            return Ok(Durable::ready(out));
        }
        self.commit_or_undo(out, ops, hook, undo)
    }

    fn delete_message(&self, key: &QueueKey, receipt_handle: &str) -> Result<Durable<()>, StoreError> {
        let now = self.clock.now_ms();
        let handle = self.handle(key)?;
        let (queue_id, seq, token) = decode_handle(receipt_handle).ok_or(StoreError::ReceiptHandleInvalid)?;
        let mut st = handle.lock();
        if queue_id != st.id {
            return Err(StoreError::ReceiptHandleInvalid);
        }
        st.advance(now);
        let Some(meta) = st.get(seq) else {
            // Already deleted: AWS answers success.
            return Ok(Durable::ready(()));
        };
        if meta.receipt_token != token {
            // An older receipt: "the request succeeds, but the message might not be deleted".
            return Ok(Durable::ready(()));
        }
        if st.config.fifo && meta.state != MsgState::InFlight {
            return Err(StoreError::ReceiptHandleExpired);
        }
        let fifo = st.config.fifo;
        let removed = st.remove(seq);
        let freed = removed.as_ref().map_or(0, |m| u64::from(m.at.length));
        drop(st);
        // Deleting a FIFO message may unblock its group's next message; deleting from a
        // standard queue makes nothing receivable.
        if fifo {
            handle.wake_a_receiver();
        }
        // If the delete cannot be written, the message goes back into the index: otherwise
        // the client's retry would be answered "already deleted" while the row stays on
        // disk, and the message would return after a restart.
        let undo_handle = handle.clone();
        let undo: CommitHook = Box::new(move || {
            let Some(meta) = removed else { return };
            let mut st = undo_handle.lock();
            if !st.deleted && st.get(meta.seq).is_none() {
                st.insert(meta);
            }
        });
        self.commit_or_undo((), vec![SqlOp::DeleteMessage { seq, freed }], None, undo)
    }

    fn change_visibility(
        &self,
        key: &QueueKey,
        receipt_handle: &str,
        timeout_s: u64,
    ) -> Result<Durable<()>, StoreError> {
        let now = self.clock.now_ms();
        let handle = self.handle(key)?;
        let (queue_id, seq, token) = decode_handle(receipt_handle).ok_or(StoreError::ReceiptHandleInvalid)?;
        let mut st = handle.lock();
        if queue_id != st.id {
            return Err(StoreError::ReceiptHandleInvalid);
        }
        let before = st.get(seq).cloned();
        let timer_before = st.next_event_ms();
        let meta = st.change_visibility(seq, token, now, timeout_s)?;
        let timer_after = st.next_event_ms();
        drop(st);
        if timeout_s == 0 {
            handle.wake_a_receiver();
        }
        handle.wake_on_earlier_timer(timer_before, timer_after);
        // If the write fails, the message keeps the visibility it has on disk, unless
        // something changed it since (a receive after a timeout of 0).
        let undo_handle = handle.clone();
        let changed = meta.clone();
        let undo: CommitHook = Box::new(move || {
            let Some(before) = before else { return };
            let mut st = undo_handle.lock();
            let untouched = st.get(seq).is_some_and(|m| {
                m.receipt_token == changed.receipt_token
                    && m.visible_at_ms == changed.visible_at_ms
                    && m.state == changed.state
            });
            if !st.deleted && untouched {
                st.remove(seq);
                st.insert(before);
            }
        });
        self.commit_or_undo(
            (),
            vec![SqlOp::UpdateVisibility {
                seq,
                visible_at_ms: meta.visible_at_ms as i64,
                receive_count: meta.receive_count as i64,
                first_receive_ms: meta.first_receive_ms as i64,
                receipt_token: meta.receipt_token as i64,
            }],
            None,
            undo,
        )
    }

    fn wait_signal(&self, key: &QueueKey) -> Result<(Arc<Notify>, Option<u64>), StoreError> {
        let handle = self.handle(key)?;
        let next = handle.lock().next_event_ms();
        Ok((handle.notify.clone(), next))
    }

    fn dead_letter_sources(&self, dlq: &QueueKey) -> Result<Vec<QueueKey>, StoreError> {
        let reg = self.registry();
        if !reg.by_key.contains_key(dlq) {
            return Err(StoreError::QueueDoesNotExist);
        }
        let mut out: Vec<QueueKey> = reg
            .by_key
            .values()
            .filter_map(|h| {
                let st = h.lock();
                st.config.redrive.as_ref().filter(|r| &r.dead_letter_target == dlq).map(|_| QueueKey::clone(&st.key))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn start_move_task(
        &self,
        source: &QueueKey,
        destination: Option<&QueueKey>,
        max_per_second: Option<u32>,
    ) -> Result<Durable<String>, StoreError> {
        let now = self.clock.now_ms();
        let handle = self.handle(source)?;
        if destination.is_some_and(|d| !self.registry().by_key.contains_key(d)) {
            return Err(StoreError::MoveTask("The destination queue does not exist.".into()));
        }
        if self.dead_letter_sources(source)?.is_empty() {
            return Err(StoreError::MoveTask("Source queue must be configured as a Dead Letter Queue.".into()));
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let source_arn = source.arn();
        if tasks.iter().any(|t| t.row.source_arn == source_arn && t.row.status == "RUNNING") {
            return Err(StoreError::MoveTask("There is already a task running. Only one active task is allowed for a source queue arn at a given time.".into()));
        }
        let st = handle.lock();
        let max_seq = self.next_seq.load(Ordering::SeqCst) - 1;
        let to_move = st.count_up_to(max_seq);
        let source_queue_id = st.id;
        drop(st);
        let task_id = uuid::Uuid::new_v4().to_string();
        let handle_text = base64::engine::general_purpose::STANDARD
            .encode(serde_json::json!({"taskId": task_id, "sourceArn": source_arn}).to_string());
        let row = MoveTaskRow {
            handle: handle_text.clone(),
            source_queue_id,
            source_arn,
            destination_arn: destination.map(QueueKey::arn),
            max_per_second: max_per_second.map(i64::from),
            status: "RUNNING".into(),
            moved: 0,
            to_move: to_move as i64,
            started_ms: now as i64,
            failure_reason: None,
            max_seq,
        };
        tasks.push(TaskState { row: row.clone(), committed: row.clone() });
        drop(tasks);
        self.commit(handle_text, vec![SqlOp::UpsertMoveTask(Box::new(row))], None)
    }

    fn list_move_tasks(&self, source: &QueueKey, max_results: usize) -> Result<Vec<MoveTask>, StoreError> {
        self.handle(source)?;
        let arn = source.arn();
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<MoveTask> =
            tasks.iter().filter(|t| t.row.source_arn == arn).map(|t| task_view(&t.committed)).collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.started_ms));
        out.truncate(max_results);
        Ok(out)
    }

    fn cancel_move_task(&self, handle: &str) -> Result<Durable<MoveTask>, StoreError> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let task = tasks.iter_mut().find(|t| t.row.handle == handle).ok_or(StoreError::MoveTaskNotFound)?;
        if task.row.status != "RUNNING" {
            return Err(StoreError::MoveTask("Only active tasks can be cancelled.".into()));
        }
        task.row.status = "CANCELLED".into();
        task.committed.status = "CANCELLED".into();
        let row = task.row.clone();
        drop(tasks);
        self.commit(task_view(&row), vec![SqlOp::UpsertMoveTask(Box::new(row))], None)
    }

    fn run_move_tasks(&self, budget_per_task: u64) -> Result<Durable<u64>, StoreError> {
        let now = self.clock.now_ms();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut ops = Vec::new();
        let mut hooks: Vec<(Arc<QueueHandle>, Vec<MsgMeta>)> = Vec::new();
        let mut stepped: Vec<MoveTaskRow> = Vec::new();
        // For a failed commit: the tasks as they were, and the messages taken from sources.
        let mut rows_before: Vec<MoveTaskRow> = Vec::new();
        let mut taken_from: Vec<(Arc<QueueHandle>, Vec<MsgMeta>)> = Vec::new();
        let mut total = 0;
        for task in tasks.iter_mut().filter(|t| t.row.status == "RUNNING") {
            rows_before.push(task.row.clone());
            let source = self.registry().by_id.get(&task.row.source_queue_id).cloned();
            let Some(source) = source else {
                task.row.status = "FAILED".into();
                task.row.failure_reason = Some("AWS.SimpleQueueService.NonExistentQueue".into());
                ops.push(SqlOp::UpsertMoveTask(Box::new(task.row.clone())));
                stepped.push(task.row.clone());
                continue;
            };
            let fixed_destination = match &task.row.destination_arn {
                Some(arn) => match QueueKey::from_arn(arn).and_then(|k| self.registry().by_key.get(&k).cloned()) {
                    Some(h) => Some(h),
                    None => {
                        task.row.status = "FAILED".into();
                        task.row.failure_reason = Some("AWS.SimpleQueueService.NonExistentQueue".into());
                        ops.push(SqlOp::UpsertMoveTask(Box::new(task.row.clone())));
                        stepped.push(task.row.clone());
                        continue;
                    }
                },
                None => None,
            };
            let mut st = source.lock();
            let budget = task.row.max_per_second.map(|r| r as u64).unwrap_or(budget_per_task);
            let taken = st.take_visible_up_to(now, task.row.max_seq, budget as usize);
            let remaining = st.count_up_to(task.row.max_seq);
            drop(st);
            taken_from.push((source.clone(), taken.clone()));
            for mut meta in taken {
                let dest = fixed_destination
                    .clone()
                    .or_else(|| meta.dlq_source.and_then(|id| self.registry().by_id.get(&id).cloned()));
                let Some(dest) = dest else {
                    // The message's original queue is gone: put it back and fail the task.
                    source.lock().insert(meta);
                    task.row.status = "FAILED".into();
                    task.row.failure_reason = Some("AWS.SimpleQueueService.NonExistentQueue".into());
                    break;
                };
                let dest_id = dest.lock().id;
                ops.push(SqlOp::MoveMessage {
                    seq: meta.seq,
                    to_queue: dest_id,
                    dlq_source_queue_id: None,
                    visible_at_ms: now as i64,
                    reset_receives: true,
                });
                meta.state = MsgState::Visible;
                meta.visible_at_ms = now;
                meta.receive_count = 0;
                meta.first_receive_ms = 0;
                meta.receipt_token = 0;
                meta.dlq_source = None;
                task.row.moved += 1;
                total += 1;
                match hooks.iter_mut().find(|(h, _)| Arc::ptr_eq(h, &dest)) {
                    Some((_, v)) => v.push(meta),
                    None => hooks.push((dest, vec![meta])),
                }
            }
            if task.row.status == "RUNNING" && remaining == 0 {
                task.row.status = "COMPLETED".into();
            }
            ops.push(SqlOp::UpsertMoveTask(Box::new(task.row.clone())));
            stepped.push(task.row.clone());
        }
        drop(tasks);
        let tasks = self.tasks.clone();
        let tasks_for_undo = self.tasks.clone();
        if ops.is_empty() {
            return Ok(Durable::ready(0));
        }
        let hook: CommitHook = Box::new(move || {
            for (dest, metas) in hooks {
                let mut st = dest.lock();
                if !st.deleted {
                    for m in metas {
                        st.insert(m);
                    }
                }
                drop(st);
                dest.notify.notify_waiters();
            }
            // Only now, with the messages in their queues, does the task report progress.
            let mut tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
            for row in stepped {
                if let Some(t) = tasks.iter_mut().find(|t| t.row.handle == row.handle) {
                    // A cancel that landed meanwhile keeps its status.
                    let cancelled = t.committed.status == "CANCELLED";
                    t.committed = row;
                    if cancelled {
                        t.committed.status = "CANCELLED".into();
                    }
                }
            }
        });
        let undo: CommitHook = Box::new(move || {
            for (source, metas) in taken_from {
                let mut st = source.lock();
                for m in metas {
                    if st.get(m.seq).is_none() {
                        st.insert(m);
                    }
                }
            }
            let mut tasks = tasks_for_undo.lock().unwrap_or_else(|p| p.into_inner());
            for row in rows_before {
                if let Some(t) = tasks.iter_mut().find(|t| t.row.handle == row.handle && t.row.status != "CANCELLED") {
                    t.row = row;
                }
            }
        });
        self.commit_or_undo(total, ops, Some(hook), undo)
    }

    fn expire(&self) -> Result<Durable<u64>, StoreError> {
        let now = self.clock.now_ms();
        let handles: Vec<Arc<QueueHandle>> = self.registry().by_key.values().cloned().collect();
        let mut ops = Vec::new();
        let mut dedup_expired = 0;
        for h in handles {
            let mut st = h.lock();
            for seq in st.expired(now) {
                let freed = st.remove(seq).map_or(0, |m| u64::from(m.at.length));
                ops.push(SqlOp::DeleteMessage { seq, freed });
            }
            dedup_expired += st.prune_dedup(now);
        }
        dedup_expired += self.topic_registry().prune(now);
        let n = ops.len() as u64;
        if dedup_expired > 0 {
            ops.push(SqlOp::PruneDedup { now: now as i64 });
        }
        if ops.is_empty() {
            // Nothing to write: no commit, no fsync.
            return Ok(Durable::ready(0));
        }
        self.commit(n, ops, None)
    }
}

fn task_view(row: &MoveTaskRow) -> MoveTask {
    MoveTask {
        handle: row.handle.clone(),
        source_arn: row.source_arn.clone(),
        destination_arn: row.destination_arn.clone(),
        max_per_second: row.max_per_second.map(|v| v as u32),
        status: row.status.clone(),
        moved: row.moved as u64,
        to_move: row.to_move as u64,
        started_ms: row.started_ms as u64,
        failure_reason: row.failure_reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_handles_round_trip_and_reject_garbage() {
        let h = encode_handle(3, 99, 12345);
        assert_eq!(decode_handle(&h), Some((3, 99, 12345)));
        assert_eq!(decode_handle("not-a-handle"), None);
        assert_eq!(decode_handle(""), None);
    }

    #[test]
    fn sequence_numbers_have_aws_shape_and_grow() {
        let a = sequence_number(1);
        let b = sequence_number(2);
        assert_eq!(a.len(), 20);
        assert!(a < b);
    }
}
