//! [`JobBuilder`]: the one way to make a [`Job`], with the defaults an embedding host wants,
//! so that only what differs is spelled out.

use std::sync::{Arc, Mutex};

use tracing::info;

use super::{Job, park, sleep, wake};
use crate::{
    ActivitySource, Clock, ClusterName, Config, ConfigError, Parker, RhythmStore, ScalerFactories,
    ScalerFactory, SleepPolicy, Store, SystemClock,
};

/// Builds a [`Job`]. Defaults: the system clock, no activity source (idleness is
/// `last_activity_at` alone). The default cluster's scaler factory is given: this crate knows
/// no Kubernetes; `idle_scaler_kube::job_builder` starts one with the lazy, inferred client
/// (in-cluster service account, `KUBECONFIG`, `~/.kube/config`).
#[must_use = "a builder does nothing until `build` is called"]
pub struct JobBuilder {
    config: Config,
    store: Arc<dyn Store>,
    scalers: ScalerFactories,
    clock: Arc<dyn Clock>,
    activity: Option<Arc<dyn ActivitySource>>,
    parking: Option<park::Parkings>,
    rhythms: Option<Arc<dyn RhythmStore>>,
}

impl std::fmt::Debug for JobBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobBuilder")
            .field("config", &self.config)
            .field("clusters", &self.scalers)
            .field("activity_source", &self.activity.is_some())
            .field("parking", &self.parking)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A [`JobBuilder`] over the required ports; `factory` reaches the default cluster.
    pub fn builder(
        config: Config,
        store: Arc<dyn Store>,
        factory: Arc<dyn ScalerFactory>,
    ) -> JobBuilder {
        JobBuilder {
            config,
            store,
            scalers: ScalerFactories::default_cluster(factory),
            clock: Arc::new(SystemClock),
            activity: None,
            parking: None,
            rhythms: None,
        }
    }
}

impl JobBuilder {
    /// The configuration the job will run with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Another clock (tests, simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Another scaler factory (an explicit API server, a client the host already has) for
    /// the default cluster.
    pub fn scaler_factory(mut self, factory: Arc<dyn ScalerFactory>) -> Self {
        self.scalers.insert(None, factory);
        self
    }

    /// Reaches the named `cluster` through `factory`. A served cluster without one fails
    /// open on every tick.
    pub fn cluster(mut self, cluster: ClusterName, factory: Arc<dyn ScalerFactory>) -> Self {
        self.scalers.insert(Some(cluster), factory);
        self
    }

    /// Consults `source` before sleeping: an app with traffic inside the idle window stays up
    /// (and the traffic is recorded in its row), one whose traffic is unknown is handled by
    /// `activity_unknown`. Without a source the tick judges by `last_activity_at` alone.
    pub fn activity_source(mut self, source: Arc<dyn ActivitySource>) -> Self {
        self.activity = Some(source);
        self
    }

    /// Keeps each app's rhythm in `rhythms` (the PostgreSQL and in-memory stores are one):
    /// needed by `policy = adaptive`, unused under `fixed`.
    pub fn rhythm_store(mut self, rhythms: Arc<dyn RhythmStore>) -> Self {
        self.rhythms = Some(rhythms);
        self
    }

    /// Parks slept apps through `parker` (with `parking = endpointslices`), which serves
    /// `cluster` (the waker's own; `None`: the default cluster). Apps of other clusters are
    /// never parked; the build says once which those are.
    pub fn parker(mut self, parker: Arc<dyn Parker>, cluster: Option<ClusterName>) -> Self {
        self.parking = Some(park::Parkings::new(parker, cluster));
        self
    }

    /// The job, or the configuration value that breaks a rule the loaders enforce (see
    /// [`Config::validate`]). Logs once, at INFO, when the configuration has it disabled.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key, its variable and what is allowed.
    pub fn try_build(self) -> Result<Job, ConfigError> {
        self.config.validate()?;
        if self.config.policy == SleepPolicy::Adaptive && self.rhythms.is_none() {
            return Err(ConfigError::Source(
                "DEPLOY_SCALE_TO_ZERO_POLICY (policy) = adaptive needs a store that keeps each \
                 app's rhythm: give the job one with JobBuilder::rhythm_store (the PostgreSQL and \
                 in-memory stores are)"
                    .to_owned(),
            ));
        }
        if !self.config.enabled {
            info!("scale-to-zero is disabled: ticks will do nothing until it is enabled");
        }
        park::log_at_build(&self.config, self.parking.as_ref());
        let adaptive = crate::rhythm::Settings::of(&self.config)
            .zip(self.rhythms)
            .map(|(settings, store)| super::adaptive::Adaptive { settings, store });
        Ok(Job {
            served: self.config.served_clusters(),
            config: self.config,
            store: self.store,
            scalers: self.scalers,
            clock: self.clock,
            activity: self.activity,
            last_success: Mutex::new(None),
            wakes: wake::Wakes::new(false, None),
            idle_apps_seen: Arc::new(std::sync::atomic::AtomicI64::new(-1)),
            owed_restores: sleep::OwedRestores::default(),
            parking: self.parking.map(Arc::new),
            adaptive,
        })
    }

    /// The job, like [`JobBuilder::try_build`].
    ///
    /// # Panics
    /// When the configuration breaks a rule the loaders enforce.
    pub fn build(self) -> Job {
        self.try_build()
            .unwrap_or_else(|e| panic!("invalid idle-scaler configuration: {e}"))
    }
}
