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
//! 4. The oldest route, then the string `namespace/name` alphabetically (as the Gateway
//!    API words it), then the rule's order.
//!
//! Header, query and method matches are not kept: the waker only needs to know which app a
//! request may be for, so a rule with them matches on host and path alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::RouteBackend;
use lookup::{Step, best};
use store::{
    Backend, Backends, Hosts, Ids, PortCounts, PortMap, Rule, Rules, Stored, count, intern,
    namespace_of, register, uncount,
};

mod lookup;
mod store;

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

/// One kind's routes, by `namespace/name`, and their keys by host.
#[derive(Debug, Default)]
struct KindTable {
    routes: HashMap<Arc<str>, Box<Stored>>,
    exact: HashMap<Arc<str>, Ids>,
    /// By the suffix after `*.`.
    wildcard: HashMap<Arc<str>, Ids>,
    any_host: HashSet<Arc<str>>,
    /// The list in progress or last completed.
    generation: u32,
}

/// The route index's table: every route by its key, and the keys by exact hostname, by
/// wildcard suffix and for any host, so that a change touches only its route's hostnames
/// and a lookup reads only the routes of the request's host.
#[derive(Debug, Default)]
pub struct RouteTable {
    kinds: [KindTable; 2],
    /// namespace -> Service -> (port number, how many rules name it).
    ports: PortMap<i32>,
    /// The same for ports a route names by name (an Ingress backend's `port.name`).
    port_names: PortMap<Arc<str>>,
    /// Namespaces and paths, shared.
    strings: HashSet<Arc<str>>,
    rules: usize,
}

fn slot(kind: RouteKind) -> usize {
    match kind {
        RouteKind::HttpRoute => 0,
        RouteKind::Ingress => 1,
    }
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes in the table.
    pub fn len(&self) -> usize {
        self.kinds.iter().map(|k| k.routes.len()).sum()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rules in the table.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Adds `route`, or replaces the route of the same kind, namespace and name. A route
    /// without rules is removed.
    pub fn upsert(&mut self, route: Route) {
        let key: Arc<str> = Arc::from(format!("{}/{}", route.namespace, route.name));
        self.remove_key(route.kind, &key);
        if route.rules.is_empty() {
            return;
        }
        let n = route.rules.len();
        let mut rules = Vec::with_capacity(n);
        for rule in route.rules {
            let kt = &mut self.kinds[slot(route.kind)];
            let hostnames = rule
                .hostnames
                .iter()
                .map(|h| match h.strip_prefix("*.") {
                    Some(suffix) => {
                        register(&mut kt.wildcard, suffix, &key);
                        Arc::from(h.as_str())
                    }
                    None => register(&mut kt.exact, h, &key),
                })
                .collect();
            let hostnames = Hosts::new(hostnames);
            if rule.hostnames.is_empty() {
                kt.any_host.insert(key.clone());
            }
            let (path, exact) = match &rule.path {
                PathMatch::Exact(p) => (p, true),
                PathMatch::Prefix(p) => (p, false),
            };
            let path = intern(&mut self.strings, path);
            let backends = rule.backends.iter().map(|b| self.add_backend(b)).collect();
            let backends = Backends::new(backends, &route.namespace);
            rules.push(Rule {
                hostnames,
                path,
                exact,
                rewrites: rule.rewrites,
                default_backend: rule.default_backend,
                backends,
            });
        }
        self.rules += n;
        self.kinds[slot(route.kind)].routes.insert(
            key,
            Box::new(Stored {
                created: route.created,
                generation: self.kinds[slot(route.kind)].generation,
                rules: Rules::new(rules),
            }),
        );
    }

    /// A backend kept: its namespace interned, its Service (and port name) shared with its
    /// port count. A port by number wins over one by name (an Ingress has one or the other).
    fn add_backend(&mut self, b: &RouteBackend) -> Backend {
        let namespace = intern(&mut self.strings, &b.namespace);
        let (service, port_name) = match (b.port, b.port_name.as_deref()) {
            (Some(port), _) => (count(&mut self.ports, &namespace, &b.service, port).0, None),
            (None, Some(name)) => {
                let name = Arc::from(name);
                let (service, name) = count(&mut self.port_names, &namespace, &b.service, name);
                (service, Some(name))
            }
            (None, None) => (Arc::from(b.service.as_str()), None),
        };
        Backend {
            namespace,
            service,
            port: b.port,
            port_name,
        }
    }

    fn remove_backend(&mut self, (namespace, service, port, name): store::BackendView<'_>) {
        if let Some(port) = port {
            uncount(&mut self.ports, namespace, service, &port);
        } else if let Some(name) = name {
            uncount(&mut self.port_names, namespace, service, name);
        }
    }

    /// Removes the route `kind` `namespace/name`; whether it was there.
    pub fn remove(&mut self, kind: RouteKind, namespace: &str, name: &str) -> bool {
        self.remove_key(kind, &format!("{namespace}/{name}"))
    }

    /// Replaces every route of `kind` by `routes` (a complete list).
    pub fn replace_kind(&mut self, kind: RouteKind, routes: impl IntoIterator<Item = Route>) {
        self.start_list(kind);
        for r in routes {
            debug_assert_eq!(r.kind, kind);
            self.upsert(r);
        }
        self.finish_list(kind);
    }

    /// A complete list of `kind` starts: it comes through [`RouteTable::upsert`] a page at
    /// a time (lookups meanwhile see old and new routes), and
    /// [`RouteTable::finish_list`] removes the routes it did not bring.
    pub fn start_list(&mut self, kind: RouteKind) {
        let kt = &mut self.kinds[slot(kind)];
        kt.generation = kt.generation.wrapping_add(1);
    }

    /// The list [`RouteTable::start_list`] started is complete: routes of `kind` it did
    /// not write are removed.
    pub fn finish_list(&mut self, kind: RouteKind) {
        let kt = &self.kinds[slot(kind)];
        let stale: Vec<Arc<str>> = kt
            .routes
            .iter()
            .filter(|(_, s)| s.generation != kt.generation)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.remove_key(kind, &key);
        }
    }

    fn remove_key(&mut self, kind: RouteKind, key: &str) -> bool {
        let kt = &mut self.kinds[slot(kind)];
        let Some(stored) = kt.routes.remove(key) else {
            return false;
        };
        let mut shared = Vec::new();
        for rule in stored.rules.as_slice() {
            for h in rule.hostnames.as_slice() {
                let (map, host) = match h.strip_prefix("*.") {
                    Some(suffix) => (&mut kt.wildcard, suffix),
                    None => (&mut kt.exact, &**h),
                };
                if map.get_mut(host).is_some_and(|ids| ids.remove(key)) {
                    map.remove(host);
                }
            }
            shared.push(rule.path.clone());
        }
        kt.any_host.remove(key);
        let route_ns = namespace_of(key);
        for r in stored.rules.as_slice() {
            for b in r.backends.iter(route_ns) {
                shared.extend(self.strings.get(b.0).cloned());
                self.remove_backend(b);
            }
        }
        self.rules -= stored.rules.as_slice().len();
        drop(stored);
        // Ours and the interner's: no rule holds it any more (a local backend holds no
        // namespace; the port counts may, checked here).
        for s in shared {
            if Arc::strong_count(&s) == 2
                && !self.ports.contains_key(&s)
                && !self.port_names.contains_key(&s)
            {
                self.strings.remove(&s);
            }
        }
        true
    }

    /// The ports of `namespace/service` some rule names, ascending.
    pub fn route_ports(&self, namespace: &str, service: &str) -> Vec<i32> {
        let mut ports: Vec<i32> = self
            .ports
            .get(namespace)
            .and_then(|s| s.get(service))
            .map(PortCounts::ports)
            .unwrap_or_default();
        ports.sort_unstable();
        ports
    }

    /// The port names of `namespace/service` some rule names, sorted.
    pub fn route_port_names(&self, namespace: &str, service: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .port_names
            .get(namespace)
            .and_then(|s| s.get(service))
            .map(|c| c.ports().iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
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
        let kt = &self.kinds[slot(kind)];
        if let Some(b) = kt
            .exact
            .get(host)
            .and_then(|ids| best(kind, kt, ids.iter(), Step::Host(host), path))
        {
            return Some(b);
        }
        // Suffixes after each dot, the longest first: an Ingress wildcard covers one label.
        let mut rest = host;
        while let Some((label, suffix)) = rest.split_once('.') {
            if label.is_empty() {
                break;
            }
            if let Some(ids) = kt.wildcard.get(suffix) {
                let pattern = format!("*.{suffix}");
                if let Some(b) = best(kind, kt, ids.iter(), Step::Host(&pattern), path) {
                    return Some(b);
                }
            }
            if kind == RouteKind::Ingress {
                break;
            }
            rest = suffix;
        }
        best(kind, kt, &kt.any_host, Step::AnyHost, path)
            .or_else(|| best(kind, kt, &kt.any_host, Step::Default, path))
    }
}

#[cfg(test)]
mod tests;
