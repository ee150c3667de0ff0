//! Discovery documents: what kubectl (and kube's discovery) read before any request.
//! Served as plain `application/json`, so clients asking for aggregated discovery fall back
//! to the per-group documents, as they do against an older apiserver.

use serde_json::{Value, json};

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

/// `GET /apis/discovery.k8s.io/v1`: EndpointSlices.
pub(super) fn discovery_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "discovery.k8s.io/v1",
        "resources": [resource("endpointslices", "EndpointSlice", true, &[])],
    })
}

fn group(name: &str) -> Value {
    let gv = json!({ "groupVersion": format!("{name}/v1"), "version": "v1" });
    json!({ "name": name, "versions": [gv.clone()], "preferredVersion": gv })
}

/// `GET /apis`.
pub(super) fn groups() -> Value {
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": [group("apps"), group("autoscaling"), group("discovery.k8s.io")] })
}

/// `GET /apis/{group}`.
pub(super) fn group_doc(name: &str) -> Option<Value> {
    matches!(name, "apps" | "autoscaling" | "discovery.k8s.io").then(|| {
        let mut g = group(name);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// `GET /apis/apps/v1`: Deployments and their `scale` subresource (an `autoscaling/v1`
/// Scale, which is how kubectl's scale client finds the kind to send).
pub(super) fn apps_v1() -> Value {
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
pub(super) fn autoscaling_v1() -> Value {
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "autoscaling/v1", "resources": [] })
}
