//! Amazon Kinesis Data Streams over AWS JSON 1.1 (`Kinesis_20131202.*`).

pub mod access;
pub mod iterator;
pub mod limits;
mod subscribe;

use crate::RequestContext;
use base64::Engine as _;
use iterator::IteratorToken;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sluice_engine::streams::{ConsumerMeta, NewRecord, ShardMeta, StreamKey, StreamMeta, StreamStore};
use sluice_engine::{Clock, Durable, StoreError};
use sluice_wire::{AwsError, Model};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MODEL_JSON: &str = include_str!("../../../wire/models/kinesis.json");
pub const TARGET_PREFIX: &str = "Kinesis_20131202";

/// Retention: 24 hours to 365 days (8,760 hours).
const MIN_RETENTION_HOURS: u32 = 24;
const MAX_RETENTION_HOURS: u32 = 8_760;
/// PutRecords: at most 500 records and 5 MiB per request.
const MAX_PUT_RECORDS: usize = 500;
const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// GetRecords: at most 10,000 records or 10 MiB per call.
const MAX_GET_RECORDS: i64 = 10_000;
const MAX_GET_BYTES: usize = 10 * 1024 * 1024;
/// Records are at most 1 MiB by default; MaxRecordSizeInKiB raises it up to 10 MiB.
const DEFAULT_MAX_RECORD_KIB: u32 = 1024;
/// On-demand streams start with 4 shards.
const ON_DEMAND_SHARDS: u32 = 4;
/// Account shard quota reported by DescribeLimits (AWS's default for most regions).
const SHARD_LIMIT: usize = 500;
const ON_DEMAND_STREAM_LIMIT: usize = 50;
/// Every metric EnableEnhancedMonitoring's `ALL` stands for.
const ALL_METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

fn err(json_type: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(400, json_type, json_type, message)
}
pub fn invalid_argument(message: impl Into<String>) -> AwsError {
    err("InvalidArgumentException", message)
}
fn resource_in_use(message: impl Into<String>) -> AwsError {
    err("ResourceInUseException", message)
}
fn validation(message: impl Into<String>) -> AwsError {
    err("ValidationException", message)
}
pub fn serialization(message: impl Into<String>) -> AwsError {
    err("SerializationException", message)
}
pub fn unknown_operation() -> AwsError {
    err("UnknownOperationException", "")
}
fn internal(e: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %e, "internal failure");
    AwsError::new(500, "InternalFailure", "InternalFailure", "Internal service failure.")
}

/// Members used across Kinesis operations; each operation reads its own.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_count: Option<u32>,
    stream_mode_details: Option<StreamModeDetails>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_kib: Option<u32>,
    #[serde(default)]
    tags: Option<Value>,
    tag_keys: Option<Vec<String>>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
    exclusive_start_stream_name: Option<String>,
    exclusive_start_tag_key: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    shard_filter: Option<ShardFilter>,
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    records: Option<Vec<PutEntry>>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
    shard_iterator: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
    target_shard_count: Option<u32>,
    retention_period_hours: Option<u32>,
    enforce_consumer_deletion: Option<bool>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
    shard_level_metrics: Option<Vec<String>>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    policy: Option<String>,
    warm_throughput_mi_bps: Option<u32>,
    minimum_throughput_billing_commitment: Option<Value>,
    starting_position: Option<StartingPosition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartingPosition {
    r#type: String,
    sequence_number: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamModeDetails {
    stream_mode: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardFilter {
    r#type: String,
    shard_id: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEntry {
    data: String,
    partition_key: String,
    explicit_hash_key: Option<String>,
}

pub struct KinesisService {
    store: Arc<dyn StreamStore>,
    clock: Arc<dyn Clock>,
    model: Model,
    shutdown: tokio::sync::watch::Receiver<bool>,
    subscriptions: Arc<std::sync::Mutex<Subscriptions>>,
    /// Per-shard throughput limits, when enforced.
    limiter: Option<std::sync::Mutex<limits::Limiter>>,
    /// How long streams stay CREATING or UPDATING (0: ACTIVE at once).
    status_delay_ms: u64,
}

/// (consumer ARN, shard id) → (subscription active, started at ms).
type Subscriptions = std::collections::HashMap<(String, String), (bool, u64)>;

/// "A subscription lasts up to 5 minutes."
const SUBSCRIPTION_LIFETIME_MS: u64 = 300_000;
/// An event is sent at least this often, even without records.
const HEARTBEAT_MS: u64 = 5_000;
/// A consumer may not resubscribe to a shard within 5 seconds of the previous call.
const RESUBSCRIBE_GAP_MS: u64 = 5_000;

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A record as GetRecords and SubscribeToShard return it.
fn record_json(r: &sluice_engine::streams::StreamRecord) -> Value {
    json!({
        "SequenceNumber": r.sequence_number,
        "ApproximateArrivalTimestamp": secs(r.arrival_ms),
        "Data": sluice_wire::record_base64::encode(&r.data),
        "PartitionKey": r.partition_key,
    })
}

/// What GetRecords answers, rendered as a `Value` (for CBOR) or directly as JSON.
struct GetRecordsReply {
    records: Vec<sluice_engine::streams::StreamRecord>,
    millis_behind: u64,
    next: Option<String>,
    children: Option<Value>,
}

impl GetRecordsReply {
    fn to_value(&self) -> Value {
        let records: Vec<Value> = self.records.iter().map(record_json).collect();
        let mut out = json!({"Records": records, "MillisBehindLatest": self.millis_behind});
        if let Some(children) = &self.children {
            out["ChildShards"] = children.clone();
        }
        if let Some(next) = &self.next {
            out["NextShardIterator"] = next.clone().into();
        }
        out
    }

    /// The same document as `to_value` serialised (keys in the same sorted order).
    /// Sequence numbers are digits and base64 needs no escaping, so both are written as
    /// they are; partition keys, numbers and the rest go through serde_json.
    fn to_json(&self) -> Vec<u8> {
        let data_bytes: usize = self.records.iter().map(|r| r.data.len() * 4 / 3 + r.partition_key.len() + 160).sum();
        let mut out = Vec::with_capacity(data_bytes + 512);
        out.push(b'{');
        if let Some(children) = &self.children {
            out.extend_from_slice(b"\"ChildShards\":");
            serde_json::to_writer(&mut out, children).expect("writing to a Vec");
            out.push(b',');
        }
        out.extend_from_slice(format!("\"MillisBehindLatest\":{},", self.millis_behind).as_bytes());
        if let Some(next) = &self.next {
            out.extend_from_slice(b"\"NextShardIterator\":");
            serde_json::to_writer(&mut out, next).expect("writing to a Vec");
            out.push(b',');
        }
        out.extend_from_slice(b"\"Records\":[");
        for (i, r) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"ApproximateArrivalTimestamp\":");
            serde_json::to_writer(&mut out, &secs(r.arrival_ms)).expect("writing to a Vec");
            out.extend_from_slice(b",\"Data\":\"");
            sluice_wire::record_base64::encode_into(&r.data, &mut out);
            out.extend_from_slice(b"\",\"PartitionKey\":");
            serde_json::to_writer(&mut out, &r.partition_key).expect("writing to a Vec");
            out.extend_from_slice(b",\"SequenceNumber\":\"");
            out.extend_from_slice(r.sequence_number.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"]}");
        out
    }
}

fn shard_json(s: &ShardMeta) -> Value {
    let mut o = Map::new();
    o.insert("ShardId".into(), s.shard_id().into());
    if let Some(p) = s.parent {
        o.insert("ParentShardId".into(), format!("shardId-{p:012}").into());
    }
    if let Some(p) = s.adjacent_parent {
        o.insert("AdjacentParentShardId".into(), format!("shardId-{p:012}").into());
    }
    o.insert("HashKeyRange".into(), json!({"StartingHashKey": s.start_hash, "EndingHashKey": s.end_hash}));
    let mut range = json!({"StartingSequenceNumber": s.starting_sequence_number()});
    if let Some(end) = s.ending_sequence_number() {
        range["EndingSequenceNumber"] = end.into();
    }
    o.insert("SequenceNumberRange".into(), range);
    Value::Object(o)
}

fn page_token(v: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn read_page_token(t: &str) -> Result<String, AwsError> {
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_argument(format!("NextToken {t} is invalid.")))
}

/// MD5 of the partition key as a 128-bit big-endian integer: the record's hash key.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(sluice_md5::md5_one(partition_key.as_bytes()))
}

impl KinesisService {
    pub fn new(
        store: Arc<dyn StreamStore>,
        clock: Arc<dyn Clock>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let model = Model::from_json(MODEL_JSON).expect("embedded Kinesis model is valid");
        KinesisService {
            store,
            clock,
            model,
            shutdown,
            subscriptions: Default::default(),
            limiter: None,
            status_delay_ms: 0,
        }
    }

    /// Streams report CREATING (after CreateStream) or UPDATING (after resharding,
    /// retention, mode and encryption changes) for `ms` milliseconds, as AWS does for
    /// seconds; during it, data calls on a CREATING stream and further updates fail as on
    /// AWS. Off (0) by default, so tests need not wait.
    pub fn with_status_delay_ms(mut self, ms: u64) -> Self {
        self.status_delay_ms = ms;
        self
    }

    /// Fails unless the stream is ACTIVE (or UPDATING, when `allow_updating`).
    fn require_active(&self, meta: &StreamMeta, allow_updating: bool) -> Result<(), AwsError> {
        let status = meta.status_at(self.clock.now_ms());
        match status {
            "ACTIVE" => Ok(()),
            "UPDATING" if allow_updating => Ok(()),
            "CREATING" if allow_updating => Err(Self::not_found(&meta.key())),
            other => Err(resource_in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state {other}",
                meta.name, meta.account
            ))),
        }
    }

    /// Puts the stream into `status` for the configured delay.
    fn transition(&self, meta: &mut StreamMeta, status: &str) {
        if self.status_delay_ms > 0 {
            meta.status = status.to_owned();
            meta.status_until_ms = Some(self.clock.now_ms() + self.status_delay_ms);
        }
    }

    /// Enforces AWS's per-shard throughput limits (off by default).
    pub fn with_throughput_limits(mut self, enforce: bool) -> Self {
        self.limiter = enforce.then(Default::default);
        self
    }

    fn throttled(meta: &StreamMeta, shard: &str) -> AwsError {
        err(
            "ProvisionedThroughputExceededException",
            format!("Rate exceeded for shard {shard} in stream {} under account {}.", meta.name, meta.account),
        )
    }

    /// Takes write budget for a record on the shard; `false` when throttled.
    fn admit_write(&self, meta: &StreamMeta, shard_index: u32, bytes: usize) -> bool {
        let Some(limiter) = &self.limiter else { return true };
        let Some(shard) = meta.shards.iter().find(|s| s.index == shard_index) else { return true };
        limiter.lock().unwrap_or_else(|p| p.into_inner()).try_write(shard.uid, bytes, self.clock.now_ms())
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Runs the retention sweep the server's worker runs every second.
    pub async fn trim_for_tests(&self) {
        if let Ok(d) = self.store.trim_streams() {
            let _ = d.wait().await;
        }
    }

    /// As [`KinesisService::handle`], rendered as AWS JSON. GetRecords writes its reply
    /// straight into the body: through a `Value` it cost an allocated map of four keys
    /// per record and a byte-at-a-time escape scan of each record's base64.
    pub async fn handle_json(&self, ctx: &RequestContext, action: &str, input: Value) -> Result<Vec<u8>, AwsError> {
        if action == "GetRecords" {
            let req = self.prepare(ctx, action, input)?;
            return Ok(self.get_records_reply(req)?.to_json());
        }
        Ok(serde_json::to_vec(&self.handle(ctx, action, input).await?).unwrap_or_default())
    }

    pub async fn handle(&self, ctx: &RequestContext, action: &str, input: Value) -> Result<Value, AwsError> {
        let req = self.prepare(ctx, action, input)?;
        self.dispatch(ctx, action, req).await
    }

    /// Validates the input against the model, decodes it and authorizes the caller.
    fn prepare(&self, ctx: &RequestContext, action: &str, input: Value) -> Result<Request, AwsError> {
        let op = self.model.operations.get(action).ok_or_else(unknown_operation)?;
        if !input.is_object() {
            return Err(serialization("Start of structure or map found where not expected."));
        }
        if let Some(shape) = &op.input {
            if let Some(missing) = sluice_wire::query::first_missing_required(&self.model, shape, &input) {
                let mut c = missing.chars();
                let path = c.next().map(|f| f.to_lowercase().collect::<String>() + c.as_str()).unwrap_or_default();
                return Err(validation(format!(
                    "1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null"
                )));
            }
            if let Some(m) =
                sluice_wire::validate::message(&sluice_wire::validate::violations(&self.model, shape, &input))
            {
                return Err(validation(m));
            }
        }
        let req: Request = serde_json::from_value(input).map_err(|e| serialization(e.to_string()))?;
        if let Some(caller) = &ctx.caller {
            self.authorize(ctx, caller, action, &req)?;
        }
        Ok(req)
    }

    async fn dispatch(&self, ctx: &RequestContext, action: &str, req: Request) -> Result<Value, AwsError> {
        match action {
            "CreateStream" => self.create_stream(ctx, req).await,
            "DeleteStream" => self.delete_stream(ctx, req).await,
            "DescribeStream" => self.describe_stream(ctx, req),
            "DescribeStreamSummary" => self.describe_stream_summary(ctx, req),
            "ListStreams" => self.list_streams(ctx, req),
            "ListShards" => self.list_shards(ctx, req),
            "PutRecord" => self.put_record(ctx, req).await,
            "PutRecords" => self.put_records(ctx, req).await,
            "GetShardIterator" => self.get_shard_iterator(ctx, req),
            "GetRecords" => Ok(self.get_records_reply(req)?.to_value()),
            "SplitShard" => self.split_shard(ctx, req).await,
            "MergeShards" => self.merge_shards(ctx, req).await,
            "UpdateShardCount" => self.update_shard_count(ctx, req).await,
            "IncreaseStreamRetentionPeriod" => self.change_retention(ctx, req, true).await,
            "DecreaseStreamRetentionPeriod" => self.change_retention(ctx, req, false).await,
            "UpdateStreamMode" => self.update_stream_mode(ctx, req).await,
            "UpdateMaxRecordSize" => self.update_max_record_size(ctx, req).await,
            "AddTagsToStream" | "TagResource" => self.add_tags(ctx, req).await,
            "RemoveTagsFromStream" | "UntagResource" => self.remove_tags(ctx, req).await,
            "ListTagsForStream" => self.list_tags_for_stream(ctx, req),
            "ListTagsForResource" => self.list_tags_for_resource(ctx, req),
            "RegisterStreamConsumer" => self.register_consumer(ctx, req).await,
            "DeregisterStreamConsumer" => self.deregister_consumer(ctx, req).await,
            "DescribeStreamConsumer" => self.describe_consumer(ctx, req),
            "ListStreamConsumers" => self.list_consumers(ctx, req),
            "StartStreamEncryption" => self.set_encryption(ctx, req, true).await,
            "StopStreamEncryption" => self.set_encryption(ctx, req, false).await,
            "EnableEnhancedMonitoring" => self.set_monitoring(ctx, req, true).await,
            "DisableEnhancedMonitoring" => self.set_monitoring(ctx, req, false).await,
            "PutResourcePolicy" => self.put_resource_policy(ctx, req).await,
            "GetResourcePolicy" => self.get_resource_policy(ctx, req),
            "DeleteResourcePolicy" => self.delete_resource_policy(ctx, req).await,
            "DescribeLimits" => self.describe_limits(ctx),
            "DescribeAccountSettings" => Ok(json!({"MinimumThroughputBillingCommitment": {"Status": "DISABLED"}})),
            "UpdateAccountSettings" => {
                // Billing commitments do not apply to Sluice; the request is validated and acknowledged.
                let status = req
                    .minimum_throughput_billing_commitment
                    .as_ref()
                    .and_then(|c| c.get("Status"))
                    .and_then(Value::as_str)
                    .unwrap_or("DISABLED");
                Ok(json!({"MinimumThroughputBillingCommitment": {"Status": status}}))
            }
            "UpdateStreamWarmThroughput" => self.update_warm_throughput(ctx, req).await,
            "SubscribeToShard" => {
                Err(invalid_argument("SubscribeToShard is not supported by Sluice yet; use GetRecords."))
            }
            _ => Err(unknown_operation()),
        }
    }

    // ---- addressing ----

    fn key(&self, ctx: &RequestContext, req: &Request) -> Result<StreamKey, AwsError> {
        if let Some(arn) = &req.stream_arn {
            return StreamKey::from_arn(arn).ok_or_else(|| invalid_argument(format!("Invalid StreamARN {arn}")));
        }
        let name =
            req.stream_name.clone().ok_or_else(|| validation("Either StreamName or StreamARN should be provided."))?;
        Ok(StreamKey { account: ctx.account().to_owned(), region: ctx.region().to_owned(), name })
    }

    fn not_found(key: &StreamKey) -> AwsError {
        err("ResourceNotFoundException", format!("Stream {} under account {} not found.", key.name, key.account))
    }

    /// An open shard SplitShard or MergeShards names that the stream does not have.
    fn shard_not_found(key: &StreamKey, shard: &str) -> AwsError {
        err(
            "ResourceNotFoundException",
            format!("Could not find shard {shard} in stream {} under account {}.", key.name, key.account),
        )
    }

    fn meta(&self, key: &StreamKey) -> Result<StreamMeta, AwsError> {
        self.store.stream(key).ok_or_else(|| Self::not_found(key))
    }

    async fn wait<T>(&self, key: &StreamKey, d: Result<Durable<T>, StoreError>) -> Result<T, AwsError> {
        let map = |e: StoreError| match e {
            StoreError::ResourceNotFound => Self::not_found(key),
            other => internal(other),
        };
        d.map_err(map)?.wait().await.map_err(map)
    }

    async fn update(
        &self,
        key: &StreamKey,
        mut f: impl FnMut(&mut StreamMeta) -> Result<(), AwsError> + Send,
    ) -> Result<(), AwsError> {
        let mut failure: Option<AwsError> = None;
        let result = self.store.update_stream(key, &mut |meta| {
            f(meta).map_err(|e| {
                failure = Some(e);
                StoreError::UpdateRefused
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        self.wait(key, result).await
    }

    // ---- streams ----

    async fn create_stream(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let mode =
            req.stream_mode_details.as_ref().map(|m| m.stream_mode.clone()).unwrap_or_else(|| "PROVISIONED".into());
        let shard_count = match (mode.as_str(), req.shard_count) {
            ("ON_DEMAND", _) => req.shard_count.unwrap_or(ON_DEMAND_SHARDS),
            (_, Some(n)) => n,
            (_, None) => return Err(invalid_argument("ShardCount must be specified for PROVISIONED streams.")),
        };
        let open: usize = self
            .store
            .streams(ctx.account(), ctx.region())
            .iter()
            .map(|s| s.shards.iter().filter(|x| x.is_open()).count())
            .sum();
        if open + shard_count as usize > SHARD_LIMIT {
            return Err(err(
                "LimitExceededException",
                format!("This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {open}. Limit: {SHARD_LIMIT}. Number of additional shards that would have resulted from this request: {shard_count}.", key.account, key.region),
            ));
        }
        let tags: BTreeMap<String, String> = req
            .tags
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        let now = self.clock.now_ms();
        let meta = StreamMeta {
            id: 0,
            account: key.account.clone(),
            region: key.region.clone(),
            name: key.name.clone(),
            stream_id: uuid_like(now, &key.name),
            status: if self.status_delay_ms > 0 { "CREATING".into() } else { "ACTIVE".into() },
            status_until_ms: (self.status_delay_ms > 0).then(|| now + self.status_delay_ms),
            mode,
            retention_hours: MIN_RETENTION_HOURS,
            created_ms: now,
            tags,
            encryption_type: "NONE".into(),
            key_id: None,
            enhanced_metrics: vec![],
            max_record_size_kib: req.max_record_size_kib.unwrap_or(DEFAULT_MAX_RECORD_KIB),
            consumers: vec![],
            shards: vec![],
            resource_policy: None,
            consumer_policies: BTreeMap::new(),
            warm_throughput_mibps: None,
            next_shard_index: 0,
        };
        let created = self.wait(&key, self.store.create_stream(meta, shard_count)).await?;
        if !created {
            return Err(resource_in_use(format!("Stream {} under account {} already exists.", key.name, key.account)));
        }
        Ok(json!({}))
    }

    async fn delete_stream(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let meta = self.meta(&key)?;
        if !meta.consumers.is_empty() && !req.enforce_consumer_deletion.unwrap_or(false) {
            return Err(resource_in_use(format!(
                "Stream {} under account {} has registered consumers. Set EnforceConsumerDeletion to true to delete them.",
                key.name, key.account
            )));
        }
        self.wait(&key, self.store.delete_stream(&key)).await?;
        Ok(json!({}))
    }

    fn describe_stream(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let meta = self.meta(&key)?;
        let limit = req.limit.unwrap_or(100).clamp(1, 10_000) as usize;
        let start = match &req.exclusive_start_shard_id {
            Some(id) => {
                meta.shards.iter().position(|s| &s.shard_id() == id).map(|p| p + 1).unwrap_or(meta.shards.len())
            }
            None => 0,
        };
        let shards: Vec<Value> = meta.shards.iter().skip(start).take(limit).map(shard_json).collect();
        let has_more = start + shards.len() < meta.shards.len();
        let mut d = Map::new();
        d.insert("StreamName".into(), meta.name.clone().into());
        d.insert("StreamARN".into(), meta.arn().into());
        d.insert("StreamStatus".into(), meta.status_at(self.clock.now_ms()).into());
        d.insert("StreamModeDetails".into(), json!({"StreamMode": meta.mode}));
        d.insert("Shards".into(), shards.into());
        d.insert("HasMoreShards".into(), has_more.into());
        d.insert("RetentionPeriodHours".into(), meta.retention_hours.into());
        d.insert("StreamCreationTimestamp".into(), secs(meta.created_ms).into());
        d.insert("EnhancedMonitoring".into(), json!([{"ShardLevelMetrics": meta.enhanced_metrics}]));
        d.insert("EncryptionType".into(), meta.encryption_type.clone().into());
        if let Some(k) = &meta.key_id {
            d.insert("KeyId".into(), k.clone().into());
        }
        Ok(json!({"StreamDescription": d}))
    }

    fn describe_stream_summary(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let meta = self.meta(&key)?;
        let mut d = json!({
            "StreamName": meta.name,
            "StreamARN": meta.arn(),
            "StreamId": meta.stream_id,
            "StreamStatus": meta.status_at(self.clock.now_ms()),
            "StreamModeDetails": {"StreamMode": meta.mode},
            "RetentionPeriodHours": meta.retention_hours,
            "StreamCreationTimestamp": secs(meta.created_ms),
            "EnhancedMonitoring": [{"ShardLevelMetrics": meta.enhanced_metrics}],
            "EncryptionType": meta.encryption_type,
            "OpenShardCount": meta.shards.iter().filter(|s| s.is_open()).count(),
            "ConsumerCount": meta.consumers.len(),
            "MaxRecordSizeInKiB": meta.max_record_size_kib,
        });
        if let Some(k) = &meta.key_id {
            d["KeyId"] = k.clone().into();
        }
        if let Some(w) = meta.warm_throughput_mibps {
            d["WarmThroughput"] = json!({"TargetMiBps": w, "CurrentMiBps": w});
        }
        Ok(json!({"StreamDescriptionSummary": d}))
    }

    fn list_streams(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let mut streams = self.store.streams(ctx.account(), ctx.region());
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        let after = match (&req.next_token, &req.exclusive_start_stream_name) {
            (Some(t), _) => Some(read_page_token(t)?),
            (None, Some(n)) => Some(n.clone()),
            _ => None,
        };
        let limit = req.limit.unwrap_or(100).clamp(1, 10_000) as usize;
        let rest: Vec<&StreamMeta> = streams.iter().filter(|s| after.as_ref().is_none_or(|a| &s.name > a)).collect();
        let page: Vec<&StreamMeta> = rest.iter().take(limit).copied().collect();
        let has_more = rest.len() > page.len();
        let mut out = json!({
            "StreamNames": page.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "HasMoreStreams": has_more,
            "StreamSummaries": page.iter().map(|s| json!({
                "StreamName": s.name, "StreamARN": s.arn(), "StreamStatus": s.status_at(self.clock.now_ms()),
                "StreamModeDetails": {"StreamMode": s.mode}, "StreamCreationTimestamp": secs(s.created_ms)
            })).collect::<Vec<_>>(),
        });
        if let (true, Some(last)) = (has_more, page.last()) {
            out["NextToken"] = page_token(&last.name).into();
        }
        Ok(out)
    }

    fn list_shards(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        if req.next_token.is_some() && (req.stream_name.is_some() || req.stream_arn.is_some()) {
            return Err(invalid_argument("NextToken and StreamName cannot be provided together."));
        }
        let (key, after) = match &req.next_token {
            Some(t) => {
                let decoded = read_page_token(t)?;
                let v: Value = serde_json::from_str(&decoded).map_err(|_| invalid_argument("Invalid NextToken."))?;
                let arn = v.get("arn").and_then(Value::as_str).unwrap_or_default();
                let key = StreamKey::from_arn(arn).ok_or_else(|| invalid_argument("Invalid NextToken."))?;
                (key, v.get("after").and_then(Value::as_str).map(str::to_owned))
            }
            None => (self.key(ctx, &req)?, req.exclusive_start_shard_id.clone()),
        };
        let meta = self.meta(&key)?;
        let now = self.clock.now_ms();
        let retention_start = now.saturating_sub(u64::from(meta.retention_hours) * 3_600_000);
        let filter = req.shard_filter.as_ref();
        let shards: Vec<&ShardMeta> = meta
            .shards
            .iter()
            .filter(|s| after.as_ref().is_none_or(|a| s.shard_id() > *a))
            .filter(|s| match filter.map(|f| f.r#type.as_str()) {
                None => true,
                Some("AT_LATEST") => s.is_open(),
                Some("AT_TRIM_HORIZON") => s.is_open() || s.created_ms >= retention_start,
                Some("FROM_TRIM_HORIZON") => true,
                Some("AFTER_SHARD_ID") => filter.and_then(|f| f.shard_id.as_ref()).is_none_or(|id| s.shard_id() > *id),
                Some("AT_TIMESTAMP") | Some("FROM_TIMESTAMP") => {
                    let ts = filter.and_then(|f| f.timestamp).map(|t| (t * 1000.0) as u64).unwrap_or(0);
                    s.is_open() || s.ending_arrival_ms.unwrap_or(s.created_ms) >= ts
                }
                Some(_) => true,
            })
            .collect();
        let max = req.max_results.unwrap_or(1000).clamp(1, 10_000) as usize;
        let page: Vec<Value> = shards.iter().take(max).map(|s| shard_json(s)).collect();
        let mut out = json!({"Shards": page});
        if shards.len() > max {
            let last = shards[max - 1].shard_id();
            out["NextToken"] = page_token(&json!({"arn": meta.arn(), "after": last}).to_string()).into();
        }
        Ok(out)
    }

    // ---- records ----

    fn route(meta: &StreamMeta, partition_key: &str, explicit: Option<&str>) -> Result<u32, AwsError> {
        let hash = match explicit {
            Some(h) => h.parse::<u128>().map_err(|_| {
                invalid_argument(format!("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {h}"))
            })?,
            None => hash_key(partition_key),
        };
        meta.shards
            .iter()
            .filter(|s| s.is_open())
            .find(|s| {
                let (lo, hi) = s.range();
                lo <= hash && hash <= hi
            })
            .map(|s| s.index)
            .ok_or_else(|| internal("no open shard covers the hash key"))
    }

    fn decode_data(data: &str, meta: &StreamMeta, partition_key: &str) -> Result<Vec<u8>, AwsError> {
        let bytes = sluice_wire::record_base64::decode(data.as_bytes())
            .map_err(|_| serialization("Data is not valid base64."))?;
        let max = meta.max_record_size_kib as usize * 1024;
        if bytes.len() + partition_key.len() > max {
            return Err(validation(format!(
                "1 validation error detected: Value at 'data' failed to satisfy constraint: Member must have length less than or equal to {max}"
            )));
        }
        Ok(bytes)
    }

    async fn put_record(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let meta = self.meta(&key)?;
        self.require_active(&meta, true)?;
        let pk = req.partition_key.clone().unwrap_or_default();
        let data = Self::decode_data(req.data.as_deref().unwrap_or(""), &meta, &pk)?;
        let shard_index = Self::route(&meta, &pk, req.explicit_hash_key.as_deref())?;
        if !self.admit_write(&meta, shard_index, data.len() + pk.len()) {
            return Err(Self::throttled(&meta, &format!("shardId-{shard_index:012}")));
        }
        let appended = self
            .wait(&key, self.store.append_records(&key, vec![NewRecord { shard_index, partition_key: pk, data }]))
            .await?;
        let r = appended.into_iter().next().ok_or_else(|| internal("no record appended"))?;
        Ok(json!({"ShardId": r.shard_id, "SequenceNumber": r.sequence_number, "EncryptionType": meta.encryption_type}))
    }

    async fn put_records(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let meta = self.meta(&key)?;
        self.require_active(&meta, true)?;
        let entries = req.records.unwrap_or_default();
        if entries.len() > MAX_PUT_RECORDS {
            return Err(validation(format!(
                "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to {MAX_PUT_RECORDS}"
            )));
        }
        let mut records = Vec::with_capacity(entries.len());
        let mut total = 0;
        for e in &entries {
            let data = Self::decode_data(&e.data, &meta, &e.partition_key)?;
            total += data.len() + e.partition_key.len();
            let shard_index = Self::route(&meta, &e.partition_key, e.explicit_hash_key.as_deref())?;
            records.push(NewRecord { shard_index, partition_key: e.partition_key.clone(), data });
        }
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(invalid_argument(format!("Records size exceeds 5 MB limit: {total} bytes.")));
        }
        // Records are admitted independently; throttled ones fail in place (HTTP 200).
        let admitted: Vec<bool> = records
            .iter()
            .map(|r| self.admit_write(&meta, r.shard_index, r.data.len() + r.partition_key.len()))
            .collect();
        let failed = admitted.iter().filter(|a| !**a).count();
        let shard_ids: Vec<u32> = records.iter().map(|r| r.shard_index).collect();
        let accepted: Vec<NewRecord> =
            records.into_iter().zip(&admitted).filter(|(_, a)| **a).map(|(r, _)| r).collect();
        let mut appended = if accepted.is_empty() {
            Vec::new()
        } else {
            self.wait(&key, self.store.append_records(&key, accepted)).await?
        }
        .into_iter();
        let results: Vec<Value> = admitted
            .iter()
            .zip(shard_ids)
            .map(|(ok, shard_index)| match (ok, if *ok { appended.next() } else { None }) {
                (true, Some(r)) => json!({"SequenceNumber": r.sequence_number, "ShardId": r.shard_id}),
                _ => {
                    let e = Self::throttled(&meta, &format!("shardId-{shard_index:012}"));
                    json!({"ErrorCode": e.json_type, "ErrorMessage": e.message})
                }
            })
            .collect();
        Ok(json!({"FailedRecordCount": failed, "Records": results, "EncryptionType": meta.encryption_type}))
    }

    /// The record index a position type names in `shard`.
    fn position(
        &self,
        shard: &ShardMeta,
        shard_id: &str,
        kind: &str,
        sequence: Option<&str>,
        timestamp: Option<f64>,
    ) -> Result<u64, AwsError> {
        let at_seq = |after: bool| -> Result<u64, AwsError> {
            let s = sequence.ok_or_else(|| {
                invalid_argument(format!("Must specify a StartingSequenceNumber for {kind} iterator type."))
            })?;
            let d = sluice_engine::seqnum::decode(s).filter(|d| d.shard_index == shard.index).ok_or_else(|| {
                invalid_argument(format!(
                    "Invalid StartingSequenceNumber. It encodes {s}, while it was used in a call to a shard with {shard_id}"
                ))
            })?;
            Ok(d.seq_ix + u64::from(after))
        };
        Ok(match kind {
            "TRIM_HORIZON" => 0,
            "LATEST" => self.store.shard_next_seq_ix(shard.uid),
            "AT_SEQUENCE_NUMBER" => at_seq(false)?,
            "AFTER_SEQUENCE_NUMBER" => at_seq(true)?,
            "AT_TIMESTAMP" => {
                let ts = timestamp.ok_or_else(|| {
                    invalid_argument("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP.")
                })?;
                let ms = (ts * 1000.0).max(0.0) as u64;
                if ms > self.clock.now_ms() {
                    return Err(invalid_argument(
                        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis.",
                    ));
                }
                self.store.shard_seq_ix_at(shard.uid, ms).map_err(internal)?
            }
            _ => return Err(invalid_argument(format!("Invalid ShardIteratorType {kind}"))),
        })
    }

    fn get_shard_iterator(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let meta = self.meta(&key)?;
        self.require_active(&meta, true)?;
        let shard_id = req.shard_id.clone().unwrap_or_default();
        let shard = meta.shard(&shard_id).ok_or_else(|| {
            err(
                "ResourceNotFoundException",
                format!("Shard {shard_id} in stream {} under account {} does not exist", key.name, key.account),
            )
        })?;
        let kind = req.shard_iterator_type.clone().unwrap_or_default();
        let position =
            self.position(shard, &shard_id, &kind, req.starting_sequence_number.as_deref(), req.timestamp)?;
        let secret = self.store.iterator_secret().map_err(internal)?;
        let token =
            IteratorToken { stream_id: meta.id, shard_uid: shard.uid, position, created_ms: self.clock.now_ms() };
        Ok(json!({"ShardIterator": token.encode(&secret)}))
    }

    fn get_records_reply(&self, req: Request) -> Result<GetRecordsReply, AwsError> {
        let text = req.shard_iterator.clone().unwrap_or_default();
        let secret = self.store.iterator_secret().map_err(internal)?;
        let token = IteratorToken::decode(&text, &secret)
            .ok_or_else(|| invalid_argument(format!("Invalid ShardIterator: {text}")))?;
        let now = self.clock.now_ms();
        if now > token.created_ms + iterator::ITERATOR_LIFETIME_MS {
            return Err(err(
                "ExpiredIteratorException",
                format!(
                    "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {} milliseconds.",
                    iterator::iso(token.created_ms),
                    iterator::iso(now),
                    iterator::ITERATOR_LIFETIME_MS
                ),
            ));
        }
        let limit = req.limit.unwrap_or(MAX_GET_RECORDS);
        if !(1..=MAX_GET_RECORDS).contains(&limit) {
            return Err(validation(format!("1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000")));
        }
        let meta = self
            .store
            .stream_by_id(token.stream_id)
            .ok_or_else(|| err("ResourceNotFoundException", "The stream of this shard iterator does not exist."))?;
        if let Some(limiter) = &self.limiter {
            if !limiter.lock().unwrap_or_else(|p| p.into_inner()).try_read(token.shard_uid, now) {
                let shard =
                    meta.shards.iter().find(|s| s.uid == token.shard_uid).map(|s| s.shard_id()).unwrap_or_default();
                return Err(Self::throttled(&meta, &shard));
            }
        }
        let read = self
            .store
            .read_records(&meta, token.shard_uid, token.position, limit as usize, MAX_GET_BYTES)
            .map_err(internal)?;
        if let Some(limiter) = &self.limiter {
            let bytes = read.records.iter().map(|r| r.data.len()).sum();
            limiter.lock().unwrap_or_else(|p| p.into_inner()).charge_read(token.shard_uid, bytes, now);
        }
        let caught_up = read.next_seq_ix >= self.store.shard_next_seq_ix(token.shard_uid);
        let behind = match (caught_up, read.records.last(), read.latest_arrival_ms) {
            (true, _, _) | (_, _, None) => 0,
            (false, Some(last), Some(_)) => now.saturating_sub(last.arrival_ms),
            (false, None, Some(latest)) => now.saturating_sub(latest),
        };
        let mut reply = GetRecordsReply { records: read.records, millis_behind: behind, next: None, children: None };
        if read.shard_ended {
            let index = meta.shards.iter().find(|s| s.uid == token.shard_uid).map(|s| s.index);
            reply.children = Some(index.map(|i| subscribe::child_shards(&meta, i)).unwrap_or_default().into());
        } else {
            let next = IteratorToken { position: read.next_seq_ix, created_ms: now, ..token };
            reply.next = Some(next.encode(&secret));
        }
        Ok(reply)
    }

    // ---- resharding ----

    async fn split_shard(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let target = req.shard_to_split.clone().unwrap_or_default();
        let new_start: u128 = req
            .new_starting_hash_key
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| invalid_argument("NewStartingHashKey must be an integer between 0 and 2^128-1."))?;
        let now = self.clock.now_ms();
        self.update(&key, |meta| {
            self.require_active(meta, false)?;
            let parent = meta
                .shards
                .iter_mut()
                .find(|s| s.shard_id() == target && s.is_open())
                .ok_or_else(|| Self::shard_not_found(&key, &target))?;
            let (lo, hi) = parent.range();
            if new_start <= lo || new_start > hi {
                return Err(invalid_argument(format!(
                    "NewStartingHashKey {new_start} used in SplitShard() on shard {target} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {lo} and less than the shard's EndingHashKey {hi}.",
                    key.name, key.account
                )));
            }
            parent.ending_seq_ix = Some(u64::MAX);
            let parent_index = parent.index;
            let first = meta.next_shard_index;
            meta.next_shard_index += 2;
            for (i, (a, b)) in [(lo, new_start - 1), (new_start, hi)].into_iter().enumerate() {
                meta.shards.push(new_shard(first + i as u32, a, b, Some(parent_index), None, now));
            }
            self.transition(meta, "UPDATING");
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn merge_shards(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let (a_id, b_id) =
            (req.shard_to_merge.clone().unwrap_or_default(), req.adjacent_shard_to_merge.clone().unwrap_or_default());
        let now = self.clock.now_ms();
        self.update(&key, |meta| {
            self.require_active(meta, false)?;
            let find = |id: &str| meta.shards.iter().position(|s| s.shard_id() == id && s.is_open());
            let missing = |id: &str| Self::shard_not_found(&key, id);
            let a = find(&a_id).ok_or_else(|| missing(&a_id))?;
            let b = find(&b_id).ok_or_else(|| missing(&b_id))?;
            let (alo, ahi) = meta.shards[a].range();
            let (blo, bhi) = meta.shards[b].range();
            let adjacent = ahi.checked_add(1) == Some(blo) || bhi.checked_add(1) == Some(alo);
            if !adjacent {
                return Err(invalid_argument(format!("Shards {a_id} and {b_id} in stream {} under account {} are not an adjacent pair of shards eligible for merging", key.name, key.account)));
            }
            meta.shards[a].ending_seq_ix = Some(u64::MAX);
            meta.shards[b].ending_seq_ix = Some(u64::MAX);
            let index = meta.next_shard_index;
            meta.next_shard_index += 1;
            let child = new_shard(index, alo.min(blo), ahi.max(bhi), Some(meta.shards[a].index), Some(meta.shards[b].index), now);
            meta.shards.push(child);
            self.transition(meta, "UPDATING");
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn update_shard_count(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let target = req.target_shard_count.unwrap_or(0);
        let now = self.clock.now_ms();
        let mut current = 0;
        self.update(&key, |meta| {
            self.require_active(meta, false)?;
            let open: Vec<usize> = (0..meta.shards.len()).filter(|&i| meta.shards[i].is_open()).collect();
            current = open.len() as u32;
            // "up to double your current shard count … down to half" (UpdateShardCount limits).
            if target > current * 2 || target * 2 < current {
                return Err(invalid_argument(format!(
                    "UpdateShardCount cannot scale up over double your current open shard count or scale down below half your current open shard count. Current open shard count: {current}; target: {target}."
                )));
            }
            let olds: Vec<(u32, u128, u128)> = open.iter().map(|&i| (meta.shards[i].index, meta.shards[i].range().0, meta.shards[i].range().1)).collect();
            for &i in &open {
                meta.shards[i].ending_seq_ix = Some(u64::MAX);
            }
            for (lo, hi) in sluice_engine::streams::even_ranges(target) {
                // Parents: the old shards this range overlaps (at most two are recorded, as AWS does).
                let overlapping: Vec<u32> = olds.iter().filter(|(_, a, b)| *a <= hi && lo <= *b).map(|(ix, _, _)| *ix).collect();
                let index = meta.next_shard_index;
                meta.next_shard_index += 1;
                meta.shards.push(new_shard(index, lo, hi, overlapping.first().copied(), overlapping.get(1).copied(), now));
            }
            self.transition(meta, "UPDATING");
            Ok(())
        })
        .await?;
        Ok(
            json!({"StreamName": key.name, "StreamARN": key.arn(), "CurrentShardCount": current, "TargetShardCount": target}),
        )
    }

    // ---- settings ----

    async fn change_retention(&self, ctx: &RequestContext, req: Request, increase: bool) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let hours = req.retention_period_hours.unwrap_or(0);
        self.update(&key, |meta| {
            self.require_active(meta, false)?;
            if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
                return Err(invalid_argument(format!(
                    "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is out of range."
                )));
            }
            if increase && hours < meta.retention_hours {
                return Err(invalid_argument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                    meta.name, meta.retention_hours
                )));
            }
            if !increase && hours > meta.retention_hours {
                return Err(invalid_argument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                    meta.name, meta.retention_hours
                )));
            }
            meta.retention_hours = hours;
            self.transition(meta, "UPDATING");
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn update_stream_mode(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let mode = req.stream_mode_details.as_ref().map(|m| m.stream_mode.clone()).unwrap_or_default();
        self.update(&key, |meta| {
            self.require_active(meta, false)?;
            meta.mode = mode.clone();
            self.transition(meta, "UPDATING");
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn update_max_record_size(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let size = req.max_record_size_kib.unwrap_or(DEFAULT_MAX_RECORD_KIB);
        self.update(&key, |meta| {
            meta.max_record_size_kib = size;
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn update_warm_throughput(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let mibps = req.warm_throughput_mi_bps.unwrap_or(0);
        self.update(&key, |meta| {
            meta.warm_throughput_mibps = Some(mibps);
            Ok(())
        })
        .await?;
        Ok(
            json!({"StreamName": key.name, "StreamARN": key.arn(), "WarmThroughput": {"TargetMiBps": mibps, "CurrentMiBps": mibps}}),
        )
    }

    /// Tags name the stream by StreamName/StreamARN or, for the ARN-based calls, ResourceARN.
    fn tag_key(&self, ctx: &RequestContext, req: &Request) -> Result<StreamKey, AwsError> {
        match &req.resource_arn {
            Some(arn) => StreamKey::from_arn(arn).ok_or_else(|| invalid_argument(format!("Invalid ResourceARN {arn}"))),
            None => self.key(ctx, req),
        }
    }

    async fn add_tags(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.tag_key(ctx, &req)?;
        let tags: BTreeMap<String, String> = req
            .tags
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        self.update(&key, |meta| {
            meta.tags.extend(tags.clone());
            // A stream can have at most 50 tags.
            if meta.tags.len() > 50 {
                return Err(invalid_argument(
                    "Failed to add tags to stream because a given stream may have at most 50 tags.",
                ));
            }
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn remove_tags(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.tag_key(ctx, &req)?;
        let keys = req.tag_keys.clone().unwrap_or_default();
        self.update(&key, |meta| {
            for k in &keys {
                meta.tags.remove(k);
            }
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    fn list_tags_for_stream(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let meta = self.meta(&self.key(ctx, &req)?)?;
        let limit = req.limit.unwrap_or(50).clamp(1, 50) as usize;
        let rest: Vec<(&String, &String)> =
            meta.tags.iter().filter(|(k, _)| req.exclusive_start_tag_key.as_ref().is_none_or(|s| *k > s)).collect();
        let page: Vec<Value> = rest.iter().take(limit).map(|(k, v)| json!({"Key": k, "Value": v})).collect();
        Ok(json!({"Tags": page, "HasMoreTags": rest.len() > limit}))
    }

    fn list_tags_for_resource(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let meta = self.meta(&self.tag_key(ctx, &req)?)?;
        let tags: Vec<Value> = meta.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
        Ok(json!({"Tags": tags}))
    }

    // ---- consumers ----

    fn consumer_json(c: &ConsumerMeta, stream_arn: Option<&str>) -> Value {
        let mut v = json!({"ConsumerName": c.name, "ConsumerARN": c.arn, "ConsumerStatus": "ACTIVE", "ConsumerCreationTimestamp": secs(c.created_ms)});
        if let Some(arn) = stream_arn {
            v["StreamARN"] = arn.into();
        }
        v
    }

    /// The stream and consumer named by ConsumerARN, or by StreamARN and ConsumerName.
    fn consumer(&self, ctx: &RequestContext, req: &Request) -> Result<(StreamMeta, ConsumerMeta), AwsError> {
        let stream_arn = match (&req.consumer_arn, &req.stream_arn) {
            (Some(c), _) => c.split("/consumer/").next().unwrap_or_default().to_owned(),
            (None, Some(s)) => s.clone(),
            _ => return Err(invalid_argument("Either ConsumerARN or StreamARN and ConsumerName must be provided.")),
        };
        let key = StreamKey::from_arn(&stream_arn).unwrap_or_else(|| StreamKey {
            account: ctx.account().to_owned(),
            region: ctx.region().to_owned(),
            name: String::new(),
        });
        let meta = self.meta(&key)?;
        let found = meta
            .consumers
            .iter()
            .find(|c| {
                Some(&c.arn) == req.consumer_arn.as_ref()
                    || (req.consumer_arn.is_none() && Some(&c.name) == req.consumer_name.as_ref())
            })
            .cloned()
            .ok_or_else(|| {
                err(
                    "ResourceNotFoundException",
                    format!(
                        "Consumer {} under stream {} not found.",
                        req.consumer_name.clone().or(req.consumer_arn.clone()).unwrap_or_default(),
                        meta.name
                    ),
                )
            })?;
        Ok((meta, found))
    }

    async fn register_consumer(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let name = req.consumer_name.clone().unwrap_or_default();
        let now = self.clock.now_ms();
        let consumer = ConsumerMeta {
            name: name.clone(),
            arn: format!("{}/consumer/{name}:{}", key.arn(), now / 1000),
            created_ms: now,
        };
        let c = consumer.clone();
        self.update(&key, |meta| {
            if meta.consumers.iter().any(|x| x.name == name) {
                return Err(resource_in_use(format!(
                    "Consumer {name} under stream {} already exists for account {}.",
                    meta.name, meta.account
                )));
            }
            // At most 20 consumers per stream.
            if meta.consumers.len() >= 20 {
                return Err(err("LimitExceededException", "Stream has reached its limit of 20 registered consumers."));
            }
            meta.consumers.push(c.clone());
            Ok(())
        })
        .await?;
        Ok(json!({"Consumer": Self::consumer_json(&consumer, None)}))
    }

    async fn deregister_consumer(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let (meta, consumer) = self.consumer(ctx, &req)?;
        self.update(&meta.key(), |m| {
            m.consumers.retain(|c| c.arn != consumer.arn);
            m.consumer_policies.remove(&consumer.arn);
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    fn describe_consumer(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let (meta, consumer) = self.consumer(ctx, &req)?;
        Ok(json!({"ConsumerDescription": Self::consumer_json(&consumer, Some(&meta.arn()))}))
    }

    fn list_consumers(&self, ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let meta = self.meta(&self.key(ctx, &req)?)?;
        let after = req.next_token.as_deref().map(read_page_token).transpose()?;
        let max = req.max_results.unwrap_or(100).clamp(1, 10_000) as usize;
        let rest: Vec<&ConsumerMeta> =
            meta.consumers.iter().filter(|c| after.as_ref().is_none_or(|a| c.name > *a)).collect();
        let page: Vec<Value> = rest.iter().take(max).map(|c| Self::consumer_json(c, None)).collect();
        let mut out = json!({"Consumers": page});
        if rest.len() > max {
            out["NextToken"] = page_token(&rest[max - 1].name).into();
        }
        Ok(out)
    }

    // ---- encryption, monitoring, policies, limits ----

    async fn set_encryption(&self, ctx: &RequestContext, req: Request, on: bool) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        if req.encryption_type.as_deref() != Some("KMS") {
            return Err(invalid_argument("EncryptionType must be KMS."));
        }
        let key_id = req.key_id.clone();
        self.update(&key, |meta| {
            self.require_active(meta, false)?;
            if on {
                meta.encryption_type = "KMS".into();
                meta.key_id = key_id.clone();
            } else {
                meta.encryption_type = "NONE".into();
                meta.key_id = None;
            }
            self.transition(meta, "UPDATING");
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn set_monitoring(&self, ctx: &RequestContext, req: Request, enable: bool) -> Result<Value, AwsError> {
        let key = self.key(ctx, &req)?;
        let mut asked: Vec<String> = req.shard_level_metrics.clone().unwrap_or_default();
        if asked.iter().any(|m| m == "ALL") {
            asked = ALL_METRICS.iter().map(|s| s.to_string()).collect();
        }
        let mut before = vec![];
        let mut after = vec![];
        self.update(&key, |meta| {
            before = meta.enhanced_metrics.clone();
            for m in &asked {
                if enable && !meta.enhanced_metrics.contains(m) {
                    meta.enhanced_metrics.push(m.clone());
                }
                if !enable {
                    meta.enhanced_metrics.retain(|x| x != m);
                }
            }
            after = meta.enhanced_metrics.clone();
            Ok(())
        })
        .await?;
        Ok(
            json!({"StreamName": key.name, "StreamARN": key.arn(), "CurrentShardLevelMetrics": before, "DesiredShardLevelMetrics": after}),
        )
    }

    /// Resource policies attach to a stream or to one of its consumers.
    fn policy_target(&self, req: &Request) -> Result<(StreamKey, Option<String>), AwsError> {
        let arn = req.resource_arn.clone().unwrap_or_default();
        let stream = StreamKey::from_arn(&arn).ok_or_else(|| invalid_argument(format!("Invalid ResourceARN {arn}")))?;
        Ok((stream, arn.contains("/consumer/").then_some(arn)))
    }

    async fn put_resource_policy(&self, _ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let (key, consumer) = self.policy_target(&req)?;
        let policy = req.policy.clone().unwrap_or_default();
        crate::iam::Policy::parse_resource_policy(&policy)
            .map_err(|e| invalid_argument(format!("Invalid policy: {e}")))?;
        self.update(&key, |meta| {
            match &consumer {
                Some(c) => {
                    meta.consumer_policies.insert(c.clone(), policy.clone());
                }
                None => meta.resource_policy = Some(policy.clone()),
            }
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    fn get_resource_policy(&self, _ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let (key, consumer) = self.policy_target(&req)?;
        let meta = self.meta(&key)?;
        let policy = match consumer {
            Some(c) => meta.consumer_policies.get(&c).cloned(),
            None => meta.resource_policy.clone(),
        };
        Ok(json!({"Policy": policy.unwrap_or_else(|| "{}".into())}))
    }

    async fn delete_resource_policy(&self, _ctx: &RequestContext, req: Request) -> Result<Value, AwsError> {
        let (key, consumer) = self.policy_target(&req)?;
        let meta = self.meta(&key)?;
        let exists = match &consumer {
            Some(c) => meta.consumer_policies.contains_key(c),
            None => meta.resource_policy.is_some(),
        };
        if !exists {
            return Err(err("ResourceNotFoundException", "No resource policy found for the given resource."));
        }
        self.update(&key, |m| {
            match &consumer {
                Some(c) => {
                    m.consumer_policies.remove(c);
                }
                None => m.resource_policy = None,
            }
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    fn describe_limits(&self, ctx: &RequestContext) -> Result<Value, AwsError> {
        let streams = self.store.streams(ctx.account(), ctx.region());
        let open: usize = streams.iter().map(|s| s.shards.iter().filter(|x| x.is_open()).count()).sum();
        let on_demand = streams.iter().filter(|s| s.mode == "ON_DEMAND").count();
        Ok(
            json!({"ShardLimit": SHARD_LIMIT, "OpenShardCount": open, "OnDemandStreamCount": on_demand, "OnDemandStreamCountLimit": ON_DEMAND_STREAM_LIMIT}),
        )
    }
}

fn new_shard(index: u32, lo: u128, hi: u128, parent: Option<u32>, adjacent: Option<u32>, now: u64) -> ShardMeta {
    ShardMeta {
        uid: 0,
        index,
        start_hash: lo.to_string(),
        end_hash: hi.to_string(),
        parent,
        adjacent_parent: adjacent,
        created_ms: now,
        ending_seq_ix: None,
        closed_empty: false,
        ending_arrival_ms: None,
    }
}

/// A stable, unique-looking StreamId.
fn uuid_like(now: u64, name: &str) -> String {
    let digest = sluice_md5::md5_one(format!("{now}:{name}").as_bytes());
    let h = hex::encode(digest);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::streams::StreamRecord;

    fn record(seq_ix: u64, arrival_ms: u64, partition_key: &str, data: &[u8]) -> StreamRecord {
        StreamRecord {
            seq_ix,
            sequence_number: sluice_engine::seqnum::encode(1_700_000_000, 1, seq_ix, arrival_ms / 1000),
            arrival_ms,
            partition_key: partition_key.into(),
            data: data.to_vec(),
        }
    }

    #[test]
    fn get_records_json_is_the_value_serialised() {
        let replies = [
            GetRecordsReply { records: vec![], millis_behind: 0, next: Some("AAAA/+=".into()), children: None },
            GetRecordsReply {
                records: vec![
                    record(1, 1_700_000_000_123, "plain", b"hello"),
                    record(2, 1_700_000_000_000, "quote \" back\\slash \u{1} é", &[0, 255, 10, 13]),
                    record(3, 1_700_000_001_999, "", &[]),
                    record(4, 7, "k", &[7u8; 1000]),
                ],
                millis_behind: 12_345,
                next: None,
                children: Some(json!([{"ShardId": "shardId-000000000002", "ParentShards": ["shardId-000000000000"]}])),
            },
        ];
        for reply in replies {
            let direct = reply.to_json();
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                serde_json::to_string(&reply.to_value()).unwrap(),
                "byte for byte what serde_json writes for the Value"
            );
        }
    }
}
