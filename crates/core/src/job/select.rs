//! The opening a tick and a dry run share: select the candidates, derive each one's target
//! once, ask the activity source once, and decide per candidate before any Kubernetes call.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::Job;
use super::traffic::Verdict;
use crate::report::SleptApp;
use crate::rhythm::Rhythm;
use crate::{Candidate, Result, ServedClusters, SkipReason, Target, TargetError, TickReport};

/// How many backing-off rows a dry run lists.
const PLAN_BACKING_OFF: u32 = 100;

/// What the tick decided for one candidate before any Kubernetes call.
#[derive(Debug, Clone)]
pub(super) enum Decision {
    /// Go on with the sleep protocol on this target.
    Attempt(Target),
    /// Not ours to sleep (foreign, malformed, protected).
    Skip(SkipReason),
    /// Served traffic inside the idle window, last seen at this time: record it, keep it up.
    RecentTraffic(Target, DateTime<Utc>),
    /// Traffic unknown, and the policy keeps such apps up; `true` when that will last (the
    /// source has no data for it), `false` when the source failed this tick.
    KeepUnknown(Target, bool),
    /// The adaptive policy expects a request soon: kept up until this time.
    Keep(Target, DateTime<Utc>),
}

/// One tick's candidates, each with its decision.
#[derive(Debug)]
pub(super) struct Selection {
    /// `now - idle_window`: a candidate's activity is at or before it.
    pub idle_before: DateTime<Utc>,
    /// The candidates, oldest activity first, with what to do about each.
    pub candidates: Vec<(Candidate, Decision)>,
    /// `now - floor` under the adaptive policy: an early candidate's activity is at or
    /// before it.
    pub early_before: Option<DateTime<Utc>>,
    /// The candidates of the early path (their rhythm lets them sleep at the floor).
    pub early: HashSet<Uuid>,
    /// The candidates' rhythms (adaptive policy; a candidate without one has none).
    pub rhythms: HashMap<Uuid, Rhythm>,
}

impl Selection {
    /// The activity a candidate's claim re-checks against: the floor's for an early one.
    pub fn cutoff(&self, id: Uuid) -> DateTime<Utc> {
        match self.early_before {
            Some(early) if self.early.contains(&id) => early,
            _ => self.idle_before,
        }
    }
}

impl Job {
    /// Selects the rows of the `served` clusters at `now` and decides per candidate. The
    /// activity source is asked only when `ask_traffic` (a tick that is shutting down will
    /// attempt nothing anyway).
    pub(super) async fn select(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        ask_traffic: bool,
    ) -> Result<Selection> {
        let idle_before = now - self.config.idle_window();
        let mut candidates = self
            .store
            .select_candidates(served, now, idle_before, self.config.max_per_tick)
            .await?;
        let mut early = HashSet::new();
        let mut rhythms = HashMap::new();
        let early_before = self.adaptive.as_ref().map(|a| now - a.settings.floor);
        if let (Some(adaptive), Some(early_before)) = (&self.adaptive, early_before) {
            let room = self
                .config
                .max_per_tick
                .saturating_sub(u32::try_from(candidates.len()).unwrap_or(u32::MAX));
            if room > 0 {
                // Without the early path a tick is a fixed-window tick: a WARN, not a failure.
                let found = adaptive
                    .store
                    .select_early(served, now, early_before, idle_before, room)
                    .await
                    .unwrap_or_else(|e| {
                        warn!(error = %crate::error_chain(&e),
                            "could not select the apps that sleep at the floor; they wait for the window this tick");
                        Vec::new()
                    });
                early.extend(found.iter().map(|c| c.id));
                candidates.extend(found);
            }
            let ids: Vec<Uuid> = candidates.iter().map(|c| c.id).collect();
            if !ids.is_empty() {
                // Without its rhythms a tick is a fixed-window tick: a WARN, not a failure.
                rhythms = adaptive.store.rhythms(&ids).await.unwrap_or_else(|e| {
                    warn!(error = %crate::error_chain(&e),
                        "could not read the candidates' rhythms; this tick keeps no app up for an expected request and plans no pre-warm");
                    HashMap::new()
                });
            }
        }
        let cutoffs: Vec<DateTime<Utc>> = candidates
            .iter()
            .map(|c| match early_before {
                Some(e) if early.contains(&c.id) => e,
                _ => idle_before,
            })
            .collect();
        let targets: Vec<_> = candidates
            .iter()
            .map(|c| {
                self.target_of(c)
                    .and_then(|t| self.not_fighting_back(c, t, now))
            })
            .collect();
        let verdicts = if ask_traffic {
            let answer = self.ask_traffic(&targets, now).await;
            self.verdicts(&candidates, &targets, &answer, &cutoffs, now)
        } else {
            vec![Verdict::Proceed; candidates.len()]
        };
        let candidates = candidates
            .into_iter()
            .zip(targets)
            .zip(verdicts)
            .map(|((c, target), verdict)| {
                let keep = || {
                    let a = self.adaptive.as_ref()?;
                    if early.contains(&c.id) {
                        return None;
                    }
                    rhythms
                        .get(&c.id)?
                        .keep_until(c.last_activity_at, now, &a.settings)
                };
                let decision = match (target, verdict) {
                    (Err(reason), _) => Decision::Skip(reason),
                    (Ok(t), Verdict::Proceed) => match keep() {
                        Some(until) => Decision::Keep(t, until),
                        None => Decision::Attempt(t),
                    },
                    (Ok(t), Verdict::RecentTraffic(at)) => Decision::RecentTraffic(t, at),
                    (Ok(t), Verdict::KeepUnknown { lasting }) => Decision::KeepUnknown(t, lasting),
                };
                (c, decision)
            })
            .collect();
        Ok(Selection {
            idle_before,
            candidates,
            early_before,
            early,
            rhythms,
        })
    }

    /// A dry run: selects and derives targets as a tick would, writes nothing, calls no
    /// Kubernetes API, and reports what a tick would try to sleep. Ignores the flag.
    pub async fn plan(&self) -> Result<TickReport> {
        let started = tokio::time::Instant::now();
        // The source is a read, so a dry run asks it too and reports the same skips a tick
        // would, without recording the traffic.
        let now = self.clock.now();
        let selection = self.select(&self.served, now, true).await?;
        let mut report = TickReport {
            dry_run: true,
            candidates: selection.candidates.len(),
            backing_off: self.store.backed_off(now, PLAN_BACKING_OFF).await?,
            ..TickReport::default()
        };
        for (c, decision) in selection.candidates {
            let skipped = match decision {
                Decision::Attempt(target) => {
                    report.slept.push(SleptApp {
                        id: c.id,
                        target: target.to_string(),
                        replicas: None,
                    });
                    continue;
                }
                Decision::Skip(reason) => reason,
                Decision::RecentTraffic(..) => SkipReason::RecentTraffic,
                Decision::KeepUnknown(..) => SkipReason::ActivityUnknown,
                Decision::Keep(..) => SkipReason::PredictedUse,
            };
            *report.skips.entry(skipped).or_default() += 1;
        }
        report.duration = started.elapsed();
        info!(
            candidates = report.candidates,
            would_sleep = report.slept.len(),
            "dry run"
        );
        Ok(report)
    }

    /// Someone else scales this app back up every time it is slept (a GitOps controller's
    /// self-heal, an autoscaler): sleeping it again only makes it flap. Until a wake or
    /// new activity (which clear or outdate the count), it is skipped.
    fn not_fighting_back(
        &self,
        c: &Candidate,
        target: Target,
        now: DateTime<Utc>,
    ) -> std::result::Result<Target, SkipReason> {
        let fights = c.flaps >= self.config.flap_limit
            && c.flaps_since
                .is_some_and(|since| since > now - chrono::Duration::hours(24))
            && c.last_activity_at <= c.sleep_state_changed_at;
        if !fights {
            return Ok(target);
        }
        warn!(deployment_id = %c.id, target = %target, scale_ups = c.flaps,
            "slept app scaled back up by someone else again and again; not slept again until \
             a wake or new activity (likely a GitOps self-heal such as Argo CD or Flux, or an \
             autoscaler: ignore /spec/replicas there)");
        Err(SkipReason::FightsBack)
    }

    /// The target of a candidate, or why it is skipped. Logs malformed ids.
    fn target_of(&self, c: &Candidate) -> std::result::Result<Target, SkipReason> {
        let target = match Target::parse(&c.provider_id) {
            Ok(t) => t,
            Err(TargetError::Foreign) => return Err(SkipReason::Foreign),
            Err(TargetError::Malformed(why)) => {
                warn!(deployment_id = %c.id, provider_id = %c.provider_id, reason = why,
                    "malformed provider_id; skipped");
                return Err(SkipReason::Malformed);
            }
        };
        match crate::policy::out_of_reach(&self.config, &self.served, &target) {
            Some(reason) => {
                debug!(deployment_id = %c.id, target = %target, reason = reason.as_str(),
                    "out of reach; skipped");
                Err(reason)
            }
            None => Ok(target),
        }
    }
}
