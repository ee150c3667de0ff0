//! In-memory [`Parker`]: a small world of apps with Services, the slices idle-scaler wrote
//! (parked) and hand-written ones, each app's own readiness, injected faults and a call log.
//!
//! It keeps the rules of the Kubernetes adapter that the job relies on: a slice idle-scaler
//! did not write is never changed or deleted (a park of that Service counts `conflict`);
//! `unpark` and `unpark_when_ready` delete nothing while the app's own endpoints are not
//! ready; every method is idempotent. Targets are keyed without their cluster: a Parker
//! serves one cluster, and lists its apps without naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::{Error, ParkReport, ParkedApp, Parker, Result, Target, Unpark};
use tokio::sync::watch;

/// A [`Parker`] method, as the call log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // One variant per `Parker` method, named after it.
pub enum ParkerMethod {
    Park,
    Unpark,
    UnparkWhenReady,
    UnparkNow,
    Parked,
}

/// One call the Parker received: the method and the app it named (none for `parked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkerCall {
    /// The method.
    pub method: ParkerMethod,
    /// The app, without its cluster.
    pub target: Option<Target>,
}

/// Who wrote a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Writer {
    /// idle-scaler, parking the app of this Deployment (the slice's deployment label).
    IdleScaler { deployment: String },
    /// Someone else, under the name idle-scaler would use.
    HandWritten,
}

/// A Service of an app: parked, or skipped by the plan for `skip`.
#[derive(Debug, Clone)]
struct Service {
    name: String,
    skip: Option<&'static str>,
}

#[derive(Debug, Clone, Default)]
struct App {
    services: Vec<Service>,
    ready: bool,
}

#[derive(Debug, Default)]
struct World {
    /// The apps by (namespace, Deployment).
    apps: BTreeMap<(String, String), App>,
    /// The slices by (namespace, Service).
    slices: BTreeMap<(String, String), Writer>,
    fail_next: u32,
    unavailable: bool,
    calls: Vec<ParkerCall>,
}

/// The in-memory Parker. Readiness changes wake the unparks that wait for them.
#[derive(Debug)]
pub struct MemoryParker {
    world: Mutex<World>,
    /// Bumped at every change of the world.
    changed: watch::Sender<u64>,
}

impl Default for MemoryParker {
    fn default() -> Self {
        Self {
            world: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

/// The key of an app: its namespace and Deployment (a Parker serves one cluster).
fn key(target: &Target) -> (String, String) {
    (target.namespace.clone(), target.name.clone())
}

/// The target of an app's key, without a cluster.
fn target_of((namespace, name): &(String, String)) -> Target {
    Target::new(namespace.clone(), name.clone())
}

impl MemoryParker {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn touch(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Adds (or replaces) the app of `target` with Services `services` that may be parked;
    /// not ready.
    pub fn add_app(&self, target: &Target, services: &[&str]) {
        let services = services
            .iter()
            .map(|s| Service {
                name: (*s).to_owned(),
                skip: None,
            })
            .collect();
        self.lock().apps.insert(
            key(target),
            App {
                services,
                ready: false,
            },
        );
        self.touch();
    }

    /// Gives the app a Service the plan does not park, for `reason` (a skip label of
    /// [`ParkReport`], such as `headless`).
    pub fn add_skipped_service(&self, target: &Target, service: &str, reason: &'static str) {
        if let Some(app) = self.lock().apps.get_mut(&key(target)) {
            app.services.push(Service {
                name: service.to_owned(),
                skip: Some(reason),
            });
        }
        self.touch();
    }

    /// Deletes the app's Deployment (its Services and slices stay).
    pub fn remove_app(&self, target: &Target) {
        self.lock().apps.remove(&key(target));
        self.touch();
    }

    /// Whether the app's own endpoints are ready (a running, ready replica).
    pub fn set_ready(&self, target: &Target, ready: bool) {
        if let Some(app) = self.lock().apps.get_mut(&key(target)) {
            app.ready = ready;
        }
        self.touch();
    }

    /// A slice someone else wrote under the name idle-scaler would use for `service`.
    pub fn hand_write_slice(&self, namespace: &str, service: &str) {
        self.lock().slices.insert(
            (namespace.to_owned(), service.to_owned()),
            Writer::HandWritten,
        );
        self.touch();
    }

    /// Whether the hand-written slice of `service` is still there, unchanged.
    pub fn has_hand_written_slice(&self, namespace: &str, service: &str) -> bool {
        self.lock()
            .slices
            .get(&(namespace.to_owned(), service.to_owned()))
            == Some(&Writer::HandWritten)
    }

    /// Deletes the slice of `service`, whoever wrote it (a person, a namespace cleanup).
    pub fn delete_slice(&self, namespace: &str, service: &str) {
        self.lock()
            .slices
            .remove(&(namespace.to_owned(), service.to_owned()));
        self.touch();
    }

    /// The app's Services that have a parked slice (idle-scaler's), by name.
    pub fn parked_services(&self, target: &Target) -> Vec<String> {
        self.lock()
            .ours(&key(target))
            .into_iter()
            .map(|(_, svc)| svc)
            .collect()
    }

    /// Every app's Services that have a parked slice, by (namespace, Deployment): one look
    /// at the whole world, for a harness that checks every app at every step.
    pub fn parked_by_app(&self) -> BTreeMap<(String, String), BTreeSet<String>> {
        let mut apps: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for ((ns, svc), writer) in &self.lock().slices {
            if let Writer::IdleScaler { deployment } = writer {
                apps.entry((ns.clone(), deployment.clone()))
                    .or_default()
                    .insert(svc.clone());
            }
        }
        apps
    }

    /// Whether the app has any parked slice.
    pub fn is_parked(&self, target: &Target) -> bool {
        !self.parked_services(target).is_empty()
    }

    /// The next `n` calls fail with `unavailable`, before any effect.
    pub fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// Every call fails with `unavailable` until set back (the API is down).
    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<ParkerCall> {
        self.lock().calls.clone()
    }

    /// Logs one call and fires an injected fault.
    fn enter(
        &self,
        method: ParkerMethod,
        target: Option<&Target>,
    ) -> Result<MutexGuard<'_, World>> {
        let mut world = self.lock();
        world.calls.push(ParkerCall {
            method,
            target: target.map(|t| target_of(&key(t))),
        });
        if world.unavailable {
            return Err(Error::unavailable("the Kubernetes API is down (injected)"));
        }
        if world.fail_next > 0 {
            world.fail_next -= 1;
            return Err(Error::unavailable("the request failed (injected)"));
        }
        Ok(world)
    }
}

impl World {
    /// The slices idle-scaler wrote for the app of `(namespace, name)`.
    fn ours(&self, (namespace, name): &(String, String)) -> Vec<(String, String)> {
        self.slices
            .iter()
            .filter(|((ns, _), w)| {
                ns == namespace
                    && matches!(w, Writer::IdleScaler { deployment } if deployment == name)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn delete_ours(&mut self, target: &(String, String)) -> ParkReport {
        let mut report = ParkReport::default();
        for k in self.ours(target) {
            self.slices.remove(&k);
            report.add("unparked");
        }
        report
    }

    /// `unpark`: deletes nothing unless the app's own endpoints are ready.
    fn unpark_if_ready(&mut self, target: &(String, String)) -> Unpark {
        if self.ours(target).is_empty() {
            return Unpark::Done(ParkReport::default());
        }
        if !self.apps.get(target).is_some_and(|a| a.ready) {
            return Unpark::NotReady;
        }
        Unpark::Done(self.delete_ours(target))
    }
}

#[async_trait]
impl Parker for MemoryParker {
    async fn park(&self, target: &Target) -> Result<ParkReport> {
        let report = {
            let mut world = self.enter(ParkerMethod::Park, Some(target))?;
            let target = key(target);
            let services = world
                .apps
                .get(&target)
                .ok_or_else(|| Error::not_found(format!("deployment {}/{}", target.0, target.1)))?
                .services
                .clone();
            let mut report = ParkReport::default();
            for service in services {
                if let Some(reason) = service.skip {
                    report.add(reason);
                    continue;
                }
                let k = (target.0.clone(), service.name.clone());
                match world.slices.get(&k) {
                    Some(Writer::HandWritten) => report.add("conflict"),
                    Some(Writer::IdleScaler { .. }) => report.add("unchanged"),
                    None => {
                        world.slices.insert(
                            k,
                            Writer::IdleScaler {
                                deployment: target.1.clone(),
                            },
                        );
                        report.add("parked");
                    }
                }
            }
            report
        };
        self.touch();
        Ok(report)
    }

    async fn unpark(&self, target: &Target) -> Result<Unpark> {
        let unpark = self
            .enter(ParkerMethod::Unpark, Some(target))?
            .unpark_if_ready(&key(target));
        self.touch();
        Ok(unpark)
    }

    async fn unpark_when_ready(&self, target: &Target, timeout: Duration) -> Result<Unpark> {
        drop(self.enter(ParkerMethod::UnparkWhenReady, Some(target))?);
        let target = key(target);
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Marked seen before the look, so a change after it wakes the wait below.
            changes.borrow_and_update();
            if let Unpark::Done(report) = self.lock().unpark_if_ready(&target) {
                self.touch();
                return Ok(Unpark::Done(report));
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // Out of time (the sender lives as long as self: never closed here).
                Ok(Err(_)) | Err(_) => return Ok(Unpark::NotReady),
            }
        }
    }

    async fn unpark_now(&self, target: &Target) -> Result<ParkReport> {
        let report = self
            .enter(ParkerMethod::UnparkNow, Some(target))?
            .delete_ours(&key(target));
        self.touch();
        Ok(report)
    }

    async fn parked(&self) -> Result<Vec<ParkedApp>> {
        let world = self.enter(ParkerMethod::Parked, None)?;
        let mut apps: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
        for ((ns, svc), writer) in &world.slices {
            if let Writer::IdleScaler { deployment } = writer {
                apps.entry((ns.clone(), deployment.clone()))
                    .or_default()
                    .insert(svc);
            }
        }
        Ok(apps
            .into_iter()
            .map(|(app, services)| ParkedApp {
                target: target_of(&app),
                services: u32::try_from(services.len()).unwrap_or(u32::MAX),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
