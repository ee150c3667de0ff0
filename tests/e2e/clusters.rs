//! Several clusters through the binary: the default cluster from `KUBECONFIG`, east from its own
//! kubeconfig named in `DEPLOY_SCALE_TO_ZERO_CLUSTERS`, rows of a third cluster in the table.

use chrono::Utc;
use idle_scaler_core::{SleepState, Store};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{database_url, job_command, kubeconfig, run_async, setup};

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn one_tick_sleeps_both_clusters_and_a_broken_cluster_stops_only_itself(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, home) = setup(&opts).await;
    let east = FakeApiServer::start().await;
    let idle = Utc::now() - chrono::Duration::hours(3);
    let mut ids = Vec::new();
    for (fake, id) in [(&home, "k8s:apps/web"), (&east, "k8s@east:apps/web")] {
        fake.create_deployment("apps", "web", 2);
        ids.push(
            store
                .insert(NewDeployment::new(id, idle))
                .await
                .expect("insert"),
        );
    }
    let north = store
        .insert(NewDeployment::new("k8s@north:apps/web", idle))
        .await
        .expect("insert");
    let (_home_dir, home_kc) = kubeconfig(&home.url());
    let (_east_dir, east_kc) = kubeconfig(&east.url());
    let db = database_url(&opts, None);

    let mut cmd = job_command(&["tick"], &db, &home_kc);
    cmd.env(
        "DEPLOY_SCALE_TO_ZERO_CLUSTERS",
        format!("east={}", east_kc.display()),
    );
    let out = run_async(cmd).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("scaled_down=2"), "{}", out.stdout);
    assert_eq!(home.replicas("apps", "web"), Some(0));
    assert_eq!(east.replicas("apps", "web"), Some(0));
    for id in &ids {
        let row = store.get(*id).await.expect("get").expect("row");
        assert_eq!(row.sleep_state, SleepState::Asleep);
    }
    let row = store.get(north).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Awake, "north is not served");

    // A wake of north's app is another instance's: refused, nothing changed.
    let mut cmd = job_command(&["wake", &north.to_string()], &db, &home_kc);
    cmd.env(
        "DEPLOY_SCALE_TO_ZERO_CLUSTERS",
        format!("east={}", east_kc.display()),
    );
    let out = run_async(cmd).await;
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("in cluster north, which this instance does not serve"),
        "{}",
        out.stderr
    );

    // East's kubeconfig names a context it does not have: east fails open alone.
    home.create_deployment("apps", "api", 1);
    east.create_deployment("apps", "api", 1);
    let api_home = store
        .insert(NewDeployment::new("k8s:apps/api", idle))
        .await
        .expect("insert");
    let api_east = store
        .insert(NewDeployment::new("k8s@east:apps/api", idle))
        .await
        .expect("insert");
    let mut cmd = job_command(&["tick"], &db, &home_kc);
    cmd.env(
        "DEPLOY_SCALE_TO_ZERO_CLUSTERS",
        format!("east={}#no-such-context", east_kc.display()),
    );
    let out = run_async(cmd).await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("scaled_down=1"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("clusters unreachable (their apps left alone): east"),
        "{}",
        out.stdout
    );
    let warn = out
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("no Kubernetes client for this cluster"))
        .unwrap_or_else(|| panic!("a WARN naming the cluster:\n{}", out.stderr));
    assert!(
        warn.contains("east") && warn.contains("no-such-context"),
        "{warn}"
    );
    assert_eq!(home.replicas("apps", "api"), Some(0));
    assert_eq!(east.replicas("apps", "api"), Some(1), "east left alone");
    let row = store.get(api_home).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Asleep);
    let row = store.get(api_east).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Awake);

    // East's API server goes away: one WARN names east, the default cluster's app still sleeps.
    home.create_deployment("apps", "db", 1);
    let db_home = store
        .insert(NewDeployment::new("k8s:apps/db", idle))
        .await
        .expect("insert");
    east.shutdown().await;
    let mut cmd = job_command(&["tick"], &db, &home_kc);
    cmd.env(
        "DEPLOY_SCALE_TO_ZERO_CLUSTERS",
        format!("east={}", east_kc.display()),
    );
    let out = run_async(cmd).await;
    // East's read failed: a scale failure, so `tick` exits 1, as it does for any.
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("scaled_down=1"), "{}", out.stdout);
    let warns: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("Kubernetes API did not answer"))
        .collect();
    assert_eq!(warns.len(), 1, "{}", out.stderr);
    assert!(warns[0].contains("east"), "{}", warns[0]);
    assert_eq!(home.replicas("apps", "db"), Some(0));
    let row = store.get(db_home).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Asleep);
    let row = store.get(api_east).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Awake, "left as it was");
}

#[test]
fn a_bad_clusters_entry_is_a_startup_error_naming_it() {
    let mut cmd = crate::support::command(&["config"]);
    cmd.env("DEPLOY_SCALE_TO_ZERO_CLUSTERS", "east=/k.yaml,West=/w.yaml");
    let out = crate::support::run(cmd);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("DEPLOY_SCALE_TO_ZERO_CLUSTERS"),
        "{}",
        out.stderr
    );
    assert!(first.contains("\"West=/w.yaml\""), "{}", out.stderr);
}
