//! The reconcile of parking through the binary (a tick every 10 s, a reconcile period of a
//! minute, the shortest the settings allow): an asleep app whose parked slice was deleted by
//! hand is parked again; an app woken by another process (the CLI without parking, as a
//! host's library call would) is unparked once its own endpoints are ready, never before.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::dataplane;
use crate::parking::world::*;
use crate::support::{eventually, job_command, run_async};

/// A reconcile period (1 min) and two ticks (10 s each) of slack, for the machine's load.
const RECONCILE_DEADLINE: Duration = Duration::from_secs(60 + 2 * 10);

const PARKED_PATH: &str =
    "/apis/discovery.k8s.io/v1/namespaces/apps/endpointslices/idle-scaler-web";

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn the_reconcile_parks_again_an_asleep_app_whose_parked_slice_was_deleted_by_hand(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    let mut daemon = w.daemon_reconciling().await;
    let first = w.parked(&mut daemon).await;

    dataplane::delete(&w.fake, PARKED_PATH).await;
    let deleted = Instant::now();
    assert!(w.slice(PARKED).is_none());
    assert!(
        dataplane::endpoints(&w.fake, "apps", "web", "http").is_empty(),
        "without its parked slice the Service has no ready endpoint"
    );

    let again = eventually(RECONCILE_DEADLINE, "web parked again", || async {
        w.slice(PARKED)
    })
    .await;
    assert!(
        deleted.elapsed() <= RECONCILE_DEADLINE,
        "{:?}",
        deleted.elapsed()
    );
    assert_ne!(
        again["metadata"]["uid"], first["metadata"]["uid"],
        "a new slice"
    );
    assert_eq!(
        again["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "idle-scaler"
    );
    assert_eq!(w.fake.replicas("apps", "web"), Some(0), "still asleep");
    assert_eq!(
        dataplane::endpoints(&w.fake, "apps", "web", "http"),
        [format!("127.0.0.1:{}", w.port).parse().expect("addr")],
        "callers go to the parking listener again"
    );
    // And a caller by DNS name wakes the app through it.
    let answer = w
        .call(APPS_POD, "web.apps.svc.cluster.local", "POST", "again")
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}\n{}", daemon.output());
    assert_eq!(answer.body, "app saw POST /orders?id=7 again");
    assert_eq!(w.app.hits.load(Ordering::SeqCst), 1);
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn the_reconcile_unparks_an_app_woken_elsewhere_once_its_own_endpoints_are_ready(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    let mut daemon = w.daemon_reconciling().await;
    w.parked(&mut daemon).await;
    // The woken pods do not become ready until the test says so below.
    w.fake.set_ready_delay(Duration::from_secs(3600));

    // Another process wakes it: the CLI without parking scales up and marks the row awake,
    // and leaves the slices alone (it knows nothing of parking).
    let woke = run_async(job_command(
        &["wake", &w.web.to_string()],
        &w.db,
        &w.kubeconfig.1,
    ))
    .await;
    assert_eq!(woke.code, Some(0), "{}", woke.stderr);
    assert!(woke.stdout.contains("woke_up"), "{}", woke.stdout);
    assert_eq!(w.fake.replicas("apps", "web"), Some(1));
    assert!(w.slice(PARKED).is_some(), "the CLI does not unpark");
    assert!(!w.own_ready());

    // Until the parked slice goes, the app's own endpoints must be ready: callers always
    // have a ready endpoint.
    let watcher = async {
        loop {
            let parked = w.slice(PARKED).is_some();
            assert!(
                parked || w.own_ready(),
                "the parked slice went before the app's own endpoints were ready"
            );
            if !parked {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let steps = async {
        // A reconcile meets the woken app not ready yet, and leaves it parked.
        daemon
            .wait_for_log(
                "the reconcile's unpark found the app's own endpoints not ready",
                RECONCILE_DEADLINE,
            )
            .await;
        assert!(w.slice(PARKED).is_some(), "left parked while not ready");
        // Now the pods come up: readiness made immediate, and a new generation (a second
        // replica) whose pods the fake reports ready at once, with the app's own slice.
        w.fake.set_ready_delay(Duration::ZERO);
        w.fake.scale_externally("apps", "web", 2);
        eventually(DEADLINE, "the app's own endpoints ready", || async {
            w.own_ready().then_some(())
        })
        .await;
        // The next reconcile unparks it.
        eventually(RECONCILE_DEADLINE, "web unparked", || async {
            w.slice(PARKED).is_none().then_some(())
        })
        .await;
    };
    let (watched, ()) = tokio::join!(
        tokio::time::timeout(2 * RECONCILE_DEADLINE + DEADLINE, watcher),
        steps
    );
    watched.expect("the watcher saw the unpark");

    // The line follows the delete: the slice may be seen gone before it is written.
    eventually(DEADLINE, "the daemon's log of the unpark", || async {
        daemon
            .output()
            .contains("unparked an app woken elsewhere")
            .then_some(())
    })
    .await;
    // The data plane sends callers to the app itself now.
    assert_eq!(
        dataplane::endpoints(&w.fake, "apps", "web", "http"),
        [w.app.addr]
    );
    let answer = w
        .call(APPS_POD, "web.apps", "GET", "")
        .await
        .expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "app saw GET /orders?id=7 ");
    assert_eq!(w.app.hits.load(Ordering::SeqCst), 1);
}
