use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn flights() -> SingleFlight<u32, u32> {
    SingleFlight::new(|_, _| 0)
}

#[tokio::test(start_paused = true)]
async fn callers_share_one_attempt_that_outlives_them() {
    let f = flights();
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let start = |runs: Arc<AtomicUsize>, rx| {
        move |_| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let _ = rx.await;
            7
        }
    };
    let first = f.join(1, start(runs.clone(), rx));
    let (_, never) = tokio::sync::oneshot::channel::<()>();
    let second = f.join(1, start(runs.clone(), never));
    drop(first);
    tx.send(()).expect("the attempt waits");
    assert_eq!(second.landing.await, 7);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one attempt for both callers"
    );
    f.wait().await;
    // Finished and forgotten: the next caller starts anew.
    assert_eq!(f.join(1, |_| async { 8 }).landing.await, 8);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_caller_does_not_cut_the_attempt() {
    let f = flights();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    drop(f.join(2, move |_| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        d.fetch_add(1, Ordering::SeqCst);
        1
    }));
    f.wait().await;
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lingering_result_answers_until_it_expires() {
    let f = flights().lingering(|v| Duration::from_secs(u64::from(*v)));
    assert_eq!(f.join(3, |_| async { 5 }).landing.await, 5);
    assert_eq!(
        f.join(3, |_| async { 6 }).landing.await,
        5,
        "still lingering"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(f.join(3, |_| async { 6 }).landing.await, 6, "expired");
}

#[tokio::test(start_paused = true)]
async fn a_panicked_attempt_is_cut_short_and_forgotten() {
    let f: SingleFlight<u32, u32> = SingleFlight::new(|k, _| 100 + k);
    let flight = f.join(4, |_| async { panic!("boom") });
    assert_eq!(flight.landing.await, 104);
    assert_eq!(f.join(4, |_| async { 1 }).landing.await, 1, "forgotten");
}

#[tokio::test(start_paused = true)]
async fn an_inline_attempt_runs_only_while_polled() {
    let f = flights().inline(true);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let flight = f.join(5, move |_| async move {
        r.fetch_add(1, Ordering::SeqCst);
        9
    });
    tokio::task::yield_now().await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing polled it");
    assert_eq!(flight.landing.await, 9);
}
