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
use idle_scaler_core::{DeploymentRecord, ServedClusters, SleepState, Store, Target};
use uuid::Uuid;

use super::{AwaitNow, Kind, Op, World, ready};
use crate::host::HostOps;
use crate::memory::MemoryParker;
use crate::rng::Rng;
use crate::sim::SimFailure;
use crate::sim::gate::OpId;

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

/// What a step read of one app (the row, the Deployment's replicas, whether it answers 403).
pub(in crate::sim::world) struct Seen {
    pub(in crate::sim::world) id: Uuid,
    pub(in crate::sim::world) row: Option<DeploymentRecord>,
    pub(in crate::sim::world) replicas: Option<i32>,
    pub(in crate::sim::world) forbidden: bool,
}

/// A state that invariant 11 bounds: since when, and the clean ticks it outlived.
#[derive(Debug, Clone, Copy)]
struct Episode {
    /// The row's `sleep_state_changed_at` when it began (a new transition is a new episode).
    state_at: DateTime<Utc>,
    since_step: u64,
    strikes: u64,
    /// Clean ticks whose drift check read the row and left it so (11a).
    checked_strikes: u64,
}

/// What the world keeps of parking.
pub(in crate::sim::world) struct ParkingModel {
    pub(in crate::sim) parker: Arc<MemoryParker>,
    apps: BTreeMap<Uuid, ParkApp>,
    /// Since when each app has run (replicas > 0), as seen at the end of each step.
    up_since: BTreeMap<Uuid, DateTime<Utc>>,
    /// The readiness last written into the Parker, per app (written again only on a change).
    ready_sent: std::cell::RefCell<BTreeMap<Uuid, bool>>,
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
            ready_sent: std::cell::RefCell::default(),
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
        let replicas = self.cluster.get(&app.target).map(|d| d.replicas);
        self.ready_with(id, app, replicas)
    }

    fn ready_with(&self, id: Uuid, app: &ParkApp, replicas: Option<i32>) -> bool {
        replicas.is_some_and(|r| r > 0)
            && self
                .parking
                .up_since
                .get(&id)
                .is_some_and(|at| *at + app.startup <= self.now())
    }

    /// Writes each app's readiness into the Parker (before a call is granted).
    pub(in crate::sim::world) fn sync_ready(&self) {
        let mut sent = self.parking.ready_sent.borrow_mut();
        for (id, app) in &self.parking.apps {
            let ready = self.app_ready(*id);
            if sent.insert(*id, ready) != Some(ready) {
                self.parking.parker.set_ready(&app.target, ready);
            }
        }
    }

    fn fully_parked(&self, app: &ParkApp) -> bool {
        let parked = self.parking.parker.parked_services(&app.target);
        app.parkable.iter().all(|s| parked.contains(s))
    }

    /// 11a: the row is asleep over its Deployment at 0 and a Service is not parked.
    fn gap_now(&self, id: Uuid) -> Option<DateTime<Utc>> {
        self.parking_now(id).0
    }

    /// 11b: the row is awake, the app ready, and a slice of its still parked.
    fn stuck_now(&self, id: Uuid) -> Option<DateTime<Utc>> {
        self.parking_now(id).1
    }

    /// Both of the above, from one read of the row and of the Deployment (after every step).
    fn parking_now(&self, id: Uuid) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let Some(app) = self.parking.apps.get(&id) else {
            return (None, None);
        };
        let Some(row) = self.store.read(id).await_now() else {
            return (None, None);
        };
        let replicas = self.cluster.get(&app.target).map(|d| d.replicas);
        let at = row.sleep_state_changed_at;
        match row.sleep_state {
            SleepState::Asleep => {
                let gap = replicas == Some(0)
                    && !self.cluster.is_forbidden(&app.target)
                    && !self.fully_parked(app);
                (gap.then_some(at), None)
            }
            SleepState::Awake => {
                let stuck = self.ready_with(id, app, replicas)
                    && self.parking.parker.is_parked(&app.target);
                (None, stuck.then_some(at))
            }
            SleepState::Sleeping => (None, None),
        }
    }

    /// After every step, from the step's reads of each row and Deployment (`seen`) and one
    /// look at the slices: readiness, the episodes 11 bounds, and 11c.
    pub(in crate::sim::world) fn track_parking(
        &mut self,
        seen: &[Seen],
    ) -> std::result::Result<(), SimFailure> {
        let now = self.now();
        let parked = self.parking.parker.parked_by_app();
        let step = self.step;
        for s in seen {
            let id = s.id;
            if s.replicas.is_some_and(|r| r > 0) {
                self.parking.up_since.entry(id).or_insert(now);
            } else {
                self.parking.up_since.remove(&id);
            }
            let Some(app) = self.parking.apps.get(&id) else {
                continue;
            };
            let ready = self.ready_with(id, app, s.replicas);
            if self.parking.ready_sent.borrow_mut().insert(id, ready) != Some(ready) {
                self.parking.parker.set_ready(&app.target, ready);
            }
            let services = parked.get(&(app.target.namespace.clone(), app.target.name.clone()));
            let (mut gap, mut stuck) = (None, None);
            if let Some(row) = &s.row {
                let at = row.sleep_state_changed_at;
                match row.sleep_state {
                    SleepState::Asleep if s.replicas == Some(0) && !s.forbidden => {
                        let all = app
                            .parkable
                            .iter()
                            .all(|svc| services.is_some_and(|p| p.contains(svc)));
                        gap = (!all).then_some(at);
                    }
                    SleepState::Awake if ready && services.is_some() => stuck = Some(at),
                    _ => {}
                }
            }
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
                                checked_strikes: 0,
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
}

mod checks; // invariant 11, judged after every step and at each clean tick
