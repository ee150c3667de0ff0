//! Core of idle-scaler: the domain, the ports the adapters implement, configuration,
//! the tick (put idle Deployments to sleep) and wake protocols, and the metric names.
//!
//! The protocols perform no I/O of their own: everything they do to the outside world goes
//! through [`Store`], [`Scaler`] (via [`ScalerFactory`]), [`Clock`] and, optionally,
//! [`ActivitySource`]. The exceptions are at the edges: [`Config::load`] reads the
//! environment and an optional TOML file, and the job logs through `tracing` and counts
//! through the `metrics` facade, which reach nothing until the host installs a subscriber
//! and a recorder.
#![warn(missing_docs)]

mod cluster;
pub mod config;
mod error;
pub mod flight;
#[cfg(feature = "host-ops")]
pub mod host;
pub mod job;
pub mod metrics;
mod model;
pub mod parking;
pub mod policy;
mod ports;
mod readiness;
pub mod redact;
pub mod report;
pub mod rhythm;
pub mod routes;
mod target;

/// The crates this one's API is made of, at the versions it is built with. A host installs
/// its metrics recorder through [`reexports::metrics`] (a recorder of another major version
/// of `metrics` never sees this crate's metrics) and builds figments for
/// [`Config::from_provider`] and [`Config::from_section`] with [`reexports::figment`].
pub mod reexports {
    pub use ::figment;
    pub use ::metrics;
}

pub use cluster::{PerCluster, ScalerFactories, ServedClusters, fair_share};
pub use config::{
    ActivitySourceKind, ClusterConfig, Config, ConfigError, Parking, SleepPolicy, UnknownActivity,
};
pub use error::{Cause, Error, Reach, Result, chain as error_chain};
pub use job::Job;
pub use model::{
    AsleepRow, BackOff, BackedOff, Candidate, DeploymentRecord, Drift, SleepState, StaleIntent,
    WakeReason,
};
#[cfg(any(test, feature = "test-util"))]
pub use parking::MockParker;
pub use parking::{
    ListenerPort, ParkReport, ParkedApp, ParkedServiceInfo, Parker, ParkingDirectory, Unpark,
};
pub use ports::{
    ActivitySource, Clock, ConfirmOutcome, FixedScalerFactory, Kept, RhythmStore, Scale, Scaler,
    ScalerFactory, Store, SystemClock, Traffic,
};
#[cfg(any(test, feature = "test-util"))]
pub use ports::{
    MockActivitySource, MockClock, MockRhythmStore, MockScaler, MockScalerFactory, MockStore,
};
#[cfg(any(test, feature = "test-util"))]
pub use readiness::MockReadiness;
pub use readiness::{Readiness, ReadyState};
pub use report::{Outcome, Recovery, SkipReason, SleptApp, TickReport, WakeReport, WakeResult};
pub use routes::{RouteBackend, RouteIndex};
pub use target::{
    ClusterName, Target, TargetError, cluster_label, is_cluster_id, scheme, scheme_of,
};
