//! Parking's binary settings: where the parking listener listens, and where parked slices
//! point (the waker addresses: a static list, or the ready endpoints of a Service).

use std::fmt;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use idle_scaler_kube::parking::{MAX_PORTS, WakerAddresses};
use idle_scaler_kube::waker_addresses::{LocalAddresses, WakerService, parse_addresses};

/// The parking listener's default first port: the i-th parked port of a Service goes to
/// this + i.
pub const DEFAULT_PORT: u16 = 8081;
/// The waker Service's name when `IDLE_SCALER_WAKER_SERVICE` is unset: the shipped one.
pub const DEFAULT_SERVICE_NAME: &str = "idle-scaler";

/// Where parked slices point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakerAddressSource {
    /// `IDLE_SCALER_WAKER_ADDRESSES`: a fixed list.
    Static(WakerAddresses),
    /// The ready endpoints of a Service, watched: `IDLE_SCALER_WAKER_SERVICE`, or
    /// `<POD_NAMESPACE>/idle-scaler` by default.
    Service(WakerService),
    /// Neither variable set and no `POD_NAMESPACE` (not in a pod): parking has no address to
    /// point slices at.
    Unset,
}

impl fmt::Display for WakerAddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(addresses) => write!(f, "static {addresses}"),
            Self::Service(service) => write!(f, "service {service}"),
            Self::Unset => f.write_str("unset"),
        }
    }
}

/// `IDLE_SCALER_PARKING_LISTEN_ADDR`: `host:port` (the listener takes port + 0..7), `off`
/// (None), or `0.0.0.0:8081` when unset.
pub fn listen_addr(value: Option<&str>) -> anyhow::Result<Option<SocketAddr>> {
    const NAME: &str = "IDLE_SCALER_PARKING_LISTEN_ADDR";
    let Some(v) = value.map(str::trim) else {
        return Ok(Some(SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))));
    };
    if v == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = v.parse().with_context(|| {
        format!("invalid {NAME} = {v:?}: expected host:port, like 0.0.0.0:{DEFAULT_PORT}, or off")
    })?;
    let last = MAX_PORTS - 1;
    if addr.port() == 0 || addr.port().checked_add(last).is_none() {
        // Port 0 would be any free port, but parked slices name the ports: they must be fixed.
        bail!(
            "invalid {NAME} = {v:?}: the listener takes ports port..port+{last}, so the port \
             must be from 1 to {}",
            u16::MAX - last
        );
    }
    Ok(Some(addr))
}

/// `IDLE_SCALER_ROUTE_INDEX`: `on` (or unset) reads `HTTPRoute`s, `Gateway`s,
/// `ReferenceGrant`s and `Ingress`es, so public hostnames name parked apps; `off` for a
/// cluster where idle-scaler may not list them (RBAC not granted).
pub fn route_index(value: Option<&str>) -> anyhow::Result<bool> {
    match value.map(str::trim) {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => bail!(
            "invalid IDLE_SCALER_ROUTE_INDEX = {other:?}: expected on or off (off where \
             idle-scaler may not list HTTPRoutes, Gateways, ReferenceGrants and Ingresses)"
        ),
    }
}

/// `IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES`: `true` lets the waker addresses and the apps'
/// endpoints be loopback addresses, for a test rig whose callers, waker and apps share one
/// host; anything else (or unset) refuses them, as a cluster needs.
pub fn local_addresses(value: Option<&str>) -> anyhow::Result<LocalAddresses> {
    match value.map(str::trim) {
        None | Some("false") => Ok(LocalAddresses::Refuse),
        Some("true") => Ok(LocalAddresses::Allow),
        Some(other) => bail!(
            "invalid IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES = {other:?}: expected true or false \
             (true only for a test rig on one host)"
        ),
    }
}

/// The waker addresses from `IDLE_SCALER_WAKER_ADDRESSES`, `IDLE_SCALER_WAKER_SERVICE` and
/// `POD_NAMESPACE` (each `None` when unset or blank); static loopback addresses only when
/// `local` allows them. Setting both variables is an error: which one parked slices follow
/// would be a guess.
pub fn waker_address_source(
    addresses: Option<&str>,
    service: Option<&str>,
    pod_namespace: Option<&str>,
    local: LocalAddresses,
) -> anyhow::Result<WakerAddressSource> {
    match (addresses, service) {
        (Some(a), Some(s)) => bail!(
            "IDLE_SCALER_WAKER_ADDRESSES = {a:?} and IDLE_SCALER_WAKER_SERVICE = {s:?} are both \
             set: parked slices point at one or the other; unset one"
        ),
        (Some(a), None) => parse_addresses(a.trim(), local)
            .map(WakerAddressSource::Static)
            .with_context(|| {
                format!(
                    "invalid IDLE_SCALER_WAKER_ADDRESSES = {a:?}: expected <ip>:<port>,... (IPv6 \
                     as [ip]:port)"
                )
            }),
        (None, Some(s)) => s
            .trim()
            .parse::<WakerService>()
            .map(WakerAddressSource::Service)
            .with_context(|| {
                format!(
                    "invalid IDLE_SCALER_WAKER_SERVICE = {s:?}: expected <namespace>/<name>, \
                     like idle-scaler/idle-scaler (lowercase letters, digits and '-', at most 63 \
                     each)"
                )
            }),
        (None, None) => match pod_namespace.map(str::trim) {
            None => Ok(WakerAddressSource::Unset),
            Some(namespace) => format!("{namespace}/{DEFAULT_SERVICE_NAME}")
                .parse::<WakerService>()
                .map(WakerAddressSource::Service)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "invalid POD_NAMESPACE = {namespace:?}: not a namespace name (the \
                         default IDLE_SCALER_WAKER_SERVICE is <POD_NAMESPACE>/{DEFAULT_SERVICE_NAME})"
                    )
                }),
        },
    }
}

#[cfg(test)]
mod tests;
