//! The binary with the Prometheus activity source configured (issue 7): an unreachable
//! Prometheus sleeps nothing, through the real wiring of `tick` and `plan`.

use idle_scaler_core::SleepState;
use idle_scaler_testkit::host::HostOps;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{database_url, idle_app, job_command, kubeconfig, run_async, setup};

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn an_unreachable_prometheus_sleeps_nothing(_: PgPoolOptions, opts: PgConnectOptions) {
    let (store, fake) = setup(&opts).await;
    let id = idle_app(&store, &fake, "web", 2).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    // Nothing listens on the port once the listener is dropped.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");

    for args in [&["plan"][..], &["tick"][..]] {
        let mut cmd = job_command(args, &database_url(&opts, None), &kc);
        cmd.env("DEPLOY_SCALE_TO_ZERO_ACTIVITY_SOURCE", "prometheus")
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
    // Every candidate was settled before any Kubernetes call. With parking off, the tick
    // lists only idle-scaler's own slices, to unpark what an earlier run left parked.
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.path == "/apis/discovery.k8s.io/v1/endpointslices"),
        "{requests:?}"
    );
}
