//! The resources the generic store serves, by group, version and plural.

/// One resource the generic store serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in super::super) struct Resource {
    pub plural: &'static str,
    pub kind: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    /// The version this entry serves.
    pub version: &'static str,
    /// The version objects are stored in: a resource served in two versions (ReferenceGrant)
    /// is one set of objects, as with a real CRD; answers carry the version asked for.
    pub storage_version: &'static str,
    /// A `status` subresource, as CRDs and Ingresses have: object writes keep `status`, only
    /// `.../status` writes change it, and `metadata.generation` counts the other changes.
    pub status_subresource: bool,
    pub short_names: &'static [&'static str],
}

impl Resource {
    const fn new(plural: &'static str, kind: &'static str, group: &'static str) -> Self {
        Self {
            plural,
            kind,
            group,
            version: "v1",
            storage_version: "v1",
            status_subresource: false,
            short_names: &[],
        }
    }

    const fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    const fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }

    const fn served_as(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    fn group_version(self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The `apiVersion` answers carry.
    pub fn api_version(self) -> String {
        self.group_version(self.version)
    }

    /// The `apiVersion` stored objects carry.
    pub fn storage_api_version(self) -> String {
        self.group_version(self.storage_version)
    }

    /// Installed with the Gateway API CRDs, not built in.
    pub fn is_gateway_api(self) -> bool {
        self.group == GATEWAY_GROUP
    }
}

pub(in super::super) const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

pub(in super::super) const SERVICES: Resource =
    Resource::new("services", "Service", "").short(&["svc"]);
pub(in super::super) const ENDPOINT_SLICES: Resource =
    Resource::new("endpointslices", "EndpointSlice", "discovery.k8s.io");
pub(in super::super) const PODS: Resource = Resource::new("pods", "Pod", "").short(&["po"]);
pub(in super::super) const INGRESSES: Resource =
    Resource::new("ingresses", "Ingress", "networking.k8s.io")
        .with_status()
        .short(&["ing"]);
pub(in super::super) const GATEWAYS: Resource = Resource::new("gateways", "Gateway", GATEWAY_GROUP)
    .with_status()
    .short(&["gtw"]);
pub(in super::super) const HTTP_ROUTES: Resource =
    Resource::new("httproutes", "HTTPRoute", GATEWAY_GROUP).with_status();
pub(in super::super) const REFERENCE_GRANTS: Resource =
    Resource::new("referencegrants", "ReferenceGrant", GATEWAY_GROUP).short(&["refgrant"]);
pub(in super::super) const REFERENCE_GRANTS_V1BETA1: Resource =
    REFERENCE_GRANTS.served_as("v1beta1");

/// Every resource the generic store serves, each version once.
pub(in super::super) const ALL: [Resource; 8] = [
    SERVICES,
    PODS,
    ENDPOINT_SLICES,
    INGRESSES,
    GATEWAYS,
    HTTP_ROUTES,
    REFERENCE_GRANTS,
    REFERENCE_GRANTS_V1BETA1,
];

/// The resource at `/api{s}/{group}/{version}/.../{plural}`.
pub(in super::super) fn find(group: &str, version: &str, plural: &str) -> Option<Resource> {
    ALL.into_iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of an object's `kind` (and `apiVersion`, when given).
pub(in super::super) fn of_kind(kind: &str, api_version: Option<&str>) -> Option<Resource> {
    ALL.into_iter()
        .find(|r| r.kind == kind && api_version.is_none_or(|v| r.api_version() == v))
}
