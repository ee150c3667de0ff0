//! Step 3a of a tick: settle `sleeping` intents a crash left behind.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::clusters::TickScalers;
use super::{Job, log_scale_error};
use crate::metrics;
use crate::report::Recovery;
use crate::{Error, Result, Scaler, SleepState, StaleIntent, Target, TickReport};

/// A `sleeping` intent older than this is a crash leftover. Far longer than one transition
/// (three Kubernetes requests, each bounded by the request timeout), so a live transition
/// of another instance is never mistaken for one.
pub const STALE_INTENT_AFTER: chrono::Duration = chrono::Duration::minutes(5);

impl crate::Config {
    /// The longest one transition can run once its intent is written: the scale-down, a
    /// read-back, and a read and write to restore, each bounded by the request timeout.
    pub fn transition_bound(&self) -> std::time::Duration {
        self.request_timeout() * 4
    }
}

impl Job {
    /// Settles every stale intent, counting each result.
    pub(super) async fn recover(
        &self,
        scalers: &TickScalers,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        let stale = self
            .store
            .stale_intents(scalers.served(), now - STALE_INTENT_AFTER)
            .await?;
        for intent in &stale {
            // A cluster found unreachable in this tick would time out on every one of its
            // intents in turn, holding up every other cluster's sleeps: the next tick goes on.
            if let Ok(t) = Target::parse(&intent.provider_id)
                && scalers.is_unreachable(t.cluster.as_ref())
            {
                continue;
            }
            let result = self.recover_one(scalers, intent, now).await;
            info!(deployment_id = %intent.id, result = result.as_str(), "stale sleep intent recovered");
            metrics::recovered(result);
            *report.recovered.entry(result).or_default() += 1;
        }
        Ok(())
    }

    /// Reads the Deployment: running -> `awake`; at 0 -> `asleep`, unless activity arrived
    /// after the intent, then the app is restored and the row `awake`.
    async fn recover_one(
        &self,
        scalers: &TickScalers,
        intent: &StaleIntent,
        now: DateTime<Utc>,
    ) -> Recovery {
        let id = intent.id;
        // Every write is a compare-and-set on this very intent (its change time): two
        // instances may recover the same leftover, and the row may meanwhile hold a new intent
        // of a live transition, which must not be undone.
        let settle = |to: SleepState, result: Recovery| async move {
            match self
                .store
                .settle_intent(id, intent.sleep_state_changed_at, to, now)
                .await
            {
                Ok(true) => result,
                Ok(false) => Recovery::Raced,
                Err(e) => {
                    warn!(deployment_id = %id, error = %crate::error_chain(&e), "recovery could not settle the intent");
                    Recovery::Failed
                }
            }
        };
        let Ok(target) = Target::parse(&intent.provider_id) else {
            // Only valid targets are ever claimed; a changed provider_id has nothing at 0.
            return settle(SleepState::Awake, Recovery::Awake).await;
        };
        let scaler: &dyn Scaler = scalers.for_target(&target);
        match scaler.get_scale(&target).await {
            Ok(s) if s.replicas > 0 => settle(SleepState::Awake, Recovery::Awake).await,
            Ok(s) if intent.activity_after_intent() => {
                let r = crate::policy::restore_count(
                    intent.replicas_before_sleep,
                    self.config.default_wake_replicas,
                );
                // Conditional on the version read: if anything touched the Deployment since
                // (a live transition, a person), leave it to the next tick.
                match scaler
                    .set_replicas(&target, r, Some(&s.resource_version))
                    .await
                {
                    Ok(()) => settle(SleepState::Awake, Recovery::Restored).await,
                    // Someone wrote it since the read. If they started it, the row follows
                    // them now rather than a tick later; otherwise the next tick looks again.
                    Err(Error::Conflict { .. }) => match scaler.get_scale(&target).await {
                        Ok(s) if s.replicas > 0 => settle(SleepState::Awake, Recovery::Awake).await,
                        _ => Recovery::Raced,
                    },
                    Err(e) => {
                        log_scale_error(id, &target, &e, "recovery could not restore the app");
                        Recovery::Failed
                    }
                }
            }
            Ok(_) => settle(SleepState::Asleep, Recovery::Asleep).await,
            Err(Error::NotFound { .. }) => settle(SleepState::Awake, Recovery::Awake).await,
            Err(e) => {
                log_scale_error(id, &target, &e, "recovery could not read the scale");
                scalers.note_failure(target.cluster.as_ref(), &e);
                Recovery::Failed
            }
        }
    }
}
