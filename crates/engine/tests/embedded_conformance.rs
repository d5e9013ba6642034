//! The Store conformance suite against the embedded SQLite backend, on disk.

use sluice_engine::{EmbeddedOptions, EmbeddedStore, ManualClock, Store};
use std::path::Path;
use std::sync::Arc;

fn embedded(dir: &Path, clock: Arc<ManualClock>) -> Arc<dyn Store> {
    // AWS's cooldowns are part of what the conformance suite checks.
    let options = EmbeddedOptions { relax_cooldowns: false, ..EmbeddedOptions::for_tests(dir) };
    Arc::new(EmbeddedStore::open(options, clock).expect("open store"))
}

sluice_engine::store_conformance_tests!(embedded);
