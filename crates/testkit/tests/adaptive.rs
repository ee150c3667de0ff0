//! The adaptive policy through the real job and the in-memory store, on a virtual clock: an
//! app's requests replayed minute by minute, traffic reaching the job through an activity
//! source as in production, a request for an asleep app waking it as the waker does.

use std::sync::Arc;

use chrono::Duration;
use idle_scaler_core::{Config, FixedScalerFactory, Job, SkipReason, SleepPolicy, SleepState};
use idle_scaler_testkit::host::HostOps;
use idle_scaler_testkit::memory::MemoryStore;
use idle_scaler_testkit::one_app::{Deployment, OneApp, poller, start};

type World = OneApp<MemoryStore>;

async fn world(policy: SleepPolicy) -> World {
    OneApp::new(MemoryStore::new(), policy).await
}

#[tokio::test]
async fn a_poller_stops_meeting_cold_starts_and_costs_less_than_the_window() {
    let mut fixed = world(SleepPolicy::Fixed).await;
    let mut adaptive = world(SleepPolicy::Adaptive).await;
    for w in [&mut fixed, &mut adaptive] {
        w.run(8 * 60, poller).await; // learning
        w.reset();
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
    w.reset();
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
    w.requests.clear();
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
        Arc::new(FixedScalerFactory(Arc::new(Deployment::default()))),
    )
    .try_build()
    .unwrap_err();
    assert!(e.to_string().contains("DEPLOY_SCALE_TO_ZERO_POLICY"), "{e}");
}
