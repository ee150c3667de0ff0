//! `idle-scaler demo`: the real job against an in-process fake Kubernetes API server, the
//! in-memory store (or PostgreSQL when `DATABASE_URL` is set, in a throwaway database), and
//! a virtual clock. Nothing to install or start.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use idle_scaler_core::{
    Config, FixedScalerFactory, Job, Outcome, RhythmStore, SleepState, Store, TickReport,
};
use idle_scaler_kube::KubeScaler;
use idle_scaler_postgres::ScratchDatabase;
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::server::{self, AppState};
use crate::settings::{LogFormat, Settings};

/// The demo's store as the job, the seeding and the adaptive policy see it, and the throwaway
/// database if any.
type Stores = (
    Arc<dyn Store>,
    Arc<dyn HostOps>,
    Arc<dyn RhythmStore>,
    Option<ScratchDatabase>,
);

/// One seeded app and what the demo expects of it.
struct App {
    id: Uuid,
    kind: &'static str,
    namespace: &'static str,
    name: String,
}

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    if std::env::var_os("RUST_LOG").is_none() {
        // Transitions are INFO events of the job; everything else only when it goes wrong.
        crate::logging::init_with(LogFormat::Text, "warn,idle_scaler_core=info");
    } else {
        crate::logging::init(settings.log_format);
    }
    let shutdown = CancellationToken::new();
    let metrics = server::install_metrics(&shutdown)?;
    let fake = FakeApiServer::start().await;
    let t0 = Utc::now();
    let clock = ManualClock::new(t0);

    let (store, host, rhythms, database): Stores = match settings.database_url.as_deref() {
        Some(url) => {
            let db = ScratchDatabase::create(url, "idle_scaler_demo", PgPoolOptions::new())
                .await
                .context("creating the demo database (the DATABASE_URL user needs CREATEDB)")?;
            let store = Arc::new(db.store());
            (store.clone(), store.clone(), store, Some(db))
        }
        None => {
            let store = Arc::new(MemoryStore::new());
            (store.clone(), store.clone(), store, None)
        }
    };
    println!(
        "idle-scaler demo: fake Kubernetes API at {}, store: {}, idle window 30 min, tick every 2 min (virtual time)\n",
        fake.url(),
        if database.is_some() {
            "PostgreSQL (throwaway database)"
        } else {
            "in-memory"
        }
    );

    let config = Config {
        enabled: true,
        ..Config::default()
    };
    let scaler = Arc::new(KubeScaler::from_url(&fake.url(), config.request_timeout())?);
    let job = Job::builder(
        config,
        store.clone(),
        Arc::new(FixedScalerFactory(scaler.clone())),
    )
    .clock(Arc::new(clock.clone()))
    .rhythm_store(rhythms);
    let job = Arc::new(job.build());

    let apps = seed(host.as_ref(), &fake, t0).await?;
    println!(
        "seeded {} apps: idle, busy, pinned, expired, unhealthy, foreign, deleted, protected\n",
        apps.len()
    );

    let token = Uuid::new_v4().simple().to_string();
    let http_stop = server::Shutdown::default();
    let state = AppState {
        job: job.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        wake_token: Some(token.as_str().into()),
        rejected: Arc::default(),
        listening: None,
    };
    let limits = settings.http_limits;
    let (addr, http) = match server::serve(
        settings.listen_addr,
        state.clone(),
        limits,
        http_stop.clone(),
    )
    .await
    {
        Ok(bound) => bound,
        // A busy port must not stop a demo: take any free one.
        Err(_) => {
            server::serve(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                state,
                limits,
                http_stop.clone(),
            )
            .await?
        }
    };
    println!("metrics live at http://{addr}/metrics while the demo runs\n");

    println!("== tick 1 (t+0): apps idle for 3 hours are put to sleep");
    summary(&job.tick().await?);

    println!("\n== 25 virtual minutes pass; busy-00 is redeployed, the other busy apps go idle");
    clock.advance(chrono::Duration::minutes(25));
    let busy0 = apps
        .iter()
        .find(|a| a.name == "busy-00")
        .context("seeded busy-00")?;
    host.bump_activity(busy0.id, clock_now(&clock)).await?;
    println!("== tick 2 (t+25m)");
    summary(&job.tick().await?);

    let woken = apps
        .iter()
        .find(|a| a.name == "idle-02")
        .context("seeded idle-02")?;
    let before = fake.replicas(woken.namespace, &woken.name);
    println!(
        "\n== waking {} ({}/{}) through POST http://{addr}/v1/deployments/{{id}}/wake",
        woken.id, woken.namespace, woken.name
    );
    let (status, body) = post(addr, &format!("/v1/deployments/{}/wake", woken.id), &token).await?;
    println!("HTTP {status}: {body}");
    println!(
        "replicas {}/{}: {} -> {}",
        woken.namespace,
        woken.name,
        before.map_or("?".into(), |r| r.to_string()),
        fake.replicas(woken.namespace, &woken.name)
            .map_or("?".into(), |r| r.to_string())
    );

    // Wake on request: a visitor of another slept app reaches the waker (as a proxy's
    // fallback route sends it), which wakes the app, waits for its pods and redirects.
    let visited = apps
        .iter()
        .find(|a| a.name == "idle-03")
        .context("seeded idle-03")?;
    fake.set_ready_delay(Duration::from_millis(300));
    let waker = idle_scaler_waker::Waker::new(
        job.clone(),
        store,
        scaler,
        Arc::new(clock.clone()),
        idle_scaler_waker::WakerConfig::default(),
    );
    let (waker_addr, waker_task) = server::serve_router(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(waker).router(),
        "the waker",
        limits,
        http_stop.clone(),
    )
    .await?;
    println!(
        "\n== a visitor asks for {}/{} (asleep) through the waker at http://{waker_addr} (pods take 300 ms to start)",
        visited.namespace, visited.name
    );
    let before = fake.replicas(visited.namespace, &visited.name);
    let target = format!("{}/{}", visited.namespace, visited.name);
    let answer = get(
        waker_addr,
        "/shop?item=1",
        &[("X-Idle-Scaler-Target", &target)],
    )
    .await?;
    println!("{}", answer.lines().next().unwrap_or_default());
    for line in answer.lines().filter(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("location:") || l.starts_with("x-idle-scaler-cold-start-ms:")
    }) {
        println!("{line}");
    }
    println!(
        "replicas {target}: {} -> {} (the visitor's client follows the 307 to the app)",
        before.map_or("?".into(), |r| r.to_string()),
        fake.replicas(visited.namespace, &visited.name)
            .map_or("?".into(), |r| r.to_string())
    );

    println!("\n== tick 3 (t+27m): the woken apps have fresh activity and stay up");
    clock.advance(chrono::Duration::minutes(2));
    summary(&job.tick().await?);

    println!("\n== final state");
    println!(
        "{:<10} {:<22} {:<9} {:>8}",
        "KIND", "APP", "ROW", "REPLICAS"
    );
    for app in &apps {
        let row = host.read(app.id).await?.context("seeded row")?;
        let replicas = fake
            .replicas(app.namespace, &app.name)
            .map_or("-".into(), |r| r.to_string());
        println!(
            "{:<10} {:<22} {:<9} {:>8}",
            app.kind,
            format!("{}/{}", app.namespace, app.name),
            row.sleep_state.as_str(),
            replicas
        );
    }
    let asleep = host
        .rows()
        .await?
        .iter()
        .filter(|r| r.sleep_state == SleepState::Asleep)
        .count();
    println!("\n{asleep} of {} apps asleep; metrics:", apps.len());
    for line in metrics.render().lines().filter(|l| {
        l.starts_with("instant_deploy_scaled_to_zero_total")
            || l.starts_with("instant_deploy_idle_apps")
            || l.starts_with(idle_scaler_core::metrics::REPLICAS_ASLEEP)
    }) {
        println!("  {line}");
    }

    shutdown.cancel();
    http_stop.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), http.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), waker_task.wait()).await;
    if let Some(db) = database {
        drop(host);
        drop(job);
        let name = db.name().to_owned();
        if let Err(e) = db.drop_database().await {
            eprintln!("warning: could not drop demo database {name}: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    idle_scaler_core::Clock::now(clock)
}

fn summary(report: &TickReport) {
    let skips: Vec<String> = report
        .skips
        .iter()
        .map(|(r, n)| format!("{}={n}", r.as_str()))
        .collect();
    println!(
        "-> {} candidates: scaled_down={} scale_failed={} skipped: {}",
        report.candidates,
        report.outcome(Outcome::ScaledDown),
        report.outcome(Outcome::ScaleFailed),
        if skips.is_empty() {
            "none".into()
        } else {
            skips.join(" ")
        }
    );
}

async fn seed(
    host: &dyn HostOps,
    fake: &FakeApiServer,
    t0: DateTime<Utc>,
) -> anyhow::Result<Vec<App>> {
    let long_idle = t0 - chrono::Duration::hours(3);
    let recent = t0 - chrono::Duration::minutes(10);
    let mut apps = Vec::new();
    let kinds: [(&str, &str, usize); 8] = [
        ("idle", "demo", 12),
        ("busy", "demo", 6),
        ("pinned", "demo", 3),
        ("expired", "demo", 3),
        ("unhealthy", "demo", 3),
        ("foreign", "demo", 3),
        ("deleted", "demo", 3),
        ("protected", "kube-system", 2),
    ];
    for (kind, namespace, count) in kinds {
        for i in 0..count {
            let name = format!("{kind}-{i:02}");
            let activity = if kind == "busy" { recent } else { long_idle };
            let replicas = i32::try_from(i % 3 + 1).unwrap_or(1);
            let mut row = if kind == "foreign" {
                NewDeployment::new(format!("fly:{name}"), activity)
            } else {
                NewDeployment::k8s(namespace, &name, activity)
            };
            match kind {
                "pinned" => row = row.always_on(true),
                "expired" => row = row.expires_at(t0 - chrono::Duration::hours(1)),
                "unhealthy" => row = row.status("failed"),
                _ => {}
            }
            if kind != "deleted" {
                fake.create_deployment(namespace, &name, replicas);
            }
            let id = host.insert(row).await?;
            apps.push(App {
                id,
                kind,
                namespace,
                name,
            });
        }
    }
    Ok(apps)
}

/// A minimal HTTP/1.1 GET; the whole answer, head and body.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("connecting to the waker")?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// A minimal HTTP/1.1 POST, so the demo goes through the real endpoint without a client crate.
async fn post(addr: SocketAddr, path: &str, token: &str) -> anyhow::Result<(u16, String)> {
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("connecting to the wake endpoint")?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .to_owned();
    Ok((status, body))
}
