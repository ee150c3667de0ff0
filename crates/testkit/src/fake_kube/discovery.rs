//! Discovery documents: what kubectl (and kube's discovery) read before any request.
//! Served as plain `application/json`, so clients asking for aggregated discovery fall back
//! to the per-group documents, as they do against an older apiserver.

use serde_json::{Value, json};

use super::resources::{ALL, GATEWAY_GROUP};

/// The version this fake claims to be (k8s-openapi is built for `v1_33`).
pub(super) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-idle-scaler-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub(super) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn resource(name: &str, kind: &str, namespaced: bool, short: &[&str]) -> Value {
    json!({
        "name": name,
        "singularName": kind.to_lowercase(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        "shortNames": short,
    })
}

/// `GET /api/v1`: namespaces, Services and Pods.
pub(super) fn core_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("namespaces", "Namespace", false, &["ns"]),
            resource("pods", "Pod", true, &["po"]),
            resource("services", "Service", true, &["svc"]),
        ],
    })
}

/// The groups under `/apis` and their versions, the preferred first.
const GROUPS: [(&str, &[&str]); 5] = [
    ("apps", &["v1"]),
    ("autoscaling", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
    ("networking.k8s.io", &["v1"]),
    (GATEWAY_GROUP, &["v1", "v1beta1"]),
];

fn installed_groups(
    gateway_api: bool,
) -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    GROUPS
        .into_iter()
        .filter(move |(name, _)| gateway_api || *name != GATEWAY_GROUP)
}

fn group(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({ "groupVersion": format!("{name}/{v}"), "version": v });
    let all: Vec<Value> = versions.iter().map(|v| gv(v)).collect();
    json!({ "name": name, "versions": all, "preferredVersion": gv(versions[0]) })
}

/// `GET /apis`; the Gateway API's group only while its CRDs are installed.
pub(super) fn groups(gateway_api: bool) -> Value {
    let groups: Vec<Value> = installed_groups(gateway_api)
        .map(|(name, versions)| group(name, versions))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/{group}`.
pub(super) fn group_doc(name: &str, gateway_api: bool) -> Option<Value> {
    let (name, versions) = installed_groups(gateway_api).find(|(n, _)| *n == name)?;
    let mut g = group(name, versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `GET /apis/{group}/{version}`: the resources served there (and their `status`).
pub(super) fn resource_list(group: &str, version: &str, gateway_api: bool) -> Option<Value> {
    match (group, version) {
        ("apps", "v1") => return Some(apps_v1()),
        ("autoscaling", "v1") => return Some(autoscaling_v1()),
        _ => {}
    }
    installed_groups(gateway_api)
        .find(|(n, versions)| *n == group && versions.contains(&version))?;
    let mut list = Vec::new();
    for r in ALL
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = resource(r.plural, r.kind, true, r.short_names);
        if r.is_gateway_api() {
            entry["categories"] = json!(["gateway-api"]);
        }
        list.push(entry);
        if r.status_subresource {
            list.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": true,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": list,
    }))
}

/// `GET /apis/apps/v1`: Deployments and their `scale` subresource (an `autoscaling/v1`
/// Scale, which is how kubectl's scale client finds the kind to send).
fn apps_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "apps/v1",
        "resources": [
            {
                "name": "deployments",
                "singularName": "deployment",
                "namespaced": true,
                "kind": "Deployment",
                "verbs": ["create", "delete", "get", "list", "patch", "update"],
                "shortNames": ["deploy"],
                "categories": ["all"],
            },
            {
                "name": "deployments/scale",
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            },
        ],
    })
}

/// `GET /apis/autoscaling/v1`: listed so the group is consistent; it serves no objects.
fn autoscaling_v1() -> Value {
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "autoscaling/v1", "resources": [] })
}
