use std::time::Duration;

use tokio::time::Instant;

use super::Backoff;

#[tokio::test(start_paused = true)]
async fn pauses_double_up_to_the_cap() {
    let start = Instant::now();
    let mut backoff = Backoff::new(start + Duration::from_secs(60));
    let mut took = Vec::new();
    for _ in 0..7 {
        let before = Instant::now();
        assert!(backoff.pause().await);
        took.push(before.elapsed().as_millis());
    }
    assert_eq!(took, [100, 200, 400, 800, 1600, 2000, 2000]);
}

#[tokio::test(start_paused = true)]
async fn reset_starts_again_from_the_first_pause() {
    let start = Instant::now();
    let mut backoff = Backoff::new(start + Duration::from_secs(60));
    assert!(backoff.pause().await);
    assert!(backoff.pause().await);
    backoff.reset();
    let before = Instant::now();
    assert!(backoff.pause().await);
    assert_eq!(before.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_pause_reaching_the_deadline_ends_the_wait_at_the_deadline() {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(250);
    let mut backoff = Backoff::new(deadline);
    assert!(backoff.pause().await, "100 ms fit before the deadline");
    assert!(!backoff.pause().await, "200 ms more would pass it");
    assert_eq!(Instant::now(), deadline);
}
