//! The binary with the Prometheus activity source configured (issue 7): an unreachable
//! Prometheus sleeps nothing, through the real wiring of `tick` and `plan`.

use chrono::Utc;
use idle_scaler_core::SleepState;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{command, database_url, kubeconfig, run_async};

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn an_unreachable_prometheus_sleeps_nothing(_: PgPoolOptions, opts: PgConnectOptions) {
    let pool = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .expect("connect");
    let store = PgStore::from_pool(pool);
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 2);
    let id = store
        .insert(NewDeployment::k8s(
            "apps",
            "web",
            Utc::now() - chrono::Duration::hours(3),
        ))
        .await
        .expect("insert");
    let (_dir, kc) = kubeconfig(&fake.url());
    // Nothing listens on the port once the listener is dropped.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");

    for args in [&["plan"][..], &["tick"][..]] {
        let mut cmd = command(args);
        cmd.env("DATABASE_URL", database_url(&opts, None))
            .env("KUBECONFIG", &kc)
            .env("DEPLOY_SCALE_TO_ZERO_ENABLED", "true")
            .env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus")
            .env(
                "DEPLOY_SCALE_TO_ZERO_PROMETHEUS_URL",
                format!("http://{dead}"),
            )
            .env("DEPLOY_SCALE_TO_ZERO_PROMETHEUS_TIMEOUT_SECONDS", "2");
        let out = run_async(cmd).await;
        assert_eq!(
            out.code,
            Some(0),
            "{args:?}\n{}\n{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.contains("skipped activity_unknown=1"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(
            out.stderr.contains("activity source failed") && out.stderr.contains(&dead.to_string()),
            "{args:?}: {}",
            out.stderr
        );
    }
    let row = store.read(id).await.expect("read").expect("row");
    assert_eq!(row.sleep_state, SleepState::Awake);
    assert_eq!(fake.replicas("apps", "web"), Some(2));
    // Every candidate was settled before any Kubernetes call.
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}
