//! The activity question: one batched query per tick, and a verdict per candidate.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::Job;
use crate::config::{ActivitySourceKind, UnknownActivity};
use crate::metrics;
use crate::{Candidate, SkipReason, Target, Traffic};

/// The activity source's answer for one tick's candidates.
pub(super) enum TrafficAnswer {
    /// No source configured: idleness is the activity stamp alone (the behaviour without one).
    NotConsulted,
    /// The source answered; a target it did not mention has no data.
    Answered(HashMap<Target, Traffic>),
    /// The source failed: every candidate's traffic is unknown.
    Failed,
}

/// What the traffic check decided for one candidate, before any Kubernetes call.
#[derive(Debug, Clone, Copy)]
pub(super) enum Verdict {
    /// Go on with the sleep protocol.
    Proceed,
    /// Traffic inside the idle window, last seen at this time: record it and keep the app up.
    RecentTraffic(DateTime<Utc>),
    /// Traffic unknown and the policy keeps such apps up. `lasting`: the source answered
    /// but has no data for the app (it will not next tick either); not lasting: the source
    /// failed, which ends by itself and leaves every candidate up meanwhile.
    KeepUnknown { lasting: bool },
}

/// A candidate's target, or why it is not one of ours to sleep.
type Derived = std::result::Result<Target, SkipReason>;

impl Job {
    /// Asks the activity source about the candidates' targets (once per tick). A failure is
    /// a WARN and a metric, never a failed tick.
    pub(super) async fn ask_traffic(
        &self,
        targets: &[Derived],
        now: DateTime<Utc>,
    ) -> TrafficAnswer {
        let Some(source) = &self.activity else {
            if self.config.activity_source == ActivitySourceKind::None || targets.is_empty() {
                return TrafficAnswer::NotConsulted;
            }
            // A host that configured a source but did not attach one must not silently get
            // stamp-only idleness: that would sleep busy apps.
            warn!(activity_source = ?self.config.activity_source, candidates = targets.len(),
                "an activity source is configured but none is attached to the job; traffic unknown");
            metrics::activity_source_error();
            return TrafficAnswer::Failed;
        };
        let mut asked: Vec<Target> = targets.iter().filter_map(|t| t.clone().ok()).collect();
        asked.sort_by(|a, b| {
            (&a.namespace, &a.name, &a.cluster).cmp(&(&b.namespace, &b.name, &b.cluster))
        });
        asked.dedup();
        if asked.is_empty() {
            return TrafficAnswer::Answered(HashMap::new());
        }
        match source.traffic(&asked, self.config.idle_window(), now).await {
            Ok(seen) => TrafficAnswer::Answered(seen),
            Err(e) => {
                warn!(error = %crate::error_chain(&e), targets = asked.len(), policy = ?self.config.activity_unknown,
                    "activity source failed; traffic of this tick's candidates is unknown");
                metrics::activity_source_error();
                TrafficAnswer::Failed
            }
        }
    }

    /// The verdict per candidate (same order). Counts and WARNs unknown traffic once per tick.
    pub(super) fn verdicts(
        &self,
        candidates: &[Candidate],
        targets: &[Derived],
        answer: &TrafficAnswer,
        cutoffs: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Vec<Verdict> {
        let seen = match answer {
            TrafficAnswer::NotConsulted => return vec![Verdict::Proceed; candidates.len()],
            TrafficAnswer::Answered(seen) => Some(seen),
            TrafficAnswer::Failed => None,
        };
        let unknown = |lasting| match self.config.activity_unknown {
            UnknownActivity::KeepAwake => Verdict::KeepUnknown { lasting },
            UnknownActivity::Sleep => Verdict::Proceed,
        };
        let mut no_data: Vec<String> = Vec::new();
        let mut source_error = 0_u64;
        let verdicts = candidates
            .iter()
            .zip(targets)
            .zip(cutoffs)
            .map(|((c, target), idle_before)| {
                // Not ours to sleep: skipped with its own reason, never asked about.
                let Ok(target) = target else {
                    return Verdict::Proceed;
                };
                let Some(seen) = seen else {
                    source_error += 1;
                    return unknown(false);
                };
                match seen.get(target) {
                    // A source clock ahead of ours must not stamp the row in the future.
                    Some(Traffic::LastSeen(at)) if at > idle_before => {
                        Verdict::RecentTraffic((*at).min(now))
                    }
                    // Traffic before the window does not make the app less idle.
                    Some(Traffic::LastSeen(_) | Traffic::Quiet) => Verdict::Proceed,
                    None => {
                        debug!(deployment_id = %c.id, target = %target, "activity source has no data");
                        no_data.push(target.to_string());
                        unknown(true)
                    }
                }
            })
            .collect();
        if source_error > 0 {
            metrics::activity_unknown("source_error", source_error);
        }
        if !no_data.is_empty() {
            metrics::activity_unknown("no_data", no_data.len() as u64);
            let mut sample = no_data
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            if no_data.len() > 5 {
                sample.push_str(",...");
            }
            warn!(candidates = no_data.len(), targets = %sample, policy = ?self.config.activity_unknown,
                "the activity source has no data for some idle candidates (pin background workers with always_on)");
        }
        verdicts
    }
}
