//! The scheduler and the invariant checker (see [`super`] for what is checked and when).

// One `impl World` block per concern; the scheduler (`run`, `act`, `settle`) stays here.
mod invariants; // the checks of the invariants, per effect, per step and per clean tick
mod op; // one tick or wake in flight and what the checks track of it
mod ops; // ticks and wakes in flight: start, grant a port call, poll, end
mod outside; // host events, outside scaling, delayed Kubernetes writes, the clock
mod parking; // the apps' Services and slices, readiness, and invariant 11
mod settle; // the end of a run and its final checks
mod visitors; // the adaptive worlds' visitors, whose requests form rhythms

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::{
    Clock, Config, DeploymentRecord, FixedScalerFactory, Job, Parking, Result, SleepPolicy, Target,
};
use uuid::Uuid;

use super::cluster::SimCluster;
use super::gate::{OpId, Shared};
use super::ports::SimPorts;
use super::{SimConfig, SimFailure, SimReport};
use crate::clock::ManualClock;
use crate::host::{HostOps, NewDeployment};
use crate::memory::MemoryStore;
use crate::rng::Rng;
use op::{Op, OpOut};
use parking::ParkingModel;

/// A transition in flight is killed (as a crash) before the clock passes this age, counted
/// from its intent write (a tick's claim, a wake's start): a real transition is a few
/// requests bounded by the request timeout, far below `STALE_INTENT_AFTER`, which is what
/// lets recovery treat an older intent as dead. A tick as a whole is not bounded: intents are
/// stamped at their write, so a tick may run longer than the stale age.
const TRANSITION_BOUND: Duration = Duration::minutes(4);

/// How many trace lines a failure shows.
const TRACE: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tick(usize),
    Wake(usize, Uuid),
}

/// An `asleep` row over a running app (invariant 8).
#[derive(Debug, Clone, Copy)]
struct Drifting {
    /// The `sleep_state_changed_at` of the sleep it drifted from.
    state_at: DateTime<Utc>,
    since_step: u64,
    since: DateTime<Utc>,
    /// Clean ticks that started with it due and ended with it still drifting.
    strikes: u64,
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
    /// Each tick instance's job (a process: replaced when its tick dies) and the cell
    /// telling its ports which operation they serve.
    tick_jobs: [Option<(Arc<Job>, Arc<AtomicU64>)>; 2],
    /// Rows `asleep` over a running app, since when.
    drifting: BTreeMap<Uuid, Drifting>,
    /// Rows a tick scaled down from `n > 0`: while `asleep`, they must keep `n` to restore.
    restore_expect: BTreeMap<Uuid, i32>,
    /// The adaptive world's visitors (None: a fixed world).
    visitors: Option<visitors::Visitors>,
    /// Scale-ups per wake operation, kept after it ends (a delayed write can land later).
    wake_ups: BTreeMap<OpId, u32>,
    parking: ParkingModel,
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
            // Short, so that drift checks are sliced (ceil(asleep / 4) rows per tick) and
            // backoffs end within a world.
            interval_seconds: 60,
            reconcile_minutes: 5,
            parking: Parking::EndpointSlices,
            policy: if cfg.adaptive {
                SleepPolicy::Adaptive
            } else {
                SleepPolicy::Fixed
            },
            ..Config::default()
        };
        let parking = ParkingModel::new(
            &mut rng,
            &apps
                .iter()
                .map(|a: &App| (a.id, a.target.clone()))
                .collect::<Vec<_>>(),
        );
        // Some worlds start with a Deployment the job may not touch (403 for good).
        if rng.percent(30)
            && let Some(t) = &apps[3].target
        {
            cluster.forbid(t);
        }
        let visitors = (cfg.adaptive && apps.len() > 6).then(|| {
            let ids = [apps[4].id, apps[5].id, apps[6].id];
            visitors::Visitors::new(&mut rng, ids, t0(), &store, &config)
        });
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
            tick_jobs: [None, None],
            drifting: BTreeMap::new(),
            restore_expect: BTreeMap::new(),
            visitors,
            wake_ups: BTreeMap::new(),
            parking,
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

    fn interval(&self) -> Duration {
        Duration::seconds(i64::try_from(self.config.interval_seconds).unwrap_or(i64::MAX))
    }

    /// The job's own bound on a transition (a wake mark younger than this is a wake in flight).
    fn transition_bound(&self) -> Duration {
        Duration::from_std(self.config.transition_bound()).unwrap_or(TRANSITION_BOUND)
    }

    /// A job (a process) for one operation: a wake's dies with it.
    fn job(&self, op: OpId) -> Arc<Job> {
        self.new_job(Arc::new(AtomicU64::new(op)))
    }

    /// The job of tick instance `i`, serving `op`: the same process across its ticks until one
    /// of them dies.
    fn tick_job(&mut self, i: usize, op: OpId) -> Arc<Job> {
        if let Some((job, cell)) = &self.tick_jobs[i] {
            cell.store(op, Ordering::SeqCst);
            return job.clone();
        }
        let cell = Arc::new(AtomicU64::new(op));
        let job = self.new_job(cell.clone());
        self.tick_jobs[i] = Some((job.clone(), cell));
        job
    }

    fn new_job(&self, op: Arc<AtomicU64>) -> Arc<Job> {
        let ports = Arc::new(SimPorts {
            shared: self.shared.clone(),
            op,
            store: self.store.clone(),
            cluster: self.cluster.clone(),
            parker: self.parking.parker.clone(),
        });
        Arc::new(
            Job::builder(
                self.config.clone(),
                ports.clone(),
                Arc::new(FixedScalerFactory(ports.clone())),
            )
            .clock(Arc::new(self.clock.clone()))
            .parker(ports.clone(), None)
            .rhythm_store(ports)
            .build()
            // The scheduler polls every operation itself and decides when to look again.
            .with_inline_wakes()
            .with_intent_wait(std::time::Duration::ZERO),
        )
    }

    fn live(&self, op: OpId) -> bool {
        self.ops.contains_key(&op)
    }

    // ---- the run ----

    pub(super) async fn run(&mut self) -> std::result::Result<(), SimFailure> {
        for step in 1..=self.cfg.steps {
            self.step = step;
            self.act().await?;
            self.track()?;
            if self.ops.values().any(|o| o.kind == Kind::Tick(0))
                && self.ops.values().any(|o| o.kind == Kind::Tick(1))
            {
                self.report.overlapping_ticks += 1;
            }
            self.report.steps += 1;
        }
        self.settle().await
    }

    async fn act(&mut self) -> std::result::Result<(), SimFailure> {
        if self.visit()? {
            return Ok(());
        }
        let cancellable = self.cancellable_wakes(false);
        if !cancellable.is_empty() && self.rng.percent(5) {
            let op = cancellable[self.rng.index(cancellable.len())];
            return self.cancel_wake(op);
        }
        // A pre-warm is up for a call or two between its scale-up and its row flip: cut
        // more often than a wake, or hardly ever.
        let cuttable = self.cancellable_wakes(true);
        if !cuttable.is_empty() && self.rng.percent(25) {
            let op = cuttable[self.rng.index(cuttable.len())];
            return self.cancel_wake(op);
        }
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
                if !self.visited(self.apps[app].id) {
                    self.start_wake(slot, self.apps[app].id)?;
                }
            }
            77..=88 => self.host_event().await?,
            _ => self.advance_clock()?,
        }
        Ok(())
    }
}

/// The output of a future of the in-memory store, which completes on its first poll.
fn ready<T, F: Future<Output = Result<T>>>(f: F) -> Option<T> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v.ok(),
        Poll::Pending => None,
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
