//! Per step: which rows drift and since when, the restore counts, and the wake's checks.

use idle_scaler_core::{SleepState, Target, WakeReport};
use uuid::Uuid;

use super::super::parking::Seen;
use super::super::{AwaitNow, Drifting, Kind, Op, World, Writer};
use crate::host::HostOps;
use crate::sim::SimFailure;
use crate::sim::gate::OpId;

impl World {
    /// After every step: which rows drift and since when (invariant 8), and whether the rows
    /// the job scaled down still hold their restore count (invariant 4's precondition).
    pub(in crate::sim::world) fn track(&mut self) -> std::result::Result<(), SimFailure> {
        let now = self.now();
        let mut lost = None;
        // One read of each row and Deployment per step, shared with the parking checks.
        let mut seen = Vec::with_capacity(self.apps.len());
        for app in &self.apps {
            let Some(t) = &app.target else { continue };
            let row = self.store.read(app.id).await_now();
            let replicas = self.cluster.get(t).map(|d| d.replicas);
            let forbidden = self.cluster.is_forbidden(t);
            // As `drifting_now`, from the reads above.
            let drifting = row
                .as_ref()
                .filter(|r| {
                    r.sleep_state == SleepState::Asleep
                        && !forbidden
                        && replicas.is_some_and(|n| n > 0)
                })
                .map(|r| r.sleep_state_changed_at);
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
            seen.push(Seen {
                id: app.id,
                row: row.clone(),
                replicas,
                forbidden,
            });
            let Some(row) = row else {
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
        if let Some(message) = lost {
            return Err(self.fail(4, message));
        }
        self.track_parking(&seen)
    }

    /// Invariant 5: a transition never settles an intent another live operation holds.
    pub(in crate::sim::world) fn check_not_fighting(
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
    pub(in crate::sim::world) fn check(&mut self) -> std::result::Result<(), SimFailure> {
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
    pub(in crate::sim::world) fn check_wake(
        &mut self,
        op: OpId,
        o: &Op,
        r: &WakeReport,
    ) -> std::result::Result<(), SimFailure> {
        let Kind::Wake(_, id) = o.kind else {
            return Ok(());
        };
        let n = r.replicas.unwrap_or(0);
        // The restore count written out again on purpose, not `policy::restore_count`: the
        // oracle stays independent of the code it checks.
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
}
