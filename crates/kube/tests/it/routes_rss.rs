//! The memory and the time the route index takes to index 100,000 HTTPRoutes, from the fake
//! over real HTTP. Ignored by default (it loads the fake for a while); run it and read its
//! line (docs/performance.md keeps the figures):
//! `cargo test -p idle-scaler-kube --release --test it routes_rss -- --ignored --nocapture`

use idle_scaler_core::RouteIndex;
use idle_scaler_kube::{KubeRouteIndex, RouteIndexSettings};
use serde_json::json;
use tokio::time::Instant;

use super::*;

const ROUTES: usize = 100_000;
const NAMESPACES: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn routes_rss_with_100000_http_routes() {
    let fake = FakeApiServer::start().await;
    let loading = Instant::now();
    fake.put_object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": { "name": "public", "namespace": "infra" },
        "spec": { "gatewayClassName": "fake", "listeners": [
            { "name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.test" },
        ]},
    }));
    let parent = json!({ "name": "public", "namespace": "infra", "sectionName": "http" });
    let written = fake.put_objects((0..ROUTES).map(|i| {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": format!("app-{i}"), "namespace": format!("team-{}", i % NAMESPACES) },
            "spec": {
                "parentRefs": [parent],
                "hostnames": [format!("app-{i}.example.test")],
                "rules": [{ "backendRefs": [{ "name": format!("app-{i}"), "port": 8080 }] }],
            },
            "status": { "parents": [{
                "parentRef": parent,
                "controllerName": "example.test/gateway",
                "conditions": [{ "type": "Accepted", "status": "True", "reason": "Accepted" }],
            }]},
        })
    }));
    assert_eq!(written, ROUTES);
    let loaded_in = loading.elapsed();
    let config = kube::Config::new(fake.url().parse().expect("url"));
    let client = idle_scaler_kube::client::build(config).expect("client");

    // As in the directory's bench: the fake runs in this process and its list answers and
    // their parse are transient but stay in the allocator's arenas; the second index (the
    // first still alive) reuses that freed memory, so its delta is about what an index keeps.
    let mut kept = Vec::new();
    for run in ["cold", "warm"] {
        let before = rss();
        let started = Instant::now();
        let idx = KubeRouteIndex::start(client.clone(), RouteIndexSettings::default());
        assert!(
            idx.synced(Duration::from_secs(600)).await,
            "indexed in time"
        );
        let took = started.elapsed();
        let after = rss();
        assert_eq!(idx.routes(), ROUTES);
        assert_eq!(
            idx.resolve("app-99999.example.test", "/").len(),
            1,
            "the last route resolves"
        );
        let delta = after.saturating_sub(before);
        println!(
            "route index ({run}): {ROUTES} HTTPRoutes in {NAMESPACES} namespaces indexed in \
             {took:?}; RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB, {} bytes per route)",
            before as f64 / 1_048_576.0,
            after as f64 / 1_048_576.0,
            delta as f64 / 1_048_576.0,
            delta / ROUTES as u64,
        );
        kept.push(idx);
    }
    println!("fake loaded in {loaded_in:?}");
}
