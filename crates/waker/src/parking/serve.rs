//! Serving: one accept loop per listener port (the i-th listener is parked port i), a
//! connection cap shared by all of them (beyond it, connections wait in the listen backlog),
//! a header-read timeout, and a drain: when asked to stop, no new connection is accepted,
//! held requests are answered at once (forwarded if the app is ready, else `503` +
//! `Retry-After`), and every connection closes after its answer.
//!
//! A connection speaks HTTP/1.1, or HTTP/2 with prior knowledge (its first bytes tell);
//! HTTP/2 requests are served only for ports declared `kubernetes.io/h2c`. An HTTP/1.1
//! answer given with the request's body unread says `Connection: close`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Version, header};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use idle_scaler_core::{Error, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::hold::{self, Conn};
use super::{MAX_LISTENERS, ParkingListener};

/// How long the accept loop waits after an accept error (out of file descriptors) before it
/// tries again, so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

impl ParkingListener {
    /// Serves `listeners` (the i-th one is the parked Services' port i, at most
    /// [`MAX_LISTENERS`]) until `shutdown` is cancelled, then drains: held requests are
    /// answered at once and every connection closes after its answer. Returns when the last
    /// connection has closed.
    pub async fn serve(
        self: Arc<Self>,
        listeners: Vec<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        if listeners.len() > MAX_LISTENERS {
            return Err(Error::invalid(format!(
                "the parking listener serves at most {MAX_LISTENERS} ports, {} given",
                listeners.len()
            )));
        }
        let cap = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let connections = TaskTracker::new();
        let mut loops = Vec::with_capacity(listeners.len());
        for (offset, listener) in (0u16..).zip(listeners) {
            let this = self.clone();
            let (cap, connections, shutdown) = (cap.clone(), connections.clone(), shutdown.clone());
            loops.push(tokio::spawn(async move {
                loop {
                    let permit = tokio::select! {
                        () = shutdown.cancelled() => return,
                        permit = cap.clone().acquire_owned() => match permit {
                            Ok(p) => p,
                            Err(_) => return,
                        },
                    };
                    let (stream, _) = tokio::select! {
                        () = shutdown.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(e) => {
                                warn!(error = %e, offset, "parking: accept failed");
                                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                                continue;
                            }
                        },
                    };
                    let (this, shutdown) = (this.clone(), shutdown.clone());
                    connections.spawn(async move {
                        this.serve_connection(stream, offset, shutdown).await;
                        drop(permit);
                    });
                }
            }));
        }
        for accept_loop in loops {
            let _ = accept_loop.await;
        }
        connections.close();
        connections.wait().await;
        Ok(())
    }

    /// Serves one accepted connection that came in on the parked port `offset`, until the
    /// client closes it, an answer closes it, or `shutdown` drains it. Uncapped: the
    /// connection cap is [`ParkingListener::serve`]'s.
    pub async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        offset: u16,
        shutdown: CancellationToken,
    ) {
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => {
                debug!(error = %e, "parking: connection gone before it was served");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        // Every poll of this connection, and of a request it holds, asks whether the listener
        // stops: on the listener's own token that is a lock all connections share (on both
        // workers, for each of a burst of released requests); a child token of the
        // connection's own is asked without contention, and is cancelled with its parent.
        let shutdown = shutdown.child_token();
        let header_read_timeout = self.limits.header_read_timeout;
        let close = CancellationToken::new();
        let conn = Arc::new(Conn {
            listener: self,
            peer,
            offset,
            shutdown: shutdown.clone(),
            close: close.clone(),
            caller: OnceCell::new(),
        });
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let conn = conn.clone();
            async move {
                // An HTTP/1 request whose body is not read (every answer but a forward's)
                // leaves that body between it and the next request: hyper then closes the
                // connection, and without a word a kept-alive caller's next request would
                // meet a closed connection instead of an answer.
                let unread = req.version() < Version::HTTP_2 && !req.body().is_end_stream();
                let mut res = hold::handle(&conn, req).await;
                if unread && !res.headers().contains_key(header::CONNECTION) {
                    res.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(res)
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        // `close`: an HTTP/2 answer for a ready app ends the connection with GOAWAY (in-flight
        // streams finish), as `Connection: close` does for HTTP/1.1.
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            () = close.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            debug!(error = %e, %peer, "parking: connection ended with an error");
        }
    }
}
