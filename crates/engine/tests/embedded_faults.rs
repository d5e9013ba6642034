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
    EmbeddedStore::open(EmbeddedOptions::for_tests(dir), clock as Arc<dyn Clock>).unwrap()
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

/// SNS fan-out writes every queue's delivery at once: a queue that is gone fails alone, a
/// failed write stores nothing and gives deduplication entries back, and a written one is
/// in every queue, also after a restart.
#[tokio::test]
async fn a_send_to_several_queues_is_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let standard = create_queue(&store, "q", &[]).await;
    let fifo = create_queue(&store, "q.fifo", &[("FifoQueue", "true")]).await;
    let gone = QueueKey::new("000000000000", "us-east-1", "gone");
    let sends = || {
        vec![
            (&standard, message("n", None, None)),
            (&gone, message("n", None, None)),
            (&fifo, message("n", Some("g"), Some("d1"))),
        ]
    };
    store.inject_write_failures(1);
    assert!(store.send_to_queues(sends()).unwrap().wait().await.is_err(), "the write failed");
    assert_eq!(store.queue_counts(&standard).unwrap().visible, 0, "nothing half-sent is visible");
    assert_eq!(store.queue_counts(&fifo).unwrap().visible, 0);

    let results = store.send_to_queues(sends()).unwrap().wait().await.unwrap();
    assert!(matches!(results[1], Err(StoreError::QueueDoesNotExist)), "{:?}", results[1]);
    let fifo_outcome = results[2].as_ref().unwrap();
    assert!(!fifo_outcome.duplicate, "the failed write gave its deduplication id back");
    drop(store);
    let store = open(dir.path());
    for key in [&standard, &fifo] {
        let got = store.receive_messages(key, &receive_params()).unwrap().wait().await.unwrap();
        assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["n"], "{}", key.name);
    }
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
    sluice_engine::streams::StreamMeta::for_tests(name)
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

/// Kinesis record bytes live in the record log; SQLite says which of them are committed.
mod record_log {
    use super::*;
    use sluice_engine::record_log::{encode_chunk, ChunkKind, RecordChunk};
    use sluice_engine::streams::{NewRecord, StreamKey, StreamStore};
    use std::path::PathBuf;

    async fn create_stream(store: &EmbeddedStore) -> StreamKey {
        create_named_stream(store, "s").await
    }

    async fn create_named_stream(store: &EmbeddedStore, name: &str) -> StreamKey {
        let meta = stream_meta(name);
        let key = meta.key();
        store.create_stream(meta, 1).unwrap().wait().await.unwrap();
        key
    }

    async fn append(store: &EmbeddedStore, key: &StreamKey, data: &str) -> Result<(), StoreError> {
        let record = NewRecord { shard_index: 0, partition_key: "k".into(), data: data.as_bytes().to_vec() };
        store.append_records(key, vec![record]).unwrap().wait().await.map(drop)
    }

    fn read_all(store: &EmbeddedStore, key: &StreamKey) -> Result<Vec<String>, StoreError> {
        let meta = store.stream(key).unwrap();
        let read = store.read_records(&meta, meta.shards[0].uid, 0, 10_000, usize::MAX)?;
        Ok(read.records.into_iter().map(|r| String::from_utf8(r.data).unwrap()).collect())
    }

    fn head_segment(dir: &Path) -> PathBuf {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        segments.pop().expect("a record log segment")
    }

    /// A crash in the middle of an append leaves part of a chunk past the committed end.
    /// At every length of that part, the next start serves exactly the acknowledged
    /// records, cuts the rest off, and appends after them.
    #[tokio::test]
    async fn a_torn_append_is_cut_off_at_start_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let key = create_stream(&store).await;
        append(&store, &key, "first").await.unwrap();
        append(&store, &key, "second").await.unwrap();
        let shard_uid = store.stream(&key).unwrap().shards[0].uid;
        drop(store);
        let segment = head_segment(dir.path());
        let committed = std::fs::read(&segment).unwrap();
        let mut torn = Vec::new();
        let unacknowledged = RecordChunk {
            kind: ChunkKind::KinesisShard,
            owner: shard_uid,
            first_index: 3,
            arrival_ms: 1_700_000_000_000,
            sealed: false,
            records: vec![("k".into(), b"never acknowledged".to_vec())],
        };
        encode_chunk(&unacknowledged, &mut torn);
        for cut in 0..=torn.len() {
            std::fs::write(&segment, [&committed[..], &torn[..cut]].concat()).unwrap();
            let store = open(dir.path());
            assert_eq!(read_all(&store, &key).unwrap(), ["first", "second"], "torn at {cut}");
            drop(store);
            assert_eq!(std::fs::read(&segment).unwrap(), committed, "the torn part is cut off (at {cut})");
        }
        std::fs::write(&segment, [&committed[..], &torn[..]].concat()).unwrap();
        let store = open(dir.path());
        append(&store, &key, "third").await.unwrap();
        assert_eq!(read_all(&store, &key).unwrap(), ["first", "second", "third"]);
        drop(store);
        let store = open(dir.path());
        assert_eq!(read_all(&store, &key).unwrap(), ["first", "second", "third"]);
    }

    /// The writer syncs the log, then commits the transaction naming the chunk. When the
    /// commit fails after the log sync, the records were never acknowledged: they are not
    /// served, the next append writes over them, and a restart cuts off what is left.
    #[tokio::test]
    async fn records_synced_to_the_log_but_not_committed_are_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let key = create_stream(&store).await;
        append(&store, &key, "kept").await.unwrap();
        store.inject_write_failures(1);
        assert!(append(&store, &key, "lost-in-between-the-syncs").await.is_err());
        assert_eq!(read_all(&store, &key).unwrap(), ["kept"]);
        append(&store, &key, "after").await.unwrap();
        assert_eq!(read_all(&store, &key).unwrap(), ["kept", "after"]);
        drop(store);
        let store = open(dir.path());
        assert_eq!(read_all(&store, &key).unwrap(), ["kept", "after"]);
        let on_disk = std::fs::read(head_segment(dir.path())).unwrap();
        assert!(!on_disk.windows(4).any(|w| w == b"lost"), "the unacknowledged bytes are gone");
    }

    /// A stream holding the records `data`, written and the store closed: the segment
    /// holding them, for a test to damage.
    async fn stream_on_disk(dir: &Path, data: &[&str]) -> (StreamKey, PathBuf) {
        let store = open(dir);
        let key = create_stream(&store).await;
        for d in data {
            append(&store, &key, d).await.unwrap();
        }
        drop(store);
        (key, head_segment(dir))
    }

    /// A segment shorter than its committed records lost acknowledged data: the store
    /// refuses to start rather than serve a stream with a hole in it.
    #[tokio::test]
    async fn a_segment_missing_committed_bytes_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (_, segment) = stream_on_disk(dir.path(), &["acknowledged"]).await;
        let len = std::fs::metadata(&segment).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 1).unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000)) as Arc<dyn Clock>;
        match EmbeddedStore::open(EmbeddedOptions::for_tests(dir.path()), clock) {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("segment"), "{why}"),
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("a log that lost committed bytes was accepted"),
        }
    }

    /// A damaged byte inside a committed chunk fails the read; it never returns other data.
    #[tokio::test]
    async fn a_damaged_chunk_fails_the_read_instead_of_serving_wrong_data() {
        let dir = tempfile::tempdir().unwrap();
        let (key, segment) = stream_on_disk(dir.path(), &["payload-to-damage"]).await;
        let mut bytes = std::fs::read(&segment).unwrap();
        let at = bytes.windows(7).position(|w| w == b"payload").unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(&segment, bytes).unwrap();
        let store = open(dir.path());
        assert!(read_all(&store, &key).is_err());
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
            .count()
    }

    /// Streams share segments, so the records one stream keeps would hold on to segments
    /// whose other records are gone. Compaction, one step at a time, copies them
    /// to the head and the old segments go; reads see every record, in order, throughout
    /// and after a restart.
    #[tokio::test]
    async fn compaction_frees_segments_left_mostly_empty() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions { record_segment_bytes: 4096, ..EmbeddedOptions::for_tests(dir.path()) };
        let store =
            EmbeddedStore::open(options, Arc::new(ManualClock::new(1_700_000_000_000)) as Arc<dyn Clock>).unwrap();
        let kept = create_named_stream(&store, "kept").await;
        let gone = create_named_stream(&store, "gone").await;
        let mut expected = Vec::new();
        for i in 0..40 {
            expected.push(format!("kept-{i:02}"));
            append(&store, &kept, &expected[i]).await.unwrap();
            append(&store, &gone, &"g".repeat(1000)).await.unwrap();
        }
        let before = store.record_segments().len();
        assert!(before >= 8, "{before} segments");
        store.delete_stream(&gone).unwrap().wait().await.unwrap();
        assert_eq!(store.record_segments().len(), before, "every segment still holds records of the kept stream");
        // A step whose commit fails after its copies reached the log changes nothing.
        store.inject_write_failures(1);
        assert!(store.compact_record_log().unwrap().wait().await.is_err());
        assert_eq!(store.record_segments().len(), before);
        assert_eq!(read_all(&store, &kept).unwrap(), expected, "after a failed step");

        let mut sweeps = 0;
        while store.record_segments().len() > 2 {
            sweeps += 1;
            assert!(sweeps <= 3 * before, "compaction makes progress: {:?}", store.record_segments());
            store.compact_record_log().unwrap().wait().await.unwrap();
            assert_eq!(read_all(&store, &kept).unwrap(), expected, "after step {sweeps}");
        }
        assert_eq!(segment_files(dir.path()), store.record_segments().len(), "the freed files are deleted");
        drop(store);
        let store = open(dir.path());
        assert_eq!(read_all(&store, &kept).unwrap(), expected, "after a restart");
        append(&store, &kept, "after").await.unwrap();
        expected.push("after".into());
        assert_eq!(read_all(&store, &kept).unwrap(), expected);
    }
}

/// A send whose group's sync fails (the writer wrote it, the disk refused it) is refused,
/// is not in the queue, and does not come back after a restart, while the sends before
/// and after it stand.
#[tokio::test]
async fn a_send_whose_sync_fails_is_refused_and_stays_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = create_queue(&store, "q", &[]).await;
    store.send_messages(&key, vec![message("before", None, None)]).unwrap().wait().await.unwrap();
    store.inject_sync_failures(1);
    let failed = store.send_messages(&key, vec![message("lost", None, None)]).unwrap().wait().await;
    assert!(failed.is_err(), "the send was not synced");
    assert_eq!(store.queue_counts(&key).unwrap().visible, 1, "the refused message is not in the queue");
    store.send_messages(&key, vec![message("after", None, None)]).unwrap().wait().await.unwrap();
    drop(store);
    let store = open(dir.path());
    let got = store.receive_messages(&key, &receive_params()).unwrap().wait().await.unwrap();
    let mut bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, vec!["after", "before"]);
}
