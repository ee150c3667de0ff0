//! A real nginx as the gateway's data plane, configured the way a gateway controller would:
//! from the fake's HTTPRoutes the Gateway accepted (read over its HTTP API), one
//! `server_name` per hostname, its upstream the ready endpoints of every EndpointSlice of the
//! backend Service's port (the parked slice included), re-rendered and reloaded whenever they
//! change. nginx connects to backends from [`GATEWAY_SOURCE`], the address the waker trusts
//! as a gateway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::programs::free_port;
use idle_scaler_testkit::programs::http::{self, Call};
use idle_scaler_testkit::programs::nginx::Nginx;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::dataplane;

/// The gateway's source address toward backends (a loopback alias of its own), inside the
/// range the daemon under test trusts.
pub const GATEWAY_SOURCE: &str = "127.0.0.7";

/// How often the controller loop reads the slices (a gateway controller watches them).
const RESYNC: Duration = Duration::from_millis(25);

/// The running data plane; dropping it stops the controller loop and nginx.
pub struct Gateway {
    pub port: u16,
    /// The upstream servers applied now, per route hostname (`[]`: nginx answers 503).
    applied: watch::Receiver<BTreeMap<String, Vec<SocketAddr>>>,
    log: Arc<std::path::PathBuf>,
    task: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Dropping the loop drops its nginx, which kills it.
        self.task.abort();
    }
}

impl Gateway {
    /// Starts nginx and the loop that re-renders it from the fake's routes and slices.
    pub async fn start(fake: Arc<FakeApiServer>) -> Self {
        let port = free_port();
        let upstreams = current(&fake).await;
        let mut nginx = Nginx::start(&render(port, &upstreams)).await;
        let log = Arc::new(nginx.access_log_path());
        let (tx, applied) = watch::channel(upstreams);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(RESYNC);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let now = current(&fake).await;
                if now != *tx.borrow() {
                    nginx.reload(&render(port, &now)).await;
                    tx.send_replace(now);
                }
            }
        });
        Self {
            port,
            applied,
            log,
            task,
        }
    }

    /// Waits until nginx serves `host` from exactly `servers`.
    pub async fn until_upstream(&self, host: &str, servers: &[SocketAddr], deadline: Duration) {
        let mut applied = self.applied.clone();
        let found = tokio::time::timeout(
            deadline,
            applied.wait_for(|a| a.get(host).is_some_and(|s| s == servers)),
        )
        .await;
        assert!(
            matches!(found, Ok(Ok(_))),
            "nginx never served {host} from {servers:?}; last: {:?}",
            *self.applied.borrow()
        );
    }

    /// The access log: `<client> "<request line>" <status> <host> <upstream>` per line.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&*self.log).unwrap_or_default()
    }
}

/// The ready endpoints of each accepted HTTPRoute's backend, by hostname; no route while
/// the fake does not serve HTTPRoutes.
async fn current(fake: &FakeApiServer) -> BTreeMap<String, Vec<SocketAddr>> {
    let mut out = BTreeMap::new();
    let routes = get(fake, "/apis/gateway.networking.k8s.io/v1/httproutes").await;
    for route in routes["items"].as_array().map_or(&[][..], Vec::as_slice) {
        let accepted = route["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["conditions"].as_array().into_iter().flatten())
            .any(|c| c["type"] == "Accepted" && c["status"] == "True");
        // The test's routes have one rule with one backend.
        let backend = &route["spec"]["rules"][0]["backendRefs"][0];
        let (Some(name), Some(port)) = (backend["name"].as_str(), backend["port"].as_i64()) else {
            continue;
        };
        if !accepted {
            continue;
        }
        let namespace = backend["namespace"]
            .as_str()
            .or(route["metadata"]["namespace"].as_str())
            .unwrap_or_default();
        let service = get(
            fake,
            &format!("/api/v1/namespaces/{namespace}/services/{name}"),
        )
        .await;
        // Slices name a Service port by its name.
        let Some(port_name) = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(port))
            .and_then(|p| p["name"].as_str())
        else {
            continue;
        };
        let mut servers = dataplane::endpoints(fake, namespace, name, port_name);
        servers.sort();
        for host in route["spec"]["hostnames"].as_array().into_iter().flatten() {
            if let Some(host) = host.as_str() {
                out.insert(host.to_owned(), servers.clone());
            }
        }
    }
    out
}

/// A GET on the fake's HTTP API; `Null` when it fails or is refused.
async fn get(fake: &FakeApiServer, path: &str) -> Value {
    match http::send(None, fake.addr(), Call::get(path)).await {
        Ok(answer) if answer.status == 200 => {
            serde_json::from_str(&answer.body).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

/// The `http` block's contents: a server per hostname, a default server that knows no host
/// (404), WebSocket upgrades passed on.
fn render(port: u16, upstreams: &BTreeMap<String, Vec<SocketAddr>>) -> String {
    let mut http =
        String::from("  map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n");
    let _ = writeln!(
        http,
        "  server {{ listen 127.0.0.1:{port} default_server; return 404; }}"
    );
    for (i, (host, servers)) in upstreams.iter().enumerate() {
        let location = if servers.is_empty() {
            // No ready endpoint: what gateways answer.
            "return 503;".to_owned()
        } else {
            let _ = writeln!(http, "  upstream route{i} {{");
            for s in servers {
                let _ = writeln!(http, "    server {s};");
            }
            http.push_str("  }\n");
            format!(
                "proxy_pass http://route{i};
      proxy_bind {GATEWAY_SOURCE};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_read_timeout 60s;"
            )
        };
        let _ = writeln!(
            http,
            "  server {{\n    listen 127.0.0.1:{port};\n    server_name {host};\n    location / {{\n      {location}\n    }}\n  }}"
        );
    }
    http
}
