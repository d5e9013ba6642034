//! The threads that serve connections: one single-threaded tokio runtime per core, each
//! serving the connections handed to it for their whole life (the model of nginx's
//! workers), beside the multi-threaded runtime that accepts them and runs the background
//! work.
//!
//! On tokio's multi-threaded scheduler a worker that gets a task (a request woken by the
//! writer thread's commit, a socket turning readable) may wake an idle sibling to steal
//! it, and on this project's 2-core VM a wake-up across cores goes through the host. With
//! each connection on one thread, `sqs-send` went from 62.7–70.9k to 68.9–81.1k messages a
//! second (64 and 256 connections side by side; bench/README, "One runtime per core").
//! What a connection gives up is being moved to an idle core: connections are spread by
//! count, not by load. Each loop also takes the writer's answers to its requests in bulk
//! (`LoopAcks`).

use sluice_engine::ack_route::{Ack, AckRoute};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Work handed to a loop: called on the loop's thread, inside its runtime (where a
/// socket can be registered), to make the connection's future.
pub type Connection = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Loop {
    /// Each connection with the count it is in, which falls when its future ends.
    hand: mpsc::UnboundedSender<(Connection, Open)>,
    /// Connections handed to this loop and not yet finished.
    open: Arc<AtomicUsize>,
}

/// The connection-serving threads.
pub struct Loops {
    loops: Vec<Loop>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Decrements a loop's count of open connections when its connection ends, however.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The writer's answers to the writes of one loop's requests, sent on the loop's thread
/// (`sluice_engine::ack_route`): a task woken there costs no system call, where each
/// woken from the writer's thread cost a `write` to the runtime's eventfd.
#[derive(Default)]
struct LoopAcks {
    waiting: Mutex<Vec<Ack>>,
    arrived: tokio::sync::Notify,
}

impl AckRoute for LoopAcks {
    fn deliver(&self, mut acks: Vec<Ack>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let first = waiting.is_empty();
        if first {
            std::mem::swap(&mut *waiting, &mut acks);
        } else {
            waiting.append(&mut acks);
        }
        drop(waiting);
        // Later ones find the task already told.
        if first {
            self.arrived.notify_one();
        }
    }
}

impl LoopAcks {
    /// Sends each answer delivered, on this loop's thread, until the loop stops.
    async fn send_as_they_come(self: Arc<Self>) {
        loop {
            self.arrived.notified().await;
            let taken = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
            for ack in taken {
                ack.send();
            }
        }
    }
}

impl Loops {
    /// Starts `n` (at least one) loops.
    pub fn start(n: usize) -> std::io::Result<Loops> {
        let mut loops = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (hand, mut handed) = mpsc::unbounded_channel::<(Connection, Open)>();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let thread = std::thread::Builder::new().name(format!("sluice-http-{i}")).spawn(move || {
                let acks = Arc::new(LoopAcks::default());
                sluice_engine::ack_route::route_this_threads_acks(acks.clone());
                // Ends once every sender is gone; connections still open are dropped
                // with the runtime (the drain has had its time by then).
                runtime.block_on(async move {
                    tokio::spawn(acks.send_as_they_come());
                    while let Some((connection, open)) = handed.recv().await {
                        let serving = connection();
                        tokio::spawn(async move {
                            let _open = open;
                            serving.await;
                        });
                    }
                });
            })?;
            loops.push(Loop { hand, open: Arc::new(AtomicUsize::new(0)) });
            threads.push(thread);
        }
        Ok(Loops { loops, threads })
    }

    /// One loop per core.
    pub fn per_core() -> std::io::Result<Loops> {
        Loops::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Hands `connection` to the loop with the fewest open connections.
    pub fn hand(&self, connection: impl FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static) {
        let Some(chosen) = self.loops.iter().min_by_key(|l| l.open.load(Ordering::Relaxed)) else { return };
        chosen.open.fetch_add(1, Ordering::Relaxed);
        // A loop's thread only ends after `close`, which takes `self`; were the send to
        // fail, dropping the pair would give the count back.
        let _ = chosen.hand.send((Box::new(connection), Open(chosen.open.clone())));
    }

    /// Connections handed to each loop and still open.
    #[cfg(test)]
    fn open_connections(&self) -> Vec<usize> {
        self.loops.iter().map(|l| l.open.load(Ordering::Relaxed)).collect()
    }

    /// Stops the loops, dropping connections still open, and waits for their threads.
    pub fn close(self) {
        drop(self.loops);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_loop_with_the_fewest_open_and_run_on_its_thread() {
        let loops = Loops::start(2).unwrap();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>();
        let (ran_tx, ran_rx) = std::sync::mpsc::channel::<String>();
        let mut served_by = Vec::new();
        for _ in 0..3 {
            let (finish_tx, ran_tx) = (finish_tx.clone(), ran_tx.clone());
            loops.hand(move || {
                let (finish, finished) = tokio::sync::oneshot::channel();
                finish_tx.send(finish).unwrap();
                Box::pin(async move {
                    ran_tx.send(std::thread::current().name().unwrap_or_default().to_owned()).unwrap();
                    let _ = finished.await;
                })
            });
            // Each runs before the next is handed out.
            served_by.push(ran_rx.recv().unwrap());
        }
        assert_eq!(served_by, ["sluice-http-0", "sluice-http-1", "sluice-http-0"]);
        assert_eq!(loops.open_connections(), vec![2, 1]);
        let mut finishes: Vec<_> = (0..3).map(|_| finish_rx.recv().unwrap()).collect();
        // The first connection ends: its loop counts one fewer.
        drop(finishes.remove(0));
        while loops.open_connections() != vec![1, 1] {
            std::thread::yield_now();
        }
        let (name_tx, name_rx) = std::sync::mpsc::channel();
        loops.hand(move || {
            Box::pin(async move {
                name_tx.send(std::thread::current().name().unwrap_or_default().to_owned()).unwrap();
            })
        });
        assert_eq!(name_rx.recv().unwrap(), "sluice-http-0", "a tie goes to the first loop");
        loops.close();
        drop(finishes);
    }
}
