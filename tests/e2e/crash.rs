//! `kill -9` of the daemon in the middle of putting apps to sleep, then a restart: after the
//! restarted daemon's first tick no app is at 0 replicas under an `awake` row and no row is
//! left `sleeping` (invariant 3 of docs/architecture.md; the stale-intent recovery of the tick).

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::SleepState;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::{FakeApiServer, Fault};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{Daemon, command, database_url, eventually, kubeconfig};

const APPS: usize = 8;

fn daemon_cmd(db: &str, kubeconfig: &std::path::Path) -> std::process::Command {
    let mut cmd = command(&["run"]);
    cmd.env("DATABASE_URL", db)
        .env("KUBECONFIG", kubeconfig)
        .env("DEPLOY_SCALE_TO_ZERO_ENABLED", "true")
        .env("DEPLOY_SCALE_TO_ZERO_INTERVAL_SECONDS", "10")
        // Longer than the injected latency: the scale-downs are in flight, not timed out,
        // when the process dies.
        .env("DEPLOY_SCALE_TO_ZERO_REQUEST_TIMEOUT_SECONDS", "50")
        .env("RUST_LOG", "info");
    cmd
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn kill_9_mid_transition_then_restart_leaves_nothing_half_done(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .connect_with(opts.clone())
        .await
        .expect("connect");
    let store = PgStore::from_pool(pool.clone());
    let fake = FakeApiServer::start().await;
    let long_ago = Utc::now() - chrono::Duration::hours(3);
    for i in 0..APPS {
        let name = format!("app-{i}");
        fake.create_deployment("apps", &name, 2);
        store
            .insert(NewDeployment::k8s("apps", &name, long_ago))
            .await
            .expect("insert");
    }
    // Widen the window: every scale-down sits in the "apiserver" for a while. Some will be
    // applied after the process is gone, some never (their connection dies with it).
    fake.inject(
        Fault::latency(Duration::from_secs(2))
            .on_method("PATCH")
            .times(usize::MAX),
    );
    let (_dir, kc) = kubeconfig(&fake.url());
    let db = database_url(&opts, None);

    let daemon = Daemon::start(daemon_cmd(&db, &kc)).await;
    // In flight: intents recorded in the database and scale-downs held by the fake.
    eventually(Duration::from_secs(30), "a sleep in flight", || async {
        let sleeping = store
            .rows()
            .await
            .expect("rows")
            .iter()
            .any(|r| r.sleep_state == SleepState::Sleeping);
        (sleeping && fake.in_flight() > 0).then_some(())
    })
    .await;
    let status = Command::new("kill")
        .args(["-KILL", &daemon.pid().to_string()])
        .status()
        .expect("kill -9");
    assert!(status.success());
    drop(daemon); // reaps the killed process

    // The "apiserver" finishes or abandons what it held; then no more scale-downs are slow.
    fake.clear_faults();
    eventually(Duration::from_secs(10), "the fake to go quiet", || async {
        (fake.in_flight() == 0).then_some(())
    })
    .await;
    let rows = store.rows().await.expect("rows");
    let left_sleeping = rows
        .iter()
        .filter(|r| r.sleep_state == SleepState::Sleeping)
        .count();
    assert!(left_sleeping > 0, "the kill left no intent: {rows:?}");
    // The fake cancels a delayed request when its client's connection dies, so no held
    // scale-down was applied. A process can also die between a scale-down's answer and its
    // confirm (too narrow a window to hit with a signal): for every other intent, apply the
    // scale-down the dead process had sent, so recovery meets both kinds of leftover.
    let mut at_zero = 0;
    for r in rows
        .iter()
        .filter(|r| r.sleep_state == SleepState::Sleeping)
        .step_by(2)
    {
        let name = r.provider_id.trim_start_matches("k8s:apps/");
        fake.scale_externally("apps", name, 0);
        at_zero += 1;
    }
    eprintln!("crash: {left_sleeping} intents left by kill -9, {at_zero} of them at 0");

    // Simulated elapsed time: recovery treats an intent as a crash leftover only once it is
    // older than STALE_INTENT_AFTER (5 minutes of the job's clock, here the wall clock).
    // Moving the intents back is what waiting 5 minutes would do, without the wait.
    sqlx::query(
        "UPDATE deployments SET sleep_state_changed_at = sleep_state_changed_at - interval '6 minutes' \
         WHERE sleep_state = 'sleeping'",
    )
    .execute(&pool)
    .await
    .expect("age the intents");

    let mut daemon = Daemon::start(daemon_cmd(&db, &kc)).await;
    // One tick: it recovers the leftovers (and sleeps whatever is still idle).
    daemon
        .wait_for_log("\"tick done\"", Duration::from_secs(30))
        .await;
    let rows = store.rows().await.expect("rows");
    for row in &rows {
        assert_ne!(row.sleep_state, SleepState::Sleeping, "{row:?}");
        let name = row.provider_id.trim_start_matches("k8s:apps/");
        let replicas = fake.replicas("apps", name).expect("deployment");
        if row.sleep_state == SleepState::Awake {
            assert!(replicas > 0, "{name} at 0 with its row awake");
        }
    }
    let recovered: Vec<String> = daemon
        .output()
        .lines()
        .filter(|l| l.contains("stale sleep intent recovered"))
        .map(str::to_owned)
        .collect();
    eprintln!("crash: recovery after restart:\n{}", recovered.join("\n"));
    assert_eq!(recovered.len(), left_sleeping, "{}", daemon.output());
    for result in ["\"result\":\"asleep\"", "\"result\":\"awake\""] {
        assert!(
            recovered.iter().any(|l| l.contains(result)),
            "{recovered:?}"
        );
    }
    assert_eq!(daemon.terminate(Duration::from_secs(30)).await, Some(0));
    pool.close().await;
}
