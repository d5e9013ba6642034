//! Kinesis CBOR bodies: whatever decodes re-encodes to something that decodes the same.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::count(data);
    if let Ok(value) = sluice_wire::cbor::decode(data) {
        let again =
            sluice_wire::cbor::decode(&sluice_wire::cbor::encode_plain(&value)).expect("re-encoded CBOR decodes");
        assert_eq!(again, value);
    }
});
