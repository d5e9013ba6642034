//! Graceful shutdown of open connections: on shutdown each is asked to finish (requests
//! in flight are answered, idle keep-alive connections close), and the listener waits
//! until all have.
//!
//! In place of hyper_util's `GracefulShutdown`, whose watch every connection polled on
//! every poll of its connection, taking the watch's lock, shared by all connections:
//! about 470 instructions a SendMessage (`bench/callgrind.sh`). Here a poll registers
//! the task's waker with the connection's own `AtomicWaker` and reads one flag.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
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

pin_project_lite::pin_project! {
    /// A connection watched for the drain: the connection itself, held once. (An async
    /// block that pinned the connection it captured held it twice, its capture and the
    /// pinned local: 10,000 idle connections took 14 MiB more.)
    pub struct Watched<C> {
        #[pin]
        connection: C,
        waker: Arc<AtomicWaker>,
        shared: Arc<Shared>,
        asked: bool,
        _open: Open,
    }
}

/// A connection that can be asked to finish: answer what it has begun, then close.
pub trait Finish: Future {
    fn finish(self: Pin<&mut Self>);
}

impl<C: Finish> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.asked {
            // Registered before the flag is read: a shutdown that sets the flag after
            // this read wakes the waker registered here.
            this.waker.register(cx.waker());
            if this.shared.draining.load(Ordering::Acquire) {
                *this.asked = true;
                this.connection.as_mut().finish();
            }
        }
        this.connection.poll(cx)
    }
}

impl Drain {
    /// `connection`, asked to finish gracefully once [`Drain::shutdown`] begins.
    pub fn watch<C: Finish>(&self, connection: C) -> Watched<C> {
        let shared = self.shared.clone();
        let waker = Arc::new(AtomicWaker::new());
        shared.open.fetch_add(1, Ordering::AcqRel);
        {
            let mut wakers = shared.wakers.lock().unwrap_or_else(|p| p.into_inner());
            // Closed connections leave dead entries; cleared once they outnumber the open.
            if wakers.len() > 64 + 2 * shared.open.load(Ordering::Relaxed) {
                wakers.retain(|w| w.strong_count() > 0);
            }
            wakers.push(Arc::downgrade(&waker));
        }
        Watched { connection, waker, shared: shared.clone(), asked: false, _open: Open(shared) }
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
