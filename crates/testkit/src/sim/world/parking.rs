//! Parking in the simulation: the apps' Services and slices (a [`MemoryParker`] behind the
//! gated ports), each app's readiness, and invariant 11.
//!
//! Readiness: an app's own endpoints are ready once it has run (replicas > 0) for its startup
//! time, drawn per app; the scheduler writes it into the Parker before it grants any call, so
//! a readiness-checked unpark sees what the cluster shows at that moment.
//!
//! The wake's own unpark runs in a task of its own, which a harness that polls every
//! operation itself never runs (`with_inline_wakes`): here the reconcile's sweep is the only
//! unpark, which is what invariant 11 promises anyway (within the reconcile period) and what
//! a wake whose process dies before its app is ready relies on in production.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::job::drift_due_before;
use idle_scaler_core::{ServedClusters, SleepState, Store, Target};
use uuid::Uuid;

use super::{AwaitNow, Kind, Op, World, ready};
use crate::host::HostOps;
use crate::memory::MemoryParker;
use crate::sim::SimFailure;
use crate::sim::gate::OpId;
use crate::sim::rng::Rng;

/// An app's Services as the Parker knows them.
struct ParkApp {
    target: Target,
    /// The Services the job must park (not skipped by the plan, no hand-written slice).
    parkable: Vec<String>,
    /// A Service whose slice a person wrote under idle-scaler's name (a `conflict`).
    hand_written: Option<String>,
    /// A headless Service, which the plan skips.
    headless: Option<String>,
    /// How long its pods take to be ready after a scale-up from 0.
    startup: Duration,
}

impl ParkApp {
    /// Gives the Parker this app's Services (again, when its Deployment is recreated).
    fn register(&self, parker: &MemoryParker) {
        let mut names: Vec<&str> = self.parkable.iter().map(String::as_str).collect();
        names.extend(self.hand_written.as_deref());
        parker.add_app(&self.target, &names);
        if let Some(svc) = &self.headless {
            parker.add_skipped_service(&self.target, svc, "headless");
        }
    }
}

/// A state that invariant 11 bounds: since when, and the clean ticks it outlived.
#[derive(Debug, Clone, Copy)]
struct Episode {
    /// The row's `sleep_state_changed_at` when it began (a new transition is a new episode).
    state_at: DateTime<Utc>,
    since_step: u64,
    strikes: u64,
}

/// What the world keeps of parking.
pub(in crate::sim::world) struct ParkingModel {
    pub(in crate::sim) parker: Arc<MemoryParker>,
    apps: BTreeMap<Uuid, ParkApp>,
    /// Since when each app has run (replicas > 0), as seen at the end of each step.
    up_since: BTreeMap<Uuid, DateTime<Utc>>,
    /// Slices someone else wrote under the name idle-scaler would use: never touched.
    hand_written: Vec<(String, String)>,
    /// Per tick instance, the `now` of its last tick whose sweep listed the parked apps (the
    /// job's own record, mirrored: a new process has none).
    swept: [Option<DateTime<Utc>>; 2],
    /// Asleep apps at 0 not fully parked (11a).
    gaps: BTreeMap<Uuid, Episode>,
    /// Awake, ready apps still parked (11b).
    stuck: BTreeMap<Uuid, Episode>,
}

impl ParkingModel {
    /// Every app with a target gets a Service named after it; one more Service for a third of
    /// them; app 4 one whose slice a person wrote (a `conflict`, never to be touched), app 5 a
    /// headless one the plan skips.
    pub(in crate::sim::world) fn new(rng: &mut Rng, apps: &[(Uuid, Option<Target>)]) -> Self {
        let parker = Arc::new(MemoryParker::new());
        let mut model = BTreeMap::new();
        let mut hand_written = Vec::new();
        for (i, (id, target)) in apps.iter().enumerate() {
            let Some(t) = target else { continue };
            let mut parkable = vec![t.name.clone()];
            if i % 3 == 0 {
                parkable.push(format!("{}-api", t.name));
            }
            let app = ParkApp {
                target: t.clone(),
                parkable,
                hand_written: (i == 4).then(|| format!("{}-admin", t.name)),
                headless: (i == 5).then(|| format!("{}-headless", t.name)),
                startup: Duration::seconds(rng.range(0, 90)),
            };
            app.register(&parker);
            if let Some(svc) = &app.hand_written {
                parker.hand_write_slice(&t.namespace, svc);
                hand_written.push((t.namespace.clone(), svc.clone()));
            }
            model.insert(*id, app);
        }
        Self {
            parker,
            apps: model,
            up_since: BTreeMap::new(),
            hand_written,
            swept: [None, None],
            gaps: BTreeMap::new(),
            stuck: BTreeMap::new(),
        }
    }
}

impl World {
    fn park_app(&self, target: &Target) -> Option<(Uuid, &ParkApp)> {
        let id = self.by_target.get(&target.to_string())?;
        self.parking.apps.get(id).map(|a| (*id, a))
    }

    /// A Deployment was deleted: its Services stay, but the Parker no longer finds its app.
    pub(in crate::sim::world) fn parking_deleted(&self, target: &Target) {
        if self.park_app(target).is_some() {
            self.parking.parker.remove_app(target);
        }
    }

    /// A Deployment was recreated: the Parker finds its app and Services again.
    pub(in crate::sim::world) fn parking_recreated(&self, target: &Target) {
        if let Some((_, app)) = self.park_app(target) {
            app.register(&self.parking.parker);
        }
    }

    /// Whether the app's own endpoints are ready now.
    fn app_ready(&self, id: Uuid) -> bool {
        let Some(app) = self.parking.apps.get(&id) else {
            return false;
        };
        self.cluster
            .get(&app.target)
            .is_some_and(|d| d.replicas > 0)
            && self
                .parking
                .up_since
                .get(&id)
                .is_some_and(|at| *at + app.startup <= self.now())
    }

    /// Writes each app's readiness into the Parker (before a call is granted).
    pub(in crate::sim::world) fn sync_ready(&self) {
        for (id, app) in &self.parking.apps {
            self.parking
                .parker
                .set_ready(&app.target, self.app_ready(*id));
        }
    }

    fn fully_parked(&self, app: &ParkApp) -> bool {
        let parked = self.parking.parker.parked_services(&app.target);
        app.parkable.iter().all(|s| parked.contains(s))
    }

    /// 11a: the row is asleep over its Deployment at 0 and a Service is not parked.
    fn gap_now(&self, id: Uuid) -> Option<DateTime<Utc>> {
        let app = self.parking.apps.get(&id)?;
        let row = self.store.read(id).await_now()?;
        (row.sleep_state == SleepState::Asleep
            && !self.cluster.is_forbidden(&app.target)
            && self
                .cluster
                .get(&app.target)
                .is_some_and(|d| d.replicas == 0)
            && !self.fully_parked(app))
        .then_some(row.sleep_state_changed_at)
    }

    /// 11b: the row is awake, the app ready, and a slice of its still parked.
    fn stuck_now(&self, id: Uuid) -> Option<DateTime<Utc>> {
        let app = self.parking.apps.get(&id)?;
        let row = self.store.read(id).await_now()?;
        (row.sleep_state == SleepState::Awake
            && self.app_ready(id)
            && self.parking.parker.is_parked(&app.target))
        .then_some(row.sleep_state_changed_at)
    }

    /// After every step: readiness, the episodes 11 bounds, and 11c.
    pub(in crate::sim::world) fn track_parking(&mut self) -> std::result::Result<(), SimFailure> {
        let now = self.now();
        let ids: Vec<Uuid> = self.parking.apps.keys().copied().collect();
        for id in &ids {
            let running = self
                .parking
                .apps
                .get(id)
                .and_then(|a| self.cluster.get(&a.target))
                .is_some_and(|d| d.replicas > 0);
            if !running {
                self.parking.up_since.remove(id);
            } else {
                self.parking.up_since.entry(*id).or_insert(now);
            }
        }
        self.sync_ready();
        for id in ids {
            let gap = self.gap_now(id);
            let stuck = self.stuck_now(id);
            let step = self.step;
            for (now_at, episodes) in [
                (gap, &mut self.parking.gaps),
                (stuck, &mut self.parking.stuck),
            ] {
                match (now_at, episodes.get(&id)) {
                    (Some(at), Some(e)) if e.state_at == at => {}
                    (Some(at), _) => {
                        episodes.insert(
                            id,
                            Episode {
                                state_at: at,
                                since_step: step,
                                strikes: 0,
                            },
                        );
                    }
                    (None, _) => {
                        episodes.remove(&id);
                    }
                }
            }
        }
        for (ns, svc) in &self.parking.hand_written {
            self.report.hand_written_checked += 1;
            if !self.parking.parker.has_hand_written_slice(ns, svc) {
                return Err(self.fail(
                    11,
                    format!("the hand-written slice of Service {ns}/{svc} was changed or deleted"),
                ));
            }
        }
        Ok(())
    }

    /// What a tick starting now must do for parking: the unparked asleep rows due for the
    /// drift check (whose at-0 branch parks them again), and, when its instance's sweep is
    /// due, the awake ready apps still parked.
    pub(in crate::sim::world) fn parking_at_tick_start(&self, instance: usize, o: &mut Op) {
        let now = self.now();
        let since = drift_due_before(&self.config, now);
        let bound = self.transition_bound();
        let due = ready(
            self.store
                .asleep_to_check(&ServedClusters::default(), since, u32::MAX),
        )
        .unwrap_or_default();
        o.due_park = due
            .into_iter()
            .filter(|r| r.wake_started_at.is_none_or(|at| now - at >= bound))
            .filter_map(|r| {
                let e = self.parking.gaps.get(&r.id)?;
                (self.gap_now(r.id) == Some(e.state_at) && e.state_at == r.sleep_state_changed_at)
                    .then_some((r.id, e.state_at))
            })
            .collect();
        o.sweep_due = self.parking.swept[instance].is_none_or(|at| at < since);
        if o.sweep_due {
            o.stuck = self
                .parking
                .stuck
                .iter()
                .filter(|(id, e)| self.stuck_now(**id) == Some(e.state_at))
                .map(|(id, e)| (*id, e.state_at))
                .collect();
        }
    }

    /// A tick of `op` listed the parked apps: its process's sweep ran at the tick's `now`.
    pub(in crate::sim::world) fn on_listed(&mut self, op: OpId) {
        if let Some(o) = self.ops.get(&op)
            && let Kind::Tick(i) = o.kind
        {
            self.parking.swept[i] = Some(o.started_clock);
        }
    }

    /// A tick instance's process died: its next tick sweeps at once.
    pub(in crate::sim::world) fn parking_process_died(&mut self, instance: usize) {
        self.parking.swept[instance] = None;
    }

    /// 11, the other half of "never before": a slice deleted while the app was not ready.
    pub(in crate::sim::world) fn on_unparked(
        &mut self,
        op: OpId,
        target: &Target,
        unparked: u64,
        without_check: bool,
    ) -> std::result::Result<(), SimFailure> {
        self.report.slices_unparked += unparked;
        let Some((id, _)) = self.park_app(target) else {
            return Ok(());
        };
        if !self.app_ready(id) {
            let how = if without_check {
                "unpark_now"
            } else {
                "a readiness-checked unpark"
            };
            return Err(self.fail(
                11,
                format!(
                    "op {op} unparked {target} ({unparked} slices, by {how}) while its own \
                     endpoints were not ready: its callers met a Service with no ready endpoint"
                ),
            ));
        }
        Ok(())
    }

    /// Invariant 11 when a clean tick completes.
    ///
    /// (a) An asleep app at 0 that a clean tick started with due for its drift check and not
    /// fully parked, and that it ended still so, is a strike; more than
    /// `ceil(period / interval) + 2` strikes fail, the bound of invariant 8 (the drift check's
    /// slice is what parks it again).
    /// (b) A clean tick whose process's sweep was due (by the job's own rule) started with an
    /// awake, ready app parked and ended with it still so: the sweep unparks every awake,
    /// ready app it lists, so one such tick fails.
    pub(in crate::sim::world) fn check_parking(
        &mut self,
        tick: &Op,
    ) -> std::result::Result<(), SimFailure> {
        let period = u64::from(self.config.reconcile_minutes) * 60;
        let allowed = period.div_ceil(self.config.interval_seconds.max(1)) + 2;
        if !tick.slice_waited {
            for (id, state_at) in &tick.due_park {
                if self.gap_now(*id) != Some(*state_at) {
                    continue;
                }
                let Some(e) = self.parking.gaps.get_mut(id) else {
                    continue;
                };
                if e.state_at != *state_at || e.since_step >= tick.started_step {
                    continue;
                }
                e.strikes += 1;
                let strikes = e.strikes;
                self.report.park_strikes += 1;
                self.report.max_park_strikes = self.report.max_park_strikes.max(strikes);
                if strikes > allowed {
                    return Err(self.fail(
                        11,
                        format!(
                            "row {id} is asleep at 0 with a Service not parked ({strikes} clean \
                             ticks started with it due; at most {allowed} may pass)"
                        ),
                    ));
                }
            }
        }
        for (id, state_at) in &tick.stuck {
            self.report.sweeps_checked += 1;
            if self.stuck_now(*id) == Some(*state_at)
                && self
                    .parking
                    .stuck
                    .get(id)
                    .is_some_and(|e| e.since_step < tick.started_step)
            {
                return Err(self.fail(
                    11,
                    format!(
                        "row {id} is awake and its app ready, yet still parked after a clean \
                         tick whose sweep was due"
                    ),
                ));
            }
        }
        Ok(())
    }
}
