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
        let api = self.api(target);
        let selector = format!("metadata.name={}", target.name);
        let mut version = None;
        loop {
            // (Re)start from a list: first, and after the apiserver says our version is gone.
            let rv = match version.take() {
                Some(rv) => rv,
                None => {
                    let lp = ListParams::default().fields(&selector);
                    let list = self.call(target, "list deployments", api.list(&lp)).await?;
                    let Some(d) = list.items.first() else {
                        return Err(CoreError::not_found(format!(
                            "deployment {target} does not exist"
                        )));
                    };
                    if is_ready(d) {
                        return Ok(ReadyState::Ready);
                    }
                    list.metadata.resource_version.unwrap_or_default()
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(ReadyState::TimedOut);
            }
            let secs = left.as_secs().clamp(1, MAX_WATCH_SECONDS);
            let wp = WatchParams::default()
                .fields(&selector)
                .timeout(u32::try_from(secs).unwrap_or(1));
            let stream = self
                .call(target, "watch deployments", api.watch(&wp, &rv))
                .await?;
            let mut stream = std::pin::pin!(stream);
            let mut rv = rv;
            loop {
                let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                    Err(_) => {
                        debug!(target = %target, "readiness: timed out");
                        return Ok(ReadyState::TimedOut);
                    }
                    // The watch ended (its timeout, a dropped connection): watch again.
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        debug!(target = %target, error = %e, "readiness: watch broke; watching again");
                        break;
                    }
                    Ok(Some(Ok(event))) => event,
                };
                match next {
                    WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                        if is_ready(&d) {
                            debug!(target = %target, took_ms = crate::millis(started.elapsed()), "readiness: ready");
                            return Ok(ReadyState::Ready);
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
                        break;
                    }
                    WatchEvent::Error(status) => {
                        return Err(map_error(
                            target,
                            "watch deployments",
                            kube::Error::Api(status),
                        ));
                    }
                }
            }
            if !rv.is_empty() {
                version = Some(rv);
            }
        }
    }
}
