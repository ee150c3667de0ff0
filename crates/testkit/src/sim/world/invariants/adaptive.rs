//! The adaptive policy's part of the invariants: a claim's cutoff (the window, or the floor
//! for a row whose rhythm sleeps early) and never under a keep (2); no selection of a kept
//! row (7); a pre-warm is a wake (4, 9, 10) that only wakes an `asleep` row and never moves
//! its activity.

use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::{DeploymentRecord, SleepState, Store, Target};
use uuid::Uuid;

use super::super::{Kind, World, Writer};
use crate::memory::AdaptiveColumns;
use crate::sim::SimFailure;
use crate::sim::gate::{Event, OpId};

/// The shortest an app is idle before it sleeps, whatever its rhythm says (written out again
/// on purpose: the oracle stays independent of the code it checks).
const FLOOR: Duration = Duration::minutes(5);

impl World {
    pub(in crate::sim::world) fn on_adaptive_event(
        &mut self,
        e: Event,
    ) -> std::result::Result<(), SimFailure> {
        match e {
            Event::SelectedEarly {
                op,
                now,
                found,
                backoffs,
            } => {
                // Invariant 7 as for the main selection: nothing backing off, nothing kept.
                let backing_off =
                    super::super::ready(self.store.backed_off(now, u32::MAX)).unwrap_or_default();
                if let Some(b) = backing_off
                    .iter()
                    .find(|b| found.iter().any(|(id, _)| *id == b.id))
                {
                    return Err(self.fail(
                        7,
                        format!("op {op} selected {} early, which backs off: {b:?}", b.id),
                    ));
                }
                self.check_not_kept(op, now, &found)?;
                if let Some(o) = self.ops.get_mut(&op) {
                    o.selected.extend(found);
                    o.backoffs.extend(backoffs);
                }
            }
            Event::BeginWake {
                op,
                id,
                before,
                done: true,
            } if matches!(self.kinds.get(&op), Some(Kind::Tick(_))) => {
                // Only a pre-warm marks a row as being woken from a tick.
                if before
                    .as_ref()
                    .is_none_or(|b| b.sleep_state != SleepState::Asleep)
                {
                    return Err(self.fail(
                        4,
                        format!("op {op} began pre-warming {id}, which was not asleep: {before:?}"),
                    ));
                }
                if let Some(o) = self.ops.get_mut(&op) {
                    o.prewarms.insert(id, false);
                }
            }
            Event::BeginWake { .. } => {}
            Event::TouchAwake { op, id, done: true } => {
                self.check_no_tick_activity(op, id, "touch_awake")?;
            }
            Event::TouchAwake { .. } => {}
            Event::Keep { op, id, won: true } => {
                self.report.keeps += 1;
                self.log(format!("  op {op} keeps {id} up for its expected request"));
            }
            Event::Keep { .. } => {}
            Event::EndKeep {
                op,
                id,
                before: Some((activity, a)),
                done: true,
            } if a.prewarmed_at.is_some() => {
                let used = a.keep_activity_at.is_some_and(|k| activity > k);
                if used {
                    self.report.prewarms_used += 1;
                } else {
                    self.report.prewarms_wasted += 1;
                }
                self.log(format!(
                    "  op {op} settled the pre-warm of {id} (used: {used})"
                ));
            }
            Event::EndKeep { .. } => {}
            Event::FinishPrewarm {
                op,
                id,
                before,
                after,
                done: true,
            } => self.check_prewarm(op, id, before, after)?,
            Event::FinishPrewarm { .. } => {}
            _ => {}
        }
        Ok(())
    }

    /// Invariant 7 for keeps: no selection holds a row a keep holds at the tick's `now`.
    pub(in crate::sim::world) fn check_not_kept(
        &self,
        op: OpId,
        now: DateTime<Utc>,
        found: &[(Uuid, DateTime<Utc>)],
    ) -> std::result::Result<(), SimFailure> {
        for (id, seen) in found {
            if let Some(a) = self.store.adaptive_of(*id)
                && a.holds(*seen, now)
            {
                return Err(self.fail(
                    7,
                    format!("op {op} selected {id}, which a keep holds at {now}: {a:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Invariant 2 under the adaptive policy: the claimed row was idle before the window as of
    /// the tick's selection, or before the floor if its rhythm let it sleep early at the
    /// claim; and no keep held it at the claim.
    pub(in crate::sim::world) fn check_claim_cutoff(
        &mut self,
        op: OpId,
        b: &DeploymentRecord,
        adaptive: Option<AdaptiveColumns>,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), SimFailure> {
        let a = adaptive.unwrap_or_default();
        let Some(at) = self.ops.get(&op).and_then(|o| o.selected_at) else {
            return Err(self.fail(2, format!("op {op} claimed {} unselected", b.id)));
        };
        let idle = b.last_activity_at <= at - self.config.idle_window();
        let early = a.sleeps_early && b.last_activity_at <= at - FLOOR;
        if !idle && !early {
            return Err(self.fail(
                2,
                format!(
                    "op {op} claimed {} idle since {} as of its selection at {at}: neither the \
                     window nor (sleeps early: {}) the floor: {b:?}",
                    b.id, b.last_activity_at, a.sleeps_early
                ),
            ));
        }
        if !idle {
            self.report.early_claims += 1;
        }
        if a.holds(b.last_activity_at, now) {
            return Err(self.fail(
                2,
                format!(
                    "op {op} claimed {} at {now} while a keep held it: {a:?}",
                    b.id
                ),
            ));
        }
        Ok(())
    }

    /// A tick never moves a row's activity through a wake's row writes: its only wakes are
    /// pre-warms, which are no activity.
    pub(in crate::sim::world) fn check_no_tick_activity(
        &self,
        op: OpId,
        id: Uuid,
        what: &str,
    ) -> std::result::Result<(), SimFailure> {
        if matches!(self.kinds.get(&op), Some(Kind::Tick(_))) {
            return Err(self.fail(
                4,
                format!(
                    "tick op {op} moved the activity of {id} ({what}): a pre-warm is no request"
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 9 for a pre-warm (a wake inside a tick): it writes its app up at most once
    /// unless someone else wrote it after its first write; and a scale-up marks it as having
    /// scaled up (a cut now leaves the app running under an `asleep` row: invariant 10).
    pub(in crate::sim::world) fn check_prewarm_scale_up(
        &mut self,
        op: OpId,
        target: &Target,
        previous: Option<Writer>,
    ) -> std::result::Result<(), SimFailure> {
        let Some(id) = self.by_target.get(&target.to_string()).copied() else {
            return Ok(());
        };
        let Some(scaled) = self.ops.get_mut(&op).and_then(|o| o.prewarms.get_mut(&id)) else {
            return Ok(());
        };
        let twice = *scaled && previous == Some(Writer::Op(op));
        *scaled = true;
        if twice {
            return Err(self.fail(
                9,
                format!("pre-warm in op {op} scaled {target} up twice with no other write between"),
            ));
        }
        Ok(())
    }

    /// Invariant 4 for a pre-warm's row flip: the row was `asleep` and is `awake` with its
    /// activity unchanged and no restore count; the app runs at the row's restore count if the
    /// pre-warm wrote it, or still runs if it found it running (unless someone outside the job
    /// wrote it since).
    fn check_prewarm(
        &mut self,
        op: OpId,
        id: Uuid,
        before: Option<DeploymentRecord>,
        after: Option<DeploymentRecord>,
    ) -> std::result::Result<(), SimFailure> {
        self.report.prewarms_run += 1;
        let scaled = self
            .ops
            .get_mut(&op)
            .and_then(|o| o.prewarms.remove(&id))
            .unwrap_or(false);
        let (Some(b), Some(a)) = (before, after) else {
            return Err(self.fail(4, format!("pre-warm in op {op} flipped missing row {id}")));
        };
        if b.sleep_state != SleepState::Asleep
            || a.sleep_state != SleepState::Awake
            || a.last_activity_at != b.last_activity_at
            || a.replicas_before_sleep.is_some()
        {
            return Err(self.fail(
                4,
                format!("pre-warm in op {op} flipped {id} from {b:?} to {a:?}"),
            ));
        }
        let Ok(t) = Target::parse(&a.provider_id) else {
            return Ok(());
        };
        let last = self.last_writer.get(&t.to_string()).copied();
        let Some(d) = self.cluster.get(&t) else {
            return Ok(());
        };
        // The restore count written out again on purpose, not `policy::restore_count`.
        let n = b
            .replicas_before_sleep
            .filter(|r| *r > 0)
            .unwrap_or(self.config.default_wake_replicas);
        let wrong = if scaled && last == Some(Writer::Op(op)) {
            d.replicas != n
        } else {
            d.replicas <= 0 && last != Some(Writer::Outside)
        };
        if wrong {
            return Err(self.fail(
                4,
                format!(
                    "pre-warm in op {op} flipped {id} awake with {t} at {} (restore count {n}, \
                     scaled up by it: {scaled}, last written by {last:?})",
                    d.replicas
                ),
            ));
        }
        Ok(())
    }
}
