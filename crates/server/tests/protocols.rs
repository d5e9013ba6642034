//! Wire-level tests against the real binary: both protocols, h2c, AWS's errors for
//! bad input, and that bad input changes nothing.

mod common;

use common::*;
use serde_json::json as j;

fn create(agent: &ureq::Agent, endpoint: &str, name: &str) -> String {
    create_with(agent, endpoint, name, j!({}))
}

/// [`create`] with queue attributes.
fn create_with(agent: &ureq::Agent, endpoint: &str, name: &str, attributes: serde_json::Value) -> String {
    let request = j!({"QueueName": name, "Attributes": attributes}).to_string();
    let (status, body, _) = json_call(agent, endpoint, "CreateQueue", &request);
    assert_eq!(status, 200, "{body}");
    json(&body)["QueueUrl"].as_str().unwrap().to_owned()
}

#[test]
fn query_protocol_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (status, xml) = query_call(
        &a,
        &s.endpoint,
        &[
            ("Action", "CreateQueue"),
            ("QueueName", "q1"),
            ("Attribute.1.Name", "VisibilityTimeout"),
            ("Attribute.1.Value", "40"),
            ("Tag.1.Key", "k"),
            ("Tag.1.Value", "v"),
        ],
    );
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains(
            "<CreateQueueResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><CreateQueueResult><QueueUrl>"
        ),
        "{xml}"
    );
    assert!(xml.contains("<ResponseMetadata><RequestId>"));
    let url = format!("{}/000000000000/q1", s.endpoint);

    let (status, xml) = query_call(
        &a,
        &s.endpoint,
        &[
            ("Action", "SendMessage"),
            ("QueueUrl", &url),
            ("MessageBody", "a \"quoted\" <body>\r"),
            ("MessageAttribute.1.Name", "color"),
            ("MessageAttribute.1.Value.DataType", "String"),
            ("MessageAttribute.1.Value.StringValue", "blue"),
        ],
    );
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<MD5OfMessageAttributes>"), "{xml}");
    assert!(xml.contains("<MessageId>"));

    // POSTed to the queue URL itself, without QueueUrl.
    let (status, xml) = query_call(
        &a,
        &url,
        &[("Action", "ReceiveMessage"), ("AttributeName.1", "All"), ("MessageAttributeName.1", "All")],
    );
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Body>a &quot;quoted&quot; &lt;body&gt;&#xD;</Body>"), "{xml}");
    assert!(xml.contains("<MessageAttribute><Name>color</Name><Value><DataType>String</DataType><StringValue>blue</StringValue></Value></MessageAttribute>"), "{xml}");
    assert!(xml.contains("<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>"), "{xml}");

    let (_, xml) = query_call(
        &a,
        &s.endpoint,
        &[("Action", "GetQueueAttributes"), ("QueueUrl", &url), ("AttributeName.1", "VisibilityTimeout")],
    );
    assert!(xml.contains("<Attribute><Name>VisibilityTimeout</Name><Value>40</Value></Attribute>"), "{xml}");
    let (_, xml) = query_call(&a, &s.endpoint, &[("Action", "ListQueueTags"), ("QueueUrl", &url)]);
    assert!(xml.contains("<Tag><Key>k</Key><Value>v</Value></Tag>"), "{xml}");
    let (_, xml) = query_call(&a, &s.endpoint, &[("Action", "ListQueues")]);
    assert!(xml.contains(&format!("<QueueUrl>{url}</QueueUrl>")), "{xml}");

    let (status, xml) = query_call(
        &a,
        &s.endpoint,
        &[
            ("Action", "SendMessageBatch"),
            ("QueueUrl", &url),
            ("SendMessageBatchRequestEntry.1.Id", "one"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "1"),
            ("SendMessageBatchRequestEntry.2.Id", "two"),
            ("SendMessageBatchRequestEntry.2.MessageBody", "2"),
            ("SendMessageBatchRequestEntry.2.DelaySeconds", "1000"),
        ],
    );
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<SendMessageBatchResultEntry><Id>one</Id>") || xml.contains("<Id>one</Id>"), "{xml}");
    assert!(xml.contains("<BatchResultErrorEntry>"), "{xml}");
    assert!(xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");

    let (status, xml) = query_call(&a, &s.endpoint, &[("Action", "GetQueueUrl"), ("QueueName", "missing")]);
    assert_eq!(status, 400);
    assert!(xml.contains("<ErrorResponse"), "{xml}");
    assert!(xml.contains("<Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>"), "{xml}");
    let (status, xml) = query_call(&a, &s.endpoint, &[("Action", "FlyToTheMoon")]);
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidAction</Code>"), "{xml}");
    let (status, xml) = query_call(
        &a,
        &s.endpoint,
        &[("Action", "ReceiveMessage"), ("QueueUrl", &url), ("MaxNumberOfMessages", "ten")],
    );
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");
}

/// A Query long poll that has to wait answers in XML as one that finds a message at once
/// does: empty at its deadline, or with the message a send woke it for. (Its wait goes on
/// apart from the request's handling, which renders the answer afterwards.)
#[test]
fn a_waiting_query_long_poll_answers_in_xml() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let url = create(&a, &s.endpoint, "waits");
    let receive = {
        let (endpoint, url) = (s.endpoint.clone(), url.clone());
        move |wait: &str| {
            let form = [
                ("Action", "ReceiveMessage"),
                ("QueueUrl", url.as_str()),
                ("WaitTimeSeconds", wait),
                ("AttributeName.1", "ApproximateReceiveCount"),
            ];
            query_call(&agent(), &endpoint, &form)
        }
    };

    let (status, xml) = receive("1");
    assert_eq!(status, 200, "{xml}");
    assert!(xml.starts_with("<?xml") || xml.starts_with("<ReceiveMessageResponse"), "an XML document: {xml}");
    assert!(
        xml.contains(
            "<ReceiveMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ReceiveMessageResult"
        ),
        "{xml}"
    );
    assert!(!xml.contains("<Message>"), "nothing was sent: {xml}");
    assert_eq!(xml_field(&xml, "RequestId").map(|id| id.len()), Some(36), "{xml}");

    let poll = std::thread::spawn(move || receive("10"));
    // Most likely waiting by then; if not, it finds the message at once, which answers the same.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (status, sent, _) =
        json_call(&a, &s.endpoint, "SendMessage", &j!({"QueueUrl": url, "MessageBody": "wake"}).to_string());
    assert_eq!(status, 200, "{sent}");
    let (status, xml) = poll.join().unwrap();
    assert_eq!(status, 200, "{xml}");
    assert_eq!(xml_field(&xml, "Body").as_deref(), Some("wake"), "{xml}");
    assert_eq!(xml_field(&xml, "MD5OfBody").as_deref(), json(&sent)["MD5OfMessageBody"].as_str(), "{xml}");
    assert_eq!(xml_field(&xml, "MessageId").as_deref(), json(&sent)["MessageId"].as_str(), "{xml}");
    assert!(xml.contains("<Name>ApproximateReceiveCount</Name><Value>1</Value>"), "{xml}");
}

#[test]
fn json_errors_carry_the_query_compatible_header() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (status, body, header) = json_call(&a, &s.endpoint, "GetQueueUrl", r#"{"QueueName":"nope"}"#);
    assert_eq!(status, 400);
    assert_eq!(json(&body)["__type"], "QueueDoesNotExist");
    assert_eq!(json(&body)["message"], "The specified queue does not exist.");
    assert_eq!(header.as_deref(), Some("AWS.SimpleQueueService.NonExistentQueue;Sender"));
}

/// Every JSON answer names its request (a fresh id each time, as the SDKs log it) and
/// its protocol version, on success and on error alike.
#[test]
fn json_answers_carry_a_request_id_and_their_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let mut ids = Vec::new();
    for (body, status) in [(r#"{"QueueName":"ids"}"#, 200), (r#"{"QueueName":"no such queue"}"#, 400)] {
        let action = if status == 200 { "CreateQueue" } else { "GetQueueUrl" };
        let resp = a
            .post(&s.endpoint)
            .header("X-Amz-Target", &format!("AmazonSQS.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("Authorization", AUTH)
            .send(body)
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header("content-type").as_deref(), Some("application/x-amz-json-1.0"));
        let id = header("x-amzn-RequestId").expect("a request id");
        assert_eq!(id.len(), 36, "{id}");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn bad_input_gets_aws_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let url = create(&a, &s.endpoint, "keep");
    let (status, _, _) =
        json_call(&a, &s.endpoint, "SendMessage", &j!({"QueueUrl": url, "MessageBody": "stored"}).to_string());
    assert_eq!(status, 200);

    let long_name = "x".repeat(81);
    let cases: Vec<(&str, String, &str)> = vec![
        ("SendMessage", "{not json".into(), "SerializationException"),
        ("SendMessage", "[1,2]".into(), "SerializationException"),
        ("SendMessage", j!({"QueueUrl": url, "MessageBody": 5}).to_string(), "SerializationException"),
        ("SendMessage", j!({"QueueUrl": url}).to_string(), "MissingRequiredParameterException"),
        ("SendMessage", j!({"QueueUrl": url, "MessageBody": "x".repeat(1_048_577)}).to_string(), "InvalidParameterValueException"),
        ("SendMessage", j!({"QueueUrl": url, "MessageBody": "bad \u{0}"}).to_string(), "InvalidMessageContents"),
        ("SendMessage", j!({"QueueUrl": url, "MessageBody": "x", "DelaySeconds": 901}).to_string(), "InvalidParameterValueException"),
        ("SendMessage", j!({"QueueUrl": url, "MessageBody": "x", "MessageAttributes": {"a": {"DataType": "Weird", "StringValue": "1"}}}).to_string(), "InvalidParameterValueException"),
        ("SendMessage", j!({"QueueUrl": url, "MessageBody": "x", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "abc"}}}).to_string(), "InvalidParameterValueException"),
        // Bodies the typed SendMessageBatch path leaves to the general one, worded as before.
        ("SendMessageBatch", j!({"QueueUrl": url}).to_string(), "MissingRequiredParameterException"),
        ("SendMessageBatch", j!({"QueueUrl": url, "Entries": []}).to_string(), "EmptyBatchRequest"),
        ("SendMessageBatch", j!({"QueueUrl": url, "Entries": [{"Id": "a"}]}).to_string(), "MissingRequiredParameterException"),
        ("SendMessageBatch", j!({"QueueUrl": url, "Entries": [{"Id": "a", "MessageBody": 5}]}).to_string(), "SerializationException"),
        ("CreateQueue", j!({"QueueName": long_name}).to_string(), "InvalidParameterValueException"),
        ("CreateQueue", j!({"QueueName": "bad name"}).to_string(), "InvalidParameterValueException"),
        ("CreateQueue", j!({"QueueName": "x.fifo"}).to_string(), "InvalidParameterValueException"),
        ("CreateQueue", j!({"QueueName": "std", "Attributes": {"ContentBasedDeduplication": "true"}}).to_string(), "InvalidAttributeName"),
        ("CreateQueue", j!({"QueueName": "std", "Attributes": {"Bogus": "1"}}).to_string(), "InvalidAttributeName"),
        ("SetQueueAttributes", j!({"QueueUrl": url, "Attributes": {"FifoQueue": "true"}}).to_string(), "InvalidAttributeValue"),
        ("ReceiveMessage", j!({"QueueUrl": url, "MaxNumberOfMessages": 11}).to_string(), "InvalidParameterValueException"),
        ("ReceiveMessage", j!({"QueueUrl": url, "WaitTimeSeconds": 21}).to_string(), "InvalidParameterValueException"),
        ("DeleteMessage", j!({"QueueUrl": url, "ReceiptHandle": "garbage"}).to_string(), "ReceiptHandleIsInvalid"),
        ("ChangeMessageVisibility", j!({"QueueUrl": url, "ReceiptHandle": "garbage", "VisibilityTimeout": 5}).to_string(), "ReceiptHandleIsInvalid"),
        ("PurgeQueue", j!({"QueueUrl": format!("{}/000000000000/deleted-or-never", s.endpoint)}).to_string(), "QueueDoesNotExist"),
        ("NoSuchAction", "{}".into(), "UnknownOperationException"),
    ];
    for (action, body, expected) in cases {
        let (status, text, _) = json_call(&a, &s.endpoint, action, &body);
        assert_eq!(status, 400, "{action} {body:.80}: {text}");
        assert_eq!(json(&text)["__type"], expected, "{action} {body:.80}");
    }
    let (status, body, _) =
        json_call(&a, &s.endpoint, "ReceiveMessage", &j!({"QueueUrl": url, "MaxNumberOfMessages": 10}).to_string());
    assert_eq!(status, 200);
    let msgs = json(&body)["Messages"].as_array().cloned().unwrap();
    assert_eq!(msgs.len(), 1, "only the valid message was stored");
    assert_eq!(msgs[0]["Body"], "stored");
    let (_, body, _) = json_call(&a, &s.endpoint, "ListQueues", "{}");
    assert_eq!(json(&body)["QueueUrls"].as_array().unwrap().len(), 1, "no queue was created by bad requests");

    // A deleted queue's URL.
    json_call(&a, &s.endpoint, "DeleteQueue", &j!({"QueueUrl": url}).to_string());
    let (status, body, _) =
        json_call(&a, &s.endpoint, "SendMessage", &j!({"QueueUrl": url, "MessageBody": "x"}).to_string());
    assert_eq!((status, json(&body)["__type"].as_str()), (400, Some("QueueDoesNotExist")));
}

/// Batch entries are applied in order and submitted together before any commit is awaited:
/// each entry still gets its own outcome, and sees the entries before it.
#[test]
fn batch_entries_get_their_own_outcomes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let url = create(&a, &s.endpoint, "batches");
    let call = |action: &str, body: serde_json::Value| {
        let (status, text, _) = json_call(&a, &s.endpoint, action, &body.to_string());
        assert_eq!(status, 200, "{action}: {text}");
        json(&text)
    };
    let ids = |reply: &serde_json::Value, list: &str| -> Vec<String> {
        let entries = reply[list].as_array().cloned().unwrap_or_default();
        entries.iter().map(|e| e["Id"].as_str().unwrap().to_owned()).collect()
    };
    let entries: Vec<_> = (0..3).map(|i| j!({"Id": format!("s{i}"), "MessageBody": format!("m{i}")})).collect();
    call("SendMessageBatch", j!({"QueueUrl": url, "Entries": entries}));
    let got = call("ReceiveMessage", j!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60}));
    let handles: Vec<String> =
        got["Messages"].as_array().unwrap().iter().map(|m| m["ReceiptHandle"].as_str().unwrap().to_owned()).collect();
    assert_eq!(handles.len(), 3);

    let changed = call(
        "ChangeMessageVisibilityBatch",
        j!({"QueueUrl": url, "Entries": [
            {"Id": "zero", "ReceiptHandle": handles[0], "VisibilityTimeout": 0},
            {"Id": "too-long", "ReceiptHandle": handles[1], "VisibilityTimeout": 43_201},
            {"Id": "garbage", "ReceiptHandle": "garbage", "VisibilityTimeout": 5},
            {"Id": "kept", "ReceiptHandle": handles[2], "VisibilityTimeout": 120},
        ]}),
    );
    assert_eq!(ids(&changed, "Successful"), ["zero", "kept"]);
    assert_eq!(ids(&changed, "Failed"), ["too-long", "garbage"]);
    assert_eq!(changed["Failed"][0]["Code"], "InvalidParameterValue");
    assert_eq!(changed["Failed"][1]["Code"], "ReceiptHandleIsInvalid");

    let deleted = call(
        "DeleteMessageBatch",
        j!({"QueueUrl": url, "Entries": [
            {"Id": "first", "ReceiptHandle": handles[1]},
            {"Id": "again", "ReceiptHandle": handles[1]},
            {"Id": "garbage", "ReceiptHandle": "garbage"},
            {"Id": "last", "ReceiptHandle": handles[2]},
        ]}),
    );
    assert_eq!(ids(&deleted, "Successful"), ["first", "again", "last"], "a repeated handle finds it deleted");
    assert_eq!(ids(&deleted, "Failed"), ["garbage"]);
    assert_eq!(deleted["Failed"][0]["Code"], "ReceiptHandleIsInvalid");

    let left = call("ReceiveMessage", j!({"QueueUrl": url, "MaxNumberOfMessages": 10}));
    let bodies: Vec<_> = left["Messages"].as_array().unwrap().iter().map(|m| m["Body"].clone()).collect();
    assert_eq!(bodies, [j!("m0")], "only the message made visible again is left");
}

#[test]
fn trace_header_becomes_the_aws_trace_header_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let url = create(&a, &s.endpoint, "traced");
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let resp = a
        .post(&s.endpoint)
        .header("X-Amz-Target", "AmazonSQS.SendMessage")
        .header("X-Amzn-Trace-Id", trace)
        .send(j!({"QueueUrl": url, "MessageBody": "x"}).to_string().as_str())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, body, _) = json_call(
        &a,
        &s.endpoint,
        "ReceiveMessage",
        &j!({"QueueUrl": url, "MessageSystemAttributeNames": ["AWSTraceHeader"]}).to_string(),
    );
    assert_eq!(json(&body)["Messages"][0]["Attributes"]["AWSTraceHeader"], trace);
}

#[test]
fn health_and_http2_prior_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let mut resp = a.get(&format!("{}/health", s.endpoint)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.body_mut().read_to_string().unwrap().contains("ok"));
    // h2c with prior knowledge, as the Java SDK v2 uses it.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "-H",
            "X-Amz-Target: AmazonSQS.ListQueues",
            "-H",
            "Content-Type: application/x-amz-json-1.0",
            "-d",
            "{}",
            &s.endpoint,
        ])
        .output()
        .expect("curl is installed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
}

/// Past `--max-concurrent-requests`, requests are throttled at once (an error every SDK
/// retries) instead of queueing without bound; /health is never throttled.
#[test]
fn requests_beyond_the_concurrency_cap_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--max-concurrent-requests", "1"]);
    let a = agent();
    let url = create(&a, &s.endpoint, "busy");
    let (endpoint, poll_url) = (s.endpoint.clone(), url.clone());
    // The poll can itself be throttled if it arrives while a GetQueueUrl below holds the
    // slot (more likely on a loaded machine): it tries again until it gets the slot.
    let poll = std::thread::spawn(move || loop {
        let request = j!({"QueueUrl": poll_url, "WaitTimeSeconds": 8}).to_string();
        let r = json_call(&agent(), &endpoint, "ReceiveMessage", &request);
        if !r.1.contains("ThrottlingException") {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    });
    // Wait until the long poll holds the only slot.
    // (Generous bounds: CI runs many servers at once on two cores.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(7);
    let (status, body, query_error) = loop {
        let r = json_call(&a, &s.endpoint, "GetQueueUrl", r#"{"QueueName":"busy"}"#);
        if r.0 != 200 || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["__type"], "ThrottlingException", "{body}");
    assert_eq!(query_error.as_deref(), Some("Throttling;Sender"));
    let health = a.get(&format!("{}/health", s.endpoint)).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(poll.join().unwrap().0, 200, "the long poll itself is served");
    assert_eq!(json_call(&a, &s.endpoint, "GetQueueUrl", r#"{"QueueName":"busy"}"#).0, 200, "the slot is free again");
}

/// Past `--max-connections`, new connections wait unaccepted (in the kernel's backlog)
/// until an open one closes, then are served.
#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--max-connections", "2"]);
    let addr = s.endpoint.trim_start_matches("http://").to_owned();
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let exchange = |c: &mut std::net::TcpStream| -> String {
        c.write_all(request.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // Two keep-alive connections take both slots.
    let mut first = std::net::TcpStream::connect(&addr).unwrap();
    let mut second = std::net::TcpStream::connect(&addr).unwrap();
    assert!(exchange(&mut first).starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut second).starts_with("HTTP/1.1 200"));
    // A third connects (the kernel queues it) but is not served while both are open.
    let mut third = std::net::TcpStream::connect(&addr).unwrap();
    third.set_read_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
    assert_eq!(exchange(&mut third), "", "not served while the cap is reached");
    drop(first);
    third.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 512];
    let n = third.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served once a slot frees");
}

/// The kernel's backlog holds hundreds of clients past the cap, not tokio's default of
/// 128: with a server that accepts no more, each of 500 further clients still completes
/// its handshake (a SYN the backlog has no room for is dropped, and its connect would
/// hang until the timeout).
#[test]
fn hundreds_of_clients_past_the_cap_wait_in_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--max-connections", "1"]);
    let addr: std::net::SocketAddr = s.endpoint.trim_start_matches("http://").parse().unwrap();
    let clients: Vec<_> = (0..500)
        .map(|n| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("client {n} could not connect: {e}"))
        })
        .collect();
    drop(clients);
    let (status, _, _) = json_call(&agent(), &s.endpoint, "ListQueues", "{}");
    assert_eq!(status, 200, "served again once the clients have gone");
}

/// Record data that is not base64 is a SerializationException and stores nothing, for
/// Kinesis and Firehose alike.
#[test]
fn record_data_that_is_not_base64_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (status, body) =
        kinesis_call(&a, &s.endpoint, "CreateStream", &j!({"StreamName": "s", "ShardCount": 1})).unwrap();
    assert_eq!(status, 200, "{body}");
    let destination = j!({"RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::lake",
                          "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}});
    let create = j!({"DeliveryStreamName": "d", "ExtendedS3DestinationConfiguration": destination});
    let (status, body) = firehose_call(&a, &s.endpoint, "CreateDeliveryStream", &create);
    assert_eq!(status, 200, "{body}");
    for data in ["***", "QUJDR", "QUJD\\RA=="] {
        let put = j!({"StreamName": "s", "PartitionKey": "k", "Data": data});
        let (status, body) = kinesis_call(&a, &s.endpoint, "PutRecord", &put).unwrap();
        assert_eq!((status, body["__type"].as_str()), (400, Some("SerializationException")), "{data}: {body}");
        let put = j!({"DeliveryStreamName": "d", "Records": [{"Data": "QUJD"}, {"Data": data}]});
        let (status, body) = firehose_call(&a, &s.endpoint, "PutRecordBatch", &put);
        assert_eq!((status, body["__type"].as_str()), (400, Some("SerializationException")), "{data}: {body}");
    }
    assert!(stream_texts(&a, &s.endpoint, "s").is_empty(), "nothing stored");
    let (status, body) =
        kinesis_call(&a, &s.endpoint, "PutRecord", &j!({"StreamName": "s", "PartitionKey": "k", "Data": "QUJD"}))
            .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(stream_texts(&a, &s.endpoint, "s"), ["ABC"]);
}

/// A request body read in several frames (chunked, its chunks written apart) is served
/// whole; one past 8 MiB is RequestEntityTooLarge, whether its length is declared or it
/// arrives in chunks.
#[test]
fn bodies_in_chunks_are_read_whole_and_oversized_ones_refused() {
    use std::io::{Read, Write};
    let (_dir, s, a, addr, queue_url) = raw_setup("chunks");
    let head = |framing: &str| raw_sqs_head(&addr, "SendMessage", framing);
    let response_of = |c: &mut std::net::TcpStream| {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        // The answer is small and its connection then idles or closes.
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
            if text.windows(4).any(|w| w == b"\r\n\r\n") && text.ends_with(b"}") {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    };

    let body_text = "x".repeat(3000);
    let body = format!(r#"{{"QueueUrl":"{queue_url}","MessageBody":"{body_text}"}}"#);
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes()).unwrap();
    for piece in body.as_bytes().chunks(700) {
        c.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        c.write_all(piece).unwrap();
        c.write_all(b"\r\n").unwrap();
        c.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    c.write_all(b"0\r\n\r\n").unwrap();
    let answer = response_of(&mut c);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&sluice_wire::md5::md5_hex(body_text.as_bytes())), "{answer}");
    let (status, received, _) =
        json_call(&a, &s.endpoint, "ReceiveMessage", &format!(r#"{{"QueueUrl":"{queue_url}"}}"#));
    assert_eq!(status, 200, "{received}");
    assert_eq!(json(&received)["Messages"][0]["Body"], body_text.as_str());

    // Declared too long: refused before the body is read.
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(head(&format!("Content-Length: {}\r\n", 8 * 1024 * 1024 + 1)).as_bytes()).unwrap();
    let answer = response_of(&mut c);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("RequestEntityTooLarge"), "{answer}");

    // Chunks past the limit: refused once they pass it.
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes()).unwrap();
    let chunk = vec![b'y'; 1024 * 1024];
    for _ in 0..9 {
        c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).unwrap();
        if c.write_all(&chunk).is_err() || c.write_all(b"\r\n").is_err() {
            break;
        }
    }
    let answer = response_of(&mut c);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("RequestEntityTooLarge"), "{answer}");
}

/// MaximumMessageSize bounds a send's body and attributes, as set at creation and as
/// changed later.
#[test]
fn sends_past_the_queues_maximum_message_size_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let url = create_with(&a, &s.endpoint, "small", j!({"MaximumMessageSize": "1024"}));
    let send = |len: usize| {
        json_call(
            &a,
            &s.endpoint,
            "SendMessage",
            &format!(r#"{{"QueueUrl":"{url}","MessageBody":"{}"}}"#, "m".repeat(len)),
        )
    };
    assert_eq!(send(1024).0, 200);
    let (status, body, _) = send(1025);
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["__type"], "InvalidParameterValueException", "{body}");
    assert!(body.contains("Message must be shorter than 1024 bytes"), "{body}");
    let set = format!(r#"{{"QueueUrl":"{url}","Attributes":{{"MaximumMessageSize":"2048"}}}}"#);
    assert_eq!(json_call(&a, &s.endpoint, "SetQueueAttributes", &set).0, 200);
    assert_eq!(send(1025).0, 200, "the new limit applies at once");
    assert_eq!(send(2049).0, 400);
}

/// A server in a new data directory, an agent, the server's address for raw connections
/// and the URL of a new queue `name`.
fn raw_setup(name: &str) -> (tempfile::TempDir, Server, ureq::Agent, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let addr = s.endpoint.trim_start_matches("http://").to_owned();
    let url = create(&a, &s.endpoint, name);
    (dir, s, a, addr, url)
}

/// The head of an SQS request over HTTP/1.1 in the JSON protocol, its body framed by
/// `framing` (a header line, or none).
fn raw_sqs_head(addr: &str, action: &str, framing: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: AmazonSQS.{action}\r\nAuthorization: {AUTH}\r\n{framing}\r\n"
    )
}

/// An SQS request over HTTP/1.1, head and body, as written whole to a connection.
fn raw_sqs_request(addr: &str, action: &str, body: &str) -> String {
    raw_sqs_head(addr, action, &format!("Content-Length: {}\r\n", body.len())) + body
}

/// A long poll whose client has gone takes no message: one sent after the client closed
/// its connection is there for the next receive, not in flight to nobody.
#[test]
fn a_long_poll_whose_client_has_gone_takes_no_message() {
    use std::io::Write;
    let (_dir, s, a, addr, url) = raw_setup("abandoned");
    let mut poller = std::net::TcpStream::connect(&addr).unwrap();
    let poll = format!(r#"{{"QueueUrl":"{url}","WaitTimeSeconds":20}}"#);
    poller.write_all(raw_sqs_request(&addr, "ReceiveMessage", &poll).as_bytes()).unwrap();
    // The poll is waiting on the empty queue; then its client goes, and the server has a
    // moment to see it go.
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(poller);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let send = format!(r#"{{"QueueUrl":"{url}","MessageBody":"for whoever asks next"}}"#);
    assert_eq!(json_call(&a, &s.endpoint, "SendMessage", &send).0, 200);
    let receive = format!(r#"{{"QueueUrl":"{url}","WaitTimeSeconds":1}}"#);
    let (status, body, _) = json_call(&a, &s.endpoint, "ReceiveMessage", &receive);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["Messages"][0]["Body"], "for whoever asks next", "{body}");
}

/// A client that closes its sending side once its request is written (a half-close) is
/// still answered: a send, and a long poll at the end of its wait.
#[test]
fn a_half_closed_client_is_answered() {
    use std::io::{Read, Write};
    let (_dir, s, a, addr, url) = raw_setup("half-closed");
    let answer_to = |request: String| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let send = format!(r#"{{"QueueUrl":"{url}","MessageBody":"sent half-closed"}}"#);
    let answer = answer_to(raw_sqs_request(&addr, "SendMessage", &send));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("MD5OfMessageBody"), "{answer}");
    let receive = format!(r#"{{"QueueUrl":"{url}","VisibilityTimeout":0}}"#);
    let (status, body, _) = json_call(&a, &s.endpoint, "ReceiveMessage", &receive);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["Messages"][0]["Body"], "sent half-closed", "the send was stored: {body}");

    let empty = create(&a, &s.endpoint, "half-closed-empty");
    let poll = format!(r#"{{"QueueUrl":"{empty}","WaitTimeSeconds":1}}"#);
    let answer = answer_to(raw_sqs_request(&addr, "ReceiveMessage", &poll));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("\"Messages\""), "{answer}");
}

/// Everything read from `c` until the server closes it or stays silent for a second.
fn read_until_quiet(c: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    c.set_read_timeout(Some(std::time::Duration::from_secs(1))).unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// HTTP/1.1 keep-alive on Sluice's own loop (`http1`): requests written back to back in
/// one write are answered in order; a head and body that arrive a few bytes at a time
/// are read whole; each answer carries its length and a Date; `Connection: close` ends
/// the connection after its answer.
#[test]
fn keep_alive_requests_pipelined_split_and_closed() {
    use std::io::Write;
    let (_dir, s, a, addr, url) = raw_setup("pipelined");
    let send = |body: &str| {
        raw_sqs_request(&addr, "SendMessage", &format!(r#"{{"QueueUrl":"{url}","MessageBody":"{body}"}}"#))
    };
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all((send("first") + &send("second") + &send("third")).as_bytes()).unwrap();
    let answers = read_until_quiet(&mut c);
    assert_eq!(answers.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{answers}");
    let digests: Vec<_> =
        ["first", "second", "third"].iter().map(|b| sluice_wire::md5::md5_hex(b.as_bytes())).collect();
    let at = |d: &String| answers.find(d.as_str()).unwrap_or_else(|| panic!("{d} in {answers}"));
    assert!(at(&digests[0]) < at(&digests[1]) && at(&digests[1]) < at(&digests[2]), "in order: {answers}");
    assert!(answers.to_ascii_lowercase().contains("\r\ndate: "), "{answers}");
    assert!(answers.to_ascii_lowercase().contains("\r\ncontent-length: "), "{answers}");

    // The same connection, a request in pieces of three bytes.
    for piece in send("in pieces").as_bytes().chunks(3) {
        c.write_all(piece).unwrap();
        c.flush().unwrap();
    }
    let answer = read_until_quiet(&mut c);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&sluice_wire::md5::md5_hex(b"in pieces")), "{answer}");

    // `Connection: close`: answered, then closed (the read ends at the end of the stream,
    // not at its timeout).
    let query = r#"{"QueueName":"pipelined"}"#;
    let closing =
        raw_sqs_head(&addr, "GetQueueUrl", &format!("Connection: close\r\nContent-Length: {}\r\n", query.len()))
            + query;
    c.write_all(closing.as_bytes()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let read = std::io::Read::read_to_string(&mut c, &mut answer);
    assert!(read.is_ok(), "closed by the server, not by the timeout: {read:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("QueueUrl"), "{answer}");

    assert_eq!(messages_in(&a, &s.endpoint, &url), "4");
}

/// The queue's ApproximateNumberOfMessages.
fn messages_in(a: &ureq::Agent, endpoint: &str, url: &str) -> String {
    let get = format!(r#"{{"QueueUrl":"{url}","AttributeNames":["ApproximateNumberOfMessages"]}}"#);
    let (status, body, _) = json_call(a, endpoint, "GetQueueAttributes", &get);
    assert_eq!(status, 200, "{body}");
    json(&body)["Attributes"]["ApproximateNumberOfMessages"].as_str().unwrap_or_default().to_owned()
}

/// Requests the loop does not take on go to hyper with the connection, from the bytes
/// already read: HTTP/1.0, `Expect: 100-continue`, and a chunked body after a request
/// the loop answered on the same connection.
#[test]
fn requests_outside_the_loop_are_served_by_hyper() {
    use std::io::Write;
    let (_dir, s, a, addr, url) = raw_setup("handed-over");
    let body = format!(r#"{{"QueueUrl":"{url}","MessageBody":"one"}}"#);

    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let old = raw_sqs_request(&addr, "SendMessage", &body).replacen("HTTP/1.1", "HTTP/1.0", 1);
    c.write_all(old.as_bytes()).unwrap();
    let answer = read_until_quiet(&mut c);
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&sluice_wire::md5::md5_hex(b"one")), "{answer}");
    // hyper's JSON answer has the head the loop writes for one (`Reply::Json`).
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(raw_sqs_request(&addr, "SendMessage", &body).as_bytes()).unwrap();
    let from_loop = read_until_quiet(&mut c);
    assert!(from_loop.starts_with("HTTP/1.1 200 OK\r\n"), "{from_loop}");
    let (hyper_head, loop_head) = (json_head(&answer), json_head(&from_loop));
    assert_eq!(hyper_head.keys().collect::<Vec<_>>(), ["content-length", "content-type", "date", "x-amzn-requestid"]);
    assert_eq!(loop_head.keys().collect::<Vec<_>>(), hyper_head.keys().collect::<Vec<_>>());
    assert_eq!(loop_head["content-type"], hyper_head["content-type"]);
    assert_ne!(loop_head["x-amzn-requestid"], hyper_head["x-amzn-requestid"]);

    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let head =
        raw_sqs_head(&addr, "SendMessage", &format!("Expect: 100-continue\r\nContent-Length: {}\r\n", body.len()));
    c.write_all(head.as_bytes()).unwrap();
    let interim = read_until_quiet(&mut c);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    c.write_all(body.as_bytes()).unwrap();
    let answer = read_until_quiet(&mut c);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(raw_sqs_request(&addr, "SendMessage", &body).as_bytes()).unwrap();
    assert!(read_until_quiet(&mut c).starts_with("HTTP/1.1 200"));
    let chunked = raw_sqs_head(&addr, "SendMessage", "Transfer-Encoding: chunked\r\n");
    c.write_all(format!("{chunked}{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes()).unwrap();
    let answer = read_until_quiet(&mut c);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // hyper keeps the connection: one more request on it.
    c.write_all(raw_sqs_request(&addr, "SendMessage", &body).as_bytes()).unwrap();
    assert!(read_until_quiet(&mut c).starts_with("HTTP/1.1 200"));

    assert_eq!(messages_in(&a, &s.endpoint, &url), "6");
}

/// A JSON answer's header fields by lower-case name, each checked: its length is its
/// body's, its request id a uuid, its date an HTTP date.
fn json_head(answer: &str) -> std::collections::BTreeMap<String, String> {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let fields: std::collections::BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .filter(|(name, _)| name != "connection")
        .collect();
    assert_eq!(fields["content-length"], body.len().to_string(), "{answer}");
    assert!(uuid::Uuid::parse_str(&fields["x-amzn-requestid"]).is_ok(), "{answer}");
    assert!(fields["date"].ends_with(" GMT"), "{answer}");
    fields
}
