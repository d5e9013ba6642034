//! Firehose across SIGKILL: records acknowledged by PutRecordBatch, and records read from
//! a Kinesis source, are buffered on disk; after a restart they are all delivered (here
//! by the flush at graceful shutdown), none lost.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn firehose(a: &ureq::Agent, endpoint: &str, action: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    firehose_call(a, endpoint, action, &body)
}

fn bucket_contents(root: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn buffered_records_survive_sigkill_and_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let role = "arn:aws:iam::000000000000:role/firehose";
    let dest = |prefix: &str| {
        json!({"RoleARN": role, "BucketARN": "arn:aws:s3:::lake", "Prefix": prefix,
               "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 900}})
    };
    let (status, body) = firehose(
        &a,
        &s.endpoint,
        "CreateDeliveryStream",
        json!({"DeliveryStreamName": "direct", "ExtendedS3DestinationConfiguration": dest("direct/")}),
    );
    assert_eq!(status, 200, "{body}");
    kinesis_call(&a, &s.endpoint, "CreateStream", &json!({"StreamName": "src", "ShardCount": 1})).unwrap();
    let (status, body) = firehose(
        &a,
        &s.endpoint,
        "CreateDeliveryStream",
        json!({
        "DeliveryStreamName": "fromkinesis", "DeliveryStreamType": "KinesisStreamAsSource",
        "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/src", "RoleARN": role},
        "ExtendedS3DestinationConfiguration": dest("kinesis/")}),
    );
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(20));

    let records: Vec<_> = (0..50).map(|i| json!({"Data": base64(&format!("d{i};"))})).collect();
    let (status, r) =
        firehose(&a, &s.endpoint, "PutRecordBatch", json!({"DeliveryStreamName": "direct", "Records": records}));
    assert_eq!((status, r["FailedPutCount"].as_u64()), (200, Some(0)));
    let kin: Vec<_> = (0..50).map(|i| json!({"Data": base64(&format!("k{i};")), "PartitionKey": "p"})).collect();
    kinesis_call(&a, &s.endpoint, "PutRecords", &json!({"StreamName": "src", "Records": kin})).unwrap();
    // Let the source read part or all of the stream, then crash.
    std::thread::sleep(Duration::from_millis(1500));
    s.kill();
    assert!(bucket_contents(&dir.path().join("s3")).is_empty(), "nothing was due yet");

    let s = Server::spawn(dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let status = s.terminate();
    assert!(status.success(), "shutdown flushes the buffers: {status:?}");
    let contents = bucket_contents(&dir.path().join("s3"));
    let mut got: Vec<&str> = contents.split(';').filter(|x| !x.is_empty()).collect();
    got.sort();
    got.dedup();
    let mut expected: Vec<String> = (0..50).map(|i| format!("d{i}")).chain((0..50).map(|i| format!("k{i}"))).collect();
    expected.sort();
    assert_eq!(got, expected.iter().map(String::as_str).collect::<Vec<_>>());
}

fn base64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Repeated SIGKILLs while producers put and the worker delivers (1-second buffers): every
/// acknowledged record ends up in the bucket (objects may repeat, records never vanish).
#[test]
fn repeated_sigkills_during_delivery_lose_no_acknowledged_record() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let next: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new((0..2).map(|_| Default::default()).collect());
    for round in 0..(crash_rounds() / 2).max(2) {
        let s = Server::spawn(dir.path(), &[]);
        if round == 0 {
            let config = json!({"DeliveryStreamName": "busy", "ExtendedS3DestinationConfiguration": {
                "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1}}});
            let (status, body) = firehose(&agent(), &s.endpoint, "CreateDeliveryStream", config);
            assert_eq!(status, 200, "{body}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut producers = Vec::new();
        for t in 0..2 {
            let (endpoint, acked, stop, next) = (s.endpoint.clone(), acked.clone(), stop.clone(), next.clone());
            producers.push(std::thread::spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    let i = next[t].fetch_add(1, Ordering::SeqCst);
                    let batch: Vec<String> = (0..10).map(|j| format!("t{t}-{}", i * 10 + j)).collect();
                    let records: Vec<_> = batch.iter().map(|r| json!({"Data": base64(&format!("{r};"))})).collect();
                    let body = json!({"DeliveryStreamName": "busy", "Records": records}).to_string();
                    let Ok(mut resp) = a
                        .post(&endpoint)
                        .header("X-Amz-Target", "Firehose_20150804.PutRecordBatch")
                        .header("Content-Type", "application/x-amz-json-1.1")
                        .send(body.as_str())
                    else {
                        return;
                    };
                    let ok = resp.status().as_u16() == 200
                        && resp.body_mut().read_to_string().is_ok_and(|t| t.contains("\"FailedPutCount\":0"));
                    if !ok {
                        return;
                    }
                    acked.lock().unwrap().extend(batch);
                }
            }));
        }
        kill_under_load(s, random_kill_delay(round) * 2, &stop, producers);
    }
    let s = Server::spawn(dir.path(), &[]);
    let status = s.terminate();
    assert!(status.success(), "shutdown flushes the buffers: {status:?}");
    let contents = bucket_contents(&dir.path().join("s3"));
    let delivered: HashSet<&str> = contents.split(';').filter(|x| !x.is_empty()).collect();
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 100, "the producers made progress ({} acked)", acked.len());
    let lost: Vec<&String> = acked.iter().filter(|r| !delivered.contains(r.as_str())).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
}
