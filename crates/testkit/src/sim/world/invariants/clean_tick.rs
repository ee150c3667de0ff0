//! When a tick with no fault completes: invariant 3, recovery, drift fixed, backoff (and 11,
//! in `world/parking.rs`).

use std::collections::BTreeMap;

use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{SleepState, Store};

use super::super::{AwaitNow, Op, World, Writer, ready, t0};
use crate::host::HostOps;
use crate::sim::SimFailure;
use crate::sim::gate::OpId;

impl World {
    /// Invariant 3 and the recovery of intents, when a tick with no fault completes.
    pub(in crate::sim::world) fn after_clean_tick(
        &mut self,
        op: OpId,
        tick: &Op,
    ) -> std::result::Result<(), SimFailure> {
        let stale_before = tick.started_clock - STALE_INTENT_AFTER;
        let mut seen = BTreeMap::new();
        for app in &self.apps {
            // A 403 for good leaves the job nothing to do there: a person must fix RBAC.
            if app
                .target
                .as_ref()
                .is_some_and(|t| self.cluster.is_forbidden(t))
            {
                continue;
            }
            let Some(row) = self.store.read(app.id).await_now() else {
                continue;
            };
            if let Some(t) = &app.target
                && row.sleep_state == SleepState::Awake
                && self.cluster.get(t).is_some_and(|d| d.replicas == 0)
                && let Some(Writer::Op(w)) = self.last_writer.get(&t.to_string())
                && self
                    .ended
                    .get(w)
                    .is_some_and(|e| e.step < tick.started_step)
            {
                return Err(self.fail(
                    3,
                    format!(
                        "{t} is at 0 with its row awake, set by op {w} which ended before this \
                         clean tick started"
                    ),
                ));
            }
            if row.sleep_state == SleepState::Sleeping
                && row.sleep_state_changed_at <= stale_before
                && self.claims.get(&app.id).is_none_or(|h| {
                    self.ended
                        .get(h)
                        .is_some_and(|e| e.step < tick.started_step)
                })
            {
                // Successive ticks: one that ran alongside the tick of the last strike saw
                // the same moment, and the same interleaving may have beaten both.
                let strikes = match self.strikes.get(&app.id) {
                    Some((at, n, last)) if *at == row.sleep_state_changed_at => {
                        if tick.started_step > *last { n + 1 } else { *n }
                    }
                    _ => 1,
                };
                if strikes >= 2 {
                    return Err(self.fail(
                        3,
                        format!(
                            "row {} still sleeping after two clean ticks since its intent went stale: {row:?}",
                            app.id
                        ),
                    ));
                }
                let last =
                    if strikes == 1 || self.strikes.get(&app.id).is_some_and(|s| s.1 < strikes) {
                        self.step
                    } else {
                        self.strikes.get(&app.id).map_or(self.step, |s| s.2)
                    };
                seen.insert(app.id, (row.sleep_state_changed_at, strikes, last));
            }
        }
        self.strikes = seen;
        self.check_drift_fixed(tick)?;
        self.check_parking(op, tick)?;
        self.check_backed_off(tick)
    }

    /// Invariant 8: a drifting row is set `awake` within the reconcile period. Each tick
    /// checks `ceil(asleep * interval / period)` due rows, least recently checked first, so a
    /// due row is reached within `period / interval` ticks; one more per instance for a gauge
    /// sampled before the row went to sleep. Counted: clean ticks that started with the row
    /// due and drifting and ended with it still drifting, except those whose slice had to
    /// leave a row to a wake in flight (it stays first, for at most one transition bound).
    pub(in crate::sim::world) fn check_drift_fixed(
        &mut self,
        tick: &Op,
    ) -> std::result::Result<(), SimFailure> {
        if tick.slice_waited {
            return Ok(());
        }
        let period = u64::from(self.config.reconcile_minutes) * 60;
        let allowed = period.div_ceil(self.config.interval_seconds.max(1)) + 2;
        for (id, state_at) in &tick.due_drift {
            let Some(target) = self
                .apps
                .iter()
                .find(|a| a.id == *id)
                .and_then(|a| a.target.clone())
            else {
                continue;
            };
            if self.drifting_now(*id, &target) != Some(*state_at) {
                continue;
            }
            let Some(d) = self.drifting.get_mut(id) else {
                continue;
            };
            if d.state_at != *state_at || d.since_step >= tick.started_step {
                continue;
            }
            d.strikes += 1;
            let (strikes, since) = (d.strikes, d.since);
            self.report.drift_strikes += 1;
            self.report.max_drift_strikes = self.report.max_drift_strikes.max(strikes);
            if strikes > allowed {
                return Err(self.fail(
                    8,
                    format!(
                        "row {id} is asleep over running {target} since {since} ({strikes} clean \
                         ticks started with it due; at most {allowed} may pass)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Invariant 7: a candidate whose read answered 403 backs off (so it neither starves the
    /// rows behind it nor trips the blast radius tick after tick), unless its activity moved:
    /// a backoff is recorded after the failure (its count went up). Its length is not checked
    /// here: two instances' backoffs of one row may land out of order, the older stamp last.
    pub(in crate::sim::world) fn check_backed_off(
        &mut self,
        tick: &Op,
    ) -> std::result::Result<(), SimFailure> {
        for (id, (activity, count)) in &tick.forbidden {
            let Some(row) = self.store.read(*id).await_now() else {
                continue;
            };
            if row.sleep_state != SleepState::Awake || row.last_activity_at != *activity {
                continue;
            }
            self.report.backoffs_checked += 1;
            let recorded = ready(self.store.backed_off(t0(), u32::MAX)).unwrap_or_default();
            if !recorded
                .iter()
                .any(|b| b.id == *id && b.backoff_count > *count)
            {
                return Err(self.fail(
                    7,
                    format!(
                        "row {id} answered 403 in a clean tick and no backoff was recorded \
                         after it (count at selection {count}): {row:?}; backoffs: {recorded:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}
