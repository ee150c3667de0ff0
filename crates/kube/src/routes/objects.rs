//! The Gateway API objects the route index reads, as small serde structs of only the fields
//! it needs (the generated crates are large to build and keep every field in memory).

use kube::core::{ApiResource, NotUsed, Object};
use serde::Deserialize;

/// The Gateway API group.
pub(crate) const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// `HTTPRoute`, `gateway.networking.k8s.io/v1`.
pub(crate) type HttpRoute = Object<HttpRouteSpec, HttpRouteStatus>;
/// `Gateway`, `gateway.networking.k8s.io/v1`.
pub(crate) type Gateway = Object<GatewaySpec, NotUsed>;
/// `ReferenceGrant`, `gateway.networking.k8s.io/v1beta1` (or `v1`).
pub(crate) type ReferenceGrant = Object<ReferenceGrantSpec, NotUsed>;

/// The API resource of a Gateway API `kind` at `version`.
pub(crate) fn resource(kind: &str, plural: &str, version: &str) -> ApiResource {
    ApiResource {
        group: GATEWAY_GROUP.to_owned(),
        version: version.to_owned(),
        api_version: format!("{GATEWAY_GROUP}/{version}"),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRouteSpec {
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpRouteRule {
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default)]
    pub filters: Vec<Filter>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

/// Header, query and method matches are not read: see the route table's documentation.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HttpRouteMatch {
    pub path: Option<PathSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PathSpec {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Filter {
    #[serde(rename = "type", default)]
    pub type_: String,
    pub url_rewrite: Option<UrlRewrite>,
}

/// Only whether it rewrites the path matters (a hostname rewrite leaves it).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct UrlRewrite {
    pub path: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: String,
    pub port: Option<i32>,
    pub weight: Option<i32>,
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HttpRouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RouteParentStatus {
    #[serde(default)]
    pub parent_ref: ParentRef,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Condition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GatewaySpec {
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Listener {
    #[serde(default)]
    pub name: String,
    pub hostname: Option<String>,
    #[serde(default)]
    pub port: i32,
    #[serde(default)]
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ReferenceGrantSpec {
    #[serde(default)]
    pub from: Vec<GrantFrom>,
    #[serde(default)]
    pub to: Vec<GrantTo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GrantFrom {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GrantTo {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    pub name: Option<String>,
}
