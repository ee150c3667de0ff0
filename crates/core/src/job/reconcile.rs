//! Drift: an `asleep` row whose app runs (scaled by hand, a GitOps self-heal, a redeploy, a
//! wake cut short) is set `awake`, so it is counted, paid for and slept again honestly.
//! Each tick checks a slice of the asleep rows, least recently checked first, sized so that
//! every row is checked once per `reconcile_minutes`: O(asleep) reads per period, spread.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{info, warn};

use super::clusters::TickScalers;
use super::{Job, log_scale_error};
use crate::metrics;
use crate::{AsleepRow, Drift, Error, Result, Scaler, Target, TickReport};

/// The most rows one tick checks, whatever the fleet: a bound on one tick's work.
const MAX_CHECKS_PER_TICK: u64 = 50_000;

/// The slice of the first tick, before the first count of asleep rows sizes it.
const FIRST_TICK_CHECKS: u64 = 2_000;

impl Job {
    /// Checks this tick's slice of `asleep` rows. Best effort: a failure is a WARN, and the
    /// rows not checked now are the first ones next tick.
    pub(super) async fn reconcile(
        &self,
        scalers: &TickScalers,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        if let Err(e) = self.reconcile_slice(scalers, now, report).await {
            warn!(error = %crate::error_chain(&e), "drift check failed; the next tick goes on with it");
        }
        self.reconcile_parking(scalers, now, report).await;
    }

    async fn reconcile_slice(
        &self,
        scalers: &TickScalers,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        // The last gauge sample sizes the slice; before the first one, a modest slice.
        let budget = match self.idle_apps_seen() {
            Some(0) => return Ok(()),
            Some(asleep) => checks_per_tick(
                asleep,
                self.config.interval_seconds,
                self.config.reconcile_minutes,
            ),
            None => FIRST_TICK_CHECKS,
        };
        let due = self
            .store
            .asleep_to_check(
                scalers.served(),
                drift_due_before(&self.config, now),
                u32::try_from(budget).unwrap_or(u32::MAX),
            )
            .await?;
        // As many reads at once as the sleep path makes; an unreachable API stops the slice
        // of its cluster (the rest would fail the same way) and the next tick goes on with it.
        // Collected first, as in the sleep pass: a closure inside the stream would make the
        // tick future not `Send`.
        let checks: Vec<_> = due
            .iter()
            .map(|row| self.check_unless(scalers, row, now))
            .collect();
        let found: Vec<Checked> = futures::stream::iter(checks)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let mut at_zero = Vec::new();
        for checked in found {
            match checked {
                Checked::Drift(kind) => {
                    metrics::drift(kind.as_str());
                    *report.drift.entry(kind).or_default() += 1;
                }
                Checked::AtZero(target) => at_zero.push(target),
                Checked::Nothing => {}
            }
        }
        // Asleep and still at 0: parked again, so a Service whose slice went missing gets it back.
        self.repark(&at_zero, report).await;
        Ok(())
    }

    async fn check_unless(
        &self,
        scalers: &TickScalers,
        row: &AsleepRow,
        now: DateTime<Utc>,
    ) -> Checked {
        let target = Target::parse(&row.provider_id).ok();
        let cluster = target.as_ref().and_then(|t| t.cluster.as_ref());
        if target.is_some() && scalers.is_unreachable(cluster) {
            return Checked::Nothing;
        }
        let scaler = match &target {
            Some(t) => match scalers.of(t) {
                Some(s) => Some(s),
                None => return Checked::Nothing, // another cluster's row: not this tick's to check
            },
            None => None,
        };
        match self.check_drift(scaler, row, now).await {
            Ok(checked) => checked,
            Err(e) => {
                scalers.note_failure(cluster, &e);
                Checked::Nothing
            }
        }
    }

    /// One row: at 0 (or gone) it is marked checked; running, it is set `awake`.
    /// `scaler` is the client of the row's cluster; None when the row names no target.
    async fn check_drift(
        &self,
        scaler: Option<&dyn Scaler>,
        row: &AsleepRow,
        now: DateTime<Utc>,
    ) -> Result<Checked> {
        let id = row.id;
        // A wake that is scaling the app up right now finishes the row itself.
        if row.wake_started_at.is_some_and(|at| {
            now - at
                < chrono::Duration::from_std(self.config.transition_bound()).unwrap_or_default()
        }) {
            return Ok(Checked::Nothing);
        }
        let (Ok(target), Some(scaler)) = (Target::parse(&row.provider_id), scaler) else {
            self.store.mark_checked(id, now).await?;
            return Ok(Checked::Nothing);
        };
        let scale = match scaler.get_scale(&target).await {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => {
                self.store.mark_checked(id, now).await?;
                return Ok(Checked::Nothing);
            }
            Err(e) => {
                log_scale_error(id, &target, &e, "drift check could not read the scale");
                // A 403 or 422 answers the same next tick: to the back of the queue, or this
                // row would head every slice and starve the drift checks of the rows behind.
                if matches!(e, Error::Forbidden { .. } | Error::Invalid { .. }) {
                    self.store.mark_checked(id, now).await?;
                }
                return Err(e);
            }
        };
        if scale.replicas == 0 {
            self.store.mark_checked(id, now).await?;
            return Ok(Checked::AtZero(target));
        }
        let kind = if row.wake_started_at.is_some() {
            Drift::WakeInterrupted
        } else if row.last_activity_at > row.sleep_state_changed_at {
            Drift::Redeployed
        } else {
            Drift::WokenExternally
        };
        if !self
            .store
            .reconcile_awake(id, row.sleep_state_changed_at, kind, now)
            .await?
        {
            return Ok(Checked::Nothing); // a wake or another instance got there first
        }
        match kind {
            Drift::WokenExternally => warn!(deployment_id = %id, target = %target,
                replicas = scale.replicas, kind = kind.as_str(),
                "an asleep app was scaled up by someone else (a person, a GitOps self-heal, an autoscaler); row set awake"),
            _ => info!(deployment_id = %id, target = %target, replicas = scale.replicas,
                kind = kind.as_str(), "an asleep app runs; row set awake"),
        }
        Ok(Checked::Drift(kind))
    }
}

/// What the drift check of one row found.
enum Checked {
    /// Nothing to count: not checked now, gone, or another instance was first.
    Nothing,
    /// Asleep and at 0, as it should be.
    AtZero(Target),
    /// Asleep while the app runs: set `awake`.
    Drift(Drift),
}

/// Rows to check per tick so that `asleep` rows are all checked once per period:
/// `ceil(asleep * interval / period)`, at least one, at most [`MAX_CHECKS_PER_TICK`].
/// The drift check's due rule: a row checked at or after this is not due yet. One interval
/// short of the period (at least one interval), so that a row is read about once per period
/// and no more: with several clusters the slice is shared in turns, and a small cluster whose
/// rows were due at every tick would take slots a big one needs to keep its period.
pub fn drift_due_before(config: &crate::Config, now: DateTime<Utc>) -> DateTime<Utc> {
    let interval =
        chrono::Duration::seconds(i64::try_from(config.interval_seconds).unwrap_or(i64::MAX));
    now - (config.reconcile_period() - interval).max(interval)
}

/// The slice: enough reads for every asleep row once per cycle of [`drift_due_before`] (one
/// interval short of the period), so that a tick whose due rows outnumber the slice still
/// reaches them before their period is over.
fn checks_per_tick(asleep: u64, interval_seconds: u64, reconcile_minutes: u32) -> u64 {
    let period = u64::from(reconcile_minutes).saturating_mul(60);
    let cycle = period
        .saturating_sub(interval_seconds)
        .max(interval_seconds)
        .max(1);
    asleep
        .saturating_mul(interval_seconds)
        .div_ceil(cycle)
        .clamp(1, MAX_CHECKS_PER_TICK)
        .min(asleep.max(1))
}

#[cfg(test)]
mod tests;
