//! Deterministic simulation of the sleep and wake protocols: the real [`idle_scaler_core::Job`]
//! over the in-memory store ([`crate::memory::MemoryStore`]) and a simulated cluster
//! ([`SimCluster`]), driven one port call at a time by a seeded scheduler.
//!
//! # What a step is
//!
//! Each step does one of: start a tick of job instance A or B (two runners on one database;
//! each instance's job lives across its ticks, like a process, until one of its ticks dies);
//! start a wake of a random app (two wake slots, so wakes race each other too); let one waiting
//! port call of an operation in flight through; crash an operation between two calls (its
//! future is dropped, leaving whatever it half did); a host event (redeploy = activity bump
//! and a new `resourceVersion`, pin/unpin, expiry set in the past or future or cleared, status
//! `healthy`/`failed`, Deployment deleted or recreated, RBAC removed so that the Deployment
//! answers 403 for good); a person or an HPA scaling a Deployment (0..=4 replicas, no
//! precondition; half the time an `asleep` app scaled up); cancelling a wake that has scaled
//! its app up but not yet flipped its row (its future is dropped); or the clock moving (1 s
//! to 10 min). Some worlds start with one Deployment answering 403.
//!
//! Half the worlds (even seeds) run `policy = adaptive`, the job's `RhythmStore` gated like its
//! `Store` (every call can be delayed, fail before or after its effect, or crash). Three apps
//! there have visitors instead of random wakes and redeploys: two pollers (every 25 and 40
//! minutes after their last answer, now and then skipping a run) and a person (every 11 to 16
//! minutes); the host leaves their activity, pins and Deployments alone (outside scalings and
//! a quarter of the expiry and status changes drawn for them still come). A request is a wake
//! by a visitor in a slot of its own, sent when its time comes (a clock move stops there),
//! tried again until answered or a quarter of an hour late, and let through ahead of other
//! operations half the time. Each of the three starts with the rhythm a day of its visitor's
//! requests would have left in the store (a world lasts a few simulated hours, too few
//! requests to learn one from nothing); the world's requests go on teaching it. So the
//! pollers' apps sleep at the floor and are pre-warmed inside ticks, the person's app is kept
//! up for its next request, and a tick can be cut between a pre-warm's scale-up and its row
//! flip.
//!
//! Every granted port call may be given a fault: fail before its effect (500, connection
//! reset), fail after it (the write committed or was applied, the answer was lost: a timeout),
//! time out while the apiserver still holds the request (a Kubernetes write that lands, or is
//! lost, at a later step, its precondition checked then; never after the clock next moves,
//! as the apiserver's own timeout bounds it), or never return (the process died before or
//! after the effect; the operation is dropped).
//! A transition still in flight when the clock would pass 4 minutes after its intent is killed
//! the same way: a real transition is bounded by its request timeouts, far below
//! [`STALE_INTENT_AFTER`](idle_scaler_core::job::STALE_INTENT_AFTER) (5 min), which is what
//! lets recovery treat an older intent as dead. For a tick that is 4 minutes after any claim
//! it still holds (or a claim call it is waiting in: the stamp is read right before); for a
//! wake 4 minutes after its start. A tick as a whole is not bounded: intents are stamped at
//! their write, so ticks run longer than the stale age (`slow_ticks`) and claim after it
//! (`slow_tick_claims`).
//!
//! Everything is a function of the seed: the PRNG is ours, maps are ordered, ids come from the
//! seed, the clock is manual and operations are polled by hand in a fixed order.
//!
//! # The invariants, as checked (docs/architecture.md, Invariants)
//!
//! Every effect of a port call is recorded with the row or Deployment as it was just before
//! (the "log"), and checked in the step it happens:
//!
//! - **2** At every successful claim (`awake -> sleeping`), the row just before the write was
//!   healthy, awake, not pinned, not expired at the tick's `now`, idle before the window, and
//!   its activity stamp equalled the one this tick selected it with. The cutoff counts from
//!   the tick's selection: the window, or the 5-minute floor for a row whose `sleeps_early`
//!   was set at the claim; and no keep held the row at the claim (`keep_until` after the
//!   claim's `now` with no activity after `keep_activity_at`). At every confirm
//!   (`sleeping -> asleep`, by the tick or by recovery), the row was `sleeping`, with the stamp
//!   the confirm carried and no activity after its intent
//!   (`last_activity_at <= sleep_state_changed_at`).
//! - **5** A claim never succeeds while another live operation holds that row's intent; a
//!   tick writes replicas 0 only for a row whose live intent it holds, and only onto a
//!   Deployment above 0 (never a double sleep); no operation confirms, reverts or settles an
//!   intent that another live operation holds (no fighting: recovery only touches dead
//!   intents).
//! - **4** When a wake reports `woke_up` with `n` replicas: `n > 0`, `n` is the row's restore
//!   count as the wake read it (or `default_wake_replicas`), the row is `awake`, and the
//!   Deployment is at `n` unless it is gone or someone outside the job wrote it since. A
//!   pre-warm (a wake inside a tick, whose report the tick keeps) is checked at its row flip:
//!   the row was `asleep` (also when it marked it as being woken), is `awake` with the same
//!   `last_activity_at` and no restore count, and the Deployment is at the restore count if
//!   the pre-warm wrote it, or still runs if it found it running (unless someone outside the
//!   job wrote it since). No tick ever bumps activity through a wake's row writes
//!   (`touch_awake`, `finish_wake`): a pre-warm is no request.
//! - **3** When a *clean* tick completes (one that ran to its end with no fault injected in
//!   any of its own calls): no Deployment is at 0 while its row is `awake` if that 0 was
//!   written by an operation that had ended (completed or crashed) before the clean tick
//!   started; and no row is still `sleeping` with an intent that was stale when two successive
//!   clean ticks started (one is not enough: host activity can land between recovery's read
//!   and its write, and the next tick then restores). A 0 written from outside the job is not
//!   the job's to undo and is exempt.
//! - **7** (liveness) A clean tick's candidate whose read answered 403 has a backoff recorded
//!   after the failure (its backoff count went up), unless its activity moved; and no tick
//!   selects a row whose backoff is running, or (main or early selection) one a keep holds.
//! - **8** (drift) An `asleep` row over a running app the job can read is set `awake` before
//!   `ceil(reconcile period / interval) + 2` clean ticks have started with it due for a check
//!   (not checked within an interval) and ended with it still drifting; ticks whose slice
//!   had to leave a row to a wake in flight do not count. Each tick checks
//!   `ceil(asleep * interval / period)` rows, least recently checked first, so a due row is
//!   reached within `period / interval` ticks, plus one per instance whose gauge was sampled
//!   before the row slept. The sim's job ticks every 60 s with a 5-minute period.
//! - **9** Every scale-up the job writes (wake, restore, recovery) goes from 0: it never
//!   overrides a running app; and a wake writes at most once, unless someone else wrote the
//!   Deployment after its first write (a pre-warm too, per app within its tick).
//! - **4'** A row the job scaled down from `n > 0` keeps `replicas_before_sleep = n` for as
//!   long as it is `asleep` (no restore count lost).
//! - **10** A wake cut after its scale-up leaves the app running under an `asleep` row marked
//!   as being woken: 8 checks that the drift check finishes it. Ticks are cut the same way
//!   between a pre-warm's scale-up and its row flip.
//! - **6** (also checked) a tick with no fault injected never fails.
//! - **11** (parking; the job parks with `parking = endpointslices` through a
//!   [`MemoryParker`](crate::memory::MemoryParker) behind the gated ports, so park, unpark and
//!   the list of parked apps are port calls that faults and crashes hit like any other). An
//!   app's own endpoints are ready once it has run for its startup time (drawn per app).
//!   (a) A clean tick that confirmed a sleep ends with the app's Services parked (unless
//!   someone wrote its replicas or unparked it since); an asleep app at 0 with a Service not
//!   parked is parked again by the drift check: two clean ticks whose check read it at 0 and
//!   left it so fail, and so do more than `ceil(period / interval) + 2` clean ticks that
//!   started with it due. (b) A clean tick whose process's sweep was due (by the job's own
//!   rule) never ends with an app that was awake, ready and parked since before it started
//!   still parked. (c) No slice is deleted while its app is not ready, and the hand-written
//!   slice (a Service whose slice a person wrote under idle-scaler's name) is never changed.
//!   The wake's own background unpark is a task the scheduler never polls (inline wakes): the
//!   sweep unparks instead, within the period the invariant allows. Whether the slices point
//!   at a live waker, and invariants 12 and 13 (the parking listener's forwarding and caller
//!   check), are not in this simulation: it has no waker, only the job's ports.
//!
//! A Deployment answering 403 for good is exempt from 3 and from the final checks: only a
//! person can fix RBAC.
//!
//! At the end every operation is dropped, faults stop, the clock moves past the stale
//! threshold, and one tick runs: then no row may be `sleeping` and no job-written 0 may sit
//! under an `awake` row, and a fault-free wake of every `asleep` app must succeed (checked
//! as above).

mod cluster; // the simulated Deployments (`SimCluster`)
mod gate; // where port calls wait for the scheduler; the effects they report
mod ports; // `SimPorts`: the `Store` and `Scaler` an operation sees, each call gated
mod world; // the scheduler and the invariant checks

pub use crate::rng::Rng;
pub use cluster::{SimCluster, SimDeployment};

/// One simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Everything follows from it.
    pub seed: u64,
    /// Scheduler steps before the final settling.
    pub steps: u64,
    /// Rows (and Deployments): three that must be skipped (foreign, malformed, protected),
    /// the rest sleepable.
    pub apps: usize,
    /// Per mille of port calls that fail before their effect (and, for writes, as often
    /// after it).
    pub fault_per_mille: u64,
    /// Per mille of port calls in which the process dies.
    pub crash_per_mille: u64,
    /// `policy = adaptive`, with visitors whose requests form rhythms (keeps, early sleeps,
    /// pre-warms); otherwise `fixed`.
    pub adaptive: bool,
}

impl SimConfig {
    /// A world from `seed` running `steps` steps, with the default mix.
    pub fn new(seed: u64, steps: u64) -> Self {
        Self {
            seed,
            steps,
            apps: 10,
            fault_per_mille: 40,
            crash_per_mille: 15,
            // Half the worlds, by seed.
            adaptive: seed.is_multiple_of(2),
        }
    }
}

/// What a run did (the figures docs/reliability.md reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)] // Counters named after what they count.
pub struct SimReport {
    pub seed: u64,
    pub steps: u64,
    pub port_calls: u64,
    pub ticks_started: u64,
    pub ticks_completed: u64,
    pub clean_ticks: u64,
    pub wakes_started: u64,
    pub wakes_completed: u64,
    pub wakes_failed: u64,
    pub woke_up: u64,
    pub claims: u64,
    pub scaled_down: u64,
    pub scale_failed: u64,
    pub recovered: u64,
    pub settled: u64,
    pub wakes_over_live_intent: u64,
    pub faults_before: u64,
    pub faults_after: u64,
    pub faults_delayed: u64,
    pub delayed_landed: u64,
    pub crashes: u64,
    pub killed_slow: u64,
    pub host_events: u64,
    pub external_scalings: u64,
    pub deletions: u64,
    pub clock_advances: u64,
    pub invariant_checks: u64,
    /// Ticks that completed more than `STALE_INTENT_AFTER` after they started.
    pub slow_ticks: u64,
    /// Claims written more than `STALE_INTENT_AFTER` after their tick started.
    pub slow_tick_claims: u64,
    /// Steps that ended with a tick of each instance in flight.
    pub overlapping_ticks: u64,
    /// Wakes dropped between their scale-up and the row flip.
    pub wakes_cancelled: u64,
    /// Deployments whose RBAC was removed (403 for good).
    pub forbidden_deployments: u64,
    /// Kubernetes requests answered 403.
    pub forbidden_answers: u64,
    /// Ticks stopped early by the blast radius.
    pub ticks_stopped_early: u64,
    /// Rows whose backoff was checked after a 403 in a clean tick (invariant 7).
    pub backoffs_checked: u64,
    /// `asleep` rows found running and set `awake` by ticks, by any kind.
    pub drifts_fixed: u64,
    /// Times an `asleep` row's app started running (a person, a cancelled wake, a late write).
    pub drift_episodes: u64,
    /// Clean ticks that started with a drifting row due and left it drifting (invariant 8).
    pub drift_strikes: u64,
    /// The most such clean ticks one drift lasted.
    pub max_drift_strikes: u64,
    /// The longest a drift lasted before it ended, in simulated seconds.
    pub max_drift_seconds: u64,
    /// Job-made scale-ups checked to start from 0 (invariant 9).
    pub scale_ups_checked: u64,
    /// Steps at which an `asleep` row's restore count was checked against the scale-down.
    pub restore_counts_checked: u64,
    /// Slices the job's parks wrote (ticks' reports).
    pub slices_parked: u64,
    /// Services left alone because a person wrote a slice under idle-scaler's name.
    pub park_conflicts: u64,
    /// Slices deleted by unparks, each checked against the app's readiness (invariant 11).
    pub slices_unparked: u64,
    /// Clean ticks that started with an asleep app at 0 due and not fully parked and left it
    /// so (invariant 11a).
    pub park_strikes: u64,
    /// The most such clean ticks one unparked asleep app lasted.
    pub max_park_strikes: u64,
    /// Sleeps a clean tick confirmed, checked parked when it ended (invariant 11a).
    pub sleeps_parked_checked: u64,
    /// Clean ticks whose drift check read an unparked asleep app at 0 and left it so (11a).
    pub parks_checked: u64,
    /// Awake, ready, parked apps checked at the end of a clean tick whose sweep was due (11b).
    pub sweeps_checked: u64,
    /// Steps at which the hand-written slices were checked untouched (11c).
    pub hand_written_checked: u64,
    /// Visitors' requests answered (adaptive worlds).
    pub visits: u64,
    /// Keeps recorded for a predicted request.
    pub keeps: u64,
    /// Claims of rows idle less than the window (at the floor: their rhythm sleeps early).
    pub early_claims: u64,
    /// Pre-warms that flipped their row awake.
    pub prewarms_run: u64,
    /// Pre-warm keeps ended after a request came.
    pub prewarms_used: u64,
    /// Pre-warm keeps ended with no request.
    pub prewarms_wasted: u64,
    /// Ticks dropped between a pre-warm's scale-up and its row flip (invariant 10).
    pub prewarms_cut: u64,
}

impl SimReport {
    /// Adds another run's counters (the seed is kept).
    pub fn add(&mut self, o: &Self) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            steps,
            port_calls,
            ticks_started,
            ticks_completed,
            clean_ticks,
            wakes_started,
            wakes_completed,
            wakes_failed,
            woke_up,
            claims,
            scaled_down,
            scale_failed,
            recovered,
            settled,
            wakes_over_live_intent,
            faults_before,
            faults_after,
            faults_delayed,
            delayed_landed,
            crashes,
            killed_slow,
            host_events,
            external_scalings,
            deletions,
            clock_advances,
            invariant_checks,
            slow_ticks,
            slow_tick_claims,
            overlapping_ticks,
            wakes_cancelled,
            forbidden_deployments,
            forbidden_answers,
            ticks_stopped_early,
            backoffs_checked,
            drifts_fixed,
            drift_episodes,
            drift_strikes,
            scale_ups_checked,
            restore_counts_checked,
            slices_parked,
            park_conflicts,
            slices_unparked,
            park_strikes,
            parks_checked,
            sleeps_parked_checked,
            sweeps_checked,
            hand_written_checked,
            visits,
            keeps,
            early_claims,
            prewarms_run,
            prewarms_used,
            prewarms_wasted,
            prewarms_cut
        );
        self.max_drift_strikes = self.max_drift_strikes.max(o.max_drift_strikes);
        self.max_park_strikes = self.max_park_strikes.max(o.max_park_strikes);
        self.max_drift_seconds = self.max_drift_seconds.max(o.max_drift_seconds);
    }
}

/// An invariant violated: everything needed to reproduce it.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The world's seed.
    pub seed: u64,
    /// The step at which the violation was seen.
    pub step: u64,
    /// Which invariant of docs/architecture.md (0: the harness itself).
    pub invariant: u8,
    /// What was seen.
    pub message: String,
    /// The last steps and effects before it.
    pub trace: Vec<String>,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "invariant {} violated at step {} of seed {}: {}",
            self.invariant, self.step, self.seed, self.message
        )?;
        writeln!(
            f,
            "reproduce: IDLE_SCALER_SIM_SEED={} IDLE_SCALER_SIM_STEPS={} cargo test -p idle-scaler-testkit --test sim",
            self.seed, self.step
        )?;
        writeln!(f, "last steps:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Runs one world to its end.
///
/// # Errors
/// The first invariant violation, with the seed and step that reproduce it.
pub fn run(config: &SimConfig) -> Result<SimReport, SimFailure> {
    // The job reads `tokio::time::Instant` for durations; a runtime context makes that work
    // the same with and without tokio's `test-util`. Nothing is spawned on it: every
    // operation is polled by the scheduler.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let _guard = rt.enter();
    let mut world = poll_now(world::World::new(config.clone()));
    poll_now(world.run())?;
    Ok(world.report)
}

/// Polls a future that never waits on anything outside the simulation (the scheduler polls
/// operations itself), so it is ready at once.
fn poll_now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("simulation harness awaited something external"),
    }
}
