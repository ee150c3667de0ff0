//! Replays a [`Workload`] through the real [`Job`] and the in-memory store on a virtual clock.
//!
//! Production's paths, in process: the job ticks every [`TICK`] and asks an activity source
//! that knows every request (the latest one within the lookback, as an ingress's metrics
//! would say); a request that finds its app asleep is a cold start and wakes it the way the
//! waker does (`wake_for(id, Visitor)`); a request that comes while the pod is still starting
//! (woken less than its start time ago, by a request or a pre-warm) waits too, and is counted
//! a cold start as well. Replica-seconds awake are integrated from the scaler's replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::{
    ActivitySource, ActivitySourceKind, Clock, Config, Error, FixedScalerFactory, Job, Result,
    Scale, Scaler, SleepPolicy, Target, Traffic, WakeReason,
};
use uuid::Uuid;

use super::{Class, Workload, first_of_day};
use crate::clock::ManualClock;
use crate::host::{HostOps, NewDeployment};
use crate::memory::MemoryStore;

/// The job's tick period.
pub const TICK: Duration = Duration::minutes(2);

/// A policy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Its name in the tables.
    pub name: &'static str,
    /// The idle window (the adaptive policy's fallback).
    pub idle_minutes: u32,
    /// `policy = adaptive`.
    pub adaptive: bool,
}

impl Policy {
    /// The baseline every goal is measured against.
    pub const FIXED_30: Self = Self::fixed("fixed 30", 30);
    /// The adaptive policy, falling back to 30 minutes.
    pub const ADAPTIVE_30: Self = Self {
        name: "adaptive 30",
        idle_minutes: 30,
        adaptive: true,
    };
    /// The policies the benchmark compares.
    pub const ALL: [Self; 4] = [
        Self::fixed("fixed 10", 10),
        Self::FIXED_30,
        Self::fixed("fixed 60", 60),
        Self::ADAPTIVE_30,
    ];

    const fn fixed(name: &'static str, idle_minutes: u32) -> Self {
        Self {
            name,
            idle_minutes,
            adaptive: false,
        }
    }

    fn config(self) -> Config {
        Config {
            enabled: true,
            idle_minutes: self.idle_minutes,
            interval_seconds: u64::try_from(TICK.num_seconds()).unwrap_or(120),
            max_per_tick: 5_000,
            concurrency: 16,
            activity_source: ActivitySourceKind::Prometheus,
            policy: if self.adaptive {
                SleepPolicy::Adaptive
            } else {
                SleepPolicy::Fixed
            },
            ..Config::default()
        }
    }
}

/// What one policy did to some apps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Apps counted.
    pub apps: u64,
    /// Requests.
    pub requests: u64,
    /// Requests that found their app asleep or its pod not ready yet.
    pub cold_starts: u64,
    /// Of those, the ones that found the row asleep and woke it (what the job's
    /// `cold_starts_total` counts).
    pub request_wakes: u64,
    /// First requests of an app's day.
    pub first_of_day: u64,
    /// Of those, cold starts.
    pub first_of_day_cold: u64,
    /// Replica-seconds awake.
    pub replica_seconds: i64,
    /// Pre-warms a request came to before the app slept again.
    pub prewarms_used: u64,
    /// Pre-warms no request came to.
    pub prewarms_wasted: u64,
}

impl Figures {
    fn add(&mut self, o: &Self) {
        self.apps += o.apps;
        self.requests += o.requests;
        self.cold_starts += o.cold_starts;
        self.request_wakes += o.request_wakes;
        self.first_of_day += o.first_of_day;
        self.first_of_day_cold += o.first_of_day_cold;
        self.replica_seconds += o.replica_seconds;
        self.prewarms_used += o.prewarms_used;
        self.prewarms_wasted += o.prewarms_wasted;
    }

    /// Cold starts per 1,000 requests.
    pub fn cold_per_1000(&self) -> f64 {
        ratio(self.cold_starts * 1000, self.requests)
    }

    /// Replica-minutes awake.
    pub fn replica_minutes(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // far below 2^52
        let s = self.replica_seconds as f64;
        s / 60.0
    }
}

/// `a / b`, 0 when `b` is 0.
pub(super) fn ratio(a: u64, b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One policy's run over one workload.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The policy.
    pub policy: Policy,
    /// All apps.
    pub overall: Figures,
    /// Per class, in [`Class::ALL`] order.
    pub by_class: Vec<(Class, Figures)>,
    /// Ticks run.
    pub ticks: u64,
}

impl RunResult {
    /// The figures of `class`.
    pub fn class(&self, class: Class) -> Figures {
        self.by_class
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, f)| *f)
            .unwrap_or_default()
    }
}

/// Runs `workload` under `policy`: a fresh store with every app awake at 1 replica, the real
/// job, a tick every [`TICK`] and every request replayed at its time in between. Panics when
/// the job fails (a bug the benchmark must not hide).
pub async fn replay(workload: &Workload, policy: Policy) -> RunResult {
    let start = workload.start;
    let clock = ManualClock::new(start);
    let store = Arc::new(MemoryStore::new());
    let mut ids = Vec::with_capacity(workload.apps.len());
    for i in 0..workload.apps.len() {
        let id = Uuid::from_u128(i as u128 + 1);
        store
            .insert(NewDeployment::k8s("apps", &name(i), start).id(id))
            .await
            .expect("insert");
        ids.push(id);
    }
    let pods = Arc::new(Pods::new(workload, clock.clone()));
    let source = Arc::new(Seen(
        workload.apps.iter().map(|a| a.requests.clone()).collect(),
    ));
    let job = Job::builder(
        policy.config(),
        store.clone(),
        Arc::new(FixedScalerFactory(pods.clone())),
    )
    .clock(Arc::new(clock.clone()))
    .activity_source(source)
    .rhythm_store(store.clone())
    .build();

    let mut figures = vec![Figures::default(); workload.apps.len()];
    for (f, app) in figures.iter_mut().zip(&workload.apps) {
        f.apps = 1;
        f.requests = app.requests.len() as u64;
    }
    let events = events(workload);
    let mut next = 0;
    let mut ticks = 0;
    let mut now = start;
    while now + TICK <= workload.end {
        now += TICK;
        while let Some(&(at, app, first)) = events.get(next).filter(|e| e.0 <= now) {
            next += 1;
            clock.set(at);
            let f = &mut figures[app];
            f.first_of_day += u64::from(first);
            let (asleep, ready) = pods.request(app, at);
            if asleep || !ready {
                f.cold_starts += 1;
                f.first_of_day_cold += u64::from(first);
            }
            if asleep {
                f.request_wakes += 1;
                pods.lock().waking_for_request = Some(app);
                job.wake_for(ids[app], WakeReason::Visitor)
                    .await
                    .expect("a request's wake");
                pods.lock().waking_for_request = None;
            }
        }
        clock.set(now);
        job.tick().await.expect("tick");
        ticks += 1;
    }
    pods.finish(&mut figures, now);

    let mut overall = Figures::default();
    let mut by_class: Vec<(Class, Figures)> = Class::ALL
        .iter()
        .map(|c| (*c, Figures::default()))
        .collect();
    for (f, app) in figures.iter().zip(&workload.apps) {
        overall.add(f);
        if let Some((_, c)) = by_class.iter_mut().find(|(c, _)| *c == app.class) {
            c.add(f);
        }
    }
    RunResult {
        policy,
        overall,
        by_class,
        ticks,
    }
}

/// App `i`'s Deployment name.
fn name(i: usize) -> String {
    format!("app-{i}")
}

fn index(target: &Target) -> Option<usize> {
    target.name.strip_prefix("app-")?.parse().ok()
}

/// Every request as (time, app, first of its day), in time order.
fn events(workload: &Workload) -> Vec<(DateTime<Utc>, usize, bool)> {
    let mut events: Vec<_> = workload
        .apps
        .iter()
        .enumerate()
        .flat_map(|(i, app)| {
            let mut prev = None;
            app.requests.iter().map(move |t| {
                let first = first_of_day(prev, *t);
                prev = Some(*t);
                (*t, i, first)
            })
        })
        .collect();
    events.sort_unstable();
    events
}

/// The activity source: each app's latest request within the lookback.
#[derive(Debug)]
struct Seen(Vec<Vec<DateTime<Utc>>>);

#[async_trait]
impl ActivitySource for Seen {
    async fn traffic(
        &self,
        targets: &[Target],
        lookback: Duration,
        at: DateTime<Utc>,
    ) -> Result<HashMap<Target, Traffic>> {
        Ok(targets
            .iter()
            .filter_map(|t| {
                let requests = self.0.get(index(t)?)?;
                let k = requests.partition_point(|r| *r <= at);
                let traffic = match k.checked_sub(1).map(|k| requests[k]) {
                    Some(last) if last > at - lookback => Traffic::LastSeen(last),
                    _ => Traffic::Quiet,
                };
                Some((t.clone(), traffic))
            })
            .collect())
    }
}

/// The Deployments: replicas per app, when each pod is ready, and the replica-seconds and
/// pre-warms each scale change ends.
#[derive(Debug)]
struct Pods {
    clock: ManualClock,
    state: Mutex<PodsState>,
}

#[derive(Debug)]
struct PodsState {
    pods: Vec<Pod>,
    /// The app whose request's wake is in flight: any other scale-up from 0 is a pre-warm.
    waking_for_request: Option<usize>,
}

#[derive(Debug, Clone)]
struct Pod {
    replicas: i32,
    version: u64,
    since: DateTime<Utc>,
    start: Duration,
    ready_at: DateTime<Utc>,
    replica_seconds: i64,
    /// Up by a pre-warm, and no request since.
    prewarmed: bool,
    prewarms_used: u64,
    prewarms_wasted: u64,
}

impl Pods {
    fn new(workload: &Workload, clock: ManualClock) -> Self {
        let now = clock.now();
        let pods = workload
            .apps
            .iter()
            .map(|a| Pod {
                replicas: 1,
                version: 1,
                since: now,
                start: a.pod_start,
                ready_at: now,
                replica_seconds: 0,
                prewarmed: false,
                prewarms_used: 0,
                prewarms_wasted: 0,
            })
            .collect();
        Self {
            clock,
            state: Mutex::new(PodsState {
                pods,
                waking_for_request: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PodsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request to `app` at `at`: (its Deployment is at 0, its pod is ready).
    fn request(&self, app: usize, at: DateTime<Utc>) -> (bool, bool) {
        let mut state = self.lock();
        let pod = &mut state.pods[app];
        if pod.prewarmed {
            pod.prewarmed = false;
            pod.prewarms_used += 1;
        }
        (pod.replicas == 0, at >= pod.ready_at)
    }

    /// Adds each pod's replica-seconds up to `end` and its pre-warms to its figures.
    fn finish(&self, figures: &mut [Figures], end: DateTime<Utc>) {
        let state = self.lock();
        for (f, pod) in figures.iter_mut().zip(&state.pods) {
            f.replica_seconds =
                pod.replica_seconds + i64::from(pod.replicas) * (end - pod.since).num_seconds();
            f.prewarms_used = pod.prewarms_used;
            f.prewarms_wasted = pod.prewarms_wasted + u64::from(pod.prewarmed);
        }
    }
}

#[async_trait]
impl Scaler for Pods {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        let state = self.lock();
        let pod = index(target)
            .and_then(|i| state.pods.get(i))
            .ok_or_else(|| Error::not_found(target.to_string()))?;
        Ok(Scale {
            replicas: pod.replicas,
            resource_version: pod.version.to_string(),
        })
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut state = self.lock();
        let for_request = state.waking_for_request;
        let i = index(target).filter(|i| *i < state.pods.len());
        let pod = i
            .and_then(|i| state.pods.get_mut(i))
            .ok_or_else(|| Error::not_found(target.to_string()))?;
        if resource_version.is_some_and(|v| v != pod.version.to_string()) {
            return Err(Error::conflict(target.to_string()));
        }
        pod.replica_seconds += i64::from(pod.replicas) * (now - pod.since).num_seconds();
        pod.since = now;
        if pod.replicas == 0 && replicas > 0 {
            pod.ready_at = now + pod.start;
            pod.prewarmed = for_request != i;
        }
        if replicas == 0 && pod.prewarmed {
            pod.prewarmed = false;
            pod.prewarms_wasted += 1;
        }
        pod.replicas = replicas;
        pod.version += 1;
        Ok(())
    }
}
