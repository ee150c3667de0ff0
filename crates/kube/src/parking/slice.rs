//! The EndpointSlices that park a Service: their names, their content, and whose they are.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::{
    DEPLOYMENT_LABEL, Family, MANAGED_BY, MANAGED_BY_LABEL, ParkedPort, SERVICE_NAME_LABEL,
};

/// Kubernetes' limit for a DNS label; slice names stay within it.
const NAME_MAX: usize = 63;
const PREFIX: &str = "idle-scaler-";

/// The address family of a parked slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// `addressType: IPv4`.
    V4,
    /// `addressType: IPv6`.
    V6,
}

impl AddressFamily {
    /// The family of a slice's `addressType` (`None` for `FQDN` or anything else).
    pub fn from_address_type(address_type: &str) -> Option<Self> {
        match address_type {
            "IPv4" => Some(Self::V4),
            "IPv6" => Some(Self::V6),
            _ => None,
        }
    }

    /// The slice's `addressType`.
    pub fn address_type(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }
}

/// The name of the parked slice of `service` for `family`: `idle-scaler-<service>`, `-v6`
/// for IPv6; past 63 characters, a prefix of the name plus a stable hash of all of it.
pub fn slice_name(service: &str, family: AddressFamily) -> String {
    let suffix = match family {
        AddressFamily::V4 => "",
        AddressFamily::V6 => "-v6",
    };
    fit(PREFIX, service, suffix)
}

/// The `idle-scaler.dev/deployment` label's value: the Deployment's name, kept within the
/// 63 characters of a label value (a Deployment's name may have up to 253).
pub fn deployment_label(deployment: &str) -> String {
    fit("", deployment, "")
}

/// `prefix + name + suffix`, or when that passes 63 characters, a prefix of `name` plus a
/// hash of all of it, so the result stays unique and the same in every run and version.
fn fit(prefix: &str, name: &str, suffix: &str) -> String {
    let full = format!("{prefix}{name}{suffix}");
    if full.len() <= NAME_MAX {
        return full;
    }
    let hash = format!("{:08x}", fnv1a32(name.as_bytes()));
    let room = NAME_MAX - prefix.len() - 1 - hash.len() - suffix.len();
    // Kubernetes names are ASCII, so a byte index is a char boundary (`get` guards the
    // rest); hyphens and dots are dropped so the hash follows an alphanumeric.
    let head = name
        .get(..room)
        .unwrap_or(name)
        .trim_end_matches(['-', '.']);
    format!("{prefix}{head}-{hash}{suffix}")
}

/// FNV-1a, 32 bits: tiny, stable across Rust versions (unlike `DefaultHasher`), and enough
/// to tell apart two Services whose names share their first 39 characters.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// Whether idle-scaler wrote `slice` (it carries the managed-by label). Only such a slice is
/// ever updated or deleted; a same-named slice without it is a `conflict`.
pub fn is_ours(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(MANAGED_BY_LABEL))
        .is_some_and(|value| value == MANAGED_BY)
}

/// The parked slice of `service` for one family: its ports at the family's parking port + i,
/// one ready endpoint per waker address. The i-th port of the slice is the one at offset i
/// ([`repointed`] relies on it), and the annotation `idle-scaler.dev/deployment` holds the
/// Deployment's full name (its label may be shortened).
pub(super) fn build(
    service: &Service,
    deployment: &str,
    ports: &[ParkedPort],
    family: AddressFamily,
    waker: &Family,
) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    let labels = BTreeMap::from([
        (SERVICE_NAME_LABEL.to_owned(), name.clone()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (DEPLOYMENT_LABEL.to_owned(), deployment_label(deployment)),
    ]);
    // The label may be shortened with a hash; the annotation keeps the name for `parked()`.
    let annotations = BTreeMap::from([(DEPLOYMENT_LABEL.to_owned(), deployment.to_owned())]);
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: name.clone(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        ..OwnerReference::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(&name, family)),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        address_type: family.address_type().into(),
        endpoints: waker.ips.iter().map(endpoint).collect(),
        ports: Some(
            ports
                .iter()
                .map(|port| EndpointPort {
                    name: port.name.clone(),
                    app_protocol: port.app_protocol.clone(),
                    port: Some(i32::from(waker.port) + i32::from(port.offset)),
                    protocol: Some("TCP".into()),
                })
                .collect(),
        ),
    }
}

fn endpoint(ip: &IpAddr) -> Endpoint {
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(true),
            ..EndpointConditions::default()
        }),
        ..Endpoint::default()
    }
}

/// `slice` (one of idle-scaler's) pointed at `waker` as a slice of `family`: same Service,
/// labels, annotations, owner and port names, its i-th port at the family's parking port + i
/// (the order the plan writes), one ready endpoint per address. Its name is the family's,
/// so a slice of another family becomes its replacement (to create, the old one deleted).
pub fn repointed(slice: &EndpointSlice, family: AddressFamily, waker: &Family) -> EndpointSlice {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
        .cloned()
        .unwrap_or_default();
    let ports = slice.ports.as_ref().map(|ports| {
        ports
            .iter()
            .zip(0..)
            .map(|(port, offset)| EndpointPort {
                port: Some(i32::from(waker.port) + offset),
                ..port.clone()
            })
            .collect()
    });
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(&service, family)),
            namespace: slice.metadata.namespace.clone(),
            labels: slice.metadata.labels.clone(),
            annotations: slice.metadata.annotations.clone(),
            owner_references: slice.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        address_type: family.address_type().into(),
        endpoints: waker.ips.iter().map(endpoint).collect(),
        ports,
    }
}
