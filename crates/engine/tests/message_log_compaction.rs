//! Message log compaction through the store: deleted messages' space comes back, live
//! ones keep their bodies and state (also across a restart), and a receipt handle taken
//! before a compaction still works after it.

use sluice_engine::store::*;
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use std::path::Path;
use std::sync::Arc;

/// Small segments, so that a hundred messages span many.
const SEGMENT_BYTES: u64 = 8 * 1024;

fn open(dir: &Path, clock: Arc<ManualClock>) -> EmbeddedStore {
    let options = EmbeddedOptions { record_segment_bytes: SEGMENT_BYTES, ..EmbeddedOptions::for_tests(dir) };
    EmbeddedStore::open(options, clock as Arc<dyn Clock>).unwrap()
}

fn params(max: usize) -> ReceiveParams {
    ReceiveParams { max_messages: max, visibility_timeout_s: Some(30), attempt_id: None }
}

fn body(n: usize) -> String {
    format!("message {n:03} {}", "x".repeat(500))
}

async fn receive_all(store: &EmbeddedStore, key: &QueueKey) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let got = store.receive_messages(key, &params(10)).unwrap().wait().await.unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

#[tokio::test]
async fn compaction_frees_deleted_messages_and_keeps_live_ones_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open(dir.path(), clock.clone());
    let key = QueueKey::new("000000000000", "us-east-1", "q");
    // SSE on, as new queues have it by default: the copies keep bodies sealed.
    let attributes = [("SqsManagedSseEnabled".to_string(), "true".to_string())].into();
    store.create_queue(&key, attributes, Tags::new()).unwrap().wait().await.unwrap();
    for n in 0..100 {
        let m = NewMessage { body: body(n), sender_id: "s".into(), ..Default::default() };
        store.send_messages(&key, vec![m]).unwrap().wait().await.unwrap();
    }
    let received = receive_all(&store, &key).await;
    assert_eq!(received.len(), 100);
    // Keep every tenth message: five stay in flight, five go back to visible.
    let mut kept = Vec::new();
    for m in received {
        let n: usize = m.body[8..11].parse().unwrap();
        if !n.is_multiple_of(10) {
            store.delete_message(&key, &m.receipt_handle).unwrap().wait().await.unwrap();
        } else if n.is_multiple_of(20) {
            store.change_visibility(&key, &m.receipt_handle, 0).unwrap().wait().await.unwrap();
            kept.push(None);
        } else {
            kept.push(Some(m));
        }
    }
    let before = store.message_segments();
    let total = |s: &[(u32, u64)]| s.iter().map(|(_, b)| b).sum::<u64>();
    for _ in 0..before.len() {
        store.compact_message_log().unwrap().wait().await.unwrap();
    }
    let after = store.message_segments();
    assert!(total(&after) * 2 < total(&before), "space came back: {before:?} -> {after:?}");
    assert!(after[0].0 > before[0].0, "the oldest segments went: {before:?} -> {after:?}");

    // A receipt handle from before the compaction still works.
    let in_flight: Vec<ReceivedMessage> = kept.into_iter().flatten().collect();
    assert_eq!(in_flight.len(), 5);
    store.change_visibility(&key, &in_flight[0].receipt_handle, 0).unwrap().wait().await.unwrap();
    let mut bodies: Vec<String> = receive_all(&store, &key).await.into_iter().map(|m| m.body).collect();
    bodies.sort();
    let expected_visible: Vec<String> = (0..100).filter(|n| n % 20 == 0 || *n == 10).map(body).collect();
    assert_eq!(bodies, expected_visible);

    drop(store);
    clock.advance_secs(31);
    let store = open(dir.path(), clock.clone());
    let after_restart = receive_all(&store, &key).await;
    let mut bodies: Vec<String> = after_restart.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, (0..100).filter(|n| n % 10 == 0).map(body).collect::<Vec<_>>());
    for m in &after_restart {
        let n: usize = m.body[8..11].parse().unwrap();
        // Received once before the compaction, once after; those put back once more.
        let expected = if n.is_multiple_of(20) || n == 10 { 3 } else { 2 };
        assert_eq!(m.receive_count, expected, "message {n}");
    }
}

/// One write's deliveries of one text (an SNS publish) store it once per run of queues
/// sealed alike, and every queue reads it back: at once, after the holder's queue
/// deleted its copy and compaction removed the segment holding it, and after a restart.
#[tokio::test]
async fn deliveries_of_one_text_store_it_once_and_keep_it_through_compaction() {
    deliveries_of_one_text(false).await;
}

/// As above, with the text given once and the other deliveries' bodies as the previous
/// one's (SNS's raw deliveries): the sealed queues, which cannot share the plain run's
/// stored body, store copies of the text.
#[tokio::test]
async fn deliveries_given_the_previous_body_store_it_once_and_keep_it_through_compaction() {
    deliveries_of_one_text(true).await;
}

async fn deliveries_of_one_text(as_previous: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open(dir.path(), clock.clone());
    let sealed = [false, false, true, true, false];
    let keys: Vec<QueueKey> =
        (0..sealed.len()).map(|i| QueueKey::new("000000000000", "us-east-1", &format!("q{i}"))).collect();
    for (key, sealed) in keys.iter().zip(sealed) {
        let attributes = [("SqsManagedSseEnabled".to_string(), sealed.to_string())].into();
        store.create_queue(key, attributes, Tags::new()).unwrap().wait().await.unwrap();
    }
    let text = format!("published {}", "y".repeat(3000));
    let other = format!("another {}", "z".repeat(3000));
    let total = |s: &[(u32, u64)]| s.iter().map(|(_, b)| b).sum::<u64>();
    let before = total(&store.message_segments());
    let message = |body: &str| NewMessage { body: body.to_owned(), sender_id: "sns".into(), ..Default::default() };
    let delivery = |i: usize| match as_previous && i > 0 {
        true => NewMessage { sender_id: "sns".into(), body_as_previous: true, ..Default::default() },
        false => message(&text),
    };
    let mut sends: Vec<(&QueueKey, NewMessage)> = keys.iter().enumerate().map(|(i, k)| (k, delivery(i))).collect();
    sends.push((&keys[0], message(&other)));
    let results = store.send_to_queues(sends).unwrap().wait().await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    // Stored: q0's (q1 shares it), q2's sealed (q3 shares it), q4's (the run before it
    // was sealed), and the other text: four bodies for six messages.
    let appended = total(&store.message_segments()) - before;
    assert!(appended < 5 * 3000, "one body per run: {appended} bytes appended");
    assert!(appended > 4 * 3000, "each run's body stored: {appended} bytes appended");
    for key in &keys {
        let got = store.receive_messages(key, &params(10)).unwrap().wait().await.unwrap();
        let mut bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
        bodies.sort();
        let expected = if key.name == "q0" { vec![other.as_str(), text.as_str()] } else { vec![text.as_str()] };
        assert_eq!(bodies, expected, "{}", key.name);
        if key.name == "q0" {
            // The holder of q1's body goes.
            for m in &got {
                store.delete_message(key, &m.receipt_handle).unwrap().wait().await.unwrap();
            }
        }
    }
    // Enough other messages to move on to later segments, then compaction of every
    // segment before the head: q1..q4's messages are copied without their holders.
    let filler = QueueKey::new("000000000000", "us-east-1", "filler");
    store.create_queue(&filler, Default::default(), Tags::new()).unwrap().wait().await.unwrap();
    for n in 0..40 {
        store.send_messages(&filler, vec![message(&body(n))]).unwrap().wait().await.unwrap();
    }
    // Deleted, so that the log is sparse enough to compact.
    for m in receive_all(&store, &filler).await {
        store.delete_message(&filler, &m.receipt_handle).unwrap().wait().await.unwrap();
    }
    let first = store.message_segments()[0].0;
    let segments = store.message_segments().len();
    for _ in 0..segments {
        store.compact_message_log().unwrap().wait().await.unwrap();
    }
    assert!(store.message_segments()[0].0 > first, "the segment holding the bodies went");
    drop(store);
    clock.advance_secs(31);
    let store = open(dir.path(), clock.clone());
    for key in &keys[1..] {
        let got = receive_all(&store, key).await;
        assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec![text.as_str()], "{}", key.name);
    }
    assert!(receive_all(&store, &keys[0]).await.is_empty());
}

/// Copies every file of `from` (one level of subdirectories) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// What a queue holds: every message's body and receive count, received until none is
/// left visible (FIFO groups let one message through at a time, so each round deletes).
async fn contents(store: &EmbeddedStore, key: &QueueKey) -> Vec<(String, u32)> {
    let mut seen = Vec::new();
    loop {
        let got = store.receive_messages(key, &params(10)).unwrap().wait().await.unwrap();
        if got.is_empty() {
            seen.sort();
            return seen;
        }
        for m in got {
            store.delete_message(key, &m.receipt_handle).unwrap().wait().await.unwrap();
            seen.push((m.body, m.receive_count));
        }
    }
}

/// A clean shutdown leaves an index of the log that the next start reads instead of
/// replaying; it gives the same queues as replay, and after a crash the index and the
/// entries after it (or a checkpoint's newer index) give what replay gives.
#[tokio::test]
async fn the_message_index_and_what_follows_it_match_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open(dir.path(), clock.clone());
    let standard = QueueKey::new("000000000000", "us-east-1", "q");
    let fifo = QueueKey::new("000000000000", "us-east-1", "q.fifo");
    store.create_queue(&standard, Default::default(), Tags::new()).unwrap().wait().await.unwrap();
    let fifo_attributes = [("FifoQueue".to_string(), "true".to_string())].into();
    store.create_queue(&fifo, fifo_attributes, Tags::new()).unwrap().wait().await.unwrap();
    for n in 0..30 {
        let m = NewMessage { body: body(n), sender_id: "s".into(), ..Default::default() };
        store.send_messages(&standard, vec![m]).unwrap().wait().await.unwrap();
        let m = NewMessage {
            body: body(n),
            sender_id: "s".into(),
            group_id: Some(format!("g{}", n % 3)),
            dedup_id: Some(format!("d{n}")),
            ..Default::default()
        };
        store.send_messages(&fifo, vec![m]).unwrap().wait().await.unwrap();
    }
    for m in store.receive_messages(&standard, &params(10)).unwrap().wait().await.unwrap().iter().take(5) {
        store.delete_message(&standard, &m.receipt_handle).unwrap().wait().await.unwrap();
    }
    store.receive_messages(&fifo, &params(10)).unwrap().wait().await.unwrap();
    store.shutdown();
    drop(store);
    let index = dir.path().join("messages").join("index.snap");
    assert!(index.exists(), "a clean shutdown writes the index");
    let replay_dir = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), replay_dir.path());
    std::fs::remove_file(replay_dir.path().join("messages").join("index.snap")).unwrap();

    clock.advance_secs(31);
    let from_index = open(dir.path(), clock.clone());
    assert!(from_index.started_from_index());
    let replayed = open(replay_dir.path(), clock.clone());
    assert!(!replayed.started_from_index());
    for key in [&standard, &fifo] {
        let a = contents(&from_index, key).await;
        assert_eq!(a, contents(&replayed, key).await, "{}", key.name);
        assert!(!a.is_empty());
    }
    // The FIFO deduplication entries came back too.
    let again = NewMessage {
        body: "again".into(),
        sender_id: "s".into(),
        group_id: Some("g0".into()),
        dedup_id: Some("d0".into()),
        ..Default::default()
    };
    assert!(from_index.send_messages(&fifo, vec![again]).unwrap().wait().await.unwrap()[0].duplicate);

    // Writes after the start, then a crash: the index, then the entries after its place.
    let late = NewMessage { body: "late".into(), sender_id: "s".into(), ..Default::default() };
    from_index.send_messages(&standard, vec![late]).unwrap().wait().await.unwrap();
    drop(from_index);
    let after_crash = open(dir.path(), clock.clone());
    assert!(after_crash.started_from_index());
    assert!(contents(&after_crash, &standard).await.iter().any(|(b, _)| b == "late"), "the entries after the index");

    // Enough log for a checkpoint (two segments' worth), a checkpoint, more writes and a
    // crash: the checkpoint's index, then what follows it, give what replay gives.
    for n in 0..60 {
        let m = NewMessage { body: body(n), sender_id: "s".into(), ..Default::default() };
        after_crash.send_messages(&standard, vec![m]).unwrap().wait().await.unwrap();
    }
    for m in after_crash.receive_messages(&standard, &params(10)).unwrap().wait().await.unwrap() {
        after_crash.delete_message(&standard, &m.receipt_handle).unwrap().wait().await.unwrap();
    }
    let written_before = std::fs::read(&index).unwrap();
    let deltas = || {
        std::fs::read_dir(dir.path().join("messages"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".delta"))
            .count()
    };
    assert_eq!(deltas(), 0);
    assert!(after_crash.checkpoint_message_index().unwrap(), "more than two segments' worth since");
    assert_eq!(std::fs::read(&index).unwrap(), written_before, "the base stays");
    assert_eq!(deltas(), 1, "a delta after it");
    // Each covers about two segments: the rest of the log, then nothing until it grows.
    let mut more = 0;
    while after_crash.checkpoint_message_index().unwrap() {
        more += 1;
        assert!(more < 10, "checkpoints go on from each other");
    }
    after_crash.receive_messages(&standard, &params(3)).unwrap().wait().await.unwrap();
    drop(after_crash);
    let replay_dir = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), replay_dir.path());
    std::fs::remove_file(replay_dir.path().join("messages").join("index.snap")).unwrap();
    clock.advance_secs(31);
    let from_checkpoint = open(dir.path(), clock.clone());
    assert!(from_checkpoint.started_from_index());
    let replayed = open(replay_dir.path(), clock.clone());
    let a = contents(&from_checkpoint, &standard).await;
    assert_eq!(a.len(), 50);
    assert_eq!(a, contents(&replayed, &standard).await);
}

/// A segment whose messages all live is copied in steps, with other writes between
/// them: messages received while it runs keep their new state in their copies, one
/// deleted afterwards stays deleted, and every other body is whole after a restart.
#[tokio::test]
async fn a_live_segment_is_copied_in_steps_with_writes_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open(dir.path(), clock.clone());
    let stale = QueueKey::new("000000000000", "us-east-1", "stale");
    let busy = QueueKey::new("000000000000", "us-east-1", "busy");
    for key in [&stale, &busy] {
        store.create_queue(key, Default::default(), Tags::new()).unwrap().wait().await.unwrap();
    }
    for n in 0..40 {
        let m = NewMessage { body: body(n), sender_id: "s".into(), ..Default::default() };
        store.send_messages(&stale, vec![m]).unwrap().wait().await.unwrap();
    }
    // Churn on another queue until the log holds more than twice its live bytes.
    for n in 0..200 {
        let m = NewMessage { body: body(n), sender_id: "s".into(), ..Default::default() };
        store.send_messages(&busy, vec![m]).unwrap().wait().await.unwrap();
        for m in store.receive_messages(&busy, &params(10)).unwrap().wait().await.unwrap() {
            store.delete_message(&busy, &m.receipt_handle).unwrap().wait().await.unwrap();
        }
    }
    let oldest = store.message_segments()[0].0;
    let compaction = store.compact_message_log().unwrap();
    // Queued behind the compaction's first step, so they land between its steps.
    let first = store.receive_messages(&stale, &params(2)).unwrap();
    let (compacted, received) = tokio::join!(compaction.wait(), first.wait());
    compacted.unwrap();
    let received = received.unwrap();
    assert_eq!(received.len(), 2);
    store.delete_message(&stale, &received[0].receipt_handle).unwrap().wait().await.unwrap();
    assert!(store.message_segments()[0].0 > oldest, "the oldest segment went");

    drop(store);
    clock.advance_secs(31);
    let store = open(dir.path(), clock.clone());
    let bodies: Vec<ReceivedMessage> = receive_all(&store, &stale).await;
    let mut found: Vec<String> = bodies.iter().map(|m| m.body.clone()).collect();
    found.sort();
    let expected: Vec<String> = (0..40).map(body).filter(|b| *b != received[0].body).collect();
    assert_eq!(found, expected, "every live message whole, the deleted one gone");
    let again = bodies.iter().find(|m| m.body == received[1].body).unwrap();
    assert_eq!(again.receive_count, 2, "the receive between the steps counted");
}
