//! The client's connection pool: idle connections are bounded in number and closed after use.

use std::time::{Duration, Instant};

use idle_scaler_core::Scaler;
use idle_scaler_kube::client::{self, Pool};
use idle_scaler_testkit::fake_kube::Fault;

use super::*;

async fn until(what: &str, deadline: Duration, check: impl Fn() -> bool) {
    let until = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn idle_connections_are_capped_and_closed_after_the_idle_timeout() {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", 1);
    let pool = Pool {
        idle_timeout: Duration::from_millis(300),
        max_idle_per_host: 2,
    };
    let config = kube::Config::new(fake.url().parse().expect("URL"));
    let scaler = KubeScaler::new(client::build_with(config, pool).expect("client"), TIMEOUT);

    // Ten reads at once, each held 200 ms: ten connections.
    fake.inject(Fault::latency(Duration::from_millis(200)).times(10));
    let target = web();
    let reads = (0..10).map(|_| scaler.get_scale(&target));
    for read in futures::future::join_all(reads).await {
        read.expect("scale");
    }
    assert!(fake.open_connections() >= 3, "{}", fake.open_connections());
    until("all but 2 closed", Duration::from_secs(2), || {
        fake.open_connections() <= 2
    })
    .await;
    until("the idle ones closed", Duration::from_secs(5), || {
        fake.open_connections() == 0
    })
    .await;
}
