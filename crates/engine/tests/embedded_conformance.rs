//! The Store conformance suite against the embedded SQLite backend, on disk.

use sluice_engine::{EmbeddedOptions, EmbeddedStore, ManualClock, Store};
use std::path::Path;
use std::sync::Arc;

fn embedded(dir: &Path, clock: Arc<ManualClock>) -> Arc<dyn Store> {
    let options = EmbeddedOptions {
        data_dir: Some(dir.to_owned()),
        durable: true,
        relax_cooldowns: false,
        max_data_bytes: None,
        encryption_key: None,
    };
    Arc::new(EmbeddedStore::open(options, clock).expect("open store"))
}

sluice_engine::store_conformance_tests!(embedded);
