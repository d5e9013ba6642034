//! The writes waiting for the writer thread: senders append under a lock, and the
//! writer takes everything waiting at once, swapping its emptied vector in.
//!
//! `std::sync::mpsc` allocated a block for every 31 writes (zeroed, over 2 KiB, so past
//! glibc's thread cache, and freed by the writer, another thread), and the writer took
//! each write with a call of its own; a SendMessage's submit already locked a mutex
//! around the sender besides. Two vectors passed back and forth allocate nothing once
//! grown.

use std::sync::{Condvar, Mutex, MutexGuard};

/// A queue of `T` with one taker.
pub struct WriteQueue<T> {
    state: Mutex<State<T>>,
    arrived: Condvar,
}

struct State<T> {
    waiting: Vec<T>,
    closed: bool,
    /// The taker sleeps on `arrived`: the next push wakes it.
    taker_asleep: bool,
}

impl<T> Default for WriteQueue<T> {
    fn default() -> Self {
        WriteQueue {
            state: Mutex::new(State { waiting: Vec::new(), closed: false, taker_asleep: false }),
            arrived: Condvar::new(),
        }
    }
}

impl<T> WriteQueue<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `item`; gives it back once the queue is closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        if state.closed {
            return Err(item);
        }
        state.waiting.push(item);
        if state.taker_asleep {
            state.taker_asleep = false;
            drop(state);
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// Moves everything waiting into `into` (which must be empty; its room becomes the
    /// queue's), sleeping until something is. False once the queue is closed and empty.
    pub fn take_all(&self, into: &mut Vec<T>) -> bool {
        debug_assert!(into.is_empty());
        let mut state = self.lock();
        while state.waiting.is_empty() {
            if state.closed {
                return false;
            }
            state.taker_asleep = true;
            state = self.arrived.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        std::mem::swap(&mut state.waiting, into);
        true
    }

    /// Moves whatever is waiting into `into` (which must be empty), without waiting.
    pub fn take_waiting(&self, into: &mut Vec<T>) {
        debug_assert!(into.is_empty());
        let mut state = self.lock();
        if !state.waiting.is_empty() {
            std::mem::swap(&mut state.waiting, into);
        }
    }

    /// Refuses further pushes; the taker still gets what is waiting, then `false`.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        self.arrived.notify_one();
    }

    /// Refuses further pushes and drops what is waiting: the taker is gone.
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.closed = true;
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        // Dropped outside the lock: an item's drop may run code of its own.
        drop(waiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Runs `f` with `queue` on a thread of its own.
    fn beside<T: Send + 'static>(
        queue: &Arc<WriteQueue<u32>>,
        f: impl FnOnce(Arc<WriteQueue<u32>>) -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let queue = queue.clone();
        std::thread::spawn(move || f(queue))
    }

    #[test]
    fn the_taker_gets_every_item_in_order_then_the_close() {
        let queue = Arc::new(WriteQueue::default());
        let pusher = beside(&queue, |queue| {
            for i in 0..10_000u32 {
                queue.push(i).unwrap();
            }
            queue.close();
        });
        let mut taken = Vec::new();
        let mut batch = Vec::new();
        while queue.take_all(&mut batch) {
            assert!(!batch.is_empty(), "a take is never empty");
            taken.append(&mut batch);
        }
        pusher.join().unwrap();
        assert_eq!(taken, (0..10_000).collect::<Vec<_>>());
        assert_eq!(queue.push(1), Err(1), "closed to new items");
    }

    #[test]
    fn an_abandoned_queue_drops_what_waits_and_takes_nothing_more() {
        let queue = WriteQueue::default();
        let item = Arc::new(());
        queue.push(item.clone()).unwrap();
        queue.abandon();
        assert_eq!(Arc::strong_count(&item), 1, "the waiting item was dropped");
        assert!(queue.push(item.clone()).is_err());
        assert!(!queue.take_all(&mut Vec::new()));
    }

    #[test]
    fn a_sleeping_taker_is_woken_by_a_push() {
        let queue = Arc::new(WriteQueue::default());
        let taker = beside(&queue, |queue| {
            let mut batch = Vec::new();
            let mut rounds = Vec::new();
            while queue.take_all(&mut batch) {
                rounds.push(std::mem::take(&mut batch));
            }
            rounds
        });
        // Each push and the close come once the taker sleeps, so that each has to wake it.
        let when_asleep = || {
            while !queue.lock().taker_asleep {
                std::thread::yield_now();
            }
        };
        for i in 0..3 {
            when_asleep();
            queue.push(i).unwrap();
        }
        when_asleep();
        queue.close();
        assert_eq!(taker.join().unwrap(), vec![vec![0], vec![1], vec![2]]);
    }
}
