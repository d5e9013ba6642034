//! What a benchmark run measured: latency percentiles (HdrHistogram), throughput, errors
//! by code and a per-second timeline; printed as text or, with `--json`, for scripts.

use hdrhistogram::Histogram;
use serde_json::json;
use std::collections::BTreeMap;

/// One worker's measurements, merged at the end (no shared state while running).
pub struct Stats {
    /// Request latency in microseconds, from the request's intended start.
    pub latency: Histogram<u64>,
    /// Send-to-receive latency of messages (sqs-cycle), in microseconds.
    pub end_to_end: Histogram<u64>,
    pub requests: u64,
    /// Messages or records the successful requests carried.
    pub units: u64,
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second since the start.
    pub timeline: Vec<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds");
        Stats {
            latency: histogram(),
            end_to_end: histogram(),
            requests: 0,
            units: 0,
            errors: BTreeMap::new(),
            timeline: Vec::new(),
        }
    }
}

impl Stats {
    pub fn record(&mut self, latency_us: u64, second: usize, units: u64) {
        let _ = self.latency.record(latency_us.max(1));
        self.requests += 1;
        self.units += units;
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, 0);
        }
        self.timeline[second] += 1;
    }

    pub fn error(&mut self, code: String) {
        *self.errors.entry(code).or_default() += 1;
    }

    pub fn merge(&mut self, other: Stats) {
        let _ = self.latency.add(&other.latency);
        let _ = self.end_to_end.add(&other.end_to_end);
        self.requests += other.requests;
        self.units += other.units;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (i, n) in other.timeline.into_iter().enumerate() {
            self.timeline[i] += n;
        }
    }
}

/// The run's description, printed with its figures.
pub struct Run<'a> {
    pub scenario: &'a str,
    pub endpoint: &'a str,
    pub connections: usize,
    pub body_size: usize,
    pub elapsed_s: f64,
    /// What one unit is ("messages", "records", "publishes"…).
    pub unit: &'a str,
    /// Extra facts of the scenario (queues fanned out to, shards…).
    pub notes: Vec<(String, String)>,
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": h.mean().round() as u64,
    })
}

pub fn to_json(run: &Run, stats: &Stats) -> serde_json::Value {
    let mut out = json!({
        "scenario": run.scenario,
        "endpoint": run.endpoint,
        "connections": run.connections,
        "body_size": run.body_size,
        "elapsed_s": (run.elapsed_s * 1000.0).round() / 1000.0,
        "requests": stats.requests,
        "requests_per_s": (stats.requests as f64 / run.elapsed_s).round(),
        "unit": run.unit,
        "units": stats.units,
        "units_per_s": (stats.units as f64 / run.elapsed_s).round(),
        "latency_us": percentiles(&stats.latency),
        "errors": stats.errors,
        "timeline_requests_per_s": stats.timeline,
    });
    if !stats.end_to_end.is_empty() {
        out["end_to_end_latency_us"] = percentiles(&stats.end_to_end);
    }
    for (k, v) in &run.notes {
        out[k] = v.clone().into();
    }
    out
}

fn line(name: &str, h: &Histogram<u64>) -> String {
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    format!(
        "{name} ms: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max())
    )
}

pub fn to_text(run: &Run, stats: &Stats) -> String {
    let per_s = |n: u64| n as f64 / run.elapsed_s;
    let mut out = format!(
        "{} against {}: {} connections, {} B bodies, {:.1} s\n",
        run.scenario, run.endpoint, run.connections, run.body_size, run.elapsed_s
    );
    for (k, v) in &run.notes {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push_str(&format!(
        "requests: {} ({:.0}/s)   {}: {} ({:.0}/s)\n",
        stats.requests,
        per_s(stats.requests),
        run.unit,
        stats.units,
        per_s(stats.units)
    ));
    out.push_str(&line("latency", &stats.latency));
    out.push('\n');
    if !stats.end_to_end.is_empty() {
        out.push_str(&line("send→receive", &stats.end_to_end));
        out.push('\n');
    }
    if stats.errors.is_empty() {
        out.push_str("errors: none\n");
    } else {
        let list: Vec<String> = stats.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        out.push_str(&format!("errors: {}\n", list.join(", ")));
    }
    let timeline: Vec<String> = stats.timeline.iter().map(u64::to_string).collect();
    out.push_str(&format!("requests per second: {}\n", timeline.join(" ")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_timelines_and_errors() {
        let mut a = Stats::default();
        a.record(100, 0, 1);
        a.record(300, 1, 1);
        a.error("Throttling".into());
        let mut b = Stats::default();
        b.record(200, 0, 10);
        b.record(400, 2, 10);
        b.error("Throttling".into());
        a.merge(b);
        assert_eq!((a.requests, a.units), (4, 22));
        assert_eq!(a.timeline, vec![2, 1, 1]);
        assert_eq!(a.errors["Throttling"], 2);
        assert_eq!(a.latency.max(), 400);
        let run = Run {
            scenario: "sqs-send",
            endpoint: "http://x",
            connections: 2,
            body_size: 1024,
            elapsed_s: 2.0,
            unit: "messages",
            notes: vec![],
        };
        let j = to_json(&run, &a);
        assert_eq!(j["requests_per_s"], 2.0);
        assert_eq!(j["units_per_s"], 11.0);
        assert_eq!(j["latency_us"]["max"], 400);
        assert!(to_text(&run, &a).contains("errors: Throttling 2"));
    }
}
