//! `provider_id` parsing. The grammar:
//!
//! ```text
//! provider_id = "k8s" [ "@" cluster ] ":" namespace "/" deployment
//! cluster     = DNS-1123 label (1-63 of [a-z0-9-], alphanumeric at both ends), not "default"
//! namespace   = DNS-1123 label
//! deployment  = DNS-1123 subdomain (dot-separated labels, at most 253 characters)
//! ```
//!
//! `k8s:<namespace>/<deployment>` is an app of the default cluster (what every id meant before
//! clusters could be named); `k8s@<cluster>:<namespace>/<deployment>` one of the named cluster.
//! The part before the first `:` is the id's *scheme* (`k8s`, `k8s@east`): what SQL's
//! `split_part(provider_id, ':', 1)` yields, so the database can filter and index rows by
//! cluster. Any id whose scheme is neither `k8s` nor `k8s@...` is another provider's.

use serde::{Deserialize, Serialize};

const SCHEME: &str = "k8s";

/// The name of a cluster other than the default one: a DNS-1123 label, not `default` (the
/// default cluster's name in logs and metric labels).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    /// The name the default cluster goes by in logs and metric labels.
    pub const DEFAULT_LABEL: &'static str = "default";

    /// A cluster name, or why `name` is none.
    ///
    /// # Errors
    /// [`TargetError::Malformed`] saying which rule `name` breaks.
    pub fn new(name: &str) -> Result<Self, TargetError> {
        if name == Self::DEFAULT_LABEL {
            return Err(TargetError::Malformed(
                "cluster name \"default\" is reserved for the default cluster (write k8s:<namespace>/<deployment>)",
            ));
        }
        if !is_dns1123_label(name) {
            return Err(TargetError::Malformed(
                "cluster name is not a DNS-1123 label",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClusterName {
    type Error = TargetError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<ClusterName> for String {
    fn from(c: ClusterName) -> Self {
        c.0
    }
}

impl std::fmt::Display for ClusterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scheme of `cluster`'s ids: `k8s` for the default cluster, `k8s@<name>` for a named one.
pub fn scheme(cluster: Option<&ClusterName>) -> String {
    match cluster {
        None => SCHEME.to_owned(),
        Some(c) => format!("{SCHEME}@{c}"),
    }
}

/// The scheme of a `provider_id`, as SQL's `split_part(provider_id, ':', 1)` reads it when
/// the id has a `:`; None when it has none (no cluster's id).
pub fn scheme_of(provider_id: &str) -> Option<&str> {
    provider_id.split_once(':').map(|(scheme, _)| scheme)
}

/// Whether `provider_id` is some cluster's id, this scaler's or not: SQL's
/// `provider_id LIKE 'k8s%:%'`, the predicate of the candidate index.
pub fn is_cluster_id(provider_id: &str) -> bool {
    provider_id.starts_with(SCHEME) && provider_id.contains(':')
}

/// The label of a cluster in logs and metrics: its name, or `default`.
pub fn cluster_label(cluster: Option<&ClusterName>) -> &str {
    cluster.map_or(ClusterName::DEFAULT_LABEL, ClusterName::as_str)
}

/// A Kubernetes Deployment this scaler may act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    /// The cluster it runs in; None: the default cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterName>,
    /// Namespace (a DNS-1123 label).
    pub namespace: String,
    /// Deployment name (a DNS-1123 subdomain).
    pub name: String,
}

/// Why a `provider_id` names no target of this scaler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Another provider's id: not ours, skipped quietly.
    #[error("foreign provider id")]
    Foreign,
    /// Our scheme but not a valid `[@<cluster>]:<namespace>/<deployment>`.
    #[error("malformed provider id: {0}")]
    Malformed(&'static str),
}

impl Target {
    /// A target in the default cluster.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            cluster: None,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses `k8s:<namespace>/<deployment>` or `k8s@<cluster>:<namespace>/<deployment>`.
    pub fn parse(provider_id: &str) -> Result<Self, TargetError> {
        let rest = provider_id
            .strip_prefix(SCHEME)
            .ok_or(TargetError::Foreign)?;
        let (cluster, rest) = if let Some(rest) = rest.strip_prefix(':') {
            (None, rest)
        } else if let Some(named) = rest.strip_prefix('@') {
            let (name, rest) = named.split_once(':').ok_or(TargetError::Malformed(
                "expected k8s@<cluster>:<namespace>/<deployment>",
            ))?;
            if name.is_empty() {
                return Err(TargetError::Malformed("cluster name is empty"));
            }
            (Some(ClusterName::new(name)?), rest)
        } else {
            // `k8sfoo:...`, `k8s-apps/web`, `k8s`: another provider's id.
            return Err(TargetError::Foreign);
        };
        let (namespace, name) = rest.split_once('/').ok_or(TargetError::Malformed(
            "expected <namespace>/<deployment> after the scheme",
        ))?;
        if !is_dns1123_label(namespace) {
            return Err(TargetError::Malformed("namespace is not a DNS-1123 label"));
        }
        if !is_dns1123_subdomain(name) {
            return Err(TargetError::Malformed(
                "deployment name is not a DNS-1123 subdomain",
            ));
        }
        Ok(Self {
            cluster,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The `provider_id` naming this target.
    pub fn provider_id(&self) -> String {
        format!(
            "{}:{}/{}",
            scheme(self.cluster.as_ref()),
            self.namespace,
            self.name
        )
    }

    /// The label of its cluster in logs and metrics (`default` for the default cluster).
    pub fn cluster_label(&self) -> &str {
        cluster_label(self.cluster.as_ref())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(cluster) = &self.cluster {
            write!(f, "{cluster}:")?;
        }
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// RFC 1123 label as Kubernetes checks it: 1-63 of `[a-z0-9-]`, alphanumeric at both ends.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: at most 253 characters of dot-separated labels.
fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests;
