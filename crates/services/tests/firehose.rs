//! Firehose on a manual clock over the on-disk store: buffering by size and time, object
//! keys and prefixes, compression, versions, restarts, and a Kinesis source.

use base64::Engine as _;
use serde_json::{json, Value};
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use sluice_services::firehose::{FirehoseService, ObjectTarget};
use sluice_services::kinesis::KinesisService;
use sluice_services::sns::delivery::{HttpPost, HttpResult};
use sluice_services::RequestContext;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// 2026-03-05T07:08:09.000Z
const START_MS: u64 = 1_772_694_489_000;

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    firehose: FirehoseService,
    kinesis: KinesisService,
    ctx: RequestContext,
}

fn open(dir: &Path, clock: Arc<ManualClock>) -> (FirehoseService, KinesisService) {
    let store = Arc::new(
        EmbeddedStore::open(EmbeddedOptions::for_tests(&dir.join("data")), clock.clone() as Arc<dyn Clock>).unwrap(),
    );
    let firehose =
        FirehoseService::new(store.clone(), store.clone(), clock.clone(), ObjectTarget::Local(dir.join("s3")));
    let kinesis = KinesisService::new(store, clock, tokio::sync::watch::channel(false).1);
    (firehose, kinesis)
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let (firehose, kinesis) = open(dir.path(), clock.clone());
        let ctx = RequestContext::local("000000000000", "us-east-1");
        Harness { dir, clock, firehose, kinesis, ctx }
    }

    fn restart(&mut self) {
        let (f, k) = open(self.dir.path(), self.clock.clone());
        self.firehose = f;
        self.kinesis = k;
    }

    async fn call(&self, action: &str, input: Value) -> Result<Value, String> {
        self.firehose.handle(&self.ctx, action, input).await.map_err(|e| format!("{}: {}", e.json_type, e.message))
    }

    async fn ok(&self, action: &str, input: Value) -> Value {
        self.call(action, input).await.unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    async fn create(&self, name: &str, destination: Value) {
        let mut config =
            json!({"RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake"});
        config.as_object_mut().unwrap().extend(destination.as_object().unwrap().clone());
        self.ok(
            "CreateDeliveryStream",
            json!({"DeliveryStreamName": name, "ExtendedS3DestinationConfiguration": config}),
        )
        .await;
    }

    async fn put(&self, name: &str, data: &[u8]) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        self.ok("PutRecord", json!({"DeliveryStreamName": name, "Record": {"Data": b64}})).await;
    }

    /// Objects in the bucket: (key, raw bytes), sorted by key.
    fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let root = self.dir.path().join("s3/lake");
        let mut out = Vec::new();
        fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p: PathBuf = e.path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push((
                        p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                        std::fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        walk(&root, &root, &mut out);
        out.sort();
        out
    }
}

/// One counter of `/_sluice/metrics` for a delivery stream.
fn counter(firehose: &FirehoseService, name: &str, stream: &str) -> u64 {
    let text = firehose.metrics_text();
    let wanted = format!(
        "sluice_firehose_{name}_total{{account=\"000000000000\",region=\"us-east-1\",delivery_stream=\"{stream}\"}} "
    );
    let line = text.lines().find(|l| l.starts_with(&wanted)).unwrap_or_else(|| panic!("no {wanted} in {text}"));
    line[wanted.len()..].parse().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

#[tokio::test]
async fn buffers_flush_on_interval_and_on_size() {
    let h = Harness::new();
    h.create("clicks", json!({"BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})).await;
    h.put("clicks", b"a\n").await;
    h.clock.advance_secs(10);
    h.put("clicks", b"b\n").await;
    assert_eq!(h.firehose.flush(false).await, Some(START_MS + 60_000), "due 60 s after the oldest record");
    assert!(h.objects().is_empty());
    h.clock.advance_secs(50);
    h.firehose.flush(false).await;
    let objects = h.objects();
    assert_eq!(objects.len(), 1);
    let (key, body) = &objects[0];
    assert!(key.starts_with("2026/03/05/07/clicks-1-2026-03-05-07-08-09-"), "named after the oldest record: {key}");
    assert_eq!(body, b"a\nb\n");

    let chunk = vec![b'x'; 600 * 1024];
    h.put("clicks", &chunk).await;
    h.put("clicks", &chunk).await;
    h.firehose.flush(false).await;
    assert_eq!(h.objects().len(), 2, "1 MiB reached: one object now, the rest waits for the interval");
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    assert_eq!(h.objects().len(), 3);
}

#[tokio::test]
async fn prefixes_compression_and_versions() {
    let h = Harness::new();
    let bad = h
        .call("CreateDeliveryStream", json!({"DeliveryStreamName": "x", "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake", "Prefix": "p/!{timestamp:yyyy}/"}}))
        .await;
    assert!(bad.unwrap_err().starts_with("InvalidArgumentException: ErrorOutputPrefix cannot be null or empty"));
    let bad = h.call("CreateDeliveryStream", json!({"DeliveryStreamName": "x", "ExtendedS3DestinationConfiguration": {
        "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake", "BufferingHints": {"SizeInMBs": 200, "IntervalInSeconds": 60}}})).await;
    assert!(bad.unwrap_err().starts_with("ValidationException"), "SizeInMBs is 1–128");
    h.create(
        "logs",
        json!({"Prefix": "logs/year=!{timestamp:yyyy}/month=!{timestamp:MM}/", "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
               "CompressionFormat": "GZIP", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}}),
    )
    .await;
    h.put("logs", b"line one\n").await;
    h.firehose.flush(false).await;
    let objects = h.objects();
    assert_eq!(objects.len(), 1);
    assert!(objects[0].0.starts_with("logs/year=2026/month=03/logs-1-2026-03-05-07-08-09-"), "{}", objects[0].0);
    assert!(objects[0].0.ends_with(".gz"));
    assert_eq!(gunzip(&objects[0].1), b"line one\n");

    let stale = h.call("UpdateDestination", json!({"DeliveryStreamName": "logs", "CurrentDeliveryStreamVersionId": "7",
        "DestinationId": "destinationId-000000000001", "ExtendedS3DestinationUpdate": {"CompressionFormat": "UNCOMPRESSED"}})).await;
    assert!(stale.unwrap_err().starts_with("ConcurrentModificationException"));
    h.ok("UpdateDestination", json!({"DeliveryStreamName": "logs", "CurrentDeliveryStreamVersionId": "1",
        "DestinationId": "destinationId-000000000001", "ExtendedS3DestinationUpdate": {"CompressionFormat": "UNCOMPRESSED", "FileExtension": ".txt"}})).await;
    let d = h.ok("DescribeDeliveryStream", json!({"DeliveryStreamName": "logs"})).await;
    assert_eq!(d["DeliveryStreamDescription"]["VersionId"], "2");
    h.put("logs", b"line two\n").await;
    h.firehose.flush(false).await;
    let newest = h.objects().into_iter().find(|(k, _)| k.ends_with(".txt")).unwrap();
    assert!(newest.0.contains("/logs-2-"), "the stream version is in the name: {}", newest.0);
    assert_eq!(newest.1, b"line two\n");
}

fn partitioned_config(query: &str) -> Value {
    json!({
        "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake",
        "Prefix": "customer=!{partitionKeyFromQuery:customer}/!{timestamp:yyyy}/",
        "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        "DynamicPartitioningConfiguration": {"Enabled": true},
        "ProcessingConfiguration": {"Enabled": true, "Processors": [
            {"Type": "MetadataExtraction", "Parameters": [
                {"ParameterName": "MetadataExtractionQuery", "ParameterValue": query},
                {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]},
            {"Type": "AppendDelimiterToRecord", "Parameters": []}]},
    })
}

#[tokio::test]
async fn dynamic_partitioning_by_jq_query() {
    let h = Harness::new();
    let mut small = partitioned_config("{customer: .customer}");
    small["BufferingHints"]["SizeInMBs"] = json!(1);
    let e = h
        .call("CreateDeliveryStream", json!({"DeliveryStreamName": "x", "ExtendedS3DestinationConfiguration": small}))
        .await;
    let e = e.unwrap_err();
    assert!(e.contains("at least 64"), "dynamic partitioning needs a 64 MiB buffer: {e}");
    let mut no_errors = partitioned_config("{customer: .customer}");
    no_errors.as_object_mut().unwrap().remove("ErrorOutputPrefix");
    let e = h
        .call(
            "CreateDeliveryStream",
            json!({"DeliveryStreamName": "x", "ExtendedS3DestinationConfiguration": no_errors}),
        )
        .await;
    assert!(e.unwrap_err().starts_with("InvalidArgumentException: ErrorOutputPrefix"));
    let e = h
        .call("CreateDeliveryStream", json!({"DeliveryStreamName": "x", "ExtendedS3DestinationConfiguration": partitioned_config("{customer: .customer")}))
        .await;
    assert!(e.unwrap_err().contains("not a valid jq expression"));

    h.create("orders", partitioned_config("{customer: .customer.id}")).await;
    let sent: [&[u8]; 5] = [
        br#"{"customer":{"id":"c1"},"n":1}"#,
        br#"{"customer":{"id":"c2"},"n":2}"#,
        br#"{"customer":{"id":"c1"},"n":3}"#,
        b"not json",
        br#"{"customer":{}}"#,
    ];
    for record in sent {
        h.put("orders", record).await;
    }
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    let objects = h.objects();
    let in_prefix = |p: &str| objects.iter().filter(|(k, _)| k.starts_with(p)).collect::<Vec<_>>();
    let c1 = in_prefix("customer=c1/2026/orders-1-2026-03-05-07-08-09-");
    assert_eq!(c1.len(), 1, "{objects:?}");
    assert_eq!(c1[0].1, b"{\"customer\":{\"id\":\"c1\"},\"n\":1}\n{\"customer\":{\"id\":\"c1\"},\"n\":3}\n");
    let c2 = in_prefix("customer=c2/2026/");
    assert_eq!(c2.len(), 1);
    assert_eq!(c2[0].1, b"{\"customer\":{\"id\":\"c2\"},\"n\":2}\n");
    let errors = in_prefix("errors/processing-failed/");
    let lines: Vec<Value> = errors
        .iter()
        .flat_map(|(_, b)| {
            String::from_utf8(b.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    assert_eq!(lines.len(), 2, "the unparseable record and the one without the key");
    assert!(lines.iter().all(|l| l["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"));
    let raw: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| base64::engine::general_purpose::STANDARD.decode(l["rawData"].as_str().unwrap()).unwrap())
        .collect();
    assert!(raw.contains(&b"not json".to_vec()));
    assert_eq!(objects.len(), 3 + errors.len() - 1);
    assert_eq!(counter(&h.firehose, "incoming_records", "orders"), 5);
    assert_eq!(counter(&h.firehose, "delivered_records", "orders"), 3);
    assert_eq!(counter(&h.firehose, "objects_written", "orders"), 2, "one object per partition");
    assert_eq!(counter(&h.firehose, "failed_records", "orders"), 2);
    assert_eq!(counter(&h.firehose, "delivery_failures", "orders"), 0);
    assert_eq!(counter(&h.firehose, "incoming_bytes", "orders"), sent.iter().map(|r| r.len() as u64).sum::<u64>());

    // Aggregated records are split before partitioning.
    let mut batched = partitioned_config("{customer: .customer.id}");
    batched["Prefix"] = json!("batched/!{partitionKeyFromQuery:customer}/");
    batched["ProcessingConfiguration"]["Processors"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Type": "RecordDeAggregation",
        "Parameters": [{"ParameterName": "SubRecordType", "ParameterValue": "JSON"}]}));
    h.create("batched", batched).await;
    h.put(
        "batched",
        b"{\"customer\":{\"id\":\"c1\"}}{\"customer\":{\"id\":\"c2\"}}\n{\"customer\":{\"id\":\"c1\"},\"x\":1}",
    )
    .await;
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    let objects = h.objects();
    let body = |p: &str| objects.iter().filter(|(k, _)| k.starts_with(p)).map(|(_, b)| b.clone()).collect::<Vec<_>>();
    assert_eq!(
        body("batched/c1/"),
        vec![b"{\"customer\":{\"id\":\"c1\"}}\n{\"customer\":{\"id\":\"c1\"},\"x\":1}\n".to_vec()]
    );
    assert_eq!(body("batched/c2/"), vec![b"{\"customer\":{\"id\":\"c2\"}}\n".to_vec()]);

    let e = h.call("UpdateDestination", json!({"DeliveryStreamName": "orders", "CurrentDeliveryStreamVersionId": "1",
        "DestinationId": "destinationId-000000000001", "ExtendedS3DestinationUpdate": {"DynamicPartitioningConfiguration": {"Enabled": false}}})).await;
    assert!(e.unwrap_err().starts_with("InvalidArgumentException"), "partitioning cannot be switched off");
}

/// A transformation function on the "network": upper-cases records and returns their
/// first letter as the `initial` partition key, except for records containing "nokey".
struct InitialsFunction;

impl HttpPost for InitialsFunction {
    fn post<'a>(
        &'a self,
        _url: &'a str,
        _headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = HttpResult> + Send + 'a>> {
        let event: Value = serde_json::from_slice(body).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let records: Vec<Value> = event["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let data = b64.decode(r["data"].as_str().unwrap()).unwrap();
                let text = String::from_utf8(data).unwrap();
                let mut out =
                    json!({"recordId": r["recordId"], "result": "Ok", "data": b64.encode(text.to_uppercase())});
                if !text.contains("nokey") {
                    out["metadata"] = json!({"partitionKeys": {"initial": &text[..1]}});
                }
                out
            })
            .collect();
        Box::pin(async move { Ok((200, json!({"records": records}).to_string().into_bytes())) })
    }
}

#[tokio::test]
async fn dynamic_partitioning_by_lambda_metadata() {
    const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:initials";
    let mut h = Harness::new();
    let (firehose, _) = open(h.dir.path(), h.clock.clone());
    h.firehose = firehose
        .with_http(Arc::new(InitialsFunction))
        .with_lambda_urls([(ARN.to_owned(), "http://function.invalid/".to_owned())].into());
    h.create(
        "words",
        json!({
            "Prefix": "initial=!{partitionKeyFromLambda:initial}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Enabled": true, "Processors": [
                {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": ARN}]}]},
        }),
    )
    .await;
    for word in ["apple ", "banana ", "avocado ", "nokey "] {
        h.put("words", word.as_bytes()).await;
    }
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    let objects = h.objects();
    let body = |p: &str| objects.iter().filter(|(k, _)| k.starts_with(p)).map(|(_, b)| b.clone()).collect::<Vec<_>>();
    assert_eq!(body("initial=a/words-1-"), vec![b"APPLE AVOCADO ".to_vec()]);
    assert_eq!(body("initial=b/words-1-"), vec![b"BANANA ".to_vec()]);
    let errors = body("errors/processing-failed/");
    assert_eq!(errors.len(), 1, "{objects:?}");
    let failed: Value = serde_json::from_slice(errors[0].split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert!(failed["errorMessage"].as_str().unwrap().contains("initial"), "{failed}");

    // The query sees the function's output even when listed before the Lambda processor.
    h.create(
        "shouted",
        json!({
            "Prefix": "w=!{partitionKeyFromQuery:w}/",
            "ErrorOutputPrefix": "shouted-errors/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Enabled": true, "Processors": [
                {"Type": "MetadataExtraction", "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{w: .W}"},
                    {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]},
                {"Type": "Lambda", "Parameters": [{"ParameterName": "LambdaArn", "ParameterValue": ARN}]}]},
        }),
    )
    .await;
    h.put("shouted", br#"{"w":"hi"}"#).await;
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    let objects = h.objects();
    let shouted: Vec<_> = objects.iter().filter(|(k, _)| k.starts_with("w=HI/shouted-1-")).collect();
    assert_eq!(shouted.len(), 1, "{objects:?}");
    assert_eq!(shouted[0].1, br#"{"W":"HI"}"#);
}

#[tokio::test]
async fn source_records_backed_up_before_processing() {
    let h = Harness::new();
    h.create(
        "audit",
        json!({
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
            "Prefix": "out/",
            "ProcessingConfiguration": {"Enabled": true, "Processors": [
                {"Type": "AppendDelimiterToRecord", "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}]}]},
            "S3BackupMode": "Enabled",
            "S3BackupConfiguration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake",
                "Prefix": "source/", "CompressionFormat": "GZIP"},
        }),
    )
    .await;
    let d = h.ok("DescribeDeliveryStream", json!({"DeliveryStreamName": "audit"})).await;
    let ext = &d["DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"];
    assert_eq!(ext["S3BackupMode"], "Enabled");
    assert_eq!(ext["S3BackupDescription"]["Prefix"], "source/");
    h.put("audit", b"a").await;
    h.put("audit", b"b").await;
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    let objects = h.objects();
    let out: Vec<_> = objects.iter().filter(|(k, _)| k.starts_with("out/2026/03/05/07/audit-1-")).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, b"a\nb\n", "processed records go to the destination");
    let backup: Vec<_> = objects.iter().filter(|(k, _)| k.starts_with("source/2026/03/05/07/audit-1-")).collect();
    assert_eq!(backup.len(), 1, "{objects:?}");
    assert!(backup[0].0.ends_with(".gz"));
    assert_eq!(gunzip(&backup[0].1), b"ab", "the backup holds the source records");

    let e = h
        .call(
            "UpdateDestination",
            json!({"DeliveryStreamName": "audit", "CurrentDeliveryStreamVersionId": "1",
        "DestinationId": "destinationId-000000000001", "ExtendedS3DestinationUpdate": {"S3BackupMode": "Disabled"}}),
        )
        .await;
    assert!(e.unwrap_err().starts_with("InvalidArgumentException"), "backup cannot be switched off");
    let e = h
        .call("CreateDeliveryStream", json!({"DeliveryStreamName": "nobackup", "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake", "S3BackupMode": "Enabled"}}))
        .await;
    assert!(e.unwrap_err().contains("S3BackupConfiguration is required"));
}

#[tokio::test]
async fn custom_time_zone_applies_to_prefix_and_name() {
    let h = Harness::new();
    let e = h
        .call("CreateDeliveryStream", json!({"DeliveryStreamName": "x", "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake", "CustomTimeZone": "Mars/Olympus"}}))
        .await;
    assert!(e.unwrap_err().starts_with("InvalidArgumentException"));
    h.create(
        "tokyo",
        json!({"CustomTimeZone": "Asia/Tokyo", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}}),
    )
    .await;
    h.put("tokyo", b"x").await;
    h.clock.advance_secs(60);
    h.firehose.flush(false).await;
    let objects = h.objects();
    assert_eq!(objects.len(), 1);
    assert!(objects[0].0.starts_with("2026/03/05/16/tokyo-1-2026-03-05-16-08-09-"), "UTC+9: {}", objects[0].0);
}

#[tokio::test]
async fn describe_shows_delivery_errors_until_delivery_recovers() {
    let h = Harness::new();
    h.create("blocked", json!({"BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})).await;
    // A file where the bucket's directory should be makes every write fail.
    std::fs::create_dir_all(h.dir.path().join("s3")).unwrap();
    std::fs::write(h.dir.path().join("s3/lake"), b"not a directory").unwrap();
    h.put("blocked", b"kept").await;
    h.clock.advance_secs(60);
    let retry_at = h.firehose.flush(false).await;
    assert_eq!(retry_at, Some(START_MS + 65_000), "a failed write is retried");
    let d = h.ok("DescribeDeliveryStream", json!({"DeliveryStreamName": "blocked"})).await;
    let failure = &d["DeliveryStreamDescription"]["FailureDescription"];
    assert_eq!(failure["Type"], "UNKNOWN_ERROR");
    assert!(failure["Details"].as_str().unwrap().starts_with("Writing to S3 failed"), "{failure}");
    assert_eq!(counter(&h.firehose, "delivery_failures", "blocked"), 1);

    std::fs::remove_file(h.dir.path().join("s3/lake")).unwrap();
    h.clock.advance_secs(5);
    h.firehose.flush(false).await;
    assert_eq!(h.objects().iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(), vec![b"kept".to_vec()]);
    let d = h.ok("DescribeDeliveryStream", json!({"DeliveryStreamName": "blocked"})).await;
    assert!(d["DeliveryStreamDescription"].get("FailureDescription").is_none(), "cleared once delivery works");
}

#[tokio::test]
async fn buffered_records_survive_restart() {
    let mut h = Harness::new();
    h.create("keep", json!({"BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 300}})).await;
    h.put("keep", b"durable").await;
    h.restart();
    h.clock.advance_secs(300);
    h.firehose.flush(false).await;
    assert_eq!(h.objects().iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(), vec![b"durable".to_vec()]);
}

#[tokio::test]
async fn kinesis_source_feeds_every_delivery_stream_once_across_restarts() {
    let mut h = Harness::new();
    let k = |action: &'static str, input: Value| {
        let ctx = h.ctx.clone();
        let svc = &h.kinesis;
        async move { svc.handle(&ctx, action, input).await.unwrap() }
    };
    k("CreateStream", json!({"StreamName": "events", "ShardCount": 2})).await;
    for name in ["a", "b"] {
        h.ok(
            "CreateDeliveryStream",
            json!({"DeliveryStreamName": name, "DeliveryStreamType": "KinesisStreamAsSource",
                   "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/events", "RoleARN": "arn:aws:iam::000000000000:role/firehose"},
                   "ExtendedS3DestinationConfiguration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake", "Prefix": format!("{name}/"),
                       "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}}}),
        )
        .await;
    }
    let direct = h.call("PutRecord", json!({"DeliveryStreamName": "a", "Record": {"Data": "eA=="}})).await;
    assert!(direct.unwrap_err().starts_with("InvalidArgumentException"), "no direct puts to a Kinesis-sourced stream");
    h.clock.advance_ms(5);
    for i in 0..6 {
        let data = base64::engine::general_purpose::STANDARD.encode(format!("r{i};"));
        k("PutRecord", json!({"StreamName": "events", "PartitionKey": format!("k{i}"), "Data": data})).await;
    }
    assert!(h.firehose.poll_sources().await);
    h.restart();
    assert!(h.firehose.poll_sources().await);
    h.firehose.flush(false).await;
    for name in ["a", "b"] {
        let mut got: Vec<String> = h
            .objects()
            .into_iter()
            .filter(|(key, _)| key.starts_with(&format!("{name}/")))
            .flat_map(|(_, body)| {
                String::from_utf8(body)
                    .unwrap()
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        got.sort();
        assert_eq!(got, vec!["r0", "r1", "r2", "r3", "r4", "r5"], "delivery stream {name} got every record once");
    }
}
