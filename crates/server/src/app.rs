//! Running the server: open the store, declare configured queues, serve, run the
//! background workers, and stop gracefully.

use crate::config::Settings;
use crate::http;
use anyhow::Context as _;
use serde_json::json;
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, Store, SystemClock};
use sluice_services::firehose::ObjectTarget;
use sluice_services::sns::signing::SigningKeys;
use sluice_services::sns::SnsService;
use sluice_services::sqs::SqsService;
use sluice_services::RequestContext;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A started server: its address, and how to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The HTTPS listener's address, when one is configured.
    pub tls_addr: Option<SocketAddr>,
    tls_task: Option<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    serve: tokio::task::JoinHandle<()>,
    workers: tokio::task::JoinHandle<()>,
    delivery: tokio::task::JoinHandle<()>,
    firehose_worker: tokio::task::JoinHandle<()>,
    checkpointer: std::thread::JoinHandle<()>,
    /// Dropped to stop the checkpointer.
    checkpointer_stop: std::sync::mpsc::Sender<()>,
    /// The threads serving connections, closed once both listeners have drained.
    loops: Arc<crate::loops::Loops>,
    store: Arc<EmbeddedStore>,
    _bucket_temp: Option<tempfile::TempDir>,
}

impl RunningServer {
    /// Ends long polls, finishes in-flight requests, flushes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.serve.await?;
        if let Some(t) = self.tls_task {
            let _ = t.await;
        }
        // The listeners' tasks, which held the other references, have ended.
        if let Ok(loops) = Arc::try_unwrap(self.loops) {
            let _ = tokio::task::spawn_blocking(move || loops.close()).await;
        }
        let _ = self.workers.await;
        let _ = self.delivery.await;
        // Buffers are flushed to their destinations before the store closes.
        let _ = self.firehose_worker.await;
        drop(self.checkpointer_stop);
        let checkpointer = self.checkpointer;
        let _ = tokio::task::spawn_blocking(move || checkpointer.join()).await;
        self.store.shutdown();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the store, declares configured queues and starts listening.
pub async fn start(settings: Settings) -> anyhow::Result<RunningServer> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(
        EmbeddedStore::open(
            EmbeddedOptions {
                data_dir: settings.data_dir.clone(),
                durable: settings.fsync,
                relax_cooldowns: settings.relax_cooldowns,
                max_data_bytes: settings.max_data_mib.map(|m| m * 1024 * 1024),
                encryption_key: settings.encryption_key,
                record_segment_bytes: settings.record_segment_mib * 1024 * 1024,
            },
            clock.clone(),
        )
        .map_err(|e| anyhow::Error::new(e).context("cannot open the data directory"))?,
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sqs = SqsService::new(store.clone() as Arc<dyn Store>, clock.clone(), shutdown_rx.clone());
    let clock_for_kinesis = clock.clone();
    let clock_for_firehose = clock.clone();
    declare_queues(&sqs, &settings).await?;
    let http_client: Arc<dyn sluice_services::sns::delivery::HttpPost> =
        Arc::new(crate::http_client::HyperPost::new(&settings.extra_ca_pems)?);
    let (target, bucket_temp) = match (&settings.s3, &settings.bucket_root, &settings.data_dir) {
        (Some(s3), _, _) => (ObjectTarget::S3(s3.clone()), None),
        (None, Some(root), _) => (ObjectTarget::Local(root.clone()), None),
        (None, None, Some(dir)) => (ObjectTarget::Local(dir.join("s3")), None),
        (None, None, None) => {
            let t = tempfile::Builder::new().prefix("sluice-s3-").tempdir()?;
            (ObjectTarget::Local(t.path().to_owned()), Some(t))
        }
    };
    let firehose = Arc::new(
        sluice_services::firehose::FirehoseService::new(store.clone(), store.clone(), clock_for_firehose, target)
            .with_http(http_client.clone())
            .with_lambda_urls(settings.lambda_urls.clone()),
    );
    let firehose_worker = tokio::spawn(sluice_services::firehose::delivery::run(firehose.clone(), shutdown_rx.clone()));
    let sns = Arc::new(
        SnsService::new(
            store.clone(),
            store.clone() as Arc<dyn Store>,
            clock,
            Arc::new(SigningKeys::new(settings.data_dir.clone())),
        )
        .with_firehose(firehose.clone()),
    );
    let delivery =
        tokio::spawn(sluice_services::sns::delivery::run(sns.clone(), http_client.clone(), shutdown_rx.clone()));

    let kinesis = sluice_services::kinesis::KinesisService::new(store.clone(), clock_for_kinesis, shutdown_rx.clone())
        .with_throughput_limits(settings.enforce_kinesis_limits)
        .with_status_delay_ms(settings.kinesis_status_delay_ms);
    let state = Arc::new(http::AppState {
        sqs,
        kinesis,
        firehose,
        sns,
        default_account: settings.account.clone(),
        default_region: settings.region.clone(),
        auth: settings.auth.clone(),
        in_flight: crate::in_flight::InFlight::new(settings.max_concurrent_requests),
    });
    let connection_slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let loops = Arc::new(crate::loops::Loops::per_core().context("cannot start the threads serving connections")?);
    let tls = match &settings.tls {
        Some((addr, source)) => {
            let config = crate::tls::server_config(source)?;
            let listener = crate::connections::listen(*addr).with_context(|| format!("cannot listen on {addr}"))?;
            let tls_addr = listener.local_addr()?;
            tracing::info!(addr = %tls_addr, "serving TLS");
            Some((
                tls_addr,
                tokio::spawn(serve_connections(
                    crate::connections::CappedListener { listener, slots: connection_slots.clone() },
                    Some(tokio_rustls::TlsAcceptor::from(config)),
                    (state.clone(), "https"),
                    shutdown_rx.clone(),
                    loops.clone(),
                )),
            ))
        }
        None => None,
    };
    let listener =
        crate::connections::listen(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = ?settings.data_dir, fsync = settings.fsync, "serving");

    let workers = tokio::spawn(run_workers(store.clone(), shutdown_rx.clone()));
    let (checkpointer_stop, stop_checkpoints) = std::sync::mpsc::channel();
    let checkpointer = spawn_checkpointer(store.clone(), stop_checkpoints);
    let serve = tokio::spawn(serve_connections(
        crate::connections::CappedListener { listener, slots: connection_slots },
        None,
        (state.clone(), "http"),
        shutdown_rx,
        loops.clone(),
    ));
    let (tls_addr, tls_task) = match tls {
        Some((a, t)) => (Some(a), Some(t)),
        None => (None, None),
    };
    Ok(RunningServer {
        addr,
        tls_addr,
        shutdown: shutdown_tx,
        serve,
        tls_task,
        workers,
        delivery,
        firehose_worker,
        checkpointer,
        checkpointer_stop,
        loops,
        store,
        _bucket_temp: bucket_temp,
    })
}

/// Messages a move task without MaxNumberOfMessagesPerSecond moves per second
/// (AWS: "system-optimized", up to 500).
const DEFAULT_MOVE_RATE: u64 = 500;
/// How often retention and dedup expiry run.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Accepts connections (through TLS when `tls` is given, HTTP/2 or HTTP/1.1 by ALPN) and
/// hands each to one of `loops`, which serves it with HTTP/1.1 or HTTP/2 until shutdown,
/// then lets open connections finish for up to 30 s. Requests go straight to
/// [`http::handle`], from Sluice's own HTTP/1.1 loop or from hyper for what the loop hands
/// over (`crate::http1`): axum's router, which only ever fell back to it, boxed each
/// request's future (about 5 KiB, past glibc's thread cache) and inserted its routing
/// extensions. (`handle` boxes its own, under 1 KiB.)
async fn serve_connections(
    listener: crate::connections::CappedListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: http::ListenerState,
    mut shutdown: watch::Receiver<bool>,
    loops: Arc<crate::loops::Loops>,
) {
    let drain = crate::drain::Drain::default();
    loop {
        tokio::select! {
            (tcp, _) = crate::connections::accept(&listener.listener, &listener.slots) => {
                let (tcp, slot) = tcp.into_parts();
                // Out of this runtime's reactor, into the loop's.
                let socket = match tcp.into_std() {
                    Ok(socket) => socket,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hand a connection over");
                        continue;
                    }
                };
                let (state, drain, tls) = (state.clone(), drain.clone(), tls.clone());
                loops.hand(move || {
                    let tcp = match tokio::net::TcpStream::from_std(socket) {
                        Ok(tcp) => crate::connections::Counted::new(tcp, slot),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not take a connection over");
                            return Box::pin(async {});
                        }
                    };
                    // Two futures, not one with both arms: a task is as large as its
                    // future, and a plain connection would carry the TLS arm's 4.4 KB.
                    match tls {
                        Some(acceptor) => Box::pin(async move {
                            let Ok(stream) = acceptor.accept(tcp).await else { return };
                            serve_stream(stream, state, drain).await;
                        }),
                        None => Box::pin(serve_stream(tcp, state, drain)),
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), drain.shutdown()).await;
}

/// Serves one connection's requests until it closes or shutdown drains it.
async fn serve_stream<S>(stream: S, state: http::ListenerState, drain: crate::drain::Drain)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::os::fd::AsRawFd + Unpin + Send + 'static,
{
    let fd = stream.as_raw_fd();
    drain.watch(crate::http1::Connection::new(stream, fd, state)).await;
}

/// SIGTERM and SIGINT, listened for from creation on: a signal that arrives before
/// `wait` is awaited (say right after the listening line is printed) still stops the
/// server gracefully instead of killing it with the default action.
pub struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers; call inside the runtime before announcing the server.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self { term: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on SIGTERM or SIGINT.
    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Background work: retention, dedup expiry, record and message log compaction and
/// message move tasks, once a second.
async fn run_workers(store: Arc<EmbeddedStore>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        sweep("retention sweep", store.expire()).await;
        sweep("stream retention sweep", sluice_engine::streams::StreamStore::trim_streams(store.as_ref())).await;
        // After retention, which is what leaves segments sparse.
        sweep("record log compaction step", store.compact_record_log()).await;
        // Its plan replays the log: on a blocking thread, not an async worker.
        let compacting = store.clone();
        match tokio::task::spawn_blocking(move || compacting.compact_message_log()).await {
            Ok(write) => sweep("message log compaction step", write).await,
            Err(e) => tracing::warn!(error = %e, "message log compaction step failed"),
        }
        sweep("message move step", store.run_move_tasks(DEFAULT_MOVE_RATE)).await;
    }
}

/// Message index checkpoints, on a thread of their own in the idle scheduling and I/O
/// classes (`sluice_engine::background::lower_this_thread_priority`): one takes a few
/// hundred milliseconds of CPU for a million messages, and under load it should take only
/// the CPU that requests leave. Checks at once (a start after a crash may have much log
/// after the index), then once a second until `stop` is dropped.
fn spawn_checkpointer(store: Arc<EmbeddedStore>, stop: std::sync::mpsc::Receiver<()>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sluice-index".into())
        .spawn(move || {
            sluice_engine::background::lower_this_thread_priority();
            loop {
                // A checkpoint covers a bounded stretch of log: while one more is due, the
                // next goes on at once.
                let more = store.checkpoint_message_index().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "message index checkpoint failed; the next second tries again");
                    false
                });
                let pause = if more { Duration::ZERO } else { EXPIRY_INTERVAL };
                if !matches!(stop.recv_timeout(pause), Err(std::sync::mpsc::RecvTimeoutError::Timeout)) {
                    return;
                }
            }
        })
        .expect("a thread for message index checkpoints")
}

/// Waits for one sweep's write; a failure is logged and the next tick tries again.
async fn sweep<T>(what: &str, write: Result<sluice_engine::Durable<T>, sluice_engine::StoreError>) {
    let result = match write {
        Ok(d) => d.wait().await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "{what} failed");
    }
}

/// Creates the queues listed in the config file; existing ones are brought to the
/// listed attributes and tags.
async fn declare_queues(sqs: &SqsService, settings: &Settings) -> anyhow::Result<()> {
    for q in &settings.queues {
        let ctx = RequestContext::local_at(
            q.account.as_deref().unwrap_or(&settings.account),
            q.region.as_deref().unwrap_or(&settings.region),
            &settings.listen.to_string(),
        );
        let create = json!({"QueueName": q.name, "Attributes": q.attributes, "tags": q.tags});
        match sqs.handle(&ctx, "CreateQueue", create, false).await {
            Ok(_) => {}
            Err(e) if e.json_type == "QueueNameExists" => {
                let url = format!("http://{}/{}/{}", ctx.host(), ctx.account(), q.name);
                let mut attrs = q.attributes.clone();
                attrs.remove("FifoQueue");
                if !attrs.is_empty() {
                    sqs.handle(&ctx, "SetQueueAttributes", json!({"QueueUrl": url, "Attributes": attrs}), false)
                        .await
                        .map_err(|e| anyhow::anyhow!("queue {}: {}", q.name, e))?;
                }
                if !q.tags.is_empty() {
                    sqs.handle(&ctx, "TagQueue", json!({"QueueUrl": url, "Tags": q.tags}), false)
                        .await
                        .map_err(|e| anyhow::anyhow!("queue {}: {}", q.name, e))?;
                }
            }
            Err(e) => anyhow::bail!("queue {} from the config file: {}", q.name, e),
        }
        tracing::info!(queue = %q.name, "declared queue ready");
    }
    Ok(())
}
