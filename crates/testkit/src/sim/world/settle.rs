//! The end of a run: every operation dies, faults stop, the clock passes the stale age, one
//! tick runs, and every asleep app must wake.

use chrono::Duration;
use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{DeploymentRecord, SleepState, Target};

use super::{AwaitNow, World, Writer};
use crate::host::HostOps;
use crate::sim::SimFailure;
use crate::sim::gate::OpId;

impl World {
    /// The end: every operation dies, faults stop, time passes beyond the stale threshold, and
    /// one tick runs to completion. Then nothing may be half done.
    pub(super) async fn settle(&mut self) -> std::result::Result<(), SimFailure> {
        self.step += 1;
        let in_flight: Vec<OpId> = self.ops.keys().copied().collect();
        for op in in_flight {
            self.log(format!("settle: op {op} dropped"));
            self.report.crashes += 1;
            self.end(op);
        }
        self.faults_on = false;
        self.land_delayed(true)?;
        self.clock
            .advance(STALE_INTENT_AFTER + Duration::minutes(1));
        self.start_tick(0)?;
        while let Some(op) = self.ops.keys().next().copied() {
            self.advance(op)?;
        }
        let rows = self.store.rows().await.unwrap_or_default();
        let cluster = self.cluster.clone();
        let forbidden = move |row: &DeploymentRecord| {
            Target::parse(&row.provider_id).is_ok_and(|t| cluster.is_forbidden(&t))
        };
        for row in &rows {
            if forbidden(row) {
                continue;
            }
            if row.sleep_state == SleepState::Sleeping {
                return Err(self.fail(3, format!("after settling, row still sleeping: {row:?}")));
            }
            if let Ok(t) = Target::parse(&row.provider_id)
                && row.sleep_state == SleepState::Awake
                && self.cluster.get(&t).is_some_and(|d| d.replicas == 0)
                && matches!(self.last_writer.get(&t.to_string()), Some(Writer::Op(_)))
            {
                return Err(self.fail(
                    3,
                    format!("after settling, {t} is at 0 with its row awake: {row:?}"),
                ));
            }
        }
        // Every app asleep wakes to its count.
        for row in rows {
            if row.sleep_state == SleepState::Asleep
                && !forbidden(&row)
                && Target::parse(&row.provider_id).is_ok_and(|t| self.cluster.get(&t).is_some())
            {
                self.start_wake(0, row.id)?;
                while let Some(op) = self.ops.keys().next().copied() {
                    self.advance(op)?;
                }
                let woke = self.store.read(row.id).await_now();
                if woke.is_none_or(|r| r.sleep_state != SleepState::Awake) {
                    return Err(self.fail(4, format!("fault-free wake of {} failed", row.id)));
                }
            }
        }
        Ok(())
    }
}
