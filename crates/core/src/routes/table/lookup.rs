//! Choosing the winning rule among a host key's routes.

use std::sync::Arc;

use super::super::RouteBackend;
use super::super::matching::prefix_matches;
use super::{KindTable, RouteKind, Rule, namespace_of};

/// Which rules a lookup step considers.
#[derive(Clone, Copy)]
pub(super) enum Step<'a> {
    /// Rules naming this hostname (exact, or the `*.` pattern).
    Host(&'a str),
    /// Rules for any host.
    AnyHost,
    /// Ingress default backends.
    Default,
}

/// The backends of the best rule of the routes `keys` of `kt` that `step` and `path`
/// select.
pub(super) fn best<'a>(
    kind: RouteKind,
    kt: &KindTable,
    keys: impl IntoIterator<Item = &'a Arc<str>>,
    step: Step<'_>,
    path: &str,
) -> Option<Vec<RouteBackend>> {
    let mut best: Option<(Rank<'_>, &Rule)> = None;
    for key in keys {
        let Some((key, stored)) = kt.routes.get_key_value(&**key) else {
            continue;
        };
        for (i, rule) in stored.rules.as_slice().iter().enumerate() {
            let selected = match step {
                Step::Host(h) => rule.hostnames.as_slice().iter().any(|n| **n == *h),
                Step::AnyHost => rule.hostnames.as_slice().is_empty() && !rule.default_backend,
                Step::Default => rule.default_backend,
            };
            if !selected {
                continue;
            }
            let Some(path_rank) = path_rank(kind, rule, path) else {
                continue;
            };
            let rank = (path_rank, stored.created, &**key, i);
            if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                best = Some((rank, rule));
            }
        }
    }
    best.map(|((_, _, key, _), rule)| {
        rule.backends
            .iter(namespace_of(key))
            .map(|(namespace, service, port, port_name)| RouteBackend {
                namespace: namespace.to_owned(),
                service: service.to_string(),
                port,
                port_name: port_name.map(|n| n.to_string()),
            })
            .collect()
    })
}

/// Lower ranks first: (path rank, created, `namespace/name`, rule index).
type Rank<'a> = ((i64, i64), i64, &'a str, usize);

/// How well `rule`'s path match fits `path` (lower is better); `None`: it does not match.
fn path_rank(kind: RouteKind, rule: &Rule, path: &str) -> Option<(i64, i64)> {
    let len = |p: &str| i64::try_from(p.trim_end_matches('/').len()).unwrap_or(i64::MAX);
    let p = &*rule.path;
    match kind {
        RouteKind::HttpRoute => {
            if rule.rewrites {
                return Some((2, 0));
            }
            if rule.exact {
                (p == path).then_some((0, 0))
            } else {
                prefix_matches(p, path).then(|| (1, -len(p)))
            }
        }
        RouteKind::Ingress if rule.exact => {
            (p == path).then(|| (-i64::try_from(p.len()).unwrap_or(i64::MAX), 0))
        }
        RouteKind::Ingress => prefix_matches(p, path).then(|| (-len(p), 1)),
    }
}
