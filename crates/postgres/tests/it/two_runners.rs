//! Two job instances with separate pools on one database, ticking at the same time over the
//! same 200 idle apps: each app is slept exactly once and nothing is left half-done.

use idle_scaler_core::ServedClusters;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use idle_scaler_core::{
    Config, Error, FixedScalerFactory, Job, Outcome, Result, Scale, Scaler, SleepState, Store,
    SystemClock, Target,
};
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const APPS: usize = 200;
const REPLICAS: i32 = 3;

/// One cluster shared by both runners: replicas and a resourceVersion per Deployment, with the
/// API server's compare-and-set on `resourceVersion`, and every write recorded.
#[derive(Default)]
struct RecordingScaler {
    deployments: Mutex<HashMap<Target, (i32, u64)>>,
    writes: Mutex<Vec<(Target, i32)>>,
}

impl RecordingScaler {
    fn writes(&self) -> Vec<(Target, i32)> {
        self.writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Scaler for RecordingScaler {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        let deployments = self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (replicas, version) = deployments
            .get(target)
            .ok_or_else(|| Error::not_found(target.to_string()))?;
        Ok(Scale {
            replicas: *replicas,
            resource_version: version.to_string(),
        })
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        let mut deployments = self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (current, version) = deployments
            .get_mut(target)
            .ok_or_else(|| Error::not_found(target.to_string()))?;
        if resource_version.is_some_and(|rv| rv != version.to_string()) {
            return Err(Error::conflict(target.to_string()));
        }
        *current = replicas;
        *version += 1;
        self.writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((target.clone(), replicas));
        Ok(())
    }
}

fn job(store: PgStore, scaler: &Arc<RecordingScaler>) -> Job {
    let config = Config {
        enabled: true,
        max_per_tick: 500,
        concurrency: 4,
        ..Config::default()
    };
    Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(scaler.clone())),
    )
    .clock(Arc::new(SystemClock))
    .build()
}

/// Two separate pools on the test's database: two instances.
async fn two_pools(options: PgPoolOptions, connect: PgConnectOptions) -> (PgPool, PgPool) {
    let a = options
        .clone()
        .connect_with(connect.clone())
        .await
        .expect("pool a");
    let b = options.connect_with(connect).await.expect("pool b");
    (a, b)
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn two_runners_sleep_each_app_exactly_once(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (pool_a, pool_b) = two_pools(pool_options, connect).await;
    let (store_a, store_b) = (
        PgStore::from_pool(pool_a.clone()),
        PgStore::from_pool(pool_b.clone()),
    );

    let scaler = Arc::new(RecordingScaler::default());
    let long_ago = Utc::now() - Duration::hours(3);
    for i in 0..APPS {
        let name = format!("app-{i:03}");
        store_a
            .insert(NewDeployment::k8s("apps", &name, long_ago))
            .await
            .expect("insert");
        scaler
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                Target {
                    cluster: None,
                    namespace: "apps".into(),
                    name,
                },
                (REPLICAS, 1),
            );
    }

    let (a, b) = (job(store_a.clone(), &scaler), job(store_b, &scaler));
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let (ra, rb) = (ra.expect("tick a"), rb.expect("tick b"));

    let slept = ra.outcome(Outcome::ScaledDown) + rb.outcome(Outcome::ScaledDown);
    assert_eq!(slept, APPS as u64, "a: {ra:?}\nb: {rb:?}");
    assert_eq!(
        ra.outcome(Outcome::ScaleFailed) + rb.outcome(Outcome::ScaleFailed),
        0
    );

    // Each Deployment set to 0 exactly once, and nothing else written.
    let writes = scaler.writes();
    assert_eq!(writes.len(), APPS, "{writes:?}");
    let mut per_target: HashMap<&Target, usize> = HashMap::new();
    for (target, replicas) in &writes {
        assert_eq!(*replicas, 0, "unexpected write {target}={replicas}");
        *per_target.entry(target).or_default() += 1;
    }
    assert_eq!(per_target.len(), APPS);
    assert!(per_target.values().all(|n| *n == 1));

    // Every row asleep with its restore count; none left `sleeping`.
    let rows = store_a.rows().await.expect("rows");
    assert_eq!(rows.len(), APPS);
    for row in &rows {
        assert_eq!(row.sleep_state, SleepState::Asleep, "{row:?}");
        assert_eq!(row.replicas_before_sleep, Some(REPLICAS));
    }
    assert_eq!(store_a.count_asleep().await.expect("count"), APPS as i64);
    assert!(
        store_a
            .stale_intents(&ServedClusters::default(), Utc::now() + Duration::days(1))
            .await
            .expect("stale")
            .is_empty()
    );

    pool_a.close().await;
    pool_b.close().await;
}

/// One job's view of the shared clusters: its writes are recorded under its name.
struct Runner {
    shared: Arc<RecordingScaler>,
    wrote: Mutex<Vec<Target>>,
}

#[async_trait]
impl Scaler for Runner {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        self.shared.get_scale(target).await
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        self.shared
            .set_replicas(target, replicas, resource_version)
            .await?;
        self.wrote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target.clone());
        Ok(())
    }
}

fn cluster(name: &str) -> idle_scaler_core::ClusterName {
    idle_scaler_core::ClusterName::new(name).expect("a cluster name")
}

/// A job serving `default` (the default cluster or not) and the named `clusters`, each
/// reached through `runner`.
fn serving(store: PgStore, runner: &Arc<Runner>, default: bool, clusters: &[&str]) -> Job {
    let config = Config {
        enabled: true,
        max_per_tick: 500,
        concurrency: 4,
        default_cluster: default,
        clusters: clusters
            .iter()
            .map(|c| {
                // Never read: the job is handed its scaler factory for each cluster.
                let settings = idle_scaler_core::ClusterConfig {
                    kubeconfig: None,
                    context: Some((*c).to_owned()),
                };
                (cluster(c), settings)
            })
            .collect(),
        ..Config::default()
    };
    let source = Arc::new(FixedScalerFactory(runner.clone()));
    let builder =
        Job::builder(config, Arc::new(store), source.clone()).clock(Arc::new(SystemClock));
    clusters
        .iter()
        .fold(builder, |b, c| b.cluster(cluster(c), source.clone()))
        .build()
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn two_runners_with_overlapping_clusters_sleep_each_app_once_and_only_their_own(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    const PER_CLUSTER: usize = 60;
    let (pool_a, pool_b) = two_pools(pool_options, connect).await;
    let (store_a, store_b) = (
        PgStore::from_pool(pool_a.clone()),
        PgStore::from_pool(pool_b.clone()),
    );
    let shared = Arc::new(RecordingScaler::default());
    let long_ago = Utc::now() - Duration::hours(3);
    for (scheme, name) in [
        ("k8s", None),
        ("k8s@east", Some("east")),
        ("k8s@west", Some("west")),
    ] {
        for i in 0..PER_CLUSTER {
            let app = format!("app-{i:03}");
            store_a
                .insert(NewDeployment::new(format!("{scheme}:apps/{app}"), long_ago))
                .await
                .expect("insert");
            shared
                .deployments
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    Target {
                        cluster: name.map(cluster),
                        namespace: "apps".into(),
                        name: app,
                    },
                    (REPLICAS, 1),
                );
        }
    }
    let runner = || {
        Arc::new(Runner {
            shared: shared.clone(),
            wrote: Mutex::default(),
        })
    };
    let (runner_a, runner_b) = (runner(), runner());
    // A serves the default cluster and east; B serves east and west.
    let a = serving(store_a.clone(), &runner_a, true, &["east"]);
    let b = serving(store_b, &runner_b, false, &["east", "west"]);
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let (ra, rb) = (ra.expect("tick a"), rb.expect("tick b"));

    let slept = ra.outcome(Outcome::ScaledDown) + rb.outcome(Outcome::ScaledDown);
    assert_eq!(slept, 3 * PER_CLUSTER as u64, "a: {ra:?}\nb: {rb:?}");
    let wrote = |r: &Runner| {
        r.wrote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    let (by_a, by_b) = (wrote(&runner_a), wrote(&runner_b));
    let named = |t: &Target| t.cluster.as_ref().map(ToString::to_string);
    assert!(
        by_a.iter().all(|t| named(t).as_deref() != Some("west")),
        "A wrote to a cluster it does not serve"
    );
    assert!(
        by_b.iter().all(|t| t.cluster.is_some()),
        "B wrote to the default cluster, which it does not serve"
    );
    // Each Deployment of the three clusters written once, to 0, by one of them.
    let writes = shared.writes();
    assert_eq!(writes.len(), 3 * PER_CLUSTER, "{writes:?}");
    assert!(writes.iter().all(|(_, replicas)| *replicas == 0));
    let distinct: std::collections::HashSet<&Target> = writes.iter().map(|(t, _)| t).collect();
    assert_eq!(distinct.len(), 3 * PER_CLUSTER);
    assert_eq!(by_a.len() + by_b.len(), 3 * PER_CLUSTER);

    let rows = store_a.rows().await.expect("rows");
    for row in &rows {
        assert_eq!(row.sleep_state, SleepState::Asleep, "{row:?}");
        assert_eq!(row.replicas_before_sleep, Some(REPLICAS));
    }
    pool_a.close().await;
    pool_b.close().await;
}
