//! Kinesis across repeated SIGKILLs: every acknowledged record is readable after restart, in
//! order, with the sequence number it was acknowledged with.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// (partition key, sequence number) of every record of the shard, in order.
fn read_shard(a: &ureq::Agent, endpoint: &str, shard: &str) -> Vec<(String, String)> {
    shard_records(a, endpoint, "events", shard)
        .iter()
        .map(|r| (r["PartitionKey"].as_str().unwrap().to_owned(), r["SequenceNumber"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn sigkill_under_load_keeps_every_acknowledged_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent();
    // (shard, partition key) -> acknowledged sequence number; the key encodes writer and index.
    let acked: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    // Per writer, the next batch index: keys stay unique and increasing across kills.
    let next: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new((0..3).map(|_| Default::default()).collect());
    for round in 0..(crash_rounds() / 2).max(2) {
        let s = Server::spawn(dir.path(), &[]);
        if round == 0 {
            let (status, body) =
                kinesis_call(&a, &s.endpoint, "CreateStream", &json!({"StreamName": "events", "ShardCount": 2}))
                    .unwrap();
            assert_eq!(status, 200, "{body}");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..3 {
            let (endpoint, acked, stop, next) = (s.endpoint.clone(), acked.clone(), stop.clone(), next.clone());
            writers.push(std::thread::spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    // Taken before sending: an unacknowledged batch may or may not be stored.
                    let i = next[w].fetch_add(1, Ordering::SeqCst);
                    let keys: Vec<String> = (0..5).map(|j| format!("w{w}-{:08}", i * 5 + j)).collect();
                    let records: Vec<_> = keys.iter().map(|k| json!({"PartitionKey": k, "Data": "eA=="})).collect();
                    match kinesis_call(
                        &a,
                        &endpoint,
                        "PutRecords",
                        &json!({"StreamName": "events", "Records": records}),
                    ) {
                        Some((200, r)) => {
                            let mut acked = acked.lock().unwrap();
                            for (k, res) in keys.iter().zip(r["Records"].as_array().unwrap()) {
                                acked.insert(
                                    k.clone(),
                                    (
                                        res["ShardId"].as_str().unwrap().to_owned(),
                                        res["SequenceNumber"].as_str().unwrap().to_owned(),
                                    ),
                                );
                            }
                        }
                        _ => return,
                    }
                }
            }));
        }
        kill_under_load(s, random_kill_delay(round), &stop, writers);
    }

    let s = Server::spawn(dir.path(), &[]);
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 50, "the writers made progress ({} acked)", acked.len());
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let stored = read_shard(&a, &s.endpoint, shard);
        // 56-digit decimals: compare by length, then digits.
        let seqs: Vec<(usize, &str)> = stored.iter().map(|(_, q)| (q.len(), q.as_str())).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers increase along {shard}");
        let by_key: HashMap<&str, &str> = stored.iter().map(|(k, q)| (k.as_str(), q.as_str())).collect();
        for (key, (acked_shard, seq)) in acked.iter().filter(|(_, (sh, _))| sh == shard) {
            assert_eq!(by_key.get(key.as_str()), Some(&seq.as_str()), "acknowledged record {key} on {acked_shard}");
        }
        // Per writer, keys (written in order) appear in order within the shard.
        for w in 0..3 {
            let prefix = format!("w{w}-");
            let keys: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).filter(|k| k.starts_with(&prefix)).collect();
            assert!(keys.windows(2).all(|p| p[0] < p[1]), "writer {w} order on {shard}");
        }
    }
}

/// Bytes of the record log's segment files in the data directory.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// The server's own maintenance compacts the record log: once a stream is deleted, the
/// segments it shared with another stream are copied forward and removed, and the other
/// stream's records stay readable, also after a SIGKILL.
#[test]
fn server_compacts_the_record_log_after_a_stream_is_deleted() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let a = agent();
    let s = Server::spawn(dir.path(), &["--record-segment-mib", "1"]);
    for name in ["kept", "dropped"] {
        let request = json!({"StreamName": name, "ShardCount": 1});
        let (status, body) = kinesis_call(&a, &s.endpoint, "CreateStream", &request).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Interleaved puts, five times as many bytes to "dropped": every segment holds both
    // streams, and each is under half live once "dropped" is gone.
    let filler = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 48 * 1024]);
    let mut kept = Vec::new();
    for i in 0..24 {
        let text = format!("kept-{i:02}-{}", "k".repeat(48 * 1024));
        let data = base64::engine::general_purpose::STANDARD.encode(&text);
        let put = json!({"StreamName": "kept", "Records": [{"PartitionKey": "k", "Data": data}]});
        let (status, body) = kinesis_call(&a, &s.endpoint, "PutRecords", &put).unwrap();
        assert_eq!((status, body["FailedRecordCount"].as_u64()), (200, Some(0)), "{body}");
        kept.push(text);
        let records: Vec<_> = (0..5).map(|_| json!({"PartitionKey": "d", "Data": filler})).collect();
        let put = json!({"StreamName": "dropped", "Records": records});
        let (status, body) = kinesis_call(&a, &s.endpoint, "PutRecords", &put).unwrap();
        assert_eq!((status, body["FailedRecordCount"].as_u64()), (200, Some(0)), "{body}");
    }
    let before = segment_bytes(dir.path());
    assert!(before > 6 * 1024 * 1024, "the puts should span several 1 MiB segments: {before} bytes");

    let (status, body) = kinesis_call(&a, &s.endpoint, "DeleteStream", &json!({"StreamName": "dropped"})).unwrap();
    assert_eq!(status, 200, "{body}");
    // One compaction step a second; nothing but the worker moves or deletes these segments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let live = kept.iter().map(String::len).sum::<usize>() as u64;
    while segment_bytes(dir.path()) > live + 2 * 1024 * 1024 {
        assert!(std::time::Instant::now() < deadline, "not compacted: {} bytes left", segment_bytes(dir.path()));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(stream_texts(&a, &s.endpoint, "kept"), kept);
    s.kill();

    let s = Server::spawn(dir.path(), &["--record-segment-mib", "1"]);
    assert_eq!(stream_texts(&a, &s.endpoint, "kept"), kept, "after SIGKILL");
}

/// What README promises for a damaged record log, through the real binary: a chunk whose
/// bytes changed fails GetRecords with a 5xx (never wrong data), and a segment that lost
/// committed bytes stops the server at start with exit status 3.
#[test]
fn a_damaged_record_log_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent();
    let s = Server::spawn(dir.path(), &[]);
    let (status, body) =
        kinesis_call(&a, &s.endpoint, "CreateStream", &json!({"StreamName": "events", "ShardCount": 1})).unwrap();
    assert_eq!(status, 200, "{body}");
    let put = json!({"StreamName": "events", "PartitionKey": "k", "Data": "aGVsbG8gd29ybGQ="});
    assert_eq!(kinesis_call(&a, &s.endpoint, "PutRecord", &put).unwrap().0, 200);
    assert_eq!(stream_texts(&a, &s.endpoint, "events"), ["hello world"]);
    assert!(s.terminate().success());
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a record log segment");

    // One byte of the record's data flipped: the chunk's CRC-32 no longer matches.
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.windows(11).position(|w| w == b"hello world").expect("the record in the segment");
    bytes[at] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let (_, shards) = kinesis_call(&a, &s.endpoint, "ListShards", &json!({"StreamName": "events"})).unwrap();
    let shard = shards["Shards"][0]["ShardId"].as_str().unwrap().to_owned();
    let request = json!({"StreamName": "events", "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"});
    let (_, it) = kinesis_call(&a, &s.endpoint, "GetShardIterator", &request).unwrap();
    let (status, body) =
        kinesis_call(&a, &s.endpoint, "GetRecords", &json!({"ShardIterator": it["ShardIterator"]})).unwrap();
    assert!(status >= 500, "{status} {body}");
    assert!(body["Records"].is_null(), "no records from a damaged chunk: {body}");
    assert!(s.terminate().success());

    // The segment cut short of what the database says was committed.
    std::fs::write(&segment, &bytes[..bytes.len() / 2]).unwrap();
    let out = serve_to_exit(dir.path());
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "never served");
}
