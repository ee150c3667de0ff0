//! The parking listener's first-request overhead: from the moment the slept app's own
//! endpoint is ready (the directory publishes it) to the moment each held client has the
//! app's whole answer, for 1 and for 1,000 concurrent held requests to one app. Everything
//! over real TCP on loopback: clients from a pod address, the parking listener, the forward
//! to a real HTTP app; the wake through the real `Job` and Kubernetes adapter against the fake
//! API server; the in-memory store and directory.
//! Run: `cargo bench -p idle-scaler-waker --bench parking`.

mod common;

use std::time::Duration;

use common::{Parked, pct, request};
use tokio::time::Instant;

/// One request from the pod address, held by the listener; when its whole answer arrived.
async fn client(to: std::net::SocketAddr) -> Instant {
    request(to).await;
    Instant::now()
}

/// One round: `held` requests held for a slept app, then its endpoint published. The
/// overhead of each request, and the scale writes the round made.
async fn round(held: usize) -> (Vec<Duration>, usize) {
    let parked = Parked::start().await;
    let app = common::app().await;

    let clients: Vec<_> = (0..held)
        .map(|_| tokio::spawn(client(parked.addr)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while parked.directory.waiting() < held || parked.fake.replicas("apps", "web") != Some(1) {
        assert!(Instant::now() < deadline, "requests never all held");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = Instant::now();
    parked
        .directory
        .set_endpoint("apps", "web", Some("http"), app);
    let mut overheads = Vec::with_capacity(held);
    for c in clients {
        overheads.push(c.await.expect("client").saturating_duration_since(ready));
    }
    parked.shutdown.cancel();
    (overheads, parked.scale_writes())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("parking listener first-request overhead (endpoint ready -> client has the answer)");
    for (held, rounds) in [(1, 100), (1000, 5)] {
        let mut all = Vec::new();
        let mut max_writes = 0;
        for _ in 0..rounds {
            let (o, writes) = rt.block_on(round(held));
            all.extend(o);
            max_writes = max_writes.max(writes);
        }
        all.sort();
        println!(
            "{held:>5} held x {rounds:>3} rounds: p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  scale writes per round {max_writes}",
            pct(&all, 0.5).as_secs_f64() * 1e3,
            pct(&all, 0.99).as_secs_f64() * 1e3,
            all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}
