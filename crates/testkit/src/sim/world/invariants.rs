//! The invariant checks (see [`crate::sim`] for what each number means): per effect, per
//! step, when a wake succeeds and when a clean tick completes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{ConfirmOutcome, ServedClusters, SleepState, Store, Target, WakeReport};
use uuid::Uuid;

use super::{AwaitNow, Drifting, Kind, Op, World, Writer, ready, t0};
use crate::host::HostOps;
use crate::sim::SimFailure;
use crate::sim::cluster::SimDeployment;
use crate::sim::gate::{Event, OpId};

impl World {
    pub(super) fn process_events(&mut self) -> std::result::Result<(), SimFailure> {
        let events = std::mem::take(&mut self.shared.lock().events);
        for e in events {
            self.log(format!("  {e:?}"));
            self.on_event(e)?;
        }
        Ok(())
    }

    pub(super) fn on_event(&mut self, e: Event) -> std::result::Result<(), SimFailure> {
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
                if let Some(o) = self.ops.get_mut(&op) {
                    o.selected = found.into_iter().collect();
                    o.backoffs = backoffs.into_iter().collect();
                }
            }
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
                won: true,
            } => {
                self.report.claims += 1;
                let Some(b) = before else {
                    return Err(self.fail(2, format!("op {op} claimed missing row {id}")));
                };
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
                if let Some(holder) = self.claims.get(&id)
                    && self.live(*holder)
                {
                    self.report.wakes_over_live_intent += 1;
                    self.log(format!(
                        "  wake op {op} finished over op {holder}'s live intent"
                    ));
                }
            }
            Event::FinishWake { .. } => {}
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
    fn check_scale_up(
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
    fn drifting_now(&self, id: Uuid, target: &Target) -> Option<DateTime<Utc>> {
        let row = self.store.read(id).await_now()?;
        (row.sleep_state == SleepState::Asleep
            && !self.cluster.is_forbidden(target)
            && self.cluster.get(target).is_some_and(|d| d.replicas > 0))
        .then_some(row.sleep_state_changed_at)
    }

    /// The drifting rows a tick starting now must count towards checking: due by the drift
    /// check's own rule (not checked within an interval) and not being woken right now.
    pub(super) fn due_drift(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        let now = self.now();
        let bound = self.transition_bound();
        let (served, since) = (ServedClusters::default(), now - self.interval());
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

    /// After every step: which rows drift and since when (invariant 8), and whether the rows
    /// the job scaled down still hold their restore count (invariant 4's precondition).
    pub(super) fn track(&mut self) -> std::result::Result<(), SimFailure> {
        let now = self.now();
        let mut lost = None;
        for app in &self.apps {
            let Some(t) = &app.target else { continue };
            let drifting = self.drifting_now(app.id, t);
            match (drifting, self.drifting.get(&app.id)) {
                (Some(at), Some(d)) if d.state_at == at => {}
                (Some(at), _) => {
                    self.report.drift_episodes += 1;
                    self.drifting.insert(
                        app.id,
                        Drifting {
                            state_at: at,
                            since_step: self.step,
                            since: now,
                            strikes: 0,
                        },
                    );
                }
                (None, Some(d)) => {
                    let secs = u64::try_from((now - d.since).num_seconds()).unwrap_or(0);
                    self.report.max_drift_seconds = self.report.max_drift_seconds.max(secs);
                    self.drifting.remove(&app.id);
                }
                (None, None) => {}
            }
            let Some(row) = self.store.read(app.id).await_now() else {
                continue;
            };
            match row.sleep_state {
                SleepState::Awake => {
                    self.restore_expect.remove(&app.id);
                }
                SleepState::Asleep => {
                    if let Some(n) = self.restore_expect.get(&app.id) {
                        self.report.restore_counts_checked += 1;
                        if row.replicas_before_sleep != Some(*n) && lost.is_none() {
                            lost = Some(format!(
                                "row {} is asleep after the job scaled {t} down from {n}, but \
                                 its restore count is {:?}: {row:?}",
                                app.id, row.replicas_before_sleep
                            ));
                        }
                    }
                }
                SleepState::Sleeping => {}
            }
        }
        match lost {
            Some(message) => Err(self.fail(4, message)),
            None => Ok(()),
        }
    }

    /// Invariant 5: a transition never settles an intent another live operation holds.
    fn check_not_fighting(
        &mut self,
        op: OpId,
        id: Uuid,
        what: &str,
    ) -> std::result::Result<(), SimFailure> {
        match self.claims.get(&id) {
            Some(holder) if *holder != op && self.live(*holder) => Err(self.fail(
                5,
                format!("op {op} {what} {id}, whose intent live op {holder} holds"),
            )),
            _ => Ok(()),
        }
    }

    /// Per step: forget intents whose row left `sleeping`.
    pub(super) fn check(&mut self) -> std::result::Result<(), SimFailure> {
        self.report.invariant_checks += 1;
        let store = self.store.clone();
        self.claims.retain(|id, _| {
            store
                .read(*id)
                .await_now()
                .is_some_and(|r| r.sleep_state == SleepState::Sleeping)
        });
        Ok(())
    }

    /// Invariant 4, when a wake reports success.
    pub(super) fn check_wake(
        &mut self,
        op: OpId,
        o: &Op,
        r: &WakeReport,
    ) -> std::result::Result<(), SimFailure> {
        let Kind::Wake(_, id) = o.kind else {
            return Ok(());
        };
        let n = r.replicas.unwrap_or(0);
        let expected = o
            .last_read
            .as_ref()
            .and_then(|row| row.replicas_before_sleep)
            .filter(|r| *r > 0)
            .unwrap_or(self.config.default_wake_replicas);
        let row = self.store.read(id).await_now();
        if n <= 0 || n != expected {
            return Err(self.fail(
                4,
                format!("wake op {op} of {id} restored {n}, the row said {expected}"),
            ));
        }
        if row
            .as_ref()
            .is_none_or(|r| r.sleep_state != SleepState::Awake)
        {
            return Err(self.fail(4, format!("wake op {op} of {id} left the row {row:?}")));
        }
        let target = row.and_then(|r| Target::parse(&r.provider_id).ok());
        if let Some(t) = target
            && let Some(d) = self.cluster.get(&t)
            && d.replicas != n
            && self.last_writer.get(&t.to_string()) != Some(&Writer::Outside)
        {
            return Err(self.fail(
                4,
                format!(
                    "wake op {op} of {id} reported {n} replicas but {t} is at {} (last written by {:?})",
                    d.replicas,
                    self.last_writer.get(&t.to_string())
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 3 and the recovery of intents, when a tick with no fault completes.
    pub(super) fn after_clean_tick(&mut self, tick: &Op) -> std::result::Result<(), SimFailure> {
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
        self.check_backed_off(tick)
    }

    /// Invariant 8: a drifting row is set `awake` within the reconcile period. Each tick
    /// checks `ceil(asleep * interval / period)` due rows, least recently checked first, so a
    /// due row is reached within `period / interval` ticks; one more per instance for a gauge
    /// sampled before the row went to sleep. Counted: clean ticks that started with the row
    /// due and drifting and ended with it still drifting, except those whose slice had to
    /// leave a row to a wake in flight (it stays first, for at most one transition bound).
    fn check_drift_fixed(&mut self, tick: &Op) -> std::result::Result<(), SimFailure> {
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
    fn check_backed_off(&mut self, tick: &Op) -> std::result::Result<(), SimFailure> {
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
