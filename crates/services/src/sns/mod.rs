//! Amazon SNS over the Query protocol: topics, subscriptions, filter policies, and
//! delivery to SQS queues in this server, to HTTP endpoints (see `delivery`), and to
//! an outbox for protocols Sluice does not send yet (email, SMS, mobile, Lambda).

pub mod access;
pub mod delivery;
pub mod envelope;
pub mod errors;
pub mod mobile;
pub mod signing;
pub mod types;

use crate::filter::{attribute_values, body_values, FilterPolicy, PolicyIndex, Scope};
use crate::sqs::messages::store_attributes as store_sqs_attributes;
use crate::sqs::types::MessageAttributeValue as SqsAttributeValue;
use crate::RequestContext;
use base64::Engine as _;
use envelope::Envelope;
use errors::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use signing::{PublishSigner, SigningKeys, CERT_PATH};
use sluice_engine::{
    Attributes, Clock, Durable, NewMessage, OutboxEntry, QueueKey, Store, StoreError, SubscriptionRecord, TopicRecord,
    TopicStore,
};
use sluice_wire::query::ModelNaming;
use sluice_wire::{AwsError, Model};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use types::*;

pub const MODEL_JSON: &str = include_str!("../../../wire/models/sns.json");
pub const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// "at most 256 KB in size (262,144 bytes, not 262,144 characters)", attributes included.
const MAX_MESSAGE_BYTES: usize = 262_144;
/// PublishBatch takes at most 10 entries.
const MAX_BATCH_ENTRIES: usize = 10;
/// Subjects are 1–100 printable ASCII characters.
const MAX_SUBJECT_LEN: usize = 100;
/// Topic names are 1–256 characters.
const MAX_TOPIC_NAME_LEN: usize = 256;
/// "100,000 topics per account" (SNS quotas).
const MAX_TOPICS_PER_ACCOUNT: usize = 100_000;
/// Tags per resource.
const MAX_TAGS: usize = 50;
/// Pages of every SNS List operation (topics, subscriptions, platform applications and
/// endpoints, phone numbers).
const PAGE_SIZE: usize = 100;
/// SenderId of messages SNS puts into SQS (the SNS service principal's id on AWS).
const SNS_SENDER_ID: &str = "AIDAIT2UOQQY3AUEKVGXU";

const PROTOCOLS: &[&str] = &["http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose"];
/// Protocols whose messages wait in the outbox for a test to read.
pub const OUTBOX_PROTOCOLS: &[&str] = &["email", "email-json", "sms", "application", "lambda", "firehose"];
const TOPIC_ATTRIBUTES: &[&str] = &[
    "DeliveryPolicy",
    "DisplayName",
    "Policy",
    "TracingConfig",
    "KmsMasterKeyId",
    "SignatureVersion",
    "FifoTopic",
    "ContentBasedDeduplication",
    "ArchivePolicy",
    "FifoThroughputScope",
];
const FIFO_TOPIC_ATTRIBUTES: &[&str] = &["ContentBasedDeduplication", "ArchivePolicy", "FifoThroughputScope"];
const SUBSCRIPTION_ATTRIBUTES: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

/// AWS's EffectiveDeliveryPolicy for HTTP/S when none is set.
pub const DEFAULT_DELIVERY_POLICY: &str = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;

pub struct SnsService {
    topics: Arc<dyn TopicStore>,
    queues: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    model: Model,
    keys: Arc<SigningKeys>,
    /// Wakes the HTTP delivery worker when the outbox grows.
    pub outbox_changed: Arc<Notify>,
    /// Delivery streams for `firehose` subscriptions, when Firehose is served.
    firehose: Option<Arc<crate::firehose::FirehoseService>>,
    /// Per topic, its confirmed subscriptions and their filter policies, indexed;
    /// rebuilt when `generation` moves (any subscription change).
    indexes: Mutex<HashMap<String, Arc<TopicIndex>>>,
    generation: AtomicU64,
}

struct TopicIndex {
    generation: u64,
    subscriptions: Vec<SubscriptionRecord>,
    /// Each subscription's queue, for SQS subscriptions whose endpoint is a queue ARN:
    /// parsed once here, not at every publish.
    queues: Vec<Option<QueueKey>>,
    policies: PolicyIndex,
}

fn parse<T: DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(invalid_parameter)
}

fn require<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, AwsError> {
    value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| missing_parameter(name))
}

/// `arn:aws:sns:<region>:<account>:<name>` → (region, account, name).
fn split_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut p = arn.splitn(6, ':');
    if p.next()? != "arn" {
        return None;
    }
    p.next()?;
    if p.next()? != "sns" {
        return None;
    }
    let region = p.next()?;
    let account = p.next()?;
    let name = p.next()?;
    (!region.is_empty() && !account.is_empty() && !name.is_empty()).then_some((region, account, name))
}

fn is_true(attrs: &Attributes, name: &str) -> bool {
    attrs.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

pub(crate) fn page<T: Clone>(items: &[T], token: &Option<String>) -> Result<(Vec<T>, Option<String>), AwsError> {
    let start = match token {
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| invalid_parameter("NextToken"))?,
        None => 0,
    };
    let end = (start + PAGE_SIZE).min(items.len());
    let slice = items.get(start..end).map(<[T]>::to_vec).unwrap_or_default();
    let next = (end < items.len()).then(|| base64::engine::general_purpose::STANDARD.encode(end.to_string()));
    Ok((slice, next))
}

/// One message as published, after validation.
struct Outgoing {
    message: String,
    /// MessageStructure=json: the per-protocol messages.
    per_protocol: Option<Map<String, Value>>,
    subject: Option<String>,
    attributes: MessageAttributeMap,
    group_id: Option<String>,
    dedup_id: Option<String>,
}

impl SnsService {
    pub fn new(
        topics: Arc<dyn TopicStore>,
        queues: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: Arc<SigningKeys>,
    ) -> Self {
        let model = Model::from_json(MODEL_JSON).expect("embedded SNS model is valid");
        SnsService {
            topics,
            queues,
            clock,
            model,
            keys,
            outbox_changed: Arc::new(Notify::new()),
            indexes: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            firehose: None,
        }
    }

    /// Delivers `firehose` subscriptions into this server's delivery streams.
    pub fn with_firehose(mut self, firehose: Arc<crate::firehose::FirehoseService>) -> Self {
        self.firehose = Some(firehose);
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn naming() -> &'static ModelNaming {
        &ModelNaming
    }

    pub fn signing_keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn topic_store(&self) -> &Arc<dyn TopicStore> {
        &self.topics
    }

    pub fn queue_store(&self) -> &Arc<dyn Store> {
        &self.queues
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn decode_query(&self, action: &str, params: &[(String, String)]) -> Result<Value, AwsError> {
        let op = self.model.operations.get(action).ok_or_else(|| unknown_action(action))?;
        let Some(shape) = &op.input else { return Ok(json!({})) };
        sluice_wire::query::decode(&self.model, &ModelNaming, shape, params).map_err(|e| match e {
            sluice_wire::query::QueryDecodeError::InvalidValue { param, .. } => invalid_parameter(param),
        })
    }

    pub async fn handle(&self, ctx: &RequestContext, action: &str, input: Value) -> Result<Value, AwsError> {
        let op = self.model.operations.get(action).ok_or_else(|| unknown_action(action))?;
        if let Some(shape) = &op.input {
            if let Some(missing) = sluice_wire::query::first_missing_required(&self.model, shape, &input) {
                return Err(missing_parameter(&missing));
            }
        }
        if let Some(caller) = &ctx.caller {
            self.authorize(ctx, caller, action, &input)?;
        }
        match action {
            "CreateTopic" => self.create_topic(ctx, parse(input)?).await,
            "DeleteTopic" => self.delete_topic(parse(input)?).await,
            "ListTopics" => self.list_topics(ctx, parse(input)?),
            "GetTopicAttributes" => self.get_topic_attributes(parse(input)?),
            "SetTopicAttributes" => self.set_topic_attributes(parse(input)?).await,
            "Subscribe" => self.subscribe(ctx, parse(input)?).await,
            "ConfirmSubscription" => self.confirm_subscription(parse(input)?).await,
            "Unsubscribe" => self.unsubscribe(ctx, parse(input)?).await,
            "ListSubscriptions" => self.list_subscriptions(ctx, parse(input)?),
            "ListSubscriptionsByTopic" => self.list_subscriptions_by_topic(parse(input)?),
            "GetSubscriptionAttributes" => self.get_subscription_attributes(parse(input)?),
            "SetSubscriptionAttributes" => self.set_subscription_attributes(parse(input)?).await,
            "Publish" => self.publish(ctx, parse(input)?).await,
            "PublishBatch" => self.publish_batch(ctx, parse(input)?).await,
            "TagResource" => self.tag_resource(parse(input)?).await,
            "UntagResource" => self.untag_resource(parse(input)?).await,
            "ListTagsForResource" => self.list_tags(parse(input)?),
            "AddPermission" => self.add_permission(parse(input)?).await,
            "RemovePermission" => self.remove_permission(parse(input)?).await,
            "GetDataProtectionPolicy" => self.get_data_protection_policy(parse(input)?),
            "PutDataProtectionPolicy" => self.put_data_protection_policy(parse(input)?).await,
            other => match self.handle_mobile(ctx, other, input).await {
                Some(result) => result,
                None => Err(not_supported(other)),
            },
        }
    }

    fn topic(&self, arn: &Option<String>) -> Result<Arc<TopicRecord>, AwsError> {
        let arn = require(arn, "TopicArn")?;
        if split_arn(arn).is_none() {
            return Err(invalid_parameter("TopicArn"));
        }
        self.topics.get_topic(arn).ok_or_else(topic_not_found)
    }

    /// Waits for a topic or subscription write, and invalidates the delivery indexes.
    async fn wait(&self, d: Result<Durable<()>, StoreError>) -> Result<(), AwsError> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        d.map_err(from_store)?.wait().await.map_err(from_store)
    }

    fn topic_index(&self, topic_arn: &str) -> Arc<TopicIndex> {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut cache = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = cache.get(topic_arn).filter(|i| i.generation == generation) {
            return index.clone();
        }
        let subscriptions: Vec<SubscriptionRecord> =
            self.topics.subscriptions_of(topic_arn).into_iter().filter(|s| s.confirmed).collect();
        let policies = subscriptions.iter().map(Self::compile_policy).collect();
        let queues = subscriptions
            .iter()
            .map(|s| if s.protocol == "sqs" { QueueKey::from_arn(&s.endpoint) } else { None })
            .collect();
        let index = Arc::new(TopicIndex { generation, subscriptions, queues, policies: PolicyIndex::build(policies) });
        cache.insert(topic_arn.to_owned(), index.clone());
        index
    }

    // ---- topics ----

    fn validate_topic_attribute(name: &str, value: &str, fifo: bool, creating: bool) -> Result<String, AwsError> {
        if !TOPIC_ATTRIBUTES.contains(&name) {
            return Err(invalid_parameter("AttributeName"));
        }
        if FIFO_TOPIC_ATTRIBUTES.contains(&name) && !fifo {
            return Err(invalid_parameter(format!("Attributes Reason: {name} is only valid for FIFO topics")));
        }
        let bad = || invalid_parameter(format!("Attributes Reason: Invalid value [{value}] for {name}"));
        Ok(match name {
            "FifoTopic" => {
                if !creating {
                    return Err(invalid_parameter("AttributeName"));
                }
                value.to_ascii_lowercase()
            }
            "ContentBasedDeduplication" => match value.to_ascii_lowercase().as_str() {
                v @ ("true" | "false") => v.to_owned(),
                _ => return Err(bad()),
            },
            "SignatureVersion" => match value {
                "1" | "2" => value.to_owned(),
                _ => return Err(bad()),
            },
            "TracingConfig" => match value {
                "PassThrough" | "Active" => value.to_owned(),
                _ => return Err(bad()),
            },
            "FifoThroughputScope" => match value {
                "Topic" | "MessageGroup" => value.to_owned(),
                _ => return Err(bad()),
            },
            "Policy" => {
                if !value.is_empty() {
                    crate::iam::Policy::parse_resource_policy(value)
                        .map_err(|e| invalid_parameter(format!("Policy Error: {e}")))?;
                }
                value.to_owned()
            }
            "DeliveryPolicy" | "ArchivePolicy" => {
                if !value.is_empty() && serde_json::from_str::<Value>(value).is_err() {
                    return Err(invalid_parameter(format!("Attributes Reason: {name}: failed to parse JSON")));
                }
                value.to_owned()
            }
            _ => value.to_owned(),
        })
    }

    async fn create_topic(&self, ctx: &RequestContext, req: CreateTopicRequest) -> Result<Value, AwsError> {
        let name = require(&req.name, "Name")?;
        let fifo = req.attributes.get("FifoTopic").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let base = if fifo { name.strip_suffix(".fifo") } else { Some(name) };
        let valid = base.is_some_and(|b| {
            !b.is_empty()
                && name.len() <= MAX_TOPIC_NAME_LEN
                && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
        if !valid {
            return Err(invalid_parameter(if fifo || name.ends_with(".fifo") {
                "Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long."
            } else {
                "Topic Name"
            }));
        }
        let mut attributes = Attributes::new();
        for (k, v) in &req.attributes {
            attributes.insert(k.clone(), Self::validate_topic_attribute(k, v, fifo, true)?);
        }
        if !fifo {
            attributes.remove("FifoTopic");
        }
        if req.tags.len() > MAX_TAGS {
            return Err(tag_limit_exceeded());
        }
        let arn = format!("arn:aws:sns:{}:{}:{}", ctx.region(), ctx.account(), name);
        if let Some(existing) = self.topics.get_topic(&arn) {
            let same = attributes.iter().all(|(k, v)| existing.attributes.get(k) == Some(v));
            if !same {
                return Err(invalid_parameter("Attributes Reason: Topic already exists with different attributes"));
            }
            return Ok(json!({"TopicArn": arn}));
        }
        if self.topics.list_topics(ctx.account(), ctx.region()).len() >= MAX_TOPICS_PER_ACCOUNT {
            return Err(AwsError::new(
                403,
                "TopicLimitExceededException",
                "TopicLimitExceeded",
                "Topic limit exceeded",
            ));
        }
        if let Some(p) = &req.data_protection_policy {
            attributes.insert("DataProtectionPolicy".into(), p.clone());
        }
        let topic = TopicRecord {
            arn: arn.clone(),
            account: ctx.account().to_owned(),
            region: ctx.region().to_owned(),
            name: name.to_owned(),
            attributes,
            tags: req.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
            created_ms: self.clock.now_ms(),
        };
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({"TopicArn": arn}))
    }

    async fn delete_topic(&self, req: TopicArnRequest) -> Result<Value, AwsError> {
        let arn = require(&req.topic_arn, "TopicArn")?;
        if split_arn(arn).is_none() {
            return Err(invalid_parameter("TopicArn"));
        }
        // Deleting a topic that does not exist succeeds, as on AWS.
        if self.topics.get_topic(arn).is_some() {
            self.wait(self.topics.delete_topic(arn)).await?;
        }
        Ok(json!({}))
    }

    fn list_topics(&self, ctx: &RequestContext, req: NextTokenRequest) -> Result<Value, AwsError> {
        let all: Vec<Value> = self
            .topics
            .list_topics(ctx.account(), ctx.region())
            .into_iter()
            .map(|t| json!({"TopicArn": t.arn}))
            .collect();
        let (items, next) = page(&all, &req.next_token)?;
        let mut out = json!({"Topics": items});
        if let Some(n) = next {
            out["NextToken"] = n.into();
        }
        Ok(out)
    }

    fn default_policy(topic: &TopicRecord) -> String {
        json!({
            "Version": "2008-10-17",
            "Id": "__default_policy_ID",
            "Statement": [{
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission", "SNS:RemovePermission",
                    "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"],
                "Resource": topic.arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": topic.account}}
            }]
        })
        .to_string()
    }

    fn get_topic_attributes(&self, req: TopicArnRequest) -> Result<Value, AwsError> {
        let topic = self.topic(&req.topic_arn)?;
        let subs = self.topics.subscriptions_of(&topic.arn);
        let mut a: BTreeMap<String, String> = topic.attributes.clone();
        a.remove("DataProtectionPolicy");
        a.insert("TopicArn".into(), topic.arn.clone());
        a.insert("Owner".into(), topic.account.clone());
        a.entry("Policy".into()).or_insert_with(|| Self::default_policy(&topic));
        a.entry("DisplayName".into()).or_default();
        a.insert("SubscriptionsConfirmed".into(), subs.iter().filter(|s| s.confirmed).count().to_string());
        a.insert("SubscriptionsPending".into(), subs.iter().filter(|s| !s.confirmed).count().to_string());
        a.insert("SubscriptionsDeleted".into(), "0".into());
        a.insert(
            "EffectiveDeliveryPolicy".into(),
            topic.attributes.get("DeliveryPolicy").cloned().unwrap_or_else(|| DEFAULT_DELIVERY_POLICY.into()),
        );
        Ok(json!({"Attributes": a}))
    }

    async fn set_topic_attributes(&self, req: SetTopicAttributesRequest) -> Result<Value, AwsError> {
        let mut topic = Arc::unwrap_or_clone(self.topic(&req.topic_arn)?);
        let name = require(&req.attribute_name, "AttributeName")?;
        let fifo = is_true(&topic.attributes, "FifoTopic");
        let value = Self::validate_topic_attribute(name, req.attribute_value.as_deref().unwrap_or(""), fifo, false)?;
        topic.attributes.insert(name.to_owned(), value);
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({}))
    }

    // ---- subscriptions ----

    fn validate_subscription_attribute(name: &str, value: &str, protocol: &str) -> Result<String, AwsError> {
        if !SUBSCRIPTION_ATTRIBUTES.contains(&name) {
            return Err(invalid_parameter("AttributeName"));
        }
        match name {
            "RawMessageDelivery" => {
                if !matches!(protocol, "sqs" | "http" | "https" | "firehose") {
                    return Err(invalid_parameter(format!(
                        "Delivery protocol [{protocol}] does not support raw message delivery."
                    )));
                }
                match value.to_ascii_lowercase().as_str() {
                    v @ ("true" | "false") => Ok(v.to_owned()),
                    _ => Err(invalid_parameter("Attributes Reason: RawMessageDelivery: Invalid value")),
                }
            }
            "FilterPolicyScope" => match value {
                "MessageAttributes" | "MessageBody" => Ok(value.to_owned()),
                _ => Err(invalid_parameter(
                    "Attributes Reason: FilterPolicyScope: Invalid filter policy scope, please specify either MessageAttributes or MessageBody",
                )),
            },
            "RedrivePolicy" => {
                if value.is_empty() {
                    return Ok(String::new());
                }
                let v: Value = serde_json::from_str(value)
                    .map_err(|_| invalid_parameter("RedrivePolicy: Redrive policy is not a valid JSON map"))?;
                let arn = v.get("deadLetterTargetArn").and_then(Value::as_str).unwrap_or("");
                if QueueKey::from_arn(arn).is_none() {
                    return Err(invalid_parameter("RedrivePolicy: deadLetterTargetArn is an invalid arn"));
                }
                Ok(value.to_owned())
            }
            "DeliveryPolicy" | "ReplayPolicy" | "FilterPolicy" => {
                if !value.is_empty() && serde_json::from_str::<Value>(value).is_err() {
                    return Err(invalid_parameter(format!("{name}: failed to parse JSON")));
                }
                Ok(value.to_owned())
            }
            _ => Ok(value.to_owned()),
        }
    }

    /// Validates the FilterPolicy against its scope; `prefix` is how AWS introduces the reason.
    fn check_filter_policy(attrs: &Attributes, prefix: &str) -> Result<(), AwsError> {
        let Some(policy) = attrs.get("FilterPolicy").filter(|p| !p.is_empty()) else { return Ok(()) };
        let scope = match attrs.get("FilterPolicyScope").map(String::as_str) {
            Some("MessageBody") => Scope::MessageBody,
            _ => Scope::MessageAttributes,
        };
        FilterPolicy::parse(policy, scope)
            .map(|_| ())
            .map_err(|e| invalid_parameter(format!("{prefix}FilterPolicy: {e}")))
    }

    async fn subscribe(&self, ctx: &RequestContext, req: SubscribeRequest) -> Result<Value, AwsError> {
        let topic = self.topic(&req.topic_arn)?;
        let protocol = require(&req.protocol, "Protocol")?.to_ascii_lowercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(invalid_parameter(format!("Amazon SNS does not support this protocol string: {protocol}")));
        }
        let endpoint = req.endpoint.clone().unwrap_or_default();
        let fifo_topic = is_true(&topic.attributes, "FifoTopic");
        let endpoint_ok = match protocol.as_str() {
            "http" => endpoint.starts_with("http://"),
            "https" => endpoint.starts_with("https://"),
            "email" | "email-json" => endpoint.contains('@'),
            "sqs" => QueueKey::from_arn(&endpoint).is_some(),
            "sms" => !endpoint.is_empty(),
            _ => endpoint.starts_with("arn:"),
        };
        if !endpoint_ok {
            return Err(invalid_parameter("Endpoint"));
        }
        if fifo_topic && protocol != "sqs" {
            return Err(invalid_parameter(format!("Invalid protocol type: {protocol}")));
        }
        if protocol == "sqs" && !fifo_topic && endpoint.ends_with(".fifo") {
            return Err(invalid_parameter(
                "Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics",
            ));
        }
        let mut attributes = Attributes::new();
        for (k, v) in &req.attributes {
            attributes.insert(k.clone(), Self::validate_subscription_attribute(k, v, &protocol)?);
        }
        Self::check_filter_policy(&attributes, "Attributes Reason: ")?;
        if let Some(existing) = self
            .topics
            .subscriptions_of(&topic.arn)
            .into_iter()
            .find(|s| s.protocol == protocol && s.endpoint == endpoint)
        {
            if existing.attributes != attributes && !attributes.is_empty() {
                return Err(invalid_parameter(
                    "Attributes Reason: Subscription already exists with different attributes",
                ));
            }
            let arn = if existing.confirmed || req.return_subscription_arn {
                existing.arn
            } else {
                "pending confirmation".into()
            };
            return Ok(json!({"SubscriptionArn": arn}));
        }
        // SQS, Lambda, SMS, mobile and Firehose subscriptions need no confirmation.
        let confirmed = !matches!(protocol.as_str(), "http" | "https" | "email" | "email-json");
        let sub = SubscriptionRecord {
            arn: format!("{}:{}", topic.arn, uuid::Uuid::new_v4()),
            topic_arn: topic.arn.clone(),
            protocol: protocol.clone(),
            endpoint: endpoint.clone(),
            owner: ctx.account().to_owned(),
            attributes,
            confirmed,
            token: hex::encode(Sha256::digest(uuid::Uuid::new_v4().as_bytes())),
        };
        self.wait(self.topics.put_subscription(sub.clone())).await?;
        if !confirmed {
            self.send_control(ctx, &topic, &sub, "SubscriptionConfirmation").await?;
        }
        let arn = if confirmed || req.return_subscription_arn { sub.arn } else { "pending confirmation".into() };
        Ok(json!({"SubscriptionArn": arn}))
    }

    fn base_url(ctx: &RequestContext) -> String {
        format!("{}://{}", ctx.scheme, ctx.host())
    }

    /// Sends a SubscriptionConfirmation or UnsubscribeConfirmation to the endpoint.
    async fn send_control(
        &self,
        ctx: &RequestContext,
        topic: &TopicRecord,
        sub: &SubscriptionRecord,
        kind: &'static str,
    ) -> Result<(), AwsError> {
        let base = Self::base_url(ctx);
        let subscribe_url =
            format!("{base}/?Action=ConfirmSubscription&TopicArn={}&Token={}", form_encode(&topic.arn), sub.token);
        let message = if kind == "SubscriptionConfirmation" {
            format!(
                "You have chosen to subscribe to the topic {}.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
                topic.arn
            )
        } else {
            format!(
                "You have chosen to deactivate subscription {}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.",
                sub.arn
            )
        };
        let envelope = Envelope {
            kind,
            message_id: sluice_engine::new_message_id(),
            topic_arn: topic.arn.clone(),
            subject: None,
            message,
            timestamp_ms: self.clock.now_ms(),
            sequence_number: None,
            token: Some(sub.token.clone()),
            subscribe_url: Some(subscribe_url),
            unsubscribe_url: None,
            message_attributes: Map::new(),
        };
        let version = topic.attributes.get("SignatureVersion").map(String::as_str).unwrap_or("1");
        let signature = self.keys.sign(version, &envelope.string_to_sign()).map_err(internal)?;
        let body = envelope.to_json(&signature, version, &format!("{base}{CERT_PATH}"));
        let entry = self.outbox_entry(sub, kind, &envelope.message_id, &topic.arn, body, false);
        let d = self.topics.add_outbox(vec![entry]).map_err(from_store)?;
        d.wait().await.map_err(from_store)?;
        self.outbox_changed.notify_one();
        Ok(())
    }

    fn outbox_entry(
        &self,
        sub: &SubscriptionRecord,
        kind: &str,
        message_id: &str,
        topic_arn: &str,
        body: String,
        raw: bool,
    ) -> OutboxEntry {
        let mut headers = vec![
            ("x-amz-sns-message-type".to_string(), kind.to_string()),
            ("x-amz-sns-message-id".to_string(), message_id.to_string()),
            ("x-amz-sns-topic-arn".to_string(), topic_arn.to_string()),
            ("Content-Type".to_string(), "text/plain; charset=UTF-8".to_string()),
            ("User-Agent".to_string(), "Amazon Simple Notification Service Agent".to_string()),
        ];
        if kind == "Notification" {
            headers.push(("x-amz-sns-subscription-arn".to_string(), sub.arn.clone()));
        }
        if raw {
            headers.push(("x-amz-sns-rawdelivery".to_string(), "true".to_string()));
        }
        let now = self.clock.now_ms();
        OutboxEntry {
            id: 0,
            subscription_arn: sub.arn.clone(),
            protocol: sub.protocol.clone(),
            endpoint: sub.endpoint.clone(),
            body,
            headers,
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
        }
    }

    async fn confirm_subscription(&self, req: ConfirmSubscriptionRequest) -> Result<Value, AwsError> {
        let topic = self.topic(&req.topic_arn)?;
        let token = require(&req.token, "Token")?;
        let mut sub = self
            .topics
            .subscriptions_of(&topic.arn)
            .into_iter()
            .find(|s| s.token == token)
            .ok_or_else(|| invalid_parameter("Invalid token"))?;
        if !sub.confirmed {
            sub.confirmed = true;
            self.wait(self.topics.put_subscription(sub.clone())).await?;
        }
        Ok(json!({"SubscriptionArn": sub.arn}))
    }

    async fn unsubscribe(&self, ctx: &RequestContext, req: SubscriptionArnRequest) -> Result<Value, AwsError> {
        let arn = require(&req.subscription_arn, "SubscriptionArn")?;
        let sub = self.topics.get_subscription(arn).ok_or_else(subscription_not_found)?;
        self.wait(self.topics.delete_subscription(arn)).await?;
        // HTTP/S endpoints are told, with a token that can subscribe them again.
        if let (true, Some(topic)) = (sub.protocol.starts_with("http"), self.topics.get_topic(&sub.topic_arn)) {
            self.send_control(ctx, &topic, &sub, "UnsubscribeConfirmation").await?;
        }
        Ok(json!({}))
    }

    fn subscription_json(s: &SubscriptionRecord) -> Value {
        json!({
            "SubscriptionArn": if s.confirmed { s.arn.clone() } else { "PendingConfirmation".into() },
            "Owner": s.owner,
            "Protocol": s.protocol,
            "Endpoint": s.endpoint,
            "TopicArn": s.topic_arn,
        })
    }

    fn list_subscriptions(&self, ctx: &RequestContext, req: NextTokenRequest) -> Result<Value, AwsError> {
        let all: Vec<Value> =
            self.topics.list_subscriptions(ctx.account(), ctx.region()).iter().map(Self::subscription_json).collect();
        let (items, next) = page(&all, &req.next_token)?;
        let mut out = json!({"Subscriptions": items});
        if let Some(n) = next {
            out["NextToken"] = n.into();
        }
        Ok(out)
    }

    fn list_subscriptions_by_topic(&self, req: NextTokenRequest) -> Result<Value, AwsError> {
        let topic = self.topic(&req.topic_arn)?;
        let all: Vec<Value> = self.topics.subscriptions_of(&topic.arn).iter().map(Self::subscription_json).collect();
        let (items, next) = page(&all, &req.next_token)?;
        let mut out = json!({"Subscriptions": items});
        if let Some(n) = next {
            out["NextToken"] = n.into();
        }
        Ok(out)
    }

    fn get_subscription_attributes(&self, req: SubscriptionArnRequest) -> Result<Value, AwsError> {
        let arn = require(&req.subscription_arn, "SubscriptionArn")?;
        let s = self.topics.get_subscription(arn).ok_or_else(subscription_not_found)?;
        let mut a: BTreeMap<String, String> = s.attributes.clone();
        a.retain(|_, v| !v.is_empty());
        a.insert("SubscriptionArn".into(), s.arn.clone());
        a.insert("TopicArn".into(), s.topic_arn.clone());
        a.insert("Owner".into(), s.owner.clone());
        a.insert("Protocol".into(), s.protocol.clone());
        a.insert("Endpoint".into(), s.endpoint.clone());
        a.insert("PendingConfirmation".into(), (!s.confirmed).to_string());
        a.insert("ConfirmationWasAuthenticated".into(), s.confirmed.to_string());
        a.entry("RawMessageDelivery".into()).or_insert_with(|| "false".into());
        if s.protocol.starts_with("http") {
            let effective = s.attributes.get("DeliveryPolicy").cloned().unwrap_or_else(|| {
                let topic = self.topics.get_topic(&s.topic_arn);
                topic
                    .and_then(|t| t.attributes.get("DeliveryPolicy").cloned())
                    .unwrap_or_else(|| DEFAULT_DELIVERY_POLICY.into())
            });
            a.insert("EffectiveDeliveryPolicy".into(), effective);
        }
        Ok(json!({"Attributes": a}))
    }

    async fn set_subscription_attributes(&self, req: SetSubscriptionAttributesRequest) -> Result<Value, AwsError> {
        let arn = require(&req.subscription_arn, "SubscriptionArn")?;
        let mut s = self.topics.get_subscription(arn).ok_or_else(subscription_not_found)?;
        let name = require(&req.attribute_name, "AttributeName")?;
        let value =
            Self::validate_subscription_attribute(name, req.attribute_value.as_deref().unwrap_or(""), &s.protocol)?;
        s.attributes.insert(name.to_owned(), value);
        Self::check_filter_policy(&s.attributes, "")?;
        self.wait(self.topics.put_subscription(s)).await?;
        Ok(json!({}))
    }

    // ---- publishing ----

    fn validate_outgoing(&self, topic: &TopicRecord, entry: &PublishBatchEntry) -> Result<Outgoing, AwsError> {
        let PublishBatchEntry {
            message,
            subject,
            message_structure: structure,
            message_attributes: attributes,
            message_group_id: group_id,
            message_deduplication_id: dedup_id,
            ..
        } = entry;
        let message = message.clone().unwrap_or_default();
        if message.is_empty() {
            return Err(invalid_parameter("Empty message"));
        }
        if let Some(s) = subject {
            let ok = !s.is_empty()
                && s.chars().count() <= MAX_SUBJECT_LEN
                && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
            if !ok {
                return Err(invalid_parameter("Subject"));
            }
        }
        let mut size = message.len();
        for (name, v) in attributes {
            let data_type = v.data_type.as_deref().unwrap_or("");
            let base = data_type.split('.').next().unwrap_or("");
            if !matches!(base, "String" | "Number" | "Binary") {
                return Err(invalid_parameter_value(format!(
                    "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
                )));
            }
            let value_len = if base == "Binary" {
                v.binary_value.as_ref().map(String::len).unwrap_or(0)
            } else {
                v.string_value.as_ref().map(String::len).unwrap_or(0)
            };
            if value_len == 0 {
                return Err(invalid_parameter_value(format!(
                    "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{data_type}'."
                )));
            }
            if data_type == "String.Array"
                && !matches!(
                    serde_json::from_str::<Value>(v.string_value.as_deref().unwrap_or("")),
                    Ok(Value::Array(_))
                )
            {
                return Err(invalid_parameter_value(format!(
                    "The message attribute '{name}' with type 'String.Array' has to be a valid JSON array."
                )));
            }
            size += name.len() + data_type.len() + value_len;
        }
        if size > MAX_MESSAGE_BYTES {
            return Err(invalid_parameter("Message too long"));
        }
        let per_protocol = match structure.as_deref() {
            Some("json") => {
                let parsed: Value = serde_json::from_str(&message)
                    .map_err(|_| invalid_parameter("Message Structure - JSON message body failed to parse"))?;
                let obj = parsed
                    .as_object()
                    .cloned()
                    .ok_or_else(|| invalid_parameter("Message Structure - JSON message body failed to parse"))?;
                if !obj.get("default").is_some_and(Value::is_string) {
                    return Err(invalid_parameter("Message Structure - No default entry in JSON message body"));
                }
                Some(obj)
            }
            Some(other) => return Err(invalid_parameter(format!("MessageStructure: invalid value {other}"))),
            None => None,
        };
        let fifo = is_true(&topic.attributes, "FifoTopic");
        let dedup = match (fifo, dedup_id) {
            (true, Some(d)) => Some(d.clone()),
            (true, None) => {
                if is_true(&topic.attributes, "ContentBasedDeduplication") {
                    Some(hex::encode(Sha256::digest(message.as_bytes())))
                } else {
                    return Err(invalid_parameter(
                        "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                    ));
                }
            }
            (false, Some(_)) => {
                return Err(invalid_parameter(
                    "MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
                ))
            }
            (false, None) => None,
        };
        for (name, v) in [("MessageGroupId", group_id), ("MessageDeduplicationId", &dedup)] {
            if let Some(v) = v {
                let ok = !v.is_empty()
                    && v.len() <= 128
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation());
                if !ok {
                    return Err(invalid_parameter(format!("{name} Reason: {name} can only include alphanumeric and punctuation characters. 1 to 128 in length.")));
                }
            }
        }
        if fifo && group_id.is_none() {
            return Err(invalid_parameter("The MessageGroupId parameter is required for FIFO topics"));
        }
        Ok(Outgoing {
            message,
            per_protocol,
            subject: subject.clone(),
            attributes: attributes.clone(),
            group_id: group_id.clone(),
            dedup_id: dedup,
        })
    }

    async fn publish(&self, ctx: &RequestContext, req: PublishRequest) -> Result<Value, AwsError> {
        if let Some(phone) = &req.phone_number {
            return self.publish_to_outbox(ctx, "sms", phone, &req).await;
        }
        let arn = req.topic_arn.clone().or(req.target_arn.clone());
        if let Some(target) = req.target_arn.as_deref().filter(|t| t.contains(":endpoint/")) {
            let endpoint = self.endpoint_resource(target)?;
            let enabled = endpoint.pointer("/attributes/Enabled").and_then(Value::as_str) != Some("false");
            if !enabled {
                return Err(AwsError::new(
                    400,
                    "EndpointDisabledException",
                    "EndpointDisabled",
                    "Endpoint is disabled",
                ));
            }
            return self.publish_to_outbox(ctx, "application", target, &req).await;
        }
        let topic = self.topic(&arn)?;
        let out = self.validate_outgoing(&topic, &PublishBatchEntry::from(&req))?;
        let (message_id, sequence) = self.publish_one(ctx, &topic, out).await?;
        let mut result = json!({"MessageId": message_id});
        if let Some(s) = sequence {
            result["SequenceNumber"] = s.into();
        }
        Ok(result)
    }

    /// Direct publishes to a phone number or a mobile endpoint: kept in the outbox.
    async fn publish_to_outbox(
        &self,
        ctx: &RequestContext,
        protocol: &str,
        endpoint: &str,
        req: &PublishRequest,
    ) -> Result<Value, AwsError> {
        let message = require(&req.message, "Message")?;
        let message_id = sluice_engine::new_message_id();
        let sub = SubscriptionRecord {
            arn: String::new(),
            topic_arn: String::new(),
            protocol: protocol.into(),
            endpoint: endpoint.into(),
            owner: ctx.account().to_owned(),
            attributes: Attributes::new(),
            confirmed: true,
            token: String::new(),
        };
        let entry = self.outbox_entry(&sub, "Notification", &message_id, "", message.to_owned(), true);
        self.topics.add_outbox(vec![entry]).map_err(from_store)?.wait().await.map_err(from_store)?;
        Ok(json!({"MessageId": message_id}))
    }

    /// Delivers one validated message to every matching subscription; answers once
    /// every delivery is durable (in its queue, or in the outbox).
    async fn publish_one(
        &self,
        ctx: &RequestContext,
        topic: &TopicRecord,
        out: Outgoing,
    ) -> Result<(String, Option<String>), AwsError> {
        let fifo = is_true(&topic.attributes, "FifoTopic");
        let (message_id, sequence) = if fifo {
            let scope = if topic.attributes.get("FifoThroughputScope").is_some_and(|s| s == "MessageGroup") {
                out.group_id.clone().unwrap_or_default()
            } else {
                String::new()
            };
            let dedup = out.dedup_id.clone().unwrap_or_default();
            let (id, seq, duplicate) = self
                .topics
                .topic_sequence(&topic.arn, &scope, &dedup)
                .map_err(from_store)?
                .wait()
                .await
                .map_err(from_store)?;
            let seq = sluice_engine::topics::topic_sequence_number(seq);
            if duplicate {
                return Ok((id, Some(seq)));
            }
            (id, Some(seq))
        } else {
            (sluice_engine::new_message_id(), None)
        };
        let now = self.clock.now_ms();
        let base = Self::base_url(ctx);
        // Every SQS delivery of the publish goes in one write, answered by one wake-up:
        // the subscriptions and, in the same order, their queues and messages.
        let mut sqs_subscriptions: Vec<&str> = Vec::new();
        let mut sqs_sends: Vec<(&QueueKey, NewMessage)> = Vec::new();
        let mut firehose_pending: Vec<Durable<Vec<i64>>> = Vec::new();
        let mut outbox = Vec::new();
        let attr_values = attribute_values(
            out.attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.data_type.as_deref().unwrap_or(""), v.string_value.as_deref())),
        );
        let body_values = body_values(&out.message);
        let index = self.topic_index(&topic.arn);
        let mut signer = PublishSigner::new(&self.keys);
        // The text of the last raw SQS delivery queued: a raw delivery of the same text
        // gives its body as that one's, not as another copy.
        let mut last_raw_sqs_text: Option<&str> = None;
        for i in index.policies.matching(&attr_values, body_values.as_ref()) {
            let sub = &index.subscriptions[i];
            let source = out
                .per_protocol
                .as_ref()
                .and_then(|m| m.get(&sub.protocol).or_else(|| m.get("default")))
                .and_then(Value::as_str)
                .unwrap_or(&out.message);
            let raw = is_true(&sub.attributes, "RawMessageDelivery");
            // Most often the very same text (the publish's message): the same address
            // first, rather than comparing a kilobyte per delivery.
            let same_text = |last: &str| std::ptr::eq(last, source) || last == source;
            let body_as_previous = raw && sub.protocol == "sqs" && last_raw_sqs_text.is_some_and(same_text);
            // A raw delivery's text is the stored body.
            let text = if body_as_previous { String::new() } else { source.to_owned() };
            // Email and SMS carry the message text; everything else gets the signed
            // envelope unless the subscription asked for raw delivery.
            let body = if raw || matches!(sub.protocol.as_str(), "email" | "sms") {
                text
            } else {
                let envelope = Envelope {
                    kind: "Notification",
                    message_id: message_id.clone(),
                    topic_arn: topic.arn.clone(),
                    subject: out.subject.clone(),
                    message: text,
                    timestamp_ms: now,
                    sequence_number: sequence.clone(),
                    token: None,
                    subscribe_url: None,
                    unsubscribe_url: Some(format!(
                        "{base}/?Action=Unsubscribe&SubscriptionArn={}",
                        form_encode(&sub.arn)
                    )),
                    message_attributes: envelope_attributes(&out.attributes),
                };
                let version = topic.attributes.get("SignatureVersion").map(String::as_str).unwrap_or("1");
                let signature = signer.sign(version, envelope.string_to_sign()).map_err(internal)?;
                let json = envelope.to_json(&signature, version, &format!("{base}{CERT_PATH}"));
                if sub.protocol == "lambda" {
                    lambda_event(&json, &sub.arn)
                } else {
                    json
                }
            };
            match sub.protocol.as_str() {
                "sqs" => {
                    let Some(queue) = &index.queues[i] else { continue };
                    // With authentication on, the queue's policy must let SNS send from
                    // this topic, as on AWS (same account or not); otherwise AWS drops it.
                    if ctx.caller.is_some() && !self.queue_accepts(queue, topic) {
                        tracing::warn!(subscription = %sub.arn, queue = %queue.arn(), "queue policy does not allow delivery from this topic");
                        continue;
                    }
                    let queue_fifo = queue.name.ends_with(".fifo");
                    let message = NewMessage {
                        body,
                        // Hashed when received, like any message sent without its MD5.
                        body_md5: None,
                        attributes: if raw { store_sqs_attributes(&sqs_attributes(&out.attributes)) } else { None },
                        system_attributes: None,
                        sender_id: std::borrow::Cow::Borrowed(SNS_SENDER_ID),
                        // FIFO topics pass group and dedup ids to FIFO queues only; standard
                        // topics pass MessageGroupId to standard queues (fair queues).
                        group_id: if queue_fifo || !fifo { out.group_id.clone() } else { None },
                        dedup_id: if queue_fifo { out.dedup_id.clone() } else { None },
                        delay_s: None,
                        body_as_previous,
                    };
                    last_raw_sqs_text = raw.then_some(source);
                    sqs_subscriptions.push(&sub.arn);
                    sqs_sends.push((queue, message));
                }
                "firehose" if self.firehose.is_some() => {
                    let firehose = self.firehose.as_ref().expect("checked");
                    match firehose.buffer_for_arn(&sub.endpoint, body.into_bytes()) {
                        Some(d) => firehose_pending.push(d),
                        None => tracing::warn!(subscription = %sub.arn, "Firehose delivery stream not found"),
                    }
                }
                _ => outbox.push(self.outbox_entry(sub, "Notification", &message_id, &topic.arn, body, raw)),
            }
        }
        let sqs_write = if sqs_sends.is_empty() { None } else { Some(self.queues.send_to_queues(sqs_sends)) };
        let outbox_write =
            if outbox.is_empty() { None } else { Some(self.topics.add_outbox(outbox).map_err(from_store)?) };
        if let Some(write) = sqs_write {
            let results = write.map_err(internal)?.wait().await.map_err(internal)?;
            for (subscription, result) in sqs_subscriptions.iter().zip(results) {
                if let Err(e) = result {
                    tracing::warn!(subscription = %subscription, error = %e, "SQS delivery failed");
                }
            }
        }
        // Only a publish that buffered records tells the delivery worker: it runs on
        // another runtime, and a wake-up there for every publish cost that runtime's
        // worker 5-6 µs a publish in sns-fanout.
        let buffered = !firehose_pending.is_empty();
        for d in firehose_pending {
            d.wait().await.map_err(internal)?;
        }
        if let Some(f) = self.firehose.as_ref().filter(|_| buffered) {
            f.buffered.notify_one();
        }
        if let Some(d) = outbox_write {
            d.wait().await.map_err(from_store)?;
            self.outbox_changed.notify_one();
        }
        Ok((message_id, sequence))
    }

    /// A subscription's compiled filter policy, if it has a valid one.
    fn compile_policy(sub: &SubscriptionRecord) -> Option<(Arc<FilterPolicy>, Scope)> {
        let text = sub.attributes.get("FilterPolicy").filter(|p| !p.is_empty())?;
        let scope = match sub.attributes.get("FilterPolicyScope").map(String::as_str) {
            Some("MessageBody") => Scope::MessageBody,
            _ => Scope::MessageAttributes,
        };
        Some((Arc::new(FilterPolicy::parse(text, scope).ok()?), scope))
    }

    async fn publish_batch(&self, ctx: &RequestContext, req: PublishBatchRequest) -> Result<Value, AwsError> {
        let topic = self.topic(&req.topic_arn)?;
        let entries = &req.publish_batch_request_entries;
        if entries.is_empty() {
            return Err(empty_batch());
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(too_many_entries(entries.len()));
        }
        let mut seen = Vec::new();
        for e in entries {
            let id = e.id.as_deref().unwrap_or("");
            if id.is_empty() || id.len() > 80 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid_batch_entry_id());
            }
            if seen.contains(&id) {
                return Err(ids_not_distinct());
            }
            seen.push(id);
        }
        let total: usize = entries.iter().map(|e| e.message.as_ref().map(String::len).unwrap_or(0)).sum();
        if total > MAX_MESSAGE_BYTES {
            return Err(batch_too_long());
        }
        let publish = |e: &PublishBatchEntry| {
            let topic = &topic;
            let outgoing = self.validate_outgoing(topic, e);
            async move { self.publish_one(ctx, topic, outgoing?).await }
        };
        let results = if is_true(&topic.attributes, "FifoTopic") {
            // A FIFO entry awaits its sequence number before its deliveries are submitted,
            // so entries run one after another to reach the queues in order.
            let mut results = Vec::with_capacity(entries.len());
            for e in entries {
                results.push(publish(e).await);
            }
            results
        } else {
            // Each entry submits its deliveries when first polled, in order, before any
            // awaits its commit: the batch shares one group commit instead of ten in a row.
            futures_util::future::join_all(entries.iter().map(publish)).await
        };
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        for (e, result) in entries.iter().zip(results) {
            let id = e.id.clone().unwrap_or_default();
            match result {
                Ok((message_id, seq)) => {
                    let mut entry = json!({"Id": id, "MessageId": message_id});
                    if let Some(s) = seq {
                        entry["SequenceNumber"] = s.into();
                    }
                    successful.push(entry);
                }
                Err(err) => failed.push(
                    json!({"Id": id, "Code": err.query_code, "Message": err.message, "SenderFault": err.status < 500}),
                ),
            }
        }
        Ok(json!({"Successful": successful, "Failed": failed}))
    }

    // ---- tags, permissions, data protection ----

    fn tagged_topic(&self, arn: &Option<String>) -> Result<Arc<TopicRecord>, AwsError> {
        let arn = require(arn, "ResourceArn")?;
        self.topics.get_topic(arn).ok_or_else(resource_not_found)
    }

    async fn tag_resource(&self, req: TagResourceRequest) -> Result<Value, AwsError> {
        let mut topic = Arc::unwrap_or_clone(self.tagged_topic(&req.resource_arn)?);
        for t in &req.tags {
            topic.tags.insert(t.key.clone(), t.value.clone());
        }
        if topic.tags.len() > MAX_TAGS {
            return Err(tag_limit_exceeded());
        }
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({}))
    }

    async fn untag_resource(&self, req: UntagResourceRequest) -> Result<Value, AwsError> {
        let mut topic = Arc::unwrap_or_clone(self.tagged_topic(&req.resource_arn)?);
        for k in &req.tag_keys {
            topic.tags.remove(k);
        }
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({}))
    }

    fn list_tags(&self, req: ResourceArnRequest) -> Result<Value, AwsError> {
        let topic = self.tagged_topic(&req.resource_arn)?;
        let tags: Vec<Value> = topic.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
        Ok(json!({"Tags": tags}))
    }

    async fn add_permission(&self, req: AddPermissionRequest) -> Result<Value, AwsError> {
        let mut topic = Arc::unwrap_or_clone(self.topic(&req.topic_arn)?);
        let label = require(&req.label, "Label")?;
        if req.aws_account_ids.is_empty() {
            return Err(missing_parameter("AWSAccountId"));
        }
        if req.actions.is_empty() {
            return Err(missing_parameter("ActionName"));
        }
        let current = topic.attributes.get("Policy").cloned().unwrap_or_else(|| Self::default_policy(&topic));
        let mut policy: Value = serde_json::from_str(&current).map_err(internal)?;
        let statements =
            crate::iam::statement_list(&mut policy).ok_or_else(|| internal("policy without statements"))?;
        if statements.iter().any(|s| s.get("Sid").and_then(Value::as_str) == Some(label)) {
            return Err(invalid_parameter("Statement already exists"));
        }
        let principals: Vec<String> = req.aws_account_ids.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
        let actions: Vec<String> = req.actions.iter().map(|a| format!("SNS:{a}")).collect();
        statements.push(json!({"Sid": label, "Effect": "Allow", "Principal": {"AWS": principals}, "Action": actions, "Resource": topic.arn}));
        topic.attributes.insert("Policy".into(), policy.to_string());
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({}))
    }

    async fn remove_permission(&self, req: RemovePermissionRequest) -> Result<Value, AwsError> {
        let mut topic = Arc::unwrap_or_clone(self.topic(&req.topic_arn)?);
        let label = require(&req.label, "Label")?;
        let current = topic.attributes.get("Policy").cloned().unwrap_or_else(|| Self::default_policy(&topic));
        let mut policy: Value = serde_json::from_str(&current).map_err(internal)?;
        let statements =
            crate::iam::statement_list(&mut policy).ok_or_else(|| internal("policy without statements"))?;
        let before = statements.len();
        statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(label));
        if statements.len() == before {
            return Err(invalid_parameter("Statement not found"));
        }
        topic.attributes.insert("Policy".into(), policy.to_string());
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({}))
    }

    fn get_data_protection_policy(&self, req: ResourceArnRequest) -> Result<Value, AwsError> {
        let topic = self.tagged_topic(&req.resource_arn)?;
        Ok(json!({"DataProtectionPolicy": topic.attributes.get("DataProtectionPolicy").cloned().unwrap_or_default()}))
    }

    async fn put_data_protection_policy(&self, req: ResourceArnRequest) -> Result<Value, AwsError> {
        let mut topic = Arc::unwrap_or_clone(self.tagged_topic(&req.resource_arn)?);
        let policy = require(&req.data_protection_policy, "DataProtectionPolicy")?;
        if serde_json::from_str::<Value>(policy).is_err() {
            return Err(invalid_parameter("DataProtectionPolicy: failed to parse JSON"));
        }
        topic.attributes.insert("DataProtectionPolicy".into(), policy.to_owned());
        self.wait(self.topics.put_topic(topic)).await?;
        Ok(json!({}))
    }

    /// The outbox as JSON, for `/_sluice/sns/outbox`.
    pub fn outbox_json(&self) -> Value {
        let entries: Vec<Value> = self
            .topics
            .outbox()
            .into_iter()
            .map(|e| {
                json!({"id": e.id, "subscriptionArn": e.subscription_arn, "protocol": e.protocol, "endpoint": e.endpoint,
                       "body": e.body, "headers": e.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                       "attempts": e.attempts, "createdMs": e.created_ms})
            })
            .collect();
        json!({"messages": entries})
    }

    /// Empties the outbox of the protocols Sluice does not deliver itself.
    pub async fn clear_outbox(&self) -> Result<usize, AwsError> {
        let mut n = 0;
        for e in self.topics.outbox().into_iter().filter(|e| OUTBOX_PROTOCOLS.contains(&e.protocol.as_str())) {
            self.wait(self.topics.remove_outbox(e.id)).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// The event a Lambda function subscribed to the topic receives.
fn lambda_event(envelope: &str, subscription_arn: &str) -> String {
    let e: Value = serde_json::from_str(envelope).unwrap_or(Value::Null);
    let mut sns = Map::new();
    for key in ["Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion", "Signature"] {
        sns.insert(key.into(), e.get(key).cloned().unwrap_or(Value::Null));
    }
    // Lambda's event spells these two differently from the HTTP/SQS envelope.
    sns.insert("SigningCertUrl".into(), e.get("SigningCertURL").cloned().unwrap_or(Value::Null));
    sns.insert("UnsubscribeUrl".into(), e.get("UnsubscribeURL").cloned().unwrap_or(Value::Null));
    sns.insert("MessageAttributes".into(), e.get("MessageAttributes").cloned().unwrap_or_else(|| json!({})));
    json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": subscription_arn, "Sns": sns}]})
        .to_string()
}

/// SNS message attributes as the envelope's `MessageAttributes` (`{"Type", "Value"}`).
fn envelope_attributes(attrs: &MessageAttributeMap) -> Map<String, Value> {
    attrs
        .iter()
        .map(|(k, v)| {
            let data_type = v.data_type.clone().unwrap_or_default();
            let value = if data_type.starts_with("Binary") { v.binary_value.clone() } else { v.string_value.clone() };
            (k.clone(), json!({"Type": data_type, "Value": value.unwrap_or_default()}))
        })
        .collect()
}

/// SNS message attributes carried over to SQS message attributes on raw delivery.
fn sqs_attributes(attrs: &MessageAttributeMap) -> crate::sqs::types::MessageAttributeMap {
    attrs
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                SqsAttributeValue {
                    data_type: v.data_type.clone(),
                    string_value: v.string_value.clone(),
                    binary_value: v.binary_value.clone(),
                    ..Default::default()
                },
            )
        })
        .collect()
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
