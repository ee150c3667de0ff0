//! The `clusters` and `default_cluster` keys: which clusters an instance serves, and how to
//! reach each named one (a kubeconfig file, a context, or both).
//!
//! TOML:
//! ```toml
//! default_cluster = true          # also serve the default cluster (ids k8s:<ns>/<name>)
//! [clusters.east]                 # ids k8s@east:<ns>/<name>
//! kubeconfig = "/etc/kube/east.yaml"
//! context = "east-admin"
//! ```
//! Environment: `DEPLOY_SCALE_TO_ZERO_CLUSTERS="east=/etc/kube/east.yaml#east-admin,west=#west"`
//! (`<name>=<kubeconfig file>#<context>`, either part may be left out but not both; a file
//! name holding `,` or `#` needs the TOML form), `none` or empty for no named cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::value::Value;
use serde::{Deserialize, Serialize};

use super::load::Reader;
use super::{Config, ConfigError};
use crate::{ClusterName, ServedClusters};

/// How to reach one named cluster. With only `kubeconfig`, that file's current context; with
/// only `context`, that context of the usual kubeconfig (`KUBECONFIG`, `~/.kube/config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// A kubeconfig file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

pub(super) const ALLOWED_ENTRIES: &str = "a comma-separated list of <name>=<kubeconfig file>#<context> \
     entries (either part may be left out, not both; <name> a DNS-1123 label other than \
     \"default\"), or none";
pub(super) const ALLOWED_TABLE: &str = "a table of clusters, each [clusters.<name>] (<name> a DNS-1123 \
     label other than \"default\") with a kubeconfig file, a context, or both, and no other key";
pub(super) const ALLOWED_DEFAULT: &str = "true while no clusters are configured: an instance must serve \
     at least one cluster";

impl Config {
    /// The clusters this configuration serves.
    pub fn served_clusters(&self) -> ServedClusters {
        ServedClusters::new(self.default_cluster, self.clusters.keys().cloned())
    }
}

impl Reader {
    /// The error for `value` of `key`, showing `shown` (the bad entry) as the value.
    fn refuse_as(
        &self,
        key: &'static str,
        value: &Value,
        shown: String,
        allowed: &'static str,
    ) -> ConfigError {
        ConfigError::Invalid {
            key,
            env: self.env_name(key),
            value: shown,
            origin: self.origin(key, value),
            allowed,
        }
    }

    /// The `clusters` key: a TOML table, or the environment's entry list.
    pub(super) fn clusters(
        &self,
        key: &'static str,
    ) -> Result<BTreeMap<ClusterName, ClusterConfig>, ConfigError> {
        let value = self.find(key)?;
        match &value {
            Value::Empty(..) => Ok(BTreeMap::new()),
            Value::String(_, s) => self.cluster_entries(key, &value, s),
            Value::Dict(_, dict) => {
                let mut out = BTreeMap::new();
                for (name, entry) in dict {
                    let refuse = |what: String| self.refuse_as(key, &value, what, ALLOWED_TABLE);
                    let cluster = ClusterName::new(name)
                        .map_err(|e| refuse(format!("[clusters.{name}]: {e}")))?;
                    let Value::Dict(_, fields) = entry else {
                        return Err(refuse(format!("clusters.{name} is not a table")));
                    };
                    let mut config = ClusterConfig::default();
                    for (field, v) in fields {
                        let text = v
                            .as_str()
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| {
                                refuse(format!("clusters.{name}.{field} is not a non-empty string"))
                            })?;
                        match field.as_str() {
                            "kubeconfig" => config.kubeconfig = Some(PathBuf::from(text)),
                            "context" => config.context = Some(text.to_owned()),
                            _ => {
                                return Err(refuse(format!(
                                    "clusters.{name}.{field} is no setting of a cluster"
                                )));
                            }
                        }
                    }
                    if config.kubeconfig.is_none() && config.context.is_none() {
                        return Err(refuse(format!(
                            "[clusters.{name}] has neither kubeconfig nor context"
                        )));
                    }
                    out.insert(cluster, config);
                }
                Ok(out)
            }
            _ => Err(self.refuse_as(key, &value, super::load::render(&value), ALLOWED_TABLE)),
        }
    }

    /// `east=/etc/kube/east.yaml#east-admin,west=#west`: each entry checked on its own, and
    /// an error names the entry.
    fn cluster_entries(
        &self,
        key: &'static str,
        value: &Value,
        text: &str,
    ) -> Result<BTreeMap<ClusterName, ClusterConfig>, ConfigError> {
        let text = text.trim();
        let mut out = BTreeMap::new();
        if text.is_empty() || text.eq_ignore_ascii_case("none") {
            return Ok(out);
        }
        for entry in text.split(',').map(str::trim) {
            let refuse = |why: &str| {
                self.refuse_as(
                    key,
                    value,
                    format!("entry {entry:?}: {why}"),
                    ALLOWED_ENTRIES,
                )
            };
            let (name, how) = entry
                .split_once('=')
                .ok_or_else(|| refuse("no = after the cluster name"))?;
            let name = ClusterName::new(name.trim()).map_err(|e| refuse(&e.to_string()))?;
            let (file, context) = how.split_once('#').unwrap_or((how, ""));
            let config = ClusterConfig {
                kubeconfig: Some(file.trim())
                    .filter(|f| !f.is_empty())
                    .map(PathBuf::from),
                context: Some(context.trim())
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            };
            if config.kubeconfig.is_none() && config.context.is_none() {
                return Err(refuse("neither a kubeconfig file nor a context"));
            }
            if out.insert(name, config).is_some() {
                return Err(refuse("the cluster is named twice"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
