//! The route index port: which parked app a public hostname (+ path) names, decided the way
//! the gateway itself decided (Gateway API `HTTPRoute`s a Gateway accepted, `Ingress`
//! objects). The parking listener asks it only for callers trusted as gateways, and only
//! after a request's `Host` named no parked Service by its cluster DNS forms.

/// One backend of the route rule that matched: a Service port requests are sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteBackend {
    /// The Service's namespace (a cross-namespace backend only where a `ReferenceGrant`
    /// allows it).
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service port the route names by number (`None`: by name, or none, as an
    /// `HTTPRoute` to a single-port Service).
    pub port: Option<i32>,
    /// The Service port the route names by name (an `Ingress` backend's `port.name`); only
    /// where `port` is `None`.
    pub port_name: Option<String>,
}

/// The route index, kept current by watches. Lookups are in memory: they never wait on an
/// API request.
pub trait RouteIndex: Send + Sync {
    /// The backends of the one rule that wins for `host` (lowercase, port removed) and
    /// `path` (the request path, without the query), in the route's order; empty when no
    /// rule matches. A weighted split gives every backend: any parked one of them may wake.
    fn resolve(&self, host: &str, path: &str) -> Vec<RouteBackend>;

    /// The ports of `namespace/service` that some route names, so parking parks them even
    /// when their name does not say HTTP.
    fn route_ports(&self, namespace: &str, service: &str) -> Vec<i32>;

    /// The port names of `namespace/service` that some route names (an `Ingress` backend by
    /// `port.name`), parked like [`RouteIndex::route_ports`]. None by default: an index of
    /// routes that name ports by number only.
    fn route_port_names(&self, namespace: &str, service: &str) -> Vec<String> {
        let _ = (namespace, service);
        Vec::new()
    }
}

mod matching;
mod table;

pub use matching::{gateway_host_matches, intersect_hostnames};
pub use table::{PathMatch, Route, RouteKind, RouteRule, RouteTable};
