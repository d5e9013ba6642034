//! Filter-policy matching for one publish against many subscriptions: the index
//! against a linear scan. `cargo bench -p sluice-services --bench filter_matching`
//! (prints figures; nothing is asserted).

use sluice_services::filter::{attribute_values, FilterPolicy, PolicyIndex, Scope};
use std::collections::HashMap;
use std::sync::Arc;

fn main() {
    divan::main();
}

type Policies = Vec<Option<(Arc<FilterPolicy>, Scope)>>;

fn policies(subscriptions: usize) -> Policies {
    (0..subscriptions)
        .map(|i| {
            let text = format!(r#"{{"customer":["c{i}"],"amount":[{{"numeric":[">",{}]}}]}}"#, i % 100);
            Some((Arc::new(FilterPolicy::parse(&text, Scope::MessageAttributes).unwrap()), Scope::MessageAttributes))
        })
        .collect()
}

fn message(subscriptions: usize) -> HashMap<String, Vec<sluice_services::filter::Leaf>> {
    let customer = format!("c{}", 7 % subscriptions);
    attribute_values([("customer", "String", Some(customer.as_str())), ("amount", "Number", Some("150"))])
}

#[divan::bench(args = [10, 1_000, 10_000])]
fn indexed(bencher: divan::Bencher, subscriptions: usize) {
    let index = PolicyIndex::build(policies(subscriptions));
    let m = message(subscriptions);
    bencher.bench(|| index.matching(divan::black_box(&m), None).len());
}

#[divan::bench(args = [10, 1_000, 10_000])]
fn linear_scan(bencher: divan::Bencher, subscriptions: usize) {
    let all = policies(subscriptions);
    let m = message(subscriptions);
    bencher.bench(|| all.iter().filter(|p| p.as_ref().is_some_and(|(p, _)| p.matches(divan::black_box(&m)))).count());
}
