//! Restores owed after a lost race: a wake won while this tick was scaling the app to 0, and
//! the tick could not bring the app back. Its row says `awake`, so neither drift (asleep
//! rows) nor recovery (stale intents) looks at it, and a wake answers "already awake": only
//! the job remembers it, and retries at the start of every tick until the app is back.
//! Held in memory: lost with the process, as is the rare crash between the two failures.

use std::collections::HashMap;
use std::sync::Mutex;

use tracing::{error, info, warn};

use crate::job::clusters::TickScalers;
use crate::job::{Job, log_scale_error};
use crate::{Error, Scaler, SleepState, Target};

/// What a lost race left owing: the app and the count it had before this job scaled it down.
#[derive(Debug, Default)]
pub(crate) struct OwedRestores(Mutex<HashMap<uuid::Uuid, (Target, i32)>>);

impl OwedRestores {
    pub(super) fn owe(&self, id: uuid::Uuid, target: &Target, replicas: i32) {
        self.lock().insert(id, (target.clone(), replicas));
    }

    fn settle(&self, id: uuid::Uuid) {
        self.lock().remove(&id);
    }

    fn all(&self) -> Vec<(uuid::Uuid, Target, i32)> {
        self.lock()
            .iter()
            .map(|(id, (t, r))| (*id, t.clone(), *r))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, (Target, i32)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Job {
    /// Retries every owed restore whose cluster has a client this tick. Settled when the app
    /// runs again or no longer needs it: its row left `awake` (slept again, so 0 is right) or
    /// is gone; kept while the app or its row cannot be read.
    pub(in crate::job) async fn pay_owed_restores(&self, scalers: &TickScalers) {
        for (id, target, replicas) in self.owed_restores.all() {
            let Some(scaler) = scalers.of(&target) else {
                continue;
            };
            if scalers.is_unreachable(target.cluster.as_ref()) {
                continue;
            }
            match self.store.get(id).await {
                Ok(Some(row)) if row.sleep_state == SleepState::Awake => {
                    if restore(scaler, id, &target, replicas).await {
                        info!(deployment_id = %id, target = %target, replicas,
                            "restored the app a lost race had left at 0");
                        self.owed_restores.settle(id);
                    } else {
                        error!(deployment_id = %id, target = %target, replicas,
                            "the app may still be at 0 under an awake row; trying again next tick");
                    }
                }
                Ok(_) => self.owed_restores.settle(id),
                Err(e) => error!(deployment_id = %id, error = %crate::error_chain(&e),
                    "reading the row of an app owed a restore failed; trying again next tick"),
            }
        }
    }
}

/// How often a restore reads and writes again after a conflict before it leaves the app to
/// the next tick's attempt.
const RESTORE_ATTEMPTS: usize = 3;

/// Brings back an app this job scaled down: reads first and writes only at 0, with the
/// version read as precondition, so it never overrides whoever started it meanwhile.
/// A conflict means only that the Deployment changed (a redeploy changes its version and
/// keeps it at 0): it is read again, and written again while still at 0.
/// False when the app may still be at 0 (an error), so the caller keeps what it owes.
pub(crate) async fn restore(
    scaler: &dyn Scaler,
    id: uuid::Uuid,
    target: &Target,
    replicas: i32,
) -> bool {
    for _ in 0..RESTORE_ATTEMPTS {
        match scaler.get_scale(target).await {
            Ok(s) if s.replicas == 0 => match scaler
                .set_replicas(target, replicas, Some(&s.resource_version))
                .await
            {
                Ok(()) => return true,
                Err(Error::Conflict { .. }) => {}
                Err(e) => {
                    log_scale_error(id, target, &e, "restoring the app failed");
                    return false;
                }
            },
            Ok(_) | Err(Error::NotFound { .. }) => return true,
            Err(e) => {
                log_scale_error(id, target, &e, "reading the app to restore it failed");
                return false;
            }
        }
    }
    warn!(deployment_id = %id, target = %target, attempts = RESTORE_ATTEMPTS,
        "restoring the app kept meeting changes to its Deployment; trying again next tick");
    false
}

#[cfg(test)]
mod tests;
