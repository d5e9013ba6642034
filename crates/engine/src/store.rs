//! The domain-level storage interface every backend implements.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{oneshot, Notify};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub account: String,
    pub region: String,
    pub name: String,
}

impl QueueKey {
    pub fn new(account: &str, region: &str, name: &str) -> Self {
        QueueKey { account: account.into(), region: region.into(), name: name.into() }
    }
    pub fn arn(&self) -> String {
        format!("arn:aws:sqs:{}:{}:{}", self.region, self.account, self.name)
    }
    /// Parses `arn:aws:sqs:<region>:<account>:<name>`.
    pub fn from_arn(arn: &str) -> Option<QueueKey> {
        let mut parts = arn.split(':');
        if parts.next()? != "arn" {
            return None;
        }
        let _partition = parts.next()?;
        if parts.next()? != "sqs" {
            return None;
        }
        let region = parts.next()?;
        let account = parts.next()?;
        let name = parts.next()?;
        if parts.next().is_some() || region.is_empty() || account.is_empty() || name.is_empty() {
            return None;
        }
        Some(QueueKey::new(account, region, name))
    }
}

pub type Attributes = BTreeMap<String, String>;
pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub key: Arc<QueueKey>,
    pub attributes: Arc<Attributes>,
    pub tags: Arc<Tags>,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub limits: SendLimits,
}

/// What every send reads of a queue's attributes, parsed when they were set rather than
/// looked up by name (and MaximumMessageSize parsed) on each message. Sends ask for these
/// alone ([`Store::send_limits`]): a whole [`QueueInfo`] is three `Arc`s shared by every
/// thread, each counted up and down by both cores on every send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    pub fifo: bool,
    pub content_based_dedup: bool,
    pub max_message_size: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub body: String,
    /// MD5 of `body` in hex when the sender already computed it. `None` has the writer
    /// hash the body with its group's, side by side ([`sluice_md5::md5_many`]), and answer
    /// the digest in [`SendOutcome::body_md5`]. Stored either way, so that ReceiveMessage
    /// need not hash the body again (except a body given as the previous one's).
    pub body_md5: Option<String>,
    /// Message attributes as the service serialised them; opaque to the engine.
    pub attributes: Option<String>,
    pub system_attributes: Option<String>,
    /// Borrowed when every message shares it (SNS's sender), so that a fan-out to many
    /// queues does not allocate one copy per delivery.
    pub sender_id: Cow<'static, str>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// Per-message delay; `None` means the queue's DelaySeconds.
    pub delay_s: Option<u64>,
    /// The body is the previous message's of the same [`Store::send_to_queues`] call
    /// (`body` is left empty): a fan-out's deliveries of one text, which the log stores
    /// once, need not be copied once per queue first.
    pub body_as_previous: bool,
}

/// A new message's id: a random UUID, lower case and hyphenated as SQS and SNS show it,
/// formatted on the stack and copied once (`to_string` grows a `String` through the
/// formatter: ~300 instructions a message, 2% of a publish to ten queues).
pub fn new_message_id() -> String {
    let mut digits = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut digits).to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub message_id: String,
    pub sequence_number: Option<String>,
    /// The send was a FIFO duplicate within the deduplication interval.
    pub duplicate: bool,
    /// The body's MD5 in hex, for a message sent without one ([`NewMessage::body_md5`]):
    /// the writer's, or computed at once for a FIFO duplicate. `None` for a body given as
    /// the previous one's ([`NewMessage::body_as_previous`]).
    pub body_md5: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ReceiveParams {
    pub max_messages: usize,
    pub visibility_timeout_s: Option<u64>,
    pub attempt_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// As stored at send, when the sender gave one.
    pub body_md5: Option<String>,
    pub attributes: Option<String>,
    pub system_attributes: Option<String>,
    pub sender_id: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub sent_ms: u64,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub sequence_number: Option<String>,
    pub dead_letter_source_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveTask {
    pub handle: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub max_per_second: Option<u32>,
    pub status: String,
    pub moved: u64,
    pub to_move: u64,
    pub started_ms: u64,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("queue does not exist")]
    QueueDoesNotExist,
    /// A Kinesis stream, shard or Firehose delivery stream that is not (or no longer) there.
    #[error("resource does not exist")]
    ResourceNotFound,
    #[error("a queue already exists with the same name and a different value for attribute {0}")]
    QueueAlreadyExists(String),
    #[error("queue deleted recently")]
    QueueDeletedRecently,
    #[error("purge in progress")]
    PurgeInProgress,
    #[error("receipt handle is invalid")]
    ReceiptHandleInvalid,
    #[error("receipt handle has expired")]
    ReceiptHandleExpired,
    #[error("message not in flight")]
    MessageNotInflight,
    #[error("total visibility timeout beyond limit")]
    VisibilityLimitExceeded,
    #[error("move task: {0}")]
    MoveTask(String),
    #[error("no such move task")]
    MoveTaskNotFound,
    /// An update closure refused the change; nothing was written (the caller keeps why).
    #[error("update refused")]
    UpdateRefused,
    #[error("storage failure: {0}")]
    Internal(String),
    /// The database file failed SQLite's checks at start; it is never served.
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    /// The encryption key is malformed or is not the one the data was written with.
    #[error("encryption key: {0}")]
    EncryptionKey(String),
}

/// A result that becomes valid once the write holding it is durable.
pub struct Durable<T> {
    pub(crate) value: T,
    pub(crate) commit: Option<oneshot::Receiver<crate::db::Acknowledged>>,
    /// Takes into `value` what the writer worked out in the committed ops (the digests
    /// of bodies sent without one).
    pub(crate) settle: Option<fn(&mut T, Vec<crate::db::SqlOp>)>,
}

impl<T> Durable<T> {
    pub fn ready(value: T) -> Self {
        Durable { value, commit: None, settle: None }
    }
    pub async fn wait(mut self) -> Result<T, StoreError> {
        if let Some(rx) = self.commit {
            let (committed, ops) = rx.await.map_err(|_| StoreError::Internal("writer stopped".into()))?;
            committed?;
            if let Some(settle) = self.settle {
                settle(&mut self.value, ops);
            }
        }
        Ok(self.value)
    }
}

/// What [`Store::send_to_queues`] answers: each queue's outcome, or why it took none.
pub type PerQueueSends = Vec<Result<SendOutcome, StoreError>>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything SQS needs from storage. Methods are synchronous and never block on
/// disk for writes: they return a [`Durable`] that resolves when the group commit
/// holding the write is fsynced.
pub trait Store: Send + Sync {
    fn create_queue(
        &self,
        key: &QueueKey,
        attributes: Attributes,
        tags: Tags,
    ) -> Result<Durable<(QueueInfo, bool)>, StoreError>;
    fn get_queue(&self, key: &QueueKey) -> Result<QueueInfo, StoreError>;
    fn send_limits(&self, key: &QueueKey) -> Result<SendLimits, StoreError>;
    fn list_queues(&self, account: &str, region: &str, prefix: &str) -> Vec<QueueKey>;
    fn delete_queue(&self, key: &QueueKey) -> Result<Durable<()>, StoreError>;
    /// Replaces the named attributes (others are kept).
    fn set_queue_attributes(&self, key: &QueueKey, attributes: Attributes) -> Result<Durable<()>, StoreError>;
    fn tag_queue(&self, key: &QueueKey, tags: Tags) -> Result<Durable<()>, StoreError>;
    fn untag_queue(&self, key: &QueueKey, keys: &[String]) -> Result<Durable<()>, StoreError>;
    fn purge_queue(&self, key: &QueueKey) -> Result<Durable<()>, StoreError>;
    fn queue_counts(&self, key: &QueueKey) -> Result<QueueCounts, StoreError>;

    fn send_messages(&self, key: &QueueKey, messages: Vec<NewMessage>)
        -> Result<Durable<Vec<SendOutcome>>, StoreError>;
    /// Sends one message to each of several queues in one write (SNS fan-out): one result
    /// per queue, in order; a queue that cannot take its message (gone, say) fails alone,
    /// and the Durable fails if the write does.
    fn send_to_queues(&self, sends: Vec<(&QueueKey, NewMessage)>) -> Result<Durable<PerQueueSends>, StoreError>;
    fn receive_messages(
        &self,
        key: &QueueKey,
        params: &ReceiveParams,
    ) -> Result<Durable<Vec<ReceivedMessage>>, StoreError>;
    fn delete_message(&self, key: &QueueKey, receipt_handle: &str) -> Result<Durable<()>, StoreError>;
    fn change_visibility(
        &self,
        key: &QueueKey,
        receipt_handle: &str,
        timeout_s: u64,
    ) -> Result<Durable<()>, StoreError>;

    /// What a long poll waits on: notified when messages may have become available,
    /// and the time at which a delayed or in-flight message next becomes visible.
    fn wait_signal(&self, key: &QueueKey) -> Result<(Arc<Notify>, Option<u64>), StoreError>;

    /// Queues whose RedrivePolicy names `dlq`.
    fn dead_letter_sources(&self, dlq: &QueueKey) -> Result<Vec<QueueKey>, StoreError>;

    fn start_move_task(
        &self,
        source: &QueueKey,
        destination: Option<&QueueKey>,
        max_per_second: Option<u32>,
    ) -> Result<Durable<String>, StoreError>;
    fn list_move_tasks(&self, source: &QueueKey, max_results: usize) -> Result<Vec<MoveTask>, StoreError>;
    fn cancel_move_task(&self, handle: &str) -> Result<Durable<MoveTask>, StoreError>;
    /// One second's work of every running move task: each moves up to its
    /// MaxNumberOfMessagesPerSecond, or `budget_per_task` when it set none.
    fn run_move_tasks(&self, budget_per_task: u64) -> Result<Durable<u64>, StoreError>;

    /// Deletes messages past their retention period and expired dedup entries.
    fn expire(&self) -> Result<Durable<u64>, StoreError>;
}

/// An SNS topic as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicRecord {
    pub arn: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub attributes: Attributes,
    pub tags: Tags,
    pub created_ms: u64,
}

/// An SNS subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionRecord {
    pub arn: String,
    pub topic_arn: String,
    pub protocol: String,
    pub endpoint: String,
    pub owner: String,
    pub attributes: Attributes,
    pub confirmed: bool,
    pub token: String,
}

/// A delivery waiting for an endpoint outside the process (HTTP, or an outbox protocol).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxEntry {
    /// Assigned by the store.
    #[serde(default)]
    pub id: i64,
    pub subscription_arn: String,
    pub protocol: String,
    pub endpoint: String,
    /// The body to deliver and the headers that go with it.
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub created_ms: u64,
    pub attempts: u32,
    pub next_attempt_ms: u64,
}

/// What SNS needs from storage, beside the queues it delivers to.
pub trait TopicStore: Send + Sync {
    fn put_topic(&self, topic: TopicRecord) -> Result<Durable<()>, StoreError>;
    fn get_topic(&self, arn: &str) -> Option<Arc<TopicRecord>>;
    fn list_topics(&self, account: &str, region: &str) -> Vec<TopicRecord>;
    /// Deletes the topic and its subscriptions.
    fn delete_topic(&self, arn: &str) -> Result<Durable<()>, StoreError>;
    fn put_subscription(&self, subscription: SubscriptionRecord) -> Result<Durable<()>, StoreError>;
    fn get_subscription(&self, arn: &str) -> Option<SubscriptionRecord>;
    /// All subscriptions in an account and region, ordered by ARN.
    fn list_subscriptions(&self, account: &str, region: &str) -> Vec<SubscriptionRecord>;
    fn subscriptions_of(&self, topic_arn: &str) -> Vec<SubscriptionRecord>;
    fn delete_subscription(&self, arn: &str) -> Result<Durable<()>, StoreError>;

    /// FIFO topic publish bookkeeping: the next sequence number, or the earlier
    /// (message id, sequence) when `dedup_id` was seen within the dedup window.
    fn topic_sequence(
        &self,
        topic_arn: &str,
        scope: &str,
        dedup_id: &str,
    ) -> Result<Durable<(String, i64, bool)>, StoreError>;

    fn add_outbox(&self, entries: Vec<OutboxEntry>) -> Result<Durable<Vec<i64>>, StoreError>;
    fn update_outbox(&self, entry: OutboxEntry) -> Result<Durable<()>, StoreError>;
    fn remove_outbox(&self, id: i64) -> Result<Durable<()>, StoreError>;
    /// Every outbox entry.
    fn outbox(&self) -> Vec<OutboxEntry>;

    /// Small SNS resources kept as JSON documents by kind and key: platform
    /// applications and endpoints, SMS settings, sandbox numbers.
    fn put_resource(&self, kind: &str, key: &str, record: serde_json::Value) -> Result<Durable<()>, StoreError>;
    fn get_resource(&self, kind: &str, key: &str) -> Option<serde_json::Value>;
    /// Resources of `kind` whose key starts with `prefix`, ordered by key.
    fn list_resources(&self, kind: &str, prefix: &str) -> Vec<(String, serde_json::Value)>;
    fn delete_resource(&self, kind: &str, key: &str) -> Result<Durable<()>, StoreError>;
}
