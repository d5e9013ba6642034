//! Declarative resources: queues listed in the config file exist at start, idempotently.

mod common;

use common::*;
use serde_json::json as j;

fn write_config(path: &std::path::Path, visibility: &str) {
    std::fs::write(
        path,
        format!(
            r#"
relax_cooldowns = true

[[queues]]
name = "orders-dlq"

[[queues]]
name = "orders"
attributes = {{ VisibilityTimeout = "{visibility}", RedrivePolicy = '{{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:orders-dlq","maxReceiveCount":3}}' }}
tags = {{ team = "payments" }}

[[queues]]
name = "events.fifo"
region = "eu-west-1"
attributes = {{ FifoQueue = "true" }}
"#
        ),
    )
    .unwrap();
}

#[test]
fn queues_from_the_config_file_are_declared_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    write_config(&config, "45");
    let data = dir.path().join("data");
    let cfg = config.to_str().unwrap();
    let s = Server::spawn(&data, &["--config", cfg]);
    let a = agent();
    let url = format!("{}/000000000000/orders", s.endpoint);
    let (status, body, _) =
        json_call(&a, &s.endpoint, "GetQueueAttributes", &j!({"QueueUrl": url, "AttributeNames": ["All"]}).to_string());
    assert_eq!(status, 200, "{body}");
    let attrs = &json(&body)["Attributes"];
    assert_eq!(attrs["VisibilityTimeout"], "45");
    assert!(attrs["RedrivePolicy"].as_str().unwrap().contains("orders-dlq"));
    let (_, body, _) = json_call(&a, &s.endpoint, "ListQueueTags", &j!({"QueueUrl": url}).to_string());
    assert_eq!(json(&body)["Tags"]["team"], "payments");
    // The region comes from the signature's credential scope; eu-west-1 is its own namespace.
    let west = a
        .post(&s.endpoint)
        .header("X-Amz-Target", "AmazonSQS.ListQueues")
        .header("Authorization", &AUTH.replace("us-east-1", "eu-west-1"))
        .send("{}")
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(west.contains("events.fifo"), "{west}");
    drop(s);

    // Restart with a changed attribute: the queue is updated, not duplicated.
    write_config(&config, "60");
    let s = Server::spawn(&data, &["--config", cfg]);
    let (_, body, _) = json_call(
        &a,
        &s.endpoint,
        "GetQueueAttributes",
        &j!({"QueueUrl": url, "AttributeNames": ["VisibilityTimeout"]}).to_string(),
    );
    assert_eq!(json(&body)["Attributes"]["VisibilityTimeout"], "60");
    let (_, body, _) = json_call(&a, &s.endpoint, "ListQueues", "{}");
    assert_eq!(json(&body)["QueueUrls"].as_array().unwrap().len(), 2);
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "account = \"111111111111\"\n").unwrap();
    let cfg = config.to_str().unwrap();
    let data = dir.path().join("data");
    let account_of = |s: &Server| {
        let (_, body, _) = json_call(&agent(), &s.endpoint, "CreateQueue", r#"{"QueueName":"q"}"#);
        json(&body)["QueueUrl"].as_str().unwrap().split('/').nth(3).unwrap().to_owned()
    };
    let s = Server::spawn(&data, &["--config", cfg]);
    assert_eq!(account_of(&s), "111111111111");
    drop(s);
    let s = Server::spawn_with_env(&data, &["--config", cfg], &[("SLUICE_ACCOUNT", "222222222222")]);
    assert_eq!(account_of(&s), "222222222222");
    drop(s);
    let s = Server::spawn_with_env(
        &data,
        &["--config", cfg, "--account", "333333333333"],
        &[("SLUICE_ACCOUNT", "222222222222")],
    );
    assert_eq!(account_of(&s), "333333333333");
}
