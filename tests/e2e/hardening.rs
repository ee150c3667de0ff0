//! The daemon under hostile input and at shutdown: slow and idle connections, oversized
//! input, refused wakes, SIGTERM during a wake, a database that never worked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use idle_scaler_core::SleepState;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::{FakeApiServer, Fault};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    Daemon, command, database_url, eventually, http, job_command, kubeconfig, setup,
};

const TOKEN: &str = "e2e-hardening-token-0123456789";

/// A daemon with the flag off (no ticks touch anything) and the wake endpoint on.
fn quiet_daemon(db: &str, kubeconfig: &std::path::Path) -> std::process::Command {
    let mut cmd = job_command(&["run"], db, kubeconfig);
    cmd.env("DEPLOY_SCALE_TO_ZERO_ENABLED", "false")
        .env("IDLE_SCALER_WAKE_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    cmd
}

/// `apps/web` at 0 replicas, its row asleep with 2 replicas to restore.
async fn asleep_web(store: &PgStore, fake: &FakeApiServer) -> uuid::Uuid {
    fake.create_deployment("apps", "web", 0);
    store
        .insert(
            NewDeployment::k8s("apps", "web", Utc::now() - chrono::Duration::hours(3)).sleep_state(
                SleepState::Asleep,
                Utc::now(),
                Some(2),
            ),
        )
        .await
        .expect("insert")
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn sigterm_during_a_wake_answers_the_caller_and_leaves_the_app_awake(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, fake) = setup(&opts).await;
    let id = asleep_web(&store, &fake).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut daemon = Daemon::start(quiet_daemon(&database_url(&opts, None), &kc)).await;

    // The scale write takes 5 s: longer than the old 3 s the server was given to drain.
    fake.inject(Fault::latency(Duration::from_secs(5)).on_method("PATCH"));
    let addr = daemon.addr;
    let path = format!("/v1/deployments/{id}/wake");
    let caller = tokio::spawn(async move { http(addr, "POST", &path, Some(TOKEN)).await });
    eventually(
        Duration::from_secs(10),
        "the scale write in flight",
        || async {
            fake.requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.status.is_none())
                .then_some(())
        },
    )
    .await;
    daemon.send_sigterm();
    // While the wake is still in flight, new connections are refused.
    eventually(Duration::from_secs(3), "the listener closed", || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    assert!(daemon.is_running(), "exited before the wake finished");
    assert!(!caller.is_finished(), "answered before the scale write did");
    assert_eq!(daemon.wait_for_exit(Duration::from_secs(30)).await, Some(0));

    let (code, body) = caller.await.expect("caller");
    assert_eq!(code, 200, "{body}\n{}", daemon.output());
    assert_eq!(fake.replicas("apps", "web"), Some(2));
    let row = store.read(id).await.unwrap().unwrap();
    assert_eq!(row.sleep_state, SleepState::Awake);
}

/// Invariant 10 through the waker: a browser gets its starting page at once and goes; the
/// wake it started runs on, and a SIGTERM while its scale write is in flight lets it finish
/// (app up, row awake) before the process exits.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn sigterm_during_a_wake_a_browser_started_lets_it_finish(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, fake) = setup(&opts).await;
    let id = asleep_web(&store, &fake).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut daemon = Daemon::start(quiet_daemon(&database_url(&opts, None), &kc)).await;
    let line = daemon
        .wait_for_log("serving the waker", Duration::from_secs(10))
        .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let waker: SocketAddr = v["addr"].as_str().expect("addr").parse().expect("address");

    fake.inject(Fault::latency(Duration::from_secs(5)).on_method("PATCH"));
    let mut browser = TcpStream::connect(waker).await.expect("connect");
    browser
        .write_all(
            "GET /shop HTTP/1.1\r\nHost: web.example.com\r\nAccept: text/html\r\n\
             X-Namespace: apps\r\nX-Service-Name: web\r\nX-Original-URI: /shop\r\n\
             X-Code: 503\r\nConnection: close\r\n\r\n"
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut page = String::new();
    browser.read_to_string(&mut page).await.expect("read");
    assert!(page.contains("Starting"), "{page}");
    drop(browser);
    eventually(
        Duration::from_secs(10),
        "the scale write in flight",
        || async {
            fake.requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.status.is_none())
                .then_some(())
        },
    )
    .await;
    daemon.send_sigterm();
    assert_eq!(daemon.wait_for_exit(Duration::from_secs(30)).await, Some(0));
    assert_eq!(fake.replicas("apps", "web"), Some(2), "{}", daemon.output());
    let row = store.read(id).await.unwrap().unwrap();
    assert_eq!(row.sleep_state, SleepState::Awake);
}

/// Opens a connection that sends nothing, or half a request, and keeps it open.
async fn hold(addr: SocketAddr, half_sent: bool) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    if half_sent {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
    }
    stream
}

/// Whether the server closed `stream` (EOF or reset) before `deadline`.
async fn closed_by_server(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or any other answer before the close is fine: keep reading to the EOF.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn idle_and_half_sent_connections_neither_starve_healthz_nor_stay_open() {
    let mut cmd = command(&["run"]);
    // A lazy pool with the flag off: nothing connects.
    cmd.env("DATABASE_URL", "postgres://app@127.0.0.1:1/platform")
        .env("IDLE_SCALER_HTTP_MAX_CONNECTIONS", "64")
        .env("IDLE_SCALER_HTTP_HEADER_READ_TIMEOUT_SECONDS", "1")
        .env("IDLE_SCALER_HTTP_IDLE_TIMEOUT_SECONDS", "2");
    let mut daemon = Daemon::start(cmd).await;
    let mut held = Vec::new();
    for i in 0..200 {
        held.push(hold(daemon.addr, i % 2 == 1).await);
    }
    let started = Instant::now();
    let (code, body) = tokio::time::timeout(
        Duration::from_secs(20),
        http(daemon.addr, "GET", "/healthz", None),
    )
    .await
    .expect("/healthz answered within 20 s with 200 connections held");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let waited = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, deadline).await,
            "connection {i} (half-sent: {}) still open",
            i % 2 == 1
        );
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    eprintln!("/healthz answered after {waited:?}");
}

#[tokio::test]
async fn error_bodies_do_not_echo_unbounded_input_and_refusals_are_rate_limited() {
    let mut cmd = command(&["run"]);
    cmd.env("DATABASE_URL", "postgres://app@127.0.0.1:1/platform")
        .env("IDLE_SCALER_WAKE_TOKEN", TOKEN);
    let mut daemon = Daemon::start(cmd).await;

    let long = "x".repeat(10_000);
    let (code, body) = http(
        daemon.addr,
        "POST",
        &format!("/v1/deployments/{long}/wake"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.len() < 300, "{} bytes: {body}", body.len());
    assert!(body.contains('…'), "{body}");

    // The scheme is case-insensitive: a lowercase `bearer` reaches the id check.
    let mut stream = TcpStream::connect(daemon.addr).await.expect("connect");
    let request = format!(
        "POST /v1/deployments/nope/wake HTTP/1.1\r\nHost: x\r\nAuthorization: bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");

    const WRONG: &str = "wrong-token-do-not-log-0123";
    for _ in 0..20 {
        let (code, _) = http(daemon.addr, "POST", "/v1/deployments/x/wake", Some(WRONG)).await;
        assert_eq!(code, 401);
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    let logs = daemon.output();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("wake request refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{logs}");
    let v: serde_json::Value = serde_json::from_str(refused[0]).expect("JSON line");
    assert_eq!(v["level"], "WARN");
    assert!(
        v["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{v}"
    );
    assert!(!logs.contains(WRONG) && !logs.contains(TOKEN), "{logs}");
}

#[sqlx::test(migrations = false)]
async fn a_daemon_that_never_worked_shows_started_and_no_last_success(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let fake = FakeApiServer::start().await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut cmd = job_command(&["run"], &database_url(&opts, None), &kc);
    cmd.env("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "10");
    let daemon = Daemon::start(cmd).await;
    let metrics = eventually(Duration::from_secs(20), "a failed tick", || async {
        let (_, m) = http(daemon.addr, "GET", "/metrics", None).await;
        m.contains("instant_deploy_scale_to_zero_ticks_total{result=\"error\"}")
            .then_some(m)
    })
    .await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("instant_deploy_scale_to_zero_started_timestamp_seconds ")),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("instant_deploy_scale_to_zero_last_success_timestamp_seconds ")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_disabled_daemon_reports_its_ticks_as_successful() {
    let mut cmd = command(&["run"]);
    cmd.env("DATABASE_URL", "postgres://app@127.0.0.1:1/platform");
    let daemon = Daemon::start(cmd).await;
    eventually(
        Duration::from_secs(20),
        "the last-success gauge",
        || async {
            let (_, m) = http(daemon.addr, "GET", "/metrics", None).await;
            m.lines()
                .any(|l| {
                    l.starts_with("instant_deploy_scale_to_zero_last_success_timestamp_seconds ")
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_full_connection_cap_leaves_the_probes_their_own_listener() {
    let mut cmd = command(&["run"]);
    cmd.env("DATABASE_URL", "postgres://app@127.0.0.1:1/platform")
        .env("IDLE_SCALER_HTTP_MAX_CONNECTIONS", "16")
        .env("IDLE_SCALER_HTTP_HEADER_READ_TIMEOUT_SECONDS", "300")
        .env("IDLE_SCALER_HTTP_IDLE_TIMEOUT_SECONDS", "3600");
    let mut daemon = Daemon::start(cmd).await;
    let probes = daemon.listener("serving the health probes").await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(hold(daemon.addr, false).await);
    }
    // The cap is taken: a request on the main listener waits in the backlog.
    let main = tokio::time::timeout(
        Duration::from_secs(1),
        http(daemon.addr, "GET", "/healthz", None),
    )
    .await;
    assert!(main.is_err(), "the cap was not full: {main:?}");

    let probe = |path: &'static str| {
        tokio::time::timeout(Duration::from_secs(5), http(probes, "GET", path, None))
    };
    let (code, body) = probe("/healthz")
        .await
        .expect("/healthz on the probe listener");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, _) = probe("/readyz")
        .await
        .expect("/readyz on the probe listener");
    assert!(code == 200 || code == 503, "{code}");
    // Nothing else is served there.
    assert_eq!(probe("/metrics").await.expect("answered").0, 404);
    drop(held);
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
}

/// A visitor held for an app that is not ready when SIGTERM comes gets 503 + Retry-After at
/// the drain deadline, before the grace ends, instead of an empty reply; the wake finishes.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn sigterm_answers_a_held_visitor_503_with_retry_after_before_exit(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, fake) = setup(&opts).await;
    let id = asleep_web(&store, &fake).await;
    // Pods that never start within the test: the visitor stays held.
    fake.set_ready_delay(Duration::from_secs(600));
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut cmd = quiet_daemon(&database_url(&opts, None), &kc);
    cmd.env("IDLE_SCALER_HTTP_DRAIN_SECONDS", "2");
    let mut daemon = Daemon::start(cmd).await;
    let waker = daemon.listener("serving the waker").await;

    let mut visitor = TcpStream::connect(waker).await.expect("connect");
    visitor
        .write_all(
            b"GET /api/orders HTTP/1.1\r\nHost: web.example.com\r\n\
              X-Idle-Scaler-Target: apps/web\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let visitor = tokio::spawn(async move {
        let mut answer = String::new();
        visitor.read_to_string(&mut answer).await.expect("read");
        answer
    });
    eventually(Duration::from_secs(10), "the app scaled up", || async {
        (fake.replicas("apps", "web") == Some(2)).then_some(())
    })
    .await;
    assert!(!visitor.is_finished(), "answered before SIGTERM");
    let signalled = Instant::now();
    daemon.send_sigterm();
    let answer = tokio::time::timeout(Duration::from_secs(20), visitor)
        .await
        .expect("answered before the grace ended")
        .expect("visitor")
        .to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 2\r\n"), "{answer}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "cut before the drain deadline"
    );
    assert_eq!(daemon.wait_for_exit(Duration::from_secs(30)).await, Some(0));
    let row = store.read(id).await.unwrap().unwrap();
    assert_eq!(row.sleep_state, SleepState::Awake, "the wake finished");
}
