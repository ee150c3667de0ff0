//! Objects -> route table entries (pure): which hostnames an accepted `HTTPRoute` serves
//! through its Gateways' listeners, which backends a `ReferenceGrant` lets it name, and an
//! `Ingress`'s rules.

use std::collections::HashMap;

use idle_scaler_core::RouteBackend;
use idle_scaler_core::routes::{PathMatch, Route, RouteKind, RouteRule, intersect_hostnames};
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;

use super::objects::{
    BackendRef, Filter, GATEWAY_GROUP, Gateway, HttpRoute, ParentRef, ReferenceGrant,
};

/// A listener an `HTTPRoute` can attach to (protocol HTTP or HTTPS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerInfo {
    pub name: String,
    pub hostname: Option<String>,
    pub port: i32,
}

/// Gateways by (namespace, name).
pub(crate) type Gateways = HashMap<(String, String), Vec<ListenerInfo>>;

/// One permission of a `ReferenceGrant`: `HTTPRoute`s of `from_namespace` may name the
/// Services of `namespace` (only `service` when set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub namespace: String,
    pub from_namespace: String,
    pub service: Option<String>,
}

/// ReferenceGrants by (namespace, name).
pub(crate) type Grants = HashMap<(String, String), Vec<Grant>>;

/// What an `HTTPRoute` is reduced against.
pub(crate) struct Context<'a> {
    /// `None`: Gateways cannot be read (forbidden): a route keeps its own hostnames.
    pub gateways: Option<&'a Gateways>,
    pub grants: &'a Grants,
}

/// What a reduction left out, for the logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Notes {
    /// Matches by `RegularExpression` path: not evaluated.
    pub regex_paths: usize,
    /// Cross-namespace backends no ReferenceGrant allows.
    pub denied_backends: usize,
}

/// A route's key and its entry (`None`: it serves nothing now, remove it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reduced {
    pub namespace: String,
    pub name: String,
    pub route: Option<Route>,
}

/// The HTTP listeners of a Gateway.
pub(crate) fn listeners(g: &Gateway) -> Vec<ListenerInfo> {
    g.spec
        .listeners
        .iter()
        .filter(|l| matches!(l.protocol.as_str(), "HTTP" | "HTTPS"))
        .map(|l| ListenerInfo {
            name: l.name.clone(),
            hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
            port: l.port,
        })
        .collect()
}

/// The permissions a ReferenceGrant gives `HTTPRoute`s over Services.
pub(crate) fn grants(g: &ReferenceGrant) -> Vec<Grant> {
    let namespace = g.namespace().unwrap_or_default();
    let mut out = Vec::new();
    for from in &g.spec.from {
        if from.group != GATEWAY_GROUP || from.kind != "HTTPRoute" {
            continue;
        }
        for to in g
            .spec
            .to
            .iter()
            .filter(|t| t.group.is_empty() && t.kind == "Service")
        {
            out.push(Grant {
                namespace: namespace.clone(),
                from_namespace: from.namespace.clone(),
                service: to.name.clone(),
            });
        }
    }
    out
}

fn allowed(grants: &Grants, from: &str, namespace: &str, service: &str) -> bool {
    grants.values().flatten().any(|g| {
        g.namespace == namespace
            && g.from_namespace == from
            && g.service.as_deref().is_none_or(|s| s == service)
    })
}

fn creation_seconds(meta: &kube::api::ObjectMeta) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second())
}

/// A parentRef naming a Gateway: its (namespace, name), the route's namespace by default.
fn gateway_of(p: &ParentRef, route_ns: &str) -> Option<(String, String)> {
    let group_ok = p.group.as_deref().is_none_or(|g| g == GATEWAY_GROUP);
    let kind_ok = p.kind.as_deref().is_none_or(|k| k == "Gateway");
    (group_ok && kind_ok).then(|| {
        let ns = p.namespace.clone().unwrap_or_else(|| route_ns.to_owned());
        (ns, p.name.clone())
    })
}

/// The hostnames `r` serves through the Gateways that accepted it: `None` for none (not
/// attached), `Some(empty)` for any host.
fn served_hostnames(r: &HttpRoute, ns: &str, gateways: Option<&Gateways>) -> Option<Vec<String>> {
    let own: Vec<String> = r
        .spec
        .hostnames
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let accepted: Vec<&ParentRef> = r
        .status
        .iter()
        .flat_map(|s| &s.parents)
        .filter(|p| {
            p.conditions
                .iter()
                .any(|c| c.type_ == "Accepted" && c.status == "True")
        })
        .map(|p| &p.parent_ref)
        .collect();
    let Some(gateways) = gateways else {
        return (!accepted.is_empty()).then_some(own);
    };
    let mut hosts: Vec<String> = Vec::new();
    let mut attached = false;
    for p in accepted {
        let Some(listeners) = gateway_of(p, ns).and_then(|k| gateways.get(&k)) else {
            continue;
        };
        let chosen = listeners.iter().filter(|l| {
            p.section_name.as_ref().is_none_or(|s| *s == l.name)
                && p.port.is_none_or(|port| port == l.port)
        });
        for l in chosen {
            match intersect_hostnames(&own, l.hostname.as_deref()) {
                None => return Some(Vec::new()),
                Some(v) if v.is_empty() => {}
                Some(v) => {
                    attached = true;
                    for h in v {
                        if !hosts.contains(&h) {
                            hosts.push(h);
                        }
                    }
                }
            }
        }
    }
    attached.then_some(hosts)
}

fn rewrites(filters: &[Filter]) -> bool {
    filters.iter().any(|f| {
        f.type_ == "URLRewrite" && f.url_rewrite.as_ref().is_some_and(|u| u.path.is_some())
    })
}

fn backend(b: &BackendRef, ns: &str, grants: &Grants, notes: &mut Notes) -> Option<RouteBackend> {
    let service = b.group.as_deref().is_none_or(str::is_empty)
        && b.kind.as_deref().is_none_or(|k| k == "Service");
    if !service || b.weight == Some(0) || b.name.is_empty() {
        return None;
    }
    let namespace = b.namespace.clone().unwrap_or_else(|| ns.to_owned());
    if namespace != ns && !allowed(grants, ns, &namespace, &b.name) {
        notes.denied_backends += 1;
        return None;
    }
    Some(RouteBackend {
        namespace,
        service: b.name.clone(),
        port: b.port,
        port_name: None,
    })
}

/// An `HTTPRoute` reduced against the Gateways and ReferenceGrants in `ctx`.
pub(crate) fn http_route(r: &HttpRoute, ctx: &Context<'_>, notes: &mut Notes) -> Reduced {
    let ns = r.namespace().unwrap_or_default();
    let name = r.name_any();
    let route = served_hostnames(r, &ns, ctx.gateways).map(|hostnames| {
        let mut rules = Vec::new();
        for rule in &r.spec.rules {
            let backends: Vec<RouteBackend> = rule
                .backend_refs
                .iter()
                .filter_map(|b| backend(b, &ns, ctx.grants, notes))
                .collect();
            if backends.is_empty() {
                continue;
            }
            let rewrite =
                rewrites(&rule.filters) || rule.backend_refs.iter().any(|b| rewrites(&b.filters));
            let default_match = [Default::default()];
            let matches = if rule.matches.is_empty() {
                &default_match[..]
            } else {
                &rule.matches[..]
            };
            for m in matches {
                let (kind, value) = m
                    .path
                    .as_ref()
                    .map_or((None, None), |p| (p.type_.as_deref(), p.value.clone()));
                let value = value.unwrap_or_else(|| "/".to_owned());
                let path = match kind.unwrap_or("PathPrefix") {
                    "Exact" => PathMatch::Exact(value),
                    "PathPrefix" => PathMatch::Prefix(value),
                    _ => {
                        notes.regex_paths += 1;
                        continue;
                    }
                };
                rules.push(RouteRule {
                    hostnames: hostnames.clone(),
                    path,
                    rewrites: rewrite,
                    default_backend: false,
                    backends: backends.clone(),
                });
            }
        }
        Route {
            kind: RouteKind::HttpRoute,
            namespace: ns.clone(),
            name: name.clone(),
            created: creation_seconds(&r.metadata),
            rules,
        }
    });
    Reduced {
        route: route.filter(|r| !r.rules.is_empty()),
        namespace: ns,
        name,
    }
}

/// An `Ingress`'s rules: host (none: any), paths (`ImplementationSpecific` as `Prefix`),
/// Service backends by port number or name, and its `defaultBackend`.
pub(crate) fn ingress(i: &Ingress) -> Reduced {
    let ns = i.namespace().unwrap_or_default();
    let name = i.name_any();
    let to = |b: &k8s_openapi::api::networking::v1::IngressBackend| {
        b.service.as_ref().map(|s| RouteBackend {
            namespace: ns.clone(),
            service: s.name.clone(),
            port: s.port.as_ref().and_then(|p| p.number),
            port_name: s.port.as_ref().and_then(|p| p.name.clone()),
        })
    };
    let mut rules = Vec::new();
    let spec = i.spec.as_ref();
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let hostnames: Vec<String> = rule.host.iter().map(|h| h.to_ascii_lowercase()).collect();
        for p in rule.http.iter().flat_map(|h| &h.paths) {
            let Some(b) = to(&p.backend) else { continue };
            let value = p
                .path
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "/".into());
            rules.push(RouteRule {
                hostnames: hostnames.clone(),
                path: if p.path_type == "Exact" {
                    PathMatch::Exact(value)
                } else {
                    PathMatch::Prefix(value)
                },
                rewrites: false,
                default_backend: false,
                backends: vec![b],
            });
        }
    }
    if let Some(b) = spec.and_then(|s| s.default_backend.as_ref()).and_then(to) {
        rules.push(RouteRule {
            hostnames: Vec::new(),
            path: PathMatch::Prefix("/".into()),
            rewrites: false,
            default_backend: true,
            backends: vec![b],
        });
    }
    Reduced {
        route: (!rules.is_empty()).then(|| Route {
            kind: RouteKind::Ingress,
            namespace: ns.clone(),
            name: name.clone(),
            created: creation_seconds(&i.metadata),
            rules,
        }),
        namespace: ns,
        name,
    }
}

#[cfg(test)]
mod tests;
