//! Firehose through the official AWS SDK for Rust against the real server (in-process),
//! reading the delivered objects back from the local-filesystem bucket.

use aws_sdk_firehose::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{BufferingHints, CompressionFormat, ExtendedS3DestinationConfiguration, Record};
use sluice::config::Settings;
use std::io::Read;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_record_batch_lands_as_gzip_objects() {
    let dir = tempfile::tempdir().unwrap();
    let server = sluice::app::start(Settings::ephemeral(Some(dir.path().to_owned()))).await.unwrap();
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", server.addr))
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let fh = aws_sdk_firehose::Client::from_conf(config);
    fh.create_delivery_stream()
        .delivery_stream_name("sdk")
        .extended_s3_destination_configuration(
            ExtendedS3DestinationConfiguration::builder()
                .role_arn("arn:aws:iam::000000000000:role/firehose")
                .bucket_arn("arn:aws:s3:::sdk-bucket")
                .buffering_hints(BufferingHints::builder().size_in_mbs(1).interval_in_seconds(0).build())
                .compression_format(CompressionFormat::Gzip)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let out = fh
        .put_record_batch()
        .delivery_stream_name("sdk")
        .records(Record::builder().data(Blob::new("one\n")).build().unwrap())
        .records(Record::builder().data(Blob::new("two\n")).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_put_count(), 0);
    assert_eq!(out.request_responses().len(), 2);
    let d = fh.describe_delivery_stream().delivery_stream_name("sdk").send().await.unwrap();
    assert_eq!(d.delivery_stream_description().unwrap().version_id(), "1");
    let err =
        fh.describe_delivery_stream().delivery_stream_name("missing").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception());

    let bucket = dir.path().join("s3/sdk-bucket");
    let mut text = String::new();
    for _ in 0..100 {
        text.clear();
        let mut stack = vec![bucket.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "gz") {
                    let bytes = std::fs::read(&p).unwrap();
                    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).unwrap();
                }
            }
        }
        if text.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(text, "one\ntwo\n");
    server.stop().await.unwrap();
}
