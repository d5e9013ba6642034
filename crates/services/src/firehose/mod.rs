//! Amazon Data Firehose over AWS JSON 1.1 (`Firehose_20150804.*`): delivery streams fed
//! by PutRecord(Batch) or a Kinesis stream, buffered durably, and written as objects
//! named as AWS names them into S3-compatible storage (a local-filesystem bucket root).

pub mod compress;
pub mod delivery;
mod http_endpoint;
pub mod keys;
pub mod metrics;
pub mod partition;
pub mod source;
mod transform;

use crate::RequestContext;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sluice_engine::firehose::{DeliveryStore, DeliveryStream};
use sluice_engine::streams::StreamStore;
use sluice_engine::{Clock, StoreError};
use sluice_wire::{AwsError, Model};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

pub const MODEL_JSON: &str = include_str!("../../../wire/models/firehose.json");
pub const TARGET_PREFIX: &str = "Firehose_20150804";
/// The one destination a delivery stream has.
pub const DESTINATION_ID: &str = "destinationId-000000000001";
/// PutRecordBatch: at most 4 MiB per call (500 records and 1,000 KiB per record are model constraints).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// BufferingHints defaults: 5 MiB, 300 seconds.
pub const DEFAULT_SIZE_MB: u64 = 5;
pub const DEFAULT_INTERVAL_S: u64 = 300;
/// Dynamic partitioning requires a buffer of at least 64 MiB.
const MIN_DYNAMIC_PARTITIONING_MB: u64 = 64;

fn err(code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(400, code, code, message)
}
pub fn invalid_argument(message: impl Into<String>) -> AwsError {
    err("InvalidArgumentException", message)
}
fn validation(message: impl Into<String>) -> AwsError {
    err("ValidationException", message)
}
pub fn serialization(message: impl Into<String>) -> AwsError {
    err("SerializationException", message)
}
fn internal(e: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %e, "internal failure");
    AwsError::new(500, "ServiceUnavailableException", "ServiceUnavailableException", "Firehose is unavailable.")
}

/// Where `arn:aws:s3:::<bucket>` objects go.
#[derive(Debug, Clone)]
pub enum ObjectTarget {
    /// `<root>/<bucket>/<key>` on the local filesystem (the zero-setup default).
    Local(PathBuf),
    /// An S3-compatible endpoint, addressed path-style.
    S3(S3Settings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// PEM certificates trusted beside the system's (`--extra-ca-cert`): an S3-compatible
    /// server with a private CA, as MinIO often runs.
    pub extra_ca_pems: Vec<Vec<u8>>,
}

pub struct FirehoseService {
    pub(crate) store: Arc<dyn DeliveryStore>,
    pub(crate) streams: Arc<dyn StreamStore>,
    pub(crate) clock: Arc<dyn Clock>,
    model: Model,
    pub(crate) target: ObjectTarget,
    /// One S3 client per bucket.
    pub(crate) s3_clients: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn object_store::ObjectStore>>>,
    /// Wakes the delivery worker when records are buffered.
    pub buffered: Arc<Notify>,
    /// Client for HTTP endpoint destinations.
    pub(crate) http: Option<Arc<dyn crate::sns::delivery::HttpPost>>,
    pub(crate) http_retries: std::sync::Mutex<std::collections::HashMap<i64, http_endpoint::Attempts>>,
    /// Lambda function ARNs → the HTTP URLs that stand in for them (transformation).
    pub(crate) lambda_urls: std::collections::BTreeMap<String, String>,
    pub metrics: metrics::Metrics,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl FirehoseService {
    pub fn new(
        store: Arc<dyn DeliveryStore>,
        streams: Arc<dyn StreamStore>,
        clock: Arc<dyn Clock>,
        target: ObjectTarget,
    ) -> Self {
        let model = Model::from_json(MODEL_JSON).expect("embedded Firehose model is valid");
        FirehoseService {
            store,
            streams,
            clock,
            model,
            target,
            s3_clients: Default::default(),
            buffered: Arc::new(Notify::new()),
            http: None,
            http_retries: Default::default(),
            lambda_urls: Default::default(),
            metrics: Default::default(),
        }
    }

    /// Maps Lambda function ARNs to the HTTP URLs that act for them.
    pub fn with_lambda_urls(mut self, urls: std::collections::BTreeMap<String, String>) -> Self {
        self.lambda_urls = urls;
        self
    }

    /// Enables HTTP endpoint destinations, delivered with `client`.
    pub fn with_http(mut self, client: Arc<dyn crate::sns::delivery::HttpPost>) -> Self {
        self.http = Some(client);
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Buffers a record for the DirectPut delivery stream named by `arn`
    /// (`arn:aws:firehose:<region>:<account>:deliverystream/<name>`), as SNS delivers.
    pub fn buffer_for_arn(&self, arn: &str, data: Vec<u8>) -> Option<sluice_engine::Durable<Vec<i64>>> {
        let mut parts = arn.splitn(6, ':');
        let (_, _, _, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let name = resource.strip_prefix("deliverystream/")?;
        let stream = self.store.delivery_stream(account, region, name)?;
        let bytes = data.len() as u64;
        let durable = self.store.buffer_records(stream.id, vec![data], None).ok()?;
        self.count_incoming(stream.id, 1, bytes);
        Some(durable)
    }

    pub(crate) fn count_incoming(&self, stream_id: i64, records: u64, bytes: u64) {
        self.metrics.update(stream_id, |c| {
            c.incoming_records += records;
            c.incoming_bytes += bytes;
        });
    }

    /// Every delivery stream's counters, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.prometheus(&self.store.delivery_streams())
    }

    pub async fn handle(&self, ctx: &RequestContext, action: &str, input: Value) -> Result<Value, AwsError> {
        let op = self.model.operations.get(action).ok_or_else(|| err("UnknownOperationException", ""))?;
        if !input.is_object() {
            return Err(serialization("Start of structure or map found where not expected."));
        }
        if let Some(shape) = &op.input {
            if let Some(missing) = sluice_wire::query::first_missing_required(&self.model, shape, &input) {
                let path = missing[..1].to_lowercase() + &missing[1..];
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
        if let Some(caller) = &ctx.caller {
            Self::authorize(ctx, caller, action, &input)?;
        }
        match action {
            "CreateDeliveryStream" => self.create(ctx, input).await,
            "DeleteDeliveryStream" => self.delete(ctx, input).await,
            "DescribeDeliveryStream" => self.describe(ctx, input),
            "ListDeliveryStreams" => self.list(ctx, input),
            "PutRecord" => self.put(ctx, input, false).await,
            "PutRecordBatch" => self.put(ctx, input, true).await,
            "UpdateDestination" => self.update_destination(ctx, input).await,
            "StartDeliveryStreamEncryption" => self.set_encryption(ctx, input, true).await,
            "StopDeliveryStreamEncryption" => self.set_encryption(ctx, input, false).await,
            "TagDeliveryStream" => self.tag(ctx, input).await,
            "UntagDeliveryStream" => self.untag(ctx, input).await,
            "ListTagsForDeliveryStream" => self.list_tags(ctx, input),
            _ => Err(err("UnknownOperationException", "")),
        }
    }

    /// Firehose has no resource policies: the caller's identity policy decides, within
    /// its own account (delivery streams are named per account).
    fn authorize(
        ctx: &RequestContext,
        caller: &crate::iam::Caller,
        action: &str,
        input: &Value,
    ) -> Result<(), AwsError> {
        let resource = match str_of(input, "DeliveryStreamName") {
            Some(name) => format!("arn:aws:firehose:{}:{}:deliverystream/{name}", ctx.region(), ctx.account()),
            None => "*".to_owned(),
        };
        // The common-errors AccessDeniedException, HTTP 400.
        ctx.authorize(caller, &format!("firehose:{action}"), &resource, ctx.account(), None)
            .map_err(|d| err("AccessDeniedException", d.message))
    }

    fn not_found(ctx: &RequestContext, name: &str) -> AwsError {
        err("ResourceNotFoundException", format!("Firehose {name} under account {} not found.", ctx.account()))
    }

    fn stream(&self, ctx: &RequestContext, input: &Value) -> Result<DeliveryStream, AwsError> {
        let name = str_of(input, "DeliveryStreamName").unwrap_or_default();
        self.store.delivery_stream(ctx.account(), ctx.region(), name).ok_or_else(|| Self::not_found(ctx, name))
    }

    async fn update(
        &self,
        stream: &DeliveryStream,
        mut f: impl FnMut(&mut Value) -> Result<(), AwsError> + Send,
    ) -> Result<(), AwsError> {
        let mut failure = None;
        let result = self.store.update_delivery_stream(stream.id, &mut |config| {
            f(config).map_err(|e| {
                failure = Some(e);
                StoreError::UpdateRefused
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        result.map_err(internal)?.wait().await.map_err(internal)
    }

    /// Fills AWS's defaults into an S3 destination configuration and validates it.
    fn s3_destination(config: &Value) -> Result<Value, AwsError> {
        let mut c = config.as_object().cloned().unwrap_or_default();
        let bucket = c.get("BucketARN").and_then(Value::as_str).unwrap_or_default().to_owned();
        if bucket_name(&bucket).is_none() {
            return Err(invalid_argument(format!("BucketARN {bucket} is not a valid S3 bucket ARN.")));
        }
        let hints = c.entry("BufferingHints").or_insert_with(|| json!({}));
        let size = hints.get("SizeInMBs").and_then(Value::as_u64);
        let interval = hints.get("IntervalInSeconds").and_then(Value::as_u64);
        if size.is_some() != interval.is_some() && (size.is_some() || interval.is_some()) {
            // "If you specify a value for one of them, you must also provide a value for the other."
            return Err(invalid_argument(
                "BufferingHints must specify both SizeInMBs and IntervalInSeconds when either is set.",
            ));
        }
        *hints = json!({"SizeInMBs": size.unwrap_or(DEFAULT_SIZE_MB), "IntervalInSeconds": interval.unwrap_or(DEFAULT_INTERVAL_S)});
        let dynamic = dynamic_partitioning(config);
        if dynamic {
            if size.unwrap_or(DEFAULT_SIZE_MB) < MIN_DYNAMIC_PARTITIONING_MB {
                return Err(invalid_argument(
                    "BufferingHints.SizeInMBs must be at least 64 when dynamic partitioning is enabled.",
                ));
            }
            // "Zero buffering feature is not available for dynamic partitioning."
            if interval == Some(0) {
                return Err(invalid_argument(
                    "BufferingHints.IntervalInSeconds cannot be 0 when dynamic partitioning is enabled.",
                ));
            }
            // "You must specify an S3 error bucket prefix for a Firehose stream if you want to
            // enable dynamic partitioning."
            if c.get("ErrorOutputPrefix").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(invalid_argument(
                    "ErrorOutputPrefix cannot be null or empty when dynamic partitioning is enabled.",
                ));
            }
        }
        c.entry("CompressionFormat").or_insert_with(|| json!("UNCOMPRESSED"));
        c.entry("EncryptionConfiguration").or_insert_with(|| json!({"NoEncryptionConfig": "NoEncryption"}));
        c.entry("CloudWatchLoggingOptions").or_insert_with(|| json!({"Enabled": false}));
        c.entry("S3BackupMode").or_insert_with(|| json!("Disabled"));
        match c.get("S3BackupMode").and_then(Value::as_str) {
            Some("Disabled") => {}
            Some("Enabled") => {
                let backup = c.get("S3BackupConfiguration").ok_or_else(|| {
                    invalid_argument("S3BackupConfiguration is required when S3BackupMode is Enabled.")
                })?;
                let mut backup = Self::s3_destination(backup)?;
                if let Some(b) = backup.as_object_mut() {
                    // The backup is a plain S3 destination: no backup of its own.
                    b.remove("S3BackupMode");
                }
                c.insert("S3BackupConfiguration".into(), backup);
            }
            other => return Err(invalid_argument(format!("S3BackupMode {} is not valid.", other.unwrap_or("")))),
        }
        let prefix = c.get("Prefix").and_then(Value::as_str);
        let error_prefix = c.get("ErrorOutputPrefix").and_then(Value::as_str);
        keys::validate(prefix, error_prefix, dynamic).map_err(invalid_argument)?;
        if let Some(zone) = c.get("CustomTimeZone").and_then(Value::as_str) {
            keys::zoned_ms(0, Some(zone)).map_err(invalid_argument)?;
        }
        if let Some(ext) = c.get("FileExtension").and_then(Value::as_str) {
            // "The extension must start with a period and contain allowed characters."
            if !ext.starts_with('.')
                || !ext[1..].chars().all(|ch| ch.is_ascii_alphanumeric() || "!-_.*'()".contains(ch))
            {
                return Err(invalid_argument(format!("FileExtension {ext} is invalid.")));
            }
        }
        Ok(Value::Object(c))
    }

    async fn create(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let name = str_of(&input, "DeliveryStreamName").unwrap_or_default().to_owned();
        let kind = str_of(&input, "DeliveryStreamType").unwrap_or("DirectPut").to_owned();
        let destination =
            match (input.get("ExtendedS3DestinationConfiguration"), input.get("S3DestinationConfiguration")) {
                (Some(c), _) => json!({"kind": "ExtendedS3", "config": Self::s3_destination(c)?}),
                (None, Some(c)) => json!({"kind": "S3", "config": Self::s3_destination(c)?}),
                (None, None) if input.get("HttpEndpointDestinationConfiguration").is_some() => json!({
                    "kind": "HttpEndpoint",
                    "config": Self::http_destination(&input["HttpEndpointDestinationConfiguration"])?
                }),
                (None, None) => {
                    let other = input
                        .as_object()
                        .and_then(|o| o.keys().find(|k| k.ends_with("DestinationConfiguration")).cloned())
                        .unwrap_or_else(|| "a destination".into());
                    return Err(invalid_argument(format!(
                        "{other} is not supported by Sluice yet; use ExtendedS3DestinationConfiguration."
                    )));
                }
            };
        self.check_processing(&destination["config"])?;
        let now = self.clock.now_ms();
        let source = match kind.as_str() {
            "DirectPut" => Value::Null,
            "KinesisStreamAsSource" => {
                let src = input.get("KinesisStreamSourceConfiguration").ok_or_else(|| {
                    invalid_argument("KinesisStreamSourceConfiguration is required for KinesisStreamAsSource.")
                })?;
                let arn = str_of(src, "KinesisStreamARN").unwrap_or_default();
                let key = sluice_engine::streams::StreamKey::from_arn(arn)
                    .ok_or_else(|| invalid_argument(format!("KinesisStreamARN {arn} is invalid.")))?;
                if self.streams.stream(&key).is_none() {
                    return Err(invalid_argument(format!(
                        "Stream {} under account {} not found.",
                        key.name, key.account
                    )));
                }
                json!({"KinesisStreamARN": arn, "RoleARN": str_of(src, "RoleARN"), "DeliveryStartMs": now, "checkpoints": {}})
            }
            other => {
                return Err(invalid_argument(format!("DeliveryStreamType {other} is not supported by Sluice yet.")))
            }
        };
        let tags: Map<String, Value> = input
            .get("Tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| Some((str_of(t, "Key")?.to_owned(), json!(str_of(t, "Value").unwrap_or("")))))
                    .collect()
            })
            .unwrap_or_default();
        let encryption = match input.get("DeliveryStreamEncryptionConfigurationInput") {
            Some(e) if kind == "DirectPut" => {
                json!({"Status": "ENABLED", "KeyType": str_of(e, "KeyType").unwrap_or("AWS_OWNED_CMK"), "KeyARN": str_of(e, "KeyARN")})
            }
            Some(_) => return Err(invalid_argument("Encryption is only supported for DirectPut delivery streams.")),
            None => json!({"Status": "DISABLED"}),
        };
        let arn = format!("arn:aws:firehose:{}:{}:deliverystream/{name}", ctx.region(), ctx.account());
        let config = json!({
            "arn": arn, "type": kind, "version": 1, "created_ms": now, "updated_ms": now,
            "tags": tags, "encryption": encryption, "destination": destination, "source": source,
        });
        let created =
            self.store.create_delivery_stream(ctx.account(), ctx.region(), &name, config).map_err(internal)?;
        match created {
            Some(d) => {
                d.wait().await.map_err(internal)?;
                // A Kinesis source needs the worker's polling from now on.
                self.buffered.notify_one();
                Ok(json!({"DeliveryStreamARN": arn}))
            }
            None => Err(err(
                "ResourceInUseException",
                format!("Firehose {name} under accountId {} already exists", ctx.account()),
            )),
        }
    }

    async fn delete(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        // Deleting drops what is still buffered, as deleting a delivery stream does on AWS.
        self.store.delete_delivery_stream(stream.id).map_err(internal)?.wait().await.map_err(internal)?;
        Ok(json!({}))
    }

    fn describe(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        let c = &stream.config;
        let dest = &c["destination"]["config"];
        let s3: Map<String, Value> = dest
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| {
                        [
                            "RoleARN",
                            "BucketARN",
                            "Prefix",
                            "ErrorOutputPrefix",
                            "BufferingHints",
                            "CompressionFormat",
                            "EncryptionConfiguration",
                            "CloudWatchLoggingOptions",
                        ]
                        .contains(&k.as_str())
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut destination = json!({"DestinationId": DESTINATION_ID, "S3DestinationDescription": s3});
        if c["destination"]["kind"] == "ExtendedS3" {
            let mut extended = dest.clone();
            if let Some(backup) = extended.as_object_mut().and_then(|e| e.remove("S3BackupConfiguration")) {
                extended["S3BackupDescription"] = backup;
            }
            destination["ExtendedS3DestinationDescription"] = extended;
        }
        if c["destination"]["kind"] == "HttpEndpoint" {
            destination = json!({"DestinationId": DESTINATION_ID, "HttpEndpointDestinationDescription": Self::http_description(dest)});
        }
        let mut d = json!({
            "DeliveryStreamName": stream.name,
            "DeliveryStreamARN": c["arn"],
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": c["type"],
            "VersionId": c["version"].as_u64().unwrap_or(1).to_string(),
            "CreateTimestamp": c["created_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            "LastUpdateTimestamp": c["updated_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            "DeliveryStreamEncryptionConfiguration": c["encryption"],
            "Destinations": [destination],
            "HasMoreDestinations": false,
        });
        if c["type"] == "KinesisStreamAsSource" {
            let s = &c["source"];
            d["Source"] = json!({"KinesisStreamSourceDescription": {
                "KinesisStreamARN": s["KinesisStreamARN"], "RoleARN": s["RoleARN"],
                "DeliveryStartTimestamp": s["DeliveryStartMs"].as_u64().unwrap_or(0) as f64 / 1000.0}});
        }
        if let Some(failure) = c.get("failure").filter(|f| !f.is_null()) {
            d["FailureDescription"] = failure.clone();
        }
        Ok(json!({"DeliveryStreamDescription": d}))
    }

    fn list(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let kind = str_of(&input, "DeliveryStreamType");
        let after = str_of(&input, "ExclusiveStartDeliveryStreamName");
        let limit = input.get("Limit").and_then(Value::as_u64).unwrap_or(10) as usize;
        let names: Vec<String> = self
            .store
            .delivery_streams()
            .into_iter()
            .filter(|s| s.account == ctx.account() && s.region == ctx.region())
            .filter(|s| kind.is_none_or(|k| s.config["type"] == k))
            .map(|s| s.name)
            .filter(|n| after.is_none_or(|a| n.as_str() > a))
            .collect();
        let page: Vec<&String> = names.iter().take(limit).collect();
        Ok(json!({"DeliveryStreamNames": page, "HasMoreDeliveryStreams": names.len() > limit}))
    }

    async fn put(&self, ctx: &RequestContext, input: Value, batch: bool) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        if stream.config["type"] != "DirectPut" {
            return Err(invalid_argument(format!(
                "This operation is not permitted on KinesisStreamAsSource delivery stream type: {}",
                stream.name
            )));
        }
        let entries: Vec<&Value> = if batch {
            input.get("Records").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
        } else {
            input.get("Record").into_iter().collect()
        };
        let mut records = Vec::with_capacity(entries.len());
        for e in entries {
            let data = sluice_wire::record_base64::decode(str_of(e, "Data").unwrap_or_default().as_bytes())
                .map_err(|_| serialization("Data is not valid base64."))?;
            records.push(data);
        }
        let total: usize = records.iter().map(Vec::len).sum();
        if batch && total > MAX_BATCH_BYTES {
            return Err(invalid_argument(format!("Records size exceeds 4 MB limit: {total} bytes.")));
        }
        let count = records.len() as u64;
        let seqs =
            self.store.buffer_records(stream.id, records, None).map_err(internal)?.wait().await.map_err(internal)?;
        self.count_incoming(stream.id, count, total as u64);
        self.buffered.notify_one();
        let encrypted = stream.config["encryption"]["Status"] == "ENABLED";
        let ids: Vec<String> = seqs.iter().map(|s| record_id(stream.id, *s)).collect();
        if batch {
            let responses: Vec<Value> = ids.iter().map(|id| json!({"RecordId": id})).collect();
            Ok(json!({"FailedPutCount": 0, "Encrypted": encrypted, "RequestResponses": responses}))
        } else {
            Ok(json!({"RecordId": ids.first().cloned().unwrap_or_default(), "Encrypted": encrypted}))
        }
    }

    async fn update_destination(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        let wanted = str_of(&input, "CurrentDeliveryStreamVersionId").unwrap_or_default().to_owned();
        if str_of(&input, "DestinationId") != Some(DESTINATION_ID) {
            return Err(invalid_argument(format!(
                "Destination {} not found.",
                str_of(&input, "DestinationId").unwrap_or_default()
            )));
        }
        let update = input
            .get("ExtendedS3DestinationUpdate")
            .or_else(|| input.get("S3DestinationUpdate"))
            .or_else(|| input.get("HttpEndpointDestinationUpdate"))
            .cloned()
            .ok_or_else(|| {
                invalid_argument("Only S3 and HTTP endpoint destination updates are supported by Sluice.")
            })?;
        let now = self.clock.now_ms();
        let name = stream.name.clone();
        self.update(&stream, |c| {
            let version = c["version"].as_u64().unwrap_or(1);
            if wanted != version.to_string() {
                return Err(err(
                    "ConcurrentModificationException",
                    format!("Cannot update firehose: {name} since the current version id: {version} and specified version id: {wanted} do not match"),
                ));
            }
            let mut merged = c["destination"]["config"].clone();
            let was_partitioned = dynamic_partitioning(&merged);
            let had_backup = merged["S3BackupMode"] == "Enabled";
            if let (Some(m), Some(u)) = (merged.as_object_mut(), update.as_object()) {
                for (k, v) in u {
                    if k == "S3BackupUpdate" {
                        // An S3BackupUpdate changes the given fields of the backup destination.
                        let backup = m.entry("S3BackupConfiguration").or_insert_with(|| json!({}));
                        for (bk, bv) in v.as_object().into_iter().flatten() {
                            backup[bk] = bv.clone();
                        }
                    } else {
                        m.insert(k.clone(), v.clone());
                    }
                }
            }
            c["destination"]["config"] = if c["destination"]["kind"] == "HttpEndpoint" {
                Self::http_destination(&merged)?
            } else {
                Self::s3_destination(&merged)?
            };
            // "You cannot enable dynamic partitioning for an existing Firehose stream that does
            // not have dynamic partitioning already enabled" (nor turn it off).
            if dynamic_partitioning(&c["destination"]["config"]) != was_partitioned {
                return Err(invalid_argument(
                    "Dynamic partitioning cannot be enabled or disabled on an existing delivery stream.",
                ));
            }
            // "You can't disable [source record backup] after it's enabled."
            if had_backup && c["destination"]["config"]["S3BackupMode"] != "Enabled" {
                return Err(invalid_argument("S3BackupMode cannot be changed from Enabled to Disabled."));
            }
            self.check_processing(&c["destination"]["config"])?;
            c["version"] = json!(version + 1);
            c["updated_ms"] = json!(now);
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn set_encryption(&self, ctx: &RequestContext, input: Value, on: bool) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        if stream.config["type"] != "DirectPut" {
            return Err(invalid_argument("Encryption is only supported for DirectPut delivery streams."));
        }
        let cfg = input.get("DeliveryStreamEncryptionConfigurationInput").cloned().unwrap_or(Value::Null);
        self.update(&stream, |c| {
            c["encryption"] = if on {
                json!({"Status": "ENABLED", "KeyType": str_of(&cfg, "KeyType").unwrap_or("AWS_OWNED_CMK"), "KeyARN": str_of(&cfg, "KeyARN")})
            } else {
                json!({"Status": "DISABLED"})
            };
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn tag(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        let tags: Vec<(String, String)> = input
            .get("Tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| Some((str_of(t, "Key")?.to_owned(), str_of(t, "Value").unwrap_or("").to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        self.update(&stream, |c| {
            for (k, v) in &tags {
                c["tags"][k] = json!(v);
            }
            // "A delivery stream can have up to 50 tags."
            if c["tags"].as_object().map(Map::len).unwrap_or(0) > 50 {
                return Err(err("LimitExceededException", "A delivery stream can have at most 50 tags."));
            }
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    async fn untag(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        let keys: Vec<String> = input
            .get("TagKeys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        self.update(&stream, |c| {
            if let Some(t) = c["tags"].as_object_mut() {
                for k in &keys {
                    t.remove(k);
                }
            }
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    fn list_tags(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let stream = self.stream(ctx, &input)?;
        let after = str_of(&input, "ExclusiveStartTagKey");
        let limit = input.get("Limit").and_then(Value::as_u64).unwrap_or(50) as usize;
        let tags: Vec<Value> = stream.config["tags"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
                    .map(|(k, v)| json!({"Key": k, "Value": v}))
                    .collect()
            })
            .unwrap_or_default();
        let page: Vec<Value> = tags.iter().take(limit).cloned().collect();
        Ok(json!({"Tags": page, "HasMoreTags": tags.len() > limit}))
    }
}

/// `arn:aws:s3:::<bucket>` → bucket.
pub fn bucket_name(arn: &str) -> Option<&str> {
    let b = arn.strip_prefix("arn:")?.split_once(":s3:::")?.1;
    (!b.is_empty() && !b.contains('/')).then_some(b)
}

/// An opaque, unique RecordId.
fn record_id(stream_id: i64, seq: i64) -> String {
    let raw = format!("{stream_id:016x}{seq:016x}{}", uuid::Uuid::new_v4().simple());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Whether an S3 destination configuration enables dynamic partitioning.
pub(crate) fn dynamic_partitioning(destination: &Value) -> bool {
    destination["DynamicPartitioningConfiguration"]["Enabled"].as_bool().unwrap_or(false)
}
