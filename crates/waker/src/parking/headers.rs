//! The headers a forward changes: hop-by-hop headers are the connection's, not the
//! request's, and `X-Forwarded-*` are believed only from trusted gateways.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::caller::Caller;

// Names as `HeaderName`s, not `&str`: a map looks a `&str` up by parsing it first, and each
// forward makes about twenty such lookups.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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

/// The hop-by-hop headers every request and answer loses (`Proxy-*` and those `Connection`
/// lists come on top).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    KEEP_ALIVE,
    PROXY_CONNECTION,
];

/// Removes the hop-by-hop headers: `Connection` and every header it lists, `Keep-Alive`,
/// `Transfer-Encoding`, `Proxy-*`, `TE` except `trailers` (so the app may send trailers),
/// and `Upgrade`, which comes back (with `Connection: upgrade`) when `upgrade` is carried.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<&HeaderValue>) {
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
    // One pass over the names present, then a removal of each hop-by-hop one found: a
    // request or answer rarely carries more than `Connection`, and a removal looks its name
    // up whether it is there or not.
    let listed: Vec<&str> = connection_tokens(headers).collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            HOP_BY_HOP.contains(k)
                || k.as_str().starts_with("proxy-")
                || listed.iter().any(|t| t.eq_ignore_ascii_case(k.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
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
    // Room for the three at once: one growth of the map instead of one per insert.
    headers.reserve(3);
    let ip = ip_text(caller.ip);
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

/// `ip` as text. IPv4 by hand: its `Display` goes through the formatter (about 1,300
/// instructions in a release build), once for every forward.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

#[cfg(test)]
mod tests;
