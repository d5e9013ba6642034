//! The Query protocol: a form body decoded against every SQS and SNS operation's input.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice_services::{sns::SnsService, sqs::SqsService};
use sluice_wire::query::{decode, first_missing_required, parse_form, QueryNaming};
use sluice_wire::Model;
use std::sync::LazyLock;

static SQS: LazyLock<Model> = LazyLock::new(|| Model::from_json(sluice_services::sqs::MODEL_JSON).unwrap());
static SNS: LazyLock<Model> = LazyLock::new(|| Model::from_json(sluice_services::sns::MODEL_JSON).unwrap());

fn every_operation(model: &Model, naming: &dyn QueryNaming, params: &[(String, String)]) {
    for op in model.operations.values() {
        if let Some(shape) = &op.input {
            if let Ok(value) = decode(model, naming, shape, params) {
                let _ = first_missing_required(model, shape, &value);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    common::count(data);
    let params = parse_form(data);
    every_operation(&SQS, SqsService::naming(), &params);
    every_operation(&SNS, SnsService::naming(), &params);
});
