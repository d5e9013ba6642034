//! `sluice bench` against the real server: the counts it reports are what the server stored.

mod common;

use common::{agent, json, json_call, Server};
use std::process::Command;

/// `sluice bench ARGS --endpoint ENDPOINT --json`, run to its end successfully.
fn bench_output(endpoint: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("bench")
        .args(args)
        .args(["--endpoint", endpoint, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn bench(endpoint: &str, args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&bench_output(endpoint, args).stdout).unwrap()
}

#[test]
fn bench_reports_what_the_server_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();

    let report = bench(&s.endpoint, &["sqs-send", "--count", "120", "--connections", "4", "--body-size", "100"]);
    assert_eq!(report["requests"], 120);
    assert_eq!(report["units"], 120);
    assert_eq!(report["errors"], serde_json::json!({}));
    assert!(report["latency_us"]["p50"].as_u64().unwrap() > 0);
    let (_, body, _) = json_call(&a, &s.endpoint, "ListQueues", r#"{"QueueNamePrefix":"bench-"}"#);
    let url = json(&body)["QueueUrls"][0].as_str().unwrap().to_owned();
    let req = serde_json::json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]});
    let (_, body, _) = json_call(&a, &s.endpoint, "GetQueueAttributes", &req.to_string());
    assert_eq!(json(&body)["Attributes"]["ApproximateNumberOfMessages"], "120", "every reported send is stored");

    // --rate paces the connections: at 100 requests/s over 4 connections for 1 second each
    // connection's schedule allows at most 26 requests, however fast the server answers
    // (without pacing, four connections send thousands a second here).
    let report = bench(&s.endpoint, &["sqs-send", "--rate", "100", "--duration", "1", "--connections", "4"]);
    let paced = report["requests"].as_u64().unwrap();
    assert!((1..=104).contains(&paced), "{paced} requests at 100/s for 1 s");

    // --queue names the queue: another scenario (or run) can use the same one.
    bench(&s.endpoint, &["sqs-send", "--count", "7", "--connections", "1", "--queue", "named"]);
    bench(&s.endpoint, &["sqs-send", "--count", "3", "--connections", "1", "--queue", "named"]);
    let (_, body, _) = json_call(&a, &s.endpoint, "GetQueueUrl", r#"{"QueueName":"named"}"#);
    let req =
        serde_json::json!({"QueueUrl": json(&body)["QueueUrl"], "AttributeNames": ["ApproximateNumberOfMessages"]});
    let (_, body, _) = json_call(&a, &s.endpoint, "GetQueueAttributes", &req.to_string());
    assert_eq!(json(&body)["Attributes"]["ApproximateNumberOfMessages"], "10");

    // --late-ms: every request slower than the threshold is printed with its start and
    // latency; at 0 ms that is every request, at a minute none.
    let late_lines = |threshold: &str| {
        let before = std::time::SystemTime::now();
        let out =
            bench_output(&s.endpoint, &["sqs-send", "--count", "12", "--connections", "2", "--late-ms", threshold]);
        let micros = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
        let (from, to) = (micros(before), micros(std::time::SystemTime::now()));
        let lines: Vec<(u64, u64)> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("late "))
            .map(|l| {
                let (start, latency) = l.split_once(' ').unwrap();
                (start.parse().unwrap(), latency.parse().unwrap())
            })
            .collect();
        for &(start, latency) in &lines {
            assert!(from <= start && start + latency <= to, "{start} + {latency} outside {from}..{to}");
        }
        lines.len()
    };
    assert_eq!(late_lines("0"), 12);
    assert_eq!(late_lines("60000"), 0);

    // --envelope: the subscriptions deliver SNS's signed envelope instead of raw messages,
    // signed as the topic's --signature-version says.
    let report = bench(
        &s.endpoint,
        &[
            "sns-fanout",
            "--count",
            "2",
            "--connections",
            "1",
            "--queues",
            "2",
            "--envelope",
            "--signature-version",
            "2",
        ],
    );
    assert_eq!(report["delivery"], "envelope");
    assert_eq!(report["signature version"], "2");
    let (_, body, _) = json_call(&a, &s.endpoint, "ListQueues", r#"{"QueueNamePrefix":"bench-"}"#);
    let fan =
        json(&body)["QueueUrls"].as_array().unwrap().iter().find(|u| u.as_str().unwrap().ends_with("-fan0")).cloned();
    let req = serde_json::json!({"QueueUrl": fan.expect("a fan-out queue"), "MaxNumberOfMessages": 10});
    let (_, body, _) = json_call(&a, &s.endpoint, "ReceiveMessage", &req.to_string());
    let messages = json(&body)["Messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 2, "{body}");
    for m in messages {
        let envelope = json(m["Body"].as_str().unwrap());
        assert_eq!(envelope["Type"], "Notification");
        assert_eq!(envelope["SignatureVersion"], "2");
        assert!(envelope["Signature"].as_str().is_some_and(|s| !s.is_empty()), "{envelope}");
    }

    let report = bench(&s.endpoint, &["kinesis-put", "--count", "4", "--connections", "2", "--body-size", "10"]);
    assert_eq!(report["units"], 2000, "4 PutRecords of 500");
    assert_eq!(report["shards"], "2");

    for batch in [false, true] {
        let mut args = vec!["sqs-cycle", "--duration", "2", "--connections", "4", "--body-size", "64"];
        if batch {
            args.push("--batch");
        }
        let report = bench(&s.endpoint, &args);
        assert_eq!(report["sends per request"], if batch { "10" } else { "1" });
        assert!(report["units"].as_u64().unwrap() > 0, "{report}");
        assert!(report["end_to_end_latency_us"]["p50"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}));
    }

    // sqs-receive fills its queue first (45: four full batches and a partial one), then
    // receives with VisibilityTimeout 0, so the queue keeps every message.
    let report = bench(&s.endpoint, &["sqs-receive", "--prefill", "45", "--count", "20", "--connections", "2"]);
    assert_eq!(report["prefilled messages"], "45");
    assert_eq!(report["units"], 200, "20 receives of 10 from a queue of 45");
    let (_, body, _) = json_call(&a, &s.endpoint, "ListQueues", r#"{"QueueNamePrefix":"bench-"}"#);
    let queues = json(&body)["QueueUrls"].as_array().unwrap().clone();
    let counts: Vec<String> = queues
        .iter()
        .map(|url| {
            let req = serde_json::json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]});
            let (_, body, _) = json_call(&a, &s.endpoint, "GetQueueAttributes", &req.to_string());
            json(&body)["Attributes"]["ApproximateNumberOfMessages"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(counts.contains(&"45".to_owned()), "{counts:?}");

    // Errors are reported by their AWS code: a signature is refused with --auth sigv4.
    let secured =
        Server::spawn(&dir.path().join("secured"), &["--auth", "sigv4", "--credential", "AKIDX:s:111122223333"]);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "sqs-send", "--count", "1", "--endpoint", &secured.endpoint])
        .env("AWS_ACCESS_KEY_ID", "AKIDX")
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["bench", "sqs-send", "--count", "10", "--json", "--endpoint", &secured.endpoint])
            .env("AWS_ACCESS_KEY_ID", "AKIDX")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(report["units"], 10, "signed with the right secret, every request is accepted");
}
