//! Event-stream frames: decoding walks a byte stream without reading past it, and every
//! frame re-encodes to the same message.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice_wire::eventstream::{decode, encode};

fuzz_target!(|data: &[u8]| {
    common::count(data);
    let mut rest = data;
    while let Some((message, used)) = decode(rest) {
        assert!(used > 0 && used <= rest.len());
        let headers: Vec<(&str, &str)> = message.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let frame = encode(&headers, &message.payload);
        let (again, n) = decode(&frame).expect("an encoded frame decodes");
        assert_eq!(n, frame.len());
        assert_eq!(again, message);
        rest = &rest[used..];
    }
});
