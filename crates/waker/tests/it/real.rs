//! Real components around the waker: an nginx configured the way ingress-nginx configures
//! `custom-http-errors` + `default-backend`, an app process the fake API server starts when
//! its pods come up, and a raw HTTP/1.1 client (no redirect magic hidden in a library).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use axum::extract::Request as AxumRequest;
use idle_scaler_testkit::fake_kube::ReadyHook;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

pub const NGINX: &str = "/usr/sbin/nginx";

/// A free loopback port (bound, then released for the process that will listen on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The app: answers every request with what it got, so a test sees method and body kept.
async fn app(req: AxumRequest) -> axum::response::Html<String> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    axum::response::Html(format!(
        "<html><head><title>web</title></head><body><h1 id=\"app\">hello from apps/web</h1><p>{} {} {}</p></body></html>",
        parts.method,
        parts.uri,
        String::from_utf8_lossy(&body)
    ))
}

/// A hook for the fake: the app listens on `port` while its pods run.
pub fn app_process(port: u16) -> ReadyHook {
    let running: Mutex<Option<tokio::sync::oneshot::Sender<()>>> = Mutex::new(None);
    Arc::new(move |_ns: &str, _name: &str, up: bool| {
        let mut running = running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !up {
            if let Some(stop) = running.take() {
                let _ = stop.send(());
            }
            return;
        }
        if running.is_some() {
            return;
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("app port");
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        *running = Some(stop);
        tokio::spawn(async move {
            let router = Router::new().fallback(app);
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
    })
}

/// nginx on loopback with its own prefix, in front of the app, sending 502/503 to the waker
/// the way ingress-nginx's custom-error location does.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nginx {
    pub async fn start(app_port: u16, waker: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("idle-scaler-nginx-{}", Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("logs")).expect("prefix");
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            r#"worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {d}/logs/access.log;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{app_port};
      proxy_intercept_errors on;
      error_page 502 503 = @custom_upstream-default-backend;
    }}
    # What ingress-nginx generates for custom-http-errors + default-backend.
    location @custom_upstream-default-backend {{
      proxy_set_header X-Code $status;
      proxy_set_header X-Format $http_accept;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Namespace apps;
      proxy_set_header X-Ingress-Name web;
      proxy_set_header X-Service-Name web;
      proxy_set_header X-Service-Port 80;
      proxy_pass http://{waker};
      proxy_read_timeout 60s;
    }}
  }}
}}
"#
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
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let nginx = Self { child, port, dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One answer of the raw client.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// One HTTP/1.1 request, `Connection: close`, read to the end.
pub async fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    // Read the head, then exactly the body it announces: some servers (chromedriver) keep
    // the connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0_u8; 8192];
    let complete = |raw: &[u8]| -> bool {
        let text = String::from_utf8_lossy(raw);
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let head = head.to_ascii_lowercase();
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return rest.len() >= len;
        }
        head.contains("transfer-encoding: chunked") && rest.ends_with("0\r\n\r\n")
    };
    while !complete(&raw) {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// Serves the waker's router on loopback.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A world behind nginx: slept `apps/web` whose pods take `start`, its app process toggled
/// by the fake, the waker served on loopback, nginx in front.
pub async fn behind_nginx(start: Duration) -> (World, Nginx) {
    let w = world(start, None).await;
    let app_port = free_port();
    w.fake.on_ready(app_process(app_port));
    let waker = serve(w.router.clone()).await;
    let nginx = Nginx::start(app_port, waker).await;
    (w, nginx)
}

/// Where test artifacts go (`target/test-artifacts/`).
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_through_nginx_wakes_the_app_and_is_answered_by_it() {
    let (w, nginx) = behind_nginx(Duration::from_millis(500)).await;
    let first = call(nginx.port, "GET", "/hello?x=1", &[("Accept", "*/*")], "").await;
    assert_eq!(first.status, 307, "{first:?}");
    assert_eq!(first.headers["location"], "/hello?x=1");
    assert!(first.headers.contains_key("x-idle-scaler-cold-start-ms"));
    let again = call(nginx.port, "GET", &first.headers["location"], &[], "").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.body.contains("hello from apps/web"), "{}", again.body);
    assert!(again.body.contains("GET /hello?x=1"), "{}", again.body);
    assert_eq!(scale_writes(&w.fake), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_a_body_keeps_method_and_body_through_the_307() {
    let (w, nginx) = behind_nginx(Duration::from_millis(300)).await;
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let first = call(nginx.port, "POST", "/submit", &headers, "order=42").await;
    assert_eq!(first.status, 307, "{first:?}");
    // A 307 client repeats the request as it was.
    let again = call(
        nginx.port,
        "POST",
        &first.headers["location"],
        &headers,
        "order=42",
    )
    .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(
        again.body.contains("POST /submit order=42"),
        "{}",
        again.body
    );
    assert_eq!(scale_writes(&w.fake), 1);
}
