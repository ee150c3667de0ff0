//! Several clusters over real HTTP: one kubeconfig whose contexts point at two fake API
//! servers, and one job serving both that fails open per cluster.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration as Age, TimeZone, Utc};
use idle_scaler_core::{ClusterConfig, ClusterName, Config, Outcome, Scaler, SleepState, Store};
use idle_scaler_kube::{Error, KubeClusters, KubeScaler};
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;

use super::*;

/// A kubeconfig file with one context per `(name, server URL)`, no credentials (the fakes
/// speak plain HTTP), removed when dropped.
struct Kubeconfig(PathBuf);

impl Kubeconfig {
    fn write(contexts: &[(&str, String)]) -> Self {
        let mut yaml = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (name, url) in contexts {
            yaml += &format!("- name: {name}\n  cluster:\n    server: {url}\n");
        }
        yaml += "users:\n- name: nobody\n  user: {}\ncontexts:\n";
        for (name, _) in contexts {
            yaml += &format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: nobody\n    namespace: default\n"
            );
        }
        yaml += &format!("current-context: {}\n", contexts[0].0);
        let path =
            std::env::temp_dir().join(format!("idle-scaler-{}.kubeconfig", uuid::Uuid::new_v4()));
        std::fs::write(&path, yaml).expect("writing the kubeconfig");
        Self(path)
    }
}

impl Drop for Kubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn cluster(name: &str) -> ClusterName {
    ClusterName::new(name).expect("a valid cluster name")
}

#[tokio::test]
async fn a_kubeconfig_with_two_contexts_gives_two_working_scalers() {
    let east = FakeApiServer::start().await;
    east.create_deployment("apps", "web", 2);
    let west = FakeApiServer::start().await;
    west.create_deployment("apps", "web", 5);
    let file = Kubeconfig::write(&[("east", east.url()), ("west", west.url())]);

    let scaler = |ctx: &'static str| {
        let path = file.0.clone();
        async move {
            KubeScaler::from_kubeconfig(ctx, Some(&path), Some(ctx), TIMEOUT)
                .await
                .expect("a scaler from the context")
        }
    };
    let (to_east, to_west) = (scaler("east").await, scaler("west").await);
    assert_eq!(to_east.get_scale(&web()).await.expect("east").replicas, 2);
    assert_eq!(to_west.get_scale(&web()).await.expect("west").replicas, 5);
    to_west
        .set_replicas(&web(), 0, None)
        .await
        .expect("scale west");
    assert_eq!(west.replicas("apps", "web"), Some(0));
    assert_eq!(east.replicas("apps", "web"), Some(2), "east untouched");

    // Without a context: the file's current context (east, the first).
    let current = KubeScaler::from_kubeconfig("east", Some(&file.0), None, TIMEOUT)
        .await
        .expect("current context");
    assert_eq!(current.get_scale(&web()).await.expect("east").replicas, 2);

    // A context the file does not have: an error naming the cluster, the file and the context.
    let e = KubeScaler::from_kubeconfig("north", Some(&file.0), Some("north-ctx"), TIMEOUT)
        .await
        .expect_err("no such context");
    assert!(matches!(e, Error::Kubeconfig { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("cluster north"), "{text}");
    assert!(text.contains("north-ctx"), "{text}");
    assert!(text.contains(&file.0.display().to_string()), "{text}");
    // A file that does not exist: the same, and the job would fail open on it.
    let missing = PathBuf::from("/nonexistent/idle-scaler.kubeconfig");
    let e = KubeScaler::from_kubeconfig("north", Some(&missing), None, TIMEOUT)
        .await
        .expect_err("no such file");
    assert!(
        e.to_string()
            .contains("/nonexistent/idle-scaler.kubeconfig"),
        "{e}"
    );
}

/// One instance serves east and west (not the default cluster). Both clusters' idle apps
/// sleep; a third cluster's rows in the table are never touched; then east's API goes away
/// and west's apps still sleep while east's rows are left as they are.
#[tokio::test]
async fn one_job_serves_two_clusters_and_one_unreachable_cluster_stops_nothing_else() {
    let east = FakeApiServer::start().await;
    let west = FakeApiServer::start().await;
    for fake in [&east, &west] {
        fake.create_deployment("apps", "web", 2);
        fake.create_deployment("apps", "api", 3);
    }
    let file = Kubeconfig::write(&[("east-admin", east.url()), ("west-admin", west.url())]);
    let mut config = Config {
        enabled: true,
        default_cluster: false,
        ..Config::default()
    };
    for name in ["east", "west"] {
        config.clusters.insert(
            cluster(name),
            ClusterConfig {
                kubeconfig: Some(file.0.clone()),
                context: Some(format!("{name}-admin")),
            },
        );
    }
    let now = Utc
        .with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("time");
    let clock = ManualClock::new(now);
    let store = MemoryStore::new();
    let idle = now - Age::hours(2);
    let insert = |id: &str| {
        let store = store.clone();
        let id = id.to_owned();
        async move {
            store
                .insert(NewDeployment::new(id, idle))
                .await
                .expect("insert")
        }
    };
    let east_web = insert("k8s@east:apps/web").await;
    let west_web = insert("k8s@west:apps/web").await;
    let north_web = insert("k8s@north:apps/web").await;
    let home_web = insert("k8s:apps/web").await;

    let job = KubeClusters::from_config(&config)
        .job_builder(config.clone(), Arc::new(store.clone()))
        .clock(Arc::new(clock.clone()))
        .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 2, "{report:?}");
    assert!(report.clusters_unreachable.is_empty(), "{report:?}");
    assert_eq!(east.replicas("apps", "web"), Some(0));
    assert_eq!(west.replicas("apps", "web"), Some(0));
    for id in [east_web, west_web] {
        let row = store.get(id).await.expect("get").expect("row");
        assert_eq!(row.sleep_state, SleepState::Asleep);
    }
    // Rows of clusters this instance does not serve never left the store.
    for id in [north_web, home_web] {
        let row = store.get(id).await.expect("get").expect("row");
        assert_eq!(row.sleep_state, SleepState::Awake);
    }
    assert_eq!(east.replicas("apps", "api"), Some(3), "api is not idle yet");

    // East's API goes away; the api apps of both clusters become idle.
    let east_api = insert("k8s@east:apps/api").await;
    let west_api = insert("k8s@west:apps/api").await;
    east.shutdown().await;
    clock.advance(Age::minutes(5));
    let report = job
        .tick()
        .await
        .expect("a dead cluster never fails the tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1, "{report:?}");
    assert_eq!(report.clusters_unreachable, ["east"], "{report:?}");
    assert!(!report.no_scaler);
    assert_eq!(west.replicas("apps", "api"), Some(0));
    let row = store.get(west_api).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Asleep);
    let row = store.get(east_api).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Awake, "left as it was");

    // A backlog of east's rows, idle for longer than anything of west's, cannot take every
    // slot of a small tick while east is down: west's next idle app still sleeps.
    for i in 0..5 {
        store
            .insert(NewDeployment::new(
                format!("k8s@east:apps/old{i}"),
                now - Age::hours(10),
            ))
            .await
            .expect("insert");
    }
    west.create_deployment("apps", "late", 1);
    let west_late = insert("k8s@west:apps/late").await;
    let small = Config {
        max_per_tick: 2,
        ..config
    };
    let job = KubeClusters::from_config(&small)
        .job_builder(small, Arc::new(store.clone()))
        .clock(Arc::new(clock.clone()))
        .build();
    clock.advance(Age::minutes(5));
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1, "{report:?}");
    assert_eq!(west.replicas("apps", "late"), Some(0));
    let row = store.get(west_late).await.expect("get").expect("row");
    assert_eq!(row.sleep_state, SleepState::Asleep);
}
