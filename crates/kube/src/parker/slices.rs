//! One namespace's EndpointSlices as parking writes them: create, replace with the
//! `resourceVersion` of what was read, delete with a `uid` precondition, and never any of it
//! on a slice idle-scaler did not write.

use std::collections::BTreeMap;
use std::time::Duration;

use idle_scaler_core::parking::ParkReport;
use idle_scaler_core::{Error as CoreError, Result};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, ObjectList, PostParams, Preconditions};
use tracing::{debug, warn};

use crate::parking::is_ours;
use crate::{FIELD_MANAGER, KubeScaler, bounded};

/// The EndpointSlices API of one namespace and the per-request timeout.
pub(super) struct Slices {
    pub(super) api: Api<EndpointSlice>,
    pub(super) timeout: Duration,
    pub(super) namespace: String,
}

fn name_of(slice: &EndpointSlice) -> &str {
    slice.metadata.name.as_deref().unwrap_or_default()
}

/// Whether `current` already is `planned`: the same family, endpoints and ports, the same
/// owner, and every label and annotation of `planned` (others a person added may stay).
pub(super) fn same(current: &EndpointSlice, planned: &EndpointSlice) -> bool {
    fn contains(
        have: Option<&BTreeMap<String, String>>,
        want: Option<&BTreeMap<String, String>>,
    ) -> bool {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    }
    let (c, p) = (&current.metadata, &planned.metadata);
    current.address_type == planned.address_type
        && current.endpoints == planned.endpoints
        && current.ports == planned.ports
        && c.owner_references == p.owner_references
        && contains(c.labels.as_ref(), p.labels.as_ref())
        && contains(c.annotations.as_ref(), p.annotations.as_ref())
}

impl Slices {
    pub(super) fn new(scaler: &KubeScaler, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(scaler.client.clone(), namespace),
            timeout: scaler.timeout,
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace's slices matching the label `selector`.
    pub(super) async fn list(&self, selector: &str) -> Result<ObjectList<EndpointSlice>> {
        let lp = ListParams::default().labels(selector);
        let what = || format!("list endpointslices {} ({selector})", self.namespace);
        bounded(self.timeout, what, self.api.list(&lp)).await
    }

    async fn get(&self, name: &str) -> Result<EndpointSlice> {
        let what = || format!("get endpointslice {}/{name}", self.namespace);
        bounded(self.timeout, what, self.api.get(name)).await
    }

    fn post_params() -> PostParams {
        PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        }
    }

    /// Makes the namespace hold `planned`, given `current`, idle-scaler's slice of that name
    /// as listed (`None`: not among idle-scaler's). Returns the report label: `parked`,
    /// `unchanged`, `conflict` (a slice of that name idle-scaler did not write) or `failed`.
    pub(super) async fn put(
        &self,
        planned: &EndpointSlice,
        current: Option<&EndpointSlice>,
    ) -> &'static str {
        if let Some(current) = current {
            return self.update(current.clone(), planned).await;
        }
        let name = name_of(planned);
        let what = || format!("create endpointslice {}/{name}", self.namespace);
        let created = bounded(
            self.timeout,
            what,
            self.api.create(&Self::post_params(), planned),
        )
        .await;
        match created {
            Ok(_) => {
                debug!(namespace = %self.namespace, slice = name, "parking: slice created");
                "parked"
            }
            // It exists: someone's, or idle-scaler's for another app or family list.
            Err(CoreError::Conflict { .. }) => match self.get(name).await {
                Ok(current) => self.update(current, planned).await,
                Err(e) => self.failed(name, &e),
            },
            Err(e) => self.failed(name, &e),
        }
    }

    /// Replaces idle-scaler's `current` by `planned` when they differ, with the
    /// `resourceVersion` read; a stale one is read again once.
    async fn update(&self, mut current: EndpointSlice, planned: &EndpointSlice) -> &'static str {
        let name = name_of(planned).to_owned();
        for attempt in 0..2 {
            if !is_ours(&current) {
                warn!(namespace = %self.namespace, slice = %name,
                    "parking: a slice of this name exists and idle-scaler did not write it; left alone");
                return "conflict";
            }
            if same(&current, planned) {
                return "unchanged";
            }
            let Some(rv) = current.metadata.resource_version.clone() else {
                // Never a write without its precondition.
                return self.failed(
                    &name,
                    &CoreError::invalid("the slice has no resourceVersion"),
                );
            };
            let mut next = planned.clone();
            next.metadata.resource_version = Some(rv);
            let what = || format!("replace endpointslice {}/{name}", self.namespace);
            let replaced = bounded(
                self.timeout,
                what,
                self.api.replace(&name, &Self::post_params(), &next),
            )
            .await;
            match replaced {
                Ok(_) => {
                    debug!(namespace = %self.namespace, slice = %name, "parking: slice updated");
                    return "parked";
                }
                Err(CoreError::Conflict { .. }) if attempt == 0 => {
                    debug!(namespace = %self.namespace, slice = %name,
                        "parking: the slice changed since it was read; reading it again");
                    match self.get(&name).await {
                        Ok(fresh) => current = fresh,
                        Err(e) => return self.failed(&name, &e),
                    }
                }
                Err(e) => return self.failed(&name, &e),
            }
        }
        self.failed(
            &name,
            &CoreError::conflict("the slice kept changing while it was written"),
        )
    }

    /// Deletes idle-scaler's `slice` if it is still the one read (its `uid`): `unparked`,
    /// `None` when it is gone already, `failed`, or `conflict` for a slice that is not ours.
    pub(super) async fn delete(&self, slice: &EndpointSlice) -> Option<&'static str> {
        let name = name_of(slice);
        if !is_ours(slice) {
            return Some("conflict");
        }
        let Some(uid) = slice.metadata.uid.clone() else {
            return Some(self.failed(name, &CoreError::invalid("the slice has no uid")));
        };
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let what = || format!("delete endpointslice {}/{name}", self.namespace);
        match bounded(self.timeout, what, self.api.delete(name, &dp)).await {
            Ok(_) => {
                debug!(namespace = %self.namespace, slice = name, "parking: slice deleted");
                Some("unparked")
            }
            Err(CoreError::NotFound { .. }) => None,
            Err(e) => Some(self.failed(name, &e)),
        }
    }

    /// Deletes every slice of `slices` (idle-scaler's, as listed); the others go on when one
    /// fails.
    pub(super) async fn delete_all(&self, slices: &[EndpointSlice]) -> ParkReport {
        let mut report = ParkReport::default();
        for slice in slices {
            if let Some(result) = self.delete(slice).await {
                report.add(result);
            }
        }
        report
    }

    fn failed(&self, name: &str, e: &CoreError) -> &'static str {
        warn!(namespace = %self.namespace, slice = name, error = %idle_scaler_core::error_chain(e),
            "parking: writing the slice failed; reconcile retries");
        "failed"
    }
}
