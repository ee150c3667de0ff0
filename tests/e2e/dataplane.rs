//! The parking tests' world around the binary: a data-plane stand-in that sends a request
//! for a Service to an endpoint picked from all of its EndpointSlices (as kube-proxy and
//! gateways do), from a chosen loopback address (the caller check sees a different pod per
//! address), a real app server, and objects created on the fake over its HTTP API.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, Uri};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Picks among ready endpoints in turn, so concurrent callers spread over them.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A parsed HTTP/1.1 answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no complete answer: {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status: {head:?}"))?;
        Ok(Self {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        })
    }
}

/// The ready endpoints of `namespace/service`'s port named `port`, over all of its slices.
pub fn endpoints(
    fake: &FakeApiServer,
    namespace: &str,
    service: &str,
    port: &str,
) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for slice in fake.endpoint_slices(namespace) {
        if slice["metadata"]["labels"]["kubernetes.io/service-name"] != service {
            continue;
        }
        let Some(port) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            if endpoint["conditions"]["ready"] == Value::Bool(false) {
                continue;
            }
            for ip in endpoint["addresses"].as_array().into_iter().flatten() {
                if let Some(ip) = ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out
}

/// A connection to an endpoint of `namespace/service`'s port `http`, picked from all of its
/// slices, from `source`: Err when the Service has no ready endpoint (kube-proxy rejects)
/// or the connect fails.
pub async fn connect(
    fake: &FakeApiServer,
    source: IpAddr,
    (namespace, service): (&str, &str),
) -> Result<TcpStream, String> {
    let candidates = endpoints(fake, namespace, service, "http");
    if candidates.is_empty() {
        return Err(format!("{namespace}/{service} has no ready endpoint"));
    }
    let to = candidates[NEXT.fetch_add(1, Ordering::Relaxed) % candidates.len()];
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    socket
        .connect(to)
        .await
        .map_err(|e| format!("connect {to}: {e}"))
}

/// Sends `method path` with `body` and `Host: host` on `stream`, and reads the answer to
/// the end: Err when the connection gives no complete answer (an empty reply).
pub async fn exchange(
    mut stream: TcpStream,
    host: &str,
    (method, path, body): (&str, &str, &str),
) -> Result<Answer, String> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Answer::parse(&raw)
}

/// [`connect`] then [`exchange`]: one request through the data plane.
pub async fn call(
    fake: &FakeApiServer,
    source: IpAddr,
    service: (&str, &str),
    host: &str,
    request: (&str, &str, &str),
) -> Result<Answer, String> {
    exchange(connect(fake, source, service).await?, host, request).await
}

/// The app: a real HTTP server that answers `app saw <method> <uri> <body>` and counts.
pub struct App {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl App {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let router = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                format!("app saw {method} {uri} {}", String::from_utf8_lossy(&body))
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, hits }
    }
}

/// `POST`s `object` to the fake at `path` (an API collection), as kubectl would.
pub async fn create(fake: &FakeApiServer, path: &str, object: &Value) {
    let answer = send(fake, "POST", path, &object.to_string()).await;
    assert_eq!(answer.status, 201, "creating at {path}: {answer:?}");
}

/// `DELETE`s the object at `path` on the fake, as kubectl would.
pub async fn delete(fake: &FakeApiServer, path: &str) {
    let answer = send(fake, "DELETE", path, "").await;
    assert_eq!(answer.status, 200, "deleting {path}: {answer:?}");
}

async fn send(fake: &FakeApiServer, method: &str, path: &str, body: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(fake.addr())
        .await
        .expect("connect fake");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        fake.addr(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    Answer::parse(&raw).expect("fake answer")
}

/// A Pod `namespace/name` whose `status.podIP` is `ip`: the caller check's view of a source.
pub async fn pod(fake: &FakeApiServer, namespace: &str, name: &str, ip: &str) {
    create(
        fake,
        &format!("/api/v1/namespaces/{namespace}/pods"),
        &serde_json::json!({
            "metadata": { "name": name },
            "spec": { "containers": [{ "name": "c", "image": "registry.invalid/c:1" }] },
            "status": { "phase": "Running", "podIP": ip, "podIPs": [{ "ip": ip }] },
        }),
    )
    .await;
}

/// The first of eight consecutive ports free on every one of `ips` (loopback addresses):
/// the parking listeners' of daemons that stand in for the waker's pods.
pub fn free_port_block(ips: &[&str]) -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind((ips[0], 0)).expect("bind");
        let base = first.local_addr().expect("addr").port();
        if base > u16::MAX - 8 {
            continue;
        }
        let taken: Result<Vec<_>, _> = ips
            .iter()
            .flat_map(|ip| (0..8).map(move |i| (*ip, base + i)))
            .filter(|(ip, port)| !(*ip == ips[0] && *port == base))
            .map(std::net::TcpListener::bind)
            .collect();
        if taken.is_ok() {
            return base;
        }
    }
    panic!("no eight consecutive free ports");
}
