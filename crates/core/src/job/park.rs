//! Parking: when the job parks a slept app (its Services pointed at the waker) and unparks a
//! woken one, through the [`Parker`] of the one cluster parking serves (the waker's own).
//!
//! - After a confirmed sleep, the same tick parks the app. A failure never touches the sleep:
//!   it is counted, logged once per app, and the reconcile retries it.
//! - After a wake that brought the app up, a background task unparks it once the app's own
//!   endpoints are ready (the Parker's readiness-checked methods only).
//! - The reconcile (`park/sweep.rs`) re-parks asleep apps, unparks apps woken elsewhere,
//!   and with `parking = off` unparks whatever is still parked.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::Job;
use crate::metrics;
use crate::{ClusterName, Config, ParkReport, Parker, Parking, Target, TickReport, Unpark};

mod sweep;

/// How long the unpark a wake starts waits for the app's own endpoints to be ready. Apps
/// that start slower than this (or never become ready) stay parked, which is safe (callers
/// reach the waker, which forwards once the app is ready), and the reconcile unparks them.
pub const UNPARK_WAIT: Duration = Duration::from_secs(10 * 60);

/// How long [`Job::finish_wakes`] waits for the unparks wakes started: a shutdown must not
/// wait for slow apps; an unpark cut short is finished by the reconcile of any instance.
pub const UNPARK_SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// The most apps one tick unparks while `parking = off` drains what is still parked.
pub const DRAIN_PER_TICK: usize = 50;

/// The parking side of a job: the Parker and the cluster it serves, and what the job
/// remembers between ticks.
pub(crate) struct Parkings {
    parker: Arc<dyn Parker>,
    /// The cluster the Parker serves (`None`: the default cluster).
    cluster: Option<ClusterName>,
    /// Apps whose park failed and were logged at WARN; a success forgets them.
    warned: Mutex<HashSet<Target>>,
    /// The unparks wakes started.
    unparks: TaskTracker,
    /// When the reconcile last listed the parked apps.
    swept_at: Mutex<Option<DateTime<Utc>>>,
    /// `parking = off` found nothing left to unpark: the drain is over for this process.
    drained: AtomicBool,
}

impl std::fmt::Debug for Parkings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parkings")
            .field("cluster", &crate::cluster_label(self.cluster.as_ref()))
            .finish_non_exhaustive()
    }
}

impl Parkings {
    pub(crate) fn new(parker: Arc<dyn Parker>, cluster: Option<ClusterName>) -> Self {
        Self {
            parker,
            cluster,
            warned: Mutex::default(),
            unparks: TaskTracker::new(),
            swept_at: Mutex::default(),
            drained: AtomicBool::new(false),
        }
    }

    pub(crate) fn cluster(&self) -> Option<&ClusterName> {
        self.cluster.as_ref()
    }

    /// Whether `target` is an app of the cluster the Parker serves.
    pub(crate) fn serves(&self, target: &Target) -> bool {
        target.cluster == self.cluster
    }

    /// Parks one app; every result is counted, an error as one `failed`. Never fails.
    async fn park(&self, target: &Target) -> ParkReport {
        let report = match self.parker.park(target).await {
            Ok(report) => report,
            Err(e) => {
                let mut failed = ParkReport::default();
                failed.add("failed");
                self.warn_once(target, || {
                    warn!(target = %target, error = %crate::error_chain(&e),
                        "parking the slept app failed; it stays asleep, and the reconcile retries")
                });
                metrics::parking(&failed);
                return failed;
            }
        };
        metrics::parking(&report);
        let (failed, conflict) = (report.count("failed"), report.count("conflict"));
        if failed + conflict > 0 {
            self.warn_once(target, || {
                warn!(target = %target, failed, conflict, parked = report.count("parked"),
                    "some Services of the slept app could not be parked (conflict: a slice \
                     of that name idle-scaler did not write, left alone); the reconcile retries")
            });
        } else {
            self.lock_warned().remove(target);
            debug!(target = %target, parked = report.count("parked"),
                unchanged = report.count("unchanged"), "app parked");
        }
        report
    }

    /// Logs with `warn` unless this app's park failure was logged already.
    fn warn_once(&self, target: &Target, warn: impl FnOnce()) {
        if self.lock_warned().insert(target.clone()) {
            warn();
        } else {
            debug!(target = %target, "parking the app failed again");
        }
    }

    fn lock_warned(&self) -> std::sync::MutexGuard<'_, HashSet<Target>> {
        self.warned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts unparking a woken app in the background, once its own endpoints are ready (at
    /// most [`UNPARK_WAIT`]): the wake's caller does not wait for it.
    pub(crate) fn unpark_after_wake(self: &Arc<Self>, target: Target) {
        if !self.serves(&target) {
            return;
        }
        let this = self.clone();
        self.unparks.spawn(async move {
            let unpark = this.parker.unpark_when_ready(&target, UNPARK_WAIT).await;
            this.count_unpark(&target, unpark, "the wake's");
        });
    }

    /// Counts and logs how a readiness-checked unpark ended; `whose` names who asked.
    fn count_unpark(
        &self,
        target: &Target,
        unpark: crate::Result<Unpark>,
        whose: &str,
    ) -> ParkReport {
        let mut counted = ParkReport::default();
        match unpark {
            Ok(Unpark::Done(report)) => {
                debug!(target = %target, unparked = report.count("unparked"), "{whose} unpark done");
                counted = report;
            }
            Ok(Unpark::NotReady) => {
                info!(target = %target, "{whose} unpark found the app's own endpoints not ready; \
                    its Services stay parked (callers reach the waker) until the reconcile unparks it");
                counted.add("not_ready");
            }
            Err(e) => {
                warn!(target = %target, error = %crate::error_chain(&e),
                    "{whose} unpark failed; the reconcile unparks the app");
                counted.add("failed");
            }
        }
        metrics::parking(&counted);
        counted
    }

    /// Waits at most `bound` for the unparks wakes started.
    pub(crate) async fn finish_unparks(&self, bound: Duration) {
        self.unparks.close();
        if tokio::time::timeout(bound, self.unparks.wait())
            .await
            .is_err()
        {
            info!(
                left = self.unparks.len(),
                "unparks still waiting for their apps at shutdown; the reconcile finishes them"
            );
        }
        self.unparks.reopen();
    }
}

impl Job {
    /// The parking side, when this job parks (a Parker was given and `parking` is on).
    pub(super) fn parking_on(&self) -> Option<&Parkings> {
        self.parking
            .as_deref()
            .filter(|_| self.config.parking == Parking::EndpointSlices)
    }

    /// Parks the apps this tick slept (those of the Parker's cluster), `concurrency` at a time.
    pub(super) async fn park_slept(&self, slept: &[Target], report: &mut TickReport) {
        let Some(parking) = self.parking_on() else {
            return;
        };
        // Collected first, as in the sleep pass: a closure inside the stream would make the
        // tick future not `Send`.
        let parks: Vec<_> = slept
            .iter()
            .filter(|t| parking.serves(t))
            .map(|t| parking.park(t))
            .collect();
        let done: Vec<ParkReport> = futures::stream::iter(parks)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        for park in &done {
            add(report, park);
        }
    }
}

/// Adds `park`'s counts to the tick's report.
fn add(report: &mut TickReport, park: &ParkReport) {
    for (result, n) in &park.results {
        *report.parking.entry(result).or_default() += n;
    }
}

/// Says once, when the job is built, what parking will and will not do.
pub(super) fn log_at_build(config: &Config, parking: Option<&Parkings>) {
    if config.parking != Parking::EndpointSlices || !config.enabled {
        return;
    }
    let Some(parking) = parking else {
        warn!(
            "parking = endpointslices but this job was given no parker: slept apps are not parked"
        );
        return;
    };
    let served = config.served_clusters();
    let parked = crate::cluster_label(parking.cluster());
    if !served.serves(parking.cluster()) {
        warn!(
            cluster = parked,
            "parking serves a cluster this job does not serve: no app is parked"
        );
    }
    let not_parked: Vec<&str> = served
        .iter()
        .filter(|c| *c != parking.cluster())
        .map(crate::cluster_label)
        .collect();
    if !not_parked.is_empty() {
        info!(parked, not_parked = ?not_parked,
            "parking serves one cluster, the waker's own: apps of the others sleep unparked");
    }
}
