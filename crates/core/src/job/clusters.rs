//! One tick's Kubernetes clients: one per served cluster that has one now. A cluster whose
//! client cannot be built fails open on its own: one WARN naming it, its rows are not even
//! selected this tick, and the other clusters go on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tracing::warn;

use super::Job;
use crate::{
    ClusterName, Error, PerCluster, Reach, Result, Scale, Scaler, ServedClusters, Target,
    cluster_label, metrics,
};

/// The clients of one tick, and the clusters they reach.
pub(super) struct TickScalers {
    scalers: PerCluster<Arc<dyn Scaler>>,
    served: ServedClusters,
    /// Clusters whose API did not answer this tick (each is reported once).
    unreachable: Mutex<HashSet<Option<ClusterName>>>,
    /// Per cluster, the requests of this tick that got no answer in time.
    no_answers: Mutex<HashMap<Option<ClusterName>, u32>>,
}

/// Requests without an answer that make a cluster unreachable for the rest of the tick: one
/// slow request is not an outage, a second in the same tick is taken as one.
const NO_ANSWERS_UNREACHABLE: u32 = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The client of a cluster without one this tick. Never called in practice (the store is
/// asked only for rows of clusters with a client), but if a row of another cluster slips
/// through, every call is refused before anything is written.
struct NoClient;

#[async_trait]
impl Scaler for NoClient {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        Err(Error::unavailable(format!(
            "no Kubernetes client for cluster {} this tick",
            target.cluster_label()
        )))
    }

    async fn set_replicas<'a>(&self, target: &Target, _: i32, _: Option<&'a str>) -> Result<()> {
        self.get_scale(target).await.map(|_| ())
    }
}

impl TickScalers {
    /// The clusters with a client this tick: the store is asked for their rows only.
    pub(super) fn served(&self) -> &ServedClusters {
        &self.served
    }

    /// The client of `cluster`, if it has one this tick.
    pub(super) fn get(&self, cluster: Option<&ClusterName>) -> Option<&dyn Scaler> {
        self.scalers.get(cluster).map(AsRef::as_ref)
    }

    /// The client of `target`'s cluster, if it has one this tick.
    pub(super) fn of(&self, target: &Target) -> Option<&dyn Scaler> {
        self.get(target.cluster.as_ref())
    }

    /// The client of `target`'s cluster, or one that refuses every call.
    pub(super) fn for_target(&self, target: &Target) -> &dyn Scaler {
        self.of(target).unwrap_or(&NoClient)
    }

    /// Records a request to `cluster` that failed. The cluster is unreachable for the rest
    /// of the tick when a connection could not be made, or when a second request got no
    /// answer in time; an answered error (5xx, 429) or one slow request is that request's
    /// failure only. The first time in a tick: one WARN naming the cluster and one count of
    /// the unreachable-cluster metric.
    pub(super) fn note_failure(&self, cluster: Option<&ClusterName>, e: &Error) {
        let down = match e {
            Error::Unavailable { reach, .. } => match reach {
                Reach::NotReached => true,
                Reach::NoAnswer => {
                    let mut silent = lock(&self.no_answers);
                    let count = silent.entry(cluster.cloned()).or_default();
                    *count += 1;
                    *count >= NO_ANSWERS_UNREACHABLE
                }
                Reach::Answered => false,
            },
            _ => false,
        };
        if down && lock(&self.unreachable).insert(cluster.cloned()) {
            let label = cluster_label(cluster);
            warn!(cluster = label, error = %crate::error_chain(&e),
                "the cluster's Kubernetes API did not answer; its apps are left as they are \
                 (fail-open), the other clusters go on");
            metrics::cluster_unreachable(label);
        }
    }

    /// Whether `cluster`'s API failed to answer earlier in this tick.
    pub(super) fn is_unreachable(&self, cluster: Option<&ClusterName>) -> bool {
        lock(&self.unreachable).contains(&cluster.cloned())
    }

    /// The labels of the clusters found unreachable in this tick.
    pub(super) fn unreachable_labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = lock(&self.unreachable)
            .iter()
            .map(|c| cluster_label(c.as_ref()).to_owned())
            .collect();
        labels.sort();
        labels
    }
}

impl Job {
    /// Step 2 for each served cluster: its client, or a WARN naming it. Returns the clients
    /// and the labels of the clusters without one.
    pub(super) async fn tick_scalers(&self) -> (TickScalers, Vec<String>) {
        let mut scalers = PerCluster::default();
        let mut unreachable = Vec::new();
        let several = self.served.len() > 1;
        for cluster in self.served.iter() {
            let label = cluster_label(cluster);
            let built = match self.scalers.get(cluster) {
                Some(factory) => factory.scaler().await,
                None => Err(crate::Error::unavailable(format!(
                    "no scaler factory was given for cluster {label}"
                ))),
            };
            match built {
                Ok(scaler) => {
                    scalers.insert(cluster.cloned(), scaler);
                }
                Err(e) => {
                    if several {
                        warn!(cluster = label, error = %crate::error_chain(&e),
                            "no Kubernetes client for this cluster; its apps are left alone this \
                             tick (fail-open), the other clusters go on; retrying next tick");
                    } else {
                        warn!(cluster = label, error = %crate::error_chain(&e),
                            "no Kubernetes client; tick skipped (fail-open), retrying next tick");
                    }
                    metrics::cluster_unreachable(label);
                    unreachable.push(label.to_owned());
                }
            }
        }
        let served = self.served.only(|c| scalers.contains(c));
        let scalers = TickScalers {
            scalers,
            served,
            unreachable: Mutex::default(),
            no_answers: Mutex::default(),
        };
        (scalers, unreachable)
    }
}
