//! Query templates for the ingress and mesh implementations the source knows, chosen with
//! `prometheus_preset`. Each answers the same question the same way: per target, the time of
//! the latest 30 s step at which its request counter grew over the preceding 2 minutes, within
//! the window; `0` when it has current series but no such growth (known quiet); no sample when
//! it has no current series (unknown).

use serde::{Deserialize, Serialize};

/// The default template, for ingress-nginx. Per `(namespace, ingress)`: the time of the latest
/// 30 s step at which `nginx_ingress_controller_requests` grew over the preceding 2 minutes,
/// within the window; `0` when the ingress has current series but no such growth (known quiet);
/// no sample when it has no current series (unknown). Requests to Ingress rules whose *path*
/// is `/healthz`, `/readyz` or `/livez` do not count (the label is the rule's path, not the
/// request URI; kubelet probes never pass through the ingress at all).
pub const DEFAULT_QUERY: &str = concat!(
    "max by (namespace, ingress) (max_over_time((timestamp(sum by (namespace, ingress) (",
    "increase(nginx_ingress_controller_requests{namespace=~\"{namespaces}\", ",
    "ingress=~\"{names}\", path!~\"/healthz|/readyz|/livez\"}[2m])) > 0))[{window}:30s])) ",
    "or max by (namespace, ingress) (0 * nginx_ingress_controller_requests",
    "{namespace=~\"{namespaces}\", ingress=~\"{names}\"})"
);

/// Istio's standard metric `istio_requests_total` (Istio 1.5 and later), per
/// `(destination_workload_namespace, destination_workload)`; Istio names the workload after the
/// pod's controller, so for a Deployment it is the Deployment's own name. Every reporter
/// (`source`, `destination`, `waypoint`) counts: only growth matters, not the count, and a
/// workload without a sidecar is seen only by its callers' proxies. The metric has no path
/// label; kubelet probes, rewritten by sidecar injection to the istio-agent, do not pass
/// through the proxy's inbound listener.
pub const ISTIO_QUERY: &str = concat!(
    "max by (destination_workload_namespace, destination_workload) (max_over_time((timestamp(",
    "sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total",
    "{destination_workload_namespace=~\"{namespaces}\", destination_workload=~\"{names}\"}[2m]))",
    " > 0))[{window}:30s])) or max by (destination_workload_namespace, destination_workload) ",
    "(0 * istio_requests_total{destination_workload_namespace=~\"{namespaces}\", ",
    "destination_workload=~\"{names}\"})"
);

/// Traefik's `traefik_service_requests_total` (Traefik v2 and v3, Kubernetes Ingress
/// provider), whose `service` label is `<namespace>-<service>-<port>@kubernetes`. That label
/// is split with `label_replace` into `namespace` and `service_name` (the Kubernetes Service,
/// matched against the Deployment name). Names are tried longest first, so `web-api` is not
/// read as `web` with port `api-80`, and the port is one segment without a dash, so neither
/// is it when only `web` is asked (a port name with a dash gives no data: kept awake by
/// default). The metric has no path label.
pub const TRAEFIK_QUERY: &str = concat!(
    "max by (namespace, service_name) (max_over_time((timestamp(sum by (namespace, service_name) ",
    "(label_replace(label_replace(increase(traefik_service_requests_total",
    "{service=~\"({namespaces})-({names})-[^-]+@kubernetes\"}[2m]), ",
    "\"namespace\", \"$1\", \"service\", \"({namespaces})-({names})-[^-]+@kubernetes\"), ",
    "\"service_name\", \"$2\", \"service\", \"({namespaces})-({names})-[^-]+@kubernetes\")) > 0))",
    "[{window}:30s])) or max by (namespace, service_name) (label_replace(label_replace(",
    "0 * traefik_service_requests_total{service=~\"({namespaces})-({names})-[^-]+@kubernetes\"}, ",
    "\"namespace\", \"$1\", \"service\", \"({namespaces})-({names})-[^-]+@kubernetes\"), ",
    "\"service_name\", \"$2\", \"service\", \"({namespaces})-({names})-[^-]+@kubernetes\"))"
);

/// A query template with the labels its answer carries (`prometheus_preset`). The query and
/// the labels can still be set one by one; a key left unset takes the preset's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// ingress-nginx: [`DEFAULT_QUERY`], labels `namespace` and `ingress`.
    #[default]
    IngressNginx,
    /// Istio: [`ISTIO_QUERY`], labels `destination_workload_namespace` and `destination_workload`.
    Istio,
    /// Traefik: [`TRAEFIK_QUERY`], labels `namespace` and `service_name`.
    Traefik,
}

impl Preset {
    /// Every preset, by its configuration name.
    pub const ALL: [(&'static str, Preset); 3] = [
        ("ingress-nginx", Preset::IngressNginx),
        ("istio", Preset::Istio),
        ("traefik", Preset::Traefik),
    ];

    /// The preset called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The query template.
    pub fn query(self) -> &'static str {
        match self {
            Preset::IngressNginx => DEFAULT_QUERY,
            Preset::Istio => ISTIO_QUERY,
            Preset::Traefik => TRAEFIK_QUERY,
        }
    }

    /// The answer's label carrying the namespace.
    pub fn namespace_label(self) -> &'static str {
        match self {
            Preset::IngressNginx | Preset::Traefik => "namespace",
            Preset::Istio => "destination_workload_namespace",
        }
    }

    /// The answer's label carrying the name a Deployment is matched by.
    pub fn name_label(self) -> &'static str {
        match self {
            Preset::IngressNginx => "ingress",
            Preset::Istio => "destination_workload",
            Preset::Traefik => "service_name",
        }
    }
}
