//! Bench (d): the memory and the time the parking directory takes to index 10,000 parked
//! Services, from the fake over real HTTP. Ignored by default (it loads the fake for a while);
//! run it and read its line:
//! `cargo test -p idle-scaler-kube --test it directory_rss -- --ignored --nocapture`
//! (add `--release` for the optimised figure).

use idle_scaler_core::ParkingDirectory;
use idle_scaler_kube::{DirectorySettings, KubeParkingDirectory};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::time::Instant;

use super::*;

const SERVICES: usize = 10_000;
const NAMESPACES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn directory_rss_with_10000_parked_services() {
    let fake = FakeApiServer::start().await;
    let client =
        idle_scaler_kube::client::build(kube::Config::new(fake.url().parse().expect("url")))
            .expect("client");
    let loading = Instant::now();
    let names: Vec<(String, String)> = (0..SERVICES)
        .map(|i| (format!("ns-{}", i % NAMESPACES), format!("svc-{i}")))
        .collect();
    for (ns, name) in &names {
        fake.create_service(ns, name, name, &[("http", 80), ("metrics", 9090)]);
    }
    let posts = futures::stream::iter(names.iter().map(|(ns, name)| {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {
                "name": format!("idle-scaler-{name}"),
                "labels": {
                    "endpointslice.kubernetes.io/managed-by": "idle-scaler",
                    "kubernetes.io/service-name": name,
                    "idle-scaler.dev/deployment": name,
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                { "addresses": ["10.0.0.9"], "conditions": { "ready": true } },
                { "addresses": ["10.0.0.10"], "conditions": { "ready": true } },
            ],
            "ports": [{ "name": "http", "port": 8081, "protocol": "TCP" }],
        }))
        .expect("slice");
        async move { api.create(&PostParams::default(), &slice).await }
    }));
    let created: Vec<_> =
        futures::StreamExt::collect(futures::StreamExt::buffer_unordered(posts, 16)).await;
    assert!(created.iter().all(Result::is_ok));
    let loaded_in = loading.elapsed();

    // The fake runs in this process: its list answers (10,000 objects serialised at once)
    // and the client's parse of them are transient but stay in the allocator's arenas. The
    // first run's delta includes them; the second directory (the first still alive) reuses
    // that freed memory, so its delta is about what an index keeps.
    let mut kept = Vec::new();
    for run in ["cold", "warm"] {
        let before = rss();
        let started = Instant::now();
        let dir = KubeParkingDirectory::start(client.clone(), DirectorySettings::new(8081));
        assert!(
            dir.synced(Duration::from_secs(300)).await,
            "indexed in time"
        );
        let took = started.elapsed();
        let after = rss();
        assert_eq!(dir.parked_services(), SERVICES);
        assert!(
            dir.lookup("svc-9999.ns-99.svc.cluster.local", None)
                .is_some()
        );
        let delta = after.saturating_sub(before);
        println!(
            "directory ({run}): {SERVICES} parked Services in {NAMESPACES} namespaces indexed in \
             {took:?}; RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB, {} bytes per Service)",
            before as f64 / 1_048_576.0,
            after as f64 / 1_048_576.0,
            delta as f64 / 1_048_576.0,
            delta / SERVICES as u64,
        );
        kept.push(dir);
    }
    println!("fake loaded in {loaded_in:?}");
}
