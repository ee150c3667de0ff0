//! Liveness on the in-memory store: 10,000 rows of each kind the tick can never sleep, older
//! than every real app, cost one attempt each and then back off; the tick after sleeps
//! `max_per_tick` real apps and tries none of them again.

use std::sync::Arc;

use idle_scaler_testkit::liveness::lasting_skips_never_starve;
use idle_scaler_testkit::memory::MemoryStore;

#[tokio::test]
async fn unsleepable_rows_never_starve_the_sweep() {
    let run = lasting_skips_never_starve(Arc::new(MemoryStore::new()), 10_000, 1_000).await;
    eprintln!("starvation (memory): {run:?}");
    assert_eq!(run.slept_after, 1_000);
    // A read and a write per real app; nothing else is tried again.
    assert_eq!(run.scaler_calls_after, 2 * 1_000);
}
