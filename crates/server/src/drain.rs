//! Graceful shutdown of open connections: on shutdown each is asked to finish (requests
//! in flight are answered, idle keep-alive connections close), and the listener waits
//! until all have.
//!
//! In place of hyper_util's `GracefulShutdown`, whose watch every connection polled on
//! every poll of its connection, taking the watch's lock, shared by all connections:
//! about 470 instructions a SendMessage (`bench/callgrind.sh`). Here a poll registers
//! the task's waker with the connection's own `AtomicWaker` and reads one flag.

use futures_util::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// The open connections of one listener.
#[derive(Clone, Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    /// Each watched connection's waker slot, woken once when draining begins.
    wakers: Mutex<Vec<Weak<AtomicWaker>>>,
    open: AtomicUsize,
    /// Notified as the last open connection ends.
    all_closed: Notify,
}

/// Counts a connection open until dropped.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

impl Drain {
    /// `connection`, asked to finish gracefully once [`Drain::shutdown`] begins.
    pub fn watch<C: GracefulConnection>(&self, connection: C) -> impl Future<Output = C::Output> {
        let shared = self.shared.clone();
        let waker = Arc::new(AtomicWaker::new());
        shared.open.fetch_add(1, Ordering::AcqRel);
        let open = Open(shared.clone());
        {
            let mut wakers = shared.wakers.lock().unwrap_or_else(|p| p.into_inner());
            // Closed connections leave dead entries; cleared once they outnumber the open.
            if wakers.len() > 64 + 2 * shared.open.load(Ordering::Relaxed) {
                wakers.retain(|w| w.strong_count() > 0);
            }
            wakers.push(Arc::downgrade(&waker));
        }
        async move {
            let _open = open;
            let mut connection = pin!(connection);
            let mut asked = false;
            std::future::poll_fn(|cx| {
                if !asked {
                    // Registered before the flag is read: a shutdown that sets the flag
                    // after this read wakes the waker registered here.
                    waker.register(cx.waker());
                    if shared.draining.load(Ordering::Acquire) {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
                connection.as_mut().poll(cx)
            })
            .await
        }
    }

    /// Asks every open connection to finish, then waits until all have.
    pub async fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *self.shared.wakers.lock().unwrap_or_else(|p| p.into_inner()));
        for waker in wakers.iter().filter_map(Weak::upgrade) {
            waker.wake();
        }
        loop {
            let closed = self.shared.all_closed.notified();
            let mut closed = pin!(closed);
            closed.as_mut().enable();
            if self.shared.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}
