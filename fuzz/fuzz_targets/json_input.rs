//! JSON 1.0/1.1 bodies: parsed, then checked against every Kinesis and Firehose
//! operation's input constraints, as the services do before acting.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sluice_wire::Model;
use std::sync::LazyLock;

static MODELS: LazyLock<[Model; 3]> = LazyLock::new(|| {
    [
        Model::from_json(sluice_services::kinesis::MODEL_JSON).unwrap(),
        Model::from_json(sluice_services::firehose::MODEL_JSON).unwrap(),
        Model::from_json(sluice_services::sqs::MODEL_JSON).unwrap(),
    ]
});

fuzz_target!(|data: &[u8]| {
    common::count(data);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for model in MODELS.iter() {
        for op in model.operations.values() {
            if let Some(shape) = &op.input {
                let _ = sluice_wire::query::first_missing_required(model, shape, &value);
                let _ = sluice_wire::validate::message(&sluice_wire::validate::violations(model, shape, &value));
            }
        }
    }
});
