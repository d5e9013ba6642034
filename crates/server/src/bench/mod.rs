//! `sluice bench`: a load generator for Sluice, AWS or any emulator, in the tradition of
//! `redis-benchmark` and `nats bench`. Each connection is a task sending one signed
//! request at a time over keep-alive HTTP/1.1 (or HTTP/2); measurements stay per task
//! and are merged at the end, so the generator shares nothing while it runs.

pub mod client;
pub mod h1;
pub mod report;
pub mod scenario;

use clap::Args;
use client::{Connection, Target};
use report::{Run, Stats};
use scenario::{Kind, Options, Plan, Worker};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Kind,
    /// The server, e.g. http://127.0.0.1:4566 (or https://sqs.eu-west-1.amazonaws.com).
    #[arg(long, default_value = "http://127.0.0.1:4566")]
    pub endpoint: String,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// How long to run, in seconds (unless --count is given).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Stop after this many requests instead.
    #[arg(long)]
    pub count: Option<u64>,
    /// Requests per second over all connections (default: as fast as answers come).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bytes per message or record.
    #[arg(long, default_value_t = 1024)]
    pub body_size: usize,
    /// Load-generating threads, each a single-threaded runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print each request that took longer than this many milliseconds to stderr, as
    /// `late <start> <latency>` (its scheduled start in Unix microseconds, its latency in
    /// microseconds), to line stalls up with a profile of the server.
    #[arg(long)]
    pub late_ms: Option<u64>,
    /// HTTP/2 (prior knowledge on http://, ALPN on https://).
    #[arg(long)]
    pub h2: bool,
    /// sqs-fifo: message groups.
    #[arg(long, default_value_t = 16)]
    pub groups: usize,
    /// SQS scenarios: use this queue (created if missing) instead of a new one, e.g. to
    /// run sqs-idle-pollers on the queue sqs-send sends to.
    #[arg(long)]
    pub queue: Option<String>,
    /// sns-fanout: queues subscribed to the topic.
    #[arg(long, default_value_t = 10)]
    pub queues: usize,
    /// sns-fanout: deliver SNS's signed JSON envelope (the default of a subscription) instead
    /// of raw messages.
    #[arg(long)]
    pub envelope: bool,
    /// sqs-cycle: producers send SendMessageBatch of 10 instead of one message per request
    /// (the consumers always receive and delete ten at a time).
    #[arg(long)]
    pub batch: bool,
    /// sns-fanout: the topic's SignatureVersion, 1 (SNS's default, SHA1withRSA) or 2
    /// (SHA256withRSA); what each signed envelope costs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub signature_version: u8,
    /// kinesis-put / kinesis-get: shards of the stream.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// kinesis-get: records written before reading.
    #[arg(long, default_value_t = 100_000)]
    pub prefill: usize,
    /// Credentials to sign with (any pair works against Sluice without --auth sigv4).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "AKIDBENCH", hide_env_values = true)]
    pub access_key_id: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", default_value = "bench-secret", hide_env_values = true)]
    pub secret_access_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (run_figures, stats) = measure(&args)?;
    let run = Run {
        scenario: &args.scenario.name(),
        endpoint: &args.endpoint,
        connections: args.connections,
        body_size: args.body_size,
        elapsed_s: run_figures.0,
        unit: args.scenario.unit(),
        notes: run_figures.1,
    };
    if args.json {
        println!("{}", report::to_json(&run, &stats));
    } else {
        print!("{}", report::to_text(&run, &stats));
    }
    Ok(())
}

type Figures = (f64, Vec<(String, String)>);

fn single_threaded() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Sets up, then runs the connections on one single-threaded runtime per core (no work
/// stealing or cross-thread wake-ups: on a small machine the generator's own overhead
/// matters as much as the server's).
fn measure(args: &BenchArgs) -> anyhow::Result<(Figures, Stats)> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let target = Target::parse(&args.endpoint, args.h2, &args.access_key_id, &args.secret_access_key, &args.region)?;
    let options = Options {
        body_size: args.body_size,
        groups: args.groups,
        queues: args.queues,
        queue: args.queue.clone(),
        envelope: args.envelope,
        signature_version: args.signature_version,
        batch: args.batch,
        shards: args.shards,
        prefill: args.prefill,
        run_id: format!(
            "{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
                ^ ((std::process::id() as u64) << 40)
        ),
    };
    let plan = Arc::new(single_threaded()?.block_on(async {
        let mut c = Connection::open(&target).await?;
        scenario::setup(args.scenario, &target, &mut c, &options).await
    })?);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores).clamp(1, args.connections);
    // The clock starts once every thread has its runtime and every connection is open: a
    // request's latency is the server's answer, not the generator starting up or 64 TCP
    // handshakes at once (which made the first 30 ms of every paced run late). A
    // connection that has to be opened again during the run still counts.
    let (connected, go) = (Arc::new(Barrier::new(threads + 1)), Arc::new(Barrier::new(threads + 1)));
    let started = Arc::new(OnceLock::new());
    // Requests left to start when --count is given; otherwise unlimited.
    let budget = Arc::new(AtomicI64::new(args.count.map_or(i64::MAX, |c| c as i64)));
    // Each connection's share of --rate: its requests are scheduled this far apart, and a
    // request the server made late counts from its scheduled time (see `drive`), so a slow
    // server cannot hide its queueing.
    let interval = args.rate.map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
    let (connections, duration) = (args.connections, Duration::from_secs(args.duration));
    let late_us = args.late_ms.map(|ms| ms.saturating_mul(1000));
    let mut handles = Vec::with_capacity(threads);
    for thread in 0..threads {
        let indexes: Vec<usize> = (thread..args.connections).step_by(threads).collect();
        let (target, plan, options, budget, kind) =
            (target.clone(), plan.clone(), options.clone(), budget.clone(), args.scenario);
        let (connected, go, started) = (connected.clone(), go.clone(), started.clone());
        handles.push(std::thread::spawn(move || -> anyhow::Result<Stats> {
            let runtime = single_threaded();
            // All at once, as each task would open its own (TLS handshakes to a distant
            // endpoint, one after another, would take seconds).
            let opened: Vec<Option<Connection>> = match &runtime {
                Ok(runtime) => runtime.block_on(futures_util::future::join_all(
                    indexes.iter().map(|_| async { Connection::open(&target).await.ok() }),
                )),
                Err(_) => Vec::new(),
            };
            // Each connection's histograms too (two of 147 KB): zeroing them for 64
            // connections made the first requests wait ~8 ms for the generator.
            let tallies: Vec<Stats> = indexes.iter().map(|_| Stats::default()).collect();
            // Every thread reaches both barriers, even one without a runtime, so that the
            // others are never left waiting for it.
            connected.wait();
            go.wait();
            let start: Instant = *started.get().expect("the clock is set before the second barrier");
            runtime?.block_on(async move {
                let mut tasks = Vec::with_capacity(indexes.len());
                for ((index, connection), stats) in indexes.into_iter().zip(opened).zip(tallies) {
                    let worker = Worker::new(index, kind == Kind::SqsCycle && index % 2 == 1);
                    let (target, plan, options, budget) =
                        (target.clone(), plan.clone(), options.clone(), budget.clone());
                    // With --rate, connection i starts i/connections of an interval in, so
                    // the requests arrive evenly spread rather than all connections at once.
                    let offset = interval.map_or(Duration::ZERO, |i| i.mul_f64(index as f64 / connections as f64));
                    let schedule = Schedule { start, deadline: start + duration, interval, first_offset: offset };
                    tasks.push(tokio::spawn(drive(
                        kind, target, plan, options, worker, connection, stats, schedule, budget, late_us,
                    )));
                }
                let mut stats = Stats::default();
                for t in tasks {
                    stats.merge(t.await?);
                }
                Ok(stats)
            })
        }));
    }
    connected.wait();
    let start = *started.get_or_init(Instant::now);
    go.wait();
    let mut stats = Stats::default();
    for h in handles {
        stats.merge(h.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(((elapsed, plan.notes.clone()), stats))
}

/// When one connection's requests go: from `start` (after `first_offset`) every `interval`
/// (or back to back without one), until `deadline`.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
    first_offset: Duration,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    kind: Kind,
    target: Target,
    plan: Arc<Plan>,
    options: Options,
    mut worker: Worker,
    mut connection: Option<Connection>,
    mut stats: Stats,
    schedule: Schedule,
    budget: Arc<AtomicI64>,
    late_us: Option<u64>,
) -> Stats {
    let Schedule { start, deadline, interval, first_offset } = schedule;
    let mut next_at = start + first_offset;
    while Instant::now() < deadline && budget.fetch_sub(1, Ordering::Relaxed) > 0 {
        let intended = match interval {
            // The previous answer came after this request's scheduled time: the server made
            // it wait, so its latency counts from the schedule (no coordinated omission).
            Some(_) if Instant::now() >= next_at => next_at,
            // Early: wait for the schedule. tokio's timer fires on 1 ms ticks, so the wake-up
            // is up to a millisecond late; that lateness is the generator's, not the
            // server's, and counting it added ~0.5 ms to every paced request.
            Some(_) => {
                tokio::time::sleep_until(next_at.into()).await;
                Instant::now()
            }
            None => Instant::now(),
        };
        if let Some(i) = interval {
            next_at += i;
        }
        let c = match &mut connection {
            Some(c) => c,
            None => match Connection::open(&target).await {
                Ok(c) => connection.insert(c),
                Err(_) => {
                    stats.error("connect".into());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let call = match scenario::next_call(kind, &plan, &options, &mut worker, c).await {
            Ok(call) => call,
            Err(e) => {
                stats.error(format!("setup: {e}"));
                connection = None;
                continue;
            }
        };
        match c.call_hashed(call.service, call.action, call.body, &call.payload_hash).await {
            Ok(reply) if reply.status < 300 => {
                let latency = intended.elapsed().as_micros() as u64;
                let second = intended.duration_since(start).as_secs() as usize;
                if late_us.is_some_and(|late| latency > late) {
                    let now_us = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64);
                    eprintln!("late {} {latency}", now_us.saturating_sub(latency));
                }
                match scenario::on_success(kind, &plan, &mut worker, c, &reply.body).await {
                    Ok((units, end_to_end)) => {
                        stats.record(latency, second, units);
                        for l in end_to_end {
                            let _ = stats.end_to_end.record(l.max(1));
                        }
                    }
                    Err(_) => {
                        stats.error("follow-up".into());
                        connection = None;
                    }
                }
            }
            Ok(reply) => {
                stats.error(reply.error_code.unwrap_or_else(|| format!("HTTP {}", reply.status)));
                if kind == Kind::KinesisGet {
                    worker.iterator = None;
                }
            }
            Err(_) => {
                stats.error("connection".into());
                connection = None;
            }
        }
    }
    stats
}
