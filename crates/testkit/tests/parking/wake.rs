//! The unpark after a wake: in the background, and only once the app's own endpoints are
//! ready.

use super::*;
use idle_scaler_core::WakeResult;
use idle_scaler_core::job::UNPARK_WAIT;

/// Waits, in virtual time, until `done` holds; false if it did not within a minute.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    true
}

/// A world whose app slept and was parked; its pods are gone, so it is not ready.
async fn slept_and_parked(config: Config) -> (World, Job, Uuid) {
    let world = World::new();
    let id = world.idle_app(&web(), &["web"]).await;
    let job = world.job(config);
    job.tick().await.expect("tick");
    world.parker.set_ready(&web(), false);
    assert!(world.parker.is_parked(&web()));
    (world, job, id)
}

#[tokio::test(start_paused = true)]
async fn a_wake_answers_at_once_and_unparks_only_once_the_app_is_ready() {
    let (world, job, id) = slept_and_parked(parking()).await;
    let woke = job.wake(id).await.expect("wake");
    assert_eq!(woke.result, WakeResult::WokeUp);
    assert_eq!(world.deployments.replicas(&web()), Some(2));
    // The wake returned while its unpark waits for the app.
    assert!(eventually(|| world.calls(ParkerMethod::UnparkWhenReady) == 1).await);
    assert!(
        world.parker.is_parked(&web()),
        "never before the app is ready"
    );

    world.parker.set_ready(&web(), true);
    job.finish_wakes().await;
    assert!(!world.parker.is_parked(&web()));
    // Only the readiness-checked way.
    assert_eq!(world.calls(ParkerMethod::UnparkNow), 0);
}

#[tokio::test(start_paused = true)]
async fn an_app_not_ready_in_time_stays_parked_until_the_reconcile_unparks_it() {
    let config = parking();
    let (world, job, id) = slept_and_parked(config.clone()).await;
    job.wake(id).await.expect("wake");
    tokio::time::sleep(UNPARK_WAIT).await;
    job.finish_wakes().await;
    assert!(
        world.parker.is_parked(&web()),
        "not ready: callers keep reaching the waker"
    );

    world.parker.set_ready(&web(), true);
    world.clock.advance(a_period(&config));
    job.tick().await.expect("tick");
    assert!(!world.parker.is_parked(&web()));
    assert_eq!(world.calls(ParkerMethod::UnparkNow), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wake_of_an_app_someone_else_started_unparks_it_too() {
    let (world, job, id) = slept_and_parked(parking()).await;
    // A person scaled it up; the wake finds it running.
    world.deployments.add(&web(), 3);
    world.parker.set_ready(&web(), true);
    let woke = job.wake(id).await.expect("wake");
    assert_eq!(woke.result, WakeResult::AlreadyRunning);
    job.finish_wakes().await;
    assert!(!world.parker.is_parked(&web()));
}

#[tokio::test(start_paused = true)]
async fn finish_wakes_waits_for_an_unpark_a_bounded_time() {
    let (world, job, id) = slept_and_parked(parking()).await;
    job.wake(id).await.expect("wake");
    let started = tokio::time::Instant::now();
    job.finish_wakes().await;
    // A shutdown does not wait ten minutes for a slow app: the reconcile finishes it.
    assert_eq!(
        started.elapsed(),
        idle_scaler_core::job::UNPARK_SHUTDOWN_WAIT
    );
    assert!(world.parker.is_parked(&web()));
}
