//! Where the writer thread delivers a write's answer. By default it sends each answer
//! itself; a thread that serves many writers' tasks (the server's HTTP threads, each a
//! single-threaded tokio runtime) can register a route and take a group commit's answers
//! for its tasks at once, then send them on its own thread.
//!
//! A tokio task woken from outside its single-threaded runtime costs a `write` to the
//! runtime's eventfd, one per task: 9.4% of the writer's samples in sqs-send at 256
//! connections. Through a route it is at most one wake-up a group per HTTP thread, and
//! the answers are sent where their tasks run, which wakes them without a system call:
//! the server's `write`s fell from one a message to one a group, the writer's CPU from
//! 4.1 to 3.9–4.0 µs a message (throughput within the runs' spread).

use crate::db::Acknowledged;
use std::cell::RefCell;
use std::sync::Arc;
use tokio::sync::oneshot;

/// One write's answer, to be sent on the thread that submitted it.
pub struct Ack {
    pub(crate) done: oneshot::Sender<Acknowledged>,
    pub(crate) answer: Acknowledged,
}

impl Ack {
    /// Answers the write's caller (nothing if it stopped waiting).
    pub fn send(self) {
        let _ = self.done.send(self.answer);
    }
}

/// Takes the answers of one group commit for the writes a thread submitted.
pub trait AckRoute: Send + Sync {
    /// Called on the writer thread once a group, after the group's hooks ran; each answer
    /// must be sent ([`Ack::send`]) promptly, or dropped, which its caller sees as the
    /// writer having stopped.
    fn deliver(&self, acks: Vec<Ack>);
}

thread_local! {
    static ROUTE: RefCell<Option<Arc<dyn AckRoute>>> = const { RefCell::new(None) };
}

/// Routes the answers of writes submitted on this thread from now on through `route`.
pub fn route_this_threads_acks(route: Arc<dyn AckRoute>) {
    ROUTE.with(|r| *r.borrow_mut() = Some(route));
}

/// This thread's route, if it has one.
pub(crate) fn this_threads_route() -> Option<Arc<dyn AckRoute>> {
    ROUTE.with(|r| r.borrow().clone())
}

/// Gathers a group's answers by route.
#[derive(Default)]
pub(crate) struct Routed {
    by_route: Vec<(Arc<dyn AckRoute>, Vec<Ack>)>,
}

impl Routed {
    /// Holds `ack` for `route` (a group has writes of a few routes, so a scan finds it).
    pub(crate) fn hold(&mut self, route: Arc<dyn AckRoute>, ack: Ack) {
        match self.by_route.iter_mut().find(|(r, _)| Arc::ptr_eq(r, &route)) {
            Some((_, acks)) => acks.push(ack),
            None => self.by_route.push((route, vec![ack])),
        }
    }

    /// Hands each route its answers.
    pub(crate) fn deliver(self) {
        for (route, acks) in self.by_route {
            route.deliver(acks);
        }
    }
}
