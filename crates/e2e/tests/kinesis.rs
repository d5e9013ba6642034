//! Kinesis through the official AWS SDK for Rust against the real server (in-process),
//! including SubscribeToShard over HTTP/2 with prior knowledge and over HTTP/1.1.

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardIteratorType, StartingPosition, StreamMode, StreamModeDetails,
    SubscribeToShardEventStream,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use sluice::config::Settings;
use std::time::Duration;

/// A connector speaking one HTTP version: HTTP/2 with prior knowledge (Sluice must
/// speak h2c on its plain port) or HTTP/1.1 (served by Sluice's own loop).
#[derive(Clone, Debug)]
struct OneVersionConnector {
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, SdkBody>,
    version: http::Version,
}

impl HttpConnector for OneVersionConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (client, version) = (self.client.clone(), self.version);
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client.request(request).await.map_err(|e| ConnectorError::io(e.into()))?;
            assert_eq!(response.version(), version, "the exchange used {version:?}");
            let response = response.map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

#[derive(Clone, Debug)]
struct OneVersionClient(OneVersionConnector);

impl HttpClient for OneVersionClient {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.0.clone())
    }
}

fn client_for(version: http::Version) -> SharedHttpClient {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(version == http::Version::HTTP_2)
        .build_http();
    SharedHttpClient::new(OneVersionClient(OneVersionConnector { client, version }))
}

fn kinesis(endpoint: &str, http: SharedHttpClient) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
        .http_client(http)
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

fn settings(dir: &std::path::Path) -> Settings {
    Settings::ephemeral(Some(dir.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_operations_through_the_rust_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let k = kinesis(&format!("http://{}", server.addr), aws_smithy_http_client::Builder::new().build_http());
    k.create_stream().stream_name("sdk").shard_count(2).send().await.unwrap();
    let err = k.create_stream().stream_name("sdk").shard_count(2).send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    let summary = k.describe_stream_summary().stream_name("sdk").send().await.unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.open_shard_count(), 2);
    let arn = summary.stream_arn().to_owned();

    let put = k.put_record().stream_name("sdk").partition_key("a").data(Blob::new("one")).send().await.unwrap();
    let batch = k
        .put_records()
        .stream_arn(&arn)
        .records(PutRecordsRequestEntry::builder().partition_key("a").data(Blob::new("two")).build().unwrap())
        .records(PutRecordsRequestEntry::builder().partition_key("a").data(Blob::new("three")).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(batch.failed_record_count(), Some(0));
    assert!(batch.records().iter().all(|r| r.shard_id() == Some(put.shard_id())), "same key, same shard");
    let it = k
        .get_shard_iterator()
        .stream_name("sdk")
        .shard_id(put.shard_id())
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let got = k.get_records().shard_iterator(it).send().await.unwrap();
    let data: Vec<&[u8]> = got.records().iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(data, vec![b"one".as_ref(), b"two", b"three"]);
    assert!(got.records()[0].approximate_arrival_timestamp().is_some());
    assert_eq!(got.records()[0].sequence_number(), put.sequence_number());

    let shards = k.list_shards().stream_name("sdk").send().await.unwrap();
    assert_eq!(shards.shards().len(), 2);
    k.update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(StreamModeDetails::builder().stream_mode(StreamMode::OnDemand).build().unwrap())
        .send()
        .await
        .unwrap();
    k.add_tags_to_stream().stream_name("sdk").tags("k", "v").send().await.unwrap();
    assert_eq!(k.list_tags_for_stream().stream_name("sdk").send().await.unwrap().tags().len(), 1);
    let limits = k.describe_limits().send().await.unwrap();
    assert_eq!(limits.open_shard_count(), 2);
    k.delete_stream().stream_name("sdk").send().await.unwrap();
    let err = k.describe_stream().stream_name("sdk").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_to_shard_over_http2() {
    subscribe_to_shard_over(http::Version::HTTP_2).await;
}

/// Over HTTP/1.1 the event stream goes out chunked, from Sluice's own HTTP/1.1 loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_to_shard_over_http1() {
    subscribe_to_shard_over(http::Version::HTTP_11).await;
}

async fn subscribe_to_shard_over(version: http::Version) {
    let dir = tempfile::tempdir().unwrap();
    let server = sluice::app::start(settings(dir.path())).await.unwrap();
    let k = kinesis(&format!("http://{}", server.addr), client_for(version));
    k.create_stream().stream_name("fanout").shard_count(1).send().await.unwrap();
    let arn = k.describe_stream_summary().stream_name("fanout").send().await.unwrap();
    let arn = arn.stream_description_summary().unwrap().stream_arn().to_owned();
    let consumer = k.register_stream_consumer().stream_arn(&arn).consumer_name("app").send().await.unwrap();
    let consumer_arn = consumer.consumer().unwrap().consumer_arn().to_owned();
    k.put_record().stream_name("fanout").partition_key("p").data(Blob::new("before")).send().await.unwrap();

    let mut sub = k
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon).build().unwrap())
        .send()
        .await
        .unwrap();
    let err = k
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(StartingPosition::builder().r#type(ShardIteratorType::Latest).build().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "one subscription per consumer and shard: {err:?}");

    let mut seen: Vec<String> = Vec::new();
    let mut continuation = String::new();
    let mut sent_after = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        let event = tokio::time::timeout(Duration::from_secs(10), sub.event_stream.recv()).await.unwrap().unwrap();
        let Some(SubscribeToShardEventStream::SubscribeToShardEvent(ev)) = event else { continue };
        continuation = ev.continuation_sequence_number().to_owned();
        seen.extend(ev.records().iter().map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap()));
        if !sent_after {
            // Records put after subscribing are pushed as they commit.
            k.put_record().stream_name("fanout").partition_key("p").data(Blob::new("after")).send().await.unwrap();
            sent_after = true;
        }
    }
    assert_eq!(seen, vec!["before", "after"]);
    assert!(!continuation.is_empty());
    drop(sub);
    server.stop().await.unwrap();
}
