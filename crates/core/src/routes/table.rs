//! [`RouteTable`]: route rules by hostname, changed one route at a time, resolved in memory.
//!
//! Precedence (each step only among the rules that match `host` and `path`):
//! 1. `HTTPRoute`s before `Ingress`es: a cluster moving to the Gateway API serves a host
//!    from both while it moves, and the route is the newer statement of where it goes.
//! 2. Exact host, then wildcards, the longest suffix first (Gateway API: any number of
//!    labels; Ingress: exactly one), then rules for any host; an Ingress `defaultBackend`
//!    last.
//! 3. Gateway API: an `Exact` path before a `PathPrefix`, the longer prefix first; a rule
//!    that rewrites the path matches every path (the waker sees the rewritten one) and
//!    comes after the rules that match the path as written. Ingress: the longest matching
//!    path, `Exact` before `Prefix` at equal length.
//! 4. The oldest route, then `namespace/name` alphabetically, then the rule's order.
//!
//! Header, query and method matches are not kept: the waker only needs to know which app a
//! request may be for, so a rule with them matches on host and path alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::RouteBackend;
use super::matching::prefix_matches;

/// Which API a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// `gateway.networking.k8s.io` `HTTPRoute`.
    HttpRoute,
    /// `networking.k8s.io` `Ingress`.
    Ingress,
}

/// How a rule matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path, as written.
    Exact(String),
    /// A prefix on `/` boundaries (Gateway API `PathPrefix`; Ingress `Prefix` and
    /// `ImplementationSpecific`).
    Prefix(String),
}

/// One rule of a route (a Gateway API rule's match, an Ingress path), reduced to what names
/// an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Lowercase hostnames, exact or `*.` wildcards; empty: any host.
    pub hostnames: Vec<String>,
    /// The path match.
    pub path: PathMatch,
    /// The rule rewrites the path (`URLRewrite`): matched by hostname alone.
    pub rewrites: bool,
    /// An Ingress `defaultBackend`: any host and path, after every other rule.
    pub default_backend: bool,
    /// Where the rule sends requests (every backend of a weighted split).
    pub backends: Vec<RouteBackend>,
}

/// A route, reduced: its identity, age and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its API.
    pub kind: RouteKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `creationTimestamp`, Unix seconds: the older route wins a tie.
    pub created: i64,
    /// Its rules, in order.
    pub rules: Vec<RouteRule>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RouteId {
    kind: RouteKind,
    namespace: Box<str>,
    name: Box<str>,
}

#[derive(Debug)]
struct Stored {
    created: i64,
    rules: Box<[RouteRule]>,
}

/// Which rules a lookup step considers.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Rules naming this hostname (exact, or the `*.` pattern).
    Host(&'a str),
    /// Rules for any host.
    AnyHost,
    /// Ingress default backends.
    Default,
}

/// The route index's table: every route by its key, and the keys by exact hostname, by
/// wildcard suffix and for any host, so that a change touches only its route's hostnames
/// and a lookup reads only the routes of the request's host.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<Arc<RouteId>, Stored>,
    exact: HashMap<Box<str>, Vec<Arc<RouteId>>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<Box<str>, Vec<Arc<RouteId>>>,
    any_host: HashSet<Arc<RouteId>>,
    /// namespace -> Service -> (port, how many rules name it).
    ports: HashMap<String, HashMap<String, Vec<(i32, u32)>>>,
    rules: usize,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Rules in the table.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Adds `route`, or replaces the route of the same kind, namespace and name. A route
    /// without rules is removed.
    pub fn upsert(&mut self, route: Route) {
        let id = Arc::new(RouteId {
            kind: route.kind,
            namespace: route.namespace.into(),
            name: route.name.into(),
        });
        self.remove_id(&id);
        if route.rules.is_empty() {
            return;
        }
        for rule in &route.rules {
            for h in &rule.hostnames {
                let (map, key) = match h.strip_prefix("*.") {
                    Some(suffix) => (&mut self.wildcard, suffix),
                    None => (&mut self.exact, h.as_str()),
                };
                let ids = map.entry(key.into()).or_default();
                if !ids.contains(&id) {
                    ids.push(id.clone());
                }
            }
            if rule.hostnames.is_empty() {
                self.any_host.insert(id.clone());
            }
        }
        self.count_ports(&route.rules, true);
        self.rules += route.rules.len();
        self.routes.insert(
            id,
            Stored {
                created: route.created,
                rules: route.rules.into_boxed_slice(),
            },
        );
    }

    /// Removes the route `kind` `namespace/name`; whether it was there.
    pub fn remove(&mut self, kind: RouteKind, namespace: &str, name: &str) -> bool {
        self.remove_id(&RouteId {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    /// Replaces every route of `kind` by `routes` (a complete list).
    pub fn replace_kind(&mut self, kind: RouteKind, routes: impl IntoIterator<Item = Route>) {
        let old: Vec<Arc<RouteId>> = self
            .routes
            .keys()
            .filter(|id| id.kind == kind)
            .cloned()
            .collect();
        for id in old {
            self.remove_id(&id);
        }
        for r in routes {
            debug_assert_eq!(r.kind, kind);
            self.upsert(r);
        }
    }

    fn remove_id(&mut self, id: &RouteId) -> bool {
        let Some((id, stored)) = self.routes.remove_entry(id) else {
            return false;
        };
        for rule in &stored.rules {
            for h in &rule.hostnames {
                let (map, key) = match h.strip_prefix("*.") {
                    Some(suffix) => (&mut self.wildcard, suffix),
                    None => (&mut self.exact, h.as_str()),
                };
                if let Some(ids) = map.get_mut(key) {
                    ids.retain(|i| *i != id);
                    if ids.is_empty() {
                        map.remove(key);
                    }
                }
            }
        }
        self.any_host.remove(&id);
        self.count_ports(&stored.rules, false);
        self.rules -= stored.rules.len();
        true
    }

    fn count_ports(&mut self, rules: &[RouteRule], add: bool) {
        for b in rules.iter().flat_map(|r| &r.backends) {
            let Some(port) = b.port else { continue };
            let by_service = self.ports.entry(b.namespace.clone()).or_default();
            let counts = by_service.entry(b.service.clone()).or_default();
            match counts.iter_mut().find(|(p, _)| *p == port) {
                Some((_, n)) if add => *n += 1,
                Some((_, n)) => *n -= 1,
                None if add => counts.push((port, 1)),
                None => {}
            }
            counts.retain(|(_, n)| *n > 0);
            if counts.is_empty() {
                by_service.remove(&b.service);
                if by_service.is_empty() {
                    self.ports.remove(&b.namespace);
                }
            }
        }
    }

    /// The ports of `namespace/service` some rule names, ascending.
    pub fn route_ports(&self, namespace: &str, service: &str) -> Vec<i32> {
        let mut ports: Vec<i32> = self
            .ports
            .get(namespace)
            .and_then(|s| s.get(service))
            .map(|c| c.iter().map(|(p, _)| *p).collect())
            .unwrap_or_default();
        ports.sort_unstable();
        ports
    }

    /// The backends of the rule that wins for `host` (lowercase, no port) and `path`, by the
    /// precedence in this module's documentation; empty when none matches.
    pub fn resolve(&self, host: &str, path: &str) -> Vec<RouteBackend> {
        let path = if path.is_empty() { "/" } else { path };
        [RouteKind::HttpRoute, RouteKind::Ingress]
            .into_iter()
            .find_map(|kind| self.resolve_kind(kind, host, path))
            .unwrap_or_default()
    }

    fn resolve_kind(&self, kind: RouteKind, host: &str, path: &str) -> Option<Vec<RouteBackend>> {
        if let Some(b) = self
            .exact
            .get(host)
            .and_then(|ids| self.best(kind, ids, Step::Host(host), path))
        {
            return Some(b);
        }
        // Suffixes after each dot, the longest first: an Ingress wildcard covers one label.
        let mut rest = host;
        while let Some((label, suffix)) = rest.split_once('.') {
            if label.is_empty() {
                break;
            }
            if let Some(ids) = self.wildcard.get(suffix) {
                let pattern = format!("*.{suffix}");
                if let Some(b) = self.best(kind, ids, Step::Host(&pattern), path) {
                    return Some(b);
                }
            }
            if kind == RouteKind::Ingress {
                break;
            }
            rest = suffix;
        }
        self.best(kind, &self.any_host, Step::AnyHost, path)
            .or_else(|| self.best(kind, &self.any_host, Step::Default, path))
    }

    /// The backends of the best rule of `ids` (routes of `kind`) that `step` and `path`
    /// select.
    fn best<'a>(
        &self,
        kind: RouteKind,
        ids: impl IntoIterator<Item = &'a Arc<RouteId>>,
        step: Step<'_>,
        path: &str,
    ) -> Option<Vec<RouteBackend>> {
        let mut best: Option<(Rank<'_>, &RouteRule)> = None;
        for id in ids.into_iter().filter(|id| id.kind == kind) {
            let Some(stored) = self.routes.get(id) else {
                continue;
            };
            for (i, rule) in stored.rules.iter().enumerate() {
                let selected = match step {
                    Step::Host(h) => rule.hostnames.iter().any(|n| n == h),
                    Step::AnyHost => rule.hostnames.is_empty() && !rule.default_backend,
                    Step::Default => rule.default_backend,
                };
                if !selected {
                    continue;
                }
                let Some(path_rank) = path_rank(kind, rule, path) else {
                    continue;
                };
                let rank = (path_rank, stored.created, &*id.namespace, &*id.name, i);
                if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                    best = Some((rank, rule));
                }
            }
        }
        best.map(|(_, rule)| rule.backends.clone())
    }
}

/// Lower ranks first: (path rank, created, namespace, name, rule index).
type Rank<'a> = ((i64, i64), i64, &'a str, &'a str, usize);

/// How well `rule`'s path match fits `path` (lower is better); `None`: it does not match.
fn path_rank(kind: RouteKind, rule: &RouteRule, path: &str) -> Option<(i64, i64)> {
    let len = |p: &str| i64::try_from(p.trim_end_matches('/').len()).unwrap_or(i64::MAX);
    match kind {
        RouteKind::HttpRoute => {
            if rule.rewrites {
                return Some((2, 0));
            }
            match &rule.path {
                PathMatch::Exact(p) => (p == path).then_some((0, 0)),
                PathMatch::Prefix(p) => prefix_matches(p, path).then(|| (1, -len(p))),
            }
        }
        RouteKind::Ingress => match &rule.path {
            PathMatch::Exact(p) => {
                (p == path).then(|| (-i64::try_from(p.len()).unwrap_or(i64::MAX), 0))
            }
            PathMatch::Prefix(p) => prefix_matches(p, path).then(|| (-len(p), 1)),
        },
    }
}

#[cfg(test)]
mod tests;
