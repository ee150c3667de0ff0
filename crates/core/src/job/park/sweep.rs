//! The reconcile of parking: asleep apps found at 0 are parked again (a Service whose slice
//! was deleted gets it back); once per reconcile period the parked apps are listed and those
//! whose row is awake or gone are unparked; with `parking = off`, whatever is still parked is
//! unparked, [`DRAIN_PER_TICK`] apps per tick.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{info, warn};

use super::{DRAIN_PER_TICK, Parkings, add};
use crate::job::Job;
use crate::job::clusters::TickScalers;
use crate::job::reconcile::drift_due_before;
use crate::metrics;
use crate::{ParkReport, ParkedApp, Parking, Result, SleepState, Target, TickReport};

impl Job {
    /// Parks again the asleep apps the drift check found at 0 (idempotent: what is parked
    /// as planned is left alone).
    pub(in crate::job) async fn repark(&self, at_zero: &[Target], report: &mut TickReport) {
        // The same as after a sleep: the Parker's cluster only, counted and warned alike.
        self.park_slept(at_zero, report).await;
    }

    /// Once per reconcile period, the parked apps; with `parking = off`, the drain. Best
    /// effort: a failure is a WARN, and the next tick tries again.
    pub(in crate::job) async fn reconcile_parking(
        &self,
        scalers: &TickScalers,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let Some(parking) = self.parking.as_deref() else {
            return;
        };
        // The Parker's cluster is down this tick: its API would fail the same way.
        if !scalers.served().serves(parking.cluster()) || scalers.is_unreachable(parking.cluster())
        {
            return;
        }
        let done = match self.config.parking {
            Parking::EndpointSlices => self.sweep(parking, now, report).await,
            Parking::Off => self.drain(parking, report).await,
        };
        if let Err(e) = done {
            warn!(error = %crate::error_chain(&e), "listing the parked apps failed; the next tick tries again");
        }
    }

    /// The parked apps whose row is awake are unparked when ready; those whose row is gone
    /// at once; asleep and sleeping ones are left parked.
    async fn sweep(
        &self,
        parking: &Parkings,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        {
            let swept = parking
                .swept_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if swept.is_some_and(|at| at >= drift_due_before(&self.config, now)) {
                return Ok(());
            }
        }
        let apps = self.parked_apps(parking).await?;
        *parking
            .swept_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
        let settles: Vec<_> = apps.iter().map(|app| self.settle(parking, app)).collect();
        let settled: Vec<(ParkReport, u32)> = futures::stream::iter(settles)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let mut left = 0;
        for (park, services) in &settled {
            add(report, park);
            left += u64::from(*services);
        }
        metrics::parked_services(left);
        Ok(())
    }

    /// One parked app of the sweep: what was done, and its Services still parked after.
    async fn settle(&self, parking: &Parkings, app: &ParkedApp) -> (ParkReport, u32) {
        let target = &app.target;
        let row = match self.store.find_by_provider_id(&target.provider_id()).await {
            Ok(row) => row,
            Err(e) => {
                warn!(target = %target, error = %crate::error_chain(&e),
                    "reading the row of a parked app failed; the next sweep looks again");
                return (ParkReport::default(), app.services);
            }
        };
        match row.map(|r| r.sleep_state) {
            Some(SleepState::Asleep | SleepState::Sleeping) => {
                (ParkReport::default(), app.services)
            }
            Some(SleepState::Awake) => {
                let unpark = parking.parker.unpark(target).await;
                let done = matches!(unpark, Ok(crate::Unpark::Done(_)));
                let report = parking.count_unpark(target, unpark, "the reconcile's");
                if done {
                    info!(target = %target, "unparked an app woken elsewhere");
                }
                (report, if done { 0 } else { app.services })
            }
            None => match parking.parker.unpark_now(target).await {
                Ok(report) => {
                    info!(target = %target, "unparked an app that has no row any more");
                    metrics::parking(&report);
                    (report, 0)
                }
                Err(e) => {
                    warn!(target = %target, error = %crate::error_chain(&e),
                        "unparking an app that has no row failed; the next sweep retries");
                    let mut failed = ParkReport::default();
                    failed.add("failed");
                    metrics::parking(&failed);
                    (failed, app.services)
                }
            },
        }
    }

    /// `parking = off`: unparks at once at most [`DRAIN_PER_TICK`] of the apps still parked,
    /// until the list comes back empty.
    async fn drain(&self, parking: &Parkings, report: &mut TickReport) -> Result<()> {
        if parking.drained.load(Ordering::Relaxed) {
            return Ok(());
        }
        let apps = self.parked_apps(parking).await?;
        if apps.is_empty() {
            parking.drained.store(true, Ordering::Relaxed);
            metrics::parked_services(0);
            return Ok(());
        }
        let mut left: u64 = apps.iter().map(|a| u64::from(a.services)).sum();
        let mut unparked = 0;
        for app in apps.iter().take(DRAIN_PER_TICK) {
            match parking.parker.unpark_now(&app.target).await {
                Ok(park) => {
                    metrics::parking(&park);
                    add(report, &park);
                    left -= u64::from(app.services);
                    unparked += 1;
                }
                Err(e) => {
                    warn!(target = %app.target, error = %crate::error_chain(&e),
                        "unparking failed (parking is off); the next tick retries");
                    let mut failed = ParkReport::default();
                    failed.add("failed");
                    metrics::parking(&failed);
                    add(report, &failed);
                }
            }
        }
        metrics::parked_services(left);
        info!(
            unparked,
            apps_left = apps.len() - unparked,
            "parking is off: unparking what is still parked"
        );
        Ok(())
    }

    /// The parked apps, each named with the Parker's cluster (a Parker serves one cluster
    /// and need not know its name).
    async fn parked_apps(&self, parking: &Parkings) -> Result<Vec<ParkedApp>> {
        let mut apps = parking.parker.parked().await?;
        for app in &mut apps {
            app.target.cluster = parking.cluster.clone();
        }
        Ok(apps)
    }
}
