//! The tick (put idle apps to sleep) and wake protocols, written against the ports only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::config::{ActivitySourceKind, UnknownActivity};
use crate::metrics;
use crate::report::Planned;
use crate::{
    ActivitySource, Candidate, Clock, Config, ConfirmOutcome, Error, Outcome, Result, Scaler,
    ScalerSource, SkipReason, SleepState, StaleIntent, Store, Target, TargetError, TickReport,
    Traffic, WakeReport, WakeResult,
};

/// A `sleeping` intent older than this is a crash leftover. Far longer than one transition
/// (three Kubernetes requests, each bounded by the request timeout), so a live transition
/// of another instance is never mistaken for one.
pub const STALE_INTENT_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// How often a wake retries when its compare-and-set loses to a concurrent transition.
const WAKE_ATTEMPTS: usize = 3;

/// The idle-scaler job: owns its ports, runs ticks and wakes.
pub struct Job {
    config: Config,
    store: Arc<dyn Store>,
    scalers: Arc<dyn ScalerSource>,
    clock: Arc<dyn Clock>,
    activity: Option<Arc<dyn ActivitySource>>,
    last_success: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Stops a tick after too many scale failures in a row.
#[derive(Default)]
struct BlastRadius {
    consecutive_failures: AtomicU32,
    stop: AtomicBool,
}

/// The activity source's answer for one tick's candidates.
enum TrafficAnswer {
    /// No source configured: idleness is the activity stamp alone (the behaviour without one).
    NotConsulted,
    /// The source answered; a target it did not mention has no data.
    Answered(HashMap<Target, Traffic>),
    /// The source failed: every candidate's traffic is unknown.
    Failed,
}

/// What the traffic check decided for one candidate, before any Kubernetes call.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Go on with the sleep protocol.
    Proceed,
    /// Traffic inside the idle window, last seen at this time: record it and keep the app up.
    RecentTraffic(DateTime<Utc>),
    /// Traffic unknown and the policy keeps such apps up.
    KeepUnknown,
}

/// How one candidate ended.
enum Done {
    Slept(Planned),
    Skipped(SkipReason),
    Failed,
}

impl Job {
    /// A job over the given ports.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        scalers: Arc<dyn ScalerSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config,
            store,
            scalers,
            clock,
            activity: None,
            last_success: Mutex::new(None),
        }
    }

    /// Consults `source` before sleeping: an app with traffic inside the idle window stays up
    /// (and the traffic is recorded in its row), one whose traffic is unknown is handled by
    /// `activity_unknown`. Without a source the tick judges by `last_activity_at` alone.
    #[must_use]
    pub fn with_activity_source(mut self, source: Arc<dyn ActivitySource>) -> Self {
        self.activity = Some(source);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// When the last tick completed without error (a disabled tick counts: it did its job).
    /// Monotonic, and read without the clock port so a disabled tick makes no call at all.
    pub fn last_success(&self) -> Option<Instant> {
        *self
            .last_success
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark_success(&self) {
        *self
            .last_success
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// Runs ticks every `interval` until `shutdown` is cancelled. A failed tick is logged and
    /// the loop goes on; on shutdown no new transition starts and in-flight ones finish.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.interval());
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            if let Err(e) = self.tick_until(&shutdown).await {
                error!(error = %e, "tick failed; the next tick will retry");
            }
        }
        info!("idle-scaler job stopped");
    }

    /// One tick (DESIGN.md section 3).
    pub async fn tick(&self) -> Result<TickReport> {
        self.tick_until(&CancellationToken::new()).await
    }

    /// One tick that starts no new transition once `shutdown` is cancelled.
    pub async fn tick_until(&self, shutdown: &CancellationToken) -> Result<TickReport> {
        let started = Instant::now();
        if !self.config.enabled {
            debug!("scale-to-zero disabled (DEPLOY_SCALE_TO_ZERO_ENABLED is off); tick skipped");
            self.mark_success();
            return Ok(TickReport {
                disabled: true,
                ..TickReport::default()
            });
        }
        if self.config.dry_run {
            let report = self.plan().await?;
            self.mark_success();
            return Ok(report);
        }
        let scaler = match self.scalers.scaler().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no Kubernetes client; tick skipped (fail-open), retrying next tick");
                metrics::tick("no_scaler", started.elapsed(), self.clock.now());
                return Ok(TickReport {
                    no_scaler: true,
                    ..TickReport::default()
                });
            }
        };
        let mut report = TickReport::default();
        let result = self
            .sleep_pass(scaler.as_ref(), shutdown, &mut report)
            .await;
        report.duration = started.elapsed();
        let finished = self.clock.now();
        match &result {
            Ok(()) => {
                metrics::tick("ok", report.duration, finished);
                self.mark_success();
                let slept = report.outcome(Outcome::ScaledDown);
                let failed = report.outcome(Outcome::ScaleFailed);
                if slept + failed > 0 || !report.recovered.is_empty() || report.stopped_early {
                    info!(
                        candidates = report.candidates,
                        scaled_down = slept,
                        scale_failed = failed,
                        skipped = report.skips.values().sum::<u64>(),
                        stopped_early = report.stopped_early,
                        took_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
                        "tick done"
                    );
                } else {
                    debug!(
                        candidates = report.candidates,
                        "tick done; nothing to sleep"
                    );
                }
            }
            Err(e) => {
                metrics::tick("error", report.duration, finished);
                warn!(error = %e, "tick aborted");
            }
        }
        result.map(|()| report)
    }

    /// A dry run: selects and derives targets as a tick would, writes nothing, calls no
    /// Kubernetes API, and reports what a tick would try to sleep. Ignores the flag.
    pub async fn plan(&self) -> Result<TickReport> {
        let started = Instant::now();
        let now = self.clock.now();
        let idle_before = now - self.config.idle_window();
        let candidates = self
            .store
            .select_candidates(now, idle_before, self.config.max_per_tick)
            .await?;
        let mut report = TickReport {
            dry_run: true,
            candidates: candidates.len(),
            ..TickReport::default()
        };
        // The source is a read, so a dry run asks it too and reports the same skips a tick
        // would, without recording the traffic.
        let answer = self.ask_traffic(&candidates, now).await;
        let verdicts = self.verdicts(&candidates, &answer, idle_before, now);
        for (c, verdict) in candidates.iter().zip(verdicts) {
            let planned = self.target_of(c).and_then(|target| match verdict {
                Verdict::Proceed => Ok(target),
                Verdict::RecentTraffic(_) => Err(SkipReason::RecentTraffic),
                Verdict::KeepUnknown => Err(SkipReason::ActivityUnknown),
            });
            match planned {
                Ok(target) => report.slept.push(Planned {
                    id: c.id,
                    target: target.to_string(),
                    replicas: None,
                }),
                Err(reason) => *report.skips.entry(reason).or_default() += 1,
            }
        }
        report.duration = started.elapsed();
        info!(
            candidates = report.candidates,
            would_sleep = report.slept.len(),
            "dry run"
        );
        Ok(report)
    }

    async fn sleep_pass(
        &self,
        scaler: &dyn Scaler,
        shutdown: &CancellationToken,
        report: &mut TickReport,
    ) -> Result<()> {
        let now = self.clock.now();
        self.recover(scaler, now, report).await?;

        let idle_before = now - self.config.idle_window();
        let candidates = self
            .store
            .select_candidates(now, idle_before, self.config.max_per_tick)
            .await?;
        report.candidates = candidates.len();

        // One batched question for all candidates, before any of them is read or claimed.
        let answer = if shutdown.is_cancelled() {
            TrafficAnswer::NotConsulted // nothing will be attempted anyway
        } else {
            self.ask_traffic(&candidates, now).await
        };
        let verdicts = self.verdicts(&candidates, &answer, idle_before, now);

        let guard = BlastRadius::default();
        // Collected first: a `Map` closure inside the stream makes the tick future not `Send`
        // (rustc's higher-ranked lifetime limitation), and hosts `tokio::spawn` it.
        let attempts: Vec<_> = candidates
            .iter()
            .zip(verdicts)
            .map(|(c, v)| self.attempt(scaler, c, v, idle_before, now, shutdown, &guard))
            .collect();
        let done: Vec<Done> = futures::stream::iter(attempts)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;

        report.stopped_early = guard.stop.load(Ordering::SeqCst);
        for d in done {
            match d {
                Done::Slept(p) => {
                    metrics::outcome(Outcome::ScaledDown);
                    *report.outcomes.entry(Outcome::ScaledDown).or_default() += 1;
                    report.slept.push(p);
                }
                Done::Failed => {
                    metrics::outcome(Outcome::ScaleFailed);
                    *report.outcomes.entry(Outcome::ScaleFailed).or_default() += 1;
                }
                Done::Skipped(reason) => {
                    metrics::skipped(reason);
                    *report.skips.entry(reason).or_default() += 1;
                }
            }
        }

        report.idle_apps = self.sample_idle_apps().await;
        Ok(())
    }

    /// Step 6: sets the idle-apps gauge. A failure is a WARN, never a failed tick or wake.
    async fn sample_idle_apps(&self) -> Option<i64> {
        match self.store.count_asleep().await {
            Ok(n) => {
                metrics::idle_apps(n);
                Some(n)
            }
            Err(e) => {
                warn!(error = %e, "could not sample the idle-apps gauge");
                None
            }
        }
    }

    /// Asks the activity source about the candidates' targets (once per tick). A failure is
    /// a WARN and a metric, never a failed tick.
    async fn ask_traffic(&self, candidates: &[Candidate], now: DateTime<Utc>) -> TrafficAnswer {
        let Some(source) = &self.activity else {
            if self.config.activity_source == ActivitySourceKind::None || candidates.is_empty() {
                return TrafficAnswer::NotConsulted;
            }
            // A host that configured a source but did not attach one must not silently get
            // stamp-only idleness: that would sleep busy apps.
            warn!(activity_source = ?self.config.activity_source, candidates = candidates.len(),
                "an activity source is configured but none is attached to the job; traffic unknown");
            metrics::activity_source_error();
            return TrafficAnswer::Failed;
        };
        let mut targets: Vec<Target> = candidates
            .iter()
            .filter_map(|c| self.sleepable_target(c))
            .collect();
        targets.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        targets.dedup();
        if targets.is_empty() {
            return TrafficAnswer::Answered(HashMap::new());
        }
        match source
            .traffic(&targets, self.config.idle_window(), now)
            .await
        {
            Ok(seen) => TrafficAnswer::Answered(seen),
            Err(e) => {
                warn!(error = %e, targets = targets.len(), policy = ?self.config.activity_unknown,
                    "activity source failed; traffic of this tick's candidates is unknown");
                metrics::activity_source_error();
                TrafficAnswer::Failed
            }
        }
    }

    /// The verdict per candidate (same order). Counts and WARNs unknown traffic once per tick.
    fn verdicts(
        &self,
        candidates: &[Candidate],
        answer: &TrafficAnswer,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<Verdict> {
        let seen = match answer {
            TrafficAnswer::NotConsulted => return vec![Verdict::Proceed; candidates.len()],
            TrafficAnswer::Answered(seen) => Some(seen),
            TrafficAnswer::Failed => None,
        };
        let unknown = match self.config.activity_unknown {
            UnknownActivity::KeepAwake => Verdict::KeepUnknown,
            UnknownActivity::Sleep => Verdict::Proceed,
        };
        let mut no_data: Vec<String> = Vec::new();
        let mut source_error = 0_u64;
        let verdicts = candidates
            .iter()
            .map(|c| {
                // Invalid and protected targets are skipped by `target_of` later.
                let Some(target) = self.sleepable_target(c) else {
                    return Verdict::Proceed;
                };
                let Some(seen) = seen else {
                    source_error += 1;
                    return unknown;
                };
                match seen.get(&target) {
                    // A source clock ahead of ours must not stamp the row in the future.
                    Some(Traffic::LastSeen(at)) if *at > idle_before => {
                        Verdict::RecentTraffic((*at).min(now))
                    }
                    // Traffic before the window does not make the app less idle.
                    Some(Traffic::LastSeen(_) | Traffic::Quiet) => Verdict::Proceed,
                    None => {
                        debug!(deployment_id = %c.id, target = %target, "activity source has no data");
                        no_data.push(target.to_string());
                        unknown
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

    /// The candidate's target when it is ours and not protected, without logging: the
    /// logging `target_of` runs once per candidate later.
    fn sleepable_target(&self, c: &Candidate) -> Option<Target> {
        Target::parse(&c.provider_id)
            .ok()
            .filter(|t| !self.config.is_protected(&t.namespace))
    }

    #[allow(clippy::too_many_arguments)] // the tick's shared state, passed down rather than stored
    async fn attempt(
        &self,
        scaler: &dyn Scaler,
        c: &Candidate,
        verdict: Verdict,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
        guard: &BlastRadius,
    ) -> Done {
        if shutdown.is_cancelled() {
            return Done::Skipped(SkipReason::ShuttingDown);
        }
        if guard.stop.load(Ordering::SeqCst) {
            return Done::Skipped(SkipReason::BlastRadius);
        }
        let done = self.sleep_one(scaler, c, verdict, idle_before, now).await;
        match done {
            Done::Failed => {
                let n = guard.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= self.config.max_consecutive_failures
                    && !guard.stop.swap(true, Ordering::SeqCst)
                {
                    error!(
                        failures = n,
                        "too many scale failures in a row; stopping this tick early"
                    );
                }
            }
            Done::Slept(_) => guard.consecutive_failures.store(0, Ordering::SeqCst),
            Done::Skipped(_) => {}
        }
        done
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
        if self.config.is_protected(&target.namespace) {
            debug!(deployment_id = %c.id, namespace = %target.namespace, "protected namespace; skipped");
            return Err(SkipReason::ProtectedNamespace);
        }
        Ok(target)
    }

    async fn sleep_one(
        &self,
        scaler: &dyn Scaler,
        c: &Candidate,
        verdict: Verdict,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Done {
        let target = match self.target_of(c) {
            Ok(t) => t,
            Err(reason) => return Done::Skipped(reason),
        };
        let id = c.id;
        match verdict {
            Verdict::Proceed => {}
            Verdict::RecentTraffic(at) => {
                // Recorded so the row, `status` and the next plan agree on why it stayed up,
                // and so it is not selected again before it has been idle a whole window.
                if let Err(e) = self.store.record_traffic(id, at).await {
                    warn!(deployment_id = %id, target = %target, error = %e,
                        "recording the traffic failed; the app stays up and is checked again next tick");
                }
                debug!(deployment_id = %id, target = %target, last_traffic_at = %at,
                    outcome = "recent_traffic", "serving traffic; kept awake");
                return Done::Skipped(SkipReason::RecentTraffic);
            }
            Verdict::KeepUnknown => {
                debug!(deployment_id = %id, target = %target, outcome = "activity_unknown",
                    "traffic unknown; kept awake (DEPLOY_SCALE_TO_ZERO_ACTIVITY_UNKNOWN=keep_awake)");
                return Done::Skipped(SkipReason::ActivityUnknown);
            }
        }
        let scale = match scaler.get_scale(&target).await {
            Ok(s) => s,
            Err(Error::NotFound(_)) => {
                info!(deployment_id = %id, target = %target, outcome = "not_found",
                    "Deployment is gone; skipped");
                return Done::Skipped(SkipReason::NotFound);
            }
            Err(e) => {
                log_scale_error(id, &target, &e, "reading the scale failed");
                return Done::Failed;
            }
        };
        let restore = (scale.replicas > 0).then_some(scale.replicas);

        // CAS 1: the database re-checks the whole predicate at the moment of the write.
        match self
            .store
            .claim_sleep(id, c.last_activity_at, idle_before, restore, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                debug!(deployment_id = %id, outcome = "raced", "row changed since selection; skipped");
                return Done::Skipped(SkipReason::Raced);
            }
            Err(e) => {
                warn!(deployment_id = %id, error = %e, "recording the sleep intent failed");
                return Done::Failed;
            }
        }

        // CAS 2: Kubernetes refuses the write if the Deployment changed since it was read.
        if restore.is_some()
            && let Err(e) = scaler
                .set_replicas(&target, 0, Some(scale.resource_version.clone()))
                .await
        {
            match e {
                Error::Conflict(_) => {
                    self.revert(id, now).await;
                    info!(deployment_id = %id, target = %target, outcome = "raced",
                        "Deployment changed since read; sleep abandoned");
                    return Done::Skipped(SkipReason::Raced);
                }
                Error::NotFound(_) => {
                    self.revert(id, now).await;
                    info!(deployment_id = %id, target = %target, outcome = "not_found",
                        "Deployment is gone; skipped");
                    return Done::Skipped(SkipReason::NotFound);
                }
                e => {
                    if let Some(done) = self
                        .after_failed_scale_down(
                            scaler,
                            &target,
                            id,
                            now,
                            &scale.resource_version,
                            &e,
                        )
                        .await
                    {
                        return done;
                    }
                    // It took effect: go on and confirm, as if it had answered.
                }
            }
        }

        match self.store.confirm_sleep(id, c.last_activity_at, now).await {
            Ok(ConfirmOutcome::Confirmed) => {
                info!(deployment_id = %id, target = %target, replicas_before = scale.replicas,
                    outcome = "scaled_down", "app put to sleep");
                Done::Slept(Planned {
                    id,
                    target: target.to_string(),
                    replicas: Some(scale.replicas),
                })
            }
            Ok(ConfirmOutcome::NotSleeping) => {
                // A wake won. Its scale-up can precede our scale-down when it wrote the same
                // count (no new resourceVersion), so make sure the app is not left at 0.
                if let Some(r) = restore
                    && matches!(self.store.get(id).await, Ok(Some(row)) if row.sleep_state == SleepState::Awake)
                {
                    self.ensure_running(scaler, &target, id, r).await;
                }
                info!(deployment_id = %id, outcome = "raced", "a wake won the race; left awake");
                Done::Skipped(SkipReason::Raced)
            }
            Ok(ConfirmOutcome::ActivityArrived) => {
                let r = restore.unwrap_or(self.config.default_wake_replicas);
                info!(deployment_id = %id, target = %target, replicas = r, outcome = "raced",
                    "activity arrived during the sleep; restoring");
                if let Err(e) = scaler.set_replicas(&target, r, None).await {
                    // The row stays `sleeping`: recovery restores it once the intent is stale.
                    log_scale_error(id, &target, &e, "restoring after a lost confirm failed");
                    return Done::Failed;
                }
                self.revert(id, now).await;
                Done::Skipped(SkipReason::Raced)
            }
            Err(e) => {
                // The row stays `sleeping`; recovery settles it from what Kubernetes holds.
                warn!(deployment_id = %id, error = %e, "confirming the sleep failed; recovery will settle it");
                Done::Failed
            }
        }
    }

    /// A scale-down that failed with anything but 409/404 (a timeout, a dropped connection,
    /// a 5xx) may have been applied, or may still be: a request the client gave up on can
    /// land later. Reverting blindly would leave the app at 0 under an `awake` row, which
    /// nothing repairs. So read it back: at 0, the sleep happened (`None`: confirm it); moved
    /// to another version, our precondition can never match again, so revert; gone, revert
    /// (`not_found`); same version still above 0, or unreadable, the write may yet land:
    /// leave the intent to recovery, which settles it from what Kubernetes holds once the
    /// intent is stale (long after any request could still be in flight).
    async fn after_failed_scale_down(
        &self,
        scaler: &dyn Scaler,
        target: &Target,
        id: Uuid,
        now: DateTime<Utc>,
        precondition: &str,
        e: &Error,
    ) -> Option<Done> {
        match scaler.get_scale(target).await {
            Ok(s) if s.replicas == 0 => {
                warn!(deployment_id = %id, target = %target, error = %e,
                    "scaling to 0 reported an error but took effect; confirming the sleep");
                None
            }
            Ok(s) if s.resource_version != precondition => {
                self.revert(id, now).await;
                log_scale_error(id, target, e, "scaling to 0 failed; row reverted");
                Some(Done::Failed)
            }
            Ok(_) => {
                log_scale_error(
                    id,
                    target,
                    e,
                    "scaling to 0 failed and may still be applied; the intent stays for recovery",
                );
                Some(Done::Failed)
            }
            Err(Error::NotFound(_)) => {
                self.revert(id, now).await;
                info!(deployment_id = %id, target = %target, outcome = "not_found",
                    "Deployment is gone; skipped");
                Some(Done::Skipped(SkipReason::NotFound))
            }
            Err(read) => {
                log_scale_error(id, target, e, "scaling to 0 failed");
                log_scale_error(
                    id,
                    target,
                    &read,
                    "and reading the scale back failed; the intent stays for recovery",
                );
                Some(Done::Failed)
            }
        }
    }

    async fn ensure_running(&self, scaler: &dyn Scaler, target: &Target, id: Uuid, replicas: i32) {
        match scaler.get_scale(target).await {
            Ok(s) if s.replicas == 0 => {
                if let Err(e) = scaler.set_replicas(target, replicas, None).await {
                    log_scale_error(id, target, &e, "restoring a woken app left at 0 failed");
                }
            }
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => log_scale_error(id, target, &e, "checking a woken app failed"),
        }
    }

    async fn revert(&self, id: Uuid, now: DateTime<Utc>) {
        if let Err(e) = self.store.revert_sleep(id, now).await {
            // Left `sleeping`: recovery settles it after STALE_INTENT_AFTER.
            error!(deployment_id = %id, error = %e, "reverting the sleep intent failed");
        }
    }

    /// Step 3a: settles `sleeping` intents abandoned by a crash.
    async fn recover(
        &self,
        scaler: &dyn Scaler,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        let stale = self.store.stale_intents(now - STALE_INTENT_AFTER).await?;
        for intent in &stale {
            let result = self.recover_one(scaler, intent, now).await;
            info!(deployment_id = %intent.id, result, "stale sleep intent recovered");
            metrics::recovered(result);
            *report.recovered.entry(result).or_default() += 1;
        }
        Ok(())
    }

    async fn recover_one(
        &self,
        scaler: &dyn Scaler,
        intent: &StaleIntent,
        now: DateTime<Utc>,
    ) -> &'static str {
        let id = intent.id;
        // Every write is a compare-and-set on this very intent (its change time): two
        // instances may recover the same leftover, and the row may meanwhile hold a new intent
        // of a live transition, which must not be undone.
        let settle = |to: SleepState, result: &'static str| async move {
            match self
                .store
                .settle_intent(id, intent.sleep_state_changed_at, to, now)
                .await
            {
                Ok(true) => result,
                Ok(false) => "raced",
                Err(e) => {
                    warn!(deployment_id = %id, error = %e, "recovery could not settle the intent");
                    "failed"
                }
            }
        };
        let Ok(target) = Target::parse(&intent.provider_id) else {
            // Only valid targets are ever claimed; a changed provider_id has nothing at 0.
            return settle(SleepState::Awake, "awake").await;
        };
        match scaler.get_scale(&target).await {
            Ok(s) if s.replicas > 0 => settle(SleepState::Awake, "awake").await,
            Ok(s) if intent.activity_after_intent() => {
                let r = intent
                    .replicas_before_sleep
                    .unwrap_or(self.config.default_wake_replicas);
                // Conditional on the version read: if anything touched the Deployment since
                // (a live transition, a person), leave it to the next tick.
                match scaler
                    .set_replicas(&target, r, Some(s.resource_version))
                    .await
                {
                    Ok(()) => settle(SleepState::Awake, "restored").await,
                    Err(Error::Conflict(_)) => "raced",
                    Err(e) => {
                        log_scale_error(id, &target, &e, "recovery could not restore the app");
                        "failed"
                    }
                }
            }
            Ok(_) => settle(SleepState::Asleep, "asleep").await,
            Err(Error::NotFound(_)) => settle(SleepState::Awake, "awake").await,
            Err(e) => {
                log_scale_error(id, &target, &e, "recovery could not read the scale");
                "failed"
            }
        }
    }

    /// Wakes one app (DESIGN.md section 4).
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

fn log_scale_error(id: Uuid, target: &Target, e: &Error, what: &str) {
    match e {
        Error::Forbidden(_) => error!(deployment_id = %id, target = %target, error = %e,
            "{what}: forbidden; check the RBAC for deployments/scale"),
        _ => warn!(deployment_id = %id, target = %target, error = %e, "{what}"),
    }
}

#[cfg(test)]
mod tests;
