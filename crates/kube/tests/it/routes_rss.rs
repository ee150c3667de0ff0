//! The memory and the time the route index takes to index 100,000 HTTPRoutes, from the fake
//! over real HTTP. The fake runs in a process of its own (this binary started again, the
//! ignored `routes_rss_fake_process` test in its role), so the resident memory measured here
//! is the index's and its client's alone. Ignored by default (it loads the fake for a while);
//! run it and read its line (docs/performance.md keeps the figures):
//! `cargo test -p idle-scaler-kube --release --all-features --test it routes_rss -- --ignored --nocapture`

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use idle_scaler_core::RouteIndex;
use idle_scaler_kube::{KubeRouteIndex, RouteIndexSettings};
use serde_json::json;
use tokio::time::Instant;

use super::*;

const ROUTES: usize = 100_000;
const NAMESPACES: usize = 1_000;
/// Set in the fake's process: the fake's test serves only there.
const ROLE: &str = "ROUTES_RSS_FAKE";
/// The line the fake's process announces its URL with.
const URL_LINE: &str = "routes_rss fake: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn routes_rss_with_100000_http_routes() {
    let fake = tokio::task::spawn_blocking(FakeProcess::start)
        .await
        .expect("join");
    let config = kube::Config::new(fake.url.parse().expect("url"));
    let client = idle_scaler_kube::client::build(config).expect("client");

    let before = rss();
    let started = Instant::now();
    let idx = KubeRouteIndex::start(client, RouteIndexSettings::default());
    assert!(
        idx.synced(Duration::from_secs(600)).await,
        "indexed in time"
    );
    let took = started.elapsed();
    let after = rss();
    let peak = peak_rss();
    assert_eq!(idx.routes(), ROUTES);
    assert_eq!(
        idx.resolve("app-99999.example.test", "/").len(),
        1,
        "the last route resolves"
    );
    let delta = after.saturating_sub(before);
    println!(
        "route index: {ROUTES} HTTPRoutes in {NAMESPACES} namespaces indexed in {took:?} \
         (the fake in its own process, loaded in {} ms); RSS {:.1} MiB -> {:.1} MiB \
         (+{:.1} MiB, {:.1} MB, {} bytes per route; peak {:.1} MiB)",
        fake.loaded_ms,
        mib(before),
        mib(after),
        mib(delta),
        delta as f64 / 1e6,
        delta / ROUTES as u64,
        mib(peak),
    );
}

/// The fake's role: loads the routes, prints its URL and serves until stdin closes. Does
/// nothing unless started by the test above (with [`ROLE`] set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by routes_rss_with_100000_http_routes in a process of its own"]
async fn routes_rss_fake_process() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
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
    let loaded_ms = loading.elapsed().as_millis();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{URL_LINE}{} {loaded_ms}", fake.url()).expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    // Serve until the measuring process closes stdin (or dies): no signal handling needed.
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
        .await
        .ok();
}

/// The fake's process, killed on drop.
struct FakeProcess {
    child: Child,
    /// Kept open: the child may still write.
    _stdout: Option<BufReader<ChildStdout>>,
    url: String,
    loaded_ms: u64,
}

impl FakeProcess {
    /// Starts it and waits for its URL (blocking: it reads the child's stdout).
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .args([
                "--exact",
                "routes_rss::routes_rss_fake_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the fake's process");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        // Built first so that a failure below kills the child.
        let mut fake = Self {
            child,
            _stdout: None,
            url: String::new(),
            loaded_ms: 0,
        };
        // The harness prints its own lines first and, with --nocapture, the test's name on
        // the line the test prints; a closed stdout (the child failed) ends the search.
        let line = stdout
            .by_ref()
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once(URL_LINE).map(|(_, rest)| rest.to_owned()))
            .expect("the fake's process printed its URL");
        let (url, loaded) = line.split_once(' ').expect("URL and load time");
        fake.url = url.to_owned();
        fake.loaded_ms = loaded.parse().expect("milliseconds");
        fake._stdout = Some(stdout);
        fake
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The highest resident memory of this process so far (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}
