//! The adaptive policy through the real job and the in-memory store, on a virtual clock: an
//! app's requests replayed minute by minute, traffic reaching the job through an activity
//! source as in production, a request for an asleep app waking it as the waker does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::{
    ActivitySource, ActivitySourceKind, Clock, Config, FixedScalerFactory, Job, Result, Scale,
    Scaler, SkipReason, SleepPolicy, SleepState, Target, Traffic, WakeReason,
};
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use idle_scaler_testkit::memory::MemoryStore;
use uuid::Uuid;

/// Deployments and their replicas; a write bumps the version.
#[derive(Default)]
struct Fleet(Mutex<HashMap<Target, (i32, u64)>>);

#[async_trait]
impl Scaler for Fleet {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        let (replicas, version) = *self
            .0
            .lock()
            .unwrap()
            .entry(target.clone())
            .or_insert((1, 1));
        Ok(Scale {
            replicas,
            resource_version: version.to_string(),
        })
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        _: Option<&'a str>,
    ) -> Result<()> {
        let mut fleet = self.0.lock().unwrap();
        let entry = fleet.entry(target.clone()).or_insert((1, 1));
        *entry = (replicas, entry.1 + 1);
        Ok(())
    }
}

/// The latest request of each app, as a request counter in Prometheus would tell it.
#[derive(Default)]
struct Requests(Mutex<HashMap<Target, DateTime<Utc>>>);

#[async_trait]
impl ActivitySource for Requests {
    async fn traffic(
        &self,
        targets: &[Target],
        lookback: Duration,
        at: DateTime<Utc>,
    ) -> Result<HashMap<Target, Traffic>> {
        let seen = self.0.lock().unwrap();
        Ok(targets
            .iter()
            .map(|t| {
                let traffic = match seen.get(t) {
                    Some(last) if *last >= at - lookback => Traffic::LastSeen(*last),
                    _ => Traffic::Quiet,
                };
                (t.clone(), traffic)
            })
            .collect())
    }
}

struct World {
    job: Job,
    store: MemoryStore,
    clock: ManualClock,
    fleet: Arc<Fleet>,
    requests: Arc<Requests>,
    id: Uuid,
    target: Target,
    cold_starts: u32,
    awake_minutes: u32,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

async fn world(policy: SleepPolicy) -> World {
    let clock = ManualClock::new(start());
    let store = MemoryStore::new();
    let id = store
        .insert(NewDeployment::k8s("apps", "web", start()))
        .await
        .unwrap();
    let fleet = Arc::new(Fleet::default());
    let requests = Arc::new(Requests::default());
    let config = Config {
        enabled: true,
        policy,
        activity_source: ActivitySourceKind::Prometheus,
        ..Config::default()
    };
    let job = Job::builder(
        config,
        Arc::new(store.clone()),
        Arc::new(FixedScalerFactory(fleet.clone())),
    )
    .clock(Arc::new(clock.clone()))
    .activity_source(requests.clone())
    .rhythm_store(Arc::new(store.clone()))
    .build();
    World {
        job,
        store,
        clock,
        fleet,
        requests,
        id,
        target: Target::new("apps", "web"),
        cold_starts: 0,
        awake_minutes: 0,
    }
}

impl World {
    async fn state(&self) -> SleepState {
        self.store.read(self.id).await.unwrap().unwrap().sleep_state
    }

    /// Runs `minutes` minutes: a request at each minute `requests_at` says, a tick every
    /// second minute, the awake minutes counted from the Deployment's replicas.
    async fn run(&mut self, minutes: i64, mut requests_at: impl FnMut(i64) -> bool) {
        for _ in 0..minutes {
            self.clock.advance(Duration::minutes(1));
            let now = self.clock.now();
            let minute = (now - start()).num_minutes();
            if requests_at(minute) {
                if self.state().await == SleepState::Awake {
                    self.requests
                        .0
                        .lock()
                        .unwrap()
                        .insert(self.target.clone(), now);
                } else {
                    self.cold_starts += 1;
                    self.job
                        .wake_for(self.id, WakeReason::Visitor)
                        .await
                        .unwrap();
                }
            }
            if minute % 2 == 0 {
                self.job.tick().await.unwrap();
            }
            let up = self.fleet.get_scale(&self.target).await.unwrap().replicas > 0;
            self.awake_minutes += u32::from(up);
        }
    }
}

/// A request every 40 minutes, from minute 40.
fn poller(minute: i64) -> bool {
    minute % 40 == 0
}

#[tokio::test]
async fn a_poller_stops_meeting_cold_starts_and_costs_less_than_the_window() {
    let mut fixed = world(SleepPolicy::Fixed).await;
    let mut adaptive = world(SleepPolicy::Adaptive).await;
    for w in [&mut fixed, &mut adaptive] {
        w.run(8 * 60, poller).await; // learning
        (w.cold_starts, w.awake_minutes) = (0, 0);
        w.run(8 * 60, poller).await;
    }
    // Every one of the 12 polls of the second 8 hours finds the fixed window's app asleep.
    assert_eq!(fixed.cold_starts, 12);
    assert_eq!(adaptive.cold_starts, 0, "pre-warmed before every poll");
    assert!(
        adaptive.awake_minutes * 2 < fixed.awake_minutes,
        "asleep at the floor, up shortly before each poll: {} vs {} awake minutes",
        adaptive.awake_minutes,
        fixed.awake_minutes
    );
}

#[tokio::test]
async fn a_prewarm_nobody_uses_sleeps_again_after_a_short_keep() {
    let mut w = world(SleepPolicy::Adaptive).await;
    w.run(8 * 60, poller).await;
    // The poller stops: the next pre-warm is wasted, and the app sleeps again at once.
    (w.cold_starts, w.awake_minutes) = (0, 0);
    w.run(3 * 60, |_| false).await;
    assert_eq!(w.state().await, SleepState::Asleep);
    assert_eq!(w.cold_starts, 0);
    // Up after the last poll until the floor's tick (6 minutes), then from the pre-warm's tick
    // to the end of its keep (6 minutes): never a whole window.
    assert!(w.awake_minutes <= 12, "awake {} minutes", w.awake_minutes);
    // Its activity is still the last poll's: a pre-warm is no activity.
    let row = w.store.read(w.id).await.unwrap().unwrap();
    assert_eq!(row.last_activity_at, start() + Duration::minutes(8 * 60));
}

#[tokio::test]
async fn an_app_the_host_stopped_letting_run_is_never_prewarmed() {
    let mut w = world(SleepPolicy::Adaptive).await;
    w.run(8 * 60, poller).await;
    w.run(10, |_| false).await;
    assert_eq!(w.state().await, SleepState::Asleep);
    w.store.set_status(w.id, "failed").await.unwrap();
    w.awake_minutes = 0;
    w.run(60, |_| false).await;
    assert_eq!(w.awake_minutes, 0, "no pre-warm of an unhealthy app");
}

/// Quiet spells that mostly end soon after the window: 10, 34, 12, 45, 38, 8, 50, 36, 40 and
/// 55 minutes, over and over.
fn just_past_the_window() -> impl FnMut(i64) -> bool {
    let gaps = [10, 34, 12, 45, 38, 8, 50, 36, 40, 55];
    let mut next = 10;
    let mut i = 0;
    move |minute| {
        if minute != next {
            return false;
        }
        i = (i + 1) % gaps.len();
        next += gaps[i];
        true
    }
}

#[tokio::test]
async fn gaps_just_past_the_window_keep_the_app_up_and_plan_says_why() {
    let mut fixed = world(SleepPolicy::Fixed).await;
    let mut adaptive = world(SleepPolicy::Adaptive).await;
    for w in [&mut fixed, &mut adaptive] {
        let mut requests = just_past_the_window();
        w.run(12 * 60, &mut requests).await;
        w.cold_starts = 0;
        w.run(12 * 60, &mut requests).await;
    }
    assert!(
        adaptive.cold_starts * 3 < fixed.cold_starts,
        "kept up past the window: {} cold starts vs {}",
        adaptive.cold_starts,
        fixed.cold_starts
    );
    // Right after a 30-minute quiet spell the app is a candidate the policy keeps.
    let mut w = world(SleepPolicy::Adaptive).await;
    let mut requests = just_past_the_window();
    w.run(12 * 60, &mut requests).await;
    let last = w.store.read(w.id).await.unwrap().unwrap().last_activity_at;
    w.requests.0.lock().unwrap().clear();
    w.clock.set(last + Duration::minutes(31));
    assert_eq!(w.state().await, SleepState::Awake);
    let plan = w.job.plan().await.unwrap();
    assert_eq!(
        plan.skips.get(&SkipReason::PredictedUse),
        Some(&1),
        "{plan:?}"
    );
    assert!(plan.slept.is_empty());
}

#[tokio::test]
async fn the_fixed_policy_never_reads_or_writes_a_rhythm() {
    let mut w = world(SleepPolicy::Fixed).await;
    w.run(8 * 60, poller).await;
    use idle_scaler_testkit::memory::StoreMethod as M;
    for m in [
        M::SelectEarly,
        M::Rhythms,
        M::SaveRhythm,
        M::Keeps,
        M::PrewarmsDue,
    ] {
        assert_eq!(w.store.calls(m), 0, "{m:?}");
    }
}

#[test]
fn the_adaptive_policy_without_a_rhythm_store_is_refused_naming_the_key() {
    let store = MemoryStore::new();
    let e = Job::builder(
        Config {
            policy: SleepPolicy::Adaptive,
            ..Config::default()
        },
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(Fleet::default()))),
    )
    .try_build()
    .unwrap_err();
    assert!(e.to_string().contains("DEPLOY_SCALE_TO_ZERO_POLICY"), "{e}");
}
