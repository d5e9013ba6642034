//! `sluice`: the server binary.

use clap::Parser;
use sluice::config::{Cli, Command, Settings};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let server = sluice::app::start(settings).await?;
                // Tests and scripts read this line to find an ephemeral port.
                println!("sluice listening on http://{}", server.addr);
                if let Some(tls) = server.tls_addr {
                    println!("sluice listening on https://{tls}");
                }
                sluice::app::wait_for_signal().await;
                tracing::info!("shutting down: finishing in-flight requests");
                server.stop().await
            })
        }
    }
}
