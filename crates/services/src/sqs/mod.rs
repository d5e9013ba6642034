//! Amazon SQS: one handler per operation, shared by the JSON 1.0 and Query protocols.

pub mod access;
pub mod attributes;
pub mod errors;
pub mod messages;
pub mod naming;
mod typed;
pub mod types;

use crate::RequestContext;
use base64::Engine as _;
use errors::*;
use futures_util::future::{join_all, Either, FutureExt};
use messages::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sluice_engine::{
    Attributes, Clock, NewMessage, QueueInfo, QueueKey, ReceiveParams, ReceivedMessage, SendLimits, SendOutcome, Store,
};
use sluice_wire::fields::{split_ascii, split_once_ascii};
use sluice_wire::{AwsError, Model};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use types::*;

/// The stripped botocore model, `scripts/strip-model.py sqs 2012-11-05`.
pub const MODEL_JSON: &str = include_str!("../../../wire/models/sqs.json");
/// Namespace of SQS Query responses.
pub const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Most entries in any SQS batch request.
const MAX_BATCH_ENTRIES: usize = 10;
/// Batch entry ids: alphanumeric, `-` and `_`, at most 80 characters.
const MAX_BATCH_ID_LEN: usize = 80;
/// Queue names: at most 80 characters including a `.fifo` suffix.
const MAX_QUEUE_NAME_LEN: usize = 80;
/// "Maximum number of results to include in the response. Value range is 1 to 1000."
const MAX_LIST_RESULTS: i64 = 1000;
/// At most 50 tags per queue (SQS quotas).
const MAX_TAGS: usize = 50;
/// AddPermission accepts at most 7 actions.
const MAX_PERMISSION_ACTIONS: usize = 7;
/// Long polls wait at most 20 seconds.
const MAX_WAIT_SECONDS: i64 = 20;
/// StartMessageMoveTask's MaxNumberOfMessagesPerSecond: 1–500.
const MAX_MOVE_RATE: i64 = 500;
/// In-flight messages a standard queue allows; only short polls report OverLimit
/// ("If you use long polling, Amazon SQS returns no error messages"); FIFO never does.
const MAX_IN_FLIGHT_STANDARD: u64 = 120_000;

pub struct SqsService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    model: Model,
    shutdown: watch::Receiver<bool>,
}

impl attributes::QueueLookup for SqsService {
    fn queue_attributes(&self, key: &QueueKey) -> Option<Attributes> {
        self.store.get_queue(key).ok().map(|i| Attributes::clone(&i.attributes))
    }
}

fn parse<T: DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(|e| serialization(e.to_string()))
}

fn require<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, AwsError> {
    value.as_deref().ok_or_else(|| missing_parameter(name))
}

fn valid_batch_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_BATCH_ID_LEN
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a batch's size and entry ids, as every SQS batch action does first.
fn check_batch<'a>(
    ids: impl Iterator<Item = Option<&'a str>>,
    count: usize,
    entry_shape: &str,
) -> Result<(), AwsError> {
    if count == 0 {
        return Err(empty_batch(entry_shape));
    }
    if count > MAX_BATCH_ENTRIES {
        return Err(too_many_entries(count));
    }
    let mut seen = Vec::new();
    for id in ids {
        let id = id.ok_or_else(|| missing_parameter("Id"))?;
        if !valid_batch_id(id) {
            return Err(invalid_batch_entry_id());
        }
        if seen.contains(&id) {
            return Err(batch_ids_not_distinct(id));
        }
        seen.push(id);
    }
    Ok(())
}

/// `{"Successful": [{"Id"}], "Failed": [...]}` of a batch whose entries return nothing.
fn batch_outcome(results: Vec<(String, Result<(), AwsError>)>) -> BatchOutcome {
    let mut successful = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (id, result) in results {
        match result {
            Ok(()) => successful.push(EntryId { id }),
            Err(err) => failed.push(failed_entry(&id, &err)),
        }
    }
    BatchOutcome { failed, successful }
}

/// The reply of a batch whose entries answer only their ids: serialized straight from
/// the struct (a `Value` per entry was a quarter of DeleteMessageBatch's own work), in
/// the key order a `Value` has. Failed entries stay `Value`s: they are the rare case.
#[derive(serde::Serialize)]
struct BatchOutcome {
    #[serde(rename = "Failed")]
    failed: Vec<Value>,
    #[serde(rename = "Successful")]
    successful: Vec<EntryId>,
}

#[derive(serde::Serialize)]
struct EntryId {
    #[serde(rename = "Id")]
    id: String,
}

/// A reply struct as the general path's `Value` (which the Query protocol renders).
fn to_value(reply: impl serde::Serialize) -> Result<Value, AwsError> {
    serde_json::to_value(reply).map_err(|e| internal(e.to_string()))
}

/// A reply struct as a JSON response body.
fn to_json(reply: &impl serde::Serialize) -> Result<Vec<u8>, AwsError> {
    serde_json::to_vec(reply).map_err(|e| internal(e.to_string()))
}

fn failed_entry(id: &str, e: &AwsError) -> Value {
    json!({"Id": id, "SenderFault": e.status < 500, "Code": e.query_code, "Message": e.message})
}

fn valid_queue_name(name: &str, fifo: bool) -> bool {
    let base = if fifo { name.strip_suffix(".fifo").unwrap_or(name) } else { name };
    !base.is_empty()
        && name.len() <= MAX_QUEUE_NAME_LEN
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn region_from_host(host: &str) -> Option<String> {
    // sqs.<region>.amazonaws.com, sqs.<region>.localhost.localstack.cloud, <region>.queue.amazonaws.com
    let host = split_ascii(host, b':').next()?;
    let mut labels = split_ascii(host, b'.');
    let (Some(first), Some(second), Some(_)) = (labels.next(), labels.next(), labels.next()) else { return None };
    let looks_like_region = |s: &str| s.contains('-') && s.bytes().any(|c| c.is_ascii_digit());
    if first == "sqs" && looks_like_region(second) {
        return Some(second.to_owned());
    }
    if second == "queue" && looks_like_region(first) {
        return Some(first.to_owned());
    }
    None
}

fn page_token(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(name)
}

fn decode_page_token(token: &str) -> Result<String, AwsError> {
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_parameter_value("Invalid NextToken value."))
}

/// A validated message, ready for the store, with the digests SendMessage returns.
struct PreparedMessage {
    message: NewMessage,
    digests: SendDigests,
    size: usize,
}

/// What a ReceiveMessage took, with the attribute names it asked for.
pub struct Received {
    messages: Vec<ReceivedMessage>,
    system_names: Vec<String>,
    attribute_names: Vec<String>,
}

impl Received {
    fn reply(&self) -> ReceiveReply<'_> {
        let messages =
            self.messages.iter().map(|m| ReceivedReply::new(m, &self.system_names, &self.attribute_names)).collect();
        ReceiveReply { messages }
    }

    /// The JSON protocol's response body.
    pub fn json_body(&self) -> Result<Vec<u8>, AwsError> {
        let reply = self.reply();
        let mut body = Vec::with_capacity(reply.json_size_hint());
        reply.write_json(&mut body).map_err(|e| internal(e.to_string()))?;
        Ok(body)
    }

    /// The output as a `Value`, for the Query protocol's XML.
    pub fn output(&self) -> Result<Value, AwsError> {
        to_value(self.reply())
    }
}

/// What a ReceiveMessage's first attempt came to (see `SqsService::start_receive`).
pub enum Receiving {
    Received(Received),
    Waiting(LongPoll),
}

/// A ReceiveMessage that found nothing at first and waits for messages: the queue, the
/// receive's parameters and its deadline, with the store, clock and shutdown signal it
/// waits on, owned, so that it outlives the request's handling.
pub struct LongPoll {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
    key: QueueKey,
    params: ReceiveParams,
    deadline: tokio::time::Instant,
    system_names: Vec<String>,
    attribute_names: Vec<String>,
}

impl LongPoll {
    /// Receives, waiting until the deadline for messages: woken by sends, visibility
    /// changes and the next timer of the queue, never by polling. The first try repeats
    /// the one that found nothing, now with the wake-up registered first, so that a send
    /// in between is not missed.
    pub async fn received(self) -> Result<Received, AwsError> {
        self.received_while(|| true).await
    }

    /// As [`LongPoll::received`], asking `client_is_there` before each try: once it says
    /// no (the client closed its connection), the wait ends with nothing received, since
    /// whatever this took would be in flight to nobody until its visibility timeout.
    pub async fn received_while(mut self, client_is_there: impl Fn() -> bool) -> Result<Received, AwsError> {
        let key = &self.key;
        let map = |e| from_store(e, &key.name, "");
        loop {
            let (notify, next_event) = self.store.wait_signal(key).map_err(map)?;
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let there = client_is_there();
            let messages = if there {
                self.store.receive_messages(key, &self.params).map_err(map)?.wait().await.map_err(map)?
            } else {
                Vec::new()
            };
            let now = tokio::time::Instant::now();
            if !there || !messages.is_empty() || now >= self.deadline || *self.shutdown.borrow() {
                return Ok(Received {
                    messages,
                    system_names: self.system_names,
                    attribute_names: self.attribute_names,
                });
            }
            let mut wake = self.deadline;
            if let Some(at) = next_event {
                let in_ms = at.saturating_sub(self.clock.now_ms());
                wake = wake.min(now + Duration::from_millis(in_ms));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.shutdown.changed() => {}
            }
        }
    }
}

/// What a successful send answers besides the message id: the digests of what was sent
/// (the body's comes from the store, whose writer hashes a group's bodies side by side).
struct SendDigests {
    md5_attributes: Option<String>,
    md5_system_attributes: Option<String>,
}

impl SqsService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, shutdown: watch::Receiver<bool>) -> Self {
        let model = Model::from_json(MODEL_JSON).expect("embedded SQS model is valid");
        SqsService { store, clock, model, shutdown }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn naming() -> &'static naming::SqsNaming {
        &naming::SqsNaming
    }

    /// Decodes a Query request's parameters into the operation's JSON input.
    pub fn decode_query(
        &self,
        ctx: &RequestContext,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Value, AwsError> {
        let op = self.model.operations.get(action).ok_or_else(|| unknown_operation(action, true))?;
        let Some(shape) = &op.input else { return Ok(json!({})) };
        let mut value =
            sluice_wire::query::decode(&self.model, Self::naming(), shape, params).map_err(|e| match e {
                sluice_wire::query::QueryDecodeError::InvalidValue { param, value } => {
                    invalid_parameter_value(format!("Value {value} for parameter {param} is invalid."))
                }
            })?;
        // A Query request POSTed to the queue URL names the queue by its path.
        if let Value::Object(obj) = &mut value {
            let takes_url = matches!(self.model.shape(shape), Some(sluice_wire::Shape::Structure { members, .. }) if members.iter().any(|m| m.name == "QueueUrl"));
            let segments: Vec<&str> = ctx.path().split('/').filter(|s| !s.is_empty()).collect();
            if takes_url && !obj.contains_key("QueueUrl") && segments.len() == 2 {
                obj.insert("QueueUrl".into(), Value::String(format!("{}://{}{}", ctx.scheme, ctx.host(), ctx.path())));
            }
        }
        Ok(value)
    }

    /// Runs one operation. `query` selects Query-protocol error wording where the
    /// protocols differ.
    pub async fn handle(
        &self,
        ctx: &RequestContext,
        action: &str,
        input: Value,
        query: bool,
    ) -> Result<Value, AwsError> {
        self.admit(ctx, action, &input, query)?;
        match action {
            "CreateQueue" => self.create_queue(ctx, parse(input)?).await,
            "GetQueueUrl" => self.get_queue_url(ctx, parse(input)?),
            "ListQueues" => self.list_queues(ctx, parse(input)?),
            "DeleteQueue" => self.delete_queue(ctx, parse(input)?).await,
            "GetQueueAttributes" => self.get_queue_attributes(ctx, parse(input)?),
            "SetQueueAttributes" => self.set_queue_attributes(ctx, parse(input)?).await,
            "PurgeQueue" => self.purge_queue(ctx, parse(input)?).await,
            "SendMessage" => to_value(self.send_message(ctx, parse(input)?).await?),
            "SendMessageBatch" => to_value(self.send_message_batch(ctx, parse(input)?).await?),
            "ReceiveMessage" => to_value(self.receive_message(ctx, parse(input)?).await?.reply()),
            "DeleteMessage" => self.delete_message(ctx, parse(input)?).await,
            "DeleteMessageBatch" => to_value(self.delete_message_batch(ctx, parse(input)?).await?),
            "ChangeMessageVisibility" => self.change_message_visibility(ctx, parse(input)?).await,
            "ChangeMessageVisibilityBatch" => to_value(self.change_message_visibility_batch(ctx, parse(input)?).await?),
            "ListDeadLetterSourceQueues" => self.list_dead_letter_source_queues(ctx, parse(input)?),
            "TagQueue" => self.tag_queue(ctx, parse(input)?).await,
            "UntagQueue" => self.untag_queue(ctx, parse(input)?).await,
            "ListQueueTags" => self.list_queue_tags(ctx, parse(input)?),
            "AddPermission" => self.add_permission(ctx, parse(input)?).await,
            "RemovePermission" => self.remove_permission(ctx, parse(input)?).await,
            "StartMessageMoveTask" => self.start_message_move_task(ctx, parse(input)?).await,
            "ListMessageMoveTasks" => self.list_message_move_tasks(ctx, parse(input)?),
            "CancelMessageMoveTask" => self.cancel_message_move_task(parse(input)?).await,
            other => Err(unknown_operation(other, query)),
        }
    }

    /// Runs one operation of the JSON protocol, answering the response body. (The server
    /// sends ReceiveMessage through `start_receive`.)
    pub async fn handle_json(&self, ctx: &RequestContext, action: &str, input: Value) -> Result<Vec<u8>, AwsError> {
        to_json(&self.handle(ctx, action, input, false).await?)
    }

    /// SendMessage, SendMessageBatch and DeleteMessageBatch over JSON, decoded straight
    /// from the body (see `typed`), when the body is complete and no caller needs
    /// authorizing (`authorize` reads the general path's `Value`); `None` sends the
    /// request the general way. The body is decoded before the future is made, so that
    /// other actions cost no future.
    pub fn handle_typed_json<'a>(
        &'a self,
        ctx: &'a RequestContext,
        action: &str,
        body: &[u8],
    ) -> Option<impl std::future::Future<Output = Result<Vec<u8>, AwsError>> + Send + 'a> {
        if ctx.caller.is_some() {
            return None;
        }
        // The request goes straight into its operation's future: an async block matching
        // on it would hold it twice (its capture, and the operation's argument).
        Some(match typed::decode(action, body)? {
            typed::Decoded::SendMessage(req) => {
                let written = |reply: SendReply| {
                    let mut body = Vec::with_capacity(128);
                    reply.write_json(&mut body);
                    body
                };
                Either::Left(self.send_message(ctx, req).map(move |r| r.map(written)))
            }
            typed::Decoded::SendMessageBatch(req) => {
                // An entry's reply (id, message id, MD5) is about 130 bytes; 160 leaves
                // room for the optional digests and a sequence number.
                let written = |reply: SendBatchReply| {
                    let mut body = Vec::with_capacity(32 + 160 * (reply.successful.len() + reply.failed.len()));
                    reply.write_json(&mut body).map_err(|e| internal(e.to_string()))?;
                    Ok(body)
                };
                Either::Right(Either::Left(self.send_message_batch(ctx, req).map(move |r| r.and_then(written))))
            }
            typed::Decoded::DeleteMessageBatch(req) => {
                Either::Right(Either::Right(self.delete_message_batch(ctx, req).map(|r| to_json(&r?))))
            }
        })
    }

    /// What every operation checks first: it exists, its input is an object with every
    /// required member, and the caller may run it.
    fn admit(&self, ctx: &RequestContext, action: &str, input: &Value, query: bool) -> Result<(), AwsError> {
        let op = self.model.operations.get(action).ok_or_else(|| unknown_operation(action, query))?;
        if !input.is_object() {
            return Err(serialization("Request body must be a JSON object."));
        }
        if let Some(shape) = &op.input {
            if let Some(missing) = sluice_wire::query::first_missing_required(&self.model, shape, input) {
                return Err(missing_parameter(&missing));
            }
        }
        if let Some(caller) = &ctx.caller {
            self.authorize(ctx, caller, action, input)?;
        }
        Ok(())
    }

    // ---- queue addressing ----

    fn queue_key(&self, ctx: &RequestContext, url: &Option<String>) -> Result<QueueKey, AwsError> {
        let url = require(url, "QueueUrl")?;
        let with_scheme = sluice_wire::fields::split_scheme(url);
        let (host, path) = match with_scheme {
            Some((_, rest)) => split_once_ascii(rest, b'/').unwrap_or((rest, "")),
            None => ("", url),
        };
        let mut segments = split_ascii(path, b'/').filter(|s| !s.is_empty());
        let (account, name) = match (segments.next(), segments.next(), segments.next()) {
            (Some(account), Some(name), None) => (account.to_string(), name.to_string()),
            (Some(name), None, None) if with_scheme.is_none() => (ctx.account().to_owned(), name.to_string()),
            _ => return Err(invalid_address(format!("The address {url} is not valid for this endpoint."))),
        };
        let region = region_from_host(host).unwrap_or_else(|| ctx.region().to_owned());
        Ok(QueueKey { account, region, name })
    }

    fn queue_url(ctx: &RequestContext, key: &QueueKey) -> String {
        format!("{}://{}/{}/{}", ctx.scheme, ctx.host(), key.account, key.name)
    }

    fn info(&self, key: &QueueKey) -> Result<QueueInfo, AwsError> {
        self.store.get_queue(key).map_err(|e| from_store(e, &key.name, ""))
    }

    fn send_limits(&self, key: &QueueKey) -> Result<SendLimits, AwsError> {
        self.store.send_limits(key).map_err(|e| from_store(e, &key.name, ""))
    }

    fn key_from_arn(arn: &str, param: &str) -> Result<QueueKey, AwsError> {
        QueueKey::from_arn(arn).ok_or_else(|| {
            invalid_parameter_value(format!(
                "You must use this format to specify the {param}: arn:<partition>:<service>:<region>:<account-id>:<resource-id>"
            ))
        })
    }

    // ---- queues ----

    async fn create_queue(&self, ctx: &RequestContext, req: CreateQueueRequest) -> Result<Value, AwsError> {
        let name = require(&req.queue_name, "QueueName")?;
        let fifo = req.attributes.get("FifoQueue").is_some_and(|v| v == "true");
        if name.ends_with(".fifo") != fifo {
            return Err(invalid_parameter_value(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
            ));
        }
        if !valid_queue_name(name, fifo) {
            return Err(invalid_parameter_value(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
            ));
        }
        let key =
            QueueKey { account: ctx.account().to_owned(), region: ctx.region().to_owned(), name: name.to_owned() };
        let mut requested = attributes::validate(&req.attributes, fifo, true, &key, self)?;
        // A standard queue does not report FifoQueue at all.
        if requested.get("FifoQueue").is_some_and(|v| v == "false") {
            requested.remove("FifoQueue");
        }
        validate_tags(&req.tags)?;
        let url = Self::queue_url(ctx, &key);
        let matches_existing = |info: &QueueInfo| -> Result<(), AwsError> {
            for (k, v) in &requested {
                let current = info.attributes.get(k).map(String::as_str).unwrap_or("");
                if current != v {
                    return Err(queue_already_exists(k));
                }
            }
            if !fifo && info.limits.fifo {
                return Err(queue_already_exists("FifoQueue"));
            }
            Ok(())
        };
        if let Ok(info) = self.store.get_queue(&key) {
            matches_existing(&info)?;
            return Ok(json!({"QueueUrl": url}));
        }
        let mut full = attributes::defaults(fifo);
        full.extend(requested.clone());
        full.retain(|_, v| !v.is_empty());
        let (info, created) = self
            .store
            .create_queue(&key, full, req.tags.clone())
            .map_err(|e| from_store(e, name, ""))?
            .wait()
            .await
            .map_err(|e| from_store(e, name, ""))?;
        if !created {
            matches_existing(&info)?;
        }
        Ok(json!({"QueueUrl": url}))
    }

    fn get_queue_url(&self, ctx: &RequestContext, req: GetQueueUrlRequest) -> Result<Value, AwsError> {
        let name = require(&req.queue_name, "QueueName")?;
        let account = req.queue_owner_account_id.clone().unwrap_or_else(|| ctx.account().to_owned());
        let key = QueueKey { account, region: ctx.region().to_owned(), name: name.to_owned() };
        self.info(&key)?;
        Ok(json!({"QueueUrl": Self::queue_url(ctx, &key)}))
    }

    fn paginate(
        &self,
        ctx: &RequestContext,
        keys: Vec<QueueKey>,
        next_token: &Option<String>,
        max_results: Option<i64>,
        member: &str,
    ) -> Result<Value, AwsError> {
        if let Some(m) = max_results {
            if !(1..=MAX_LIST_RESULTS).contains(&m) {
                return Err(invalid_value_reason("MaxResults", m, "MaxResults must be an integer between 1 and 1000."));
            }
        }
        let after = next_token.as_deref().map(decode_page_token).transpose()?;
        let mut keys: Vec<QueueKey> = keys.into_iter().filter(|k| after.as_ref().is_none_or(|a| &k.name > a)).collect();
        let limit = max_results.unwrap_or(MAX_LIST_RESULTS) as usize;
        let more = keys.len() > limit;
        keys.truncate(limit);
        let mut out = Map::new();
        if !keys.is_empty() {
            out.insert(member.into(), keys.iter().map(|k| Value::String(Self::queue_url(ctx, k))).collect());
        }
        if more && max_results.is_some() {
            if let Some(last) = keys.last() {
                out.insert("NextToken".into(), page_token(&last.name).into());
            }
        }
        Ok(Value::Object(out))
    }

    fn list_queues(&self, ctx: &RequestContext, req: ListQueuesRequest) -> Result<Value, AwsError> {
        let prefix = req.queue_name_prefix.clone().unwrap_or_default();
        let keys = self.store.list_queues(ctx.account(), ctx.region(), &prefix);
        self.paginate(ctx, keys, &req.next_token, req.max_results, "QueueUrls")
    }

    async fn delete_queue(&self, ctx: &RequestContext, req: QueueUrlRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let map = |e| from_store(e, &key.name, "");
        self.store.delete_queue(&key).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }

    fn get_queue_attributes(&self, ctx: &RequestContext, req: GetQueueAttributesRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        for n in &req.attribute_names {
            if n != "All" && !attributes::is_known(n) {
                return Err(invalid_attribute_name(format!("Unknown Attribute {n}.")));
            }
        }
        if req.attribute_names.is_empty() {
            return Ok(json!({}));
        }
        let counts = self.store.queue_counts(&key).map_err(|e| from_store(e, &key.name, ""))?;
        let mut all: BTreeMap<String, String> = Attributes::clone(&info.attributes);
        all.retain(|_, v| !v.is_empty());
        all.insert("ApproximateNumberOfMessages".into(), counts.visible.to_string());
        all.insert("ApproximateNumberOfMessagesNotVisible".into(), counts.in_flight.to_string());
        all.insert("ApproximateNumberOfMessagesDelayed".into(), counts.delayed.to_string());
        all.insert("CreatedTimestamp".into(), (info.created_ms / 1000).to_string());
        all.insert("LastModifiedTimestamp".into(), (info.modified_ms / 1000).to_string());
        all.insert("QueueArn".into(), key.arn());
        let want_all = req.attribute_names.iter().any(|n| n == "All");
        all.retain(|k, _| want_all || req.attribute_names.contains(k));
        if all.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({"Attributes": all}))
    }

    async fn set_queue_attributes(
        &self,
        ctx: &RequestContext,
        req: SetQueueAttributesRequest,
    ) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        let fifo = info.limits.fifo;
        let attrs = req.attributes.unwrap_or_default();
        let validated = attributes::validate(&attrs, fifo, false, &key, self)?;
        let map = |e| from_store(e, &key.name, "");
        self.store.set_queue_attributes(&key, validated).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }

    async fn purge_queue(&self, ctx: &RequestContext, req: QueueUrlRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let url = Self::queue_url(ctx, &key);
        let map = |e| from_store(e, &url, "");
        self.store.purge_queue(&key).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }

    // ---- messages ----

    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        ctx: &RequestContext,
        limits: SendLimits,
        body: Option<String>,
        delay: Option<i64>,
        attrs: &MessageAttributeMap,
        system_attrs: &MessageAttributeMap,
        group: &Option<String>,
        dedup: &Option<String>,
    ) -> Result<PreparedMessage, AwsError> {
        let fifo = limits.fifo;
        let Some(body) = body else { return Err(missing_parameter("MessageBody")) };
        validate_body(&body)?;
        if let Some(d) = delay {
            if fifo {
                return Err(invalid_value_reason(
                    "DelaySeconds",
                    d,
                    "The request include parameter that is not valid for this queue type.",
                ));
            }
            if !(0..=MAX_DELAY_SECONDS).contains(&d) {
                return Err(invalid_value_reason("DelaySeconds", d, "DelaySeconds must be >= 0 and <= 900."));
            }
        }
        let attrs_size = validate_attributes(attrs, "user")?;
        validate_system_attributes(system_attrs)?;
        let md5_system_attributes = md5_of_attributes(system_attrs);
        let mut system_attrs = system_attrs.clone();
        if let (false, Some(trace)) = (system_attrs.contains_key("AWSTraceHeader"), &ctx.trace_header) {
            // AWSTraceHeader may also arrive as the X-Amzn-Trace-Id header.
            system_attrs.insert(
                "AWSTraceHeader".into(),
                MessageAttributeValue {
                    data_type: Some("String".into()),
                    string_value: Some(trace.clone()),
                    ..Default::default()
                },
            );
        }
        let size = body.len() + attrs_size;
        let max = limits.max_message_size;
        if size as u64 > max {
            return Err(invalid_parameter_value(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
            )));
        }
        if let Some(g) = group {
            validate_fifo_id("MessageGroupId", g)?;
        } else if fifo {
            return Err(missing_parameter("MessageGroupId"));
        }
        let dedup_id = match dedup {
            Some(d) if fifo => {
                validate_fifo_id("MessageDeduplicationId", d)?;
                Some(d.clone())
            }
            Some(d) => {
                return Err(invalid_value_reason(
                    "MessageDeduplicationId",
                    d,
                    "The request include parameter that is not valid for this queue type.",
                ))
            }
            None if fifo => {
                if limits.content_based_dedup {
                    // Content-based deduplication: SHA-256 of the body only.
                    Some(hex::encode(Sha256::digest(body.as_bytes())))
                } else {
                    return Err(invalid_parameter_value(
                        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                    ));
                }
            }
            None => None,
        };
        Ok(PreparedMessage {
            message: NewMessage {
                body,
                body_md5: None,
                attributes: store_attributes(attrs),
                system_attributes: store_attributes(&system_attrs),
                sender_id: ctx.access_key_id().to_owned().into(),
                group_id: group.clone(),
                dedup_id,
                delay_s: delay.map(|d| d as u64),
                body_as_previous: false,
            },
            digests: SendDigests { md5_attributes: md5_of_attributes(attrs), md5_system_attributes },
            size,
        })
    }

    fn send_result(id: Option<String>, digests: SendDigests, outcome: SendOutcome) -> Result<SendReply, AwsError> {
        Ok(SendReply {
            id,
            md5_of_message_attributes: digests.md5_attributes,
            md5_of_message_body: outcome
                .body_md5
                .ok_or_else(|| internal("the store answered a send without its digest"))?,
            md5_of_message_system_attributes: digests.md5_system_attributes,
            message_id: outcome.message_id,
            sequence_number: outcome.sequence_number,
        })
    }

    async fn send_message(&self, ctx: &RequestContext, req: SendMessageRequest) -> Result<SendReply, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let limits = self.send_limits(&key)?;
        let prepared = self.prepare(
            ctx,
            limits,
            req.message_body,
            req.delay_seconds,
            &req.message_attributes,
            &req.message_system_attributes,
            &req.message_group_id,
            &req.message_deduplication_id,
        )?;
        let map = |e| from_store(e, &key.name, "");
        let outcomes =
            self.store.send_messages(&key, vec![prepared.message]).map_err(map)?.wait().await.map_err(map)?;
        let o = outcomes.into_iter().next().ok_or_else(|| internal("send returned no outcome"))?;
        Self::send_result(None, prepared.digests, o)
    }

    async fn send_message_batch(
        &self,
        ctx: &RequestContext,
        req: SendMessageBatchRequest,
    ) -> Result<SendBatchReply, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let limits = self.send_limits(&key)?;
        check_batch(req.entries.iter().map(|e| e.id.as_deref()), req.entries.len(), "SendMessageBatchRequestEntry")?;
        let mut failed = Vec::new();
        let mut messages = Vec::with_capacity(req.entries.len());
        let mut replies = Vec::with_capacity(req.entries.len());
        let mut total = 0;
        for e in req.entries {
            let id = e.id.unwrap_or_default();
            let body_len = e.message_body.as_ref().map(String::len).unwrap_or(0);
            match self.prepare(
                ctx,
                limits,
                e.message_body,
                e.delay_seconds,
                &e.message_attributes,
                &e.message_system_attributes,
                &e.message_group_id,
                &e.message_deduplication_id,
            ) {
                Ok(p) => {
                    total += p.size;
                    messages.push(p.message);
                    replies.push((id, p.digests));
                }
                Err(err) => {
                    total += body_len;
                    failed.push(failed_entry(&id, &err));
                }
            }
        }
        if total > MAX_BATCH_BYTES {
            return Err(batch_request_too_long(total));
        }
        let mut successful = Vec::with_capacity(messages.len());
        if !messages.is_empty() {
            let map = |e| from_store(e, &key.name, "");
            let outcomes = self.store.send_messages(&key, messages).map_err(map)?.wait().await.map_err(map)?;
            for ((id, digests), o) in replies.into_iter().zip(outcomes) {
                successful.push(Self::send_result(Some(id), digests, o)?);
            }
        }
        Ok(SendBatchReply { failed, successful })
    }

    async fn receive_message(&self, ctx: &RequestContext, req: ReceiveMessageRequest) -> Result<Received, AwsError> {
        match self.first_receive(ctx, req).await? {
            Receiving::Received(received) => Ok(received),
            Receiving::Waiting(poll) => poll.received().await,
        }
    }

    /// ReceiveMessage up to its first attempt: what it took, or, when it found nothing
    /// and may wait, its long poll, for the caller to await once it has let go of the
    /// request. A waiting poll then holds only a `LongPoll`, not the whole request's
    /// handling (with ten thousand polls open, each byte counts ten thousand times).
    pub async fn start_receive(&self, ctx: &RequestContext, input: Value, query: bool) -> Result<Receiving, AwsError> {
        self.admit(ctx, "ReceiveMessage", &input, query)?;
        self.first_receive(ctx, parse(input)?).await
    }

    async fn first_receive(&self, ctx: &RequestContext, req: ReceiveMessageRequest) -> Result<Receiving, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        let max = req.max_number_of_messages.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(invalid_value_reason("MaxNumberOfMessages", max, "Must be between 1 and 10, if provided."));
        }
        if let Some(v) = req.visibility_timeout {
            if !(0..=43_200).contains(&v) {
                return Err(invalid_value_reason("VisibilityTimeout", v, "Must be >= 0 and <= 43200, if provided."));
            }
        }
        let wait = match req.wait_time_seconds {
            Some(w) => w,
            None => info.attributes.get("ReceiveMessageWaitTimeSeconds").and_then(|v| v.parse().ok()).unwrap_or(0),
        };
        if !(0..=MAX_WAIT_SECONDS).contains(&wait) {
            return Err(invalid_value_reason("WaitTimeSeconds", wait, "Must be >= 0 and <= 20, if provided."));
        }
        let fifo = info.limits.fifo;
        if !fifo && wait == 0 {
            let counts = self.store.queue_counts(&key).map_err(|e| from_store(e, &key.name, ""))?;
            if counts.in_flight >= MAX_IN_FLIGHT_STANDARD {
                return Err(over_limit(format!(
                    "The maximum number of in flight messages ({MAX_IN_FLIGHT_STANDARD}) has been reached for queue {}.",
                    key.name
                )));
            }
        }
        let params = ReceiveParams {
            max_messages: max as usize,
            visibility_timeout_s: req.visibility_timeout.map(|v| v as u64),
            attempt_id: if fifo { req.receive_request_attempt_id.clone() } else { None },
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
        let map = |e| from_store(e, &key.name, "");
        let messages = self.store.receive_messages(&key, &params).map_err(map)?.wait().await.map_err(map)?;
        let mut system_names = req.attribute_names;
        system_names.extend(req.message_system_attribute_names);
        let attribute_names = req.message_attribute_names;
        if messages.is_empty() && wait > 0 && !*self.shutdown.borrow() {
            return Ok(Receiving::Waiting(LongPoll {
                store: self.store.clone(),
                clock: self.clock.clone(),
                shutdown: self.shutdown.clone(),
                key,
                params,
                deadline,
                system_names,
                attribute_names,
            }));
        }
        Ok(Receiving::Received(Received { messages, system_names, attribute_names }))
    }

    async fn delete_one(&self, key: &QueueKey, handle: &str) -> Result<(), AwsError> {
        let map = |e| from_store(e, &key.name, handle);
        self.store.delete_message(key, handle).map_err(map)?.wait().await.map_err(map)
    }

    async fn delete_message(&self, ctx: &RequestContext, req: DeleteMessageRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let handle = require(&req.receipt_handle, "ReceiptHandle")?;
        self.info(&key)?;
        self.delete_one(&key, handle).await?;
        Ok(json!({}))
    }

    async fn delete_message_batch(
        &self,
        ctx: &RequestContext,
        req: DeleteMessageBatchRequest,
    ) -> Result<BatchOutcome, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        self.info(&key)?;
        check_batch(req.entries.iter().map(|e| e.id.as_deref()), req.entries.len(), "DeleteMessageBatchRequestEntry")?;
        // join_all polls each entry once, in order, before any is polled again: every entry
        // is applied and submitted before a commit is awaited, so the batch shares one
        // group commit instead of waiting for one per entry, and each entry still sees the
        // ones before it (a repeated handle finds its message already deleted).
        let key = &key;
        let results = join_all(req.entries.iter().map(|e| async move {
            let result = match &e.receipt_handle {
                Some(h) => self.delete_one(key, h).await,
                None => Err(missing_parameter("ReceiptHandle")),
            };
            (e.id.clone().unwrap_or_default(), result)
        }))
        .await;
        Ok(batch_outcome(results))
    }

    async fn change_one(&self, key: &QueueKey, handle: &str, timeout: i64) -> Result<(), AwsError> {
        if !(0..=43_200).contains(&timeout) {
            return Err(invalid_value_reason(
                "VisibilityTimeout",
                timeout,
                "VisibilityTimeout must be an integer between 0 and 43200",
            ));
        }
        let map = |e| from_store(e, &key.name, handle);
        self.store.change_visibility(key, handle, timeout as u64).map_err(map)?.wait().await.map_err(map)
    }

    async fn change_message_visibility(
        &self,
        ctx: &RequestContext,
        req: ChangeMessageVisibilityRequest,
    ) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let handle = require(&req.receipt_handle, "ReceiptHandle")?;
        let timeout = req.visibility_timeout.ok_or_else(|| missing_parameter("VisibilityTimeout"))?;
        self.info(&key)?;
        self.change_one(&key, handle, timeout).await?;
        Ok(json!({}))
    }

    async fn change_message_visibility_batch(
        &self,
        ctx: &RequestContext,
        req: ChangeMessageVisibilityBatchRequest,
    ) -> Result<BatchOutcome, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        self.info(&key)?;
        check_batch(
            req.entries.iter().map(|e| e.id.as_deref()),
            req.entries.len(),
            "ChangeMessageVisibilityBatchRequestEntry",
        )?;
        // Submitted together, then awaited, as in DeleteMessageBatch.
        let key = &key;
        let results = join_all(req.entries.iter().map(|e| async move {
            let result = match (&e.receipt_handle, e.visibility_timeout) {
                (Some(h), Some(t)) => self.change_one(key, h, t).await,
                (None, _) => Err(missing_parameter("ReceiptHandle")),
                (_, None) => Err(missing_parameter("VisibilityTimeout")),
            };
            (e.id.clone().unwrap_or_default(), result)
        }))
        .await;
        Ok(batch_outcome(results))
    }

    // ---- dead-letter queues and move tasks ----

    fn list_dead_letter_source_queues(
        &self,
        ctx: &RequestContext,
        req: ListDeadLetterSourceQueuesRequest,
    ) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let sources = self.store.dead_letter_sources(&key).map_err(|e| from_store(e, &key.name, ""))?;
        let mut out = self.paginate(ctx, sources, &req.next_token, req.max_results, "queueUrls")?;
        // queueUrls is required in the output shape.
        if let Value::Object(o) = &mut out {
            o.entry("queueUrls").or_insert_with(|| json!([]));
        }
        Ok(out)
    }

    async fn start_message_move_task(
        &self,
        _ctx: &RequestContext,
        req: StartMessageMoveTaskRequest,
    ) -> Result<Value, AwsError> {
        let source_arn = require(&req.source_arn, "SourceArn")?;
        let source = Self::key_from_arn(source_arn, "SourceArn")?;
        if self.store.get_queue(&source).is_err() {
            return Err(resource_not_found(
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ));
        }
        let destination = match &req.destination_arn {
            Some(arn) => {
                let d = Self::key_from_arn(arn, "DestinationArn")?;
                if self.store.get_queue(&d).is_err() {
                    return Err(resource_not_found(
                        "The resource that you specified for the DestinationArn parameter doesn't exist.",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        if let Some(rate) = req.max_number_of_messages_per_second {
            if !(1..=MAX_MOVE_RATE).contains(&rate) {
                return Err(invalid_value_reason(
                    "MaxNumberOfMessagesPerSecond",
                    rate,
                    "MaxNumberOfMessagesPerSecond must be an integer between 1 and 500.",
                ));
            }
        }
        let map = |e| from_store(e, &source.name, "");
        let handle = self
            .store
            .start_move_task(&source, destination.as_ref(), req.max_number_of_messages_per_second.map(|r| r as u32))
            .map_err(map)?
            .wait()
            .await
            .map_err(map)?;
        Ok(json!({"TaskHandle": handle}))
    }

    fn list_message_move_tasks(
        &self,
        _ctx: &RequestContext,
        req: ListMessageMoveTasksRequest,
    ) -> Result<Value, AwsError> {
        let source_arn = require(&req.source_arn, "SourceArn")?;
        let source = Self::key_from_arn(source_arn, "SourceArn")?;
        let max = req.max_results.unwrap_or(1);
        if !(1..=10).contains(&max) {
            return Err(invalid_value_reason("MaxResults", max, "MaxResults must be an integer between 1 and 10."));
        }
        let tasks = self.store.list_move_tasks(&source, max as usize).map_err(|_| {
            resource_not_found("The resource that you specified for the SourceArn parameter doesn't exist.")
        })?;
        let results: Vec<Value> = tasks
            .into_iter()
            .map(|t| {
                let mut o = Map::new();
                let running = t.status == "RUNNING";
                if running {
                    o.insert("TaskHandle".into(), t.handle.into());
                }
                o.insert("Status".into(), t.status.into());
                o.insert("SourceArn".into(), t.source_arn.into());
                if let Some(d) = t.destination_arn {
                    o.insert("DestinationArn".into(), d.into());
                }
                if let Some(r) = t.max_per_second {
                    o.insert("MaxNumberOfMessagesPerSecond".into(), r.into());
                }
                o.insert("ApproximateNumberOfMessagesMoved".into(), t.moved.into());
                if running {
                    o.insert("ApproximateNumberOfMessagesToMove".into(), t.to_move.into());
                }
                if let Some(f) = t.failure_reason {
                    o.insert("FailureReason".into(), f.into());
                }
                o.insert("StartedTimestamp".into(), t.started_ms.into());
                Value::Object(o)
            })
            .collect();
        Ok(json!({"Results": results}))
    }

    async fn cancel_message_move_task(&self, req: CancelMessageMoveTaskRequest) -> Result<Value, AwsError> {
        let handle = require(&req.task_handle, "TaskHandle")?;
        let map = |e| from_store(e, "", "");
        let task = self.store.cancel_move_task(handle).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({"ApproximateNumberOfMessagesMoved": task.moved}))
    }

    // ---- tags and permissions ----

    async fn tag_queue(&self, ctx: &RequestContext, req: TagQueueRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        validate_tags(&req.tags)?;
        let mut merged = BTreeMap::clone(&info.tags);
        merged.extend(req.tags.clone());
        if merged.len() > MAX_TAGS {
            return Err(invalid_parameter_value(format!("Too many tags added for queue {}.", key.name)));
        }
        let map = |e| from_store(e, &key.name, "");
        self.store.tag_queue(&key, req.tags).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }

    async fn untag_queue(&self, ctx: &RequestContext, req: UntagQueueRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let map = |e| from_store(e, &key.name, "");
        self.store.untag_queue(&key, &req.tag_keys).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }

    fn list_queue_tags(&self, ctx: &RequestContext, req: QueueUrlRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        if info.tags.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({"Tags": *info.tags}))
    }

    async fn add_permission(&self, ctx: &RequestContext, req: AddPermissionRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        let label = require(&req.label, "Label")?;
        if label.is_empty()
            || label.len() > 80
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid_value_reason(
                "Label",
                label,
                "Label must be 1 to 80 alphanumeric characters, hyphens or underscores.",
            ));
        }
        if req.aws_account_ids.is_empty() {
            return Err(missing_parameter("AWSAccountId"));
        }
        if req.actions.is_empty() {
            return Err(missing_parameter("ActionName"));
        }
        if req.actions.len() > MAX_PERMISSION_ACTIONS {
            return Err(over_limit(format!("{} Actions were found, maximum allowed is 7.", req.actions.len())));
        }
        const ACTIONS: &[&str] = &[
            "*",
            "SendMessage",
            "ReceiveMessage",
            "DeleteMessage",
            "ChangeMessageVisibility",
            "GetQueueAttributes",
            "GetQueueUrl",
            "ListDeadLetterSourceQueues",
            "PurgeQueue",
            "ListQueueTags",
        ];
        for a in &req.actions {
            if !ACTIONS.contains(&a.as_str()) {
                return Err(invalid_value_reason(
                    "ActionName",
                    format!("SQS:{a}"),
                    "Please refer to the appropriate WSDL for a list of valid actions.",
                ));
            }
        }
        let mut policy =
            info.attributes.get("Policy").and_then(|p| serde_json::from_str::<Value>(p).ok()).unwrap_or_else(
                || json!({"Version": "2012-10-17", "Id": format!("{}/SQSDefaultPolicy", key.arn()), "Statement": []}),
            );
        let statements =
            crate::iam::statement_list(&mut policy).ok_or_else(|| internal("stored policy has no Statement list"))?;
        if statements.iter().any(|s| s.get("Sid").and_then(Value::as_str) == Some(label)) {
            return Err(invalid_value_reason("Label", label, "Already exists."));
        }
        let principals: Vec<String> = req.aws_account_ids.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
        let principal = if principals.len() == 1 { json!(principals[0]) } else { json!(principals) };
        let actions: Vec<String> = req.actions.iter().map(|a| format!("SQS:{a}")).collect();
        let action = if actions.len() == 1 { json!(actions[0]) } else { json!(actions) };
        statements.push(json!({"Sid": label, "Effect": "Allow", "Principal": {"AWS": principal}, "Action": action, "Resource": key.arn()}));
        let mut attrs = Attributes::new();
        attrs.insert("Policy".into(), policy.to_string());
        let map = |e| from_store(e, &key.name, "");
        self.store.set_queue_attributes(&key, attrs).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }

    async fn remove_permission(&self, ctx: &RequestContext, req: RemovePermissionRequest) -> Result<Value, AwsError> {
        let key = self.queue_key(ctx, &req.queue_url)?;
        let info = self.info(&key)?;
        let label = require(&req.label, "Label")?;
        let not_found = || invalid_value_reason("Label", label, "can't find label on existing policy.");
        let mut policy =
            info.attributes.get("Policy").and_then(|p| serde_json::from_str::<Value>(p).ok()).ok_or_else(not_found)?;
        let statements = crate::iam::statement_list(&mut policy).ok_or_else(not_found)?;
        let before = statements.len();
        statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(label));
        if statements.len() == before {
            return Err(not_found());
        }
        let mut attrs = Attributes::new();
        attrs.insert("Policy".into(), if statements.is_empty() { String::new() } else { policy.to_string() });
        let map = |e| from_store(e, &key.name, "");
        self.store.set_queue_attributes(&key, attrs).map_err(map)?.wait().await.map_err(map)?;
        Ok(json!({}))
    }
}

/// Tag keys 1–128 characters, values at most 256, at most 50 per queue.
fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid_parameter_value(format!("Too many tags added. A queue can have at most {MAX_TAGS} tags.")));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid_parameter_value(format!("Tag key {k} is invalid. Tag keys are 1 to 128 characters.")));
        }
        if v.chars().count() > 256 {
            return Err(invalid_parameter_value(format!(
                "Tag value for key {k} is invalid. Tag values are at most 256 characters."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::region_from_host;

    /// A queue URL's host names its region in AWS's two forms (and LocalStack's), with
    /// or without a port; any other host leaves the signing region to decide.
    #[test]
    fn a_queue_urls_host_names_its_region_in_awss_forms_only() {
        for (host, region) in [
            ("sqs.eu-west-1.amazonaws.com", Some("eu-west-1")),
            ("sqs.ap-southeast-2.amazonaws.com:443", Some("ap-southeast-2")),
            ("us-east-2.queue.amazonaws.com", Some("us-east-2")),
            ("sqs.eu-central-1.localhost.localstack.cloud:4566", Some("eu-central-1")),
            ("localhost:4566", None),
            ("127.0.0.1:9324", None),
            ("sqs.eu-west-1", None),
            ("sqs.amazonaws.com.example", None),
            ("queue.us-east-1.amazonaws.com", None),
            ("", None),
        ] {
            assert_eq!(region_from_host(host).as_deref(), region, "{host}");
        }
    }
}
