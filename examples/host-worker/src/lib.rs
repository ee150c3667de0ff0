//! An example host: a platform's own worker that embeds idle-scaler beside its other work.
//!
//! It owns the database pool and its own migrations, the tracing subscriber, the metrics
//! recorder, the TLS provider (aws-lc) and the shutdown signal; it gives the library a section
//! of its own configuration (`[idle_scaler]`, variables `HOST_WORKER_SCALER_*`), runs the
//! job's loop beside its own queue task, and wakes apps from its own code.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use idle_scaler_core::job::TickResult;
use idle_scaler_core::{Config, Job, WakeReport};
use idle_scaler_kube::LazyScalerFactory;
use idle_scaler_postgres::PgStore;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The host's own migrations, tracked in sqlx's default table.
pub static HOST_MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The section of the host's configuration that holds idle-scaler's keys.
pub const SCALER_SECTION: &str = "idle_scaler";
/// The prefix of the variables that override that section.
pub const SCALER_ENV_PREFIX: &str = "HOST_WORKER_SCALER_";

/// The host's own settings (section `[worker]`).
#[derive(Debug, Default, Deserialize)]
pub struct WorkerSettings {
    /// An explicit API server (tests); absent, the in-cluster or kubeconfig client is used.
    pub kube_url: Option<String>,
    /// How often the queue task looks for work, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub queue_poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    200
}

/// The host's figment: its file, then its variables (`HOST_WORKER_...`).
pub fn host_figment(file: Option<&Path>) -> Figment {
    let mut fig = Figment::new();
    if let Some(path) = file {
        fig = fig.merge(Toml::file_exact(path));
    }
    fig.merge(Env::prefixed("HOST_WORKER_").split("__"))
}

/// The worker, ready to run.
#[derive(Debug)]
pub struct Worker {
    /// The embedded job.
    pub job: Arc<Job>,
    pool: PgPool,
    poll: Duration,
}

/// A running worker: each tick's result and each wake, for the host to watch.
#[derive(Debug)]
pub struct Running {
    /// How each tick of the job's loop ended.
    pub ticks: mpsc::UnboundedReceiver<TickResult>,
    /// The wakes the queue task made.
    pub wakes: mpsc::UnboundedReceiver<WakeReport>,
    job: Arc<Job>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Migrates (the host's migrations, then the library's, each in its own table), reads
    /// the configuration from the host's figment, and builds the job.
    pub async fn start(figment: &Figment, pool: PgPool) -> anyhow::Result<Self> {
        HOST_MIGRATOR
            .run(&pool)
            .await
            .context("running the host's migrations")?;
        let store = PgStore::from_pool(pool.clone());
        store
            .apply_host_integration()
            .await
            .context("adding idle-scaler's columns")?;
        store
            .migrate()
            .await
            .context("running idle-scaler's migrations")?;

        let settings: WorkerSettings = match figment.find_value("worker") {
            Ok(_) => figment
                .extract_inner("worker")
                .context("the [worker] section")?,
            Err(_) => WorkerSettings {
                queue_poll_ms: default_poll_ms(),
                ..WorkerSettings::default()
            },
        };
        let config = Config::from_section(figment, SCALER_SECTION, SCALER_ENV_PREFIX, &[])
            .context("the [idle_scaler] section")?;
        let store = Arc::new(store);
        let builder = match &settings.kube_url {
            Some(url) => Job::builder(
                config.clone(),
                store.clone(),
                Arc::new(LazyScalerFactory::from_url(
                    url.clone(),
                    config.request_timeout(),
                )),
            ),
            None => idle_scaler_kube::job_builder(config, store.clone()),
        };
        // The same store keeps the rhythms `policy = adaptive` learns.
        let builder = builder.rhythm_store(store);
        // After the host installed its recorder: the series exist at 0 from now on.
        idle_scaler_core::metrics::describe_metrics();
        idle_scaler_core::metrics::prime();
        Ok(Self {
            job: Arc::new(builder.build()),
            pool,
            poll: Duration::from_millis(settings.queue_poll_ms),
        })
    }

    /// Spawns the job's loop and the host's queue task under `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> Running {
        let (tick_tx, ticks) = mpsc::unbounded_channel();
        let (wake_tx, wakes) = mpsc::unbounded_channel();
        let job_loop = tokio::spawn({
            let (job, shutdown) = (self.job.clone(), shutdown.clone());
            async move {
                job.run_reporting(shutdown, move |result| {
                    // A closed receiver only means nobody watches any more.
                    let _ = tick_tx.send(result);
                })
                .await;
            }
        });
        let queue = tokio::spawn(queue_task(
            self.job.clone(),
            self.pool,
            self.poll,
            shutdown.clone(),
            wake_tx,
        ));
        Running {
            ticks,
            wakes,
            job: self.job,
            shutdown,
            tasks: vec![job_loop, queue],
        }
    }
}

impl Running {
    /// Stops both tasks and waits for wakes already started.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.context("a worker task")?;
        }
        self.job.finish_wakes().await;
        info!("worker stopped");
        Ok(())
    }
}

/// The host's other work: its queue. A `wake` job wakes an app through the library.
async fn queue_task(
    job: Arc<Job>,
    pool: PgPool,
    poll: Duration,
    shutdown: CancellationToken,
    wakes: mpsc::UnboundedSender<WakeReport>,
) {
    let mut interval = tokio::time::interval(poll);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let next: Result<Option<(i64, uuid::Uuid)>, _> = sqlx::query_as(
            "SELECT id, deployment_id FROM host_jobs \
             WHERE kind = 'wake' AND done_at IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_optional(&pool)
        .await;
        let (job_id, deployment) = match next {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %idle_scaler_core::error_chain(&e), "reading the queue");
                continue;
            }
        };
        match job.wake(deployment).await {
            Ok(report) => {
                info!(deployment_id = %deployment, result = report.result.as_str(), "woke");
                let _ = wakes.send(report);
            }
            Err(e) => {
                warn!(deployment_id = %deployment, error = %idle_scaler_core::error_chain(&e), "wake failed")
            }
        }
        if let Err(e) = sqlx::query("UPDATE host_jobs SET done_at = now() WHERE id = $1")
            .bind(job_id)
            .execute(&pool)
            .await
        {
            warn!(error = %idle_scaler_core::error_chain(&e), "marking a queue job done");
        }
    }
}
