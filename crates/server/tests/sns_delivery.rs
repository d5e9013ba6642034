//! SNS across crashes: a publish whose HTTP delivery is still being retried when the
//! server is SIGKILLed is delivered after restart, and under repeated SIGKILLs every
//! acknowledged publish reaches its SQS subscriber.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback HTTP endpoint answering every POST with `status`, recording (status, body).
struct Endpoint {
    url: String,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(500));
        let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
        let (st, sn) = (status.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let code = st.load(Ordering::SeqCst);
                sn.lock().unwrap().push((code, String::from_utf8_lossy(&body).into_owned()));
                let _ = write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Endpoint { url, status, seen }
    }

    fn wait_for(&self, what: impl Fn(&(u16, String)) -> bool) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(hit) = self.seen.lock().unwrap().iter().find(|e| what(e)) {
                return hit.clone();
            }
            assert!(Instant::now() < deadline, "endpoint never saw the expected request");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Subscribes `target` (protocol and endpoint) to `topic` with one subscription attribute.
fn subscribe(
    a: &ureq::Agent,
    server: &str,
    topic: &str,
    (protocol, target): (&str, &str),
    (key, value): (&str, &str),
) -> (u16, String) {
    let form = [
        ("Action", "Subscribe"),
        ("TopicArn", topic),
        ("Protocol", protocol),
        ("Endpoint", target),
        ("Attributes.entry.1.key", key),
        ("Attributes.entry.1.value", value),
    ];
    query_call_as(a, server, "sns", &form)
}

#[test]
fn http_delivery_resumes_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::start();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (status, xml) = query_call_as(&a, &s.endpoint, "sns", &[("Action", "CreateTopic"), ("Name", "hooks")]);
    assert_eq!(status, 200, "{xml}");
    let topic = xml_field(&xml, "TopicArn").unwrap();
    let policy = r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":1,"numRetries":100}}"#;
    let (status, xml) = subscribe(&a, &s.endpoint, &topic, ("http", &endpoint.url), ("DeliveryPolicy", policy));
    assert_eq!(status, 200, "{xml}");
    let (_, confirmation) = endpoint.wait_for(|(_, b)| b.contains("SubscriptionConfirmation"));
    let token = json(&confirmation)["Token"].as_str().unwrap().to_owned();
    let (status, xml) = query_call_as(
        &a,
        &s.endpoint,
        "sns",
        &[("Action", "ConfirmSubscription"), ("TopicArn", &topic), ("Token", &token)],
    );
    assert_eq!(status, 200, "{xml}");

    let (status, _) =
        query_call_as(&a, &s.endpoint, "sns", &[("Action", "Publish"), ("TopicArn", &topic), ("Message", "survives")]);
    assert_eq!(status, 200);
    endpoint.wait_for(|(code, b)| *code == 500 && b.contains("\"Message\" : \"survives\""));
    s.kill();

    endpoint.status.store(200, Ordering::SeqCst);
    let _s = Server::spawn(dir.path(), &[]);
    let (_, delivered) = endpoint.wait_for(|(code, b)| *code == 200 && b.contains("\"Message\" : \"survives\""));
    assert_eq!(json(&delivered)["TopicArn"], topic.as_str());
}

/// Publishers publish to a topic with raw SQS subscriptions to three queues while the
/// server is killed at random moments (1 MiB segments: starts from an index checkpoint
/// and the log after it); a consumer deletes from the first queue meanwhile, whose
/// messages hold the body the other two share in the message log. Afterwards every
/// acknowledged publish is in the two other queues, whole, and in the first unless its
/// delete was sent.
#[test]
fn repeated_sigkills_lose_no_acknowledged_publish() {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;
    const QUEUES: [&str; 3] = ["fanout0", "fanout1", "fanout2"];
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let delete_attempted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let small_segments = ["--record-segment-mib", "1"];
    let padding = "p".repeat(500);
    let mut topic = String::new();
    for round in 0..(crash_rounds() / 2).max(2) {
        let s = Server::spawn(dir.path(), &small_segments);
        let a = agent();
        if round == 0 {
            let (_, xml) = query_call_as(&a, &s.endpoint, "sns", &[("Action", "CreateTopic"), ("Name", "news")]);
            topic = xml_field(&xml, "TopicArn").unwrap();
            for queue in QUEUES {
                let (status, body, _) =
                    json_call(&a, &s.endpoint, "CreateQueue", &format!(r#"{{"QueueName":"{queue}"}}"#));
                assert_eq!(status, 200, "{body}");
                let queue_arn = format!("arn:aws:sqs:us-east-1:000000000000:{queue}");
                let (status, xml) =
                    subscribe(&a, &s.endpoint, &topic, ("sqs", &queue_arn), ("RawMessageDelivery", "true"));
                assert_eq!(status, 200, "{xml}");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for t in 0..2 {
            let (endpoint, topic, acked, stop) = (s.endpoint.clone(), topic.clone(), acked.clone(), stop.clone());
            let padding = padding.clone();
            workers.push(std::thread::spawn(move || {
                let a = agent();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let message = format!("r{round}-t{t}-{i}-{padding}");
                    let form = [("Action", "Publish"), ("TopicArn", topic.as_str()), ("Message", message.as_str())];
                    match try_query_call_as(&a, &endpoint, "sns", &form) {
                        Some((200, _)) => {
                            acked.lock().unwrap().insert(message);
                        }
                        _ => return,
                    }
                    i += 1;
                }
            }));
        }
        let (endpoint, attempted, stop_consumer) = (s.endpoint.clone(), delete_attempted.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let a = agent();
            let url = format!("{endpoint}/000000000000/{}", QUEUES[0]);
            while !stop_consumer.load(Ordering::Relaxed) {
                let req = serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 1});
                let Some((200, body, _)) = try_json_call(&a, &endpoint, "ReceiveMessage", &req.to_string()) else {
                    return;
                };
                for m in json(&body)["Messages"].as_array().cloned().unwrap_or_default() {
                    attempted.lock().unwrap().insert(m["Body"].as_str().unwrap().to_owned());
                    let req = serde_json::json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]});
                    if !matches!(try_json_call(&a, &endpoint, "DeleteMessage", &req.to_string()), Some((200, _, _))) {
                        return;
                    }
                }
            }
        }));
        kill_under_load(s, random_kill_delay(round), &stop, workers);
    }
    let s = Server::spawn(dir.path(), &small_segments);
    let a = agent();
    let acked = acked.lock().unwrap();
    let delete_attempted = delete_attempted.lock().unwrap();
    assert!(acked.len() > 50, "the publishers made progress ({} acked)", acked.len());
    assert!(!delete_attempted.is_empty(), "the consumer deleted messages");
    for queue in QUEUES {
        let url = format!("{}/000000000000/{queue}", s.endpoint);
        let expected: Vec<&String> =
            acked.iter().filter(|m| queue != QUEUES[0] || !delete_attempted.contains(*m)).collect();
        let mut received: HashSet<String> = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !expected.iter().all(|m| received.contains(*m)) && Instant::now() < deadline {
            let req = serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 600});
            let (_, body, _) = json_call(&a, &s.endpoint, "ReceiveMessage", &req.to_string());
            let messages = json(&body)["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
            received.extend(messages.iter().map(|m| m["Body"].as_str().unwrap().to_owned()));
        }
        let lost: Vec<&&String> = expected.iter().filter(|m| !received.contains(**m)).collect();
        assert!(
            lost.is_empty(),
            "{queue}: {} acknowledged publishes lost, e.g. {:?}",
            lost.len(),
            lost.iter().take(3).collect::<Vec<_>>()
        );
    }
}
