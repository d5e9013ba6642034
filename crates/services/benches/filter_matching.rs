//! Filter-policy matching for one publish against many subscriptions: the index
//! against a linear scan. `cargo bench -p sluice-services --bench filter_matching`
//! (prints figures; nothing is asserted).

use sluice_services::filter::{attribute_values, FilterPolicy, PolicyIndex, Scope};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    for subscriptions in [10usize, 1_000, 10_000] {
        let policies: Vec<Option<(Arc<FilterPolicy>, Scope)>> = (0..subscriptions)
            .map(|i| {
                let text = format!(r#"{{"customer":["c{i}"],"amount":[{{"numeric":[">",{}]}}]}}"#, i % 100);
                Some((
                    Arc::new(FilterPolicy::parse(&text, Scope::MessageAttributes).unwrap()),
                    Scope::MessageAttributes,
                ))
            })
            .collect();
        let index = PolicyIndex::build(policies.clone());
        let messages: Vec<_> = (0..1_000)
            .map(|i| {
                let customer = format!("c{}", i * 7 % subscriptions);
                attribute_values([("customer", "String", Some(customer.as_str())), ("amount", "Number", Some("150"))])
            })
            .collect();
        let rounds = 100_000 / subscriptions.max(1) + 1;
        let start = Instant::now();
        let mut indexed = 0;
        for _ in 0..rounds {
            for m in &messages {
                indexed += index.matching(m, None).len();
            }
        }
        let indexed_per_publish = start.elapsed() / (rounds * messages.len()) as u32;
        let start = Instant::now();
        let mut linear = 0;
        for _ in 0..rounds {
            for m in &messages {
                linear += policies.iter().filter(|p| p.as_ref().is_some_and(|(p, _)| p.matches(m))).count();
            }
        }
        let linear_per_publish = start.elapsed() / (rounds * messages.len()) as u32;
        assert_eq!(indexed, linear);
        println!(
            "{subscriptions:>6} subscriptions: indexed {indexed_per_publish:>10.2?} per publish, linear scan {linear_per_publish:>10.2?}"
        );
    }
}
