//! Wake: the reverse of a sleep, for the library call, the CLI and HTTP.

use tokio::time::Instant;
use tracing::info;
use uuid::Uuid;

use super::recover::STALE_INTENT_AFTER;
use super::{Job, log_scale_error};
use crate::metrics;
use crate::{Error, Outcome, Result, SleepState, Target, WakeReport, WakeResult};

/// How often a wake retries when its compare-and-set loses to a concurrent transition.
const WAKE_ATTEMPTS: usize = 3;

impl Job {
    /// Wakes one app: restores its recorded replica count and marks the row awake.
    pub async fn wake(&self, id: Uuid) -> Result<WakeReport> {
        let started = Instant::now();
        let result = self.wake_inner(id).await;
        metrics::wake_duration(started.elapsed());
        match &result {
            Ok(r) if r.result == WakeResult::WokeUp => {
                metrics::outcome(Outcome::WokeUp);
                // Keep the gauge true between ticks: dashboards watch apps waking.
                self.sample_idle_apps().await;
            }
            Ok(_) | Err(Error::UnknownDeployment(_)) => {}
            Err(_) => metrics::outcome(Outcome::WakeFailed),
        }
        result
    }

    async fn wake_inner(&self, id: Uuid) -> Result<WakeReport> {
        for _ in 0..WAKE_ATTEMPTS {
            let row = self
                .store
                .get(id)
                .await?
                .ok_or(Error::UnknownDeployment(id))?;
            let now = self.clock.now();
            if row.sleep_state == SleepState::Awake {
                if self.store.touch_awake(id, now).await? {
                    info!(deployment_id = %id, "wake: already awake; activity bumped");
                    return Ok(WakeReport {
                        id,
                        result: WakeResult::AlreadyAwake,
                        replicas: None,
                    });
                }
                continue;
            }
            if row.sleep_state == SleepState::Sleeping
                && row.sleep_state_changed_at > now - STALE_INTENT_AFTER
            {
                // A tick is between its intent and its confirm. Its scale-down carries a
                // resourceVersion that a wake's scale-up does not change when the count is
                // still up (a no-op write), so finishing the wake now could report success
                // and then see the app put to 0, with the row already `awake` (and, should
                // that tick die there, left so). Let the transition finish; a retry then
                // finds the row `asleep` (or `awake`). A stale intent is a dead transition:
                // waking it is safe.
                info!(deployment_id = %id, "wake: a sleep is in progress; retry");
                return Err(Error::Conflict(format!(
                    "deployment {id} is being put to sleep right now; retry the wake"
                )));
            }
            let target = Target::parse(&row.provider_id).map_err(|e| {
                Error::Invalid(format!(
                    "deployment {id} has provider_id {:?}: {e}",
                    row.provider_id
                ))
            })?;
            let replicas = row
                .replicas_before_sleep
                .filter(|r| *r > 0)
                .unwrap_or(self.config.default_wake_replicas);
            let scaler = self.scalers.scaler().await?;
            if let Err(e) = scaler.set_replicas(&target, replicas, None).await {
                log_scale_error(
                    id,
                    &target,
                    &e,
                    "wake could not scale the app up; row left asleep",
                );
                return Err(e);
            }
            let finished = if row.sleep_state == SleepState::Sleeping {
                // A stale intent (a fresh one was declined above). `finish_wake` compares the
                // state only, and recovery may have settled this intent and a tick claimed the
                // row anew meanwhile: a wake landing on that live intent would report success
                // just before its scale-down. So settle this very intent, then bump activity
                // as a wake does; if a tick claimed the row in between, look again.
                self.store
                    .settle_intent(id, row.sleep_state_changed_at, SleepState::Awake, now)
                    .await?
                    && self.store.touch_awake(id, now).await?
            } else {
                self.store.finish_wake(id, row.sleep_state, now).await?
            };
            if finished {
                info!(deployment_id = %id, target = %target, replicas, outcome = "woke_up", "app woken");
                return Ok(WakeReport {
                    id,
                    result: WakeResult::WokeUp,
                    replicas: Some(replicas),
                });
            }
            // The state moved (a tick confirmed, or another wake finished): look again.
        }
        Err(Error::Conflict(format!(
            "deployment {id} kept changing during wake"
        )))
    }
}
