//! The example host's binary: `DATABASE_URL=... cargo run -p host-worker [config.toml]`.

use std::path::PathBuf;

use anyhow::Context;
use idle_scaler_core::reexports::metrics;
use tokio_util::sync::CancellationToken;

// The library needs the multi-thread runtime's `tokio::spawn` of `Send` futures; any flavour works.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Process-wide state is the host's: its TLS provider, its subscriber, its recorder.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS provider was installed already"))?;
    tracing_subscriber::fmt().init();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics_handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;

    let file = std::env::args_os().nth(1).map(PathBuf::from);
    let figment = host_worker::host_figment(file.as_deref());
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let pool = sqlx::PgPool::connect(&url).await.context("connecting")?;
    let worker = host_worker::Worker::start(&figment, pool).await?;

    let shutdown = CancellationToken::new();
    let running = worker.spawn(shutdown.clone());
    tokio::signal::ctrl_c().await?;
    running.shutdown().await?;
    print!("{}", metrics_handle.render());
    Ok(())
}
