//! The adaptive policy's part of a tick (`policy = adaptive`): settle the keeps (a request
//! came: learn its gap, a pre-warm was used; the time ran out: a pre-warm was wasted), run
//! the pre-warms that are due, and learn from wakes by request. Every failure here is a WARN:
//! the policy only ever adds keeps and pre-warms to the fixed window's protocol, so without it
//! the tick goes on as under `fixed`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::Job;
use crate::rhythm::{Rhythm, Settings};
use crate::{Kept, RhythmStore, ServedClusters, Target, Traffic, WakeReason, metrics};

/// Most keeps one tick looks at: the rest wait for the next tick (a keep only holds an app up
/// a little longer meanwhile).
const KEEPS_PER_TICK: u32 = 1_000;

/// The adaptive policy's settings and store.
#[derive(Clone)]
pub(crate) struct Adaptive {
    pub settings: Settings,
    pub store: Arc<dyn RhythmStore>,
}

impl std::fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adaptive")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Adaptive {
    /// Learns a request at `at` after the app's activity `prev`, and saves whether the app
    /// now sleeps at the floor.
    pub async fn learn(&self, id: Uuid, prev: DateTime<Utc>, at: DateTime<Utc>) {
        let learned = async {
            let mut rhythm = self
                .store
                .rhythms(&[id])
                .await?
                .remove(&id)
                .unwrap_or_default();
            if rhythm.observe(prev, at, &self.settings) {
                let early = rhythm.sleeps_early(&self.settings);
                self.store.save_rhythm(id, &rhythm, early).await?;
                debug!(deployment_id = %id, gaps = rhythm.gaps.len(), sleeps_early = early,
                    "rhythm learned a request");
            }
            Ok::<(), crate::Error>(())
        };
        if let Err(e) = learned.await {
            warn!(deployment_id = %id, error = %crate::error_chain(&e),
                "could not record the request in the app's rhythm; it keeps what it knew");
        }
    }

    /// Keeps `c` up until `until`, when its next request is expected (a request ends the keep
    /// at once); counted once per keep.
    pub async fn keep(&self, c: &crate::Candidate, target: &Target, until: DateTime<Utc>) {
        match self.store.keep(c.id, c.last_activity_at, until).await {
            Ok(true) => {
                metrics::keep_decided();
                info!(deployment_id = %c.id, target = %target, keep_until = %until,
                    outcome = "predicted_use", "kept up: its next request is expected soon");
            }
            Ok(false) => debug!(deployment_id = %c.id, "row changed since selection; no keep"),
            Err(e) => warn!(deployment_id = %c.id, error = %crate::error_chain(&e),
                "recording the keep failed; the app stays up this tick"),
        }
    }

    /// After a sleep confirmed at `state_at`: when to pre-warm the app, from its rhythm
    /// (`rhythm`, as the tick read it) and its activity before the sleep.
    pub async fn plan_prewarm(
        &self,
        id: Uuid,
        target: &Target,
        rhythm: Option<&Rhythm>,
        last_activity: DateTime<Utc>,
        state_at: DateTime<Utc>,
    ) {
        let Some(prewarm) =
            rhythm.and_then(|r| r.next_prewarm(last_activity, state_at, &self.settings))
        else {
            return;
        };
        match self.store.set_prewarm(id, state_at, Some(prewarm.at)).await {
            Ok(true) => info!(deployment_id = %id, target = %target, prewarm_at = %prewarm.at,
                "slept; pre-warm planned before its next expected request"),
            Ok(false) => debug!(deployment_id = %id, "row changed since the sleep; no pre-warm"),
            Err(e) => warn!(deployment_id = %id, error = %crate::error_chain(&e),
                "could not plan the pre-warm; the app wakes on its first request"),
        }
    }
}

/// After `c`'s sleep, confirmed at `state_at`: its pre-warm, under the adaptive policy.
pub(super) async fn after_sleep(
    job: &Job,
    selection: &super::select::Selection,
    c: &crate::Candidate,
    target: &Target,
    state_at: DateTime<Utc>,
) {
    if let Some(adaptive) = &job.adaptive {
        let rhythm = selection.rhythms.get(&c.id);
        adaptive
            .plan_prewarm(c.id, target, rhythm, c.last_activity_at, state_at)
            .await;
    }
}

impl Job {
    /// The adaptive policy's steps of a tick, before the candidates are selected.
    pub(super) async fn adaptive_pass(&self, served: &ServedClusters, now: DateTime<Utc>) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        self.settle_keeps(adaptive, served, now).await;
        self.prewarm_due(adaptive, served, now).await;
    }

    /// Settles the keeps a request ended or whose time ran out. Traffic reaches an awake row
    /// only through the activity source, so the kept apps are asked about first.
    async fn settle_keeps(&self, adaptive: &Adaptive, served: &ServedClusters, now: DateTime<Utc>) {
        let keeps = match adaptive.store.keeps(served, KEEPS_PER_TICK).await {
            Ok(k) => k,
            Err(e) => {
                warn!(error = %crate::error_chain(&e), "could not list the kept apps; settled next tick");
                return;
            }
        };
        if keeps.is_empty() {
            return;
        }
        let seen = self.kept_traffic(&keeps, now).await;
        for k in keeps {
            let activity = seen
                .get(&k.id)
                .copied()
                .map_or(k.last_activity_at, |t| t.max(k.last_activity_at));
            let result = if activity > k.keep_activity_at {
                adaptive.learn(k.id, k.keep_activity_at, activity).await;
                "used"
            } else if k.keep_until <= now {
                "wasted"
            } else {
                continue;
            };
            match adaptive.store.end_keep(k.id, k.keep_activity_at).await {
                Ok(true) => {
                    if k.prewarmed_at.is_some() {
                        metrics::prewarm(result);
                        info!(deployment_id = %k.id, result, "pre-warm settled");
                    }
                }
                Ok(false) => {}
                Err(e) => warn!(deployment_id = %k.id, error = %crate::error_chain(&e),
                    "could not settle the keep; settled next tick"),
            }
        }
    }

    /// The latest traffic the activity source saw for kept apps whose activity has not moved
    /// yet, recorded in their rows like a candidate's.
    async fn kept_traffic(
        &self,
        keeps: &[Kept],
        now: DateTime<Utc>,
    ) -> HashMap<Uuid, DateTime<Utc>> {
        let Some(source) = &self.activity else {
            return HashMap::new();
        };
        let waiting: Vec<(Uuid, Target, DateTime<Utc>)> = keeps
            .iter()
            .filter(|k| k.last_activity_at <= k.keep_activity_at)
            .filter_map(|k| {
                let t = Target::parse(&k.provider_id).ok()?;
                Some((k.id, t, k.keep_activity_at))
            })
            .collect();
        if waiting.is_empty() {
            return HashMap::new();
        }
        let targets: Vec<Target> = waiting.iter().map(|(_, t, _)| t.clone()).collect();
        let answer = match source
            .traffic(&targets, self.config.idle_window(), now)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %crate::error_chain(&e), kept = targets.len(),
                    "activity source failed for the kept apps; their keeps run on");
                metrics::activity_source_error();
                return HashMap::new();
            }
        };
        let mut seen = HashMap::new();
        for (id, target, since) in waiting {
            if let Some(Traffic::LastSeen(at)) = answer.get(&target) {
                let at = (*at).min(now);
                if at > since {
                    if let Err(e) = self.store.record_traffic(id, at).await {
                        warn!(deployment_id = %id, error = %crate::error_chain(&e),
                            "recording a kept app's traffic failed");
                    }
                    seen.insert(id, at);
                }
            }
        }
        seen
    }

    /// Wakes the apps whose pre-warm time has come.
    async fn prewarm_due(&self, adaptive: &Adaptive, served: &ServedClusters, now: DateTime<Utc>) {
        let due = match adaptive
            .store
            .prewarms_due(served, now, self.config.max_per_tick)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %crate::error_chain(&e), "could not list the pre-warms due; tried next tick");
                return;
            }
        };
        let wakes: Vec<_> = due
            .iter()
            .map(|row| self.wake_for(row.id, WakeReason::Prewarm))
            .collect();
        let ended: Vec<_> = futures::stream::iter(wakes)
            .buffered(self.config.concurrency)
            .collect()
            .await;
        for (row, result) in due.iter().zip(ended) {
            if let Err(e) = result {
                // Not tried again: a pre-warm is a guess, and the first request still wakes it.
                warn!(deployment_id = %row.id, error = %crate::error_chain(&e),
                    "pre-warm failed; the app wakes on its first request");
                let _ = adaptive
                    .store
                    .set_prewarm(row.id, row.sleep_state_changed_at, None)
                    .await;
            }
        }
    }
}
