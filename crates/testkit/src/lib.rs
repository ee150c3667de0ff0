//! Test kit for idle-scaler: a fake Kubernetes API server speaking real HTTP, an in-memory
//! `Store` with the PostgreSQL adapter's semantics, and fixtures. Tests, the demo and the
//! benchmarks use it.
#![warn(missing_docs)]

pub mod clock;
pub mod contract;
pub mod fake_kube;
pub use idle_scaler_core::host;
pub mod liveness;
pub mod memory;
pub mod one_app;
#[cfg(feature = "programs")]
pub mod programs;
pub mod rng;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "tls")]
pub mod tls;
pub mod workload;
