//! Parking, the plan: which Services of a slept Deployment point at the waker, on which ports,
//! and the EndpointSlices that do it. Pure: it reads objects already fetched and writes
//! nothing, so every rule is tested without an API server.
//!
//! A Service is parked when it lives in the Deployment's namespace (not a protected one), its
//! non-empty selector matches the Deployment's pod template labels and no other Deployment's,
//! it is not `ExternalName`, headless, `Local` in either traffic policy or annotated
//! `idle-scaler.dev/park: "false"`, and it has an HTTP port, or, with the route index, a
//! port a route (`HTTPRoute`, `Ingress`) sends to, whatever its name says. Anything else is
//! skipped with a [`Skip`] reason.

mod addresses;
mod slice;

use std::collections::BTreeMap;

use idle_scaler_core::RouteIndex;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use addresses::{AddressError, Family, WakerAddresses, is_local};
pub use slice::{AddressFamily, deployment_label, is_ours, repointed, slice_name};

/// At most this many ports of a Service are parked: the parking listener serves port + 0..7.
pub const MAX_PORTS: u16 = 8;
/// The managed-by label's value on every slice idle-scaler writes.
pub const MANAGED_BY: &str = "idle-scaler";
/// The label naming a slice's writer.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The label tying a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the slept Deployment a parked slice belongs to.
pub const DEPLOYMENT_LABEL: &str = "idle-scaler.dev/deployment";
/// The Service annotation that opts out of parking with the value `"false"`.
pub const PARK_ANNOTATION: &str = "idle-scaler.dev/park";

/// Why a Service is not parked. [`Skip::as_str`] is the `result` label of
/// `instant_deploy_scale_to_zero_parking_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// No selector, or an empty one: its endpoints are not the EndpointSlice controller's.
    NoSelector,
    /// Its selector does not match the Deployment's pod template labels.
    NotSelected,
    /// Its selector also matches another Deployment's pods, which stay awake.
    Shared,
    /// The namespace is protected.
    Protected,
    /// `type: ExternalName`: it has no endpoints to park.
    ExternalName,
    /// Headless (`clusterIP: None`): callers resolve pod addresses by DNS, not through slices.
    Headless,
    /// `internalTrafficPolicy` or `externalTrafficPolicy` `Local`: node-local endpoints only.
    LocalTrafficPolicy,
    /// Annotated `idle-scaler.dev/park: "false"`.
    OptedOut,
    /// No port is HTTP by its `appProtocol` or name, and no route names one.
    NoHttpPort,
}

impl Skip {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSelector => "no_selector",
            Self::NotSelected => "not_selected",
            Self::Shared => "shared",
            Self::Protected => "protected_namespace",
            Self::ExternalName => "external_name",
            Self::Headless => "headless",
            Self::LocalTrafficPolicy => "local_traffic_policy",
            Self::OptedOut => "opted_out",
            Self::NoHttpPort => "no_http_port",
        }
    }
}

/// A Service port that is parked: slices list it at the parking port + `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedPort {
    /// The Service port's name (slices must carry it so proxies match them to the port).
    pub name: Option<String>,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<String>,
    /// The Service port's number, for logs.
    pub port: i32,
    /// Its index among the parked ports: the parking listener's port + `offset` receives it.
    pub offset: u16,
}

/// A Service that is parked and the slices that park it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedService {
    /// The Service's name.
    pub name: String,
    /// Its parked ports, in the Service's order, at most [`MAX_PORTS`].
    pub ports: Vec<ParkedPort>,
    /// HTTP (or routed) ports beyond [`MAX_PORTS`], left unparked (by name, or number when
    /// unnamed).
    pub over_limit: Vec<String>,
    /// One slice per address family of the waker addresses.
    pub slices: Vec<EndpointSlice>,
}

/// A Service that is not parked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The Service's name.
    pub name: String,
    /// Why.
    pub reason: Skip,
}

/// What parking one slept Deployment does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParkPlan {
    /// The Services to park.
    pub parked: Vec<ParkedService>,
    /// The Services of the namespace that are not parked.
    pub skipped: Vec<Skipped>,
}

/// Plans the parking of `deployment`: every Service of its namespace among `services` is
/// either parked or skipped with a reason (Services of other namespaces are ignored).
/// `other_deployments` are the namespace's other Deployments (a Service whose selector also
/// matches one of them is `shared`; the Deployment itself and other namespaces' are ignored);
/// `protected` lists the protected namespaces.
pub fn plan(
    deployment: &Deployment,
    services: &[Service],
    other_deployments: &[Deployment],
    waker: &WakerAddresses,
    protected: &[String],
) -> ParkPlan {
    plan_routed(
        deployment,
        services,
        other_deployments,
        waker,
        protected,
        None,
    )
}

/// [`plan`], with the ports some route names (`routes`: the route index; by number, or by
/// name for an `Ingress`) parked as well, even when neither their name nor their
/// `appProtocol` says HTTP: a gateway sends a public hostname's requests there. Still at
/// most [`MAX_PORTS`], in the Service's order.
pub fn plan_routed(
    deployment: &Deployment,
    services: &[Service],
    other_deployments: &[Deployment],
    waker: &WakerAddresses,
    protected: &[String],
    routes: Option<&dyn RouteIndex>,
) -> ParkPlan {
    let namespace = deployment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default");
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let others: Vec<_> = other_deployments
        .iter()
        .filter(|other| {
            other.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && other.metadata.name.as_deref() != Some(name)
        })
        .collect();
    let mut out = ParkPlan::default();
    for service in services {
        if service.metadata.namespace.as_deref().unwrap_or("default") != namespace {
            continue;
        }
        let service_name = service.metadata.name.clone().unwrap_or_default();
        let routed = Routed::of(routes, namespace, &service_name);
        match park(
            service,
            deployment,
            &others,
            protected.iter().any(|p| p == namespace),
            &routed,
        ) {
            Err(reason) => out.skipped.push(Skipped {
                name: service_name,
                reason,
            }),
            Ok((ports, over_limit)) => {
                let families = [
                    (AddressFamily::V4, waker.v4()),
                    (AddressFamily::V6, waker.v6()),
                ];
                let slices = families
                    .into_iter()
                    .filter_map(|(family, addrs)| Some((family, addrs?)))
                    .map(|(family, addrs)| slice::build(service, name, &ports, family, addrs))
                    .collect();
                out.parked.push(ParkedService {
                    name: service_name,
                    ports,
                    over_limit,
                    slices,
                });
            }
        }
    }
    out
}

/// The ports of one Service that routes name.
#[derive(Debug, Default)]
struct Routed {
    numbers: Vec<i32>,
    /// Names an `Ingress` gives instead of a number.
    names: Vec<String>,
}

impl Routed {
    fn of(routes: Option<&dyn RouteIndex>, namespace: &str, service: &str) -> Self {
        routes.map_or_else(Self::default, |r| Self {
            numbers: r.route_ports(namespace, service),
            names: r.route_port_names(namespace, service),
        })
    }

    /// Whether a route names `port`, by its number or by its name.
    fn names(&self, port: &ServicePort) -> bool {
        self.numbers.contains(&port.port)
            || port.name.as_ref().is_some_and(|n| self.names.contains(n))
    }
}

/// The parked ports and the HTTP ports over the limit, or why the Service is skipped.
fn park(
    service: &Service,
    deployment: &Deployment,
    others: &[&Deployment],
    protected: bool,
    routed: &Routed,
) -> Result<(Vec<ParkedPort>, Vec<String>), Skip> {
    let spec = service.spec.as_ref().ok_or(Skip::NoSelector)?;
    let selector = spec
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
        .ok_or(Skip::NoSelector)?;
    if !selects(selector, deployment) {
        return Err(Skip::NotSelected);
    }
    if protected {
        return Err(Skip::Protected);
    }
    if others.iter().any(|other| selects(selector, other)) {
        return Err(Skip::Shared);
    }
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(Skip::ExternalName);
    }
    if spec.cluster_ip.as_deref() == Some("None") {
        return Err(Skip::Headless);
    }
    let local = |policy: &Option<String>| policy.as_deref() == Some("Local");
    if local(&spec.internal_traffic_policy) || local(&spec.external_traffic_policy) {
        return Err(Skip::LocalTrafficPolicy);
    }
    let annotations = service.metadata.annotations.as_ref();
    if annotations
        .and_then(|a| a.get(PARK_ANNOTATION))
        .is_some_and(|v| v == "false")
    {
        return Err(Skip::OptedOut);
    }
    let http: Vec<&ServicePort> = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| is_http(p) || (is_tcp(p) && routed.names(p)))
        .collect();
    if http.is_empty() {
        return Err(Skip::NoHttpPort);
    }
    let limit = usize::from(MAX_PORTS);
    let parked = http
        .iter()
        .take(limit)
        .zip(0..MAX_PORTS)
        .map(|(port, offset)| ParkedPort {
            name: port.name.clone(),
            app_protocol: port.app_protocol.clone(),
            port: port.port,
            offset,
        })
        .collect();
    let over_limit = http
        .iter()
        .skip(limit)
        .map(|port| port.name.clone().unwrap_or_else(|| port.port.to_string()))
        .collect();
    Ok((parked, over_limit))
}

/// Whether a Service selector picks the pods of `deployment`'s template.
fn selects(selector: &BTreeMap<String, String>, deployment: &Deployment) -> bool {
    let labels = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.metadata.as_ref())
        .and_then(|meta| meta.labels.as_ref());
    labels.is_some_and(|labels| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Whether the parking listener can serve a port: TCP, and HTTP by `appProtocol` (`http`,
/// `kubernetes.io/h2c`, `kubernetes.io/ws`) or by name (`http`, `http-*`, `h2c*`, `grpc*`,
/// `web`). An `appProtocol` that is set decides alone: `https` or `tcp` on a port named
/// `http` is not HTTP the listener can read.
pub fn is_http(port: &ServicePort) -> bool {
    if !is_tcp(port) {
        return false;
    }
    if let Some(protocol) = port.app_protocol.as_deref() {
        return matches!(protocol, "http" | "kubernetes.io/h2c" | "kubernetes.io/ws");
    }
    port.name.as_deref().is_some_and(|name| {
        name == "http"
            || name == "web"
            || name.starts_with("http-")
            || name.starts_with("h2c")
            || name.starts_with("grpc")
    })
}

/// Whether a port is TCP (the default when `protocol` is unset): a route to a UDP or SCTP
/// port is nothing the parking listener could serve.
fn is_tcp(port: &ServicePort) -> bool {
    port.protocol.as_deref().is_none_or(|p| p == "TCP")
}

#[cfg(test)]
mod tests;
