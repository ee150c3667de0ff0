//! Embedding idle-scaler in a host's own worker: the host owns the configuration, the
//! database pool, the scheduler, the metrics recorder, the TLS provider and the shutdown.
//! The README's "Embedding the library" section is this file from `use` on (a test checks).
//!
//! Run: `DATABASE_URL=postgres://... cargo run -p idle-scaler --example embed`

use std::sync::Arc;

use idle_scaler_core::Config;
use idle_scaler_core::job::TickResult;
use idle_scaler_core::reexports::figment::Figment;
use idle_scaler_core::reexports::figment::providers::{Env, Format, Toml};
use idle_scaler_postgres::PgStore;
use idle_scaler_prometheus::PrometheusConfig;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The host's own configuration. idle-scaler reads its `[idle_scaler]` section, overridden
    // by the `MYHOST_SCALER_*` variables; an error names the file and key, or the variable.
    let figment = Figment::new()
        .merge(Toml::file("host.toml"))
        .merge(Env::prefixed("MYHOST_").split("__"));
    let (section, prefix) = ("idle_scaler", "MYHOST_SCALER_");
    let config = Config::from_section(&figment, section, prefix, idle_scaler_prometheus::KEYS)?;
    let prometheus = PrometheusConfig::from_section(&figment, section, prefix, &config)?;

    // The host's pool: the store adds no connections and bounds its own statements (30 s).
    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    let store = PgStore::from_pool(pool);
    // Recorded in `_idle_scaler_migrations`: the host's own sqlx migrations are unaffected.
    store.migrate().await?;

    // The lazy in-cluster (or kubeconfig) client: an unreachable cluster fails ticks open.
    // The store keeps the rhythms of `policy = adaptive` too.
    let store = Arc::new(store);
    let job = idle_scaler_kube::job_builder(config, store.clone()).rhythm_store(store);
    // The traffic source the configuration names, if any.
    let job = Arc::new(idle_scaler_prometheus::attach(job, &prometheus)?.build());

    // After installing the host's recorder (through `idle_scaler_core::reexports::metrics`).
    idle_scaler_core::metrics::describe_metrics();
    idle_scaler_core::metrics::prime();

    // Call `job.tick().await` from the host's scheduler, or spawn the provided loop.
    let shutdown = CancellationToken::new();
    let ticks = tokio::spawn({
        let (job, shutdown) = (job.clone(), shutdown.clone());
        async move {
            job.run_reporting(shutdown, |result| {
                if let TickResult::Report(report) = result {
                    tracing::debug!(candidates = report.candidates, "tick");
                }
            })
            .await;
        }
    });
    tokio::signal::ctrl_c().await?;
    shutdown.cancel(); // no new transitions; in-flight ones finish
    ticks.await?;
    job.finish_wakes().await; // wakes already started run to their end
    Ok(())
}
