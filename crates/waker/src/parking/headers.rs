//! The headers a forward changes: hop-by-hop headers are the connection's, not the
//! request's, and `X-Forwarded-*` are believed only from trusted gateways.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::caller::Caller;

const KEEP_ALIVE: &str = "keep-alive";
const PROXY_CONNECTION: &str = "proxy-connection";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// The protocol a request asks to switch to, when it asks in the form a proxy carries
/// (`Connection: upgrade` and an `Upgrade` other than `h2c`, which is HTTP/2 on this very
/// connection and only for ports declared for it).
pub(super) fn carried_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE)?;
    let h2c = protocol
        .to_str()
        .is_ok_and(|p| p.split(',').any(|p| p.trim().eq_ignore_ascii_case("h2c")));
    (asks && !h2c).then(|| protocol.clone())
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the hop-by-hop headers: `Connection` and every header it lists, `Keep-Alive`,
/// `Transfer-Encoding`, `Proxy-*`, `TE` except `trailers` (so the app may send trailers),
/// and `Upgrade`, which comes back (with `Connection: upgrade`) when `upgrade` is carried.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<&HeaderValue>) {
    let listed: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        });
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static(KEEP_ALIVE),
        HeaderName::from_static(PROXY_CONNECTION),
    ] {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
}

/// `X-Forwarded-For`, `-Proto` and `-Host`: a trusted gateway's are kept (the caller's
/// address appended to `-For`, the others set when missing); anyone else's are replaced, as
/// is a standard `Forwarded` header, so the app never believes what a caller claims.
pub(super) fn set_forwarded(headers: &mut HeaderMap, caller: &Caller, host: Option<&HeaderValue>) {
    let ip = caller.ip.to_string();
    let for_value = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(chain) if caller.trusted && !chain.trim().is_empty() => format!("{chain}, {ip}"),
        _ => ip,
    };
    if !caller.trusted {
        headers.remove(header::FORWARDED);
        headers.remove(X_FORWARDED_PROTO);
        headers.remove(X_FORWARDED_HOST);
    }
    if let Ok(v) = HeaderValue::from_str(&for_value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Some(host) = host.filter(|_| !headers.contains_key(X_FORWARDED_HOST)) {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

#[cfg(test)]
mod tests;
