//! The example host end to end: its own migrations, recorder, subscriber and TLS provider,
//! the job beside its queue task against PostgreSQL and the fake API server; a sleep, a wake
//! from host code, a clean shutdown, and the job's metrics scraped from the host's recorder.
//! One test in its own binary: the recorder and the TLS provider are process-wide.

use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use host_worker::Worker;
use idle_scaler_core::job::TickResult;
use idle_scaler_core::reexports::metrics;
use idle_scaler_core::{Outcome, WakeResult};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

#[sqlx::test(migrations = false)]
async fn the_host_sleeps_and_wakes_an_app_and_scrapes_the_jobs_metrics(pool: PgPool) {
    // What the host's main does first.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("the host's TLS provider");
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let scrape = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the host's recorder");

    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 2);
    let figment = Figment::from(Toml::string(&format!(
        "[worker]\nkube_url = \"{}\"\nqueue_poll_ms = 20\n\n\
         [idle_scaler]\nenabled = true\nidle_minutes = 30\n",
        fake.url()
    )));
    let worker = Worker::start(&figment, pool.clone()).await.expect("start");

    // Each migrator keeps to its own table.
    let host: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&pool)
        .await
        .expect("host migrations");
    assert_eq!(host, [20_240_101_000_000]);
    let library: i64 = sqlx::query_scalar("SELECT count(*) FROM _idle_scaler_migrations")
        .fetch_one(&pool)
        .await
        .expect("library migrations");
    assert!(library >= 1);

    // The host's own row, in its own table, idle for two hours.
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO deployments (id, name, provider_id, status, last_activity_at) \
         VALUES ($1, 'web', 'k8s:apps/web', 'healthy', now() - interval '2 hours')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("host row");

    let shutdown = CancellationToken::new();
    let mut running = worker.spawn(shutdown.clone());

    // The loop's first tick runs at once and sleeps the app.
    let first = tokio::time::timeout(DEADLINE, running.ticks.recv())
        .await
        .expect("a tick within the deadline")
        .expect("the loop reports");
    let TickResult::Report(report) = first else {
        panic!("first tick: {first:?}")
    };
    assert_eq!(report.outcome(Outcome::ScaledDown), 1, "{report:?}");
    assert_eq!(fake.replicas("apps", "web"), Some(0));

    // Host code asks for a wake through its own queue; its queue task calls the library.
    sqlx::query("INSERT INTO host_jobs (kind, deployment_id) VALUES ('wake', $1)")
        .bind(id)
        .execute(&pool)
        .await
        .expect("queue a wake");
    let woke = tokio::time::timeout(DEADLINE, running.wakes.recv())
        .await
        .expect("a wake within the deadline")
        .expect("the queue task reports");
    assert_eq!((woke.id, woke.result), (id, WakeResult::WokeUp));
    assert_eq!(fake.replicas("apps", "web"), Some(2));
    let state: String = sqlx::query_scalar("SELECT sleep_state FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!(state, "awake");

    running.shutdown().await.expect("clean shutdown");

    let text = scrape.render();
    for line in [
        "instant_deploy_scaled_to_zero_total{outcome=\"scaled_down\"} 1",
        "instant_deploy_scaled_to_zero_total{outcome=\"woke_up\"} 1",
        "instant_deploy_scaled_to_zero_total{outcome=\"scale_failed\"} 0",
        "instant_deploy_scale_to_zero_ticks_total{result=\"ok\"}",
    ] {
        assert!(text.contains(line), "{line:?} not scraped:\n{text}");
    }
}
