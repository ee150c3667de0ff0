//! The readiness wait: one Deployment watched (list, then watch from the list's
//! `resourceVersion`, narrowed by `fieldSelector=metadata.name=<name>`) until it has a ready
//! replica of its current generation. RBAC: `list` and `watch` on `deployments`.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use idle_scaler_core::{Error as CoreError, Readiness, ReadyState, Target};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::time::Instant;
use tracing::debug;

use crate::backoff::Backoff;
use crate::{KubeScaler, map_error};

/// Longest single watch request; the apiserver's own cap is in the same range.
const MAX_WATCH_SECONDS: u64 = 290;

/// Whether a Deployment serves: it asks for replicas (a status can still count the ready
/// pods of a scale-down to 0), its controller has seen the current spec
/// (`observedGeneration >= generation`) and at least one replica is ready or available.
pub fn is_ready(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    // Absent: the API server's default, 1.
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    wanted > 0
        && d.status.as_ref().is_some_and(|s| {
            s.observed_generation.unwrap_or(0) >= generation
                && (s.ready_replicas.unwrap_or(0) >= 1 || s.available_replicas.unwrap_or(0) >= 1)
        })
}

#[async_trait]
impl Readiness for KubeScaler {
    async fn wait_ready(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> idle_scaler_core::Result<ReadyState> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut watch = Watch {
            scaler: self,
            target,
            api: self.api(target),
            selector: format!("metadata.name={}", target.name),
            version: None,
        };
        let mut backoff = Backoff::new(deadline);
        // The last attempt's failure: what the wait ends with if the API stays away.
        let mut failure = None;
        loop {
            // The deadline bounds every request too: never an answer one request timeout late.
            match tokio::time::timeout_at(deadline, watch.once(deadline)).await {
                Err(_) => return timed_out(target, failure),
                Ok(Ok(Step::Ready)) => {
                    debug!(target = %target, took_ms = crate::millis(started.elapsed()), "readiness: ready");
                    return Ok(ReadyState::Ready);
                }
                Ok(Ok(Step::Ended { news })) => {
                    failure = None;
                    if news {
                        backoff.reset();
                    }
                }
                // The API server is away (down, restarting, overloaded): it may be back
                // well within the deadline, so watch again rather than fail the wait.
                Ok(Err(e @ CoreError::Unavailable { .. })) => {
                    debug!(target = %target, error = %idle_scaler_core::error_chain(&e), "readiness: the API did not serve the watch; trying again");
                    failure = Some(e);
                }
                Ok(Err(e)) => return Err(e),
            }
            if !backoff.pause().await {
                return timed_out(target, failure);
            }
        }
    }
}

/// The end of a wait at its deadline: the API's failure if it was still away, else not ready.
fn timed_out(target: &Target, failure: Option<CoreError>) -> idle_scaler_core::Result<ReadyState> {
    match failure {
        Some(e) => Err(e),
        None => {
            debug!(target = %target, "readiness: timed out");
            Ok(ReadyState::TimedOut)
        }
    }
}

/// How one list-and-watch ended without an error.
enum Step {
    Ready,
    /// The watch ended (its timeout, a closed connection, a version too old); `news`: it
    /// brought at least one event.
    Ended {
        news: bool,
    },
}

/// One Deployment's watch, kept across attempts so that a new watch resumes where the
/// last one stopped.
struct Watch<'a> {
    scaler: &'a KubeScaler,
    target: &'a Target,
    api: kube::Api<Deployment>,
    selector: String,
    /// Where to resume; `None`: list first.
    version: Option<String>,
}

impl Watch<'_> {
    async fn once(&mut self, deadline: Instant) -> idle_scaler_core::Result<Step> {
        let target = self.target;
        // (Re)start from a list: first, and after the apiserver says our version is gone.
        let mut rv = match self.version.take() {
            Some(rv) => rv,
            None => {
                let lp = ListParams::default().fields(&self.selector);
                let list = self
                    .scaler
                    .call(target, "list deployments", self.api.list(&lp))
                    .await?;
                let Some(d) = list.items.first() else {
                    return Err(CoreError::not_found(format!(
                        "deployment {target} does not exist"
                    )));
                };
                if is_ready(d) {
                    return Ok(Step::Ready);
                }
                list.metadata.resource_version.unwrap_or_default()
            }
        };
        // The caller cuts the watch at the deadline; the apiserver ends it there too.
        let left = deadline.saturating_duration_since(Instant::now());
        let secs = left.as_secs().clamp(1, MAX_WATCH_SECONDS);
        let wp = WatchParams::default()
            .fields(&self.selector)
            .timeout(u32::try_from(secs).unwrap_or(1));
        let stream = self
            .scaler
            .call(target, "watch deployments", self.api.watch(&wp, &rv))
            .await?;
        let mut stream = std::pin::pin!(stream);
        let mut news = false;
        let ended = loop {
            let event = match stream.next().await {
                None => break Step::Ended { news },
                Some(Err(e)) => {
                    debug!(target = %target, error = %idle_scaler_core::error_chain(&e), "readiness: watch broke; watching again");
                    break Step::Ended { news };
                }
                Some(Ok(event)) => event,
            };
            news = true;
            match event {
                WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                    if is_ready(&d) {
                        return Ok(Step::Ready);
                    }
                    if let Some(v) = d.metadata.resource_version {
                        rv = v;
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(CoreError::not_found(format!(
                        "deployment {target} was deleted while waking"
                    )));
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => {
                    // Our version is too old: list again.
                    rv = String::new();
                    break Step::Ended { news };
                }
                WatchEvent::Error(status) => {
                    return Err(map_error(
                        target,
                        "watch deployments",
                        kube::Error::Api(status),
                    ));
                }
            }
        };
        if !rv.is_empty() {
            self.version = Some(rv);
        }
        Ok(ended)
    }
}
