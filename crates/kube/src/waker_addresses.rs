//! Where parked slices point: the waker addresses, handed to [`crate::KubeParker`] through a
//! [`tokio::sync::watch`] channel ([`AddressFeed`]). Three sources:
//!
//! - [`fixed_addresses`]: a static list (`IDLE_SCALER_WAKER_ADDRESSES` syntax);
//! - [`watch_waker_service`]: the ready endpoints (port `parking`) of the waker's own Service,
//!   by watch on its EndpointSlices;
//! - a host's own channel: `tokio::sync::watch::channel(Some(addresses))`, whose sender it
//!   keeps to hand new addresses.
//!
//! A feed never goes from a set back to `None` or to an empty set: a Service whose endpoints
//! all left keeps its last addresses (parked callers keep a waker that may come back, rather
//! than no endpoint at all).

mod watched;

use std::str::FromStr;

use tokio::sync::watch;

use crate::parking::{AddressError, WakerAddresses};

pub use watched::watch_waker_service;

/// The waker addresses now and their changes; `None` until a first set is known (a watched
/// Service whose pods are not ready yet).
pub type AddressFeed = watch::Receiver<Option<WakerAddresses>>;

/// Whether loopback and link-local waker addresses are accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocalAddresses {
    /// Refused (the default): a parked slice pointing there reaches no waker from other pods.
    #[default]
    Refuse,
    /// Accepted: a test rig whose callers and waker share a host.
    Allow,
}

/// A list of waker addresses that cannot be used, and the value it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waker addresses {value:?}: {source}")]
pub struct AddressesError {
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    #[source]
    pub source: AddressError,
}

/// Parses a static list (`<ip>:<port>,...`, IPv6 as `[ip]:port`), refusing loopback and
/// link-local addresses unless `local` allows them. The error names the value.
pub fn parse_addresses(
    value: &str,
    local: LocalAddresses,
) -> Result<WakerAddresses, AddressesError> {
    let wrap = |source| AddressesError {
        value: value.to_owned(),
        source,
    };
    let addresses = WakerAddresses::from_str(value).map_err(wrap)?;
    if local == LocalAddresses::Refuse {
        addresses.refuse_local().map_err(wrap)?;
    }
    Ok(addresses)
}

/// A feed of a static list ([`parse_addresses`]) that never changes.
pub fn fixed_addresses(value: &str, local: LocalAddresses) -> Result<AddressFeed, AddressesError> {
    let addresses = parse_addresses(value, local)?;
    // The sender goes at once: a follower sees the channel closed and knows no change comes.
    Ok(watch::channel(Some(addresses)).1)
}

/// The waker's Service, `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakerService {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A waker Service that is not `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waker service {0:?} is not `<namespace>/<name>`")]
pub struct WakerServiceError(pub String);

impl FromStr for WakerService {
    type Err = WakerServiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        };
        match s.split_once('/') {
            Some((namespace, name)) if valid(namespace) && valid(name) => Ok(Self {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(WakerServiceError(s.to_owned())),
        }
    }
}

impl std::fmt::Display for WakerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests;
