//! Micro-benchmarks of the per-request hot paths: request decoding (JSON, Query, CBOR),
//! response encoding (XML, CBOR), the attribute MD5s SDKs verify, and SigV4 verification.
//! `cargo bench -p sluice-services --bench hot_paths` (prints figures; nothing is asserted).

use serde_json::{json, Value};
use sluice_md5::md5_hex_many;
use sluice_services::sqs::types::SendMessageRequest;
use sluice_services::sqs::SqsService;
use sluice_wire::md5::{md5_hex, md5_of_message_attributes, AttributeBytes, DigestAttribute};
use sluice_wire::Model;
use std::sync::LazyLock;

fn main() {
    divan::main();
}

static SQS: LazyLock<Model> = LazyLock::new(|| Model::from_json(sluice_services::sqs::MODEL_JSON).unwrap());
static KINESIS: LazyLock<Model> = LazyLock::new(|| Model::from_json(sluice_services::kinesis::MODEL_JSON).unwrap());

fn send_message_json() -> Vec<u8> {
    json!({"QueueUrl": "http://localhost:4566/000000000000/orders", "MessageBody": "x".repeat(1024),
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"},
                              "amount": {"DataType": "Number", "StringValue": "42"}}})
    .to_string()
    .into_bytes()
}

/// SendMessage as SQS decodes it: JSON text to a value, then to the typed request.
#[divan::bench]
fn decode_send_message_json(bencher: divan::Bencher) {
    let body = send_message_json();
    bencher.bench(|| {
        let value: Value = serde_json::from_slice(divan::black_box(&body)).unwrap();
        serde_json::from_value::<SendMessageRequest>(value).unwrap()
    });
}

/// SendMessageBatch of 10 in the Query protocol (form decoding against the model).
#[divan::bench]
fn decode_send_message_batch_query(bencher: divan::Bencher) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "SendMessageBatch").append_pair("QueueUrl", "http://h/000000000000/q");
    for i in 1..=10 {
        form.append_pair(&format!("SendMessageBatchRequestEntry.{i}.Id"), &format!("m{i}"));
        form.append_pair(&format!("SendMessageBatchRequestEntry.{i}.MessageBody"), &"x".repeat(1024));
    }
    let body = form.finish().into_bytes();
    let shape = SQS.operations["SendMessageBatch"].input.clone().unwrap();
    bencher.bench(|| {
        let params = sluice_wire::query::parse_form(divan::black_box(&body));
        sluice_wire::query::decode(&SQS, SqsService::naming(), &shape, &params).unwrap()
    });
}

/// A SendMessage response rendered as Query XML.
#[divan::bench]
fn encode_send_message_xml(bencher: divan::Bencher) {
    let output = json!({"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
        "MD5OfMessageBody": "fafb00f5732ab283681e124bf8747ed1", "MD5OfMessageAttributes": "3ae8f24a165a8cedc005670c81a27295"});
    bencher.bench(|| {
        let xml = sluice_wire::xml::XmlResponse {
            model: &SQS,
            naming: SqsService::naming(),
            xmlns: sluice_services::sqs::XMLNS,
        };
        xml.render("SendMessage", Some(divan::black_box(&output)), "req-1")
    });
}

fn put_records(n: usize) -> Value {
    let data = "eA==".repeat(256);
    json!({"StreamName": "s", "Records": (0..n).map(|i| json!({"Data": data, "PartitionKey": format!("k{i}")})).collect::<Vec<_>>()})
}

/// PutRecords of 500 × 1 KiB: JSON decoding plus the model's constraint checks.
#[divan::bench]
fn decode_put_records_json(bencher: divan::Bencher) {
    let body = put_records(500).to_string().into_bytes();
    let shape = KINESIS.operations["PutRecords"].input.clone().unwrap();
    bencher.bench(|| {
        let value: Value = serde_json::from_slice(divan::black_box(&body)).unwrap();
        sluice_wire::validate::violations(&KINESIS, &shape, &value)
    });
}

/// The same request as the Java SDKs send it (CBOR).
#[divan::bench]
fn decode_put_records_cbor(bencher: divan::Bencher) {
    let bytes = sluice_wire::cbor::encode_plain(&put_records(500));
    bencher.bench(|| sluice_wire::cbor::decode(divan::black_box(&bytes)).unwrap());
}

/// MD5OfMessageBody of a 1 KiB body.
#[divan::bench]
fn md5_of_body(bencher: divan::Bencher) {
    let body = vec![b'x'; 1024];
    bencher.bench(|| md5_hex(divan::black_box(&body)));
}

/// MD5OfMessageBody of a SendMessageBatch's ten 1 KiB bodies, side by side.
#[divan::bench]
fn md5_of_ten_bodies(bencher: divan::Bencher) {
    let bodies: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 1024]).collect();
    let inputs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    bencher.bench(|| md5_hex_many(divan::black_box(&inputs)));
}

/// MD5OfMessageAttributes of five attributes.
#[divan::bench]
fn md5_of_attributes(bencher: divan::Bencher) {
    let binary = [1u8, 2, 3, 4];
    bencher.bench(|| {
        let mut attrs = vec![
            DigestAttribute { name: "kind", data_type: "String", value: AttributeBytes::String("order") },
            DigestAttribute { name: "amount", data_type: "Number", value: AttributeBytes::String("42.5") },
            DigestAttribute { name: "blob", data_type: "Binary", value: AttributeBytes::Binary(&binary) },
            DigestAttribute { name: "region", data_type: "String", value: AttributeBytes::String("eu-west-1") },
            DigestAttribute { name: "trace", data_type: "String.custom", value: AttributeBytes::String("abc") },
        ];
        md5_of_message_attributes(divan::black_box(&mut attrs))
    });
}

/// Verifying a SigV4 header signature (what every request costs with --auth sigv4).
#[divan::bench]
fn sigv4_verify(bencher: divan::Bencher) {
    let now = 1_700_000_000;
    let body = send_message_json();
    let mut headers = vec![
        ("host".to_string(), "localhost:4566".to_string()),
        ("content-type".to_string(), "application/x-amz-json-1.0".to_string()),
        ("x-amz-target".to_string(), "AmazonSQS.SendMessage".to_string()),
    ];
    let mut signer = sluice_wire::sigv4::Signer::new("AKIDEXAMPLE", "secret", "us-east-1", "sqs");
    let (date, authorization) = signer.sign("POST", "/", &headers, &body, now);
    headers.push(("x-amz-date".into(), date));
    headers.push(("authorization".into(), authorization));
    bencher.bench(|| {
        let req = sluice_wire::sigv4::Request { method: "POST", path: "/", query: "", headers: &headers, body: &body };
        let sig = sluice_wire::sigv4::parse(&req).unwrap();
        sluice_wire::sigv4::verify(&req, &sig, "secret", now).unwrap()
    });
}
