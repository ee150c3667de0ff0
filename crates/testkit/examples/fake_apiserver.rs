//! The fake Kubernetes API server as a process, for measurements and manual tries with
//! kubectl: `cargo run -p idle-scaler-testkit --example fake_apiserver -- 1000 perf`
//! creates Deployments `app-0000`..`app-0999` in namespace `perf` (2 replicas each) and
//! prints the URL; it serves until stdin closes.

use std::io::Read;

use idle_scaler_testkit::fake_kube::FakeApiServer;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let namespace = args.next().unwrap_or_else(|| "default".to_owned());
    let fake = FakeApiServer::start().await;
    for i in 0..count {
        fake.create_deployment(&namespace, &format!("app-{i:04}"), 2);
    }
    println!("{}", fake.url());
    // Serve until the parent closes stdin: no signal handling needed for a measuring tool.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .ok();
}
