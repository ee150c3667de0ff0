//! What a proxied request says: which app, where to send the visitor back, and what the app
//! itself answered.

use http::{HeaderMap, Request, StatusCode, header};
use idle_scaler_core::{ClusterName, Target};

/// ingress-nginx's custom-error headers.
const NAMESPACE_HEADER: &str = "x-namespace";
const SERVICE_HEADER: &str = "x-service-name";
const ORIGINAL_URI_HEADER: &str = "x-original-uri";
/// The status the upstream answered, as ingress-nginx's custom-error location reports it.
const CODE_HEADER: &str = "x-code";

fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Which app: the target header (`<namespace>/<name>`, or `<cluster>:<namespace>/<name>`
/// for an app of another cluster), else ingress-nginx's `X-Namespace` + `X-Service-Name`.
/// The target header wins: a proxy sets it, while a client's own copies of ingress-nginx's
/// headers may pass through. Bare names are of `cluster`.
pub(crate) fn target_of(
    headers: &HeaderMap,
    target_header: &str,
    cluster: Option<&ClusterName>,
) -> Option<Target> {
    let own = idle_scaler_core::scheme(cluster);
    let (scheme, namespace, name) = if let Some(value) = get(headers, target_header) {
        let (scheme, path) = match value.split_once(':') {
            Some((cluster, path)) => (format!("k8s@{cluster}"), path),
            None => (own, value),
        };
        let (namespace, name) = path.split_once('/')?;
        (scheme, namespace, name)
    } else {
        // Service -> Deployment by name.
        let namespace = get(headers, NAMESPACE_HEADER)?;
        (own, namespace, get(headers, SERVICE_HEADER)?)
    };
    // The same rule as the table's provider ids: a malformed name is no app.
    Target::parse(&format!("{scheme}:{namespace}/{name}")).ok()
}

/// The original URI to redirect to. A path on another host (`//host`, `/\host`, a scheme) is
/// sent to `/` of this host, as a real client may ask for such a path; `None` for a URI with
/// a control character, which no client sends (they percent-encode) and which browsers drop
/// when they read a `Location` (`/<TAB>/evil.example` is `//evil.example`): only a forged
/// header carries one, and it is refused rather than redirected anywhere.
pub(crate) fn original_uri<B>(req: &Request<B>) -> Option<String> {
    let given = match req.headers().get(ORIGINAL_URI_HEADER) {
        // Bytes `to_str` refuses (not visible ASCII) fall back to the request's own URI.
        Some(v) if v.to_str().is_ok() => v.to_str().ok().map(str::to_owned),
        _ => None,
    }
    .unwrap_or_else(|| {
        req.uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
    });
    same_host(&given)
}

/// `uri` if it is a path on this host; `/` for another host's; `None` with a control character.
pub(crate) fn same_host(uri: &str) -> Option<String> {
    if uri.chars().any(char::is_control) {
        return None;
    }
    if uri.starts_with('/') && !uri.starts_with("//") && !uri.contains('\\') {
        Some(uri.to_owned())
    } else {
        Some("/".to_owned())
    }
}

/// The app's own error as the proxy reports it (`X-Code`), when it is one the waker may pass
/// through: 502 or 503.
pub(crate) fn proxied_error(headers: &HeaderMap) -> Option<StatusCode> {
    let code = get(headers, CODE_HEADER)?.parse::<u16>().ok()?;
    [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE]
        .into_iter()
        .find(|s| s.as_u16() == code)
}

pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    get(headers, header::ACCEPT.as_str()).is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests;
