//! `sluice`: the server binary.

use clap::Parser;
use sluice::config::{Cli, Command, Settings};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        sluice::os::exec_with_larger_malloc_cache();
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => {
            sluice::os::fix_malloc_thresholds();
            let result = serve(*args);
            if let Err(e) = &result {
                // Distinct exit codes, so supervisors do not restart into the same failure.
                match e.downcast_ref() {
                    Some(sluice_engine::StoreError::Corrupt(detail)) => {
                        eprintln!(
                            "sluice: the database in the data directory is corrupt ({detail}); refusing to serve it. \
                             Restore it from a backup or move it aside."
                        );
                        std::process::exit(EXIT_CORRUPT);
                    }
                    Some(sluice_engine::StoreError::EncryptionKey(detail)) => {
                        eprintln!(
                            "sluice: encryption key problem: {detail}. Give the key the data was written with \
                             (--encryption-key-file, or sluice.key in the data directory)."
                        );
                        std::process::exit(EXIT_WRONG_KEY);
                    }
                    _ => {}
                }
            }
            result
        }
        Command::Bench(args) => sluice::bench::run(*args),
    }
}

/// Exit status when the database fails its integrity check at start.
const EXIT_CORRUPT: i32 = 3;
/// Exit status when the encryption key is malformed or does not open the stored data.
const EXIT_WRONG_KEY: i32 = 4;

fn serve(args: sluice::config::ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let signals = sluice::app::ShutdownSignals::install()?;
        let server = sluice::app::start(settings).await?;
        // Tests and scripts read this line to find an ephemeral port.
        println!("sluice listening on http://{}", server.addr);
        if let Some(tls) = server.tls_addr {
            println!("sluice listening on https://{tls}");
        }
        signals.wait().await;
        tracing::info!("shutting down: finishing in-flight requests");
        server.stop().await
    })
}
