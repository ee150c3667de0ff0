//! Parking's binary settings: where the parking listener listens, and where parked slices
//! point (the waker addresses: a static list, or the ready endpoints of a Service).

use std::fmt;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use idle_scaler_kube::parking::{MAX_PORTS, WakerAddresses};

/// The parking listener's default first port: the i-th parked port of a Service goes to
/// this + i.
pub const DEFAULT_PORT: u16 = 8081;
/// The waker Service's name when `IDLE_SCALER_WAKER_SERVICE` is unset: the shipped one.
pub const DEFAULT_SERVICE_NAME: &str = "idle-scaler";

/// `IDLE_SCALER_WAKER_SERVICE`: the Service whose ready endpoints (port `parking`) are the
/// waker addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakerService {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for WakerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

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

/// The waker addresses from `IDLE_SCALER_WAKER_ADDRESSES`, `IDLE_SCALER_WAKER_SERVICE` and
/// `POD_NAMESPACE` (each `None` when unset or blank). Setting both variables is an error:
/// which one parked slices follow would be a guess.
pub fn waker_address_source(
    addresses: Option<&str>,
    service: Option<&str>,
    pod_namespace: Option<&str>,
) -> anyhow::Result<WakerAddressSource> {
    match (addresses, service) {
        (Some(a), Some(s)) => bail!(
            "IDLE_SCALER_WAKER_ADDRESSES = {a:?} and IDLE_SCALER_WAKER_SERVICE = {s:?} are both \
             set: parked slices point at one or the other; unset one"
        ),
        (Some(a), None) => a.parse::<WakerAddresses>().map(WakerAddressSource::Static).with_context(|| {
            format!(
                "invalid IDLE_SCALER_WAKER_ADDRESSES = {a:?}: expected <ip>:<port>,... (IPv6 as [ip]:port)"
            )
        }),
        (None, Some(s)) => waker_service(s).map(WakerAddressSource::Service),
        (None, None) => match pod_namespace.map(str::trim) {
            None => Ok(WakerAddressSource::Unset),
            Some(namespace) if is_dns1123_label(namespace) => {
                Ok(WakerAddressSource::Service(WakerService {
                    namespace: namespace.to_owned(),
                    name: DEFAULT_SERVICE_NAME.to_owned(),
                }))
            }
            Some(namespace) => bail!(
                "invalid POD_NAMESPACE = {namespace:?}: not a namespace name (the default \
                 IDLE_SCALER_WAKER_SERVICE is <POD_NAMESPACE>/{DEFAULT_SERVICE_NAME})"
            ),
        },
    }
}

/// `<namespace>/<name>`, both DNS-1123 labels.
fn waker_service(value: &str) -> anyhow::Result<WakerService> {
    let parsed = value
        .trim()
        .split_once('/')
        .filter(|(namespace, name)| is_dns1123_label(namespace) && is_dns1123_label(name));
    match parsed {
        Some((namespace, name)) => Ok(WakerService {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        None => bail!(
            "invalid IDLE_SCALER_WAKER_SERVICE = {value:?}: expected <namespace>/<name>, like \
             idle-scaler/idle-scaler (lowercase letters, digits and '-', at most 63 each)"
        ),
    }
}

/// What a namespace or a Service name may be: lowercase letters, digits and `-`, starting
/// and ending with a letter or digit, at most 63 characters.
fn is_dns1123_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&s.len())
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

#[cfg(test)]
mod tests;
