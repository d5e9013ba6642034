//! IAM policies (queue, topic, stream and identity policies): any text either is refused
//! or evaluates for any caller without panicking.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice_services::iam::{authorize, Access, Caller, Policy, Principal};

fuzz_target!(|data: &[u8]| {
    common::count(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::parse(text) else { return };
    let callers = [
        Caller { principal: Principal::for_credential("111122223333", Some("u")), identity_policy: None },
        Caller { principal: Principal::Service("sns.amazonaws.com".into()), identity_policy: None },
    ];
    for caller in &callers {
        let access = Access {
            action: "sqs:SendMessage",
            resource: "arn:aws:sqs:us-east-1:111122223333:q",
            resource_owner: "444455556666",
            resource_policy: Some(&policy),
            context: vec![("aws:SourceArn", text.chars().take(64).collect())],
        };
        let _ = authorize(caller, &access);
    }
});
