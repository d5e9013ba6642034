//! The Store conformance suite: every test is a function over a backend factory, and
//! [`store_conformance_tests!`](crate::store_conformance_tests) instantiates all of
//! them for one backend, so a second backend (PostgreSQL) runs the very same tests.
//! Time is a [`ManualClock`]; nothing sleeps.

use crate::clock::ManualClock;
use crate::store::*;
use std::path::Path;
use std::sync::Arc;

/// Opens a backend over `dir` (reopening the same `dir` must see the same data).
pub type Factory = fn(&Path, Arc<ManualClock>) -> Arc<dyn Store>;

pub const START_MS: u64 = 1_700_000_000_000;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub factory: Factory,
    pub store: Arc<dyn Store>,
}

impl Harness {
    pub fn new(factory: Factory) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(START_MS));
        let store = factory(dir.path(), clock.clone());
        Harness { dir, clock, factory, store }
    }

    /// Drops the store (flushing it) and opens it again on the same data.
    pub fn restart(&mut self) {
        let placeholder = (self.factory)(&self.dir.path().join("scratch"), self.clock.clone());
        drop(std::mem::replace(&mut self.store, placeholder));
        self.store = (self.factory)(self.dir.path(), self.clock.clone());
    }

    pub async fn queue(&self, name: &str, attrs: &[(&str, &str)]) -> QueueKey {
        let key = QueueKey::new("000000000000", "us-east-1", name);
        let attributes = attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.store.create_queue(&key, attributes, Tags::new()).unwrap().wait().await.unwrap();
        key
    }

    pub async fn send(&self, key: &QueueKey, body: &str) -> SendOutcome {
        self.send_msg(key, NewMessage { body: body.into(), sender_id: "s".into(), ..Default::default() }).await
    }

    pub async fn send_msg(&self, key: &QueueKey, m: NewMessage) -> SendOutcome {
        self.store.send_messages(key, vec![m]).unwrap().wait().await.unwrap().remove(0)
    }

    pub async fn send_fifo(&self, key: &QueueKey, body: &str, group: &str, dedup: &str) -> SendOutcome {
        self.send_msg(
            key,
            NewMessage {
                body: body.into(),
                sender_id: "s".into(),
                group_id: Some(group.into()),
                dedup_id: Some(dedup.into()),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn receive(&self, key: &QueueKey, max: usize, vt: Option<u64>) -> Vec<ReceivedMessage> {
        let params = ReceiveParams { max_messages: max, visibility_timeout_s: vt, attempt_id: None };
        self.store.receive_messages(key, &params).unwrap().wait().await.unwrap()
    }

    pub async fn delete(&self, key: &QueueKey, handle: &str) {
        self.store.delete_message(key, handle).unwrap().wait().await.unwrap();
    }

    pub fn counts(&self, key: &QueueKey) -> QueueCounts {
        self.store.queue_counts(key).unwrap()
    }
}

fn bodies(msgs: &[ReceivedMessage]) -> Vec<&str> {
    msgs.iter().map(|m| m.body.as_str()).collect()
}

pub async fn queue_lifecycle(f: Factory) {
    let h = Harness::new(f);
    let key = h.queue("orders", &[("VisibilityTimeout", "45")]).await;
    let info = h.store.get_queue(&key).unwrap();
    assert_eq!(info.attributes["VisibilityTimeout"], "45");
    assert_eq!(info.created_ms, START_MS);
    let (_, created) = h.store.create_queue(&key, Attributes::new(), Tags::new()).unwrap().wait().await.unwrap();
    assert!(!created, "second create returns the existing queue");
    h.queue("other", &[]).await;
    let names: Vec<String> =
        h.store.list_queues("000000000000", "us-east-1", "ord").into_iter().map(|k| k.name).collect();
    assert_eq!(names, vec!["orders"]);
    assert!(h.store.list_queues("000000000000", "eu-west-1", "").is_empty(), "regions are separate namespaces");
    h.store.delete_queue(&key).unwrap().wait().await.unwrap();
    assert_eq!(h.store.get_queue(&key), Err(StoreError::QueueDoesNotExist));
    let again = h.store.create_queue(&key, Attributes::new(), Tags::new()).err();
    assert_eq!(again, Some(StoreError::QueueDeletedRecently));
    h.clock.advance_secs(61);
    assert!(h.store.create_queue(&key, Attributes::new(), Tags::new()).is_ok());
}

pub async fn send_receive_delete(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q", &[]).await;
    let sent = h.send(&q, "hello").await;
    assert_eq!(h.counts(&q).visible, 1);
    let got = h.receive(&q, 10, None).await;
    assert_eq!(bodies(&got), vec!["hello"]);
    assert_eq!(got[0].message_id, sent.message_id);
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(got[0].sent_ms, START_MS);
    assert_eq!(h.counts(&q), QueueCounts { visible: 0, in_flight: 1, delayed: 0 });
    assert!(h.receive(&q, 10, None).await.is_empty(), "in-flight message is invisible");
    h.delete(&q, &got[0].receipt_handle).await;
    assert_eq!(h.counts(&q), QueueCounts::default());
    // Deleting again succeeds, as on AWS.
    h.delete(&q, &got[0].receipt_handle).await;
    assert_eq!(h.store.delete_message(&q, "garbage").err(), Some(StoreError::ReceiptHandleInvalid));
}

pub async fn visibility_timeout_expires(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q", &[("VisibilityTimeout", "30")]).await;
    h.send(&q, "m").await;
    let first = h.receive(&q, 1, None).await;
    h.clock.advance_secs(29);
    assert!(h.receive(&q, 1, None).await.is_empty());
    h.clock.advance_secs(1);
    let second = h.receive(&q, 1, Some(5)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].first_receive_ms, START_MS, "first receive time is kept");
    assert_ne!(first[0].receipt_handle, second[0].receipt_handle, "each receive issues a new handle");
    // The stale handle "succeeds, but the message is not deleted".
    h.delete(&q, &first[0].receipt_handle).await;
    assert_eq!(h.counts(&q).in_flight, 1);
    h.clock.advance_secs(5);
    assert_eq!(h.counts(&q).visible, 1, "per-receive visibility timeout applies");
}

pub async fn change_visibility_rules(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q", &[]).await;
    h.send(&q, "m").await;
    let got = h.receive(&q, 1, Some(60)).await;
    let handle = &got[0].receipt_handle;
    h.store.change_visibility(&q, handle, 0).unwrap().wait().await.unwrap();
    assert_eq!(h.counts(&q).visible, 1, "timeout 0 makes it visible at once");
    assert_eq!(h.store.change_visibility(&q, handle, 10).err(), Some(StoreError::MessageNotInflight));
    let got = h.receive(&q, 1, Some(43_100)).await;
    let handle = &got[0].receipt_handle;
    h.clock.advance_secs(43_000);
    assert_eq!(h.store.change_visibility(&q, handle, 300).err(), Some(StoreError::VisibilityLimitExceeded));
    h.store.change_visibility(&q, handle, 100).unwrap().wait().await.unwrap();
    h.clock.advance_secs(99);
    assert_eq!(h.counts(&q).in_flight, 1);
    h.clock.advance_secs(1);
    assert_eq!(h.counts(&q).visible, 1);
}

pub async fn delays(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q", &[("DelaySeconds", "10")]).await;
    h.send(&q, "queue-delay").await;
    h.send_msg(&q, NewMessage { body: "no-delay".into(), delay_s: Some(0), ..Default::default() }).await;
    h.send_msg(&q, NewMessage { body: "long".into(), delay_s: Some(20), ..Default::default() }).await;
    assert_eq!(h.counts(&q), QueueCounts { visible: 1, in_flight: 0, delayed: 2 });
    assert_eq!(bodies(&h.receive(&q, 10, None).await), vec!["no-delay"]);
    h.clock.advance_secs(10);
    assert_eq!(bodies(&h.receive(&q, 10, None).await), vec!["queue-delay"]);
    let (_, next) = h.store.wait_signal(&q).unwrap();
    assert!(next.is_some(), "a long poll knows when the next message appears");
    h.clock.advance_secs(10);
    assert_eq!(bodies(&h.receive(&q, 10, None).await), vec!["long"]);
}

pub async fn retention(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q", &[("MessageRetentionPeriod", "60")]).await;
    h.send(&q, "old").await;
    h.clock.advance_secs(30);
    h.send(&q, "new").await;
    h.clock.advance_secs(30);
    assert_eq!(h.store.expire().unwrap().wait().await.unwrap(), 1);
    assert_eq!(bodies(&h.receive(&q, 10, None).await), vec!["new"]);
}

pub async fn fifo_order_and_group_blocking(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q.fifo", &[("FifoQueue", "true")]).await;
    for (i, g) in ["a", "a", "b", "a"].iter().enumerate() {
        h.send_fifo(&q, &format!("{g}{i}"), g, &format!("d{i}")).await;
    }
    let first = h.receive(&q, 1, None).await;
    assert_eq!(bodies(&first), vec!["a0"]);
    // Group a is blocked while a0 is in flight; b is not.
    let second = h.receive(&q, 10, None).await;
    assert_eq!(bodies(&second), vec!["b2"]);
    h.delete(&q, &first[0].receipt_handle).await;
    let third = h.receive(&q, 10, None).await;
    assert_eq!(bodies(&third), vec!["a1", "a3"], "order within a group holds");
    let seq: Vec<u128> = third.iter().map(|m| m.sequence_number.as_ref().unwrap().parse().unwrap()).collect();
    assert!(seq[0] < seq[1]);
    // An expired FIFO receipt cannot delete.
    h.clock.advance_secs(31);
    assert_eq!(h.store.delete_message(&q, &third[0].receipt_handle).err(), Some(StoreError::ReceiptHandleExpired));
}

pub async fn fifo_deduplication(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q.fifo", &[("FifoQueue", "true")]).await;
    let a = h.send_fifo(&q, "x", "g", "same").await;
    let b = h.send_fifo(&q, "y", "g", "same").await;
    assert!(b.duplicate);
    assert_eq!(a.message_id, b.message_id);
    let got = h.receive(&q, 10, None).await;
    assert_eq!(bodies(&got), vec!["x"]);
    h.delete(&q, &got[0].receipt_handle).await;
    h.clock.advance_secs(4 * 60);
    assert!(h.send_fifo(&q, "z", "g", "same").await.duplicate, "dedup holds after delete");
    h.clock.advance_secs(61);
    assert!(!h.send_fifo(&q, "z", "g", "same").await.duplicate, "window is 5 minutes");

    let scoped = h.queue("s.fifo", &[("FifoQueue", "true"), ("DeduplicationScope", "messageGroup")]).await;
    h.send_fifo(&scoped, "1", "g1", "id").await;
    assert!(!h.send_fifo(&scoped, "2", "g2", "id").await.duplicate, "messageGroup scope");
    assert!(h.send_fifo(&scoped, "3", "g1", "id").await.duplicate);
}

pub async fn receive_attempt_retry(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q.fifo", &[("FifoQueue", "true")]).await;
    h.send_fifo(&q, "1", "g", "1").await;
    let params = ReceiveParams { max_messages: 10, visibility_timeout_s: None, attempt_id: Some("try".into()) };
    let a = h.store.receive_messages(&q, &params).unwrap().wait().await.unwrap();
    let b = h.store.receive_messages(&q, &params).unwrap().wait().await.unwrap();
    assert_eq!(a, b, "a retried attempt returns the same messages and handles");
}

pub async fn dead_letter_queue(f: Factory) {
    let h = Harness::new(f);
    let dlq = h.queue("dlq", &[]).await;
    let policy = format!("{{\"deadLetterTargetArn\":\"{}\",\"maxReceiveCount\":2}}", dlq.arn());
    let q = h.queue("src", &[("RedrivePolicy", policy.as_str())]).await;
    assert_eq!(h.store.dead_letter_sources(&dlq).unwrap(), vec![q.clone()]);
    h.send(&q, "poison").await;
    for _ in 0..2 {
        assert_eq!(h.receive(&q, 1, Some(1)).await.len(), 1);
        h.clock.advance_secs(1);
    }
    assert!(h.receive(&q, 1, None).await.is_empty(), "third receive moves it instead");
    let moved = h.receive(&dlq, 1, None).await;
    assert_eq!(bodies(&moved), vec!["poison"]);
    assert_eq!(moved[0].dead_letter_source_arn.as_deref(), Some(q.arn().as_str()));
    h.clock.advance_secs(31);

    let task = h.store.start_move_task(&dlq, None, Some(10)).unwrap().wait().await.unwrap();
    assert!(h.store.start_move_task(&dlq, None, None).is_err(), "one running task per source");
    let tasks = h.store.list_move_tasks(&dlq, 10).unwrap();
    assert_eq!((tasks[0].status.as_str(), tasks[0].to_move), ("RUNNING", 1));
    assert_eq!(h.store.run_move_tasks(100).unwrap().wait().await.unwrap(), 1);
    let tasks = h.store.list_move_tasks(&dlq, 10).unwrap();
    assert_eq!((tasks[0].status.as_str(), tasks[0].moved), ("COMPLETED", 1));
    let back = h.receive(&q, 1, None).await;
    assert_eq!(bodies(&back), vec!["poison"]);
    assert_eq!(back[0].receive_count, 1, "a redriven message starts its receive count again");
    assert!(h.store.cancel_move_task(&task).is_err(), "completed tasks cannot be cancelled");
}

pub async fn purge(f: Factory) {
    let h = Harness::new(f);
    let q = h.queue("q", &[]).await;
    h.send(&q, "1").await;
    h.send(&q, "2").await;
    h.receive(&q, 1, None).await;
    h.store.purge_queue(&q).unwrap().wait().await.unwrap();
    assert_eq!(h.counts(&q), QueueCounts::default());
    assert_eq!(h.store.purge_queue(&q).err(), Some(StoreError::PurgeInProgress));
    h.clock.advance_secs(60);
    assert!(h.store.purge_queue(&q).is_ok());
}

pub async fn restart_keeps_state(f: Factory) {
    let mut h = Harness::new(f);
    let q = h.queue("q", &[("VisibilityTimeout", "60")]).await;
    let fifo = h.queue("f.fifo", &[("FifoQueue", "true")]).await;
    h.store.tag_queue(&q, [("team".to_string(), "a".to_string())].into()).unwrap().wait().await.unwrap();
    h.send(&q, "in-flight").await;
    h.send(&q, "waiting").await;
    h.send(&q, "deleted").await;
    let first = h.receive(&q, 1, None).await;
    assert_eq!(bodies(&first), vec!["in-flight"]);
    let rest = h.receive(&q, 2, Some(0)).await;
    let deleted = rest.iter().find(|m| m.body == "deleted").unwrap();
    h.delete(&q, &deleted.receipt_handle).await;
    let before = h.send_fifo(&fifo, "a", "g", "d1").await;
    // The highest sequence number is deleted before the restart: it must not be reused.
    let top = h.send_fifo(&fifo, "top", "g2", "d9").await;
    for m in h.receive(&fifo, 10, None).await {
        h.delete(&fifo, &m.receipt_handle).await;
    }
    assert_eq!(h.counts(&fifo), QueueCounts { visible: 0, in_flight: 0, delayed: 0 });

    h.restart();

    assert_eq!(h.store.get_queue(&q).unwrap().tags["team"], "a");
    assert_eq!(h.counts(&q), QueueCounts { visible: 1, in_flight: 1, delayed: 0 });
    assert_eq!(bodies(&h.receive(&q, 10, Some(0)).await), vec!["waiting"]);
    h.clock.advance_secs(60);
    let again = h.receive(&q, 10, None).await;
    let inflight = again.iter().find(|m| m.body == "in-flight").unwrap();
    assert_eq!(inflight.receive_count, 2, "receive counts survive restart");
    // The old receipt handle still names the message; deleting it is a no-op.
    h.delete(&q, &first[0].receipt_handle).await;
    assert!(h.send_fifo(&fifo, "a", "g", "d1").await.duplicate, "dedup history survives restart");
    let after = h.send_fifo(&fifo, "b", "g", "d2").await;
    let (b, a): (u128, u128) =
        (after.sequence_number.unwrap().parse().unwrap(), before.sequence_number.unwrap().parse().unwrap());
    assert!(b > a, "sequence numbers keep increasing across restarts");
    let deleted_top: u128 = top.sequence_number.unwrap().parse().unwrap();
    assert!(b > deleted_top, "not even a deleted message's sequence number comes back");
}

/// Instantiates every conformance test for one backend factory.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@each $factory;
            queue_lifecycle, send_receive_delete, visibility_timeout_expires, change_visibility_rules,
            delays, retention, fifo_order_and_group_blocking, fifo_deduplication, receive_attempt_retry,
            dead_letter_queue, purge, restart_keeps_state);
    };
    (@each $factory:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::conformance::$name($factory).await;
            }
        )*
    };
}
