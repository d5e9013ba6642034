//! Kinesis over CBOR (`application/x-amz-cbor-1.1`), as the Java SDKs and the KCL send
//! it: requests built with a CBOR encoder, responses checked byte for byte where AWS's
//! encoding matters (tag-1 timestamps in integer milliseconds, blobs as byte strings).

mod common;

use common::*;
use minicbor::data::{Tag, Type};
use minicbor::{Decoder, Encoder};

fn cbor_call(a: &ureq::Agent, endpoint: &str, action: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let mut resp = a
        .post(endpoint)
        .header("X-Amz-Target", &format!("Kinesis_20131202.{action}"))
        .header("Content-Type", "application/x-amz-cbor-1.1")
        .header("Authorization", &AUTH.replace("/sqs/", "/kinesis/"))
        .send(&body[..])
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = resp.body_mut().read_to_vec().unwrap();
    (status, content_type, bytes)
}

/// Writes one value of a request map.
type Field<'a> = (&'a str, &'a dyn Fn(&mut Encoder<Vec<u8>>));

fn map(entries: &[Field]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(entries.len() as u64).unwrap();
    for (k, f) in entries {
        e.str(k).unwrap();
        f(&mut e);
    }
    e.into_writer()
}

/// Finds `key` in a CBOR map at the decoder's position and leaves the decoder on its value.
fn seek(d: &mut Decoder<'_>, key: &str) -> bool {
    let n = d.map().unwrap().unwrap();
    for _ in 0..n {
        let k = d.str().unwrap().to_owned();
        if k == key {
            return true;
        }
        d.skip().unwrap();
    }
    false
}

#[test]
fn cbor_requests_and_responses_use_aws_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let a = agent();
    let (status, ct, _) = cbor_call(
        &a,
        &s.endpoint,
        "CreateStream",
        map(&[
            ("StreamName", &|e| {
                e.str("cbor").unwrap();
            }),
            ("ShardCount", &|e| {
                e.u32(1).unwrap();
            }),
        ]),
    );
    assert_eq!((status, ct.as_str()), (200, "application/x-amz-cbor-1.1"));

    let payload: Vec<u8> = vec![0, 1, 2, 255];
    let (status, _, body) = cbor_call(
        &a,
        &s.endpoint,
        "PutRecord",
        map(&[
            ("StreamName", &|e| {
                e.str("cbor").unwrap();
            }),
            ("PartitionKey", &|e| {
                e.str("pk").unwrap();
            }),
            ("Data", &|e| {
                e.bytes(&[0, 1, 2, 255]).unwrap();
            }),
        ]),
    );
    assert_eq!(status, 200);
    let mut d = Decoder::new(&body);
    assert!(seek(&mut d, "SequenceNumber"));
    let sequence = d.str().unwrap().to_owned();

    // AT_TIMESTAMP with a tag-1 integer-millisecond timestamp, as the Java SDK v2 writes it.
    let (_, _, body) = cbor_call(
        &a,
        &s.endpoint,
        "GetShardIterator",
        map(&[
            ("StreamName", &|e| {
                e.str("cbor").unwrap();
            }),
            ("ShardId", &|e| {
                e.str("shardId-000000000000").unwrap();
            }),
            ("ShardIteratorType", &|e| {
                e.str("AT_TIMESTAMP").unwrap();
            }),
            ("Timestamp", &|e| {
                e.tag(Tag::new(1)).unwrap().u64(1_000_000_000_000).unwrap();
            }),
        ]),
    );
    let mut d = Decoder::new(&body);
    assert!(seek(&mut d, "ShardIterator"), "{body:02x?}");
    let iterator = d.str().unwrap().to_owned();

    let (status, _, body) = cbor_call(
        &a,
        &s.endpoint,
        "GetRecords",
        map(&[("ShardIterator", &|e| {
            e.str(&iterator).unwrap();
        })]),
    );
    assert_eq!(status, 200);
    let mut d = Decoder::new(&body);
    assert!(seek(&mut d, "Records"));
    assert_eq!(d.array().unwrap(), Some(1));
    let n = d.map().unwrap().unwrap();
    let mut seen = 0;
    for _ in 0..n {
        match d.str().unwrap() {
            "Data" => {
                assert_eq!(d.datatype().unwrap(), Type::Bytes, "blobs are byte strings");
                assert_eq!(d.bytes().unwrap(), &payload[..]);
                seen += 1;
            }
            "ApproximateArrivalTimestamp" => {
                assert_eq!(d.tag().unwrap(), Tag::new(1), "timestamps carry tag 1");
                assert!(matches!(d.datatype().unwrap(), Type::U64 | Type::U32), "integer milliseconds");
                let ms = d.u64().unwrap();
                assert!(ms > 1_600_000_000_000, "milliseconds, not seconds: {ms}");
                seen += 1;
            }
            "SequenceNumber" => {
                assert_eq!(d.str().unwrap(), sequence);
                seen += 1;
            }
            _ => d.skip().unwrap(),
        }
    }
    assert_eq!(seen, 3);

    let (status, ct, body) = cbor_call(
        &a,
        &s.endpoint,
        "DescribeStream",
        map(&[("StreamName", &|e| {
            e.str("missing").unwrap();
        })]),
    );
    assert_eq!((status, ct.as_str()), (400, "application/x-amz-cbor-1.1"));
    let mut d = Decoder::new(&body);
    assert!(seek(&mut d, "__type"));
    assert_eq!(d.str().unwrap(), "ResourceNotFoundException");

    let (status, _, body) = cbor_call(&a, &s.endpoint, "ListStreams", vec![0xff, 0x00]);
    assert_eq!(status, 400);
    let mut d = Decoder::new(&body);
    assert!(seek(&mut d, "__type"));
    assert_eq!(d.str().unwrap(), "SerializationException");
}
