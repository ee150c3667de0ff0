//! Hostname and path matching as each specification defines it.

/// Whether `pattern` (a Gateway API hostname: exact, or `*.` + suffix) matches `host`.
/// A wildcard matches any number of labels before its suffix, never the bare suffix.
pub fn gateway_host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => pattern == host,
    }
}

/// The hostnames a route with `route` hostnames serves through a listener with hostname
/// `listener` (`None`: any host), as the Gateway API defines their intersection. Empty
/// `route`: the listener's; no listener hostname: the route's; both: each route hostname
/// the listener's covers, and the listener's where it is the narrower one. An empty answer
/// with `route` and `listener` both given means the route does not attach there; `None`
/// means any host.
pub fn intersect_hostnames(route: &[String], listener: Option<&str>) -> Option<Vec<String>> {
    let Some(l) = listener else {
        return (!route.is_empty()).then(|| route.to_vec());
    };
    if route.is_empty() {
        return Some(vec![l.to_owned()]);
    }
    let mut out = Vec::new();
    for r in route {
        let kept = if gateway_host_matches(l, r) || l == r {
            r.as_str()
        } else if gateway_host_matches(r, l) {
            l
        } else {
            continue;
        };
        if !out.iter().any(|o: &String| o == kept) {
            out.push(kept.to_owned());
        }
    }
    Some(out)
}

/// A Gateway API `PathPrefix` (or an Ingress `Prefix`): matches `path` on `/` boundaries
/// (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`; a trailing `/` in the prefix is
/// ignored).
pub(super) fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests;
