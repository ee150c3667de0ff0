//! The forward: the request streamed to the app's ready endpoint and its answer streamed
//! back. HTTP/1.1 requests go on kept-alive connections from the listener's [`Pool`] (a
//! connection per request made the burst released at readiness cost a connect and a close
//! each); upgrades get a connection of their own.
//!
//! A refused connect is retried until the deadline: an endpoint is ready before its process
//! always listens. A request is sent again only when hyper gives it back unwritten (a kept
//! connection the app closed meanwhile); once a byte of it went, it is never sent again (the
//! app may have acted on it), and a broken exchange is answered `502`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Request, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::gate::{GatedBody, Place};
use super::pool::Pool;
use super::{headers, upgrade};
use crate::answer;

/// The first wait after a refused connect; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(5);
const MAX_RETRY_WAIT: Duration = Duration::from_millis(200);

/// Why a forward did not reach the app.
#[derive(Debug)]
pub(super) enum Unreached {
    /// No connection by the deadline: nothing of the request was sent.
    NotListening,
}

/// A connection to `to`, retrying refused connects until `deadline`.
async fn connect(to: SocketAddr, deadline: Instant) -> Result<TcpStream, Unreached> {
    let mut wait = FIRST_RETRY_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect(to)).await {
            Ok(Ok(stream)) => {
                // The first bytes of a held request should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if Instant::now() + wait >= deadline {
                    debug!(endpoint = %to, "parking: app still refuses connections at the deadline");
                    return Err(Unreached::NotListening);
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
            Ok(Err(e)) => {
                debug!(endpoint = %to, error = %e, "parking: connect to the app failed");
                return Err(Unreached::NotListening);
            }
            Err(_) => return Err(Unreached::NotListening),
        }
    }
}

/// A new HTTP/1.1 connection to `to` (upgrades carried), its driver spawned.
async fn open(to: SocketAddr, deadline: Instant) -> Result<SendRequest<Incoming>, Unreached> {
    let stream = connect(to, deadline).await?;
    match hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
    {
        Ok((sender, conn)) => {
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    debug!(error = %e, "parking: connection to the app ended with an error");
                }
            });
            Ok(sender)
        }
        Err(e) => {
            // The handshake sends nothing: still safe to give up without an exchange.
            debug!(endpoint = %to, error = %e, "parking: handshake with the app failed");
            Err(Unreached::NotListening)
        }
    }
}

/// Sends `req` (headers already rewritten) to the app at `to` and gives back its answer,
/// body and trailers streaming, with `Connection: close`. `Err` only when nothing was sent.
pub(super) async fn forward(
    mut req: Request<Incoming>,
    to: SocketAddr,
    deadline: Instant,
    place: Place,
    pool: &Arc<Pool>,
) -> Result<Response, Unreached> {
    let caller_upgrade =
        headers::carried_upgrade(req.headers()).map(|_| hyper::upgrade::on(&mut req));
    // An upgraded connection is never given back: it gets one of its own.
    let reuse = caller_upgrade.is_none();
    let (sender, mut res) = loop {
        let kept = if reuse { pool.take(to) } else { None };
        let reused = kept.is_some();
        let mut sender = match kept {
            Some(sender) => sender,
            None => open(to, deadline).await?,
        };
        if reused && sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(res) => break (sender, res),
            Err(mut e) => match e.take_message() {
                // Not a byte written: another connection may carry it.
                Some(unsent) if reused => req = unsent,
                Some(_) => {
                    debug!(endpoint = %to, error = %e.into_error(), "parking: a new connection to the app closed before the request went");
                    return Err(Unreached::NotListening);
                }
                None => {
                    warn!(endpoint = %to, error = %e.into_error(), "parking: the app broke off the forwarded request");
                    return Ok(answer::bad_gateway());
                }
            },
        }
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        let protocol = res.headers().get(header::UPGRADE).cloned();
        if let (Some(caller), Some(protocol)) = (caller_upgrade, protocol) {
            // A long-lived upgraded connection is not a burst: it takes no place.
            drop(place);
            upgrade::splice(caller, hyper::upgrade::on(&mut res));
            headers::strip_hop_by_hop(res.headers_mut(), Some(&protocol));
            return Ok(res.map(Body::new));
        }
        // A switch nobody asked for cannot be carried.
        warn!(endpoint = %to, "parking: the app switched protocols unasked");
        return Ok(answer::bad_gateway());
    }
    let kept = (reuse && !closes(&res)).then_some(sender);
    headers::strip_hop_by_hop(res.headers_mut(), None);
    // The app is ready: the caller's next request should reach it, not the waker.
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(res.map(|body| {
        let gated = GatedBody::new(body, place);
        match kept {
            Some(sender) => Body::new(gated.returning(pool.clone(), to, sender)),
            None => Body::new(gated),
        }
    }))
}

/// Whether the app said it closes the connection after this answer.
fn closes(res: &Response<Incoming>) -> bool {
    res.version() < Version::HTTP_11
        || res
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// [`forward`] over HTTP/2 with prior knowledge, for a port declared `kubernetes.io/h2c`:
/// the request (its URI absolute, `Host` as `:authority`) and its answer stream as they are.
/// The caller's connection is closed with `GOAWAY` by the listener, not by a header.
pub(super) async fn forward_h2(
    req: Request<Incoming>,
    to: SocketAddr,
    deadline: Instant,
    place: Place,
) -> Result<Response, Unreached> {
    let stream = connect(to, deadline).await?;
    let (mut sender, conn) = match hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
    {
        Ok(pair) => pair,
        Err(e) => {
            // The preface and settings are not the request: nothing of it was sent.
            debug!(endpoint = %to, error = %e, "parking: HTTP/2 handshake with the app failed");
            return Err(Unreached::NotListening);
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "parking: HTTP/2 connection to the app ended with an error");
        }
    });
    let mut res = match sender.send_request(req).await {
        Ok(res) => res,
        Err(e) => {
            warn!(endpoint = %to, error = %e, "parking: the app broke off the forwarded request");
            return Ok(answer::bad_gateway());
        }
    };
    headers::strip_hop_by_hop(res.headers_mut(), None);
    Ok(res.map(|body| Body::new(GatedBody::new(body, place))))
}
