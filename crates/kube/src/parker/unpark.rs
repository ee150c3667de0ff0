//! Unparking: idle-scaler's slices of an app go only once every Service they park has a
//! ready endpoint of the app's own (a slice the EndpointSlice controller manages, an endpoint
//! `ready` whose `targetRef` is a Pod of the namespace), so a caller never meets a Service
//! without a ready endpoint. The wait is a watch of those controller slices.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use idle_scaler_core::parking::Unpark;
use idle_scaler_core::{Error as CoreError, Result, Target};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{WatchEvent, WatchParams};
use tokio::time::Instant;
use tracing::debug;

use super::{KubeParker, Slices, ours_selector, secs_left};
use crate::backoff::Backoff;
use crate::parking::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::{bounded, map_error_at};

/// The managed-by value of the slices the EndpointSlice controller writes.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";

fn label<'a>(slice: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    slice.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The Services idle-scaler's `slices` park.
pub(super) fn services_of(slices: &[EndpointSlice]) -> BTreeSet<String> {
    slices
        .iter()
        .filter_map(|s| label(s, SERVICE_NAME_LABEL))
        .map(str::to_owned)
        .collect()
}

/// The label selector of the controller's slices of `services`.
pub(super) fn own_selector(services: &BTreeSet<String>) -> String {
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    format!(
        "{MANAGED_BY_LABEL}={CONTROLLER},{SERVICE_NAME_LABEL} in ({})",
        names.join(",")
    )
}

/// Whether `slice` is the controller's and has a ready endpoint of a Pod of `namespace`.
pub(super) fn has_own_ready_endpoint(slice: &EndpointSlice, namespace: &str) -> bool {
    label(slice, MANAGED_BY_LABEL) == Some(CONTROLLER)
        && slice.endpoints.iter().any(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
            let pod_here = e.target_ref.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Pod")
                    && r.namespace.as_deref().is_none_or(|n| n == namespace)
            });
            ready && pod_here && !e.addresses.is_empty()
        })
}

/// Whether every one of `services` has a slice among `own` with a ready endpoint of its own.
pub(super) fn all_ready<'a>(
    services: &BTreeSet<String>,
    own: impl IntoIterator<Item = &'a EndpointSlice>,
    namespace: &str,
) -> bool {
    let ready: BTreeSet<&str> = own
        .into_iter()
        .filter(|s| has_own_ready_endpoint(s, namespace))
        .filter_map(|s| label(s, SERVICE_NAME_LABEL))
        .collect();
    services.iter().all(|s| ready.contains(s.as_str()))
}

impl KubeParker {
    pub(super) async fn unpark_if_ready(&self, target: &Target) -> Result<Unpark> {
        let slices = self.slices(&target.namespace).await?;
        let ours = slices.list(&ours_selector(target)).await?.items;
        if ours.is_empty() {
            return Ok(Unpark::Done(Default::default()));
        }
        let services = services_of(&ours);
        let own = slices.list(&own_selector(&services)).await?;
        if !all_ready(&services, &own.items, &target.namespace) {
            debug!(target = %target, "unpark: the app's own endpoints are not ready; nothing deleted");
            return Ok(Unpark::NotReady);
        }
        Ok(Unpark::Done(slices.delete_all(&ours).await))
    }

    pub(super) async fn unpark_once_ready(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<Unpark> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(deadline);
        // The last round's failure: what the wait ends with if the API stays away.
        let mut failure = None;
        loop {
            match tokio::time::timeout_at(deadline, self.round(target, deadline)).await {
                Err(_) => return timed_out(target, failure),
                Ok(Ok(Some(done))) => return Ok(done),
                Ok(Ok(None)) => failure = None,
                Ok(Err(e @ CoreError::Unavailable { .. })) => {
                    debug!(target = %target, error = %idle_scaler_core::error_chain(&e),
                        "unpark: the API did not serve the wait; trying again");
                    failure = Some(e);
                }
                Ok(Err(e)) => return Err(e),
            }
            if !backoff.pause().await {
                return timed_out(target, failure);
            }
        }
    }

    /// Lists idle-scaler's slices of the app and its Services' own, watches the latter until
    /// every Service has a ready endpoint, then deletes the former. `None`: the watch ended
    /// first (or a Service was parked meanwhile): another round.
    async fn round(&self, target: &Target, deadline: Instant) -> Result<Option<Unpark>> {
        let ns = target.namespace.as_str();
        let slices = self.slices(ns).await?;
        let ours = slices.list(&ours_selector(target)).await?.items;
        if ours.is_empty() {
            return Ok(Some(Unpark::Done(Default::default())));
        }
        let services = services_of(&ours);
        let ours = match self.watch_ready(&slices, &services, deadline).await? {
            Ready::No => return Ok(None),
            Ready::AtOnce => ours,
            Ready::AfterWaiting => {
                // Read again: a slice written while waiting (a waker address change) goes
                // too, and a Service parked meanwhile is waited for first.
                let ours = slices.list(&ours_selector(target)).await?.items;
                if !services_of(&ours).is_subset(&services) {
                    return Ok(None);
                }
                ours
            }
        };
        Ok(Some(Unpark::Done(slices.delete_all(&ours).await)))
    }

    /// Whether every one of `services` has a ready endpoint of its own: at once, or after
    /// waiting by watch; [`Ready::No`] when the watch ended first.
    async fn watch_ready(
        &self,
        slices: &Slices,
        services: &BTreeSet<String>,
        deadline: Instant,
    ) -> Result<Ready> {
        let ns = slices.namespace.as_str();
        let selector = own_selector(services);
        let list = slices.list(&selector).await?;
        if all_ready(services, &list.items, ns) {
            return Ok(Ready::AtOnce);
        }
        let mut own: BTreeMap<String, EndpointSlice> = list
            .items
            .into_iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
            .collect();
        let rv = list.metadata.resource_version.unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        let wp = WatchParams::default()
            .labels(&selector)
            .timeout(secs_left(left));
        let what = || format!("watch endpointslices {ns} ({selector})");
        let stream = bounded(slices.timeout, what, slices.api.watch(&wp, &rv)).await?;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(s) | WatchEvent::Modified(s)) => {
                    own.insert(s.metadata.name.clone().unwrap_or_default(), s);
                    if all_ready(services, own.values(), ns) {
                        return Ok(Ready::AfterWaiting);
                    }
                }
                Ok(WatchEvent::Deleted(s)) => {
                    own.remove(s.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(WatchEvent::Bookmark(_)) => {}
                // Our version is too old: list again.
                Ok(WatchEvent::Error(status)) if status.code == 410 => break,
                Ok(WatchEvent::Error(status)) => {
                    return Err(map_error_at(what(), kube::Error::Api(status)));
                }
                Err(e) => {
                    debug!(namespace = ns, error = %e, "unpark: watch broke; listing again");
                    break;
                }
            }
        }
        Ok(Ready::No)
    }
}

/// How a wait for the app's own endpoints ended.
enum Ready {
    /// Ready at the first look.
    AtOnce,
    /// Ready after waiting.
    AfterWaiting,
    /// The watch ended first.
    No,
}

/// The end of a wait at its deadline: the API's failure if it was still away, else not ready.
fn timed_out(target: &Target, failure: Option<CoreError>) -> Result<Unpark> {
    match failure {
        Some(e) => Err(e),
        None => {
            debug!(target = %target, "unpark: the app's own endpoints were not ready in time");
            Ok(Unpark::NotReady)
        }
    }
}
