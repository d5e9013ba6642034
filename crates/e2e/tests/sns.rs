//! SNS through the official AWS SDK for Rust against the real server (in-process).

use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry, Tag};
use sluice::config::Settings;
use std::time::Duration;

fn settings(dir: &std::path::Path) -> Settings {
    Settings::ephemeral(Some(dir.to_owned()))
}

fn clients(endpoint: &str) -> (aws_sdk_sns::Client, aws_sdk_sqs::Client) {
    let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let sns = aws_sdk_sns::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds.clone())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let sqs = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    (aws_sdk_sns::Client::from_conf(sns), aws_sdk_sqs::Client::from_conf(sqs))
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap();
    (url, format!("arn:aws:sqs:us-east-1:000000000000:{name}"))
}

/// Subscribes the queue `arn` to `topic` with raw message delivery.
async fn subscribe_raw(sns: &aws_sdk_sns::Client, topic: &str, arn: &str) {
    sns.subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
}

async fn bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let r = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
    r.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_subscription_actions() {
    let dir = tempfile::tempdir().unwrap();
    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let (sns, sqs) = clients(&format!("http://{}", server.addr));

    let topic = sns
        .create_topic()
        .name("events")
        .attributes("DisplayName", "Events")
        .tags(Tag::builder().key("env").value("test").build().unwrap())
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    assert_eq!(topic, "arn:aws:sns:us-east-1:000000000000:events");
    let topics = sns.list_topics().send().await.unwrap();
    assert_eq!(topics.topics().len(), 1);
    sns.set_topic_attributes()
        .topic_arn(&topic)
        .attribute_name("DisplayName")
        .attribute_value("Renamed")
        .send()
        .await
        .unwrap();
    let attrs = sns.get_topic_attributes().topic_arn(&topic).send().await.unwrap().attributes.unwrap();
    assert_eq!(attrs["DisplayName"], "Renamed");
    let err = sns
        .set_topic_attributes()
        .topic_arn(&topic)
        .attribute_name("Nope")
        .attribute_value("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");

    let (a_url, a_arn) = queue(&sqs, "a").await;
    let (b_url, b_arn) = queue(&sqs, "b").await;
    let sub_a = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&a_arn)
        .attributes("RawMessageDelivery", "true")
        .attributes("FilterPolicy", r#"{"color":["red"]}"#)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    let sub_b = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&b_arn)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    assert_eq!(sns.list_subscriptions().send().await.unwrap().subscriptions().len(), 2);
    assert_eq!(sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap().subscriptions().len(), 2);
    let sa = sns.get_subscription_attributes().subscription_arn(&sub_a).send().await.unwrap().attributes.unwrap();
    assert_eq!(sa["RawMessageDelivery"], "true");
    assert_eq!(sa["PendingConfirmation"], "false");

    let red = MessageAttributeValue::builder().data_type("String").string_value("red").build().unwrap();
    let blue = MessageAttributeValue::builder().data_type("String").string_value("blue").build().unwrap();
    sns.publish().topic_arn(&topic).message("red one").message_attributes("color", red.clone()).send().await.unwrap();
    let batch = sns
        .publish_batch()
        .topic_arn(&topic)
        .publish_batch_request_entries(
            PublishBatchRequestEntry::builder()
                .id("1")
                .message("blue one")
                .message_attributes("color", blue)
                .build()
                .unwrap(),
        )
        .publish_batch_request_entries(
            PublishBatchRequestEntry::builder()
                .id("2")
                .message("red two")
                .message_attributes("color", red)
                .build()
                .unwrap(),
        )
        .publish_batch_request_entries(PublishBatchRequestEntry::builder().id("3").message("").build().unwrap())
        .send()
        .await
        .unwrap();
    // The entries run together (one group commit); each keeps its own outcome, in order.
    assert_eq!(batch.successful().iter().map(|s| s.id().unwrap_or_default()).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(batch.failed()[0].id(), "3");
    let mut a = bodies(&sqs, &a_url).await;
    a.sort();
    assert_eq!(a, vec!["red one", "red two"], "raw delivery, filtered");
    let b = bodies(&sqs, &b_url).await;
    assert_eq!(b.len(), 3, "unfiltered subscription gets every message");
    assert!(b.iter().all(|m| m.contains("\"Type\" : \"Notification\"")), "enveloped delivery");

    sns.set_subscription_attributes()
        .subscription_arn(&sub_a)
        .attribute_name("FilterPolicy")
        .attribute_value(r#"{"color":[{"anything-but":"red"}]}"#)
        .send()
        .await
        .unwrap();
    let err = sns
        .set_subscription_attributes()
        .subscription_arn(&sub_a)
        .attribute_name("FilterPolicy")
        .attribute_value(r#"{"color":[{"numeric":[">",1,"<",0]}]}"#)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception());

    sns.tag_resource()
        .resource_arn(&topic)
        .tags(Tag::builder().key("team").value("x").build().unwrap())
        .send()
        .await
        .unwrap();
    sns.untag_resource().resource_arn(&topic).tag_keys("env").send().await.unwrap();
    let tags = sns.list_tags_for_resource().resource_arn(&topic).send().await.unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "team");

    sns.add_permission()
        .topic_arn(&topic)
        .label("pub")
        .aws_account_id("111122223333")
        .action_name("Publish")
        .send()
        .await
        .unwrap();
    let policy =
        sns.get_topic_attributes().topic_arn(&topic).send().await.unwrap().attributes.unwrap()["Policy"].clone();
    assert!(policy.contains("111122223333"));
    sns.remove_permission().topic_arn(&topic).label("pub").send().await.unwrap();
    sns.put_data_protection_policy()
        .resource_arn(&topic)
        .data_protection_policy(r#"{"Name":"p"}"#)
        .send()
        .await
        .unwrap();
    let dpp = sns.get_data_protection_policy().resource_arn(&topic).send().await.unwrap();
    assert_eq!(dpp.data_protection_policy(), Some(r#"{"Name":"p"}"#));

    sns.unsubscribe().subscription_arn(&sub_b).send().await.unwrap();
    let err = sns.unsubscribe().subscription_arn(&sub_b).send().await.unwrap_err().into_service_error();
    assert!(err.is_not_found_exception());
    sns.delete_topic().topic_arn(&topic).send().await.unwrap();
    let err = sns.get_topic_attributes().topic_arn(&topic).send().await.unwrap_err().into_service_error();
    assert!(err.is_not_found_exception());
    assert!(
        sns.list_subscriptions().send().await.unwrap().subscriptions().is_empty(),
        "subscriptions go with the topic"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_subscriptions_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let (sns, sqs) = clients(&format!("http://{}", server.addr));
    let topic = sns.create_topic().name("durable").send().await.unwrap().topic_arn.unwrap();
    let (_, arn) = queue(&sqs, "sink").await;
    subscribe_raw(&sns, &topic, &arn).await;
    server.stop().await.unwrap();

    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let (sns, sqs) = clients(&format!("http://{}", server.addr));
    sns.publish().topic_arn(&topic).message("after restart").send().await.unwrap();
    let url = sqs.get_queue_url().queue_name("sink").send().await.unwrap().queue_url.unwrap();
    let got = sqs.receive_message().queue_url(&url).wait_time_seconds(5).send().await.unwrap();
    assert_eq!(got.messages()[0].body(), Some("after restart"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.stop().await.unwrap();
}

/// One publish to raw subscriptions of four queues, two sealed and two not: the message
/// log stores the text once per run of queues sealed alike, and every queue still reads
/// it whole, with its MD5 and SNS's SenderId (the principal AWS delivers from), after a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_reaches_every_raw_queue_whole_after_a_restart() {
    use md5::{Digest, Md5};
    let dir = tempfile::tempdir().unwrap();
    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let (sns, sqs) = clients(&format!("http://{}", server.addr));
    let topic = sns.create_topic().name("wide").send().await.unwrap().topic_arn.unwrap();
    let queues = [("w", true), ("x", true), ("y", false), ("z", false)];
    for (name, sealed) in queues {
        sqs.create_queue()
            .queue_name(name)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::SqsManagedSseEnabled, sealed.to_string())
            .send()
            .await
            .unwrap();
        subscribe_raw(&sns, &topic, &format!("arn:aws:sqs:us-east-1:000000000000:{name}")).await;
    }
    let text = format!("{{\"order\": 17, \"note\": \"{}\"}}", "é".repeat(1000));
    sns.publish().topic_arn(&topic).message(&text).send().await.unwrap();
    server.stop().await.unwrap();

    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let (_, sqs) = clients(&format!("http://{}", server.addr));
    let md5 = hex::encode(Md5::digest(text.as_bytes()));
    for (name, _) in queues {
        let url = sqs.get_queue_url().queue_name(name).send().await.unwrap().queue_url.unwrap();
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(5)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::SenderId)
            .send()
            .await
            .unwrap();
        assert_eq!(got.messages().len(), 1, "{name}");
        assert_eq!(got.messages()[0].body(), Some(text.as_str()), "{name}");
        assert_eq!(got.messages()[0].md5_of_body(), Some(md5.as_str()), "{name}");
        let sender = got.messages()[0]
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SenderId));
        assert_eq!(sender.map(String::as_str), Some("AIDAIT2UOQQY3AUEKVGXU"), "{name}");
    }
    server.stop().await.unwrap();
}
