//! The store's write path on disk with fsync: SendMessage-sized writes from many
//! concurrent senders share group commits, and PutRecords-sized appends go through the
//! record log. `cargo bench -p sluice-engine --bench group_commit` (prints time per
//! message or record; nothing is asserted).

use sluice_engine::store::{NewMessage, QueueKey, Store, Tags};
use sluice_engine::streams::{NewRecord, StreamMeta, StreamStore};
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

const RECORDS: usize = 20_000;

/// `writers` tasks append RECORDS 1 KiB records to a 2-shard stream in PutRecords-sized
/// appends of 500, each awaiting durability; then one pass reads them all back, 10,000
/// records per read as GetRecords does.
#[divan::bench(args = [1, 8], sample_count = 5, sample_size = 1)]
fn durable_record_appends_and_reads(bencher: divan::Bencher, writers: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        EmbeddedStore::open(EmbeddedOptions::for_tests(dir.path()), Arc::new(SystemClock) as Arc<dyn Clock>).unwrap(),
    );
    let meta = StreamMeta::for_tests("bench");
    let key = meta.key();
    runtime.block_on(async { store.create_stream(meta, 2).unwrap().wait().await.unwrap() });
    bencher.counter(divan::counter::ItemsCount::new(RECORDS)).bench(|| {
        let meta = store.stream(&key).unwrap();
        // Each sample reads back only what it appended.
        let starts: Vec<(i64, u64)> = meta.shards.iter().map(|s| (s.uid, store.shard_next_seq_ix(s.uid))).collect();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..writers)
                .map(|_| {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(async move {
                        for _ in 0..RECORDS / 500 / writers {
                            let records = (0..500)
                                .map(|i| NewRecord {
                                    shard_index: i % 2,
                                    partition_key: format!("key-{i}"),
                                    data: vec![b'x'; 1024],
                                })
                                .collect();
                            store.append_records(&key, records).unwrap().wait().await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        for (uid, mut from) in starts {
            loop {
                let read = store.read_records(&meta, uid, from, 10_000, 10 << 20).unwrap();
                if read.records.is_empty() {
                    break;
                }
                from = read.next_seq_ix;
            }
        }
    });
}
