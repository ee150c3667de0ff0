//! The daemon against PostgreSQL and the fake API server.

use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::SleepState;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::Fault;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{
    Daemon, database_url, eventually, http, idle_app, job_command, kubeconfig, setup,
};

const TOKEN: &str = "e2e-wake-token-0123456789";

fn daemon_cmd(db: &str, kubeconfig: &std::path::Path, enabled: bool) -> std::process::Command {
    let mut cmd = job_command(&["run"], db, kubeconfig);
    cmd.env(
        "DEPLOY_SCALE_TO_ZERO_ENABLED",
        if enabled { "true" } else { "false" },
    )
    .env("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "10")
    .env("IDLE_SCALER_WAKE_TOKEN", TOKEN)
    .env("RUST_LOG", "info");
    cmd
}

async fn state(store: &PgStore, id: uuid::Uuid) -> SleepState {
    store
        .read(id)
        .await
        .expect("read")
        .expect("row")
        .sleep_state
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn flag_off_sends_no_request_to_kubernetes(_: PgPoolOptions, opts: PgConnectOptions) {
    let (store, fake) = setup(&opts).await;
    let id = idle_app(&store, &fake, "web", 2).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut daemon = Daemon::start(daemon_cmd(&database_url(&opts, None), &kc, false)).await;
    // The first tick runs at start; readiness turns green once it has.
    eventually(Duration::from_secs(20), "/readyz", || async {
        (http(daemon.addr, "GET", "/readyz", None).await.0 == 200).then_some(())
    })
    .await;
    let (code, metrics) = http(daemon.addr, "GET", "/metrics", None).await;
    assert_eq!(code, 200);
    for outcome in ["scaled_down", "woke_up", "wake_failed", "scale_failed"] {
        let series = format!("instant_deploy_scaled_to_zero_total{{outcome=\"{outcome}\"}} 0");
        assert!(
            metrics.contains(&series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    assert!(
        fake.requests().is_empty(),
        "requests: {:?}",
        fake.requests()
    );
    assert_eq!(state(&store, id).await, SleepState::Awake);
    assert_eq!(fake.replicas("apps", "web"), Some(2));
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn idle_app_is_slept_and_an_http_wake_restores_the_exact_count(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, fake) = setup(&opts).await;
    fake.create_deployment("apps", "web", 3);
    fake.create_deployment("apps", "busy", 2);
    let idle = store
        .insert(NewDeployment::k8s(
            "apps",
            "web",
            Utc::now() - chrono::Duration::hours(3),
        ))
        .await
        .unwrap();
    let busy = store
        .insert(NewDeployment::k8s(
            "apps",
            "busy",
            Utc::now() - chrono::Duration::minutes(1),
        ))
        .await
        .unwrap();
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut daemon = Daemon::start(daemon_cmd(&database_url(&opts, None), &kc, true)).await;

    eventually(Duration::from_secs(20), "the idle app asleep", || async {
        (state(&store, idle).await == SleepState::Asleep).then_some(())
    })
    .await;
    assert_eq!(fake.replicas("apps", "web"), Some(0));
    assert_eq!(
        store
            .read(idle)
            .await
            .unwrap()
            .unwrap()
            .replicas_before_sleep,
        Some(3)
    );
    assert_eq!(state(&store, busy).await, SleepState::Awake);
    assert_eq!(fake.replicas("apps", "busy"), Some(2));
    // The tick samples the gauges after its sleeps: the 3 replicas web ran are saved.
    let addr = daemon.addr;
    eventually(
        Duration::from_secs(20),
        "replicas asleep = 3",
        || async move {
            let (_, metrics) = http(addr, "GET", "/metrics", None).await;
            metrics
                .contains("instant_deploy_scale_to_zero_replicas_asleep 3")
                .then_some(())
        },
    )
    .await;

    let path = format!("/v1/deployments/{idle}/wake");
    assert_eq!(http(daemon.addr, "POST", &path, None).await.0, 401);
    assert_eq!(
        http(daemon.addr, "POST", &path, Some("wrong-token-wrong-token"))
            .await
            .0,
        401
    );
    let unknown = format!("/v1/deployments/{}/wake", uuid::Uuid::new_v4());
    assert_eq!(
        http(daemon.addr, "POST", &unknown, Some(TOKEN)).await.0,
        404
    );
    assert_eq!(
        fake.replicas("apps", "web"),
        Some(0),
        "a refused wake must not scale"
    );

    let (code, body) = http(daemon.addr, "POST", &path, Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["result"], "woke_up");
    assert_eq!(v["replicas"], 3);
    assert_eq!(fake.replicas("apps", "web"), Some(3));
    let row = store.read(idle).await.unwrap().unwrap();
    assert_eq!(row.sleep_state, SleepState::Awake);
    assert!(row.last_activity_at > Utc::now() - chrono::Duration::minutes(1));

    let (_, metrics) = http(daemon.addr, "GET", "/metrics", None).await;
    assert!(
        metrics.contains("instant_deploy_scaled_to_zero_total{outcome=\"scaled_down\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("instant_deploy_scaled_to_zero_total{outcome=\"woke_up\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("instant_deploy_idle_apps 0"), "{metrics}");
    assert!(
        metrics.contains("instant_deploy_scale_to_zero_replicas_asleep 0"),
        "{metrics}"
    );
    // Real histograms (buckets), so the dashboard's histogram_quantile works across instances.
    for h in [
        "tick_duration_seconds_bucket",
        "wake_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(&format!("instant_deploy_scale_to_zero_{h}")),
            "{metrics}"
        );
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn sigterm_during_a_slow_transition_exits_cleanly_and_leaves_nothing_sleeping(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, fake) = setup(&opts).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(idle_app(&store, &fake, &format!("web-{i}"), 2).await);
    }
    // Each Kubernetes request takes 1.5 s, so SIGTERM lands mid-transition.
    fake.set_latency(Duration::from_millis(1500));
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut cmd = daemon_cmd(&database_url(&opts, None), &kc, true);
    cmd.env("DEPLOY_SCALE_TO_ZERO_CONCURRENCY", "1");
    let mut daemon = Daemon::start(cmd).await;
    eventually(Duration::from_secs(20), "a sleep intent", || async {
        let rows = store.rows().await.unwrap();
        rows.iter()
            .any(|r| r.sleep_state == SleepState::Sleeping)
            .then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    assert!(started.elapsed() < Duration::from_secs(30));
    fake.set_latency(Duration::ZERO);

    // In-flight transitions finished; none left half-done, and apps match their rows.
    for id in &ids {
        let row = store.read(*id).await.unwrap().unwrap();
        assert_ne!(row.sleep_state, SleepState::Sleeping, "{row:?}");
    }
    assert!(
        ids.len()
            > store
                .rows()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.sleep_state == SleepState::Asleep)
                .count(),
        "shutdown should have stopped the tick before every app was slept"
    );

    // The next start (one tick) finds nothing to recover and keeps rows and apps agreeing.
    let tick = job_command(&["tick"], &database_url(&opts, None), &kc);
    let out = crate::support::run_async(tick).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    for (i, id) in ids.iter().enumerate() {
        let row = store.read(*id).await.unwrap().unwrap();
        let replicas = fake.replicas("apps", &format!("web-{i}")).unwrap();
        assert_eq!(row.sleep_state, SleepState::Asleep);
        assert_eq!(replicas, 0, "{row:?}");
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn kubernetes_unreachable_is_fail_open(_: PgPoolOptions, opts: PgConnectOptions) {
    let (store, fake) = setup(&opts).await;
    let id = idle_app(&store, &fake, "web", 1).await;
    fake.inject(Fault::drop_connection().times(1000));
    let (_dir, kc) = kubeconfig(&fake.url());
    let cmd = job_command(&["tick"], &database_url(&opts, None), &kc);
    let out = crate::support::run_async(cmd).await;
    // The scale read fails: counted as a failure, the row untouched, the process fine.
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("scale_failed=1"), "{}", out.stdout);
    assert_eq!(state(&store, id).await, SleepState::Awake);

    // No kubeconfig at all: a WARN, exit 0, no database writes.
    let no_config = std::path::Path::new("/nonexistent/kubeconfig");
    let cmd = job_command(&["tick"], &database_url(&opts, None), no_config);
    let out = crate::support::run_async(cmd).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("no Kubernetes client"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("WARN"), "{}", out.stderr);
    assert_eq!(state(&store, id).await, SleepState::Awake);
}

/// `/readyz` is unauthenticated: a failing database is a fixed text there, the cause is logged.
#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn readyz_names_no_database_detail_and_logs_the_cause(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (_store, fake) = setup(&opts).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut daemon = Daemon::start(daemon_cmd(&database_url(&opts, None), &kc, true)).await;
    eventually(Duration::from_secs(20), "/readyz", || async {
        (http(daemon.addr, "GET", "/readyz", None).await.0 == 200).then_some(())
    })
    .await;
    let admin = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .expect("connect");
    sqlx::query("ALTER TABLE deployments RENAME TO deployments_away")
        .execute(&admin)
        .await
        .expect("rename");
    let (code, body) = http(daemon.addr, "GET", "/readyz", None).await;
    assert_eq!(code, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"ready": false, "reason": "database unreachable"})
    );
    let logged = daemon
        .wait_for_log(
            "readiness: the database did not answer",
            Duration::from_secs(10),
        )
        .await;
    assert!(
        logged.contains("deployments"),
        "the cause is logged: {logged}"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
}
