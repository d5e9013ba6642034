//! Fault injection in the embedded store: a write that fails (as on an I/O error or a full
//! disk) must leave memory agreeing with disk, so retries do the right thing and nothing
//! comes back after a restart.

use sluice_engine::store::*;
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path) -> EmbeddedStore {
    let options = EmbeddedOptions {
        data_dir: Some(dir.to_owned()),
        durable: true,
        relax_cooldowns: true,
        max_data_bytes: None,
        encryption_key: None,
    };
    EmbeddedStore::open(options, Arc::new(ManualClock::new(1_700_000_000_000)) as Arc<dyn Clock>).unwrap()
}

fn message(body: &str, group: Option<&str>, dedup: Option<&str>) -> NewMessage {
    NewMessage {
        body: body.into(),
        sender_id: "s".into(),
        group_id: group.map(Into::into),
        dedup_id: dedup.map(Into::into),
        ..Default::default()
    }
}

fn receive_params() -> ReceiveParams {
    ReceiveParams { max_messages: 10, visibility_timeout_s: Some(30), attempt_id: None }
}

#[tokio::test]
async fn a_failed_delete_can_be_retried_and_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = QueueKey::new("000000000000", "us-east-1", "q");
    store.create_queue(&key, Default::default(), Tags::new()).unwrap().wait().await.unwrap();
    store.send_messages(&key, vec![message("m", None, None)]).unwrap().wait().await.unwrap();
    let got = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    store.inject_write_failures(1);
    let failed = store.delete_message(&key, &got[0].receipt_handle).unwrap().wait().await;
    assert!(failed.is_err(), "the delete was not written");
    store.delete_message(&key, &got[0].receipt_handle).unwrap().wait().await.unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.queue_counts(&key).unwrap().visible + store.queue_counts(&key).unwrap().in_flight,
        0,
        "stays deleted"
    );
}

#[tokio::test]
async fn a_failed_fifo_send_gives_its_deduplication_id_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = QueueKey::new("000000000000", "us-east-1", "q.fifo");
    let attrs = [("FifoQueue".to_string(), "true".to_string())].into();
    store.create_queue(&key, attrs, Tags::new()).unwrap().wait().await.unwrap();
    store.inject_write_failures(1);
    let failed = store.send_messages(&key, vec![message("order", Some("g"), Some("d1"))]).unwrap().wait().await;
    assert!(failed.is_err());
    assert_eq!(store.queue_counts(&key).unwrap().visible, 0, "nothing half-sent is visible");
    let retried =
        store.send_messages(&key, vec![message("order", Some("g"), Some("d1"))]).unwrap().wait().await.unwrap();
    assert!(!retried[0].duplicate, "the retry is stored, not taken for a duplicate of nothing");
    let got = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "order");
}
