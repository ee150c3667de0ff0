//! Real components around the waker: an nginx configured the way ingress-nginx configures
//! `custom-http-errors` + `default-backend`, an app process the fake API server starts when
//! its pods come up, and the test kit's raw HTTP/1.1 client (no redirect magic hidden in a
//! library).

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::extract::Request as AxumRequest;
use idle_scaler_testkit::fake_kube::ReadyHook;
use idle_scaler_testkit::programs::{self, NGINX, free_port, until_listening};

pub use idle_scaler_testkit::programs::http::call;

use super::*;

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

/// nginx on loopback in front of the app, sending 502/503 to the waker the way
/// ingress-nginx's custom-error location does.
pub struct Nginx {
    _nginx: programs::nginx::Nginx,
    pub port: u16,
}

impl Nginx {
    pub async fn start(app_port: u16, waker: SocketAddr) -> Self {
        let port = free_port();
        let http = format!(
            r#"  server {{
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
"#
        );
        let nginx = programs::nginx::Nginx::start(&http).await;
        until_listening(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "nginx",
            Duration::from_secs(10),
        )
        .await;
        Self {
            _nginx: nginx,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_through_nginx_wakes_the_app_and_is_answered_by_it() {
    if !programs::available("nginx waker test", &[NGINX]) {
        return;
    }
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
    if !programs::available("nginx waker test", &[NGINX]) {
        return;
    }
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
