//! The readiness port: the waker's wait for a woken app to serve.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Result, Target};

/// How a wait for readiness ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// The Deployment has a ready replica of its current generation.
    Ready,
    /// It did not have one within the timeout.
    TimedOut,
}

/// Whether a Deployment serves: at least one ready replica of its current generation
/// (`status.observedGeneration >= metadata.generation` and a ready or available replica).
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Readiness: Send + Sync {
    /// Waits until `target` is ready, at most `timeout`; returns at once when it already is.
    /// A Deployment that does not exist is `Error::not_found`; an unreachable cluster
    /// `Error::unavailable`.
    async fn wait_ready(&self, target: &Target, timeout: Duration) -> Result<ReadyState>;
}
