//! Fault injection in the embedded store: a write that fails (as on an I/O error or a full
//! disk) must leave memory agreeing with disk, so retries do the right thing and nothing
//! comes back after a restart.

use sluice_engine::store::*;
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path) -> EmbeddedStore {
    open_with_clock(dir, Arc::new(ManualClock::new(1_700_000_000_000)))
}

fn open_with_clock(dir: &Path, clock: Arc<ManualClock>) -> EmbeddedStore {
    let options = EmbeddedOptions {
        data_dir: Some(dir.to_owned()),
        durable: true,
        relax_cooldowns: true,
        max_data_bytes: None,
        encryption_key: None,
    };
    EmbeddedStore::open(options, clock as Arc<dyn Clock>).unwrap()
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

/// Creates queue `name` with `attributes` (name, value pairs) in the default account.
async fn create_queue(store: &EmbeddedStore, name: &str, attributes: &[(&str, &str)]) -> QueueKey {
    let key = QueueKey::new("000000000000", "us-east-1", name);
    let attributes = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.create_queue(&key, attributes, Tags::new()).unwrap().wait().await.unwrap();
    key
}

fn receive_params() -> ReceiveParams {
    ReceiveParams { max_messages: 10, visibility_timeout_s: Some(30), attempt_id: None }
}

#[tokio::test]
async fn a_failed_delete_can_be_retried_and_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = create_queue(&store, "q", &[]).await;
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
    let key = create_queue(&store, "q.fifo", &[("FifoQueue", "true")]).await;
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

#[tokio::test]
async fn a_failed_receive_leaves_the_message_visible_with_its_stored_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = create_queue(&store, "q.fifo", &[("FifoQueue", "true")]).await;
    store.send_messages(&key, vec![message("first", Some("g"), Some("d1"))]).unwrap().wait().await.unwrap();
    store.inject_write_failures(1);
    let failed = store.receive_messages(&key, &receive_params()).unwrap().wait().await;
    assert!(failed.is_err(), "the receive was not written");
    let counts = store.queue_counts(&key).unwrap();
    assert_eq!((counts.visible, counts.in_flight), (1, 0), "visible again, its group not held");
    let got = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1, "the failed receive is not counted");
    store.delete_message(&key, &got[0].receipt_handle).unwrap().wait().await.unwrap();
}

#[tokio::test]
async fn a_failed_visibility_change_keeps_the_stored_visibility() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = open_with_clock(dir.path(), clock.clone());
    let key = create_queue(&store, "q", &[]).await;
    store.send_messages(&key, vec![message("m", None, None)]).unwrap().wait().await.unwrap();
    let got = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    let handle = &got[0].receipt_handle;

    store.inject_write_failures(1);
    assert!(store.change_visibility(&key, handle, 0).unwrap().wait().await.is_err());
    let counts = store.queue_counts(&key).unwrap();
    assert_eq!((counts.visible, counts.in_flight), (0, 1), "still in flight, as on disk");

    store.inject_write_failures(1);
    assert!(store.change_visibility(&key, handle, 600).unwrap().wait().await.is_err());
    clock.advance_secs(31);
    let again = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    assert_eq!(again.len(), 1, "visible after the stored 30 seconds, not the unwritten 600");
}

#[tokio::test]
async fn failed_queue_changes_leave_memory_as_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = QueueKey::new("000000000000", "us-east-1", "q");

    store.inject_write_failures(1);
    assert!(store.create_queue(&key, Default::default(), Tags::new()).unwrap().wait().await.is_err());
    assert!(store.get_queue(&key).is_err(), "a queue that was not written is not served");
    let (_, created) = store.create_queue(&key, Default::default(), Tags::new()).unwrap().wait().await.unwrap();
    assert!(created, "the retry creates it");

    store.inject_write_failures(1);
    let delay = [("DelaySeconds".to_string(), "5".to_string())].into();
    assert!(store.set_queue_attributes(&key, delay).unwrap().wait().await.is_err());
    assert!(!store.get_queue(&key).unwrap().attributes.contains_key("DelaySeconds"));
    store.inject_write_failures(1);
    assert!(store.tag_queue(&key, [("team".to_string(), "a".to_string())].into()).unwrap().wait().await.is_err());
    assert!(store.get_queue(&key).unwrap().tags.is_empty());

    store.send_messages(&key, vec![message("kept", None, None)]).unwrap().wait().await.unwrap();
    store.inject_write_failures(1);
    assert!(store.purge_queue(&key).unwrap().wait().await.is_err());
    assert_eq!(store.queue_counts(&key).unwrap().visible, 1, "an unwritten purge removes nothing");

    store.inject_write_failures(1);
    assert!(store.delete_queue(&key).unwrap().wait().await.is_err());
    assert!(store.get_queue(&key).is_ok(), "an unwritten delete leaves the queue");
    let got = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    assert_eq!(got[0].body, "kept");

    drop(store);
    let store = open(dir.path());
    assert!(store.get_queue(&key).unwrap().tags.is_empty(), "after a restart, the same as before it");
    assert_eq!(store.queue_counts(&key).unwrap().in_flight, 1);
}

fn stream_meta(name: &str) -> sluice_engine::streams::StreamMeta {
    sluice_engine::streams::StreamMeta {
        id: 0,
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: name.into(),
        stream_id: "1".into(),
        status: "ACTIVE".into(),
        status_until_ms: None,
        mode: "PROVISIONED".into(),
        retention_hours: 24,
        created_ms: 1_700_000_000_000,
        tags: Default::default(),
        encryption_type: "NONE".into(),
        key_id: None,
        enhanced_metrics: vec![],
        max_record_size_kib: 1024,
        consumers: vec![],
        shards: vec![],
        resource_policy: None,
        consumer_policies: Default::default(),
        warm_throughput_mibps: None,
        next_shard_index: 0,
    }
}

#[tokio::test]
async fn failed_stream_changes_leave_memory_as_on_disk() {
    use sluice_engine::streams::{NewRecord, StreamStore};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let meta = stream_meta("s");
    let key = meta.key();
    store.inject_write_failures(1);
    assert!(store.create_stream(meta.clone(), 1).unwrap().wait().await.is_err());
    assert!(store.stream(&key).is_none(), "a stream that was not written is not served");
    assert!(store.create_stream(meta, 1).unwrap().wait().await.unwrap(), "the retry creates it");
    let record = || vec![NewRecord { shard_index: 0, partition_key: "k".into(), data: b"x".to_vec() }];
    let first = store.append_records(&key, record()).unwrap().wait().await.unwrap();

    store.inject_write_failures(1);
    assert!(store
        .update_stream(&key, &mut |m| {
            m.retention_hours = 48;
            Ok(())
        })
        .unwrap()
        .wait()
        .await
        .is_err());
    assert_eq!(store.stream(&key).unwrap().retention_hours, 24, "an unwritten update is not applied");

    store.inject_write_failures(1);
    assert!(store.delete_stream(&key).unwrap().wait().await.is_err());
    assert!(store.stream(&key).is_some(), "an unwritten delete leaves the stream");
    let second = store.append_records(&key, record()).unwrap().wait().await.unwrap();
    assert!(second[0].sequence_number > first[0].sequence_number, "the shard keeps its record index");
}

#[tokio::test]
async fn failed_topic_changes_leave_memory_as_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let arn = "arn:aws:sns:us-east-1:000000000000:t.fifo".to_string();
    let topic = TopicRecord {
        arn: arn.clone(),
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: "t.fifo".into(),
        attributes: Default::default(),
        tags: Default::default(),
        created_ms: 0,
    };
    store.inject_write_failures(1);
    assert!(store.put_topic(topic.clone()).unwrap().wait().await.is_err());
    assert!(store.get_topic(&arn).is_none());
    store.put_topic(topic).unwrap().wait().await.unwrap();
    let sub = SubscriptionRecord {
        arn: format!("{arn}:sub"),
        topic_arn: arn.clone(),
        protocol: "sqs".into(),
        endpoint: "arn:aws:sqs:us-east-1:000000000000:q.fifo".into(),
        owner: "000000000000".into(),
        attributes: Default::default(),
        confirmed: true,
        token: String::new(),
    };
    store.put_subscription(sub).unwrap().wait().await.unwrap();

    // A FIFO publish whose dedup id could not be written gives it back.
    store.inject_write_failures(1);
    assert!(store.topic_sequence(&arn, "", "d1").unwrap().wait().await.is_err());
    let (_, _, duplicate) = store.topic_sequence(&arn, "", "d1").unwrap().wait().await.unwrap();
    assert!(!duplicate, "the retry is published, not taken for a duplicate of nothing");

    store.inject_write_failures(1);
    assert!(store.delete_topic(&arn).unwrap().wait().await.is_err());
    assert!(store.get_topic(&arn).is_some(), "an unwritten delete leaves the topic");
    assert_eq!(store.subscriptions_of(&arn).len(), 1, "and its subscriptions");
}

#[tokio::test]
async fn failed_delivery_stream_changes_leave_memory_as_on_disk() {
    use sluice_engine::firehose::DeliveryStore;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let create = || store.create_delivery_stream("000000000000", "us-east-1", "d", serde_json::json!({"v": 1}));
    store.inject_write_failures(1);
    assert!(create().unwrap().unwrap().wait().await.is_err());
    assert!(store.delivery_stream("000000000000", "us-east-1", "d").is_none());
    let stream = create().unwrap().expect("the retry creates it").wait().await.unwrap();

    store.inject_write_failures(1);
    assert!(store.buffer_records(stream.id, vec![b"lost".to_vec()], None).unwrap().wait().await.is_err());
    assert_eq!(store.buffer_stats(stream.id).records, 0, "unwritten records do not count");

    store.inject_write_failures(1);
    let update = store.update_delivery_stream(stream.id, &mut |c| {
        c["v"] = 2.into();
        Ok(())
    });
    assert!(update.unwrap().wait().await.is_err());
    assert_eq!(store.delivery_stream("000000000000", "us-east-1", "d").unwrap().config["v"], 1);

    store.inject_write_failures(1);
    assert!(store.delete_delivery_stream(stream.id).unwrap().wait().await.is_err());
    assert!(store.delivery_stream("000000000000", "us-east-1", "d").is_some());
}

#[tokio::test]
async fn a_failed_move_step_reports_no_progress_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let dlq = create_queue(&store, "dlq", &[]).await;
    let policy = format!("{{\"deadLetterTargetArn\":\"{}\",\"maxReceiveCount\":2}}", dlq.arn());
    let src = create_queue(&store, "src", &[("RedrivePolicy", &policy)]).await;
    store.send_messages(&dlq, vec![message("stuck", None, None)]).unwrap().wait().await.unwrap();
    store.start_move_task(&dlq, Some(&src), None).unwrap().wait().await.unwrap();

    store.inject_write_failures(1);
    assert!(store.run_move_tasks(100).unwrap().wait().await.is_err(), "the step was not written");
    let tasks = store.list_move_tasks(&dlq, 10).unwrap();
    assert_eq!((tasks[0].status.as_str(), tasks[0].moved), ("RUNNING", 0), "no progress is reported");
    assert_eq!(store.queue_counts(&dlq).unwrap().visible, 1, "the message is back in its queue");
    assert_eq!(store.queue_counts(&src).unwrap().visible, 0);

    assert_eq!(store.run_move_tasks(100).unwrap().wait().await.unwrap(), 1, "the next step moves it");
    let tasks = store.list_move_tasks(&dlq, 10).unwrap();
    assert_eq!((tasks[0].status.as_str(), tasks[0].moved), ("COMPLETED", 1));
    assert_eq!(store.queue_counts(&src).unwrap().visible, 1);
    assert_eq!(store.queue_counts(&dlq).unwrap().visible, 0);
}
