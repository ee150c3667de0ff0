//! The waker's own overhead: from the moment a slept app's pods are ready (the fake API
//! server marks them ready after a simulated 1 s start) to the moment each held request has
//! its answer, for 1 and for 1,000 concurrent requests to one app; and the scale writes they
//! cost. Real adapter over real HTTP to the fake, in-memory store, the waker's router called
//! in process. Run: `cargo bench -p idle-scaler-waker --bench overhead`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::Request;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use tokio::time::Instant;
use tower::ServiceExt;

const POD_START: Duration = Duration::from_secs(1);

async fn run(concurrent: usize) -> (Vec<Duration>, usize) {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 0);
    fake.set_ready_delay(POD_START);
    let ready_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen = ready_at.clone();
    fake.on_ready(Arc::new(move |_, _, up| {
        if up {
            *seen.lock().expect("lock") = Some(Instant::now());
        }
    }));
    let router = common::slept_waker(&fake).await.router();
    let answered = futures::future::join_all((0..concurrent).map(|_| {
        let router = router.clone();
        tokio::spawn(async move {
            let req = Request::builder()
                .uri("/")
                .header("X-Namespace", "apps")
                .header("X-Service-Name", "web")
                .header("X-Original-URI", "/")
                .body(Body::empty())
                .expect("request");
            let res = router.oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), 307);
            Instant::now()
        })
    }))
    .await;
    let ready = ready_at.lock().expect("lock").expect("pods became ready");
    let mut overheads: Vec<Duration> = answered
        .into_iter()
        .map(|t| t.expect("task").saturating_duration_since(ready))
        .collect();
    overheads.sort();
    let writes = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/scale"))
        .count();
    (overheads, writes)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    // an index into a short vector
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("waker overhead (pods ready -> answer), simulated pod start {POD_START:?}");
    for n in [1, 1000] {
        let (o, writes) = rt.block_on(run(n));
        println!(
            "{n:>5} concurrent: p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  scale writes {writes}",
            pct(&o, 0.5).as_secs_f64() * 1e3,
            pct(&o, 0.99).as_secs_f64() * 1e3,
            o.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}
