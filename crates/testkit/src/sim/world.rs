//! The scheduler and the invariant checker (see [`super`] for what is checked and when).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{
    Clock, Config, ConfirmOutcome, DeploymentRecord, FixedScalerSource, Job, Outcome, Result,
    SleepState, Target, TickReport, WakeReport, WakeResult,
};
use uuid::Uuid;

use super::cluster::SimCluster;
use super::ports::{Call, DelayedWrite, Event, Fault, OpId, Shared, SimPorts};
use super::rng::Rng;
use super::{SimConfig, SimFailure, SimReport};
use crate::clock::ManualClock;
use crate::host::{HostOps, NewDeployment};
use crate::memory::MemoryStore;

/// An operation in flight is killed (as a crash) before the clock passes this age: a real
/// transition is three requests bounded by the request timeout, far below
/// `STALE_INTENT_AFTER`, which is what lets recovery treat an older intent as dead.
const TRANSITION_BOUND: Duration = Duration::minutes(4);

/// How many trace lines a failure shows.
const TRACE: usize = 200;

type OpFuture = Pin<Box<dyn Future<Output = OpOut>>>;

enum OpOut {
    Tick(Result<TickReport>),
    Wake(Result<WakeReport>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tick(usize),
    Wake(usize, Uuid),
}

struct Op {
    kind: Kind,
    fut: OpFuture,
    started_step: u64,
    started_clock: DateTime<Utc>,
    faulted: bool,
    selected: BTreeMap<Uuid, DateTime<Utc>>,
    last_read: Option<DeploymentRecord>,
}

#[derive(Debug, Clone, Copy)]
struct Ended {
    step: u64,
}

/// Who last wrote a Deployment's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Op(OpId),
    /// A person or an HPA, or the host creating it: not the job's doing.
    Outside,
}

struct App {
    id: Uuid,
    target: Option<Target>,
}

/// Sets a flag when woken: a stream that yields to the scheduler asks to be polled again.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub(super) struct World {
    cfg: SimConfig,
    rng: Rng,
    clock: ManualClock,
    store: MemoryStore,
    cluster: Arc<SimCluster>,
    shared: Shared,
    config: Config,
    apps: Vec<App>,
    by_target: BTreeMap<String, Uuid>,
    ops: BTreeMap<OpId, Op>,
    ended: BTreeMap<OpId, Ended>,
    /// What each operation was, kept after it ends (a delayed write can land later).
    kinds: BTreeMap<OpId, Kind>,
    next_op: OpId,
    /// Which operation holds the `sleeping` intent of a row.
    claims: BTreeMap<Uuid, OpId>,
    /// Keyed by `namespace/name`.
    last_writer: BTreeMap<String, Writer>,
    /// Rows still `sleeping` after a clean tick that should have recovered them.
    /// (intent change time, strikes, step of the last strike).
    strikes: BTreeMap<Uuid, (DateTime<Utc>, u32, u64)>,
    faults_on: bool,
    step: u64,
    trace: VecDeque<String>,
    flag: Arc<Flag>,
    pub(super) report: SimReport,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

impl World {
    pub(super) async fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let clock = ManualClock::new(t0());
        let store = MemoryStore::new();
        let cluster = Arc::new(SimCluster::new());
        let mut apps = Vec::new();
        let mut by_target = BTreeMap::new();
        let mut last_writer = BTreeMap::new();
        for i in 0..cfg.apps {
            // A few rows the tick must skip: another provider, a malformed id, a protected
            // namespace. Their Deployments exist (where nameable) so a wrong sleep would show.
            let provider_id = match i {
                0 => "ecs:cluster/service".to_owned(),
                1 => "k8s:Not_A_Namespace/web".to_owned(),
                2 => "k8s:kube-system/coredns".to_owned(),
                _ => format!("k8s:apps/app-{i}"),
            };
            let id = Uuid::from_u128(u128::from(rng.next_u64()) << 64 | i as u128);
            let target = Target::parse(&provider_id).ok();
            let ago = Duration::minutes(rng.range(0, 60));
            store
                .insert(NewDeployment::new(provider_id, t0() - ago).id(id))
                .await
                .unwrap_or_else(|e| panic!("insert: {e}"));
            if let Some(t) = &target {
                cluster.apply(t, i32::try_from(rng.range(1, 3)).unwrap_or(1));
                by_target.insert(t.to_string(), id);
                last_writer.insert(t.to_string(), Writer::Outside);
            }
            apps.push(App { id, target });
        }
        let config = Config {
            enabled: true,
            idle_minutes: 10,
            max_per_tick: 6,
            concurrency: 3,
            max_consecutive_failures: 3,
            default_wake_replicas: 1,
            ..Config::default()
        };
        Self {
            report: SimReport {
                seed: cfg.seed,
                ..SimReport::default()
            },
            cfg,
            rng,
            clock,
            store,
            cluster,
            shared: Shared::default(),
            config,
            apps,
            by_target,
            ops: BTreeMap::new(),
            ended: BTreeMap::new(),
            kinds: BTreeMap::new(),
            next_op: 0,
            claims: BTreeMap::new(),
            last_writer,
            strikes: BTreeMap::new(),
            faults_on: true,
            step: 0,
            trace: VecDeque::new(),
            flag: Arc::new(Flag(AtomicBool::new(false))),
        }
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("step {}: {line}", self.step));
    }

    fn fail(&self, invariant: u8, message: String) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            step: self.step,
            invariant,
            message,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn job(&self, op: OpId) -> Arc<Job> {
        let ports = Arc::new(SimPorts {
            shared: self.shared.clone(),
            op,
            store: self.store.clone(),
            cluster: self.cluster.clone(),
        });
        Arc::new(Job::new(
            self.config.clone(),
            ports.clone(),
            Arc::new(FixedScalerSource(ports)),
            Arc::new(self.clock.clone()),
        ))
    }

    fn live(&self, op: OpId) -> bool {
        self.ops.contains_key(&op)
    }

    // ---- the run ----

    pub(super) async fn run(&mut self) -> std::result::Result<(), SimFailure> {
        for step in 1..=self.cfg.steps {
            self.step = step;
            self.act().await?;
            self.report.steps += 1;
        }
        self.settle().await
    }

    async fn act(&mut self) -> std::result::Result<(), SimFailure> {
        if !self.shared.lock().delayed.is_empty() && self.rng.percent(15) {
            return self.land_delayed(false);
        }
        let in_flight: Vec<OpId> = self.ops.keys().copied().collect();
        // With nothing in flight, advancing or crashing an operation is not possible: draw
        // among the other actions.
        let roll = if in_flight.is_empty() {
            50 + self.rng.below(50)
        } else {
            self.rng.below(100)
        };
        match roll {
            0..=47 => {
                let op = in_flight[self.rng.index(in_flight.len())];
                self.advance(op)?;
            }
            48..=49 => {
                let op = in_flight[self.rng.index(in_flight.len())];
                self.log(format!("crash: op {op} dropped between port calls"));
                self.report.crashes += 1;
                self.end(op);
                self.check()?;
            }
            50..=64 => {
                let instance = self.rng.index(2);
                self.start_tick(instance)?;
            }
            65..=76 => {
                let slot = self.rng.index(2);
                let app = self.rng.index(self.apps.len());
                self.start_wake(slot, self.apps[app].id)?;
            }
            77..=88 => self.host_event().await?,
            _ => self.advance_clock()?,
        }
        Ok(())
    }

    fn start_tick(&mut self, instance: usize) -> std::result::Result<(), SimFailure> {
        if self.ops.values().any(|o| o.kind == Kind::Tick(instance)) {
            return Ok(());
        }
        self.next_op += 1;
        let op = self.next_op;
        let job = self.job(op);
        self.report.ticks_started += 1;
        self.kinds.insert(op, Kind::Tick(instance));
        self.log(format!("op {op}: tick of instance {instance} starts"));
        self.ops.insert(
            op,
            Op {
                kind: Kind::Tick(instance),
                fut: Box::pin(async move { OpOut::Tick(job.tick().await) }),
                started_step: self.step,
                started_clock: self.now(),
                faulted: false,
                selected: BTreeMap::new(),
                last_read: None,
            },
        );
        self.poll(op)
    }

    fn start_wake(&mut self, slot: usize, id: Uuid) -> std::result::Result<(), SimFailure> {
        if self
            .ops
            .values()
            .any(|o| matches!(o.kind, Kind::Wake(s, _) if s == slot))
        {
            return Ok(());
        }
        self.next_op += 1;
        let op = self.next_op;
        let job = self.job(op);
        self.report.wakes_started += 1;
        self.kinds.insert(op, Kind::Wake(slot, id));
        self.log(format!("op {op}: wake {id} starts"));
        self.ops.insert(
            op,
            Op {
                kind: Kind::Wake(slot, id),
                fut: Box::pin(async move { OpOut::Wake(job.wake(id).await) }),
                started_step: self.step,
                started_clock: self.now(),
                faulted: false,
                selected: BTreeMap::new(),
                last_read: None,
            },
        );
        self.poll(op)
    }

    /// Lets one waiting port call of `op` through (chosen at random when its concurrent
    /// attempts wait at several), with a fault decided now.
    fn advance(&mut self, op: OpId) -> std::result::Result<(), SimFailure> {
        let waiting = self.shared.waiting(op);
        if waiting.is_empty() {
            return Err(self.fail(0, format!("harness: op {op} waits at no gate")));
        }
        let (waiter, call) = waiting[self.rng.index(waiting.len())];
        let fault = self.fault_for(call);
        if fault != Fault::None {
            if let Some(o) = self.ops.get_mut(&op) {
                o.faulted = true;
            }
            match fault {
                Fault::ErrBefore => self.report.faults_before += 1,
                Fault::ErrAfter => self.report.faults_after += 1,
                Fault::Delayed => self.report.faults_delayed += 1,
                _ => self.report.crashes += 1,
            }
        }
        self.report.port_calls += 1;
        self.log(format!("op {op}: {call:?} granted ({fault:?})"));
        self.shared.grant(waiter, fault);
        self.poll(op)
    }

    fn fault_for(&mut self, call: Call) -> Fault {
        if !self.faults_on {
            return Fault::None;
        }
        let p = self.cfg.fault_per_mille;
        if self.rng.per_mille(p) {
            Fault::ErrBefore
        } else if call.is_write() && self.rng.per_mille(p) {
            if call == Call::SetReplicas && self.rng.percent(50) {
                Fault::Delayed
            } else {
                Fault::ErrAfter
            }
        } else if self.rng.per_mille(self.cfg.crash_per_mille) {
            if call.is_write() && self.rng.percent(50) {
                Fault::CrashAfter
            } else {
                Fault::CrashBefore
            }
        } else {
            Fault::None
        }
    }

    /// Polls `op` until it waits at a gate again, completes, or crashed.
    fn poll(&mut self, op: OpId) -> std::result::Result<(), SimFailure> {
        let waker = Waker::from(self.flag.clone());
        let mut cx = Context::from_waker(&waker);
        let out = loop {
            self.flag.0.store(false, Ordering::SeqCst);
            let Some(o) = self.ops.get_mut(&op) else {
                return Ok(());
            };
            match o.fut.as_mut().poll(&mut cx) {
                Poll::Ready(out) => break Some(out),
                // A stream that yielded to be fair asks to be polled again at once.
                Poll::Pending if self.flag.0.load(Ordering::SeqCst) => {}
                Poll::Pending => break None,
            }
        };
        if self.shared.grant_pending() {
            return Err(self.fail(0, format!("harness: op {op} did not take its grant")));
        }
        self.process_events()?;
        let crashed = std::mem::take(&mut self.shared.lock().crashed);
        if crashed.contains(&op) {
            self.log(format!("op {op}: process died in a port call"));
            self.end(op);
            return self.check();
        }
        match out {
            Some(out) => self.complete(op, out)?,
            None if self.shared.waiting(op).is_empty() => {
                return Err(self.fail(0, format!("harness: op {op} pending at no gate")));
            }
            None => {}
        }
        self.check()
    }

    fn end(&mut self, op: OpId) {
        if self.ops.remove(&op).is_some() {
            self.shared.forget(op);
            self.ended.insert(op, Ended { step: self.step });
        }
    }

    fn complete(&mut self, op: OpId, out: OpOut) -> std::result::Result<(), SimFailure> {
        let Some(o) = self.ops.remove(&op) else {
            return Ok(());
        };
        self.shared.forget(op);
        self.ended.insert(op, Ended { step: self.step });
        match out {
            OpOut::Tick(Ok(report)) => {
                self.report.ticks_completed += 1;
                self.report.scaled_down += report.outcome(Outcome::ScaledDown);
                self.report.scale_failed += report.outcome(Outcome::ScaleFailed);
                self.report.recovered += report.recovered.values().sum::<u64>();
                self.log(format!(
                    "op {op}: tick done: {} slept, {} failed, skips {:?}, recovered {:?}",
                    report.outcome(Outcome::ScaledDown),
                    report.outcome(Outcome::ScaleFailed),
                    report.skips,
                    report.recovered
                ));
                if !o.faulted {
                    self.report.clean_ticks += 1;
                    self.after_clean_tick(&o)?;
                }
            }
            OpOut::Tick(Err(e)) => {
                self.log(format!("op {op}: tick failed: {e}"));
                if !o.faulted {
                    return Err(self.fail(
                        6,
                        format!("tick op {op} failed with no fault injected: {e}"),
                    ));
                }
            }
            OpOut::Wake(Ok(r)) => {
                self.report.wakes_completed += 1;
                self.log(format!(
                    "op {op}: wake done: {:?} {:?}",
                    r.result, r.replicas
                ));
                if r.result == WakeResult::WokeUp {
                    self.report.woke_up += 1;
                    self.check_wake(op, &o, &r)?;
                }
            }
            OpOut::Wake(Err(e)) => {
                self.report.wakes_failed += 1;
                self.log(format!("op {op}: wake failed: {e}"));
            }
        }
        Ok(())
    }

    // ---- the world outside the job ----

    async fn host_event(&mut self) -> std::result::Result<(), SimFailure> {
        let app = self.rng.index(self.apps.len());
        let id = self.apps[app].id;
        let target = self.apps[app].target.clone();
        let now = self.now();
        let what = self.rng.below(100);
        self.report.host_events += 1;
        let line = match what {
            0..=24 => {
                // A deploy or redeploy: activity, and a new pod template.
                let _ = self.store.bump_activity(id, now).await;
                if let Some(t) = &target {
                    self.cluster.redeploy(t);
                }
                format!("host: redeploy of {id}")
            }
            25..=39 => {
                let on = self.rng.percent(50);
                let _ = self.store.set_always_on(id, on).await;
                format!("host: always_on({on}) {id}")
            }
            40..=49 => {
                let at = match self.rng.below(3) {
                    0 => None,
                    1 => Some(now - Duration::minutes(self.rng.range(0, 30))),
                    _ => Some(now + Duration::minutes(self.rng.range(1, 30))),
                };
                let _ = self.store.set_expires_at(id, at).await;
                format!("host: expires_at({at:?}) {id}")
            }
            50..=59 => {
                let status = if self.rng.percent(60) {
                    "healthy"
                } else {
                    "failed"
                };
                let _ = self.store.set_status(id, status).await;
                format!("host: status {status} {id}")
            }
            60..=79 => {
                let Some(t) = target else { return Ok(()) };
                let replicas = i32::try_from(self.rng.range(0, 4)).unwrap_or(0);
                self.report.external_scalings += 1;
                if self.cluster.get(&t).is_some() {
                    self.cluster.apply(&t, replicas);
                    self.last_writer.insert(t.to_string(), Writer::Outside);
                }
                format!("outside: {t} scaled to {replicas}")
            }
            80..=84 => {
                let Some(t) = target else { return Ok(()) };
                self.report.deletions += 1;
                self.cluster.delete(&t);
                format!("host: Deployment {t} deleted")
            }
            _ => {
                let Some(t) = target else { return Ok(()) };
                if self.cluster.get(&t).is_some() {
                    return Ok(());
                }
                let replicas = i32::try_from(self.rng.range(1, 3)).unwrap_or(1);
                self.cluster.apply(&t, replicas);
                self.last_writer.insert(t.to_string(), Writer::Outside);
                let _ = self.store.bump_activity(id, now).await;
                format!("host: Deployment {t} recreated at {replicas}")
            }
        };
        self.log(line);
        self.check()
    }

    /// Lands (or, at random, loses) the oldest delayed write; with `all`, every one of them:
    /// the apiserver's own timeout means none outlives a minute, so none survives a clock
    /// advance.
    fn land_delayed(&mut self, all: bool) -> std::result::Result<(), SimFailure> {
        loop {
            let next = {
                let mut g = self.shared.lock();
                if g.delayed.is_empty() {
                    None
                } else {
                    Some(g.delayed.remove(0))
                }
            };
            let Some(DelayedWrite {
                op,
                target,
                replicas,
                resource_version,
            }) = next
            else {
                break;
            };
            if self.rng.percent(30) {
                self.log(format!(
                    "delayed write of op {op} ({target}={replicas}) lost"
                ));
            } else {
                let before = self.cluster.get(&target);
                let r = self
                    .cluster
                    .set_scale(&target, replicas, resource_version.as_deref());
                self.log(format!(
                    "delayed write of op {op} ({target}={replicas}) lands: {r:?}"
                ));
                self.report.delayed_landed += u64::from(r.is_ok());
                if r.is_ok() {
                    self.on_event(Event::Scaled {
                        op,
                        target,
                        replicas,
                        before,
                    })?;
                }
            }
            if !all {
                break;
            }
        }
        self.check()
    }

    fn advance_clock(&mut self) -> std::result::Result<(), SimFailure> {
        self.land_delayed(true)?;
        let secs = match self.rng.below(100) {
            0..=59 => self.rng.range(1, 30),
            60..=94 => self.rng.range(30, 240),
            _ => self.rng.range(180, 600),
        };
        let to = self.now() + Duration::seconds(secs);
        let expired: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, o)| o.started_clock + TRANSITION_BOUND <= to)
            .map(|(id, _)| *id)
            .collect();
        for op in expired {
            self.log(format!(
                "op {op}: killed, in flight past the transition bound"
            ));
            self.report.crashes += 1;
            self.report.killed_slow += 1;
            self.end(op);
        }
        self.clock.set(to);
        self.report.clock_advances += 1;
        self.log(format!("clock +{secs}s"));
        self.check()
    }

    // ---- the invariants ----

    fn process_events(&mut self) -> std::result::Result<(), SimFailure> {
        let events = std::mem::take(&mut self.shared.lock().events);
        for e in events {
            self.log(format!("  {e:?}"));
            self.on_event(e)?;
        }
        Ok(())
    }

    fn on_event(&mut self, e: Event) -> std::result::Result<(), SimFailure> {
        match e {
            Event::Selected { op, found } => {
                if let Some(o) = self.ops.get_mut(&op) {
                    o.selected = found.into_iter().collect();
                }
            }
            Event::Read { op, row } => {
                if let Some(o) = self.ops.get_mut(&op) {
                    o.last_read = row;
                }
            }
            Event::Claim {
                op,
                id,
                seen,
                idle_before,
                now,
                before,
                won: true,
            } => {
                self.report.claims += 1;
                let Some(b) = before else {
                    return Err(self.fail(2, format!("op {op} claimed missing row {id}")));
                };
                let sleepable = b.status == "healthy"
                    && b.sleep_state == SleepState::Awake
                    && !b.always_on
                    && b.expires_at.is_none_or(|x| x > now)
                    && b.last_activity_at <= idle_before
                    && b.last_activity_at == seen;
                if !sleepable {
                    return Err(self.fail(
                        2,
                        format!(
                            "op {op} claimed {id}, which at the write was not sleepable: {b:?}"
                        ),
                    ));
                }
                let selected = self.ops.get(&op).and_then(|o| o.selected.get(&id)).copied();
                if selected != Some(seen) {
                    return Err(self.fail(
                        2,
                        format!(
                            "op {op} claimed {id} with stamp {seen}, selected with {selected:?}"
                        ),
                    ));
                }
                if let Some(holder) = self.claims.get(&id)
                    && self.live(*holder)
                {
                    return Err(self.fail(
                        5,
                        format!("op {op} claimed {id} while op {holder} holds its intent"),
                    ));
                }
                self.claims.insert(id, op);
            }
            Event::Claim { .. } => {}
            Event::Confirm {
                op,
                id,
                seen,
                before,
                outcome: ConfirmOutcome::Confirmed,
            } => {
                let ok = before.as_ref().is_some_and(|b| {
                    b.sleep_state == SleepState::Sleeping
                        && b.last_activity_at == seen
                        && b.last_activity_at <= b.sleep_state_changed_at
                });
                if !ok {
                    return Err(self.fail(
                        2,
                        format!(
                            "op {op} confirmed {id} asleep though activity arrived: {before:?}"
                        ),
                    ));
                }
                self.check_not_fighting(op, id, "confirmed")?;
            }
            Event::Confirm { .. } => {}
            Event::Revert { op, id, done: true } => {
                self.check_not_fighting(op, id, "reverted")?;
            }
            Event::Revert { .. } => {}
            Event::Settle {
                op,
                id,
                to,
                before,
                done: true,
            } => {
                self.report.settled += 1;
                if to == SleepState::Asleep
                    && !before.as_ref().is_some_and(|b| {
                        b.sleep_state == SleepState::Sleeping
                            && b.last_activity_at <= b.sleep_state_changed_at
                    })
                {
                    return Err(self.fail(
                        2,
                        format!("op {op} settled {id} asleep though activity arrived: {before:?}"),
                    ));
                }
                self.check_not_fighting(op, id, "settled")?;
            }
            Event::Settle { .. } => {}
            Event::FinishWake {
                op,
                id,
                from: SleepState::Sleeping,
                done: true,
            } => {
                if let Some(holder) = self.claims.get(&id)
                    && self.live(*holder)
                {
                    self.report.wakes_over_live_intent += 1;
                    self.log(format!(
                        "  wake op {op} finished over op {holder}'s live intent"
                    ));
                }
            }
            Event::FinishWake { .. } => {}
            Event::Scaled {
                op,
                target,
                replicas,
                before,
            } => {
                self.last_writer.insert(target.to_string(), Writer::Op(op));
                let is_tick = matches!(self.kinds.get(&op), Some(Kind::Tick(_)));
                if replicas == 0 {
                    if !is_tick {
                        return Err(self.fail(4, format!("wake op {op} scaled {target} to 0")));
                    }
                    let id = self.by_target.get(&target.to_string()).copied();
                    let holds = id.is_some_and(|id| self.claims.get(&id) == Some(&op));
                    let row_sleeping = match id {
                        Some(id) => self
                            .store
                            .read(id)
                            .await_now()
                            .is_some_and(|r| r.sleep_state == SleepState::Sleeping),
                        None => false,
                    };
                    if !(holds && row_sleeping) {
                        return Err(self.fail(
                            5,
                            format!(
                                "op {op} scaled {target} to 0 without holding its row's live \
                                 intent (holder {:?}, row sleeping: {row_sleeping})",
                                id.and_then(|id| self.claims.get(&id))
                            ),
                        ));
                    }
                    if before.is_some_and(|d| d.replicas == 0) {
                        return Err(self.fail(5, format!("op {op} slept {target} twice")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Invariant 5: a transition never settles an intent another live operation holds.
    fn check_not_fighting(
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
    fn check(&mut self) -> std::result::Result<(), SimFailure> {
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
    fn check_wake(
        &mut self,
        op: OpId,
        o: &Op,
        r: &WakeReport,
    ) -> std::result::Result<(), SimFailure> {
        let Kind::Wake(_, id) = o.kind else {
            return Ok(());
        };
        let n = r.replicas.unwrap_or(0);
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

    /// Invariant 3 and the recovery of intents, when a tick with no fault completes.
    fn after_clean_tick(&mut self, tick: &Op) -> std::result::Result<(), SimFailure> {
        let stale_before = tick.started_clock - STALE_INTENT_AFTER;
        let mut seen = BTreeMap::new();
        for app in &self.apps {
            let Some(row) = self.store.read(app.id).await_now() else {
                continue;
            };
            if let Some(t) = &app.target
                && row.sleep_state == SleepState::Awake
                && self.cluster.get(t).is_some_and(|d| d.replicas == 0)
                && let Some(Writer::Op(w)) = self.last_writer.get(&t.to_string())
                && self
                    .ended
                    .get(w)
                    .is_some_and(|e| e.step < tick.started_step)
            {
                return Err(self.fail(
                    3,
                    format!(
                        "{t} is at 0 with its row awake, set by op {w} which ended before this \
                         clean tick started"
                    ),
                ));
            }
            if row.sleep_state == SleepState::Sleeping
                && row.sleep_state_changed_at <= stale_before
                && self.claims.get(&app.id).is_none_or(|h| {
                    self.ended
                        .get(h)
                        .is_some_and(|e| e.step < tick.started_step)
                })
            {
                // Successive ticks: one that ran alongside the tick of the last strike saw
                // the same moment, and the same interleaving may have beaten both.
                let strikes = match self.strikes.get(&app.id) {
                    Some((at, n, last)) if *at == row.sleep_state_changed_at => {
                        if tick.started_step > *last { n + 1 } else { *n }
                    }
                    _ => 1,
                };
                if strikes >= 2 {
                    return Err(self.fail(
                        3,
                        format!(
                            "row {} still sleeping after two clean ticks since its intent went stale: {row:?}",
                            app.id
                        ),
                    ));
                }
                let last =
                    if strikes == 1 || self.strikes.get(&app.id).is_some_and(|s| s.1 < strikes) {
                        self.step
                    } else {
                        self.strikes.get(&app.id).map_or(self.step, |s| s.2)
                    };
                seen.insert(app.id, (row.sleep_state_changed_at, strikes, last));
            }
        }
        self.strikes = seen;
        Ok(())
    }

    /// The end: every operation dies, faults stop, time passes beyond the stale threshold, and
    /// one tick runs to completion. Then nothing may be half done.
    async fn settle(&mut self) -> std::result::Result<(), SimFailure> {
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
        for row in &rows {
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

/// The in-memory store and the host fixtures complete on their first poll.
trait AwaitNow {
    fn await_now(self) -> Option<DeploymentRecord>;
}

impl<F: Future<Output = Result<Option<DeploymentRecord>>>> AwaitNow for F {
    fn await_now(self) -> Option<DeploymentRecord> {
        let mut f = std::pin::pin!(self);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v.ok().flatten(),
            Poll::Pending => None,
        }
    }
}
