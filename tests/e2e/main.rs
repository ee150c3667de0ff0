//! End-to-end tests: the built `idle-scaler` binary against PostgreSQL and the fake
//! Kubernetes API server, over real HTTP, with real signals.

mod activity;
mod artifacts;
mod cli;
mod crash;
mod daemon;
mod support;
