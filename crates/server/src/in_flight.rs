//! The cap on requests in flight (`--max-concurrent-requests`), past which requests are
//! refused at once with the throttling error SDKs retry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Requests being served (long polls included), against their cap. A request never waits
/// for room (it is refused), so a count is enough: a tokio semaphore's release took its
/// waiters' lock, shared by every connection, on each request.
pub struct InFlight {
    count: AtomicUsize,
    max: usize,
}

/// One request's place among those in flight, given back when dropped.
pub struct InFlightSlot(Arc<InFlight>);

impl InFlight {
    pub fn new(max: usize) -> Arc<InFlight> {
        Arc::new(InFlight { count: AtomicUsize::new(0), max })
    }

    /// A place for one more request, or `None` at the cap.
    pub fn enter(self: &Arc<Self>) -> Option<InFlightSlot> {
        self.count.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| (n < self.max).then_some(n + 1)).ok()?;
        Some(InFlightSlot(self.clone()))
    }
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}
