//! Restart and crash tests against the real binary: SIGTERM stops cleanly with exit 0
//! and keeps everything; SIGKILL in the middle of load loses no acknowledged send
//! and brings back no acknowledged delete.

mod common;

use common::*;
use serde_json::json as j;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn drain(a: &ureq::Agent, endpoint: &str, url: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let (status, body, _) = json_call(
            a,
            endpoint,
            "ReceiveMessage",
            &j!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 600, "MessageSystemAttributeNames": ["All"]}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
        let msgs = json(&body)["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        out.extend(msgs);
    }
}

/// Sends to a FIFO queue; returns the sequence number.
fn send_fifo(a: &ureq::Agent, endpoint: &str, url: &str, body: &str, dedup: &str) -> u128 {
    let req = j!({"QueueUrl": url, "MessageBody": body, "MessageGroupId": "g", "MessageDeduplicationId": dedup});
    let (status, text, _) = json_call(a, endpoint, "SendMessage", &req.to_string());
    assert_eq!(status, 200, "{text}");
    json(&text)["SequenceNumber"].as_str().unwrap().parse().unwrap()
}

#[test]
fn graceful_restart_keeps_messages_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (_, body, _) = json_call(&a, &s.endpoint, "CreateQueue", r#"{"QueueName":"durable"}"#);
    let url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    let (_, body, _) =
        json_call(&a, &s.endpoint, "CreateQueue", r#"{"QueueName":"d.fifo","Attributes":{"FifoQueue":"true"}}"#);
    let fifo_url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    for i in 0..100 {
        let (status, _, _) = json_call(
            &a,
            &s.endpoint,
            "SendMessage",
            &j!({"QueueUrl": url, "MessageBody": format!("m{i}")}).to_string(),
        );
        assert_eq!(status, 200);
    }
    let seq_before = send_fifo(&a, &s.endpoint, &fifo_url, "f1", "1");
    let (_, body, _) = json_call(
        &a,
        &s.endpoint,
        "ReceiveMessage",
        &j!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 600}).to_string(),
    );
    let received = json(&body)["Messages"].as_array().cloned().unwrap();
    assert_eq!(received.len(), 10);
    let mut deleted = HashSet::new();
    for m in &received[..5] {
        let (status, _, _) = json_call(
            &a,
            &s.endpoint,
            "DeleteMessage",
            &j!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}).to_string(),
        );
        assert_eq!(status, 200);
        deleted.insert(m["Body"].as_str().unwrap().to_owned());
    }
    let status = s.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");

    let s = Server::spawn(dir.path(), &[]);
    let (_, body, _) =
        json_call(&a, &s.endpoint, "GetQueueAttributes", &j!({"QueueUrl": url, "AttributeNames": ["All"]}).to_string());
    let attrs = &json(&body)["Attributes"];
    assert_eq!(attrs["ApproximateNumberOfMessages"], "90");
    assert_eq!(attrs["ApproximateNumberOfMessagesNotVisible"], "5", "in-flight messages stay in flight");
    let bodies: HashSet<String> =
        drain(&a, &s.endpoint, &url).iter().map(|m| m["Body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies.len(), 90);
    assert!(bodies.is_disjoint(&deleted));
    assert_eq!(send_fifo(&a, &s.endpoint, &fifo_url, "f1", "1"), seq_before, "dedup survives restart");
    assert!(send_fifo(&a, &s.endpoint, &fifo_url, "f2", "2") > seq_before);
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let deleted: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Deletes that were sent: the server may have committed one and died before answering.
    let delete_attempted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut url = String::new();
    // 1 MiB segments and half-KiB bodies: a message index checkpoint every 2 MiB of log,
    // so that later rounds start from an index and the entries after it, and some kills
    // land mid-checkpoint.
    let small_segments = ["--record-segment-mib", "1"];
    let padding = "p".repeat(500);
    for round in 0..crash_rounds() {
        let s = Server::spawn(dir.path(), &small_segments);
        let endpoint = s.endpoint.clone();
        let a = agent();
        if round == 0 {
            let (_, body, _) = json_call(&a, &endpoint, "CreateQueue", r#"{"QueueName":"crash"}"#);
            url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
        }
        // The queue URL carries the old port; the queue is found by account and name.
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for t in 0..4 {
            let (endpoint, url, acked, stop) = (endpoint.clone(), url.clone(), acked.clone(), stop.clone());
            let padding = padding.clone();
            workers.push(std::thread::spawn(move || {
                let a = agent();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!("r{round}-t{t}-{i}-{padding}");
                    let req = j!({"QueueUrl": url, "MessageBody": body}).to_string();
                    match try_json_call(&a, &endpoint, "SendMessage", &req) {
                        Some((200, _, _)) => {
                            acked.lock().unwrap().insert(body);
                        }
                        _ => return,
                    }
                    i += 1;
                }
            }));
        }
        // Two consumers compete for the same messages.
        for _ in 0..2 {
            let (endpoint, url, deleted, stop) = (endpoint.clone(), url.clone(), deleted.clone(), stop.clone());
            let delete_attempted = delete_attempted.clone();
            workers.push(std::thread::spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    // A short visibility timeout, so that messages this consumer held when the
                    // server was killed are visible again for the final check.
                    let req = j!({"QueueUrl": url, "MaxNumberOfMessages": 5, "VisibilityTimeout": 1}).to_string();
                    let Some((status, body, _)) = try_json_call(&a, &endpoint, "ReceiveMessage", &req) else { return };
                    if status != 200 {
                        return;
                    }
                    for m in json(&body)["Messages"].as_array().cloned().unwrap_or_default() {
                        let req = j!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}).to_string();
                        delete_attempted.lock().unwrap().insert(m["Body"].as_str().unwrap().to_owned());
                        match try_json_call(&a, &endpoint, "DeleteMessage", &req) {
                            Some((200, _, _)) => {
                                deleted.lock().unwrap().insert(m["Body"].as_str().unwrap().to_owned());
                            }
                            _ => return,
                        }
                    }
                }
            }));
        }
        kill_under_load(s, random_kill_delay(round), &stop, workers);
    }
    let s = Server::spawn(dir.path(), &small_segments);
    let a = agent();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(dir.path().join("messages/index.snap").exists(), "a checkpoint wrote the message index");
    let received: HashSet<String> =
        drain(&a, &s.endpoint, &url).iter().map(|m| m["Body"].as_str().unwrap().to_owned()).collect();
    let acked = acked.lock().unwrap();
    let deleted = deleted.lock().unwrap();
    let delete_attempted = delete_attempted.lock().unwrap();
    assert!(acked.len() > 50, "the load generator made progress ({} acked)", acked.len());
    assert!(!deleted.is_empty(), "the consumer deleted messages");
    let lost: Vec<&String> =
        acked.iter().filter(|b| !received.contains(*b) && !delete_attempted.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    let resurrected: Vec<&String> = deleted.iter().filter(|b| received.contains(*b)).collect();
    assert!(resurrected.is_empty(), "deleted messages came back: {:?}", resurrected.iter().take(5).collect::<Vec<_>>());
}

#[test]
fn sigterm_ends_long_polls_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (_, body, _) = json_call(&a, &s.endpoint, "CreateQueue", r#"{"QueueName":"idle"}"#);
    let url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    let endpoint = s.endpoint.clone();
    let poll = std::thread::spawn(move || {
        json_call(&agent(), &endpoint, "ReceiveMessage", &j!({"QueueUrl": url, "WaitTimeSeconds": 20}).to_string())
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    let (code, body, _) = poll.join().unwrap();
    assert_eq!(code, 200, "the in-flight long poll was answered: {body}");
    assert!(json(&body).get("Messages").is_none());
}

/// SIGTERM sent the moment the listening line appears (as a supervisor or a test may) is a
/// graceful stop with status 0, not death by the default signal action: the handlers are
/// installed before the line is printed.
#[test]
fn sigterm_right_after_start_is_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let s = Server::spawn(dir.path(), &[]);
        let status = s.terminate();
        assert!(status.success(), "round {round}: {status:?}");
    }
}

/// A damaged database is refused at start with a clear message and exit status 3, never
/// served; a clean shutdown leaves the marker that lets large databases skip the check.
#[test]
fn corrupt_database_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (_, body, _) = json_call(&a, &s.endpoint, "CreateQueue", r#"{"QueueName":"precious"}"#);
    let url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    for i in 0..200 {
        let send = j!({"QueueUrl": url, "MessageBody": format!("message {i} {}", "x".repeat(500))});
        assert_eq!(json_call(&a, &s.endpoint, "SendMessage", &send.to_string()).0, 200);
    }
    assert!(s.terminate().success());
    let db = dir.path().join("sluice.db");
    assert!(dir.path().join("sluice.db.clean-shutdown").exists(), "a clean shutdown is marked");

    // Every page after the first (the schema's root is intact, its tables are not). The
    // WAL goes too: pages it still holds would be read from it instead of the damaged
    // file, and which pages it holds at a shutdown depends on when its checkpoints ran.
    let _ = std::fs::remove_file(dir.path().join("sluice.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("sluice.db-shm"));
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 8192, "the queue's tables are in the main file after a clean shutdown");
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = serve_to_exit(dir.path());
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the database in the data directory is corrupt"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "never served");

    // A file that is not a database at all.
    std::fs::write(&db, b"definitely not sqlite, just some bytes that are long enough to matter").unwrap();
    let _ = std::fs::remove_file(dir.path().join("sluice.db-wal"));
    let out = serve_to_exit(dir.path());
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

/// A message log segment damaged before its seal is refused at start after a crash (the
/// log is replayed) with exit status 3, never served.
#[test]
fn damaged_message_log_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--record-segment-mib", "1"]);
    let a = agent();
    let (_, body, _) = json_call(&a, &s.endpoint, "CreateQueue", r#"{"QueueName":"precious"}"#);
    let url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    let entries: Vec<_> = (0..10).map(|i| j!({"Id": format!("m{i}"), "MessageBody": "x".repeat(1000)})).collect();
    for _ in 0..150 {
        let batch = j!({"QueueUrl": url, "Entries": entries}).to_string();
        assert_eq!(json_call(&a, &s.endpoint, "SendMessageBatch", &batch).0, 200);
    }
    s.kill();
    let log = dir.path().join("messages");
    assert!(log.join("00000002.log").exists(), "1.5 MB of messages filled the first 1 MiB segment");
    let first = log.join("00000001.log");
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let out = serve_to_exit(dir.path());
    assert_eq!(out.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("message log segment 1"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "never served");
}

/// FIFO order survives crashes: producers retry unacknowledged sends with the same
/// deduplication id (as SDKs do), a consumer receives and deletes; after SIGKILLs at random
/// moments every acknowledged send is delivered and each group is seen in send order
/// (a message may repeat when its delete was lost, never overtake an earlier one).
#[test]
fn sigkill_keeps_fifo_order_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let observed: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let next: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new((0..3).map(|_| Default::default()).collect());
    let mut url = String::new();
    for round in 0..(crash_rounds() / 2).max(2) {
        let s = Server::spawn(dir.path(), &[]);
        let endpoint = s.endpoint.clone();
        if round == 0 {
            let req = r#"{"QueueName":"crash.fifo","Attributes":{"FifoQueue":"true"}}"#;
            let (_, body, _) = json_call(&agent(), &endpoint, "CreateQueue", req);
            url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for group in 0..3 {
            let (endpoint, url, acked, stop, next) =
                (endpoint.clone(), url.clone(), acked.clone(), stop.clone(), next.clone());
            workers.push(std::thread::spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    let i = next[group].load(Ordering::Relaxed);
                    let body = format!("{group}:{i}");
                    let req = j!({"QueueUrl": url, "MessageBody": body, "MessageGroupId": format!("g{group}"),
                                  "MessageDeduplicationId": body})
                    .to_string();
                    match try_json_call(&a, &endpoint, "SendMessage", &req) {
                        Some((200, _, _)) => {
                            acked.lock().unwrap().insert(body);
                            next[group].store(i + 1, Ordering::Relaxed);
                        }
                        _ => return, // retried after the restart, same deduplication id
                    }
                }
            }));
        }
        {
            let (endpoint, url, observed, stop) = (endpoint.clone(), url.clone(), observed.clone(), stop.clone());
            workers.push(std::thread::spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    let req = j!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 1}).to_string();
                    let Some((200, body, _)) = try_json_call(&a, &endpoint, "ReceiveMessage", &req) else { return };
                    for m in json(&body)["Messages"].as_array().cloned().unwrap_or_default() {
                        let (g, i) = m["Body"].as_str().unwrap().split_once(':').unwrap();
                        observed.lock().unwrap().push((g.parse().unwrap(), i.parse().unwrap()));
                        let req = j!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}).to_string();
                        if !matches!(try_json_call(&a, &endpoint, "DeleteMessage", &req), Some((200, _, _))) {
                            return;
                        }
                    }
                }
            }));
        }
        kill_under_load(s, random_kill_delay(round), &stop, workers);
    }
    let s = Server::spawn(dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    // Received and deleted, since a FIFO group's in-flight messages hold back the rest.
    let a = agent();
    let mut rest: Vec<(usize, u64)> = Vec::new();
    loop {
        let req = j!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60}).to_string();
        let (status, body, _) = json_call(&a, &s.endpoint, "ReceiveMessage", &req);
        assert_eq!(status, 200, "{body}");
        let msgs = json(&body)["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let (g, i) = m["Body"].as_str().unwrap().split_once(':').unwrap();
            rest.push((g.parse().unwrap(), i.parse().unwrap()));
            let req = j!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}).to_string();
            assert_eq!(json_call(&a, &s.endpoint, "DeleteMessage", &req).0, 200);
        }
    }
    let mut observed = observed.lock().unwrap().clone();
    observed.extend(rest);
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 30, "the producers made progress ({} acked)", acked.len());
    let seen: HashSet<String> = observed.iter().map(|(g, i)| format!("{g}:{i}")).collect();
    let lost: Vec<&String> = acked.iter().filter(|b| !seen.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged FIFO messages lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    for group in 0..3 {
        let order: Vec<u64> = observed.iter().filter(|(g, _)| *g == group).map(|(_, i)| *i).collect();
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "group {group} out of order: {order:?}");
    }
}

/// A full disk (simulated with `--max-data-mib`, which makes SQLite fail writes with the
/// same SQLITE_FULL a full disk gives): writes fail with a 5xx AWS error, reads and deletes
/// keep working, writes work again once space is freed, a failed FIFO send can be retried
/// with its deduplication id, and the data survives a restart intact.
#[test]
fn full_disk_fails_writes_cleanly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--max-data-mib", "1"]);
    let a = agent();
    let (_, body, _) = json_call(&a, &s.endpoint, "CreateQueue", r#"{"QueueName":"bulk"}"#);
    let bulk = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    let fifo_req = r#"{"QueueName":"orders.fifo","Attributes":{"FifoQueue":"true"}}"#;
    let (_, body, _) = json_call(&a, &s.endpoint, "CreateQueue", fifo_req);
    let fifo = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    let big = "x".repeat(60 * 1024);
    let mut accepted = 0;
    let full = loop {
        let (status, body, _) =
            json_call(&a, &s.endpoint, "SendMessage", &j!({"QueueUrl": bulk, "MessageBody": big}).to_string());
        if status != 200 {
            break (status, body);
        }
        accepted += 1;
        assert!(accepted < 100, "a 1 MiB database fills up");
    };
    assert_eq!(full.0, 500, "{}", full.1);
    assert_eq!(json(&full.1)["__type"], "InternalFailure");
    assert!(accepted > 3, "{accepted} messages fit before the disk was full");
    let order = j!({"QueueUrl": fifo, "MessageBody": big, "MessageGroupId": "g", "MessageDeduplicationId": "order-1"});
    assert_eq!(json_call(&a, &s.endpoint, "SendMessage", &order.to_string()).0, 500, "full for FIFO too");

    // Reads and deletes still work, and free space.
    let (status, body, _) = json_call(
        &a,
        &s.endpoint,
        "ReceiveMessage",
        &j!({"QueueUrl": bulk, "MaxNumberOfMessages": 4, "VisibilityTimeout": 60}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let received = json(&body)["Messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(received.len(), 4);
    for m in &received {
        let req = j!({"QueueUrl": bulk, "ReceiptHandle": m["ReceiptHandle"]}).to_string();
        assert_eq!(json_call(&a, &s.endpoint, "DeleteMessage", &req).0, 200);
    }
    // The retried FIFO send is stored, not taken for a duplicate of the failed one.
    let (status, body, _) = json_call(&a, &s.endpoint, "SendMessage", &order.to_string());
    assert_eq!(status, 200, "{body}");
    let (_, body, _) = json_call(&a, &s.endpoint, "ReceiveMessage", &j!({"QueueUrl": fifo}).to_string());
    assert_eq!(json(&body)["Messages"][0]["Body"].as_str().map(str::len), Some(big.len()), "{body}");

    assert!(s.terminate().success());
    let s = Server::spawn(dir.path(), &[]);
    let (_, body, _) = json_call(
        &a,
        &s.endpoint,
        "GetQueueAttributes",
        &j!({"QueueUrl": bulk, "AttributeNames": ["ApproximateNumberOfMessages"]}).to_string(),
    );
    assert_eq!(
        json(&body)["Attributes"]["ApproximateNumberOfMessages"],
        (accepted - 4).to_string(),
        "what was acknowledged is intact after a restart"
    );
}

/// `--max-data-mib` bounds the Kinesis record log too (log and database together): puts
/// past it fail with a 5xx and store nothing, what was acknowledged reads back whole, and
/// a restart without the limit accepts writes again.
#[test]
fn kinesis_records_respect_the_data_size_limit() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--max-data-mib", "2"]);
    let a = agent();
    let call =
        |endpoint: &str, action: &str, body: serde_json::Value| kinesis_call(&a, endpoint, action, &body).unwrap();
    assert_eq!(call(&s.endpoint, "CreateStream", j!({"StreamName": "s", "ShardCount": 1})).0, 200);
    let record = |i: usize| format!("{i:04}{}", "r".repeat(60 * 1024));
    let put = |endpoint: &str, i: usize| {
        let data = base64::engine::general_purpose::STANDARD.encode(record(i));
        call(endpoint, "PutRecord", j!({"StreamName": "s", "PartitionKey": "k", "Data": data}))
    };
    let mut accepted = 0;
    let refused = loop {
        let (status, body) = put(&s.endpoint, accepted);
        if status != 200 {
            break (status, body);
        }
        accepted += 1;
        assert!(accepted < 100, "a 2 MiB data directory fills up");
    };
    assert_eq!(refused.0, 500, "{}", refused.1);
    assert_eq!(refused.1["__type"], "InternalFailure");
    assert!(accepted > 3, "{accepted} records fit before the limit");
    let expected: Vec<String> = (0..accepted).map(record).collect();
    assert_eq!(stream_texts(&a, &s.endpoint, "s"), expected, "reads keep working, and show only what was acknowledged");

    assert!(s.terminate().success());
    let s = Server::spawn(dir.path(), &[]);
    assert_eq!(stream_texts(&a, &s.endpoint, "s"), expected, "intact after a restart");
    assert_eq!(put(&s.endpoint, accepted).0, 200, "writes resume without the limit");
}

/// SIGTERM closes an idle keep-alive connection at once (the drain finds the HTTP/1.1
/// loop between requests), rather than waiting out the 30 seconds open connections are
/// given to finish.
#[test]
fn sigterm_closes_idle_keep_alive_connections() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let addr = s.endpoint.trim_start_matches("http://").to_owned();
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    let started = std::time::Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "the idle connection held the stop: {:?}", started.elapsed());
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(idle.read(&mut answer).unwrap_or(usize::MAX), 0, "the server closed the connection");
}
