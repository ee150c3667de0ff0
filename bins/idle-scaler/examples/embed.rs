//! Embedding idle-scaler in a host's own worker: the host owns the database pool, the
//! scheduler, the metrics recorder and the shutdown signal.
//!
//! Run: `DATABASE_URL=postgres://... cargo run -p idle-scaler --example embed`

use std::sync::Arc;

use idle_scaler_core::{Config, Job, SystemClock};
use idle_scaler_kube::LazyScalerSource;
use idle_scaler_postgres::PgStore;
use idle_scaler_prometheus::PrometheusConfig;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Defaults, then the environment; a host with its own figment passes it to
    // `Config::from_provider_with` and `PrometheusConfig::extract` instead. The job is told the
    // Prometheus keys so it does not warn about them as unknown.
    let config = Config::load_with(None, idle_scaler_prometheus::KEYS)?;
    let prometheus = PrometheusConfig::load(None, &config)?;
    // The host's pool: the job adds no connections of its own.
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let store = Arc::new(PgStore::from_pool(pool));
    // Built lazily: an unreachable cluster makes ticks fail open, not the host.
    let scalers = Arc::new(LazyScalerSource::infer(config.request_timeout()));
    let job = Job::new(config, store, scalers, Arc::new(SystemClock));
    // The traffic source `DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE` names, if any.
    let job = Arc::new(idle_scaler_prometheus::attach(job, &prometheus)?);

    // Either call `job.tick().await` from the host's scheduler, or spawn the provided loop
    // under the host's cancellation token:
    let shutdown = CancellationToken::new();
    let ticks = tokio::spawn({
        let (job, shutdown) = (job.clone(), shutdown.clone());
        async move { job.run(shutdown).await }
    });
    tokio::signal::ctrl_c().await?;
    shutdown.cancel(); // no new transitions; in-flight ones finish
    ticks.await?;
    Ok(())
}
