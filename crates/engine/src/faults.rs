//! Failures armed on purpose by fault-injection tests: the next `n` operations of one
//! kind (group commits, message log syncs) fail as an I/O error would.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Countdown(AtomicUsize);

impl Countdown {
    /// Makes the next `n` operations fail.
    pub(crate) fn arm(&self, n: usize) {
        self.0.store(n, Ordering::SeqCst);
    }

    /// Whether this operation is to fail, taking one of the armed failures.
    pub(crate) fn fire(&self) -> bool {
        self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}
