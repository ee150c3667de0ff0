//! [`JobBuilder`]: a job with the defaults an embedding host wants, so that only what differs
//! is spelled out.

use std::sync::Arc;

use super::Job;
use crate::{ActivitySource, Clock, ClusterName, Config, ScalerSource, Store, SystemClock};

/// Builds a [`Job`]. Defaults: the system clock, no activity source (idleness is
/// `last_activity_at` alone). The scaler source is given: this crate knows no Kubernetes;
/// `idle_scaler_kube::job_builder` starts one with the lazy, inferred client
/// (in-cluster service account, `KUBECONFIG`, `~/.kube/config`).
#[must_use = "a builder does nothing until `build` is called"]
pub struct JobBuilder {
    config: Config,
    store: Arc<dyn Store>,
    scalers: Arc<dyn ScalerSource>,
    clusters: Vec<(ClusterName, Arc<dyn ScalerSource>)>,
    clock: Arc<dyn Clock>,
    activity: Option<Arc<dyn ActivitySource>>,
}

impl std::fmt::Debug for JobBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobBuilder")
            .field("config", &self.config)
            .field("activity_source", &self.activity.is_some())
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A [`JobBuilder`] over the required ports; [`Job::new`] is the same with every port given.
    pub fn builder(
        config: Config,
        store: Arc<dyn Store>,
        scalers: Arc<dyn ScalerSource>,
    ) -> JobBuilder {
        JobBuilder {
            config,
            store,
            scalers,
            clusters: Vec::new(),
            clock: Arc::new(SystemClock),
            activity: None,
        }
    }
}

impl JobBuilder {
    /// Another clock (tests, simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Another scaler source (an explicit API server, a client the host already has) for
    /// the default cluster.
    pub fn scalers(mut self, scalers: Arc<dyn ScalerSource>) -> Self {
        self.scalers = scalers;
        self
    }

    /// The scaler source of the named `cluster` (see [`Job::with_cluster`]).
    pub fn cluster(mut self, cluster: ClusterName, source: Arc<dyn ScalerSource>) -> Self {
        self.clusters.push((cluster, source));
        self
    }

    /// Consults `source` before sleeping (see [`Job::with_activity_source`]).
    pub fn activity_source(mut self, source: Arc<dyn ActivitySource>) -> Self {
        self.activity = Some(source);
        self
    }

    /// The job. Logs once, at INFO, when the configuration has it disabled.
    pub fn build(self) -> Job {
        let job = self.clusters.into_iter().fold(
            Job::new(self.config, self.store, self.scalers, self.clock),
            |job, (cluster, source)| job.with_cluster(cluster, source),
        );
        match self.activity {
            Some(source) => job.with_activity_source(source),
            None => job,
        }
    }
}
