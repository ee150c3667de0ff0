//! The adapter over real HTTP against the fake API server (one test binary, a module per topic).

mod clusters; // several clusters: a kubeconfig with two contexts, one job serving both
mod directory; // the parking listener's directory: parked Services by host, callers, endpoints
mod directory_rss; // bench (d): memory and time to index 10,000 parked Services (ignored)
mod errors; // every error mapping, over real HTTP
mod job; // the real `Job` through the adapter, end to end
mod parking; // shared setup of the parking tests: a parker on the fake, waiting on slices
mod parking_addresses; // waker addresses: static, a host's channel, the watched Service; re-pointing
mod parking_park; // park: the planned slices, their writes and preconditions, skips and errors
mod parking_unpark; // unpark only once the app's own endpoints are ready; parked()
mod pool; // the client's connection pool: idle connections bounded and closed
mod readiness; // the watch until a replica is ready, and the RBAC it needs
mod routes; // the route index: hostnames of Ingresses and accepted HTTPRoutes -> backends
mod routes_rss; // memory and time to index 100,000 HTTPRoutes, the fake in its own process (ignored)
mod scale; // happy paths and the resourceVersion precondition
mod tls; // https: CA, platform roots, skip-verify, server name, client and exec certificates, proxy-url

use std::time::Duration;

use idle_scaler_core::Target;
use idle_scaler_kube::KubeScaler;
use idle_scaler_testkit::fake_kube::FakeApiServer;

/// Resident memory of this process, in bytes (`/proc/self/statm`, pages of 4 KiB), for the
/// memory benches.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// Generous: only the timeout tests rely on a timeout firing, and they set their own.
const TIMEOUT: Duration = Duration::from_secs(10);

fn web() -> Target {
    Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    }
}

/// A fake with `apps/web` at `replicas`, and a scaler pointed at it.
async fn setup(replicas: i32, timeout: Duration) -> (FakeApiServer, KubeScaler) {
    let fake = FakeApiServer::start().await;
    fake.create_deployment("apps", "web", replicas);
    let scaler = KubeScaler::from_url(&fake.url(), timeout).expect("scaler for the fake");
    (fake, scaler)
}
