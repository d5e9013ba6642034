//! SQLite persistence: schema and migrations, the single writer thread with group
//! commit (which appends a group's records to the record log before its transaction),
//! and read connections.

use crate::ack_route::{Ack, AckRoute, Routed};
use crate::at_rest::{Sealer, StoredText};
use crate::faults::Countdown;
use crate::group_digest;
use crate::message_log::{
    encode, encode_sealing, Change, CompactionDraft, DedupRecord, Location, MessageContent, MessageLog, MessageState,
    Replayed,
};
use crate::queue_state::{MsgMeta, SeqMap};
use crate::record_log::{encode_chunk, ChunkKind, ChunkPlace, RecordChunk, RecordLog, Relocation};
use crate::store::StoreError;
use crate::write_queue::WriteQueue;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};

/// Schema migrations, applied in order; `meta.schema_version` records how many ran.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE queues (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL,
    attributes TEXT NOT NULL, tags TEXT NOT NULL,
    created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL, last_purge_ms INTEGER,
    UNIQUE (account, region, name)
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL,
    group_id TEXT,
    sent_ms INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_ms INTEGER NOT NULL DEFAULT 0,
    receipt_token INTEGER NOT NULL DEFAULT 0,
    dlq_source_queue_id INTEGER
);
-- Bodies apart from the metadata rows, so that start-up scans only the small rows.
CREATE TABLE message_bodies (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT, system_attributes TEXT,
    sender_id TEXT NOT NULL,
    dedup_id TEXT
);
CREATE INDEX messages_by_queue ON messages (queue_id, seq);
CREATE TABLE dedup (
    queue_id INTEGER NOT NULL, scope TEXT NOT NULL, dedup_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (queue_id, scope, dedup_id)
);
CREATE INDEX dedup_by_expiry ON dedup (expires_ms);
CREATE TABLE move_tasks (
    handle TEXT PRIMARY KEY, source_queue_id INTEGER NOT NULL, source_arn TEXT NOT NULL,
    destination_arn TEXT, max_per_second INTEGER, status TEXT NOT NULL,
    moved INTEGER NOT NULL, to_move INTEGER NOT NULL, started_ms INTEGER NOT NULL,
    failure_reason TEXT, max_seq INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE topics (arn TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE subscriptions (arn TEXT PRIMARY KEY, topic_arn TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE sns_outbox (
    id INTEGER PRIMARY KEY,
    subscription_arn TEXT NOT NULL,
    record TEXT NOT NULL,
    next_attempt_ms INTEGER NOT NULL
);
CREATE TABLE topic_dedup (
    topic_arn TEXT NOT NULL, scope TEXT NOT NULL, dedup_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (topic_arn, scope, dedup_id)
);
"#,
    r#"
CREATE TABLE sns_resources (kind TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (kind, key));
"#,
    r#"
CREATE TABLE streams (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE records (
    shard_uid INTEGER NOT NULL, seq_ix INTEGER NOT NULL, arrival_ms INTEGER NOT NULL,
    partition_key TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (shard_uid, seq_ix)
) WITHOUT ROWID;
-- The next record index of each shard, never lowered (retention may delete the last record).
CREATE TABLE shard_seq (shard_uid INTEGER PRIMARY KEY, next_seq_ix INTEGER NOT NULL);
-- The first record of each arrival second per shard: AT_TIMESTAMP and retention in O(log n).
CREATE TABLE record_times (
    shard_uid INTEGER NOT NULL, second INTEGER NOT NULL, first_seq_ix INTEGER NOT NULL,
    PRIMARY KEY (shard_uid, second)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE delivery_streams (id INTEGER PRIMARY KEY, record TEXT NOT NULL);
-- Records accepted by Firehose and not yet delivered: buffers survive restarts.
CREATE TABLE firehose_buffer (
    stream_id INTEGER NOT NULL, seq INTEGER NOT NULL, arrival_ms INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (stream_id, seq)
) WITHOUT ROWID;
"#,
    r#"
-- 1 when `data` is sealed (encryption at rest); SQS bodies tell by their type instead.
ALTER TABLE records ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE firehose_buffer ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Kinesis records and Firehose buffers move to rowid tables with a unique index for their
-- key. A WITHOUT ROWID row is an index b-tree cell, which keeps at most about 1 KB of a
-- 4 KiB page in place: each 1 KiB record spilled into an overflow page of its own, and
-- four times its size was written (twice: WAL, then checkpoint). Rowid rows keep up to
-- 4 KB in place and append at the end of the table.
CREATE TABLE records_by_rowid (
    shard_uid INTEGER NOT NULL, seq_ix INTEGER NOT NULL, arrival_ms INTEGER NOT NULL,
    partition_key TEXT NOT NULL, data BLOB NOT NULL, sealed INTEGER NOT NULL DEFAULT 0
);
INSERT INTO records_by_rowid (shard_uid, seq_ix, arrival_ms, partition_key, data, sealed)
    SELECT shard_uid, seq_ix, arrival_ms, partition_key, data, sealed FROM records ORDER BY shard_uid, seq_ix;
DROP TABLE records;
ALTER TABLE records_by_rowid RENAME TO records;
CREATE UNIQUE INDEX records_by_shard ON records (shard_uid, seq_ix);
CREATE TABLE firehose_buffer_by_rowid (
    stream_id INTEGER NOT NULL, seq INTEGER NOT NULL, arrival_ms INTEGER NOT NULL, data BLOB NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0
);
INSERT INTO firehose_buffer_by_rowid (stream_id, seq, arrival_ms, data, sealed)
    SELECT stream_id, seq, arrival_ms, data, sealed FROM firehose_buffer ORDER BY stream_id, seq;
DROP TABLE firehose_buffer;
ALTER TABLE firehose_buffer_by_rowid RENAME TO firehose_buffer;
CREATE UNIQUE INDEX firehose_buffer_by_stream ON firehose_buffer (stream_id, seq);
"#,
    r#"
-- MD5OfBody as computed at send: ReceiveMessage hashed every body again (a tenth of its
-- CPU). Rows from before stay NULL and are hashed when received.
ALTER TABLE message_bodies ADD COLUMN body_md5 TEXT;
"#,
    r#"
-- Kinesis record bytes move to append-only segment files (record_log.rs): one row per
-- shard and append says where they are. Rows left in `records` by earlier versions are
-- moved into the log at the next start (`move_legacy_records`).
CREATE TABLE record_chunks (
    shard_uid INTEGER NOT NULL, first_seq_ix INTEGER NOT NULL, count INTEGER NOT NULL,
    arrival_ms INTEGER NOT NULL, sealed INTEGER NOT NULL,
    segment INTEGER NOT NULL, position INTEGER NOT NULL, length INTEGER NOT NULL
);
CREATE UNIQUE INDEX record_chunks_by_shard ON record_chunks (shard_uid, first_seq_ix);
CREATE INDEX record_chunks_by_segment ON record_chunks (segment);
"#,
    r#"
-- Firehose buffers move to the record log too: one row per delivery stream and append.
-- `bytes` is the records' own size (without sealing), for the buffer's size. A delivery
-- that ends inside a chunk moves the row's `first_seq` past the delivered records; the
-- chunk's bytes stay as written, and readers skip what lies before `first_seq`. Rows of
-- `firehose_buffer` written before are moved into the log at the next start.
CREATE TABLE firehose_chunks (
    stream_id INTEGER NOT NULL, first_seq INTEGER NOT NULL, count INTEGER NOT NULL, bytes INTEGER NOT NULL,
    arrival_ms INTEGER NOT NULL, sealed INTEGER NOT NULL,
    segment INTEGER NOT NULL, position INTEGER NOT NULL, length INTEGER NOT NULL
);
CREATE UNIQUE INDEX firehose_chunks_by_stream ON firehose_chunks (stream_id, first_seq);
CREATE INDEX firehose_chunks_by_segment ON firehose_chunks (segment);
"#,
    r#"
-- Where every committed chunk is, whoever owns it: what the record log itself asks
-- (segment ends at start, which segments are still named, how much of each is live).
CREATE VIEW log_chunks AS
    SELECT segment, position, length FROM record_chunks
    UNION ALL SELECT segment, position, length FROM firehose_chunks;
"#,
];

/// A sent message as the writer appends it to the message log.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub seq: i64,
    pub state: MessageState,
    pub content: MessageContent,
    /// The body is that of the last message before it in the same write that holds its
    /// own (`content.body` is left empty): a publish's deliveries store one body.
    pub shares_body: bool,
    /// The queue keeps its messages sealed: `content`'s body and MD5 come plain, and the
    /// writer seals them into the log as it encodes them.
    pub seal: bool,
    /// `content.body_md5` is the writer's ([`crate::group_digest`]), for the sender's
    /// answer.
    pub md5_computed: bool,
}

#[derive(Debug, Clone)]
pub struct MoveTaskRow {
    pub handle: String,
    pub source_queue_id: i64,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_per_second: Option<i64>,
    pub status: String,
    pub moved: i64,
    pub to_move: i64,
    pub started_ms: i64,
    pub failure_reason: Option<String>,
    pub max_seq: i64,
}

/// A write the writer thread applies inside a group-commit transaction.
#[derive(Debug, Clone)]
pub enum SqlOp {
    InsertQueue {
        id: i64,
        account: String,
        region: String,
        name: String,
        attributes: String,
        tags: String,
        now: i64,
    },
    UpdateQueue {
        id: i64,
        attributes: String,
        tags: String,
        modified_ms: i64,
    },
    SetLastPurge {
        id: i64,
        at: i64,
    },
    /// Deletes the queue's row and purges its messages from the message log.
    DeleteQueue {
        id: i64,
        freed: u64,
    },
    InsertMessage(Box<MessageRow>),
    /// `freed`: the message log bytes of the message's insert (for `--max-data-mib`).
    DeleteMessage {
        seq: i64,
        freed: u64,
    },
    UpdateVisibility {
        seq: i64,
        visible_at_ms: i64,
        receive_count: i64,
        first_receive_ms: i64,
        receipt_token: i64,
    },
    MoveMessage {
        seq: i64,
        to_queue: i64,
        dlq_source_queue_id: Option<i64>,
        visible_at_ms: i64,
        reset_receives: bool,
    },
    PurgeMessages {
        queue_id: i64,
        max_seq: i64,
        freed: u64,
    },
    InsertDedup(Box<DedupRecord>),
    /// Compaction of the message log's oldest segment (see `message_log`).
    CompactMessages(Arc<CompactionRequest>),
    PruneDedup {
        now: i64,
    },
    SetMeta {
        key: &'static str,
        value: String,
    },
    /// Raises `meta.last_seq`; batches may commit sends out of order, so never lower it.
    RaiseLastSeq {
        seq: i64,
    },
    UpsertMoveTask(Box<MoveTaskRow>),
    UpsertTopic {
        arn: String,
        record: String,
    },
    DeleteTopic {
        arn: String,
    },
    UpsertSubscription {
        arn: String,
        topic_arn: String,
        record: String,
    },
    DeleteSubscription {
        arn: String,
    },
    UpsertOutbox {
        id: i64,
        subscription_arn: String,
        /// Sealed when the topic requests server-side encryption.
        record: crate::at_rest::StoredText,
        next_attempt_ms: i64,
    },
    DeleteOutbox {
        id: i64,
    },
    UpsertStream {
        id: i64,
        record: String,
    },
    DeleteStream {
        id: i64,
        shard_uids: Vec<i64>,
    },
    /// Records of one shard or delivery stream, appended to the record log before the
    /// transaction that inserts the chunk's row commits.
    AppendChunk(Box<RecordChunk>),
    /// A chunk copied to the head of the log by compaction; its row follows the copy.
    RelocateChunk(Box<Relocation>),
    /// After a shard's records of one append: the next index it will assign, and the
    /// first index of the arrival second (kept only if the second has none yet).
    ShardAppended {
        shard_uid: i64,
        next_seq_ix: i64,
        second: i64,
        first_seq_ix: i64,
    },
    /// Deletes a shard's records below `below_seq_ix` (retention).
    TrimRecords {
        shard_uid: i64,
        below_seq_ix: i64,
    },
    UpsertDeliveryStream {
        id: i64,
        record: String,
    },
    DeleteDeliveryStream {
        id: i64,
    },
    /// Removes a delivery stream's buffered records up to `max_seq` (delivered);
    /// `released` holds the removed records' (index, size), which a chunk that keeps
    /// undelivered records subtracts from its size.
    RemoveBuffered {
        stream_id: i64,
        max_seq: i64,
        released: Vec<(i64, u64)>,
    },
    UpsertResource {
        kind: String,
        key: String,
        record: String,
    },
    DeleteResource {
        kind: String,
        key: String,
    },
    InsertTopicDedup {
        topic_arn: String,
        scope: String,
        dedup_id: String,
        expires_ms: i64,
        message_id: String,
        seq: i64,
    },
}

pub type CommitHook = Box<dyn FnOnce() + Send>;

/// What a write does on the writer thread once it commits, before its caller is told.
pub enum OnCommit {
    Hook(CommitHook),
    /// One new message to make receivable in its queue (a SendMessage's), carried in the
    /// write itself: as a boxed hook it was an allocation made on an HTTP thread and freed
    /// by the writer, the last of a send's to cross threads.
    Show(Arc<dyn ShowSent>, MsgMeta),
}

impl OnCommit {
    fn run(self) {
        match self {
            OnCommit::Hook(hook) => hook(),
            OnCommit::Show(queue, meta) => queue.show(meta),
        }
    }
}

/// A queue, as the writer sees it: where a committed message becomes receivable.
pub trait ShowSent: Send + Sync {
    fn show(self: Arc<Self>, meta: MsgMeta);
}

/// What a write's caller is told: whether it committed, and the write's ops, handed back
/// so that they are freed on the caller's thread. Freed on the writer, a message's body
/// went back to the heap arena of the thread that allocated it, under that arena's lock:
/// a quarter of the writer's time in sns-fanout went to `free`.
pub type Acknowledged = (Result<(), StoreError>, Vec<SqlOp>);

/// A compaction of the message log's oldest segment, drafted beside the writer and
/// completed by it in steps, with other groups between them (`draft` holds what is
/// left); what it did is in `outcome` when the item's hook runs, after the last step.
#[derive(Debug)]
pub struct CompactionRequest {
    pub now_ms: u64,
    pub draft: Mutex<Option<CompactionDraft>>,
    pub outcome: Mutex<Option<Compacted>>,
}

/// The segment a compaction removed (or, if it failed part way, kept) and where each
/// message it copied is now.
#[derive(Debug, Default)]
pub struct Compacted {
    pub segment: u32,
    /// (sequence number, queue id, new place of its insert)
    pub moved: Vec<(i64, i64, Location)>,
}

thread_local! {
    /// Where the writer thread's current group put each message it inserted, for the
    /// send hooks that run on this thread right after the commit.
    static LOGGED: std::cell::RefCell<SeqMap<Location>> = Default::default();
}

/// Where the group commit now finishing put message `seq`'s insert; only answers on the
/// writer thread, inside a commit hook.
pub(crate) fn logged_location(seq: i64) -> Option<Location> {
    LOGGED.with(|l| l.borrow().get(&seq).copied())
}

thread_local! {
    /// The queues whose long polls wait for messages the group now finishing made
    /// receivable, each once: see [`wake_one_poll_after_group`].
    static POLLS_TO_WAKE: std::cell::RefCell<Vec<Arc<Notify>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Wakes one of `polls` once the group commit now finishing has run all its hooks, however
/// many of its writes made messages receivable there; only on the writer thread, inside a
/// commit hook. The woken poll takes up to its ten and, if it leaves some visible, wakes
/// the next (`receive_messages`). A wake-up per message, from the writer, was a `write`
/// to the poll's runtime's eventfd each (tokio wakes a task from outside its runtime that
/// way): sqs-cycle at 64 connections made 1.2 such writes a message, and as many polls
/// woke to take a message or two each, each answered and deleted by a request of its own.
pub(crate) fn wake_one_poll_after_group(polls: &Arc<Notify>) {
    POLLS_TO_WAKE.with(|p| {
        let mut p = p.borrow_mut();
        if !p.iter().any(|q| Arc::ptr_eq(q, polls)) {
            p.push(polls.clone());
        }
    });
}

pub struct WriteItem {
    pub ops: Vec<SqlOp>,
    /// Runs on the writer thread after the commit, before the caller is told:
    /// this is where new messages become visible in the in-memory indexes.
    pub on_commit: Option<OnCommit>,
    /// Runs on the writer thread when the commit fails: undoes in-memory changes made
    /// ahead of the commit (such as FIFO deduplication entries).
    pub on_failure: Option<CommitHook>,
    pub done: Option<oneshot::Sender<Acknowledged>>,
    /// Where `done` is answered: the submitting thread's route, set by `submit`.
    pub(crate) route: Option<Arc<dyn AckRoute>>,
}

impl WriteItem {
    /// The message log compaction this write asks for, if it is one.
    fn compaction(&self) -> Option<Arc<CompactionRequest>> {
        self.ops.iter().find_map(|op| match op {
            SqlOp::CompactMessages(request) => Some(request.clone()),
            _ => None,
        })
    }
}

pub fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub struct Database {
    path: PathBuf,
    writer: Arc<WriteQueue<WriteItem>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// Kinesis records and Firehose buffers; `record_chunks` and `firehose_chunks` say
    /// which of its bytes are committed.
    pub(crate) record_log: Arc<RecordLog>,
    /// SQS messages: the one durable record of every message and change to one.
    pub(crate) message_log: Arc<MessageLog>,
    /// Group commits still to fail on purpose (fault-injection tests).
    injected_failures: Arc<Countdown>,
}

fn configure(conn: &Connection, durable: bool) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Databases up to this size are checked at every start; larger ones only after an
/// unclean shutdown, because `PRAGMA quick_check` reads the whole file (about a second
/// per GiB here) and a clean shutdown leaves a file SQLite itself wrote and synced.
const ALWAYS_CHECK_BYTES: u64 = 64 * 1024 * 1024;

/// Written after a clean shutdown and removed at open: an existing database without it
/// was left by a crash.
fn clean_shutdown_marker(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".clean-shutdown");
    path.with_file_name(name)
}

/// SQLite's "not a database" and "corrupt" errors become [`StoreError::Corrupt`].
fn corrupt_or_internal(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => internal(e),
    }
}

/// Runs `PRAGMA quick_check`; anything but "ok" is corruption.
fn check_integrity(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA quick_check(5)").map_err(corrupt_or_internal)?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(corrupt_or_internal)?
        .collect::<Result<_, _>>()
        .map_err(corrupt_or_internal)?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt(problems.join("; ")))
    }
}

/// Read connections. NO_MUTEX: a `Connection` is used by one thread at a time (it is not
/// `Sync`), so SQLite's per-connection mutex, taken on every column read otherwise, only
/// costs time (a sixth of loading a million messages at start-up).
const READER_FLAGS: OpenFlags = OpenFlags::SQLITE_OPEN_READ_ONLY.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

impl Database {
    /// Opens (creating and migrating if needed) the database at `path`, refusing one
    /// that fails SQLite's integrity checks.
    pub fn open(
        path: &Path,
        durable: bool,
        max_bytes: Option<u64>,
        segment_bytes: u64,
        sealer: Sealer,
    ) -> Result<(Database, Connection, Replayed), StoreError> {
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        let marker = clean_shutdown_marker(path);
        let was_clean = marker.exists();
        if was_clean {
            std::fs::remove_file(&marker).map_err(internal)?;
        }
        let conn = Connection::open(path).map_err(corrupt_or_internal)?;
        configure(&conn, durable).map_err(corrupt_or_internal)?;
        if size.is_some_and(|s| s > 0 && (!was_clean || s <= ALWAYS_CHECK_BYTES)) {
            check_integrity(&conn)?;
        }
        migrate(&conn)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let record_log = Arc::new(RecordLog::open(dir, &conn, durable, segment_bytes)?);
        move_legacy_records(&conn, &record_log)?;
        let (message_log, replayed) = open_message_log(dir, &conn, durable, segment_bytes)?;
        let message_log = Arc::new(message_log);
        if let Some(max) = max_bytes {
            // SQLite refuses to grow the file past this many pages with SQLITE_FULL, the
            // same error a full disk gives: writes fail, reads and deletes keep working.
            let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(internal)?;
            conn.pragma_update(None, "max_page_count", (max / page_size).max(1)).map_err(internal)?;
        }
        let load_conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(internal)?;
        configure(&load_conn, durable).map_err(internal)?;
        let queue = Arc::new(WriteQueue::default());
        let writes = queue.clone();
        let injected_failures = Arc::new(Countdown::default());
        let failures = injected_failures.clone();
        let logs = WriterLogs {
            record: record_log.clone(),
            messages: message_log.clone(),
            max_bytes,
            database: path.to_owned(),
            group_bytes: Default::default(),
            sealer,
        };
        let checkpoint_conn = Connection::open(path).map_err(internal)?;
        configure(&checkpoint_conn, durable).map_err(internal)?;
        let (commits_tx, commits_rx) = mpsc::sync_channel::<()>(1);
        let checkpointer = std::thread::Builder::new()
            .name("sluice-checkpoint".into())
            .spawn(move || checkpointer_loop(checkpoint_conn, commits_rx))
            .map_err(internal)?;
        let thread = std::thread::Builder::new()
            .name("sluice-writer".into())
            .spawn(move || {
                // Closed however the writer ends, so that no write waits on it in vain.
                let _abandoning = AbandonOnDrop(&writes);
                writer_loop(conn, logs, &writes, failures, commits_tx);
                // The writer dropped its side of the channel: the checkpointer ends too.
                let _ = checkpointer.join();
            })
            .map_err(internal)?;
        Ok((
            Database {
                path: path.to_owned(),
                writer: queue,
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                record_log,
                message_log,
                injected_failures,
            },
            load_conn,
            replayed,
        ))
    }

    pub fn submit(&self, mut item: WriteItem) -> Result<(), StoreError> {
        if item.done.is_some() {
            item.route = crate::ack_route::this_threads_route();
        }
        self.writer.push(item).map_err(|_| StoreError::Internal("store is shut down".into()))
    }

    /// Submits `ops` and blocks until they are committed: for `open`, which may run on an
    /// async worker, where a oneshot's blocking wait panics, so a plain channel that the
    /// write's hooks signal.
    pub fn commit_blocking(&self, ops: Vec<SqlOp>) -> Result<(), StoreError> {
        let (committed, answer) = std::sync::mpsc::sync_channel::<bool>(1);
        let failed = committed.clone();
        self.submit(WriteItem {
            ops,
            on_commit: Some(OnCommit::Hook(Box::new(move || {
                let _ = committed.send(true);
            }))),
            on_failure: Some(Box::new(move || {
                let _ = failed.send(false);
            })),
            done: None,
            route: None,
        })?;
        match answer.recv() {
            Ok(true) => Ok(()),
            _ => Err(internal("the write was not committed")),
        }
    }

    /// Runs `f` on a read connection (committed data only).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.readers.lock().map_err(internal)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(&self.path, READER_FLAGS).map_err(internal)?;
                c.busy_timeout(std::time::Duration::from_secs(10)).map_err(internal)?;
                c
            }
        };
        let result = f(&conn).map_err(internal);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
        result
    }

    /// Makes the next `n` group commits fail as an I/O error would (fault-injection tests).
    pub fn inject_commit_failures(&self, n: usize) {
        self.injected_failures.arm(n);
    }

    /// Stops the writer after it has committed everything already submitted, and marks
    /// the shutdown clean.
    pub fn shutdown(&self) {
        self.writer.close();
        if let Some(handle) = self.writer_thread.lock().ok().and_then(|mut t| t.take()) {
            if handle.join().is_ok() {
                if let Err(e) = std::fs::write(clean_shutdown_marker(&self.path), b"") {
                    tracing::warn!(error = %e, "could not mark the shutdown clean; the next start checks the database");
                }
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_meta: bool = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'", [], |r| r.get::<_, i64>(0))
        .map_err(internal)?
        > 0;
    let mut version: usize = if has_meta {
        conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(internal)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    if version > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "data directory has schema version {version}, newer than this binary's {}",
            MIGRATIONS.len()
        )));
    }
    while version < MIGRATIONS.len() {
        let tx = conn.unchecked_transaction().map_err(internal)?;
        tx.execute_batch(MIGRATIONS[version]).map_err(internal)?;
        version += 1;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![version.to_string()],
        )
        .map_err(internal)?;
        tx.commit().map_err(internal)?;
    }
    Ok(())
}

/// Most writes one group commit takes; bounds the latency of the first in line.
const MAX_GROUP: usize = 4096;

/// How far past a group's highest sequence number `meta.last_seq` is raised when the group
/// passes it. Raising it to each group's highest wrote a `meta` page to the WAL with every
/// send; now one group in many does. A restart continues after the stored mark, so
/// sequence numbers skip up to this many there, and still never repeat (the conformance
/// suite deletes the highest message before restarting). AWS's sequence numbers are not
/// consecutive either.
const SEQ_RESERVATION: i64 = 10_000;

/// How long the checkpointer lets commits gather before copying them into the database.
const CHECKPOINT_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Copies committed WAL frames into the database file beside the writer. SQLite's own
/// checkpoint runs inside the commit that crosses 1,000 WAL pages, so every few hundred
/// milliseconds one group commit waited for a whole checkpoint and its fsync: the p99 of
/// a SendMessage at half the peak rate was 6 ms. Here a PASSIVE checkpoint, which never
/// blocks the writer, follows each burst of commits; the writer's own automatic
/// checkpoint still runs past 1,000 pages, but finds only the last few frames left to
/// copy, and completing it lets the next transaction restart the WAL from its start.
fn checkpointer_loop(conn: Connection, commits: mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_GATHER);
        while commits.try_recv().is_ok() {}
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed; the writer's own checkpoint remains");
        }
    }
}

/// What the writer appends to besides SQLite, and the size limit they share.
struct WriterLogs {
    record: Arc<RecordLog>,
    messages: Arc<MessageLog>,
    /// `--max-data-mib`: the database file, the record log and the message log's live
    /// bytes together (a deleted message's bytes are compaction's to take back).
    max_bytes: Option<u64>,
    database: PathBuf,
    /// The message log group's bytes, kept between groups: a fresh buffer of a group's
    /// size (often past glibc's 64 KiB consolidation threshold) made every group pay a
    /// `malloc_consolidate` and page faults when it was freed and grown again.
    group_bytes: std::cell::RefCell<Vec<u8>>,
    /// Seals the new messages of queues with server-side encryption as they are encoded.
    sealer: Sealer,
}

/// A group buffer grown past this is let go after its group, so that one huge group
/// does not pin its memory.
const KEPT_GROUP_BYTES: usize = 8 << 20;

impl WriterLogs {
    /// Refuses `adding` more log bytes past the size limit, as SQLite's SQLITE_FULL
    /// refuses pages: the write fails, reads and deletes go on.
    fn check_room(&self, adding: u64) -> Result<(), BatchFailure> {
        let Some(max) = self.max_bytes.filter(|_| adding > 0) else { return Ok(()) };
        let database = std::fs::metadata(&self.database).map(|m| m.len()).unwrap_or(0);
        if database + self.record.bytes() + self.messages.live_bytes() + adding > max {
            return Err(BatchFailure::Log(internal("the data directory reached its size limit (--max-data-mib)")));
        }
        Ok(())
    }
}

/// Abandons the write queue when the writer thread ends, by return or by panic: what
/// is still waiting is dropped, and each caller's answer channel says the writer stopped.
struct AbandonOnDrop<'a>(&'a WriteQueue<WriteItem>);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

fn writer_loop(
    mut conn: Connection,
    logs: WriterLogs,
    queue: &WriteQueue<WriteItem>,
    injected_failures: Arc<Countdown>,
    commits: mpsc::SyncSender<()>,
) {
    let mut reserved_seq = stored_last_seq(&conn);
    // A compaction with steps left; its write is answered after the last. Another
    // compaction's write meanwhile commits as a plain write, with nothing done.
    let mut compacting: Option<(WriteItem, Arc<CompactionRequest>)> = None;
    // Everything taken from the queue, and the group committed from it (at most
    // MAX_GROUP writes): vectors kept from group to group.
    let mut taken: Vec<WriteItem> = Vec::new();
    let mut batch: Vec<WriteItem> = Vec::new();
    loop {
        if taken.is_empty() {
            if compacting.is_none() {
                if !queue.take_all(&mut taken) {
                    break;
                }
            } else {
                queue.take_waiting(&mut taken);
            }
        }
        if taken.len() <= MAX_GROUP {
            std::mem::swap(&mut batch, &mut taken);
        } else {
            batch.extend(taken.drain(..MAX_GROUP));
        }
        if compacting.is_none() {
            if let Some((i, request)) = batch.iter().enumerate().find_map(|(i, item)| Some((i, item.compaction()?))) {
                compacting = Some((batch.remove(i), request));
            }
        }
        // One step before the group's own entries: the step has seen everything written,
        // and the group's changes land after its copies, superseding them.
        if let Some((item, request)) = compacting.take() {
            if compaction_step(&logs.messages, &request) {
                compacting = Some((item, request));
            } else {
                finish(std::iter::once(item), Ok(false), &commits);
            }
        }
        if batch.is_empty() {
            continue;
        }
        group_digest::digest_bodies(&mut batch);
        let inject = injected_failures.fire();
        commit_batch(&mut conn, &logs, &mut batch, inject, &commits, &mut reserved_seq);
    }
}

/// `meta.last_seq`, the mark no committed sequence number passes (0 in a new database).
pub(crate) fn stored_last_seq(conn: &Connection) -> i64 {
    conn.query_row("SELECT value FROM meta WHERE key='last_seq'", [], |r| r.get::<_, String>(0))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Takes one step of a compaction of the oldest segment: copies the next of its live
/// messages to the head, and removes the segment after the last; whether steps are left.
/// What the steps moved gathers in the request's outcome for its write's hook.
fn compaction_step(log: &MessageLog, request: &CompactionRequest) -> bool {
    let mut outcome = request.outcome.lock().unwrap_or_else(|p| p.into_inner());
    let step = (|| {
        let Some(draft) = request.draft.lock().unwrap_or_else(|p| p.into_inner()).take() else { return Ok(false) };
        let Some(mut plan) = log.plan_compaction(draft, request.now_ms, log.compaction_step_bytes())? else {
            return Ok(false);
        };
        let done = outcome.get_or_insert_with(|| Compacted { segment: plan.segment, moved: Vec::new() });
        if !plan.entries.is_empty() {
            let (head, offset) = log.append(&mut plan.entries)?;
            for &(seq, queue_id, start, length) in &plan.copied {
                let at = Location { segment: head, offset: (offset + start as u64) as u32, length: length as u32 };
                done.moved.push((seq, queue_id, at));
            }
        }
        match plan.rest {
            Some(rest) => {
                *request.draft.lock().unwrap_or_else(|p| p.into_inner()) = Some(rest);
                Ok(true)
            }
            None => {
                log.remove_segment(plan.segment)?;
                Ok::<_, StoreError>(false)
            }
        }
    })();
    step.unwrap_or_else(|e| {
        // The copies written so far are valid entries, and their messages are repointed
        // to them; the segment stays for a later compaction.
        tracing::warn!(error = %e, "message log compaction failed");
        false
    })
}

/// Commits one group and answers its writes.
fn commit_batch(
    conn: &mut Connection,
    logs: &WriterLogs,
    batch: &mut Vec<WriteItem>,
    inject: bool,
    commits: &mpsc::SyncSender<()>,
    reserved_seq: &mut i64,
) {
    match apply_batch(conn, logs, batch, inject, reserved_seq) {
        Err(BatchFailure::Log(e)) => {
            // The log could not take the records (a full disk, an I/O error): only the
            // writes that carry records fail, the others commit without them, so a Kinesis
            // put or a compaction step on a full disk never fails an SQS send that shares
            // its group commit.
            let (with_records, rest): (Vec<_>, Vec<_>) =
                batch.drain(..).partition(|i| i.ops.iter().any(SqlOp::writes_log));
            finish(with_records.into_iter(), Err(e), commits);
            let result = apply_batch(conn, logs, &rest, false, reserved_seq).map_err(BatchFailure::into_store_error);
            finish(rest.into_iter(), result, commits);
        }
        result => finish(batch.drain(..), result.map_err(BatchFailure::into_store_error), commits),
    }
}

/// Runs each write's hook and answers its caller. `Ok(true)` when SQLite committed.
fn finish(
    batch: impl ExactSizeIterator<Item = WriteItem>,
    result: Result<bool, StoreError>,
    commits: &mpsc::SyncSender<()>,
) {
    match &result {
        Ok(true) => {
            // Full means a checkpoint is already due.
            let _ = commits.try_send(());
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "group commit failed; {} writes rejected", batch.len()),
    }
    let result = result.map(|_| ());
    let mut routed = Routed::default();
    for item in batch {
        match (result.is_ok(), item.on_commit, item.on_failure) {
            (true, Some(on_commit), _) => on_commit.run(),
            (false, _, Some(undo)) => undo(),
            _ => {}
        }
        if let Some(done) = item.done {
            let ack = Ack { done, answer: (result.clone(), item.ops) };
            match item.route {
                Some(route) => routed.hold(route, ack),
                None => ack.send(),
            }
        }
    }
    POLLS_TO_WAKE.with(|p| p.borrow_mut().drain(..).for_each(|polls| polls.notify_one()));
    routed.deliver();
    LOGGED.with(|l| l.borrow_mut().clear());
}

/// Why a group commit failed: the record log refused the batch's records, or the rest.
enum BatchFailure {
    Log(StoreError),
    Other(StoreError),
}

impl BatchFailure {
    fn into_store_error(self) -> StoreError {
        match self {
            BatchFailure::Log(e) | BatchFailure::Other(e) => e,
        }
    }
}

impl From<StoreError> for BatchFailure {
    fn from(e: StoreError) -> Self {
        BatchFailure::Other(e)
    }
}

impl SqlOp {
    /// Whether the op adds bytes to a log (and so fails alone when a log is full).
    fn writes_log(&self) -> bool {
        matches!(self, SqlOp::AppendChunk(_) | SqlOp::RelocateChunk(_) | SqlOp::InsertMessage(_))
    }

    /// The op as a message log entry, and the live bytes it frees.
    fn message_change(&self) -> Option<(Change<'_>, u64)> {
        Some(match self {
            SqlOp::InsertMessage(m) => {
                (Change::Insert { seq: m.seq, state: &m.state, content: &m.content, body_in: None }, 0)
            }
            SqlOp::DeleteMessage { seq, freed } => (Change::Delete { seq: *seq }, *freed),
            SqlOp::UpdateVisibility { seq, visible_at_ms, receive_count, first_receive_ms, receipt_token } => (
                Change::State {
                    seq: *seq,
                    visible_at_ms: *visible_at_ms as u64,
                    receive_count: *receive_count as u32,
                    first_receive_ms: *first_receive_ms as u64,
                    receipt_token: *receipt_token as u64,
                },
                0,
            ),
            SqlOp::MoveMessage { seq, to_queue, dlq_source_queue_id, visible_at_ms, reset_receives } => (
                Change::Move {
                    seq: *seq,
                    to_queue: *to_queue,
                    dlq_source: *dlq_source_queue_id,
                    visible_at_ms: *visible_at_ms as u64,
                    reset_receives: *reset_receives,
                },
                0,
            ),
            SqlOp::PurgeMessages { queue_id, max_seq, freed } => {
                (Change::Purge { queue_id: *queue_id, max_seq: *max_seq }, *freed)
            }
            // Every message the queue will ever have: its id is not handed out again while
            // this entry is in the log (replay counts it among the ids seen).
            SqlOp::DeleteQueue { id, freed } => (Change::Purge { queue_id: *id, max_seq: i64::MAX }, *freed),
            SqlOp::InsertDedup(d) => (Change::Dedup(d), 0),
            _ => return None,
        })
    }

    /// Whether the op is written only to the message log, not to SQLite: every message
    /// change but a queue's deletion (whose row goes too), and compaction (the writer
    /// runs it before the group).
    fn message_log_only(&self) -> bool {
        match self {
            SqlOp::DeleteQueue { .. } => false,
            SqlOp::CompactMessages(_) => true,
            op => op.message_change().is_some(),
        }
    }
}

/// Appends the batch's records to the log (synced), then commits every op in one
/// transaction. `inject` fails the batch between the two, as a crash there would.
fn apply_batch(
    conn: &mut Connection,
    logs: &WriterLogs,
    batch: &[WriteItem],
    inject: bool,
    reserved_seq: &mut i64,
) -> Result<bool, BatchFailure> {
    let record_log = logs.record.clone();
    let log = &*record_log;
    let mut log_bytes = Vec::new();
    let mut places = Vec::new();
    for op in batch.iter().flat_map(|i| &i.ops) {
        let start = log_bytes.len();
        match op {
            SqlOp::AppendChunk(chunk) => encode_chunk(chunk, &mut log_bytes),
            SqlOp::RelocateChunk(relocation) => log_bytes.extend_from_slice(&relocation.bytes),
            _ => continue,
        }
        places.push((start as u64, (log_bytes.len() - start) as u64));
    }
    logs.check_room(log_bytes.len() as u64)?;
    let pending = if log_bytes.is_empty() { None } else { Some(log.append(&log_bytes).map_err(BatchFailure::Log)?) };
    if inject {
        return Err(StoreError::Internal("injected I/O error".into()).into());
    }
    // Every send asks to raise `last_seq`; the group's highest decides (SEQ_RESERVATION).
    let last_seq = batch
        .iter()
        .flat_map(|i| &i.ops)
        .filter_map(|op| match op {
            SqlOp::RaiseLastSeq { seq } => Some(*seq),
            _ => None,
        })
        .max();
    let raises_seq = last_seq.is_some_and(|seq| seq > *reserved_seq);
    let needs_sql = raises_seq
        || batch
            .iter()
            .flat_map(|i| &i.ops)
            .any(|op| !op.message_log_only() && !matches!(op, SqlOp::RaiseLastSeq { .. }));
    if !needs_sql {
        // Only messages: the message log's sync makes the group durable.
        append_messages(logs, batch)?;
        return Ok(false);
    }
    let tx = conn.transaction().map_err(internal)?;
    let mut places = places.into_iter();
    let mut frees_segments = false;
    for op in batch.iter().flat_map(|i| &i.ops) {
        match op {
            SqlOp::RaiseLastSeq { .. } => {}
            op if op.message_log_only() => {}
            SqlOp::AppendChunk(_) | SqlOp::RelocateChunk(_) => {
                let (Some(append), Some((start, length))) = (pending, places.next()) else {
                    return Err(StoreError::Internal("record chunk without a log position".into()).into());
                };
                let place = ChunkPlace { segment: append.segment, offset: append.offset + start, length };
                match op {
                    SqlOp::AppendChunk(chunk) => insert_chunk_row(&tx, &ChunkRow::of(chunk, place)),
                    SqlOp::RelocateChunk(relocation) => {
                        frees_segments = true;
                        move_chunk_row(&tx, relocation, place)
                    }
                    _ => unreachable!("matched above"),
                }
                .map_err(internal)?;
            }
            op => {
                frees_segments |= matches!(
                    op,
                    SqlOp::TrimRecords { .. }
                        | SqlOp::DeleteStream { .. }
                        | SqlOp::RemoveBuffered { .. }
                        | SqlOp::DeleteDeliveryStream { .. }
                );
                apply(&tx, op).map_err(internal)?
            }
        }
    }
    let mut raised_to = None;
    if let Some(seq) = last_seq.filter(|seq| *seq > *reserved_seq) {
        let to = seq + SEQ_RESERVATION;
        apply(&tx, &SqlOp::RaiseLastSeq { seq: to }).map_err(internal)?;
        raised_to = Some(to);
    }
    // The statements ran (a full database fails there); the message log's changes go in
    // before the commit, so that a failure before it leaves neither, and after it
    // (a commit that fails to write) only the log's, which replay applies.
    append_messages(logs, batch)?;
    tx.commit().map_err(internal)?;
    if let Some(to) = raised_to {
        *reserved_seq = to;
    }
    if let Some(append) = pending {
        log.committed(append);
    }
    if frees_segments {
        // The commit stands either way; a segment left behind goes at the next start.
        if let Err(e) = log.remove_unreferenced(conn) {
            tracing::warn!(error = %e, "could not remove record log segments no longer needed");
        }
    }
    Ok(true)
}

/// Appends the group's message changes to the message log with one write and one sync,
/// and notes where each insert went for the send hooks.
fn append_messages(logs: &WriterLogs, batch: &[WriteItem]) -> Result<(), BatchFailure> {
    let mut kept = logs.group_bytes.borrow_mut();
    let appended = append_messages_through(logs, batch, &mut kept);
    kept.clear();
    if kept.capacity() > KEPT_GROUP_BYTES {
        *kept = Vec::new();
    }
    appended
}

fn append_messages_through(logs: &WriterLogs, batch: &[WriteItem], bytes: &mut Vec<u8>) -> Result<(), BatchFailure> {
    let mut inserts: Vec<(i64, usize, usize)> = Vec::with_capacity(batch.len());
    let (mut added, mut freed) = (0u64, 0u64);
    for item in batch {
        // This write's last insert holding its own body, for the ones sharing it.
        let mut holder = None;
        for op in &item.ops {
            let Some((mut change, frees)) = op.message_change() else { continue };
            let mut seal = None;
            if let (SqlOp::InsertMessage(row), Change::Insert { body_in, .. }) = (op, &mut change) {
                if row.shares_body {
                    let missing = || internal("a message shares the body of none before it");
                    *body_in = Some(holder.ok_or_else(missing)?);
                }
                // Sealed into the group's buffer as it is written.
                seal = row.seal.then_some(&logs.sealer);
            }
            let (start, length) = encode_sealing(&change, seal, bytes);
            if let Change::Insert { seq, body_in, .. } = change {
                if body_in.is_none() {
                    holder = Some((start, length));
                }
                inserts.push((seq, start, length));
                added += length as u64;
            }
            freed += frees;
        }
    }
    if bytes.is_empty() {
        return Ok(());
    }
    // New messages count against the limit; deletes and receives go on.
    logs.check_room(added)?;
    let (segment, offset) = logs.messages.append(bytes).map_err(BatchFailure::Log)?;
    logs.messages.account(added, freed);
    LOGGED.with(|logged| {
        let mut logged = logged.borrow_mut();
        for (seq, start, length) in inserts {
            logged.insert(seq, Location { segment, offset: (offset + start as u64) as u32, length: length as u32 });
        }
    });
    Ok(())
}

/// A chunk's row (`record_chunks` or `firehose_chunks`): what it holds and where it is.
pub(crate) struct ChunkRow {
    kind: ChunkKind,
    owner: i64,
    first_index: u64,
    count: usize,
    /// The records' own size, without what sealing adds.
    bytes: u64,
    arrival_ms: u64,
    sealed: bool,
    place: ChunkPlace,
}

impl ChunkRow {
    pub(crate) fn of(chunk: &RecordChunk, place: ChunkPlace) -> ChunkRow {
        let overhead = if chunk.sealed { crate::at_rest::SEALED_OVERHEAD } else { 0 };
        ChunkRow {
            kind: chunk.kind,
            owner: chunk.owner,
            first_index: chunk.first_index,
            count: chunk.records.len(),
            bytes: chunk.records.iter().map(|(_, d)| d.len().saturating_sub(overhead) as u64).sum(),
            arrival_ms: chunk.arrival_ms,
            sealed: chunk.sealed,
            place,
        }
    }
}

pub(crate) fn insert_chunk_row(conn: &Connection, row: &ChunkRow) -> rusqlite::Result<()> {
    let sql = match row.kind {
        ChunkKind::KinesisShard => {
            "INSERT INTO record_chunks (shard_uid, first_seq_ix, count, arrival_ms, sealed, segment, position, length) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        }
        ChunkKind::FirehoseBuffer => {
            "INSERT INTO firehose_chunks (stream_id, first_seq, count, arrival_ms, sealed, segment, position, length, bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let values = params![
        row.owner,
        row.first_index as i64,
        row.count as i64,
        row.arrival_ms as i64,
        row.sealed,
        row.place.segment,
        row.place.offset as i64,
        row.place.length as i64,
        row.bytes as i64
    ];
    match row.kind {
        ChunkKind::KinesisShard => stmt.execute(&values[..8])?,
        ChunkKind::FirehoseBuffer => stmt.execute(values)?,
    };
    Ok(())
}

/// Points the row of a relocated chunk at its copy. A row deleted meanwhile (retention,
/// delivery) leaves the copy unreferenced, for a later compaction to drop.
fn move_chunk_row(conn: &Connection, relocation: &Relocation, to: ChunkPlace) -> rusqlite::Result<()> {
    let sql = match relocation.kind {
        ChunkKind::KinesisShard => "UPDATE record_chunks SET segment=?3, position=?4 WHERE segment=?1 AND position=?2",
        ChunkKind::FirehoseBuffer => {
            "UPDATE firehose_chunks SET segment=?3, position=?4 WHERE segment=?1 AND position=?2"
        }
    };
    let from = relocation.from;
    conn.prepare_cached(sql)?.execute(params![from.segment, from.offset as i64, to.segment, to.offset as i64])?;
    Ok(())
}

/// Moves what earlier versions kept as one row per record (Kinesis `records`, Firehose
/// `firehose_buffer`) into the log, one owner's run of one arrival time per chunk. The log
/// is synced before the one transaction that adds the chunks and empties the tables; a
/// crash before it leaves the rows where they were and the log's uncommitted tail is
/// written over.
fn move_legacy_records(conn: &Connection, log: &RecordLog) -> Result<(), StoreError> {
    let any: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM firehose_buffer)", [], |r| r.get(0))
        .map_err(internal)?;
    if !any {
        return Ok(());
    }
    /// Bytes of records written to the log per append while moving.
    const MOVE_STEP: usize = 8 * 1024 * 1024;
    let mut chunks: Vec<RecordChunk> = Vec::new();
    let mut moved: Vec<ChunkRow> = Vec::new();
    let mut step_bytes = 0;
    let flush = |chunks: &mut Vec<RecordChunk>, moved: &mut Vec<ChunkRow>| {
        let mut bytes = Vec::new();
        let mut places = Vec::new();
        for chunk in chunks.iter() {
            let start = bytes.len();
            encode_chunk(chunk, &mut bytes);
            places.push((start as u64, (bytes.len() - start) as u64));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let append = log.append(&bytes)?;
        log.committed(append);
        for (chunk, (start, length)) in chunks.drain(..).zip(places) {
            moved.push(ChunkRow::of(
                &chunk,
                ChunkPlace { segment: append.segment, offset: append.offset + start, length },
            ));
        }
        Ok::<(), StoreError>(())
    };
    let sources = [
        (
            ChunkKind::KinesisShard,
            "SELECT shard_uid, seq_ix, arrival_ms, partition_key, data, sealed FROM records ORDER BY shard_uid, seq_ix",
        ),
        (
            ChunkKind::FirehoseBuffer,
            "SELECT stream_id, seq, arrival_ms, '', data, sealed FROM firehose_buffer ORDER BY stream_id, seq",
        ),
    ];
    for (kind, query) in sources {
        let mut stmt = conn.prepare(query).map_err(internal)?;
        let mut rows = stmt.query([]).map_err(internal)?;
        while let Some(r) = rows.next().map_err(internal)? {
            let owner: i64 = r.get(0).map_err(internal)?;
            let index = r.get::<_, i64>(1).map_err(internal)? as u64;
            let arrival_ms = r.get::<_, i64>(2).map_err(internal)? as u64;
            let sealed: bool = r.get(5).map_err(internal)?;
            let record: (String, Vec<u8>) = (r.get(3).map_err(internal)?, r.get(4).map_err(internal)?);
            step_bytes += record.0.len() + record.1.len();
            match chunks.last_mut() {
                Some(c)
                    if c.kind == kind
                        && c.owner == owner
                        && c.arrival_ms == arrival_ms
                        && c.sealed == sealed
                        && c.first_index + c.records.len() as u64 == index =>
                {
                    c.records.push(record)
                }
                _ => chunks.push(RecordChunk {
                    kind,
                    owner,
                    first_index: index,
                    arrival_ms,
                    sealed,
                    records: vec![record],
                }),
            }
            if step_bytes >= MOVE_STEP {
                flush(&mut chunks, &mut moved)?;
                step_bytes = 0;
            }
        }
    }
    flush(&mut chunks, &mut moved)?;
    let tx = conn.unchecked_transaction().map_err(internal)?;
    for row in &moved {
        insert_chunk_row(&tx, row).map_err(internal)?;
    }
    tx.execute("DELETE FROM records", []).map_err(internal)?;
    tx.execute("DELETE FROM firehose_buffer", []).map_err(internal)?;
    tx.commit().map_err(internal)?;
    tracing::info!(chunks = moved.len(), "moved Kinesis records and Firehose buffers into the record log");
    Ok(())
}

/// Opens the message log under `dir` and replays it. Messages and deduplication entries
/// that an older version kept in SQLite go into the log first (synced), and out of SQLite
/// after: a crash between the two repeats the move, and replay's later insert of a
/// sequence number replaces the earlier one.
fn open_message_log(
    dir: &Path,
    conn: &Connection,
    durable: bool,
    segment_bytes: u64,
) -> Result<(MessageLog, Replayed), StoreError> {
    let opened = MessageLog::open(dir, durable, segment_bytes)?;
    let any: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM dedup)", [], |r| r.get(0))
        .map_err(internal)?;
    if !any {
        return Ok(opened);
    }
    let log = opened.0;
    /// Bytes written to the log per append while moving.
    const MOVE_STEP: usize = 8 * 1024 * 1024;
    let mut bytes = Vec::new();
    let mut moved = 0;
    {
        let mut stmt = conn
            .prepare(
                "SELECT m.seq, m.queue_id, m.group_id, m.sent_ms, m.visible_at_ms, m.receive_count, m.first_receive_ms, \
                 m.receipt_token, m.dlq_source_queue_id, b.message_id, b.body, b.body_md5, b.attributes, \
                 b.system_attributes, b.sender_id, b.dedup_id FROM messages m JOIN message_bodies b ON b.seq = m.seq",
            )
            .map_err(internal)?;
        let mut rows = stmt.query([]).map_err(internal)?;
        while let Some(r) = rows.next().map_err(internal)? {
            let row = (|| {
                let state = MessageState {
                    queue_id: r.get(1)?,
                    visible_at_ms: r.get::<_, i64>(4)? as u64,
                    receive_count: r.get::<_, i64>(5)? as u32,
                    first_receive_ms: r.get::<_, i64>(6)? as u64,
                    receipt_token: r.get::<_, i64>(7)? as u64,
                    dlq_source: r.get(8)?,
                };
                let content = MessageContent {
                    message_id: r.get(9)?,
                    body: StoredText::from_column(r.get_ref(10)?)?.unwrap_or(StoredText::Plain(String::new())),
                    body_md5: StoredText::from_column(r.get_ref(11)?)?,
                    attributes: r.get(12)?,
                    system_attributes: r.get(13)?,
                    sender_id: r.get::<_, String>(14)?.into(),
                    group_id: r.get(2)?,
                    dedup_id: r.get(15)?,
                    sent_ms: r.get::<_, i64>(3)? as u64,
                };
                Ok::<_, rusqlite::Error>((r.get::<_, i64>(0)?, state, content))
            })()
            .map_err(internal)?;
            encode(&Change::Insert { seq: row.0, state: &row.1, content: &row.2, body_in: None }, &mut bytes);
            moved += 1;
            if bytes.len() >= MOVE_STEP {
                log.append(&mut bytes)?;
                bytes.clear();
            }
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT queue_id, scope, dedup_id, expires_ms, message_id, seq FROM dedup")
            .map_err(internal)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DedupRecord {
                    queue_id: r.get(0)?,
                    scope: r.get(1)?,
                    dedup_id: r.get(2)?,
                    expires_ms: r.get::<_, i64>(3)? as u64,
                    message_id: r.get(4)?,
                    seq: r.get(5)?,
                })
            })
            .map_err(internal)?;
        for d in rows {
            encode(&Change::Dedup(&d.map_err(internal)?), &mut bytes);
        }
    }
    if !bytes.is_empty() {
        log.append(&mut bytes)?;
    }
    let tx = conn.unchecked_transaction().map_err(internal)?;
    tx.execute_batch("DELETE FROM messages; DELETE FROM message_bodies; DELETE FROM dedup;").map_err(internal)?;
    tx.commit().map_err(internal)?;
    tracing::info!(messages = moved, "moved SQS messages into the message log");
    drop(log);
    MessageLog::open(dir, durable, segment_bytes)
}

fn apply(tx: &rusqlite::Transaction<'_>, op: &SqlOp) -> rusqlite::Result<()> {
    match op {
        SqlOp::InsertQueue { id, account, region, name, attributes, tags, now } => {
            tx.prepare_cached(
                "INSERT INTO queues (id, account, region, name, attributes, tags, created_ms, modified_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?7)",
            )?
            .execute(params![id, account, region, name, attributes, tags, now])?;
        }
        SqlOp::UpdateQueue { id, attributes, tags, modified_ms } => {
            tx.prepare_cached("UPDATE queues SET attributes=?2, tags=?3, modified_ms=?4 WHERE id=?1")?
                .execute(params![id, attributes, tags, modified_ms])?;
        }
        SqlOp::SetLastPurge { id, at } => {
            tx.prepare_cached("UPDATE queues SET last_purge_ms=?2 WHERE id=?1")?.execute(params![id, at])?;
        }
        SqlOp::DeleteQueue { id, .. } => {
            tx.prepare_cached("DELETE FROM message_bodies WHERE seq IN (SELECT seq FROM messages WHERE queue_id=?1)")?
                .execute(params![id])?;
            tx.prepare_cached("DELETE FROM messages WHERE queue_id=?1")?.execute(params![id])?;
            tx.prepare_cached("DELETE FROM dedup WHERE queue_id=?1")?.execute(params![id])?;
            tx.prepare_cached("DELETE FROM queues WHERE id=?1")?.execute(params![id])?;
        }
        // Written to the message log by `append_messages`, never to SQLite.
        SqlOp::InsertMessage(_)
        | SqlOp::DeleteMessage { .. }
        | SqlOp::UpdateVisibility { .. }
        | SqlOp::MoveMessage { .. }
        | SqlOp::PurgeMessages { .. }
        | SqlOp::InsertDedup(_)
        | SqlOp::CompactMessages(_) => {}
        SqlOp::PruneDedup { now } => {
            tx.prepare_cached("DELETE FROM dedup WHERE expires_ms<=?1")?.execute(params![now])?;
            tx.prepare_cached("DELETE FROM topic_dedup WHERE expires_ms<=?1")?.execute(params![now])?;
        }
        SqlOp::SetMeta { key, value } => {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1,?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            )?
            .execute(params![key, value])?;
        }
        SqlOp::RaiseLastSeq { seq } => {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?1) ON CONFLICT(key) DO UPDATE SET value = \
                 CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
            )?
            .execute(params![seq.to_string()])?;
        }
        SqlOp::UpsertTopic { arn, record } => {
            tx.prepare_cached("INSERT OR REPLACE INTO topics (arn, record) VALUES (?1, ?2)")?
                .execute(params![arn, record])?;
        }
        SqlOp::DeleteTopic { arn } => {
            tx.prepare_cached("DELETE FROM topics WHERE arn=?1")?.execute(params![arn])?;
            tx.prepare_cached("DELETE FROM topic_dedup WHERE topic_arn=?1")?.execute(params![arn])?;
        }
        SqlOp::UpsertSubscription { arn, topic_arn, record } => {
            tx.prepare_cached("INSERT OR REPLACE INTO subscriptions (arn, topic_arn, record) VALUES (?1, ?2, ?3)")?
                .execute(params![arn, topic_arn, record])?;
        }
        SqlOp::DeleteSubscription { arn } => {
            tx.prepare_cached("DELETE FROM subscriptions WHERE arn=?1")?.execute(params![arn])?;
        }
        SqlOp::UpsertOutbox { id, subscription_arn, record, next_attempt_ms } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO sns_outbox (id, subscription_arn, record, next_attempt_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, subscription_arn, record, next_attempt_ms])?;
        }
        SqlOp::UpsertStream { id, record } => {
            tx.prepare_cached("INSERT OR REPLACE INTO streams (id, record) VALUES (?1, ?2)")?
                .execute(params![id, record])?;
        }
        SqlOp::DeleteStream { id, shard_uids } => {
            tx.prepare_cached("DELETE FROM streams WHERE id=?1")?.execute(params![id])?;
            for uid in shard_uids {
                tx.prepare_cached("DELETE FROM record_chunks WHERE shard_uid=?1")?.execute(params![uid])?;
                tx.prepare_cached("DELETE FROM record_times WHERE shard_uid=?1")?.execute(params![uid])?;
                tx.prepare_cached("DELETE FROM shard_seq WHERE shard_uid=?1")?.execute(params![uid])?;
            }
        }
        // Placed in the log by `apply_batch`, which inserts its row itself.
        SqlOp::AppendChunk(_) | SqlOp::RelocateChunk(_) => return Err(rusqlite::Error::InvalidQuery),
        SqlOp::ShardAppended { shard_uid, next_seq_ix, second, first_seq_ix } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO record_times (shard_uid, second, first_seq_ix) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![shard_uid, second, first_seq_ix])?;
            tx.prepare_cached(
                "INSERT INTO shard_seq (shard_uid, next_seq_ix) VALUES (?1, ?2) ON CONFLICT(shard_uid) DO UPDATE SET \
                 next_seq_ix = MAX(next_seq_ix, excluded.next_seq_ix)",
            )?
            .execute(params![shard_uid, next_seq_ix])?;
        }
        SqlOp::TrimRecords { shard_uid, below_seq_ix } => {
            // Whole chunks only: a chunk's records share one arrival second, and the
            // boundary is the first index of a second, so none is split.
            tx.prepare_cached(
                "DELETE FROM record_chunks WHERE shard_uid=?1 AND first_seq_ix<?2 AND first_seq_ix+count<=?2",
            )?
            .execute(params![shard_uid, below_seq_ix])?;
            tx.prepare_cached("DELETE FROM record_times WHERE shard_uid=?1 AND first_seq_ix<?2")?
                .execute(params![shard_uid, below_seq_ix])?;
        }
        SqlOp::UpsertDeliveryStream { id, record } => {
            tx.prepare_cached("INSERT OR REPLACE INTO delivery_streams (id, record) VALUES (?1, ?2)")?
                .execute(params![id, record])?;
        }
        SqlOp::DeleteDeliveryStream { id } => {
            tx.prepare_cached("DELETE FROM delivery_streams WHERE id=?1")?.execute(params![id])?;
            tx.prepare_cached("DELETE FROM firehose_chunks WHERE stream_id=?1")?.execute(params![id])?;
        }
        SqlOp::RemoveBuffered { stream_id, max_seq, released } => {
            tx.prepare_cached("DELETE FROM firehose_chunks WHERE stream_id=?1 AND first_seq+count-1<=?2")?
                .execute(params![stream_id, max_seq])?;
            // A chunk that keeps undelivered records now starts after the delivered ones.
            let partial: Option<i64> = tx
                .prepare_cached("SELECT first_seq FROM firehose_chunks WHERE stream_id=?1 AND first_seq<=?2")?
                .query_row(params![stream_id, max_seq], |r| r.get(0))
                .optional()?;
            if let Some(first) = partial {
                let delivered: u64 = released.iter().filter(|(seq, _)| *seq >= first).map(|(_, n)| n).sum();
                tx.prepare_cached(
                    "UPDATE firehose_chunks SET first_seq=?3+1, count=first_seq+count-1-?3, bytes=max(bytes-?4, 0) \
                     WHERE stream_id=?1 AND first_seq=?2",
                )?
                .execute(params![stream_id, first, max_seq, delivered as i64])?;
            }
        }
        SqlOp::UpsertResource { kind, key, record } => {
            tx.prepare_cached("INSERT OR REPLACE INTO sns_resources (kind, key, record) VALUES (?1, ?2, ?3)")?
                .execute(params![kind, key, record])?;
        }
        SqlOp::DeleteResource { kind, key } => {
            tx.prepare_cached("DELETE FROM sns_resources WHERE kind=?1 AND key=?2")?.execute(params![kind, key])?;
        }
        SqlOp::DeleteOutbox { id } => {
            tx.prepare_cached("DELETE FROM sns_outbox WHERE id=?1")?.execute(params![id])?;
        }
        SqlOp::InsertTopicDedup { topic_arn, scope, dedup_id, expires_ms, message_id, seq } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO topic_dedup (topic_arn, scope, dedup_id, expires_ms, message_id, seq) VALUES (?1,?2,?3,?4,?5,?6)",
            )?
            .execute(params![topic_arn, scope, dedup_id, expires_ms, message_id, seq])?;
        }
        SqlOp::UpsertMoveTask(t) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO move_tasks (handle, source_queue_id, source_arn, destination_arn, max_per_second, status, moved, to_move, started_ms, failure_reason, max_seq) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            )?
            .execute(params![
                t.handle,
                t.source_queue_id,
                t.source_arn,
                t.destination_arn,
                t.max_per_second,
                t.status,
                t.moved,
                t.to_move,
                t.started_ms,
                t.failure_reason,
                t.max_seq
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_log::SEGMENT_BYTES;

    fn test_sealer() -> Sealer {
        Sealer::new(&[7; 32])
    }

    fn version(conn: &Connection) -> String {
        conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn kinesis_records_and_firehose_buffers_of_older_versions_are_kept_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let record = vec![7u8; 1024];
        {
            let conn = Connection::open(&path).unwrap();
            // Schema 6 is the last with WITHOUT ROWID records.
            let before = 6;
            for migration in &MIGRATIONS[..before] {
                conn.execute_batch(migration).unwrap();
            }
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?1)", params![before.to_string()])
                .unwrap();
            for seq in [3i64, 1, 2] {
                conn.execute(
                    "INSERT INTO records (shard_uid, seq_ix, arrival_ms, partition_key, data, sealed) VALUES (9, ?1, 5, 'pk', ?2, 0)",
                    params![seq, record],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO firehose_buffer (stream_id, seq, arrival_ms, data, sealed) VALUES (4, 1, 5, ?1, 1)",
                params![record],
            )
            .unwrap();
        }
        let (db, conn, _) = Database::open(&path, true, None, SEGMENT_BYTES, test_sealer()).unwrap();
        let layout = |table: &str| -> String {
            conn.query_row("SELECT sql FROM sqlite_master WHERE name=?1", params![table], |r| r.get(0)).unwrap()
        };
        assert!(!layout("records").contains("WITHOUT ROWID"), "{}", layout("records"));
        assert!(!layout("firehose_buffer").contains("WITHOUT ROWID"));
        // Migration 9 then moved the records into the log: one chunk of one arrival time.
        let left: i64 = conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "the table is emptied once the log holds the records");
        let (first, chunk) = conn
            .query_row(
                "SELECT first_seq_ix, count, segment, position, length FROM record_chunks WHERE shard_uid=9",
                [],
                |r| db.record_log.chunk_of_row(r, ChunkKind::KinesisShard, 9),
            )
            .unwrap()
            .expect("the segment is there");
        assert_eq!((first, chunk.records.len()), (1, 3));
        assert_eq!(chunk.arrival_ms, 5);
        assert_eq!(chunk.records, vec![("pk".to_owned(), record.clone()); 3]);
        // The Firehose buffer's record too, sealed as it was, its size without the sealing.
        let (first, chunk) = conn
            .query_row(
                "SELECT first_seq, count, segment, position, length FROM firehose_chunks WHERE stream_id=4",
                [],
                |r| db.record_log.chunk_of_row(r, ChunkKind::FirehoseBuffer, 4),
            )
            .unwrap()
            .expect("the segment is there");
        let bytes: i64 =
            conn.query_row("SELECT bytes FROM firehose_chunks WHERE stream_id=4", [], |r| r.get(0)).unwrap();
        assert_eq!((first, chunk.sealed, bytes), (1, true, (record.len() - crate::at_rest::SEALED_OVERHEAD) as i64));
        assert_eq!(chunk.records, vec![(String::new(), record.clone())]);
        let left: i64 = conn.query_row("SELECT count(*) FROM firehose_buffer", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0);
        let duplicate = conn.execute(
            "INSERT INTO record_chunks (shard_uid, first_seq_ix, count, arrival_ms, sealed, segment, position, length) \
             VALUES (9, 1, 1, 5, 0, 1, 0, 1)",
            [],
        );
        assert!(duplicate.is_err(), "(shard, first index) stays unique");
        drop(db);
    }

    #[test]
    fn an_older_data_directory_is_migrated_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')", []).unwrap();
            conn.execute(
                "INSERT INTO queues (id, account, region, name, attributes, tags, created_ms, modified_ms) VALUES (1,'a','r','q','{}','{}',0,0)",
                [],
            )
            .unwrap();
        }
        let (db, conn, _) = Database::open(&path, true, None, SEGMENT_BYTES, test_sealer()).unwrap();
        assert_eq!(version(&conn), MIGRATIONS.len().to_string());
        let queues: i64 = conn.query_row("SELECT count(*) FROM queues", [], |r| r.get(0)).unwrap();
        assert_eq!(queues, 1, "existing data is kept");
        conn.execute("INSERT INTO sns_resources (kind, key, record) VALUES ('k','k','{}')", []).unwrap();
        drop(db);
    }

    /// Messages and deduplication entries an older version kept in SQLite move into the
    /// message log at the first start, with their state, and only once.
    #[test]
    fn messages_of_an_older_version_move_into_the_message_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        {
            let conn = Connection::open(&path).unwrap();
            migrate(&conn).unwrap();
            conn.execute_batch(
                "INSERT INTO messages (seq, queue_id, group_id, sent_ms, visible_at_ms, receive_count, first_receive_ms, receipt_token, dlq_source_queue_id) \
                     VALUES (7, 1, 'g', 100, 900, 2, 150, 77, 3), (9, 1, NULL, 200, 200, 0, 0, 0, NULL);
                 INSERT INTO message_bodies (seq, message_id, body, attributes, system_attributes, sender_id, dedup_id, body_md5) \
                     VALUES (7, 'm7', 'plain body', '{\"a\":\"b\"}', NULL, 'sender', 'd7', NULL), \
                            (9, 'm9', x'0102', NULL, NULL, 'sender', NULL, x'0304');
                 INSERT INTO dedup (queue_id, scope, dedup_id, expires_ms, message_id, seq) VALUES (1, 'queue', 'd7', 5000, 'm7', 7);",
            )
            .unwrap();
        }
        let (db, conn, replayed) = Database::open(&path, true, None, SEGMENT_BYTES, test_sealer()).unwrap();
        let rows: i64 = conn
            .query_row("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM message_bodies) + (SELECT count(*) FROM dedup)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "nothing is left in SQLite");
        assert_eq!(replayed.messages.len(), 2);
        let received = replayed.message(7);
        assert_eq!(
            (
                received.state.visible_at_ms,
                received.state.receive_count,
                received.state.receipt_token,
                received.state.dlq_source
            ),
            (900, 2, 77, Some(3))
        );
        assert_eq!(received.group_id.as_deref(), Some("g"));
        let (_, _, content) = db.message_log.read(received.at).unwrap().unwrap();
        assert!(matches!(content.body, StoredText::Plain(ref b) if b == "plain body"));
        assert_eq!((content.message_id.as_str(), content.dedup_id.as_deref()), ("m7", Some("d7")));
        let (_, _, sealed) = db.message_log.read(replayed.message(9).at).unwrap().unwrap();
        assert!(matches!(sealed.body, StoredText::Sealed(ref b) if b == &[1, 2]), "sealed bodies stay sealed");
        assert!(matches!(sealed.body_md5, Some(StoredText::Sealed(ref b)) if b == &[3, 4]));
        assert_eq!(replayed.dedup.len(), 1);
        assert_eq!(replayed.dedup[0].dedup_id, "d7");
        drop((db, conn));
        let (_, _, again) = Database::open(&path, true, None, SEGMENT_BYTES, test_sealer()).unwrap();
        assert_eq!(again.messages.len(), 2, "moved once");
        assert_eq!(again.dedup.len(), 1);
    }

    /// A group commit whose records would pass the size limit fails only the writes that
    /// carry records and writes none of their bytes; a queue write in the same group
    /// commits, and records committed before read back. Live messages count toward the
    /// limit as well.
    #[test]
    fn records_past_the_size_limit_fail_alone_in_their_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let conn = Connection::open(&path).unwrap();
        migrate(&conn).unwrap();
        drop(conn);
        let (db, mut conn, _) = Database::open(&path, true, Some(1024 * 1024), SEGMENT_BYTES, test_sealer()).unwrap();
        db.shutdown();
        let (commits, _checkpoints) = mpsc::sync_channel(1);
        let item = |ops: Vec<SqlOp>| {
            let (tx, rx) = oneshot::channel();
            (WriteItem { ops, on_commit: None, on_failure: None, done: Some(tx), route: None }, rx)
        };
        let chunk = |first_index: u64, bytes: usize| RecordChunk {
            kind: ChunkKind::KinesisShard,
            owner: 1,
            first_index,
            arrival_ms: 0,
            sealed: false,
            records: vec![("k".into(), vec![7; bytes])],
        };
        let logs = WriterLogs {
            record: db.record_log.clone(),
            messages: db.message_log.clone(),
            max_bytes: Some(1024 * 1024),
            database: path.clone(),
            group_bytes: Default::default(),
            sealer: test_sealer(),
        };
        let (small, small_done) = item(vec![SqlOp::AppendChunk(Box::new(chunk(1, 100)))]);
        commit_batch(&mut conn, &logs, &mut vec![small], false, &commits, &mut 0);
        assert!(small_done.blocking_recv().unwrap().0.is_ok());
        let committed = db.record_log.bytes();

        let (records, records_done) = item(vec![SqlOp::AppendChunk(Box::new(chunk(2, 2 * 1024 * 1024)))]);
        let (queue, queue_done) = item(vec![SqlOp::SetMeta { key: "probe", value: "committed".into() }]);
        commit_batch(&mut conn, &logs, &mut vec![records, queue], false, &commits, &mut 0);
        assert!(records_done.blocking_recv().unwrap().0.is_err(), "2 MiB of records pass the 1 MiB limit");
        assert!(queue_done.blocking_recv().unwrap().0.is_ok(), "the other write commits");
        let probe: String = conn.query_row("SELECT value FROM meta WHERE key='probe'", [], |r| r.get(0)).unwrap();
        assert_eq!(probe, "committed");
        let chunks: i64 = conn.query_row("SELECT count(*) FROM record_chunks", [], |r| r.get(0)).unwrap();
        assert_eq!(chunks, 1);
        let segment = dir.path().join("records.00000001.seg");
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), committed, "nothing of the refused records was written");
        let place = ChunkPlace { segment: 1, offset: 0, length: committed };
        assert_eq!(db.record_log.read(place).unwrap().unwrap(), chunk(1, 100), "the committed chunk reads back");

        db.message_log.account(1024 * 1024, 0);
        let (more, more_done) = item(vec![SqlOp::AppendChunk(Box::new(chunk(2, 100)))]);
        commit_batch(&mut conn, &logs, &mut vec![more], false, &commits, &mut 0);
        assert!(more_done.blocking_recv().unwrap().0.is_err(), "1 MiB of live messages leaves no room");
    }

    #[test]
    fn a_newer_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);").unwrap();
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '999')", []).unwrap();
        }
        let err = Database::open(&path, true, None, SEGMENT_BYTES, test_sealer()).err().expect("refused");
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    }
}
