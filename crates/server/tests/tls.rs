//! The TLS listener with a generated development certificate: HTTP/2 and HTTP/1.1 by
//! ALPN, and a certificate that verifies for 127.0.0.1 against itself.

mod common;

use common::Server;
use std::process::Command;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("curl is installed");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn https_with_alpn_and_a_verifiable_development_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &["--tls-listen", "127.0.0.1:0"]);
    let https = s.tls_endpoint.clone().unwrap();
    assert!(https.starts_with("https://127.0.0.1:"), "{https}");
    let cert = dir.path().join("tls-dev-cert.pem");
    assert!(cert.exists(), "the development certificate is kept in the data directory");
    let cert = cert.to_str().unwrap();
    let request = |version: &str| {
        curl(&[
            "-sS",
            version,
            "--cacert",
            cert,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "-H",
            "X-Amz-Target: Kinesis_20131202.ListStreams",
            "-H",
            "Content-Type: application/x-amz-json-1.1",
            "-d",
            "{}",
            &https,
        ])
    };
    assert_eq!(request("--http2"), "2 200", "h2 by ALPN, certificate verified");
    assert_eq!(request("--http1.1"), "1.1 200");
    // Queue URLs name the scheme the client used.
    let body = curl(&[
        "-sS",
        "--cacert",
        cert,
        "-H",
        "X-Amz-Target: AmazonSQS.CreateQueue",
        "-H",
        "Content-Type: application/x-amz-json-1.0",
        "-d",
        r#"{"QueueName":"secure"}"#,
        &https,
    ]);
    assert!(body.contains("\"QueueUrl\":\"https://127.0.0.1:"), "{body}");
    let status = s.terminate();
    assert!(status.success());
}
