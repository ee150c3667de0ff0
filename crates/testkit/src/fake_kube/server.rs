//! The HTTP side: accepting connections, and per request recording it, drawing the injected
//! faults and latency, then routing it.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::errors;
use super::routes::{error_response, route};
use super::{FaultAction, RecordedRequest, Shared};

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    warn!(error = %e, "fake API server: accept failed");
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    shared
        .open_connections
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let counted = shared.clone();
    let _open = InFlight(&counted.open_connections);
    // A handler that draws a DropConnection fault signals here; dropping the connection
    // future closes the socket with the request unanswered.
    let drop_now = Arc::new(Notify::new());
    let sever = shared
        .sever
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let signal = drop_now.clone();
    let service = service_fn(move |req| {
        let (shared, signal) = (shared.clone(), signal.clone());
        async move { Ok::<_, Infallible>(handle(&shared, &signal, req).await) }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                debug!(error = %e, "fake API server: connection ended with an error");
            }
        }
        () = drop_now.notified() => debug!("fake API server: connection dropped (injected)"),
        () = sever.cancelled() => debug!("fake API server: connection severed"),
        () = shutdown.cancelled() => {}
    }
}

/// A whole answer, or a watch's stream of events.
pub(super) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// Counts a running handler (or an open connection); dropped with it, also when its
/// connection is torn down.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn handle(shared: &Arc<Shared>, drop_now: &Notify, req: Request<Incoming>) -> Response<Body> {
    shared
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _in_flight = InFlight(&shared.in_flight);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&errors::bad_request(format!("reading the body: {e}"))),
    };
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        content_type: header(header::CONTENT_TYPE),
        accept: header(header::ACCEPT),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: None,
        seq: 0,
    };

    let (delay, action, seq) = {
        let mut st = shared.lock();
        st.seq += 1;
        let seq = st.seq;
        st.requests.push(RecordedRequest {
            seq,
            ..recorded.clone()
        });
        let mut delay = st.latency;
        let mut action = None;
        for f in &mut st.faults {
            if f.times == 0 || !f.matches(&parts.method, &recorded.path) {
                continue;
            }
            match &f.action {
                FaultAction::Latency(d) => delay += *d,
                FaultAction::Status(_) | FaultAction::DropConnection if action.is_none() => {
                    action = Some(f.action.clone());
                }
                _ => continue,
            }
            f.times -= 1;
        }
        st.faults.retain(|f| f.times > 0);
        (delay, action, seq)
    };
    if !delay.is_zero() {
        // Injected latency: the fake plays a slow apiserver; this is the thing under test.
        tokio::time::sleep(delay).await;
    }
    let response = match action {
        Some(FaultAction::DropConnection) => {
            drop_now.notify_one();
            // Never answer: the connection task drops this future with the connection.
            std::future::pending::<()>().await;
            unreachable!("a dropped connection's handler is never resumed")
        }
        Some(FaultAction::Status(code)) => {
            let message = format!("injected fault: HTTP {code}");
            error_response(&errors::status(
                code,
                errors::reason_for(code),
                message,
                Value::Null,
            ))
        }
        Some(FaultAction::Latency(_)) | None => {
            let response = route(shared, &parts.method, &recorded, &body);
            schedule_readiness(shared);
            response
        }
    };
    let mut st = shared.lock();
    if let Some(r) = st.requests.iter_mut().rev().find(|r| r.seq == seq) {
        r.status = Some(response.status().as_u16());
    }
    response
}

/// Makes the pods of every scale-up since the last call ready after the configured delay.
pub(super) fn schedule_readiness(shared: &Arc<Shared>) {
    let (pending, delay) = {
        let mut st = shared.lock();
        (
            std::mem::take(&mut st.objects.pending_ready),
            st.objects.ready_delay,
        )
    };
    let hook = shared.ready_hook();
    for (ns, name, generation, up) in pending {
        if !up {
            if let Some(hook) = &hook {
                hook(&ns, &name, false);
            }
            continue;
        }
        let (shared, hook) = (shared.clone(), hook.clone());
        tokio::spawn(async move {
            // The simulated pod start: the thing a readiness wait is tested against.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // The app's process starts before its pod reports ready, as a readiness probe
            // only passes once the process serves.
            let current = shared.lock().objects.is_current(&ns, &name, generation);
            if !current {
                return;
            }
            if let Some(hook) = &hook {
                hook(&ns, &name, true);
            }
            if shared.lock().objects.mark_ready(&ns, &name, generation) {
                debug!(namespace = %ns, name = %name, "fake API server: pods ready");
            }
        });
    }
}
