//! The invariant checks (see [`crate::sim`] for what each number means): per effect, per
//! step, when a wake succeeds and when a clean tick completes.

use std::collections::BTreeMap;

use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{ConfirmOutcome, SleepState, Target, WakeReport};
use uuid::Uuid;

use super::{AwaitNow, Kind, Op, World, Writer};
use crate::host::HostOps;
use crate::sim::SimFailure;
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
            Event::Selected { op, found } => {
                if let Some(o) = self.ops.get_mut(&op) {
                    o.selected = found.into_iter().collect();
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
                self.last_writer.insert(target.to_string(), Writer::Op(op));
                let is_tick = matches!(self.kinds.get(&op), Some(Kind::Tick(_)));
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
                }
            }
        }
        Ok(())
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
        Ok(())
    }
}
