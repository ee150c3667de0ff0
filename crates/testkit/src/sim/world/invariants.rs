//! The invariant checks (see [`crate::sim`] for what each number means): per effect, per
//! step, when a wake succeeds and when a clean tick completes.

mod adaptive; // the adaptive policy: keeps, early claims, pre-warms (a pre-warm is a wake)
mod clean_tick; // a clean tick completed: invariant 3, recovery, drift fixed, backoff
mod step; // after every step: drift tracking, restore counts, fights; a wake's own checks

use chrono::{DateTime, Utc};
use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{ConfirmOutcome, ServedClusters, SleepState, Store, Target};
use uuid::Uuid;

use super::{AwaitNow, Kind, World, Writer, ready};
use crate::host::HostOps;
use crate::sim::SimFailure;
use crate::sim::cluster::SimDeployment;
use crate::sim::gate::{Event, OpId};

impl World {
    pub(in crate::sim::world) fn process_events(&mut self) -> std::result::Result<(), SimFailure> {
        let events = std::mem::take(&mut self.shared.lock().events);
        for e in events {
            self.log(format!("  {e:?}"));
            self.on_event(e)?;
        }
        Ok(())
    }

    pub(in crate::sim::world) fn on_event(
        &mut self,
        e: Event,
    ) -> std::result::Result<(), SimFailure> {
        match e {
            Event::Selected {
                op,
                now,
                found,
                backoffs,
            } => {
                // Invariant 7: a row backing off is no candidate, so it cannot hold up the
                // rows behind it.
                let backing_off = ready(self.store.backed_off(now, u32::MAX)).unwrap_or_default();
                if let Some(b) = backing_off
                    .iter()
                    .find(|b| found.iter().any(|(id, _)| *id == b.id))
                {
                    return Err(self.fail(
                        7,
                        format!("op {op} selected {}, which backs off: {b:?}", b.id),
                    ));
                }
                self.check_not_kept(op, now, &found)?;
                if let Some(o) = self.ops.get_mut(&op) {
                    o.selected = found.into_iter().collect();
                    o.backoffs = backoffs.into_iter().collect();
                    o.selected_at = Some(now);
                }
            }
            e @ (Event::SelectedEarly { .. }
            | Event::BeginWake { .. }
            | Event::TouchAwake { .. }
            | Event::Keep { .. }
            | Event::EndKeep { .. }
            | Event::FinishPrewarm { .. }) => self.on_adaptive_event(e)?,
            Event::ToCheck {
                op,
                checked_before,
                rows,
            } => {
                let now = checked_before + self.interval();
                let bound = self.transition_bound();
                let waited = rows
                    .iter()
                    .any(|r| r.wake_started_at.is_some_and(|at| now - at < bound));
                if let Some(o) = self.ops.get_mut(&op) {
                    o.slice_waited |= waited;
                    // The rows this tick's drift check reads (not those a wake is bringing up):
                    // one found at 0 is parked again in the same tick (invariant 11a).
                    let started = o.started_clock;
                    o.checked.extend(
                        rows.iter()
                            .filter(|r| r.wake_started_at.is_none_or(|at| started - at >= bound))
                            .map(|r| (r.id, r.sleep_state_changed_at)),
                    );
                }
            }
            Event::Forbidden { op, target } => {
                self.report.forbidden_answers += 1;
                let Some(id) = self.by_target.get(&target.to_string()).copied() else {
                    return Ok(());
                };
                let row = self.store.read(id).await_now();
                if let Some(o) = self.ops.get_mut(&op)
                    && matches!(o.kind, Kind::Tick(_))
                    && let Some(seen) = o.selected.get(&id).copied()
                    && !o.claimed.contains_key(&id)
                    && row.is_some_and(|r| r.sleep_state == SleepState::Awake)
                {
                    // The sleep path's read of a candidate: it must back off (invariant 7),
                    // a compare-and-set on the activity it was selected with.
                    let count = o.backoffs.get(&id).copied().unwrap_or(0);
                    o.forbidden.insert(id, (seen, count));
                }
            }
            Event::Read { op, row } => {
                if let Some(o) = self.ops.get_mut(&op) {
                    o.last_read = row;
                }
            }
            Event::Claim {
                op,
                id,
                seen,
                idle_before,
                now,
                before,
                adaptive,
                won: true,
            } => {
                self.report.claims += 1;
                let Some(b) = before else {
                    return Err(self.fail(2, format!("op {op} claimed missing row {id}")));
                };
                // The sleep rule written out again on purpose, not `policy::may_sleep`: the
                // oracle stays independent of the code it checks. Change both together.
                let sleepable = b.status == "healthy"
                    && b.sleep_state == SleepState::Awake
                    && !b.always_on
                    && b.expires_at.is_none_or(|x| x > now)
                    && b.last_activity_at <= idle_before
                    && b.last_activity_at == seen;
                if !sleepable {
                    return Err(self.fail(
                        2,
                        format!(
                            "op {op} claimed {id}, which at the write was not sleepable: {b:?}"
                        ),
                    ));
                }
                let selected = self.ops.get(&op).and_then(|o| o.selected.get(&id)).copied();
                if selected != Some(seen) {
                    return Err(self.fail(
                        2,
                        format!(
                            "op {op} claimed {id} with stamp {seen}, selected with {selected:?}"
                        ),
                    ));
                }
                if let Some(holder) = self.claims.get(&id)
                    && self.live(*holder)
                {
                    return Err(self.fail(
                        5,
                        format!("op {op} claimed {id} while op {holder} holds its intent"),
                    ));
                }
                self.check_claim_cutoff(op, &b, adaptive, now)?;
                self.claims.insert(id, op);
                self.restore_expect.remove(&id);
                if let Some(o) = self.ops.get_mut(&op) {
                    o.claimed.insert(id, now);
                    if now - o.started_clock > STALE_INTENT_AFTER {
                        self.report.slow_tick_claims += 1;
                    }
                }
            }
            Event::Claim { .. } => {}
            Event::Confirm {
                op,
                id,
                seen,
                before,
                outcome: ConfirmOutcome::Confirmed,
            } => {
                let ok = before.as_ref().is_some_and(|b| {
                    b.sleep_state == SleepState::Sleeping
                        && b.last_activity_at == seen
                        && b.last_activity_at <= b.sleep_state_changed_at
                });
                if !ok {
                    return Err(self.fail(
                        2,
                        format!(
                            "op {op} confirmed {id} asleep though activity arrived: {before:?}"
                        ),
                    ));
                }
                self.check_not_fighting(op, id, "confirmed")?;
                if let Some(o) = self.ops.get_mut(&op) {
                    o.confirmed.push(id);
                }
            }
            Event::Confirm { .. } => {}
            Event::Revert { op, id, done: true } => {
                self.check_not_fighting(op, id, "reverted")?;
            }
            Event::Revert { .. } => {}
            Event::Settle {
                op,
                id,
                to,
                before,
                done: true,
            } => {
                self.report.settled += 1;
                if to == SleepState::Asleep
                    && !before.as_ref().is_some_and(|b| {
                        b.sleep_state == SleepState::Sleeping
                            && b.last_activity_at <= b.sleep_state_changed_at
                    })
                {
                    return Err(self.fail(
                        2,
                        format!("op {op} settled {id} asleep though activity arrived: {before:?}"),
                    ));
                }
                self.check_not_fighting(op, id, "settled")?;
            }
            Event::Settle { .. } => {}
            Event::FinishWake {
                op,
                id,
                from: SleepState::Sleeping,
                done: true,
            } => {
                self.check_no_tick_activity(op, id, "finish_wake")?;
                if let Some(holder) = self.claims.get(&id)
                    && self.live(*holder)
                {
                    self.report.wakes_over_live_intent += 1;
                    self.log(format!(
                        "  wake op {op} finished over op {holder}'s live intent"
                    ));
                }
            }
            Event::FinishWake {
                op, id, done: true, ..
            } => self.check_no_tick_activity(op, id, "finish_wake")?,
            Event::FinishWake { .. } => {}
            Event::Listed { op } => self.on_listed(op),
            Event::Unparked {
                op,
                target,
                unparked,
                now,
            } => self.on_unparked(op, &target, unparked, now)?,
            Event::Scaled {
                op,
                target,
                replicas,
                before,
            } => {
                let previous = self.last_writer.insert(target.to_string(), Writer::Op(op));
                let is_tick = matches!(self.kinds.get(&op), Some(Kind::Tick(_)));
                if replicas > 0 {
                    self.check_scale_up(op, &target, replicas, before, previous)?;
                }
                if replicas == 0 {
                    if !is_tick {
                        return Err(self.fail(4, format!("wake op {op} scaled {target} to 0")));
                    }
                    let id = self.by_target.get(&target.to_string()).copied();
                    let holds = id.is_some_and(|id| self.claims.get(&id) == Some(&op));
                    let row_sleeping = match id {
                        Some(id) => self
                            .store
                            .read(id)
                            .await_now()
                            .is_some_and(|r| r.sleep_state == SleepState::Sleeping),
                        None => false,
                    };
                    if !(holds && row_sleeping) {
                        return Err(self.fail(
                            5,
                            format!(
                                "op {op} scaled {target} to 0 without holding its row's live \
                                 intent (holder {:?}, row sleeping: {row_sleeping})",
                                id.and_then(|id| self.claims.get(&id))
                            ),
                        ));
                    }
                    if before.is_some_and(|d| d.replicas == 0) {
                        return Err(self.fail(5, format!("op {op} slept {target} twice")));
                    }
                    if let (Some(id), Some(d)) = (id, before) {
                        self.restore_expect.insert(id, d.replicas);
                    }
                }
            }
        }
        Ok(())
    }

    /// Invariant 9: the job scales an app up only from 0 (a wake, a restore, a recovery never
    /// lowers or overrides a running app), and one wake writes at most once unless someone
    /// else wrote the Deployment after its first write.
    pub(in crate::sim::world) fn check_scale_up(
        &mut self,
        op: OpId,
        target: &Target,
        replicas: i32,
        before: Option<SimDeployment>,
        previous: Option<Writer>,
    ) -> std::result::Result<(), SimFailure> {
        self.report.scale_ups_checked += 1;
        if let Some(d) = before
            && d.replicas != 0
        {
            return Err(self.fail(
                9,
                format!(
                    "op {op} scaled {target} from {} to {replicas}: the job wrote over a running app",
                    d.replicas
                ),
            ));
        }
        self.check_prewarm_scale_up(op, target, previous)?;
        if let Some(Kind::Wake(..)) = self.kinds.get(&op) {
            if let Some(o) = self.ops.get_mut(&op) {
                o.scaled_up = true;
            }
            let n = self.wake_ups.entry(op).or_default();
            *n += 1;
            if *n > 1 && previous == Some(Writer::Op(op)) {
                return Err(self.fail(
                    9,
                    format!("wake op {op} scaled {target} up twice with no other write between"),
                ));
            }
        }
        Ok(())
    }

    /// The sleep state a row drifted from, if it is `asleep` over a running app the job can
    /// read (a 403 hides it from the job; a person must fix the RBAC).
    pub(in crate::sim::world) fn drifting_now(
        &self,
        id: Uuid,
        target: &Target,
    ) -> Option<DateTime<Utc>> {
        let row = self.store.read(id).await_now()?;
        (row.sleep_state == SleepState::Asleep
            && !self.cluster.is_forbidden(target)
            && self.cluster.get(target).is_some_and(|d| d.replicas > 0))
        .then_some(row.sleep_state_changed_at)
    }

    /// The drifting rows a tick starting now must count towards checking: due by the drift
    /// check's own rule (`drift_due_before`) and not being woken right now.
    pub(in crate::sim::world) fn due_drift(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        let now = self.now();
        let bound = self.transition_bound();
        let served = ServedClusters::default();
        let since = idle_scaler_core::job::drift_due_before(&self.config, now);
        let due = ready(self.store.asleep_to_check(&served, since, u32::MAX)).unwrap_or_default();
        due.into_iter()
            .filter(|r| r.wake_started_at.is_none_or(|at| now - at >= bound))
            .filter_map(|r| {
                let target = Target::parse(&r.provider_id).ok()?;
                self.drifting_now(r.id, &target)
                    .filter(|at| *at == r.sleep_state_changed_at)
                    .map(|at| (r.id, at))
            })
            .collect()
    }
}
