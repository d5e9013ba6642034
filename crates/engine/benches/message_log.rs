//! The SQS message log on disk: a million 1 KiB messages replayed at start, and group
//! commits of SendMessage-sized inserts appended with `fdatasync`.
//! `cargo bench -p sluice-engine --bench message_log` (prints times; nothing is asserted).

use sluice_engine::at_rest::StoredText;
use sluice_engine::message_log::{encode, Change, MessageContent, MessageLog, MessageState};

fn main() {
    divan::main();
}

const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

fn message(seq: i64) -> (MessageState, MessageContent) {
    let state = MessageState { queue_id: 1, visible_at_ms: 5, ..Default::default() };
    let content = MessageContent {
        message_id: format!("{seq:036}"),
        body: StoredText::Plain("x".repeat(1024)),
        body_md5: None,
        attributes: None,
        system_attributes: None,
        sender_id: "AIDAEXAMPLEEXAMPLE".into(),
        group_id: None,
        dedup_id: None,
        sent_ms: 1,
    };
    (state, content)
}

/// Appends `count` messages in groups of `group`.
fn append(log: &MessageLog, count: i64, group: i64) {
    let mut buf = Vec::new();
    for seq in 1..=count {
        let (state, content) = message(seq);
        encode(&Change::Insert { seq, state: &state, content: &content, body_in: None }, &mut buf);
        if seq % group == 0 || seq == count {
            log.append(&mut buf).unwrap();
            buf.clear();
        }
    }
}

/// Start-up with 1,000,000 stored messages (about 1.1 GB of log, warm page cache).
#[divan::bench(sample_count = 3, sample_size = 1)]
fn replay_a_million(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = MessageLog::open(dir.path(), false, SEGMENT_BYTES).unwrap();
    append(&log, 1_000_000, 100);
    drop(log);
    bencher.bench(|| {
        let (_log, replayed) = MessageLog::open(dir.path(), false, SEGMENT_BYTES).unwrap();
        assert_eq!(replayed.messages.len(), 1_000_000);
    });
}

/// Durable group commits of `group` inserts: the log's share of the writer's cost per
/// sent message (compare `group_commit`'s `durable_sends`).
#[divan::bench(args = [1, 20, 100], sample_count = 5, sample_size = 1)]
fn durable_appends(bencher: divan::Bencher, group: i64) {
    const MESSAGES: i64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = MessageLog::open(dir.path(), true, SEGMENT_BYTES).unwrap();
    bencher.counter(divan::counter::ItemsCount::new(MESSAGES as usize)).bench(|| append(&log, MESSAGES, group));
}
