//! The subcommands.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use idle_scaler_core::{ClusterName, Job, Outcome, Store, SystemClock};
use idle_scaler_kube::{KubeClusters, KubeParker};
use idle_scaler_postgres::PgStore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

mod print; // the reports of `tick`, `plan` and `status` as text

use crate::logging;
use crate::parking;
use crate::server::{self, AppState, Shutdown};
use crate::settings::{SHUTDOWN_GRACE_SECONDS, Settings};
use print::{print_backing_off, print_summary};

/// How long in-flight transitions may take after SIGTERM before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(SHUTDOWN_GRACE_SECONDS);

/// Connects now (the error names host and port, never the password).
async fn connect(settings: &Settings) -> anyhow::Result<PgStore> {
    Ok(PgStore::connect(settings.database_url()?).await?)
}

/// A pool that connects on first use, so a disabled job opens no connection at all.
fn connect_lazy(settings: &Settings) -> anyhow::Result<PgStore> {
    Ok(PgStore::connect_lazy(settings.database_url()?)?)
}

/// The job over one lazy Kubernetes client per served cluster (the default cluster's
/// inferred, each named cluster's from its kubeconfig file or context), without parking.
fn job(settings: &Settings, store: Arc<PgStore>) -> anyhow::Result<Arc<Job>> {
    let clusters = KubeClusters::from_config(&settings.job);
    job_parked(settings, store, &clusters, None)
}

/// [`job`] with the daemon's parker, for a command that sleeps or wakes (`tick`, `wake`):
/// it parks and unparks as the daemon would. `stop` ends its address feed; `first_addresses`
/// (a command that parks) waits that long at most for a watched waker Service's addresses.
async fn job_parking(
    settings: &Settings,
    store: Arc<PgStore>,
    stop: &CancellationToken,
    first_addresses: Option<Duration>,
) -> anyhow::Result<Arc<Job>> {
    let kube = KubeClusters::from_config(&settings.job);
    let routes = parking::read_routes(settings, &kube, first_addresses).await?;
    let parker = parking::job_parker(settings, &kube, stop, first_addresses, routes, None).await?;
    job_parked(settings, store, &kube, parker)
}

/// The job over `clusters`, parking through `parker` (the waker's own cluster's) when given.
/// The store keeps the rhythms too (`policy = adaptive`; the fixed policy never reads them).
fn job_parked(
    settings: &Settings,
    store: Arc<PgStore>,
    clusters: &KubeClusters,
    parker: Option<(Arc<KubeParker>, Option<ClusterName>)>,
) -> anyhow::Result<Arc<Job>> {
    let mut job = clusters
        .job_builder(settings.job.clone(), store.clone())
        .rhythm_store(store);
    if let Some((parker, cluster)) = parker {
        job = job.parker(parker, cluster);
    }
    let job = idle_scaler_prometheus::attach(job, &settings.prometheus)
        .context("building the Prometheus activity source")?;
    Ok(Arc::new(job.try_build().context("building the job")?))
}

fn start_logging(settings: &Settings) {
    logging::init(settings.log_format);
    for w in &settings.warnings {
        warn!(warning = %w, "configuration adjusted");
    }
}

/// `run`: the daemon.
pub async fn daemon(settings: Settings) -> anyhow::Result<ExitCode> {
    start_logging(&settings);
    let store = Arc::new(if settings.job.enabled {
        connect(&settings).await?
    } else {
        info!("DEPLOY_SCALE_TO_ZERO_ENABLED is off: ticks do nothing; wake still works");
        connect_lazy(&settings)?
    });
    // One Kubernetes client per cluster for the ticks, the wakes and the waker's readiness
    // watches.
    let kube = Arc::new(KubeClusters::from_config(&settings.job));
    let shutdown = CancellationToken::new();
    let (routes, parker, (read, listening)) = parking::daemon(&settings, &kube, &shutdown).await?;
    let job = job_parked(&settings, store.clone(), &kube, parker.clone())?;
    let metrics = server::install_metrics(&shutdown)?;
    idle_scaler_core::metrics::prime_clusters(job.served_clusters());
    let state = AppState {
        job: job.clone(),
        store: store.clone(),
        metrics,
        wake_token: settings.wake_token.as_deref().map(Arc::from),
        rejected: Arc::default(),
        listening: Some(listening),
    };
    let http_stop = Shutdown::default();
    // Bound first: the kubelet's probes find it while the other listeners start.
    let probe_connections = match settings.probe_listen_addr {
        Some(addr) => Some(
            server::serve_probes(addr, state.clone(), http_stop.clone())
                .await?
                .1,
        ),
        None => {
            info!(
                "IDLE_SCALER_PROBE_LISTEN_ADDR is off: /healthz and /readyz share the API port's cap"
            );
            None
        }
    };
    let (_, connections) = server::serve(
        settings.listen_addr,
        state,
        settings.http_limits,
        http_stop.clone(),
    )
    .await?;
    // One waker for both listeners: one wake per app and one app index, whichever listener
    // a request came in on.
    let waker = (settings.waker_listen_addr.is_some() || settings.parking_listen_addr.is_some())
        .then(|| {
            Arc::new(idle_scaler_waker::Waker::new(
                job.clone(),
                store.clone(),
                kube.clone(),
                Arc::new(SystemClock),
                settings.waker.clone(),
            ))
        });
    let waker_connections = match (settings.waker_listen_addr, &waker) {
        (Some(addr), Some(waker)) => {
            let (_, connections) = server::serve_router(
                addr,
                waker.clone().router(),
                "the waker",
                settings.http_limits,
                http_stop.clone(),
            )
            .await?;
            Some(connections)
        }
        _ => {
            info!(
                "IDLE_SCALER_WAKER_LISTEN_ADDR is off: no wake on request through a proxy's error page"
            );
            None
        }
    };
    let parking_server = match waker {
        Some(waker) => parking::serve_listener(&settings, &kube, waker, routes, read).await?,
        None => None,
    };
    info!(
        enabled = settings.job.enabled,
        dry_run = settings.job.dry_run,
        interval_s = settings.job.interval_seconds,
        idle_minutes = settings.job.idle_minutes,
        activity_source = ?settings.job.activity_source,
        activity_unknown = ?settings.job.activity_unknown,
        policy = ?settings.job.policy,
        clusters = %job.served_clusters(),
        "idle-scaler started"
    );
    let ticks = tokio::spawn({
        let (job, shutdown) = (job.clone(), shutdown.clone());
        async move { job.run(shutdown).await }
    });

    wait_for_signal().await?;
    info!(
        grace_s = SHUTDOWN_GRACE.as_secs(),
        "shutdown requested: no new transitions or connections; letting in-flight ones finish"
    );
    // Stop both at once: the listeners close (new connections are refused), open connections
    // finish the request in flight, the loop starts no new transition. Requests still in
    // flight at the drain deadline (visitors held for an app that is not ready yet) are
    // answered 503 + Retry-After then, before the grace ends.
    shutdown.cancel();
    http_stop.begin(settings.http_drain);
    if let Some(server) = &parking_server {
        server.stop_after_linger(
            parker.as_ref().map(|(p, _)| p.clone()),
            settings.pod_ip,
            settings.http_drain,
        );
    }
    let drained = async {
        let _ = ticks.await;
        // A wake outlives its caller (its HTTP answer is sent by the connection task); a
        // visitor held by the waker gets its answer before the process goes. Both at once, so
        // a visitor waiting for a slow app does not use up the grace a wake needs.
        tokio::join!(job.finish_wakes(), async {
            connections.wait().await;
            for other in [&waker_connections, &probe_connections]
                .into_iter()
                .flatten()
            {
                other.wait().await;
            }
            if let Some(server) = parking_server {
                let _ = server.served.await;
            }
        });
        // Again: a request drained meanwhile may have started a wake (a browser's starting
        // page is answered at once while its wake runs on).
        job.finish_wakes().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "in-flight transitions or requests did not finish in time; exiting"
        );
    }
    info!("idle-scaler stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
    }
    Ok(())
}

/// `tick`: one tick; exit 1 when any scale-down failed.
pub async fn tick(settings: Settings) -> anyhow::Result<ExitCode> {
    start_logging(&settings);
    let store = Arc::new(if settings.job.enabled {
        connect(&settings).await?
    } else {
        connect_lazy(&settings)?
    });
    let stop = CancellationToken::new();
    let report = job_parking(
        &settings,
        store,
        &stop,
        Some(settings.job.request_timeout()),
    )
    .await?
    .tick()
    .await;
    stop.cancel();
    let report = report?;
    print_summary(&report);
    Ok(if report.outcome(Outcome::ScaleFailed) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `unpark --all`.
pub async fn unpark_all(settings: Settings) -> anyhow::Result<ExitCode> {
    start_logging(&settings);
    let kube = KubeClusters::from_config(&settings.job);
    parking::unpark_all(&settings, &kube).await
}

/// `plan`: a dry run.
pub async fn plan(settings: Settings, json: bool) -> anyhow::Result<ExitCode> {
    start_logging(&settings);
    let store = Arc::new(connect(&settings).await?);
    let report = job(&settings, store)?.plan().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{:<36}  TARGET", "ID");
        for p in &report.slept {
            println!("{:<36}  {}", p.id, p.target);
        }
        println!(
            "{} would be put to sleep ({} idle candidates)",
            report.slept.len(),
            report.candidates
        );
        for (reason, n) in &report.skips {
            println!("skipped {}={n}", reason.as_str());
        }
        print_backing_off(&report.backing_off);
    }
    Ok(ExitCode::SUCCESS)
}

/// How many backing-off rows `status` lists.
const STATUS_BACKING_OFF: u32 = 1_000;

/// `status`: apps asleep or mid-sleep, rows backing off, and the totals (apps asleep,
/// replicas saved: what the asleep apps restore on wake).
pub async fn status(settings: Settings, json: bool) -> anyhow::Result<ExitCode> {
    start_logging(&settings);
    let store = connect(&settings).await?;
    let rows = store.list_sleeping().await?;
    let backing_off = store
        .backed_off(chrono::Utc::now(), STATUS_BACKING_OFF)
        .await?;
    let apps_asleep = store.count_asleep().await?;
    let default_replicas = settings.job.default_wake_replicas;
    let replicas_saved = store.sum_asleep_replicas(default_replicas).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "sleeping": rows,
                "backing_off": backing_off,
                "totals": { "apps_asleep": apps_asleep, "replicas_saved": replicas_saved },
            }))?
        );
    } else {
        println!(
            "{:<36}  {:<9}  {:<25}  {:<7}  TARGET",
            "ID", "STATE", "SINCE", "RESTORE"
        );
        for r in &rows {
            println!(
                "{:<36}  {:<9}  {:<25}  {:<7}  {}",
                r.id,
                r.sleep_state.as_str(),
                r.sleep_state_changed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.replicas_before_sleep
                    .map_or_else(|| "default".into(), |n| n.to_string()),
                r.provider_id
            );
        }
        println!("{} asleep or going to sleep", rows.len());
        print_backing_off(&backing_off);
        println!(
            "totals: {apps_asleep} apps asleep, {replicas_saved} replicas saved \
             (an app without a recorded count restores {default_replicas})"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `wake <id>`.
pub async fn wake(settings: Settings, id: &str) -> anyhow::Result<ExitCode> {
    let Ok(id) = Uuid::parse_str(id) else {
        bail!(
            "{id:?} is not a deployment id (expected a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427)"
        );
    };
    start_logging(&settings);
    let store = Arc::new(connect(&settings).await?);
    let stop = CancellationToken::new();
    let report = job_parking(&settings, store, &stop, None)
        .await?
        .wake(id)
        .await;
    stop.cancel();
    let report = report.with_context(|| format!("waking {id}"))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// `migrate`.
pub async fn migrate(settings: Settings) -> anyhow::Result<ExitCode> {
    start_logging(&settings);
    connect(&settings)
        .await?
        .migrate()
        .await
        .context("migrating the database")?;
    println!("database schema up to date");
    Ok(ExitCode::SUCCESS)
}

/// `config`: the effective configuration, secrets redacted.
pub fn config(settings: &Settings) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&settings.redacted()?)?);
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
