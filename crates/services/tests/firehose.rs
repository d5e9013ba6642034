//! Firehose on a manual clock over the on-disk store: buffering by size and time, object
//! keys and prefixes, compression, versions, restarts, and a Kinesis source.

use base64::Engine as _;
use serde_json::{json, Value};
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use sluice_services::firehose::{FirehoseService, ObjectTarget};
use sluice_services::kinesis::KinesisService;
use sluice_services::RequestContext;
use std::io::Read;
use std::path::{Path, PathBuf};
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
        EmbeddedStore::open(
            EmbeddedOptions { data_dir: Some(dir.join("data")), durable: true, relax_cooldowns: true },
            clock.clone() as Arc<dyn Clock>,
        )
        .unwrap(),
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
        let ctx = RequestContext {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            host: "localhost".into(),
            scheme: "http".into(),
            request_id: "r".into(),
            access_key_id: "AKID".into(),
            path: "/".into(),
            trace_header: None,
        };
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
