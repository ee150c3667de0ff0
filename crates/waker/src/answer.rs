//! The answers: the browser's starting page, the redirect to the original URI, and the one
//! generic "unavailable" answer that tells nothing about which apps exist.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use tokio::time::Instant;

/// The header every answer carries: the cold start so far, in milliseconds.
pub const COLD_START_HEADER: &str = "x-idle-scaler-cold-start-ms";
/// Marks the waker's own "still starting" answers (the page's poll looks for it).
pub const STARTING_HEADER: &str = "x-idle-scaler-starting";
/// The header the starting page's script polls with.
pub const POLL_HEADER: &str = "x-idle-scaler-poll";

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

fn base(status: StatusCode, cold_start: Duration, body: Body) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&millis(cold_start)) {
        h.insert(COLD_START_HEADER, v);
    }
    res
}

/// An error with a generic body (`503 Service Unavailable`), nothing of the request in it.
fn error(status: StatusCode) -> Response {
    let mut res = base(status, Duration::ZERO, Body::from(format!("{status}\n")));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// 503 + `Retry-After`, the same for unknown apps, robots and failures.
pub fn unavailable(retry_after: u64) -> Response {
    let mut res = error(StatusCode::SERVICE_UNAVAILABLE);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    res
}

/// A settled app's own 502/503, passed through: the same status, no `Location`.
pub fn passed_through(status: StatusCode) -> Response {
    error(status)
}

/// 502: the app broke off a request the parking listener forwarded (it is never sent again).
pub fn bad_gateway() -> Response {
    error(StatusCode::BAD_GATEWAY)
}

/// 503 for a held client whose app did not become ready in time.
pub fn timed_out(started: Instant) -> Response {
    let mut res = unavailable(5);
    if let Ok(v) = HeaderValue::from_str(&millis(started.elapsed())) {
        res.headers_mut().insert(COLD_START_HEADER, v);
    }
    res
}

/// 307 to the original URI: the client repeats its request (method and body kept).
pub fn ready(location: &str, cold_start: Duration) -> Response {
    let mut res = base(StatusCode::TEMPORARY_REDIRECT, cold_start, Body::empty());
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The answer to the starting page's poll: still starting (503, marked) or ready (200).
pub fn poll(is_ready: bool, cold_start: Duration) -> Response {
    if is_ready {
        return base(StatusCode::OK, cold_start, Body::from("ready\n"));
    }
    let mut res = base(
        StatusCode::SERVICE_UNAVAILABLE,
        cold_start,
        Body::from("starting\n"),
    );
    let h = res.headers_mut();
    h.insert(STARTING_HEADER, HeaderValue::from_static("1"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    res
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// The browser's page: self-contained (no external assets), readable without JavaScript
/// (a meta refresh reloads it every 2 s), and with JavaScript it polls the same URL with
/// [`POLL_HEADER`] every second and reloads once the answer is no longer the waker's
/// "starting" one (the app answers, or the waker says ready).
pub fn starting_page(app: &str, cold_start: Duration) -> Response {
    let app = escape(app);
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<noscript><meta http-equiv="refresh" content="2"></noscript>
<title>Starting {app}</title>
<style>body{{font-family:system-ui,sans-serif;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center;background:#f6f7f9;color:#222}}main{{text-align:center;padding:2rem}}.dot{{display:inline-block;width:.6rem;height:.6rem;margin:0 .2rem;border-radius:50%;background:#4a7;animation:b 1.2s infinite}}.dot:nth-child(2){{animation-delay:.2s}}.dot:nth-child(3){{animation-delay:.4s}}@keyframes b{{50%{{opacity:.2}}}}</style>
</head><body><main>
<h1 id="idle-scaler-starting">Starting {app}</h1>
<p>This app was asleep to save resources and is waking up now. This page reloads by itself as soon as it is ready.</p>
<p><span class="dot"></span><span class="dot"></span><span class="dot"></span></p>
</main>
<script>
(function(){{
  function poll(){{
    fetch(location.href,{{headers:{{"X-Idle-Scaler-Poll":"1"}},cache:"no-store",redirect:"manual"}})
      .then(function(r){{ if(!r.headers.get("X-Idle-Scaler-Starting")){{ location.reload(); }} else {{ setTimeout(poll,1000); }} }})
      .catch(function(){{ setTimeout(poll,1000); }});
  }}
  setTimeout(poll,1000);
}})();
</script>
</body></html>
"#
    );
    let mut res = base(
        StatusCode::SERVICE_UNAVAILABLE,
        cold_start,
        Body::from(html),
    );
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    h.insert(STARTING_HEADER, HeaderValue::from_static("1"));
    res
}
