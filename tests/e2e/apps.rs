//! The apps behind real data planes: a server whose process runs only while the fake says
//! the Deployment's pods do (started by the fake's ready hook before the pods report ready,
//! stopped when it is scaled to 0), at the address the fake's slices give its pods. A data
//! plane that routes to it directly finds nothing listening while it sleeps.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, Uri};
use axum::response::Html;
use futures::{SinkExt, StreamExt};
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::programs::free_port;
use tokio::sync::oneshot;

/// What the app serves.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An HTML page naming the request it answers (`<method> <uri> <body>`).
    Page,
    /// A WebSocket server echoing every text and binary message.
    Echo,
}

/// The app of Deployment `namespace/name` on the fake.
pub struct AppProcess {
    pub addr: SocketAddr,
    /// `<method> <uri>` of every request the app answered, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl AppProcess {
    /// Points the fake's pods of `namespace/name` at a free loopback port and runs the app
    /// there while they run. The fake has one ready hook: one app per fake.
    pub fn start(fake: &FakeApiServer, (namespace, name): (&str, &str), kind: Kind) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        fake.set_app_endpoint(namespace, name, &addr.to_string());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let running: Mutex<Option<oneshot::Sender<()>>> = Mutex::new(None);
        let (ns, app, log) = (namespace.to_owned(), name.to_owned(), seen.clone());
        fake.on_ready(Arc::new(move |hook_ns: &str, hook_name: &str, up: bool| {
            if (hook_ns, hook_name) != (ns.as_str(), app.as_str()) {
                return;
            }
            let mut running = running.lock().unwrap_or_else(PoisonError::into_inner);
            if !up {
                if let Some(stop) = running.take() {
                    let _ = stop.send(());
                }
                return;
            }
            if running.is_none() {
                let (stop, stopped) = oneshot::channel();
                *running = Some(stop);
                serve(addr, kind, log.clone(), stopped);
            }
        }));
        Self { addr, seen }
    }

    /// How many requests for `method path` (path with query) the app answered.
    pub fn hits(&self, method: &str, path: &str) -> usize {
        let wanted = format!("{method} {path}");
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter().filter(|s| **s == wanted).count()
    }
}

/// Binds `addr` now (the process serves before its pod reports ready) and serves `kind`
/// until `stopped`.
fn serve(
    addr: SocketAddr,
    kind: Kind,
    seen: Arc<Mutex<Vec<String>>>,
    stopped: oneshot::Receiver<()>,
) {
    let listener = std::net::TcpListener::bind(addr).expect("the app's port");
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    match kind {
        Kind::Page => {
            let router = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!("{method} {uri}"));
                    Html(format!(
                        "<html><head><title>web</title></head><body><h1 id=\"app\">hello from apps/web</h1><p>app saw {method} {uri} {}</p></body></html>",
                        String::from_utf8_lossy(&body)
                    ))
                }
            });
            tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        }
        Kind::Echo => {
            tokio::spawn(async move {
                tokio::pin!(stopped);
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                            return;
                        };
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push("GET websocket".to_owned());
                        while let Some(Ok(msg)) = ws.next().await {
                            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        }
    }
}
