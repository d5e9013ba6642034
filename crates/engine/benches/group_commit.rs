//! The store's write path on disk with fsync: SendMessage-sized writes from many
//! concurrent senders share group commits. `cargo bench -p sluice-engine --bench
//! group_commit` (prints time per message; nothing is asserted).

use sluice_engine::store::{NewMessage, QueueKey, Store, Tags};
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, SystemClock};
use std::sync::Arc;

fn main() {
    divan::main();
}

const MESSAGES: usize = 2_000;

/// `senders` tasks send MESSAGES one-message batches in all, each awaiting durability.
#[divan::bench(args = [1, 16, 64], sample_count = 5, sample_size = 1)]
fn durable_sends(bencher: divan::Bencher, senders: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions::for_tests(dir.path());
    let store = Arc::new(EmbeddedStore::open(options, Arc::new(SystemClock) as Arc<dyn Clock>).unwrap());
    let key = QueueKey::new("000000000000", "us-east-1", "bench");
    runtime
        .block_on(async { store.create_queue(&key, Default::default(), Tags::new()).unwrap().wait().await.unwrap() });
    let body = "x".repeat(1024);
    bencher.counter(divan::counter::ItemsCount::new(MESSAGES)).bench(|| {
        runtime.block_on(async {
            let tasks: Vec<_> = (0..senders)
                .map(|_| {
                    let (store, key, body) = (store.clone(), key.clone(), body.clone());
                    tokio::spawn(async move {
                        for _ in 0..MESSAGES / senders {
                            let m = NewMessage { body: body.clone(), sender_id: "bench".into(), ..Default::default() };
                            store.send_messages(&key, vec![m]).unwrap().wait().await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
}
