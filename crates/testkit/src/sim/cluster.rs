//! A simulated cluster: Deployments reduced to what the scale subresource shows (replicas and
//! `resourceVersion`), with the apiserver's semantics and no HTTP, so a simulation can step it
//! synchronously. The HTTP fake ([`crate::fake_kube`]) keeps whole objects as JSON behind a
//! server; this is the same contract at the level of the [`Scaler`] port:
//!
//! - a read of a missing Deployment is `NotFound`, and so is a write;
//! - a write with a `resourceVersion` that is not the current one is `Conflict` (409);
//! - an effective write bumps the `resourceVersion` (one revision counter for the whole store,
//!   like etcd); a write that changes nothing keeps it, as the apiserver skips no-op updates;
//! - a negative count is `Invalid` (422);
//! - a Deployment the job's RBAC does not cover answers every read and write `Forbidden`
//!   (403), for good: only a person can fix RBAC.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use idle_scaler_core::{Error, Result, Scale, Scaler, Target};

/// What the scale subresource shows of a Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimDeployment {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `metadata.resourceVersion`.
    pub resource_version: u64,
}

/// Keyed by (namespace, name): `Target` has no order, and map order must be deterministic.
fn key(t: &Target) -> (String, String) {
    (t.namespace.clone(), t.name.clone())
}

#[derive(Debug, Default)]
struct State {
    deployments: BTreeMap<(String, String), SimDeployment>,
    forbidden: BTreeSet<(String, String)>,
    revision: u64,
}

/// The simulated cluster. Also a [`Scaler`] by itself.
#[derive(Debug, Default)]
pub struct SimCluster {
    state: Mutex<State>,
}

impl SimCluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every write replaces whole values: a panic elsewhere leaves the map consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Deployment, if it exists.
    pub fn get(&self, target: &Target) -> Option<SimDeployment> {
        self.lock().deployments.get(&key(target)).copied()
    }

    /// Creates the Deployment with `replicas`, or sets its replicas without a precondition
    /// (a person with `kubectl scale`, an HPA, the host's deploy). True when anything changed.
    pub fn apply(&self, target: &Target, replicas: i32) -> bool {
        let mut s = self.lock();
        let current = s.deployments.get(&key(target)).map(|d| d.replicas);
        if current == Some(replicas) {
            return false;
        }
        s.revision += 1;
        let resource_version = s.revision;
        s.deployments.insert(
            key(target),
            SimDeployment {
                replicas,
                resource_version,
            },
        );
        true
    }

    /// A redeploy: the pod template changes, replicas stay, the `resourceVersion` moves.
    pub fn redeploy(&self, target: &Target) -> bool {
        let mut s = self.lock();
        s.revision += 1;
        let rv = s.revision;
        match s.deployments.get_mut(&key(target)) {
            Some(d) => {
                d.resource_version = rv;
                true
            }
            None => false,
        }
    }

    /// From now on every request about the Deployment answers 403 (its RBAC was removed).
    pub fn forbid(&self, target: &Target) {
        self.lock().forbidden.insert(key(target));
    }

    /// True when requests about the Deployment answer 403.
    pub fn is_forbidden(&self, target: &Target) -> bool {
        self.lock().forbidden.contains(&key(target))
    }

    fn forbidden(target: &Target) -> Error {
        Error::forbidden(format!(
            "deployments.apps {:?} is forbidden: cannot get resource \"deployments/scale\"",
            target.name
        ))
    }

    /// Deletes the Deployment; false when it did not exist.
    pub fn delete(&self, target: &Target) -> bool {
        let mut s = self.lock();
        s.revision += 1;
        s.deployments.remove(&key(target)).is_some()
    }

    /// An update of the scale subresource, as the apiserver decides it. `Ok(true)` when the
    /// count changed, `Ok(false)` for a no-op (the `resourceVersion` stays).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Conflict` on a stale `resource_version`, `Invalid` for a
    /// negative count.
    pub fn set_scale(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&str>,
    ) -> Result<bool> {
        let mut s = self.lock();
        if s.forbidden.contains(&key(target)) {
            return Err(Self::forbidden(target));
        }
        let Some(current) = s.deployments.get(&key(target)).copied() else {
            return Err(Error::not_found(format!(
                "deployments.apps {:?}",
                target.name
            )));
        };
        if resource_version.is_some_and(|rv| rv != current.resource_version.to_string()) {
            return Err(Error::conflict(format!(
                "deployments.apps {:?}: the object has been modified",
                target.name
            )));
        }
        if replicas < 0 {
            return Err(Error::invalid(format!(
                "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            )));
        }
        if current.replicas == replicas {
            return Ok(false);
        }
        s.revision += 1;
        let resource_version = s.revision;
        s.deployments.insert(
            key(target),
            SimDeployment {
                replicas,
                resource_version,
            },
        );
        Ok(true)
    }

    /// The scale as `GET .../scale` shows it.
    ///
    /// # Errors
    /// `Forbidden`, or `NotFound` when the Deployment does not exist.
    pub fn scale(&self, target: &Target) -> Result<Scale> {
        if self.is_forbidden(target) {
            return Err(Self::forbidden(target));
        }
        self.get(target)
            .map(|d| Scale {
                replicas: d.replicas,
                resource_version: d.resource_version.to_string(),
            })
            .ok_or_else(|| Error::not_found(format!("deployments.apps {:?}", target.name)))
    }
}

#[async_trait]
impl Scaler for SimCluster {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        self.scale(target)
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        self.set_scale(target, replicas, resource_version)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
