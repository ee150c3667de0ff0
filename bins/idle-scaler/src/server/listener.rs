//! The accept loop: a connection cap, a listen backlog, a header-read timeout, an idle
//! timeout and a graceful drain with a deadline. `axum::serve` offers none of these, so
//! connections are served by hyper directly, each on a task of a [`TaskTracker`] the daemon
//! waits for at shutdown.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this time of its first byte being awaited;
    /// otherwise the connection is closed (slow or half-sent requests).
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed once no request is in
    /// flight on it (a request in flight, such as a slow wake, is answered first).
    pub idle_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Connections the kernel queues beyond the cap (capped by `net.core.somaxconn`); one
    /// more finds the queue full and its connect stalls.
    pub listen_backlog: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            listen_backlog: 512,
        }
    }
}

/// How a server stops. `stop`: the listener closes (new connections are refused) and open
/// connections finish their request in flight. `cut`, later: every request still in flight
/// (a visitor held for a waking app, a slow wake) is answered at once with
/// [`cut_short`], so that no caller gets an empty reply when the process exits.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop accepting, drain.
    pub stop: CancellationToken,
    /// Answer what is still in flight.
    pub cut: CancellationToken,
}

impl Shutdown {
    /// Stops now and cuts `cut_after` from now.
    pub fn begin(&self, cut_after: Duration) {
        self.stop.cancel();
        let cut = self.cut.clone();
        tokio::spawn(async move {
            tokio::time::sleep(cut_after).await;
            cut.cancel();
        });
    }
}

/// Retry-After of [`cut_short`]: the app a held visitor waits for keeps waking, and another
/// instance (or this one restarted) answers the retry.
const CUT_RETRY_AFTER: u32 = 2;

/// The answer to a request still in flight when the server is cut: 503 + `Retry-After`,
/// the same body as the waker's generic answer (it tells nothing about the app).
fn cut_short() -> Response {
    let mut res = Response::new(Body::from("503 Service Unavailable\n"));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(CUT_RETRY_AFTER));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Binds `addr` with SO_REUSEADDR (as `TcpListener::bind` does) and a listen backlog of
/// `backlog` instead of the standard library's 128.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts until `shutdown.stop`, then stops accepting (new connections are refused) and
/// asks every open connection to finish its request in flight and close. Connection tasks
/// run on `connections`; the caller waits for it to drain.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: Shutdown,
    connections: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            () = shutdown.stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            limits,
            shutdown.clone(),
            permit,
        ));
    }
    // Dropping the listener closes the socket: connection attempts from now on are refused.
    drop(listener);
    connections.close();
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    shutdown: Shutdown,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let last_io = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        started,
        last_io: last_io.clone(),
    });
    let cut = shutdown.cut.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The handlers see the peer as with `into_make_service_with_connect_info`.
        request.extensions_mut().insert(ConnectInfo(peer));
        let (app, cut) = (app.clone(), cut.clone());
        async move {
            tokio::select! {
                biased;
                answer = app.oneshot(request) => answer,
                // Dropping the handler leaves a wake it started running (its own task).
                () = cut.cancelled() => Ok(cut_short()),
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);

    let check_every = (limits.idle_timeout / 4).max(Duration::from_millis(50));
    let mut check = tokio::time::interval(check_every);
    let mut closing = false;
    loop {
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(e) = done {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = shutdown.stop.cancelled(), if !closing => {
                // Finishes the request in flight, if any, then closes.
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = check.tick(), if !closing => {
                let idle_for = started.elapsed().saturating_sub(Duration::from_millis(last_io.load(Ordering::Relaxed)));
                if idle_for >= limits.idle_timeout {
                    debug!(%peer, idle_s = idle_for.as_secs(), "closing an idle HTTP connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// A stream that stamps the time of its last successful read or write.
struct Tracked {
    inner: TcpStream,
    started: Instant,
    last_io: Arc<AtomicU64>,
}

impl Tracked {
    fn stamp(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io.store(millis, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.stamp();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
