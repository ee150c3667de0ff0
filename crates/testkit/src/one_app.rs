//! One app through the real job on a virtual clock, minute by minute, on any store that keeps
//! rhythms: its requests reach the job as in production (an activity source telling the
//! latest, a request for an asleep app waking it as the waker does), its Deployment's
//! replicas are counted into awake minutes. The adaptive policy's scenario tests run it on the
//! in-memory store and on PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::{
    ActivitySource, ActivitySourceKind, Clock, Config, FixedScalerFactory, Job, Result,
    RhythmStore, Scale, Scaler, SleepPolicy, SleepState, Store, Target, Traffic, WakeReason,
};
use uuid::Uuid;

use crate::clock::ManualClock;
use crate::host::{HostOps, NewDeployment};

/// The app's Deployment: its replicas, and a version a write bumps.
#[derive(Debug, Default)]
pub struct Deployment(Mutex<(i32, u64)>);

impl Deployment {
    fn get(&self) -> (i32, u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Scaler for Deployment {
    async fn get_scale(&self, _: &Target) -> Result<Scale> {
        let (replicas, version) = self.get();
        Ok(Scale {
            replicas,
            resource_version: version.to_string(),
        })
    }

    async fn set_replicas<'a>(&self, _: &Target, replicas: i32, _: Option<&'a str>) -> Result<()> {
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *d = (replicas, d.1 + 1);
        Ok(())
    }
}

/// The app's latest request, as a request counter in Prometheus would tell it.
#[derive(Debug, Default)]
pub struct LastRequest(Mutex<Option<DateTime<Utc>>>);

impl LastRequest {
    /// Forgets every request (the counter's series is gone).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[async_trait]
impl ActivitySource for LastRequest {
    async fn traffic(
        &self,
        targets: &[Target],
        lookback: Duration,
        at: DateTime<Utc>,
    ) -> Result<HashMap<Target, Traffic>> {
        let last = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let traffic = match last {
            Some(t) if t >= at - lookback => Traffic::LastSeen(t),
            _ => Traffic::Quiet,
        };
        Ok(targets.iter().map(|t| (t.clone(), traffic)).collect())
    }
}

/// Monday 5 January 2026, 00:00 UTC: where every run starts.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// One app (`apps/web`, awake at 1 replica since [`start`]) and a job over `store`.
#[derive(Debug)]
pub struct OneApp<S> {
    /// The job, under the policy given.
    pub job: Job,
    /// The store.
    pub store: S,
    /// The virtual clock.
    pub clock: ManualClock,
    /// The app's row.
    pub id: Uuid,
    /// The app's Deployment.
    pub deployment: Arc<Deployment>,
    /// What the activity source tells.
    pub requests: Arc<LastRequest>,
    /// Requests that found the app asleep since the last reset.
    pub cold_starts: u32,
    /// Minutes the app was up since the last reset.
    pub awake_minutes: u32,
}

impl<S> OneApp<S>
where
    S: Store + RhythmStore + HostOps + Clone + 'static,
{
    /// The app in `store`, and the job (`policy`, a Prometheus-like source) over it.
    ///
    /// # Panics
    /// When the store refuses the row.
    pub async fn new(store: S, policy: SleepPolicy) -> Self {
        let clock = ManualClock::new(start());
        let id = store
            .insert(NewDeployment::k8s("apps", "web", start()))
            .await
            .expect("insert the app's row");
        let deployment = Arc::new(Deployment(Mutex::new((1, 1))));
        let requests = Arc::new(LastRequest::default());
        let config = Config {
            enabled: true,
            policy,
            activity_source: ActivitySourceKind::Prometheus,
            ..Config::default()
        };
        let job = Job::builder(
            config,
            Arc::new(store.clone()),
            Arc::new(FixedScalerFactory(deployment.clone())),
        )
        .clock(Arc::new(clock.clone()))
        .activity_source(requests.clone())
        .rhythm_store(Arc::new(store.clone()))
        .build();
        Self {
            job,
            store,
            clock,
            id,
            deployment,
            requests,
            cold_starts: 0,
            awake_minutes: 0,
        }
    }

    /// The app's row's sleep state.
    ///
    /// # Panics
    /// When the row cannot be read.
    pub async fn state(&self) -> SleepState {
        self.store
            .read(self.id)
            .await
            .expect("read")
            .expect("the row")
            .sleep_state
    }

    /// Zeroes the cold starts and awake minutes counted so far.
    pub fn reset(&mut self) {
        (self.cold_starts, self.awake_minutes) = (0, 0);
    }

    /// Runs `minutes` minutes: a request at each minute (since [`start`]) `requests_at`
    /// says, a tick every second minute.
    ///
    /// # Panics
    /// When a tick or a wake fails.
    pub async fn run(&mut self, minutes: i64, mut requests_at: impl FnMut(i64) -> bool) {
        for _ in 0..minutes {
            self.clock.advance(Duration::minutes(1));
            let now = self.clock.now();
            let minute = (now - start()).num_minutes();
            if requests_at(minute) {
                if self.state().await == SleepState::Awake {
                    *self
                        .requests
                        .0
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(now);
                } else {
                    self.cold_starts += 1;
                    self.job
                        .wake_for(self.id, WakeReason::Visitor)
                        .await
                        .expect("wake");
                }
            }
            if minute % 2 == 0 {
                self.job.tick().await.expect("tick");
            }
            self.awake_minutes += u32::from(self.deployment.get().0 > 0);
        }
    }
}

/// A poller: a request every 40 minutes, from minute 40.
pub fn poller(minute: i64) -> bool {
    minute % 40 == 0
}
