//! Core of idle-scaler: the domain, the ports the adapters implement, configuration,
//! the tick (put idle Deployments to sleep) and wake protocols, and the metric names.
//!
//! This crate performs no I/O of its own: everything reaches the outside world through
//! [`Store`], [`Scaler`] (via [`ScalerSource`]), [`Clock`] and, optionally,
//! [`ActivitySource`].
#![warn(missing_docs)]

pub mod config;
mod error;
pub mod job;
pub mod metrics;
mod model;
mod ports;
mod readiness;
pub mod redact;
pub mod report;
mod target;

pub use config::{ActivitySourceKind, Config, ConfigError, UnknownActivity};
pub use error::{Error, Result};
pub use job::Job;
pub use model::{Candidate, DeploymentRecord, SleepState, StaleIntent};
pub use ports::{
    ActivitySource, Clock, ConfirmOutcome, FixedScalerSource, Scale, Scaler, ScalerSource, Store,
    SystemClock, Traffic,
};
#[cfg(any(test, feature = "test-util"))]
pub use ports::{MockActivitySource, MockClock, MockScaler, MockScalerSource, MockStore};
#[cfg(any(test, feature = "test-util"))]
pub use readiness::MockReadiness;
pub use readiness::{Readiness, ReadyState};
pub use report::{Outcome, Recovery, SkipReason, SleptApp, TickReport, WakeReport, WakeResult};
pub use target::{Target, TargetError};
