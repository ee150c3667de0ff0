//! Invariant 11 in the simulation: what a step and a clean tick must leave parked and
//! unparked.

use idle_scaler_core::Target;

use super::super::{Op, World, Writer};
use crate::sim::SimFailure;
use crate::sim::gate::OpId;

impl World {
    /// 11, the other half of "never before": a slice deleted while the app was not ready.
    pub(in crate::sim::world) fn on_unparked(
        &mut self,
        op: OpId,
        target: &Target,
        unparked: u64,
        without_check: bool,
    ) -> std::result::Result<(), SimFailure> {
        self.report.slices_unparked += unparked;
        let Some((id, _)) = self.park_app(target) else {
            return Ok(());
        };
        for o in self.ops.values_mut() {
            o.unparked.push(id);
        }
        if !self.app_ready(id) {
            let how = if without_check {
                "unpark_now"
            } else {
                "a readiness-checked unpark"
            };
            return Err(self.fail(
                11,
                format!(
                    "op {op} unparked {target} ({unparked} slices, by {how}) while its own \
                     endpoints were not ready: its callers met a Service with no ready endpoint"
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 11 when a clean tick completes.
    ///
    /// First the tick's own sleeps: a row it confirmed asleep is parked before it ends (the
    /// design parks in the tick that confirms), unless someone wrote the app's replicas or
    /// unparked it since.
    /// (a) An asleep app at 0 that a clean tick started with due for its drift check and not
    /// fully parked, and that it ended still so, is a strike; more than
    /// `ceil(period / interval) + 2` strikes fail, the bound of invariant 8 (the drift check's
    /// slice is what parks it again). Tighter, for a row the slice did read: the check finds it
    /// at 0 and parks it in the same tick, so two such clean ticks that leave it unparked fail
    /// (one is let pass: a check that read the Deployment gone does not park, and the host can
    /// recreate it and a person scale it to 0 before the tick ends).
    /// (b) A clean tick whose process's sweep was due (by the job's own rule) started with an
    /// awake, ready app parked and ended with it still so: the sweep unparks every awake,
    /// ready app it lists, so one such tick fails.
    pub(in crate::sim::world) fn check_parking(
        &mut self,
        op: OpId,
        tick: &Op,
    ) -> std::result::Result<(), SimFailure> {
        for id in &tick.confirmed {
            let Some(app) = self.parking.apps.get(id) else {
                continue;
            };
            // Unless someone else wrote its replicas since, or unparked it, meanwhile.
            let last = self.last_writer.get(&app.target.to_string()).copied();
            if last != Some(Writer::Op(op)) || tick.unparked.contains(id) {
                continue;
            }
            self.report.sleeps_parked_checked += 1;
            if self.gap_now(*id).is_some() {
                return Err(self.fail(
                    11,
                    format!(
                        "clean tick op {op} confirmed row {id} asleep and ended with a Service \
                         of {} not parked: a sleep is parked in the tick that confirms it",
                        app.target
                    ),
                ));
            }
        }
        let period = u64::from(self.config.reconcile_minutes) * 60;
        let allowed = period.div_ceil(self.config.interval_seconds.max(1)) + 2;
        if !tick.slice_waited {
            for (id, state_at) in &tick.due_park {
                if self.gap_now(*id) != Some(*state_at) {
                    continue;
                }
                let Some(e) = self.parking.gaps.get_mut(id) else {
                    continue;
                };
                if e.state_at != *state_at || e.since_step >= tick.started_step {
                    continue;
                }
                e.strikes += 1;
                let strikes = e.strikes;
                self.report.park_strikes += 1;
                self.report.max_park_strikes = self.report.max_park_strikes.max(strikes);
                if strikes > allowed {
                    return Err(self.fail(
                        11,
                        format!(
                            "row {id} is asleep at 0 with a Service not parked ({strikes} clean \
                             ticks started with it due; at most {allowed} may pass)"
                        ),
                    ));
                }
            }
        }
        for (id, state_at) in &tick.checked {
            if self.gap_now(*id) != Some(*state_at) {
                continue;
            }
            let Some(e) = self.parking.gaps.get_mut(id) else {
                continue;
            };
            if e.state_at != *state_at || e.since_step >= tick.started_step {
                continue;
            }
            e.checked_strikes += 1;
            let strikes = e.checked_strikes;
            self.report.parks_checked += 1;
            if strikes >= 2 {
                return Err(self.fail(
                    11,
                    format!(
                        "row {id} is asleep at 0 with a Service not parked after {strikes} clean \
                         ticks whose drift check read it at 0 (each parks such an app again)"
                    ),
                ));
            }
        }
        for (id, state_at) in &tick.stuck {
            self.report.sweeps_checked += 1;
            if self.stuck_now(*id) == Some(*state_at)
                && self
                    .parking
                    .stuck
                    .get(id)
                    .is_some_and(|e| e.since_step < tick.started_step)
            {
                return Err(self.fail(
                    11,
                    format!(
                        "row {id} is awake and its app ready, yet still parked after a clean \
                         tick whose sweep was due"
                    ),
                ));
            }
        }
        Ok(())
    }
}
