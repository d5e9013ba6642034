//! SigV4 parsing: the first line is the request target (path?query), the others headers
//! (`name: value`); parse, build the canonical request and verify, which must never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice_wire::sigv4;

fuzz_target!(|data: &[u8]| {
    common::count(data);
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.to_owned())).collect();
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("authorization") {
            let _ = sigv4::scope_from_authorization(value);
        }
        if name.eq_ignore_ascii_case("x-amz-date") {
            let _ = sigv4::parse_amz_date(value);
        }
    }
    let req = sigv4::Request { method: "POST", path, query, headers: &headers, body: data };
    if let Ok(sig) = sigv4::parse(&req) {
        let _ = sigv4::verify(&req, &sig, "secret", 1_440_938_160);
    }
});
