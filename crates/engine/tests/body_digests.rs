//! The body digests SendMessage answers with: the writer hashes the bodies of a group
//! commit side by side, seals them with their bodies, and the sender and every later
//! receive see the MD5 of exactly the body sent.

use md5::{Digest, Md5};
use sluice_engine::store::*;
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, clock: &Arc<ManualClock>) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedOptions::for_tests(dir), clock.clone() as Arc<dyn Clock>).unwrap()
}

fn reference_md5(body: &str) -> String {
    Md5::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn message(body: &str) -> NewMessage {
    NewMessage { body: body.into(), sender_id: "s".into(), ..Default::default() }
}

fn fifo_message(body: &str, dedup: &str) -> NewMessage {
    NewMessage { group_id: Some("g".into()), dedup_id: Some(dedup.into()), ..message(body) }
}

async fn create_queue(store: &EmbeddedStore, name: &str, attributes: &[(&str, &str)]) -> QueueKey {
    let key = QueueKey::new("000000000000", "us-east-1", name);
    let attributes = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.create_queue(&key, attributes, Tags::new()).unwrap().wait().await.unwrap();
    key
}

/// Every message of `key`, received in rounds of ten.
async fn receive_all(store: &EmbeddedStore, key: &QueueKey) -> Vec<ReceivedMessage> {
    let params = ReceiveParams { max_messages: 10, visibility_timeout_s: Some(30), attempt_id: None };
    let mut all = Vec::new();
    loop {
        let got = store.receive_messages(key, &params).unwrap().wait().await.unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// Bodies of every length around MD5's 64-byte blocks, so that the lanes of one pass
/// hash inputs of different block counts.
fn bodies() -> Vec<String> {
    (0..40).map(|n| format!("body {n} {}", "x".repeat(n * 7))).collect()
}

#[tokio::test]
async fn sends_without_a_digest_are_answered_and_received_with_their_bodies_md5() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open(dir.path(), &clock);
    let sealed = create_queue(&store, "sealed", &[("SqsManagedSseEnabled", "true")]).await;
    let clear = create_queue(&store, "clear", &[]).await;
    for key in [&sealed, &clear] {
        // Sends of one message each, submitted before any is awaited, so that the
        // writer finds several in one group; and one send of many.
        let singles: Vec<_> = bodies().iter().map(|b| store.send_messages(key, vec![message(b)]).unwrap()).collect();
        let many = store.send_messages(key, bodies().iter().map(|b| message(b)).collect()).unwrap();
        let mut outcomes = Vec::new();
        for single in singles {
            outcomes.extend(single.wait().await.unwrap());
        }
        outcomes.extend(many.wait().await.unwrap());
        let expected: Vec<String> = bodies().iter().chain(&bodies()).map(|b| reference_md5(b)).collect();
        let answered: Vec<String> = outcomes.iter().map(|o| o.body_md5.clone().expect("a digest")).collect();
        assert_eq!(answered, expected);
    }
    // A digest the sender gives is the one stored, and none is computed for it.
    let given = NewMessage { body_md5: Some("given".into()), ..message("with its own digest") };
    let outcome = store.send_messages(&clear, vec![given]).unwrap().wait().await.unwrap();
    assert_eq!(outcome[0].body_md5, None);

    let check = |received: Vec<ReceivedMessage>, expected_count: usize| {
        assert_eq!(received.len(), expected_count);
        for m in received {
            let expected = if m.body == "with its own digest" { "given".into() } else { reference_md5(&m.body) };
            assert_eq!(m.body_md5.as_deref(), Some(expected.as_str()), "{}", m.body);
        }
    };
    check(receive_all(&store, &sealed).await, 80);
    check(receive_all(&store, &clear).await, 81);
    // Read back from disk, sealed and clear alike.
    drop(store);
    clock.advance_ms(31_000);
    let store = open(dir.path(), &clock);
    check(receive_all(&store, &sealed).await, 80);
    check(receive_all(&store, &clear).await, 81);
}

/// A FIFO duplicate writes nothing, yet answers the digest of the body it was sent with,
/// also when the original is in the same send.
#[tokio::test]
async fn fifo_duplicates_are_answered_with_their_own_bodies_md5() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open(dir.path(), &clock);
    let key = create_queue(&store, "q.fifo", &[("FifoQueue", "true"), ("SqsManagedSseEnabled", "true")]).await;
    let first = store.send_messages(&key, vec![fifo_message("first", "d1")]).unwrap().wait().await.unwrap();
    let again = store.send_messages(&key, vec![fifo_message("again", "d1")]).unwrap().wait().await.unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(first[0].body_md5, Some(reference_md5("first")));
    assert_eq!(again[0].body_md5, Some(reference_md5("again")));

    let pair = vec![fifo_message("a", "d2"), fifo_message("b", "d2"), fifo_message("c", "d3")];
    let outcomes = store.send_messages(&key, pair).unwrap().wait().await.unwrap();
    let flags: Vec<bool> = outcomes.iter().map(|o| o.duplicate).collect();
    assert_eq!(flags, [false, true, false]);
    let digests: Vec<Option<String>> = outcomes.into_iter().map(|o| o.body_md5).collect();
    assert_eq!(digests, [Some(reference_md5("a")), Some(reference_md5("b")), Some(reference_md5("c"))]);
}
