//! SNS filter policies: any text either is refused or compiles into a policy that can be
//! matched against any message (here, the same text as a message body and attributes).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice_services::filter::{attribute_values, body_values, FilterPolicy, Scope};

fuzz_target!(|data: &[u8]| {
    common::count(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    for scope in [Scope::MessageAttributes, Scope::MessageBody] {
        if let Ok(policy) = FilterPolicy::parse(text, scope) {
            let _ = policy.exact_anchor();
            if let Some(values) = body_values(text) {
                let _ = policy.matches(&values);
            }
            let attrs = attribute_values([("key", "String", Some(text)), ("n", "Number", Some(text))].into_iter());
            let _ = policy.matches(&attrs);
        }
    }
});
