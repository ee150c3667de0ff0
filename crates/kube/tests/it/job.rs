//! The real core `Job` sleeps a Deployment on the fake, end to end through the adapter.

use std::sync::Arc;

use chrono::{Duration as Age, Utc};
use idle_scaler_core::{
    Candidate, Config, ConfirmOutcome, FixedScalerFactory, Job, MockStore, Outcome, SystemClock,
};
use idle_scaler_testkit::fake_kube::Fault;
use mockall::predicate::{always, eq};
use uuid::Uuid;

use super::*;

/// A job over the mock store and the real scaler, on the system clock.
fn job_over(config: Config, store: MockStore, scaler: KubeScaler) -> Job {
    Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(Arc::new(SystemClock))
    .build()
}

#[tokio::test]
async fn a_tick_sleeps_an_idle_deployment_on_the_fake() {
    let (fake, scaler) = setup(3, TIMEOUT).await;
    let id = Uuid::new_v4();
    let seen = Utc::now() - Age::hours(2);

    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_asleep_to_check()
        .returning(|_, _, _| Ok(vec![]));
    store.expect_back_off().returning(|_, _, _| Ok(true));
    store
        .expect_select_candidates()
        .times(1)
        .returning(move |_, _, _, _| Ok(vec![Candidate::new(id, "k8s:apps/web", seen)]));
    // CAS 1 records the replica count read from the fake.
    store
        .expect_claim_sleep()
        .with(eq(id), eq(seen), always(), eq(Some(3)), always())
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .with(eq(id), eq(seen), always(), always())
        .times(1)
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    store.expect_count_asleep().returning(|| Ok(1));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));

    let config = Config {
        enabled: true,
        ..Config::default()
    };
    let job = job_over(config, store, scaler);
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1, "{report:?}");
    assert_eq!(fake.replicas("apps", "web"), Some(0));
    let patch = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH");
    assert!(
        patch.json()["metadata"]["resourceVersion"].is_string(),
        "CAS 2 carried a precondition"
    );
}

#[tokio::test]
async fn a_tick_abandons_the_sleep_when_the_deployment_changed_after_the_read() {
    let (fake, scaler) = setup(3, TIMEOUT).await;
    let id = Uuid::new_v4();
    let seen = Utc::now() - Age::hours(2);
    // A person scales the app between the adapter's read and its write: CAS 1 (the store
    // claim) runs exactly there, so the mock store changes the fake at that moment.
    let fake = Arc::new(fake);
    let during_claim = fake.clone();

    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_asleep_to_check()
        .returning(|_, _, _| Ok(vec![]));
    store.expect_back_off().returning(|_, _, _| Ok(true));
    store
        .expect_select_candidates()
        .returning(move |_, _, _, _| Ok(vec![Candidate::new(id, "k8s:apps/web", seen)]));
    store
        .expect_claim_sleep()
        .times(1)
        .returning(move |_, _, _, _, _| {
            during_claim.scale_externally("apps", "web", 4);
            Ok(true)
        });
    store
        .expect_revert_sleep()
        .with(eq(id), always(), always())
        .times(1)
        .returning(|_, _, _| Ok(true));
    store.expect_confirm_sleep().never();
    // Whether the tick backs the row off after the conflict is the core's policy, not this
    // adapter test's subject.
    store.expect_back_off().returning(|_, _, _| Ok(true));
    store.expect_count_asleep().returning(|| Ok(0));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));

    let job = Job::builder(
        Config {
            enabled: true,
            ..Config::default()
        },
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(Arc::new(SystemClock))
    .build();
    let report = job.tick().await.expect("tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 0, "{report:?}");
    assert_eq!(
        fake.replicas("apps", "web"),
        Some(4),
        "the person's count stands"
    );
}

/// One app's read answered 500 among successes: that app fails, the cluster is not counted
/// unreachable and the other apps are slept.
#[tokio::test]
async fn one_500_among_successes_fails_one_app_not_the_cluster() {
    let fake = FakeApiServer::start().await;
    let seen = Utc::now() - Age::hours(2);
    let mut candidates = Vec::new();
    for name in ["web-0", "web-1", "web-2"] {
        fake.create_deployment("apps", name, 2);
        candidates.push(Candidate::new(
            Uuid::new_v4(),
            format!("k8s:apps/{name}"),
            seen,
        ));
    }
    fake.inject(Fault::status(500).on_method("GET").on_path("web-1/scale"));
    let scaler = KubeScaler::from_url(&fake.url(), TIMEOUT).expect("scaler for the fake");

    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_asleep_to_check()
        .returning(|_, _, _| Ok(vec![]));
    store.expect_back_off().returning(|_, _, _| Ok(true));
    store
        .expect_select_candidates()
        .returning(move |_, _, _, _| Ok(candidates.clone()));
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
    store.expect_count_asleep().returning(|| Ok(2));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    let config = Config {
        enabled: true,
        concurrency: 1,
        ..Config::default()
    };
    let job = job_over(config, store, scaler);
    let report = job.tick().await.expect("tick");
    assert!(report.clusters_unreachable.is_empty(), "{report:?}");
    assert_eq!(report.outcome(Outcome::ScaledDown), 2, "{report:?}");
    assert_eq!(fake.replicas("apps", "web-0"), Some(0));
    assert_eq!(fake.replicas("apps", "web-1"), Some(2), "its read failed");
    assert_eq!(fake.replicas("apps", "web-2"), Some(0));
}
