//! The caller check: a forwarding proxy must not become a way around isolation. The
//! connection's source address is resolved to a pod's namespace; trusted gateways (pods of
//! `waker_gateway_namespaces`, sources in `waker_trusted_cidrs`) may call every parked
//! Service, other pods only their own namespace's and those whose Service admits their
//! namespace (`idle-scaler.dev/callers`). Everyone else is refused before anything is woken.

use std::net::IpAddr;

use idle_scaler_core::{ParkedServiceInfo, ParkingDirectory};
use ipnet::IpNet;
use tracing::debug;

use crate::WakerConfig;

/// Who is trusted as a gateway.
#[derive(Debug, Clone, Default)]
pub(super) struct Trust {
    gateway_namespaces: Vec<String>,
    cidrs: Vec<IpNet>,
}

impl Trust {
    pub(super) fn new(config: &WakerConfig) -> Self {
        Self {
            gateway_namespaces: config.gateway_namespaces(),
            cidrs: config.trusted_cidrs(),
        }
    }
}

/// The source of a connection, as the check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    /// The source address (an IPv4-mapped IPv6 address as IPv4).
    pub ip: IpAddr,
    /// The namespace of the pod with that address, if one has it.
    pub namespace: Option<String>,
    /// A gateway: may call every parked Service, and its `X-Forwarded-*` are kept.
    pub trusted: bool,
}

impl Caller {
    /// Resolves `ip` through `directory` (cached there, negative results too). A directory
    /// that cannot answer leaves the caller without a namespace: refused unless its address
    /// is trusted.
    pub(super) async fn resolve(
        ip: IpAddr,
        trust: &Trust,
        directory: &dyn ParkingDirectory,
    ) -> Self {
        let ip = ip.to_canonical();
        let namespace = match directory.pod_namespace(ip).await {
            Ok(ns) => ns,
            Err(e) => {
                debug!(error = %idle_scaler_core::error_chain(&e), "parking: caller's pod not known");
                None
            }
        };
        let trusted = trust.cidrs.iter().any(|c| c.contains(&ip))
            || namespace
                .as_ref()
                .is_some_and(|ns| trust.gateway_namespaces.contains(ns));
        Self {
            ip,
            namespace,
            trusted,
        }
    }

    /// Whether this caller may reach `service`'s app through the waker.
    pub(super) fn may_call(&self, service: &ParkedServiceInfo) -> bool {
        self.trusted
            || self
                .namespace
                .as_deref()
                .is_some_and(|ns| service.admits(ns))
    }
}

#[cfg(test)]
mod tests;
