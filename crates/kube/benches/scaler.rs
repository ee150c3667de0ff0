//! Sleeps per second through the Kubernetes adapter against the fake API server with 5 ms of
//! injected latency per request, at concurrency 1, 4 and 16.
//!
//! A sleep is what the tick does to Kubernetes: `get_scale`, then `set_replicas(0)` with the
//! read `resourceVersion` as precondition: two sequential requests, so the ceiling is
//! `concurrency / (2 x latency)`. The figure shows how close the adapter (kube client,
//! connection pool, JSON) gets to it.
//!
//! Run: `cargo bench -p idle-scaler-kube --bench scaler`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idle_scaler_core::{Scaler, Target};
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::fake_kube::FakeApiServer;

const LATENCY: Duration = Duration::from_millis(5);
const CONCURRENCY: [usize; 3] = [1, 4, 16];
/// Sleeps measured per worker: about 2 s of work per level at the ceiling.
const SLEEPS_PER_WORKER: usize = 200;
/// Sleeps per worker before measuring, so every worker has its pooled connection.
const WARMUP_PER_WORKER: usize = 5;

fn target(i: usize) -> Target {
    Target {
        cluster: None,
        namespace: "bench".into(),
        name: format!("app-{i}"),
    }
}

/// One sleep as the tick does it.
async fn sleep_one(scaler: &KubeScaler, t: &Target) -> Duration {
    let started = Instant::now();
    let scale = scaler.get_scale(t).await.expect("get_scale");
    scaler
        .set_replicas(t, 0, Some(&scale.resource_version))
        .await
        .expect("set_replicas");
    started.elapsed()
}

/// `n` sleeps over `concurrency` workers on Deployments `first..first + n`; returns the
/// wall time and every sleep's duration.
async fn run(
    scaler: &KubeScaler,
    concurrency: usize,
    first: usize,
    n: usize,
) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (scaler, next) = (scaler.clone(), next.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return took;
                    }
                    took.push(sleep_one(&scaler, &target(first + i)).await);
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    (started.elapsed(), all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest-rank percentile; the index is within bounds and non-negative by construction.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() {
    let fake = FakeApiServer::start().await;
    let scaler = KubeScaler::from_url(&fake.url(), Duration::from_secs(10)).expect("scaler");

    println!(
        "idle-scaler-kube: sleeps/s through KubeScaler against the fake API server, {} ms latency per request",
        LATENCY.as_millis()
    );
    println!(
        "{:>11} {:>7} {:>8} {:>9} {:>8} {:>7} {:>8} {:>8}",
        "concurrency", "sleeps", "seconds", "sleeps/s", "limit/s", "% limit", "p50 ms", "p99 ms"
    );
    let mut first = 0;
    for concurrency in CONCURRENCY {
        let warmup = concurrency * WARMUP_PER_WORKER;
        let n = concurrency * SLEEPS_PER_WORKER;
        for i in first..first + warmup + n {
            fake.create_deployment("bench", &format!("app-{i}"), 2);
        }
        fake.set_latency(LATENCY);
        run(&scaler, concurrency, first, warmup).await;
        let (wall, mut took) = run(&scaler, concurrency, first + warmup, n).await;
        fake.set_latency(Duration::ZERO);
        first += warmup + n;

        took.sort();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let rate = n as f64 / wall.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let limit = concurrency as f64 / (2.0 * LATENCY.as_secs_f64());
        println!(
            "{concurrency:>11} {n:>7} {:>8.2} {rate:>9.1} {limit:>8.0} {:>6.1}% {:>8.2} {:>8.2}",
            wall.as_secs_f64(),
            100.0 * rate / limit,
            percentile(&took, 0.50).as_secs_f64() * 1e3,
            percentile(&took, 0.99).as_secs_f64() * 1e3,
        );
    }
    // Where the gap to the limit goes: the adapter's own cost (no injected latency) and what
    // the fake's injected 5 ms really lasts (the Tokio timer has millisecond granularity and
    // rounds a sleep up).
    for i in first..first + SLEEPS_PER_WORKER {
        fake.create_deployment("bench", &format!("app-{i}"), 2);
    }
    let (wall, _) = run(&scaler, 1, first, SLEEPS_PER_WORKER).await;
    first += SLEEPS_PER_WORKER;
    #[allow(clippy::cast_precision_loss)]
    let per_sleep = wall.as_secs_f64() * 1e3 / SLEEPS_PER_WORKER as f64;
    let mut timer = Duration::ZERO;
    for _ in 0..SLEEPS_PER_WORKER {
        let started = Instant::now();
        tokio::time::sleep(LATENCY).await;
        timer += started.elapsed();
    }
    #[allow(clippy::cast_precision_loss)]
    let timer_ms = timer.as_secs_f64() * 1e3 / SLEEPS_PER_WORKER as f64;
    println!("without injected latency, concurrency 1: {per_sleep:.2} ms per sleep (2 requests)");
    println!("tokio::time::sleep(5 ms) inside the fake lasts {timer_ms:.2} ms on average");

    // Every Deployment must really be at 0: a benchmark of writes that failed would be a lie.
    let asleep = (0..first)
        .filter(|i| fake.replicas("bench", &format!("app-{i}")) == Some(0))
        .count();
    assert_eq!(
        asleep, first,
        "every benchmarked Deployment is asleep on the fake"
    );
    println!("({asleep} Deployments slept, all at 0 replicas on the fake afterwards)");
}
