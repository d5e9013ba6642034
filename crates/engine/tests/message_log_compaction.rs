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
