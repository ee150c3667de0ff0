//! The waker addresses parked slices point at, one parking base port per address family.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::{AddressFamily, MAX_PORTS};

/// Why a list of waker addresses was refused. Each error names the entry or family at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The list names no address.
    #[error("no waker address given (expected `<ip>:<port>,...`, IPv6 as `[ip]:port`)")]
    Empty,
    /// An entry is not `<ip>:<port>` or `[<ipv6>]:<port>`.
    #[error("waker address {0:?} is not `<ip>:<port>` (IPv6 as `[ip]:port`)")]
    Syntax(String),
    /// An entry cannot receive traffic: an unspecified or multicast address, or port 0.
    #[error("waker address {0:?} cannot be an endpoint (unspecified, multicast or port 0)")]
    Unusable(String),
    /// A loopback or link-local address: other pods cannot reach it (a test rig allows it
    /// explicitly, [`WakerAddresses::refuse_local`] is not called then).
    #[error(
        "waker address {0:?} is loopback or link-local: other pods cannot reach it (allowed only for a test rig)"
    )]
    Local(String),
    /// The parking ports `port..port + 7` of an entry do not fit below 65536.
    #[error("waker address {0:?}: its parking ports (port + 0..7) pass 65535")]
    PortRange(String),
    /// Two addresses of one family name different ports: a slice has one port list per
    /// family, so all of a family's addresses must share the parking base port.
    #[error(
        "waker addresses {first:?} and {second:?} differ in port; addresses of one family must share the parking port"
    )]
    MixedPorts {
        /// The first address of the family.
        first: String,
        /// The address whose port differs from it.
        second: String,
    },
}

/// The addresses of one family and the parking base port they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The parking listener's first port: the i-th parked port is `port + i`.
    pub port: u16,
    /// The addresses, in the order given, without duplicates.
    pub ips: Vec<IpAddr>,
}

/// The parking listeners parked slices point at (`IDLE_SCALER_WAKER_ADDRESSES` or the ready
/// endpoints of the waker's Service): at least one address, one base port per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakerAddresses {
    v4: Option<Family>,
    v6: Option<Family>,
}

impl WakerAddresses {
    /// Groups socket addresses by family, refusing an empty set, unusable addresses and a
    /// family whose addresses differ in port.
    pub fn new(addrs: impl IntoIterator<Item = SocketAddr>) -> Result<Self, AddressError> {
        let mut out = Self { v4: None, v6: None };
        for addr in addrs {
            out.add(addr)?;
        }
        if out.v4.is_none() && out.v6.is_none() {
            return Err(AddressError::Empty);
        }
        Ok(out)
    }

    fn add(&mut self, addr: SocketAddr) -> Result<(), AddressError> {
        let ip = addr.ip();
        if ip.is_unspecified() || ip.is_multicast() || addr.port() == 0 {
            return Err(AddressError::Unusable(addr.to_string()));
        }
        if addr.port().checked_add(MAX_PORTS - 1).is_none() {
            return Err(AddressError::PortRange(addr.to_string()));
        }
        let slot = if ip.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        match slot {
            None => {
                *slot = Some(Family {
                    port: addr.port(),
                    ips: vec![ip],
                });
            }
            Some(family) if family.port != addr.port() => {
                return Err(AddressError::MixedPorts {
                    first: SocketAddr::new(family.ips[0], family.port).to_string(),
                    second: addr.to_string(),
                });
            }
            Some(family) => {
                if !family.ips.contains(&ip) {
                    family.ips.push(ip);
                }
            }
        }
        Ok(())
    }

    /// Refuses a loopback or link-local address (IPv4 `127/8`, `169.254/16`; IPv6 `::1`,
    /// `fe80::/10`): a slice pointing there sends every caller to itself.
    pub fn refuse_local(&self) -> Result<(), AddressError> {
        for family in self.v4.iter().chain(&self.v6) {
            if let Some(ip) = family.ips.iter().find(|ip| is_local(ip)) {
                return Err(AddressError::Local(
                    SocketAddr::new(*ip, family.port).to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The addresses of `family`, if any.
    pub fn family(&self, family: AddressFamily) -> Option<&Family> {
        match family {
            AddressFamily::V4 => self.v4(),
            AddressFamily::V6 => self.v6(),
        }
    }

    /// The IPv4 addresses, if any.
    pub fn v4(&self) -> Option<&Family> {
        self.v4.as_ref()
    }

    /// The IPv6 addresses, if any.
    pub fn v6(&self) -> Option<&Family> {
        self.v6.as_ref()
    }
}

/// Whether `ip` is loopback or link-local (IPv4-mapped IPv6 included): reachable from its own
/// host only, never a waker address for other pods.
pub fn is_local(ip: &IpAddr) -> bool {
    let v4_local = |v4: std::net::Ipv4Addr| v4.is_loopback() || v4.is_link_local();
    match ip {
        IpAddr::V4(v4) => v4_local(*v4),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some_and(v4_local)
        }
    }
}

impl FromStr for WakerAddresses {
    type Err = AddressError;

    /// Parses `<ip>:<port>,...` (IPv6 as `[ip]:port`); blanks around entries are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let addrs = s
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<SocketAddr>()
                    .map_err(|_| AddressError::Syntax(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(addrs)
    }
}

impl fmt::Display for WakerAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.v4.iter().chain(&self.v6).flat_map(|family| {
            family
                .ips
                .iter()
                .map(move |ip| SocketAddr::new(*ip, family.port))
        });
        for (i, addr) in all.enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{addr}")?;
        }
        Ok(())
    }
}
