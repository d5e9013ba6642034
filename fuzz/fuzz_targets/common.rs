//! Counts what a target was fed, so that `run.sh` can report bytes fuzzed (libFuzzer
//! reports executions only). Printed to stderr every 65,536 inputs.

use std::sync::atomic::{AtomicU64, Ordering};

static INPUTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

pub fn count(data: &[u8]) {
    let bytes = BYTES.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
    let inputs = INPUTS.fetch_add(1, Ordering::Relaxed) + 1;
    if inputs % 65_536 == 0 {
        eprintln!("sluice-fuzz: {inputs} inputs, {bytes} bytes");
    }
}
