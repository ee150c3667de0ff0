//! A real Prometheus on loopback (optionally behind TLS and basic auth, through its
//! `--web.config.file`) and a request-counter exporter it scrapes every second.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long Prometheus may take to start and to scrape what a test drove.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Counters by `(metric name, rendered labels)`; what `/metrics` serves.
#[derive(Clone, Default)]
pub struct Exporter {
    counters: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl Exporter {
    /// Serves `/metrics` on 127.0.0.1 (a free port); runs until the test's runtime ends.
    pub async fn start() -> (Self, SocketAddr) {
        let exporter = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind exporter");
        let addr = listener.local_addr().expect("exporter address");
        let app = Router::new().route(
            "/metrics",
            get({
                let exporter = exporter.clone();
                move || {
                    let body = exporter.render();
                    async move { body }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (exporter, addr)
    }

    /// Adds `by` to the counter `name{labels}` (creating it, as a controller does on the
    /// first request). All changes made before a scrape are seen by that scrape together.
    pub fn add(&self, name: &str, labels: &[(&str, &str)], by: u64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        *self
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((name.to_owned(), labels))
            .or_default() += by;
    }

    /// One ingress-nginx request counter.
    pub fn requests(&self, namespace: &str, ingress: &str, path: &str, by: u64) {
        self.add(
            "nginx_ingress_controller_requests",
            &[
                ("namespace", namespace),
                ("ingress", ingress),
                ("path", path),
                ("status", "200"),
            ],
            by,
        );
    }

    /// One Istio request counter, as a sidecar (`reporter`) exports it.
    pub fn istio(&self, namespace: &str, workload: &str, reporter: &str, by: u64) {
        self.add(
            "istio_requests_total",
            &[
                ("reporter", reporter),
                ("destination_workload_namespace", namespace),
                ("destination_workload", workload),
                ("destination_service_name", workload),
                ("response_code", "200"),
            ],
            by,
        );
    }

    /// One Traefik service counter: the Ingress provider names the service
    /// `<namespace>-<service>-<port>@kubernetes`.
    pub fn traefik(&self, namespace: &str, service: &str, port: &str, by: u64) {
        let name = format!("{namespace}-{service}-{port}@kubernetes");
        self.add(
            "traefik_service_requests_total",
            &[
                ("code", "200"),
                ("method", "GET"),
                ("protocol", "http"),
                ("service", &name),
            ],
            by,
        );
    }

    fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        let mut typed = std::collections::BTreeSet::new();
        for ((name, labels), value) in counters.iter() {
            if typed.insert(name.clone()) {
                out.push_str(&format!("# TYPE {name} counter\n"));
            }
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
        out
    }
}

/// A Prometheus process on 127.0.0.1 with its own temporary storage; killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    tls: bool,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let path = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("prometheus"))
                    .find(|p| p.is_file())
            })
        });
    path.unwrap_or_else(|| {
        panic!(
            "the prometheus binary is not installed: these tests run a real Prometheus. \
             Install the Debian package `prometheus` (apt-get install prometheus; \
             scripts/test and .ci/run do it) or set PROMETHEUS_BIN"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What `--web.config.file` asks of clients: TLS with this certificate, and basic auth.
pub struct WebConfig {
    pub tls: idle_scaler_testkit::tls::Issued,
    pub user: String,
    /// The password's bcrypt hash, as Prometheus stores it.
    pub bcrypt_hash: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, and waits until it is ready.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_with(target, None).await
    }

    /// [`Prometheus::start`] with a web configuration (TLS and basic auth). Ready then means
    /// serving: the readiness endpoint itself is behind TLS and the password.
    pub async fn start_with(target: SocketAddr, web: Option<&WebConfig>) -> Self {
        let bin = binary();
        // The port is free when chosen but another process may take it before Prometheus
        // binds it: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                     scrape_configs:\n  - job_name: ingress\n    scrape_interval: 1s\n    \
                     static_configs:\n      - targets: ['{target}']\n"
                ),
            )
            .expect("write prometheus.yml");
            let web_file = web.map(|web| {
                let path = dir.path().join("web.yml");
                std::fs::write(
                    &path,
                    format!(
                        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n\
                         basic_auth_users:\n  {}: '{}'\n",
                        web.tls.cert.display(),
                        web.tls.key.display(),
                        web.user,
                        web.bcrypt_hash
                    ),
                )
                .expect("write web.yml");
                path
            });
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let log_path = dir.path().join("prometheus.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .args(web_file.map(|f| format!("--web.config.file={}", f.display())))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut prometheus = Self {
                child,
                addr,
                dir,
                tls: web.is_some(),
            };
            match prometheus.wait_ready().await {
                Ok(()) => return prometheus,
                Err(why) => last_log = format!("{why}\n{}", read_log(&log_path)),
            }
        }
        panic!("Prometheus did not start:\n{last_log}");
    }

    /// The base URL the adapter is given.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("Prometheus exited with {status}"));
            }
            if ready(self.addr, self.tls).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("Prometheus not ready within {DEADLINE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prometheus's own log, for a failure message.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("prometheus.log"))
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `GET /-/ready` answers 200; behind TLS, any HTTP answer (Go's server tells a plain
/// request it reached an HTTPS port), since the port then serves.
async fn ready(addr: SocketAddr, tls: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /-/ready HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    if tls {
        return answer.starts_with(b"HTTP/1.");
    }
    answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200")
}

/// Polls `probe` until it returns `Some`, or panics after [`DEADLINE`] with `what` and the
/// last value seen.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Option<T>, String)>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (found, last) = probe().await;
        if let Some(v) = found {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
