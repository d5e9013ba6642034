//! Every SQS action through the official AWS SDK for Rust, against the real server
//! (in-process, ephemeral port, on-disk store).

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use md5::{Digest, Md5};
use sluice::app::RunningServer;
use sluice::config::Settings;
use std::time::Duration;

struct TestServer {
    server: Option<RunningServer>,
    client: Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::ephemeral(Some(dir.path().to_owned()));
        let server = sluice::app::start(settings).await.unwrap();
        let client = client(&format!("http://{}", server.addr), "AKIDEXAMPLE", "us-east-1");
        TestServer { server: Some(server), client, _dir: dir }
    }

    async fn stop(mut self) {
        self.server.take().unwrap().stop().await.unwrap();
    }
}

fn client(endpoint: &str, access_key: &str, region: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(access_key, "secret", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The error code the SDK resolved (it maps through x-amzn-query-error).
fn code<E: aws_sdk_sqs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_management_actions() {
    let t = TestServer::start().await;
    let c = &t.client;
    let url = c
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::VisibilityTimeout, "45")
        .tags("team", "payments")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert!(url.ends_with("/000000000000/orders"), "{url}");
    // Idempotent with the same attributes, an error with different ones.
    c.create_queue().queue_name("orders").attributes(QueueAttributeName::VisibilityTimeout, "45").send().await.unwrap();
    let err = c
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::VisibilityTimeout, "50")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "QueueAlreadyExists");
    assert!(err.is_queue_name_exists());

    assert_eq!(c.get_queue_url().queue_name("orders").send().await.unwrap().queue_url.unwrap(), url);
    let err = c.get_queue_url().queue_name("missing").send().await.unwrap_err().into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
    assert_eq!(code(&err), "AWS.SimpleQueueService.NonExistentQueue");

    for i in 0..3 {
        c.create_queue().queue_name(format!("page-{i}")).send().await.unwrap();
    }
    let page = c.list_queues().queue_name_prefix("page-").max_results(2).send().await.unwrap();
    assert_eq!(page.queue_urls().len(), 2);
    let next = c
        .list_queues()
        .queue_name_prefix("page-")
        .max_results(2)
        .next_token(page.next_token.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(next.queue_urls().len(), 1);
    assert!(next.next_token.is_none());

    let attrs = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "45");
    assert_eq!(attrs[&QueueAttributeName::QueueArn], "arn:aws:sqs:us-east-1:000000000000:orders");
    assert_eq!(attrs[&QueueAttributeName::MaximumMessageSize], "1048576");
    c.set_queue_attributes().queue_url(&url).attributes(QueueAttributeName::DelaySeconds, "5").send().await.unwrap();
    let err = c
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "901")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "InvalidAttributeValue");

    c.tag_queue().queue_url(&url).tags("env", "test").send().await.unwrap();
    c.untag_queue().queue_url(&url).tag_keys("team").send().await.unwrap();
    let tags = c.list_queue_tags().queue_url(&url).send().await.unwrap().tags.unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags["env"], "test");

    c.add_permission()
        .queue_url(&url)
        .label("send")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    let policy = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert!(policy[&QueueAttributeName::Policy].contains("arn:aws:iam::111122223333:root"));
    c.remove_permission().queue_url(&url).label("send").send().await.unwrap();
    let err = c.remove_permission().queue_url(&url).label("send").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "InvalidParameterValue");

    c.purge_queue().queue_url(&url).send().await.unwrap();
    c.delete_queue().queue_url(&url).send().await.unwrap();
    let err = c.get_queue_attributes().queue_url(&url).send().await.unwrap_err().into_service_error();
    assert!(err.is_queue_does_not_exist());

    // Regions and accounts are separate namespaces.
    let endpoint = format!("http://{}", t.server.as_ref().unwrap().addr);
    let west = client(&endpoint, "AKIDEXAMPLE", "eu-west-1");
    assert!(west.list_queues().send().await.unwrap().queue_urls().is_empty());
    let other_account = client(&endpoint, "123456789012", "us-east-1");
    let u = other_account.create_queue().queue_name("mine").send().await.unwrap().queue_url.unwrap();
    assert!(u.contains("/123456789012/mine"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_actions_and_digests() {
    let t = TestServer::start().await;
    let c = &t.client;
    let url = c.create_queue().queue_name("work").send().await.unwrap().queue_url.unwrap();
    let sent = c
        .send_message()
        .queue_url(&url)
        .message_body("hello \u{1F600}")
        .message_attributes(
            "s",
            MessageAttributeValue::builder().data_type("String").string_value("v").build().unwrap(),
        )
        .message_attributes(
            "n",
            MessageAttributeValue::builder().data_type("Number.int").string_value("42").build().unwrap(),
        )
        .message_attributes(
            "b",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![0u8, 1, 2]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.md5_of_message_body.as_deref(), Some(md5_hex("hello \u{1F600}".as_bytes()).as_str()));
    let attr_md5 = sent.md5_of_message_attributes.clone().unwrap();

    let batch = c
        .send_message_batch()
        .queue_url(&url)
        .entries(SendMessageBatchRequestEntry::builder().id("a").message_body("one").build().unwrap())
        .entries(SendMessageBatchRequestEntry::builder().id("b").message_body("two").build().unwrap())
        .entries(SendMessageBatchRequestEntry::builder().id("c").message_body("").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(batch.successful().len(), 2);
    // The writer hashes a group's bodies side by side (in vector lanes): each entry still
    // gets its own body's digest.
    for (id, body) in [("a", "one"), ("b", "two")] {
        let entry = batch.successful().iter().find(|e| e.id() == id).unwrap();
        assert_eq!(entry.md5_of_message_body(), md5_hex(body.as_bytes()), "entry {id}");
    }
    assert_eq!(batch.failed().len(), 1);
    assert_eq!(batch.failed()[0].id(), "c");
    assert!(batch.failed()[0].sender_fault());

    let got = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let msgs = got.messages();
    assert_eq!(msgs.len(), 3);
    let first = msgs.iter().find(|m| m.message_id() == sent.message_id()).unwrap();
    assert_eq!(first.md5_of_message_attributes(), Some(attr_md5.as_str()));
    assert_eq!(first.message_attributes().unwrap().len(), 3);
    let sys = first.attributes().unwrap();
    assert_eq!(sys[&MessageSystemAttributeName::ApproximateReceiveCount], "1");
    assert_eq!(sys[&MessageSystemAttributeName::SenderId], "AKIDEXAMPLE");
    assert!(sys.contains_key(&MessageSystemAttributeName::SentTimestamp));
    assert!(sys.contains_key(&MessageSystemAttributeName::ApproximateFirstReceiveTimestamp));

    let handle =
        |body: &str| msgs.iter().find(|m| m.body() == Some(body)).unwrap().receipt_handle().unwrap().to_owned();
    c.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(handle("one"))
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let cmvb = c
        .change_message_visibility_batch()
        .queue_url(&url)
        .entries(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("x")
                .receipt_handle(handle("two"))
                .visibility_timeout(0)
                .build()
                .unwrap(),
        )
        .entries(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("y")
                .receipt_handle("bogus")
                .visibility_timeout(0)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cmvb.successful().len(), 1);
    assert_eq!(cmvb.failed()[0].code(), "ReceiptHandleIsInvalid");
    c.delete_message().queue_url(&url).receipt_handle(first.receipt_handle().unwrap()).send().await.unwrap();

    let again = c.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(again.messages().len(), 2, "the two made visible again come back");
    let mut entries = Vec::new();
    for (i, m) in again.messages().iter().enumerate() {
        entries.push(
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(m.receipt_handle().unwrap())
                .build()
                .unwrap(),
        );
    }
    let deleted = c.delete_message_batch().queue_url(&url).set_entries(Some(entries)).send().await.unwrap();
    assert_eq!(deleted.successful().len(), 2);
    let counts = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(counts[&QueueAttributeName::ApproximateNumberOfMessages], "0");
    assert_eq!(counts[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible], "0");

    // Batch rules.
    let err = c.send_message_batch().queue_url(&url).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "MissingParameter", "Entries is a required member");
    let err =
        c.send_message_batch().queue_url(&url).set_entries(Some(vec![])).send().await.unwrap_err().into_service_error();
    assert!(err.is_empty_batch_request(), "{err:?}");
    let dup = c
        .send_message_batch()
        .queue_url(&url)
        .entries(SendMessageBatchRequestEntry::builder().id("a").message_body("1").build().unwrap())
        .entries(SendMessageBatchRequestEntry::builder().id("a").message_body("2").build().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(dup.is_batch_entry_ids_not_distinct());
    let mut many = c.send_message_batch().queue_url(&url);
    for i in 0..11 {
        many = many
            .entries(SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body("x").build().unwrap());
    }
    let err = many.send().await.unwrap_err().into_service_error();
    assert!(err.is_too_many_entries_in_batch_request());
    let big = "x".repeat(1_048_577);
    let err = c.send_message().queue_url(&url).message_body(big).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "InvalidParameterValue");
    let err = c.send_message().queue_url(&url).message_body("bad \u{1}").send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_message_contents());
    t.stop().await;
}

/// A FIFO queue with content-based deduplication; its URL.
/// Bodies whose JSON needs escapes (quotes, backslashes, the allowed controls) come back
/// whole through ReceiveMessage's JSON answer, with escapes on either side of the 32-byte
/// blocks it is written in, and with non-ASCII text and DEL as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_need_json_escapes_come_back_whole() {
    let t = TestServer::start().await;
    let c = &t.client;
    let url = c.create_queue().queue_name("escapes").send().await.unwrap().queue_url.unwrap();
    let tricky = "a \"quoted\" path C:\\dir\ttab\nline\r\u{7F} é \u{1F600}";
    let bodies = [tricky.to_owned(), format!("{}\"{}", "x".repeat(31), "y".repeat(40)), tricky.repeat(20)];
    for body in &bodies {
        c.send_message().queue_url(&url).message_body(body).send().await.unwrap();
    }
    let got = c.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let mut received: Vec<String> = got.messages().iter().map(|m| m.body().unwrap().to_owned()).collect();
    for m in got.messages() {
        assert_eq!(m.md5_of_body(), Some(md5_hex(m.body().unwrap().as_bytes()).as_str()));
    }
    received.sort();
    let mut sent = bodies.to_vec();
    sent.sort();
    assert_eq!(received, sent);
    t.stop().await;
}

async fn content_deduplicated_fifo(c: &Client, name: &str) -> String {
    c.create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_queue_behaviour() {
    let t = TestServer::start().await;
    let c = &t.client;
    let url = content_deduplicated_fifo(c, "jobs.fifo").await;
    let a = c.send_message().queue_url(&url).message_body("a1").message_group_id("a").send().await.unwrap();
    let dup = c.send_message().queue_url(&url).message_body("a1").message_group_id("a").send().await.unwrap();
    assert_eq!(a.message_id(), dup.message_id(), "content-based dedup");
    let a2 = c.send_message().queue_url(&url).message_body("a2").message_group_id("a").send().await.unwrap();
    assert!(
        a2.sequence_number().unwrap().parse::<u128>().unwrap() > a.sequence_number().unwrap().parse::<u128>().unwrap()
    );
    c.send_message().queue_url(&url).message_body("b1").message_group_id("b").send().await.unwrap();

    let err = c.send_message().queue_url(&url).message_body("x").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "MissingParameter");
    let err = c
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .message_group_id("a")
        .delay_seconds(5)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "InvalidParameterValue");

    let first = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(first.messages()[0].body(), Some("a1"));
    let sys = first.messages()[0].attributes().unwrap();
    assert_eq!(sys[&MessageSystemAttributeName::MessageGroupId], "a");
    assert!(sys.contains_key(&MessageSystemAttributeName::SequenceNumber));
    assert!(sys.contains_key(&MessageSystemAttributeName::MessageDeduplicationId));
    let rest = c.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let bodies: Vec<&str> = rest.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, vec!["b1"], "group a is blocked while a1 is in flight");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_when_a_message_arrives() {
    let t = TestServer::start().await;
    let c = t.client.clone();
    let url = c.create_queue().queue_name("poll").send().await.unwrap().queue_url.unwrap();
    let poller = {
        let c = c.clone();
        let url = url.clone();
        tokio::spawn(async move { c.receive_message().queue_url(url).wait_time_seconds(20).send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.send_message().queue_url(&url).message_body("wake").send().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), poller).await.expect("long poll woke").unwrap();
    assert_eq!(got.messages()[0].body(), Some("wake"));
    t.stop().await;
}

/// Queue `source` whose messages go to queue `dead_letter` on their second receive
/// (maxReceiveCount 1): their URLs.
async fn queue_with_dead_letter_queue(c: &Client, source: &str, dead_letter: &str) -> (String, String) {
    let dlq_url = c.create_queue().queue_name(dead_letter).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = format!("arn:aws:sqs:us-east-1:000000000000:{dead_letter}");
    let policy = format!("{{\"deadLetterTargetArn\":\"{dlq_arn}\",\"maxReceiveCount\":\"1\"}}");
    let src = c.create_queue().queue_name(source).attributes(QueueAttributeName::RedrivePolicy, policy).send().await;
    (src.unwrap().queue_url.unwrap(), dlq_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_queue_and_move_tasks() {
    let t = TestServer::start().await;
    let c = &t.client;
    let (src_url, dlq_url) = queue_with_dead_letter_queue(c, "src", "dlq").await;
    let dlq_arn = "arn:aws:sqs:us-east-1:000000000000:dlq";
    let sources = c.list_dead_letter_source_queues().queue_url(&dlq_url).send().await.unwrap();
    assert_eq!(sources.queue_urls(), std::slice::from_ref(&src_url));

    c.send_message().queue_url(&src_url).message_body("poison").send().await.unwrap();
    let r = c.receive_message().queue_url(&src_url).visibility_timeout(0).send().await.unwrap();
    assert_eq!(r.messages().len(), 1);
    let r = c.receive_message().queue_url(&src_url).send().await.unwrap();
    assert!(r.messages().is_empty(), "second receive moved it to the DLQ");
    let moved = c
        .receive_message()
        .queue_url(&dlq_url)
        .visibility_timeout(0)
        .message_system_attribute_names(MessageSystemAttributeName::DeadLetterQueueSourceArn)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.messages()[0].body(), Some("poison"));

    let handle = c.start_message_move_task().source_arn(dlq_arn).send().await.unwrap().task_handle.unwrap();
    let err = c.cancel_message_move_task().task_handle("nope").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let mut status = String::new();
    for _ in 0..50 {
        let tasks = c.list_message_move_tasks().source_arn(dlq_arn).send().await.unwrap();
        status = tasks.results()[0].status().unwrap().to_owned();
        if status == "COMPLETED" {
            assert_eq!(tasks.results()[0].approximate_number_of_messages_moved(), 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "COMPLETED");
    let back = c.receive_message().queue_url(&src_url).send().await.unwrap();
    assert_eq!(back.messages()[0].body(), Some("poison"));
    let err = c.cancel_message_move_task().task_handle(handle).send().await.unwrap_err().into_service_error();
    assert_eq!(code(&err), "InvalidParameterValue");

    // A second task can be cancelled while it is running (rate 1/s, several messages).
    for i in 0..5 {
        c.send_message().queue_url(&dlq_url).message_body(format!("m{i}")).send().await.unwrap();
    }
    let second = c
        .start_message_move_task()
        .source_arn(dlq_arn)
        .destination_arn("arn:aws:sqs:us-east-1:000000000000:src")
        .max_number_of_messages_per_second(1)
        .send()
        .await
        .unwrap()
        .task_handle
        .unwrap();
    c.cancel_message_move_task().task_handle(second).send().await.unwrap();
    let tasks = c.list_message_move_tasks().source_arn(dlq_arn).max_results(10).send().await.unwrap();
    assert_eq!(tasks.results()[0].status(), Some("CANCELLED"));
    assert_eq!(tasks.results().len(), 2);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_long_polls_each_get_a_message() {
    let t = TestServer::start().await;
    let c = t.client.clone();
    let url = c.create_queue().queue_name("crowd").send().await.unwrap().queue_url.unwrap();
    const POLLERS: usize = 200;
    let mut polls = Vec::new();
    for _ in 0..POLLERS {
        let (c, url) = (c.clone(), url.clone());
        polls.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            // A poll may return empty-handed if another took the message; poll again.
            while bodies.is_empty() {
                let r = c.receive_message().queue_url(&url).wait_time_seconds(20).send().await.unwrap();
                bodies.extend(r.messages().iter().filter_map(|m| m.body().map(str::to_owned)));
            }
            bodies
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..POLLERS {
        c.send_message().queue_url(&url).message_body(format!("m{i}")).send().await.unwrap();
    }
    let mut all = Vec::new();
    for p in polls {
        all.extend(tokio::time::timeout(Duration::from_secs(60), p).await.expect("poll finished").unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), POLLERS, "every message went to exactly one poller");
    t.stop().await;
}

/// One 20-second poll, started before the event that should end it.
fn spawn_poll(c: &Client, url: &str) -> tokio::task::JoinHandle<Vec<String>> {
    let (c, url) = (c.clone(), url.to_owned());
    tokio::spawn(async move {
        let r = c.receive_message().queue_url(&url).wait_time_seconds(20).send().await.unwrap();
        r.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
    })
}

/// What a poll returned, once it was woken: a poll that is not woken still finds the
/// message, but only when its 20-second wait ends, twice the bound here.
async fn woken(poll: tokio::task::JoinHandle<Vec<String>>) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the poll was woken before its wait ended")
        .unwrap()
}

/// A group commit of sends wakes one poll, not all, and a poll that leaves messages
/// visible wakes the next: every waiting poll still gets its message, from single sends
/// and from a batch alike (a batch of ten to polls taking one each is nine hand-ons).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiting_poll_is_woken_by_a_message() {
    let t = TestServer::start().await;
    let c = t.client.clone();
    let url = c.create_queue().queue_name("woken").send().await.unwrap().queue_url.unwrap();
    let polls: Vec<_> = (0..20).map(|_| spawn_poll(&c, &url)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..10 {
        c.send_message().queue_url(&url).message_body(format!("single {i}")).send().await.unwrap();
    }
    let entries: Vec<_> = (0..10)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("batch {i}"))
                .build()
                .unwrap()
        })
        .collect();
    c.send_message_batch().queue_url(&url).set_entries(Some(entries)).send().await.unwrap();
    let mut all = Vec::new();
    for p in polls {
        let got = woken(p).await;
        assert_eq!(got.len(), 1, "each poll got one message: {got:?}");
        all.extend(got);
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 20);
    t.stop().await;
}

/// A long poll whose try only moves messages to the dead-letter queue, while others are
/// visible behind them, looks again at once (its own receive wakes it) and gets the next
/// message, rather than sleeping to the end of its 20 seconds with a message visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_moves_messages_to_the_dead_letter_queue_gets_the_next() {
    let t = TestServer::start().await;
    let c = &t.client;
    let (src_url, dlq_url) = queue_with_dead_letter_queue(c, "work", "spent").await;
    for body in ["spent 1", "spent 2"] {
        c.send_message().queue_url(&src_url).message_body(body).send().await.unwrap();
    }
    // Received once each, so that their next receive moves them, and visible again in
    // 2 s; "fresh" becomes visible a moment after them.
    let first = c.receive_message().queue_url(&src_url).max_number_of_messages(2).visibility_timeout(2).send().await;
    assert_eq!(first.unwrap().messages().len(), 2);
    c.send_message().queue_url(&src_url).message_body("fresh").delay_seconds(2).send().await.unwrap();
    // The poll sleeps until the timeouts end, then takes one message a try: "spent 1"
    // and "spent 2" go to the dead-letter queue, and "fresh" comes back.
    assert_eq!(woken(spawn_poll(c, &src_url)).await, ["fresh"]);
    let moved = c.receive_message().queue_url(&dlq_url).max_number_of_messages(10).send().await.unwrap();
    let mut moved: Vec<_> = moved.messages().iter().filter_map(|m| m.body()).collect();
    moved.sort();
    assert_eq!(moved, ["spent 1", "spent 2"]);
    t.stop().await;
}

/// A message (its body the queue's name) received with a 60-second visibility timeout, a
/// poll waiting on its queue, then the message's timeout changed to `timeout_s`: the
/// queue's URL, and what the poll returned once woken.
async fn poll_across_visibility_change(c: &Client, queue: &str, timeout_s: i32) -> (String, Vec<String>) {
    let url = c.create_queue().queue_name(queue).send().await.unwrap().queue_url.unwrap();
    c.send_message().queue_url(&url).message_body(queue).send().await.unwrap();
    let r = c.receive_message().queue_url(&url).visibility_timeout(60).send().await.unwrap();
    let receipt = r.messages()[0].receipt_handle().unwrap().to_owned();
    let poll = spawn_poll(c, &url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&receipt)
        .visibility_timeout(timeout_s)
        .send()
        .await
        .unwrap();
    let got = woken(poll).await;
    (url, got)
}

/// A poll that went to sleep before a message's visibility timeout was shortened sees the
/// message when the shorter timeout ends, not at the end of its 20 seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_poll_sees_a_shortened_visibility_timeout_end() {
    let t = TestServer::start().await;
    let c = t.client.clone();
    let (url, got) = poll_across_visibility_change(&c, "shortened", 1).await;
    assert_eq!(got, vec!["shortened"]);
    // A delayed send on a queue with no timers wakes the poll at the end of the delay.
    let poll = spawn_poll(&c, &url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send_message().queue_url(&url).message_body("later").delay_seconds(1).send().await.unwrap();
    assert_eq!(woken(poll).await, vec!["later"]);
    t.stop().await;
}

/// Ending a message's visibility, or deleting the head of a FIFO group, makes a message
/// receivable at once: a waiting poll gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_poll_gets_a_message_released_by_visibility_or_fifo_delete() {
    let t = TestServer::start().await;
    let c = t.client.clone();
    let (_, got) = poll_across_visibility_change(&c, "released", 0).await;
    assert_eq!(got, vec!["released"]);

    let fifo = content_deduplicated_fifo(&c, "released.fifo").await;
    for body in ["first", "second"] {
        c.send_message().queue_url(&fifo).message_body(body).message_group_id("g").send().await.unwrap();
    }
    let r = c.receive_message().queue_url(&fifo).visibility_timeout(60).send().await.unwrap();
    assert_eq!(r.messages()[0].body(), Some("first"));
    let poll = spawn_poll(&c, &fifo);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let receipt = r.messages()[0].receipt_handle().unwrap();
    c.delete_message().queue_url(&fifo).receipt_handle(receipt).send().await.unwrap();
    assert_eq!(woken(poll).await, vec!["second"], "the group's next message went to the waiting poll");
    t.stop().await;
}

/// With SigV4 authentication on, the SDK's signatures verify, the credential's account is
/// used, a wrong secret or unknown key gets AWS's errors, and another account reaches a
/// queue exactly when the queue's policy lets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_authentication_with_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::ephemeral(Some(dir.path().to_owned()));
    let credential = |akid: &str, account: &str| sluice::auth::Credential {
        access_key_id: akid.into(),
        secret_access_key: "secret".into(),
        account_id: account.into(),
        name: None,
        session_token: None,
        identity_policy: None,
    };
    settings.auth = sluice::auth::AuthMode::SigV4(
        [
            ("AKIDEXAMPLE".to_owned(), credential("AKIDEXAMPLE", "111122223333")),
            ("AKIDOTHER".to_owned(), credential("AKIDOTHER", "444455556666")),
        ]
        .into(),
    );
    let server = sluice::app::start(settings).await.unwrap();
    let endpoint = format!("http://{}", server.addr);
    let good = client(&endpoint, "AKIDEXAMPLE", "eu-west-1");
    let url = good.create_queue().queue_name("signed").send().await.unwrap().queue_url.unwrap();
    assert!(url.ends_with("/111122223333/signed"), "{url}");
    good.send_message().queue_url(&url).message_body("x").send().await.unwrap();

    let other = client(&endpoint, "AKIDOTHER", "eu-west-1");
    let e = other.send_message().queue_url(&url).message_body("y").send().await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    good.add_permission()
        .queue_url(&url)
        .label("other-sends")
        .aws_account_ids("444455556666")
        .actions("SendMessage")
        .send()
        .await
        .unwrap();
    other.send_message().queue_url(&url).message_body("y").send().await.unwrap();
    let e = other.receive_message().queue_url(&url).send().await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied", "only SendMessage was granted");

    let e = client(&endpoint, "AKIDNOBODY", "eu-west-1").list_queues().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidClientTokenId");
    let wrong = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "not-the-secret", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let e = Client::from_conf(wrong).list_queues().send().await.unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    server.stop().await.unwrap();
}

/// A short poll of a standard queue with 120,000 messages in flight is refused with
/// OverLimit as the SDK models it; a long poll is not (`crates/services/tests/sqs_in_flight.rs`
/// checks the edges of the quota on the store directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_poll_at_the_in_flight_quota_is_over_limit() {
    const QUOTA: usize = 120_000;
    const TASKS: usize = 64;
    let t = TestServer::start().await;
    let url = t.client.create_queue().queue_name("busy").send().await.unwrap().queue_url.unwrap();
    // Each task sends its share in batches of ten, then receives as many, hidden for 12 h.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (c, url) = (t.client.clone(), url.clone());
        tasks.spawn(async move {
            let rounds = QUOTA / 10 / TASKS + 1;
            for _ in 0..rounds {
                let mut batch = c.send_message_batch().queue_url(&url);
                for i in 0..10 {
                    let entry = SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body("x");
                    batch = batch.entries(entry.build().unwrap());
                }
                assert_eq!(batch.send().await.unwrap().successful.len(), 10);
            }
            rounds * 10
        });
    }
    let sent: usize = tasks.join_all().await.into_iter().sum();
    assert!(sent > QUOTA);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (c, url) = (t.client.clone(), url.clone());
        let rounds = QUOTA / 10 / TASKS + usize::from(task < QUOTA / 10 % TASKS);
        tasks.spawn(async move {
            for _ in 0..rounds {
                let got = c.receive_message().queue_url(&url).max_number_of_messages(10).visibility_timeout(43_200);
                assert_eq!(got.send().await.unwrap().messages().len(), 10);
            }
        });
    }
    tasks.join_all().await;

    let err = t.client.receive_message().queue_url(&url).send().await.unwrap_err().into_service_error();
    assert!(err.is_over_limit(), "{err:?}");
    assert_eq!(code(&err), "OverLimit");
    assert_eq!(
        aws_sdk_sqs::error::ProvideErrorMetadata::message(&err),
        Some("The maximum number of in flight messages (120000) has been reached for queue busy.")
    );
    let long = t.client.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1);
    assert_eq!(long.send().await.unwrap().messages().len(), 10, "the visible ones, past the quota");
    t.stop().await;
}
