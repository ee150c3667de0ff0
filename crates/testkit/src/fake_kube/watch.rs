//! Watches of Deployments: `?watch=true` answers a chunked stream of JSON watch events, one
//! a line, from the `resourceVersion` asked for; `fieldSelector=metadata.name=<name>`
//! narrows a list or a watch to one object, as the readiness wait asks.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::server::Body;
use super::state::Event;
use super::{RecordedRequest, Shared};

/// How long a watch lasts when the client names no `timeoutSeconds`.
const DEFAULT_WATCH: Duration = Duration::from_secs(300);

/// Percent-decodes a query value (`+` is a space, as in a form).
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name a `fieldSelector=metadata.name=<name>` selects; `Err` for a selector the fake
/// does not support (the real apiserver supports few fields too).
pub(super) fn name_selector(req: &RecordedRequest) -> Result<Option<String>, String> {
    let Some(raw) = req.query_param("fieldSelector") else {
        return Ok(None);
    };
    let selector = decode(&raw);
    if selector.is_empty() {
        return Ok(None);
    }
    match selector
        .strip_prefix("metadata.name=")
        .or_else(|| selector.strip_prefix("metadata.name=="))
    {
        Some(name) if !name.contains(',') => Ok(Some(name.to_owned())),
        _ => Err(format!(
            "field selector {selector:?} is not supported by the fake (only metadata.name=<name>)"
        )),
    }
}

/// Whether the request asks for a watch.
pub(super) fn is_watch(req: &RecordedRequest) -> bool {
    req.query_param("watch")
        .is_some_and(|v| v == "true" || v == "1")
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut object = object.clone();
    object["kind"] = json!("Deployment");
    object["apiVersion"] = json!("apps/v1");
    let mut s = json!({ "type": kind, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The watch answer: first the object's current state when it is newer than the version
/// asked for (the events a real apiserver would replay), then every later event.
pub(super) fn watch(shared: &Shared, ns: &str, req: &RecordedRequest) -> Response<Body> {
    let name = match name_selector(req) {
        Ok(n) => n,
        Err(msg) => {
            return super::routes::error_response(&super::errors::bad_request(msg));
        }
    };
    let since: u64 = req
        .query_param("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let lasts = req
        .query_param("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_WATCH, Duration::from_secs);
    let (rx, replay) = {
        let st = shared.lock();
        let Some(tx) = &st.objects.events else {
            return super::routes::error_response(&super::errors::bad_request(
                "the fake has no event channel",
            ));
        };
        let rx = tx.subscribe();
        let replay: Vec<Bytes> = st
            .objects
            .list(Some(ns))
            .into_iter()
            .filter(|d| name.as_deref().is_none_or(|n| d["metadata"]["name"] == n))
            .filter(|d| {
                d["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v > since)
            })
            .map(|d| line(if since == 0 { "ADDED" } else { "MODIFIED" }, d))
            .collect();
        (rx, replay)
    };
    let deadline = tokio::time::Instant::now() + lasts;
    let ns = ns.to_owned();
    let replayed = futures::stream::iter(replay.into_iter().map(|b| Ok(Frame::data(b))));
    let live = futures::stream::unfold(rx, move |mut rx| {
        let (ns, name) = (ns.clone(), name.clone());
        async move {
            loop {
                let event: Event = match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    // A watcher this slow would get 410 Gone from a real apiserver: end the
                    // watch so the client lists again.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => return None,
                    Ok(Ok(e)) => e,
                };
                let (e_ns, e_name, kind, object) = event;
                if e_ns == ns && name.as_deref().is_none_or(|n| n == e_name) {
                    return Some((Ok::<_, Infallible>(Frame::data(line(kind, &object))), rx));
                }
            }
        }
    });
    let body = StreamBody::new(futures::StreamExt::chain(replayed, live));
    let mut res = Response::new(BodyExt::boxed_unsync(body));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
