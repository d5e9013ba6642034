//! A thread with an ack route gets the writer's answers to its writes through the route,
//! a group commit's at once; a thread without one is answered by the writer directly.

use sluice_engine::ack_route::{route_this_threads_acks, Ack, AckRoute};
use sluice_engine::store::*;
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use std::sync::{Arc, Mutex};

/// Sends what it is given at once, noting how many came in each delivery.
#[derive(Default)]
struct Recording {
    deliveries: Mutex<Vec<usize>>,
}

impl AckRoute for Recording {
    fn deliver(&self, acks: Vec<Ack>) {
        self.deliveries.lock().unwrap().push(acks.len());
        for ack in acks {
            ack.send();
        }
    }
}

fn message(body: &str) -> NewMessage {
    NewMessage { body: body.into(), sender_id: "s".into(), ..Default::default() }
}

#[test]
fn a_routed_threads_answers_come_through_its_route_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = Arc::new(EmbeddedStore::open(EmbeddedOptions::for_tests(dir.path()), clock as Arc<dyn Clock>).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = QueueKey::new("000000000000", "us-east-1", "q");
    runtime.block_on(async { store.create_queue(&key, Attributes::new(), Tags::new()).unwrap().wait().await.unwrap() });

    let route = Arc::new(Recording::default());
    route_this_threads_acks(route.clone());
    // All submitted before any is awaited, so that groups hold several.
    let sends: Vec<_> = (0..50).map(|i| store.send_messages(&key, vec![message(&format!("m{i}"))]).unwrap()).collect();
    runtime.block_on(async {
        for send in sends {
            let outcomes = send.wait().await.expect("answered through the route");
            assert_eq!(outcomes.len(), 1);
        }
    });
    let deliveries = route.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.iter().sum::<usize>(), 50, "every answer went through the route");
    assert!(deliveries.len() < 50, "a group's answers come in one delivery: {deliveries:?}");

    // Another thread, without a route: answered directly, the route sees nothing more.
    let elsewhere = store.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let send = elsewhere.send_messages(&key, vec![message("direct")]).unwrap();
        runtime.block_on(send.wait()).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(route.deliveries.lock().unwrap().iter().sum::<usize>(), 50);
    store.shutdown();
}
