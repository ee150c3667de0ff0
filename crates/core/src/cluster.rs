//! Several clusters: which ones an instance serves, and the scaler factory of each.
//!
//! A row belongs to the cluster its `provider_id` names (see [`Target`](crate::Target)); the
//! store is always asked with a [`ServedClusters`], so rows of clusters an instance does not
//! serve never leave the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ScalerFactory;
use crate::target::{ClusterName, is_cluster_id, scheme, scheme_of};

/// At most `limit` of `items`, the answers of several clusters' walks (each cluster's oldest
/// first), shared fairly between the clusters: every cluster's oldest item comes before any
/// cluster's second, and so on (ties within a round by `key`); the chosen come back ordered by
/// `key`. So a cluster whose items cannot be acted on (its API is down, its apps are left
/// alone) takes at most its share of a tick's work, and the others go on. With one cluster it
/// is simply the first `limit` by `key`. `provider_id` gives the item's id, whose
/// [`scheme_of`] names its cluster.
pub fn fair_share<T, K: Ord>(
    mut items: Vec<T>,
    limit: usize,
    provider_id: impl Fn(&T) -> &str,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    items.sort_by_key(|i| key(i));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let ranks: Vec<usize> = items
        .iter()
        .map(|i| {
            let cluster = scheme_of(provider_id(i)).unwrap_or_default();
            let n = seen.entry(cluster.to_owned()).or_default();
            *n += 1;
            *n
        })
        .collect();
    let mut ranked: Vec<(usize, T)> = ranks.into_iter().zip(items).collect();
    // Stable: within a round the key order of the first sort holds.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.truncate(limit);
    let mut chosen: Vec<T> = ranked.into_iter().map(|(_, i)| i).collect();
    chosen.sort_by_key(|i| key(i));
    chosen
}

/// The clusters one instance serves: the default one (ids `k8s:...`) or not, and named ones
/// (ids `k8s@<name>:...`). Never empty when built from a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServedClusters {
    /// Sorted, without repeats; the default cluster (None) first.
    clusters: Vec<Option<ClusterName>>,
}

impl Default for ServedClusters {
    /// The default cluster only: what an instance served before clusters could be named.
    fn default() -> Self {
        Self::default_only()
    }
}

impl ServedClusters {
    /// The default cluster only.
    pub fn default_only() -> Self {
        Self {
            clusters: vec![None],
        }
    }

    /// The default cluster if `default`, and the `named` ones.
    pub fn new(default: bool, named: impl IntoIterator<Item = ClusterName>) -> Self {
        let mut clusters: Vec<Option<ClusterName>> = named.into_iter().map(Some).collect();
        if default {
            clusters.push(None);
        }
        clusters.sort();
        clusters.dedup();
        Self { clusters }
    }

    /// A set holding only these clusters of `self` (the ones whose client is ready this tick).
    #[must_use]
    pub fn only(&self, keep: impl Fn(Option<&ClusterName>) -> bool) -> Self {
        Self {
            clusters: self
                .clusters
                .iter()
                .filter(|c| keep(c.as_ref()))
                .cloned()
                .collect(),
        }
    }

    /// The clusters, the default one (None) first.
    pub fn iter(&self) -> impl Iterator<Item = Option<&ClusterName>> {
        self.clusters.iter().map(Option::as_ref)
    }

    /// How many clusters.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Whether no cluster is served.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Whether `cluster` is served.
    pub fn serves(&self, cluster: Option<&ClusterName>) -> bool {
        self.clusters.iter().any(|c| c.as_ref() == cluster)
    }

    /// The schemes of the served clusters' ids (`k8s`, `k8s@east`): the values the store
    /// compares `split_part(provider_id, ':', 1)` with.
    pub fn schemes(&self) -> Vec<String> {
        self.iter().map(scheme).collect()
    }

    /// Whether `provider_id` is an id of a served cluster, as the store's candidate query
    /// decides it: it has a `:` and its scheme is a served one.
    pub fn serves_id(&self, provider_id: &str) -> bool {
        scheme_of(provider_id).is_some_and(|s| self.iter().any(|c| scheme(c) == s))
    }

    /// Whether a `sleeping` row with `provider_id` is one recovery hands to this instance: an
    /// id of a served cluster, or an id of no cluster at all (another provider's, which
    /// recovery settles without a Kubernetes call, as it always did). Ids of other clusters
    /// (`k8s...:...`) are left to the instances serving them. The store's test:
    /// `split_part(provider_id, ':', 1) = ANY(schemes) OR provider_id NOT LIKE 'k8s%:%'`.
    pub fn admits_id(&self, provider_id: &str) -> bool {
        self.serves_id(provider_id) || !is_cluster_id(provider_id)
    }
}

impl std::fmt::Display for ServedClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.iter().map(crate::target::cluster_label).collect();
        f.write_str(&labels.join(","))
    }
}

/// One value per cluster: the default cluster's (key `None`) and named ones'. The one map
/// behind a job's scaler factories, a tick's clients and an adapter's clients.
#[derive(Clone)]
pub struct PerCluster<V> {
    values: BTreeMap<Option<ClusterName>, V>,
}

impl<V> Default for PerCluster<V> {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
        }
    }
}

impl<V> std::fmt::Debug for PerCluster<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.clusters().map(crate::target::cluster_label))
            .finish()
    }
}

impl<V> PerCluster<V> {
    /// Only the default cluster's value.
    pub fn default_cluster(value: V) -> Self {
        let mut s = Self::default();
        s.insert(None, value);
        s
    }

    /// Sets the value of `cluster` (None: the default cluster).
    pub fn insert(&mut self, cluster: Option<ClusterName>, value: V) {
        self.values.insert(cluster, value);
    }

    /// The value of `cluster`, if there is one.
    pub fn get(&self, cluster: Option<&ClusterName>) -> Option<&V> {
        self.values.get(&cluster.cloned())
    }

    /// Whether `cluster` has a value.
    pub fn contains(&self, cluster: Option<&ClusterName>) -> bool {
        self.get(cluster).is_some()
    }

    /// The clusters with a value, the default one (None) first.
    pub fn clusters(&self) -> impl Iterator<Item = Option<&ClusterName>> {
        self.values.keys().map(Option::as_ref)
    }

    /// The clusters and their values, the default one (None) first.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&ClusterName>, &V)> {
        self.values.iter().map(|(c, v)| (c.as_ref(), v))
    }
}

/// The scaler factory of each cluster a job can reach: the default cluster's and the named
/// ones'. A served cluster without one fails open on every tick (a WARN naming it).
pub type ScalerFactories = PerCluster<Arc<dyn ScalerFactory>>;

#[cfg(test)]
mod tests;
