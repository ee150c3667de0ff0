//! Watches: `?watch=true` answers a chunked stream of JSON watch events, one
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
use super::state::{Event, Objects};
use super::{RecordedRequest, Shared};

/// How long a watch lasts when the client names no `timeoutSeconds`.
const DEFAULT_WATCH: Duration = Duration::from_secs(300);

/// Percent-decodes a query value (`+` is a space, as in a form).
pub(super) fn decode(v: &str) -> String {
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

/// What a watch follows: one resource, in one namespace or all.
pub(super) struct Target {
    pub resource: &'static str,
    pub kind: &'static str,
    pub api_version: String,
    pub namespace: Option<String>,
}

fn line(target: &Target, kind: &str, object: &Value) -> Bytes {
    let mut object = object.clone();
    object["kind"] = json!(target.kind);
    object["apiVersion"] = json!(target.api_version);
    let mut s = json!({ "type": kind, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The watch answer: first the current state of the selected objects newer than the
/// version asked for (the events a real apiserver would replay), then every later event.
/// `selected` filters by selectors; `current` lists the objects under the store's lock
/// (borrowed: only those replayed are encoded, so a watch of 100,000 objects from a recent
/// version copies none of them).
pub(super) fn watch(
    shared: &Shared,
    target: Target,
    req: &RecordedRequest,
    selected: impl Fn(&Value) -> bool + Send + Sync + 'static,
    current: impl for<'a> FnOnce(&'a Objects) -> Vec<&'a Value>,
) -> Response<Body> {
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
        let replay: Vec<Bytes> = current(&st.objects)
            .iter()
            .filter(|v| selected(v))
            .filter(|v| {
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v > since)
            })
            .map(|v| line(&target, if since == 0 { "ADDED" } else { "MODIFIED" }, v))
            .collect();
        (rx, replay)
    };
    let deadline = tokio::time::Instant::now() + lasts;
    let target = std::sync::Arc::new(target);
    let selected = std::sync::Arc::new(selected);
    let replayed = futures::stream::iter(replay.into_iter().map(|b| Ok(Frame::data(b))));
    let live = futures::stream::unfold(rx, move |mut rx| {
        let (target, selected) = (target.clone(), selected.clone());
        async move {
            loop {
                let event: Event = match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    // A watcher this slow would get 410 Gone from a real apiserver: end the
                    // watch so the client lists again.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => return None,
                    Ok(Ok(e)) => e,
                };
                let (resource, e_ns, _, kind, object) = event;
                if resource == target.resource
                    && target.namespace.as_ref().is_none_or(|ns| *ns == e_ns)
                    && selected(&object)
                {
                    let frame = Frame::data(line(&target, kind, &object));
                    return Some((Ok::<_, Infallible>(frame), rx));
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
