//! The job parks and unparks through the in-memory Parker, over the in-memory store and a
//! small in-memory cluster: what the Services of an app point at after each step.
//!
//! A new test goes in the module of the step it is about.

mod drain; // `parking = off` and the flag: what is unparked, and when nothing is called
mod reconcile; // re-parks of asleep apps, unparks of apps woken elsewhere
mod sleep; // the park after a confirmed sleep, its failures, other clusters
mod wake; // the unpark after a wake, only once the app is ready

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::job::JobBuilder;
use idle_scaler_core::{
    ClusterName, Config, Error, FixedScalerFactory, Job, Parking, Result, Scale, Scaler,
    SleepState, Target,
};
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::{MemoryParker, MemoryStore, ParkerMethod};
use uuid::Uuid;

/// Deployments by (namespace, name): replicas and a `resourceVersion` that every write bumps.
#[derive(Debug, Default)]
struct Deployments(Mutex<HashMap<(String, String), (i32, u64)>>);

impl Deployments {
    fn key(target: &Target) -> (String, String) {
        (target.namespace.clone(), target.name.clone())
    }

    fn add(&self, target: &Target, replicas: i32) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Self::key(target), (replicas, 1));
    }

    fn replicas(&self, target: &Target) -> Option<i32> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&Self::key(target))
            .map(|(r, _)| *r)
    }
}

#[async_trait]
impl Scaler for Deployments {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (replicas, rv) = map
            .get(&Self::key(target))
            .ok_or_else(|| Error::not_found(format!("deployment {target}")))?;
        Ok(Scale {
            replicas: *replicas,
            resource_version: rv.to_string(),
        })
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (r, rv) = map
            .get_mut(&Self::key(target))
            .ok_or_else(|| Error::not_found(format!("deployment {target}")))?;
        if resource_version.is_some_and(|v| v != rv.to_string()) {
            return Err(Error::conflict(format!("deployment {target} changed")));
        }
        *r = replicas;
        *rv += 1;
        Ok(())
    }
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn web() -> Target {
    Target::new("apps", "web")
}

/// The world a test runs the job in.
struct World {
    store: Arc<MemoryStore>,
    parker: Arc<MemoryParker>,
    deployments: Arc<Deployments>,
    clock: ManualClock,
}

impl World {
    fn new() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            parker: Arc::new(MemoryParker::new()),
            deployments: Arc::new(Deployments::default()),
            clock: ManualClock::new(start()),
        }
    }

    /// An app idle for two hours at 2 replicas, with Services `services`; its row's id.
    async fn idle_app(&self, target: &Target, services: &[&str]) -> Uuid {
        self.deployments.add(target, 2);
        self.parker.add_app(target, services);
        self.parker.set_ready(target, true);
        self.store
            .insert(NewDeployment::new(
                target.provider_id(),
                start() - Duration::hours(2),
            ))
            .await
            .expect("insert")
    }

    /// A job over this world, without a parker.
    fn builder(&self, config: Config) -> JobBuilder {
        Job::builder(
            config,
            self.store.clone(),
            Arc::new(FixedScalerFactory(self.deployments.clone())),
        )
        .clock(Arc::new(self.clock.clone()))
    }

    /// A job over this world that parks through its parker (for the default cluster).
    fn job(&self, config: Config) -> Job {
        self.builder(config)
            .parker(self.parker.clone(), None)
            .build()
    }

    fn clock_now(&self) -> DateTime<Utc> {
        idle_scaler_core::Clock::now(&self.clock)
    }

    async fn state(&self, id: Uuid) -> SleepState {
        self.store
            .read(id)
            .await
            .expect("read")
            .expect("a row")
            .sleep_state
    }

    /// How many calls of `method` the parker received.
    fn calls(&self, method: ParkerMethod) -> usize {
        self.parker
            .calls()
            .iter()
            .filter(|c| c.method == method)
            .count()
    }
}

fn parking() -> Config {
    Config {
        enabled: true,
        parking: Parking::EndpointSlices,
        ..Config::default()
    }
}

/// One reconcile period and one interval: everything due in a period is due again.
fn a_period(config: &Config) -> Duration {
    Duration::minutes(config.reconcile_minutes.into())
        + Duration::seconds(i64::try_from(config.interval_seconds).expect("small"))
}

fn east() -> ClusterName {
    ClusterName::new("east").expect("a name")
}
