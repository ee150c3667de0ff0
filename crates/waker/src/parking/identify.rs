//! Which parked Service a request is for: its `Host` alone (port removed, lowercase), never
//! a header a caller or a proxy could set to name another app. A cluster DNS form names a
//! parked Service directly; a public hostname does through the route index (the rule the
//! gateway chose, by host and path), and only when a trusted gateway asks.

use std::sync::Arc;

use http::{Request, header};
use idle_scaler_core::{ParkedServiceInfo, ParkingDirectory, RouteBackend, RouteIndex};
use tracing::debug;

use super::caller::Caller;

/// The name the request's `Host` gives (or, without one, its absolute URI's host): port,
/// IPv6 brackets and a final dot removed, lowercase. `None` when there is no usable name.
pub(super) fn host_of<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    host_name(raw)
}

/// `raw` (`name`, `name:port`, `[v6]`, `[v6]:port`) as a lookup name.
pub(super) fn host_name(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let name = if let Some(rest) = raw.strip_prefix('[') {
        let (v6, port) = rest.split_once(']')?;
        if !(port.is_empty() || is_port(port.strip_prefix(':')?)) {
            return None;
        }
        v6
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => raw,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'));
    valid.then(|| name.to_ascii_lowercase())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The parked Service a request names: `host` by its cluster DNS forms first (for any
/// caller; the caller check comes after), then, for a caller trusted as a gateway only, a
/// public hostname (+ `path`) through the route index. `None`: the generic answer, nothing
/// woken.
pub(super) fn parked_service(
    directory: &dyn ParkingDirectory,
    routes: Option<&dyn RouteIndex>,
    caller: &Caller,
    host: &str,
    path: &str,
    offset: u16,
) -> Option<Arc<ParkedServiceInfo>> {
    if let Some(service) = directory.lookup(host, caller.namespace.as_deref()) {
        return Some(service);
    }
    // Anyone else naming a public hostname learns nothing and wakes nothing: a gateway
    // decided the route, a pod did not.
    let routes = routes.filter(|_| caller.trusted)?;
    let backends = routes.resolve(host, path);
    let service = routed(directory, &backends, offset);
    match &service {
        Some(s) => debug!(host, path, namespace = %s.namespace, service = %s.name,
            "parking: a gateway's public hostname routes to this parked Service"),
        None if !backends.is_empty() => debug!(
            host,
            path,
            backends = backends.len(),
            "parking: none of the route's backends is parked"
        ),
        None => {}
    }
    service
}

/// Of a matched rule's `backends`, the parked Service to wake: the first whose parked port
/// at listener `offset` is the port the route sends to (by number, or by name for an
/// `Ingress`), else the first parked one (a weighted split: any parked backend may wake). A
/// backend whose Service is not parked never wakes anything.
pub(super) fn routed(
    directory: &dyn ParkingDirectory,
    backends: &[RouteBackend],
    offset: u16,
) -> Option<Arc<ParkedServiceInfo>> {
    let parked: Vec<_> = backends
        .iter()
        .filter_map(|b| {
            // The `<svc>.<ns>` form names exactly that Service, whoever asks.
            let service = directory.lookup(&format!("{}.{}", b.service, b.namespace), None)?;
            (service.namespace == b.namespace && service.name == b.service).then_some((b, service))
        })
        .collect();
    let port_matches = |(b, s): &&(&RouteBackend, Arc<ParkedServiceInfo>)| {
        s.port_at(offset)
            .is_some_and(|p| match (b.port, &b.port_name) {
                (Some(number), _) => p.port == number,
                (None, Some(name)) => p.name.as_ref() == Some(name),
                (None, None) => false,
            })
    };
    parked
        .iter()
        .find(port_matches)
        .or_else(|| parked.first())
        .map(|(_, s)| s.clone())
}

#[cfg(test)]
mod tests;
