//! Forwarding through the parking listener against nginx `proxy_pass` to the same app, in
//! the same run. Steady state: the app is awake and ready but its Service is still parked
//! (the window between ready and unpark, and callers that keep coming through the waker), so
//! every request through the listener is forwarded. Both data planes see the same clients: a
//! fixed number of concurrent clients from a pod address, each making one request per new
//! connection (`Connection: close`, as the listener answers once the app is ready), for a
//! fixed count of requests; rounds alternate between the data planes. The listener keeps its
//! connections to the app alive (its pool); nginx is measured twice, with its default (HTTP/1.0
//! to the upstream, a new connection per request) and with an upstream keep-alive pool.
//! The clients and the app run in processes of their own (this binary, started again in
//! another role), so each data plane has its process(es) to itself, as nginx's workers do.
//! Skipped, with a message, when nginx is not installed.
//! Run: `cargo bench -p idle-scaler-waker --bench forwarding`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{HOST, POD, Parked, pct};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const NGINX: &str = "/usr/sbin/nginx";
const CLIENTS: usize = 32;
const REQUESTS: usize = 4_000;
const WARM_UP: usize = 500;
const ROUNDS: usize = 3;

/// nginx on loopback with its own prefix, `proxy_pass` to the app, as many workers as cores.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master stops its workers on `-s stop`; a kill would leave them running.
        let stopped = Command::new(NGINX)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nginx {
    /// nginx in front of `app`; with `keepalive`, an upstream pool of kept-alive HTTP/1.1
    /// connections (`keepalive 100`, the listener's per-app cap).
    async fn start(app: SocketAddr, keepalive: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("idle-scaler-bench-nginx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("logs")).expect("prefix");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let d = dir.display();
        let (upstream_pool, upstream_http) = if keepalive {
            (
                "keepalive 100;",
                "proxy_http_version 1.1; proxy_set_header Connection \"\";",
            )
        } else {
            ("", "")
        };
        // `Host` kept and `X-Forwarded-For` appended, as the listener does; no access log
        // (the listener writes none per request).
        let conf = format!(
            r"worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream app {{ server {app}; {upstream_pool} }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      {upstream_http}
      proxy_pass http://app;
    }}
  }}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let nginx = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }
}

/// One request on a new connection from the pod address (`Connection: close`: one request
/// per connection, whoever answers), read to the end of the app's answer.
pub async fn request(to: SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(POD.parse().expect("ip"), 0))
        .expect("bind source");
    let stream = socket.connect(to).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/")
        .header("host", HOST)
        .header("connection", "close")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"hello from the app\n");
}

/// `count` requests to `to` by `CLIENTS` concurrent clients in a load process of its own:
/// each request's latency, and the wall time of the whole batch.
async fn batch(to: SocketAddr, count: usize) -> (Vec<Duration>, Duration) {
    let mut lines = common::run_role("load", to, count).await.into_iter();
    let wall = Duration::from_nanos(lines.next().expect("wall time"));
    (lines.map(Duration::from_nanos).collect(), wall)
}

/// The load role: `COUNT` requests to `TO` by [`CLIENTS`] concurrent clients; prints the wall
/// time, then each latency, in nanoseconds, one per line.
async fn load() {
    let (to, count) = common::role_args();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let t = Instant::now();
                    request(to).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for c in clients {
        latencies.extend(c.await.expect("client"));
    }
    let mut out = started.elapsed().as_nanos().to_string();
    for l in latencies {
        out.push('\n');
        out.push_str(&l.as_nanos().to_string());
    }
    println!("{out}");
}

/// What one data plane did over all rounds.
#[derive(Default)]
struct Plane {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Plane {
    fn add(&mut self, (latencies, wall): (Vec<Duration>, Duration)) {
        self.latencies.extend(latencies);
        self.wall += wall;
    }

    /// Requests per second, p50, p99 (sorts the latencies).
    fn figures(&mut self) -> (f64, Duration, Duration) {
        self.latencies.sort();
        #[allow(clippy::cast_precision_loss)] // a request count
        let rps = self.latencies.len() as f64 / self.wall.as_secs_f64();
        (rps, pct(&self.latencies, 0.5), pct(&self.latencies, 0.99))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run() {
    let parked = Parked::start().await;
    let app_process = common::App::start();
    let app = app_process.addr;
    // The wake: one held request, the app scaled up, its endpoint published; from then on
    // the app is ready and its Service still parked.
    let first = tokio::spawn(request(parked.addr));
    let deadline = Instant::now() + Duration::from_secs(30);
    while parked.directory.waiting() < 1 || parked.fake.replicas("apps", "web") != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the first request was never held"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    parked
        .directory
        .set_endpoint("apps", "web", Some("http"), app);
    first.await.expect("first request");
    let nginx = Nginx::start(app, false).await;
    let nginx_kept = Nginx::start(app, true).await;
    let planes = [nginx.addr, nginx_kept.addr, parked.addr];
    for to in planes {
        batch(to, WARM_UP).await;
    }
    let mut through = [Plane::default(), Plane::default(), Plane::default()];
    for round in 0..ROUNDS {
        // Rotate which goes first, so none always meets another's leftovers.
        for i in 0..planes.len() {
            let i = (i + round) % planes.len();
            through[i].add(batch(planes[i], REQUESTS).await);
        }
    }
    drop(app_process);
    let writes = parked.scale_writes();
    parked.shutdown.cancel();

    let [n, k, l] = through.map(|mut p| p.figures());
    println!(
        "forwarding to one ready app, {CLIENTS} concurrent clients (own process), a new connection \
         per request, {ROUNDS} rounds x {REQUESTS} requests per data plane"
    );
    for (name, (rps, p50, p99)) in [
        ("nginx proxy_pass (new upstream connection per request)", n),
        ("nginx proxy_pass (upstream keepalive 100)", k),
        ("parking listener (kept-alive connections to the app)", l),
    ] {
        println!(
            "{name}: {rps:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            ms(p50),
            ms(p99)
        );
    }
    for (name, (rps, p50, p99)) in [("nginx default", n), ("nginx keepalive", k)] {
        println!(
            "listener / {name}: throughput {:.2}x (goal >= 0.8x)  p50 {:.2}x  p99 {:.2}x (goal <= 2x)",
            l.0 / rps,
            ms(l.1) / ms(p50),
            ms(l.2) / ms(p99),
        );
    }
    println!("scale writes {writes}");
}

fn main() {
    if common::play_role("load", load) {
        return;
    }
    if !Path::new(NGINX).exists() {
        println!("forwarding bench skipped: {NGINX} is not installed (nginx is the baseline)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}
