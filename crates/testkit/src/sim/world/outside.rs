//! The world outside the job: the host changing rows, people and HPAs scaling Deployments,
//! Kubernetes writes the apiserver still held, and the clock.

use chrono::Duration;

use super::{Kind, TRANSITION_BOUND, World, Writer};
use crate::host::HostOps;
use crate::sim::SimFailure;
use crate::sim::gate::{DelayedWrite, Event, OpId};

impl World {
    pub(super) async fn host_event(&mut self) -> std::result::Result<(), SimFailure> {
        let app = self.rng.index(self.apps.len());
        let id = self.apps[app].id;
        let target = self.apps[app].target.clone();
        let now = self.now();
        let what = self.rng.below(100);
        if self.visited(id)
            && !(60..=79).contains(&what)
            && !((40..=59).contains(&what) && self.rng.percent(25))
        {
            // The host leaves a visited app's activity to its visitor, and its pin and its
            // Deployment alone (either would stop its rhythm for the rest of the world);
            // outside scalings still hit it, and now and then its expiry or status (a
            // pre-warm due then must not wake it).
            return Ok(());
        }
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
                // Half the time, a scale-up of an app that is asleep (a person, a GitOps
                // self-heal, an HPA): the drift the job must notice.
                let asleep = self.asleep_apps().await;
                let (t, replicas) = if !asleep.is_empty() && self.rng.percent(50) {
                    let t = asleep[self.rng.index(asleep.len())].clone();
                    (t, i32::try_from(self.rng.range(1, 4)).unwrap_or(1))
                } else {
                    let Some(t) = target else { return Ok(()) };
                    (t, i32::try_from(self.rng.range(0, 4)).unwrap_or(0))
                };
                self.report.external_scalings += 1;
                if self.cluster.get(&t).is_some() {
                    self.cluster.apply(&t, replicas);
                    self.last_writer.insert(t.to_string(), Writer::Outside);
                }
                format!("outside: {t} scaled to {replicas}")
            }
            84 if self.rng.percent(50) => {
                let Some(t) = target else { return Ok(()) };
                self.report.forbidden_deployments += u64::from(!self.cluster.is_forbidden(&t));
                self.cluster.forbid(&t);
                format!("host: RBAC for {t} removed (403 for good)")
            }
            80..=84 => {
                let Some(t) = target else { return Ok(()) };
                self.report.deletions += 1;
                self.cluster.delete(&t);
                self.parking_deleted(&t);
                format!("host: Deployment {t} deleted")
            }
            _ => {
                let Some(t) = target else { return Ok(()) };
                if self.cluster.get(&t).is_some() {
                    return Ok(());
                }
                let replicas = i32::try_from(self.rng.range(1, 3)).unwrap_or(1);
                self.cluster.apply(&t, replicas);
                self.parking_recreated(&t);
                self.last_writer.insert(t.to_string(), Writer::Outside);
                let _ = self.store.bump_activity(id, now).await;
                format!("host: Deployment {t} recreated at {replicas}")
            }
        };
        self.log(line);
        self.check()
    }

    /// The Deployments whose row is `asleep`.
    async fn asleep_apps(&self) -> Vec<idle_scaler_core::Target> {
        let mut found = Vec::new();
        for app in &self.apps {
            if let Some(t) = &app.target
                && self
                    .store
                    .read(app.id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.sleep_state == idle_scaler_core::SleepState::Asleep)
            {
                found.push(t.clone());
            }
        }
        found
    }

    /// Lands (or, at random, loses) the oldest delayed write; with `all`, every one of them:
    /// the apiserver's own timeout means none outlives a minute, so none survives a clock
    /// advance.
    pub(super) fn land_delayed(&mut self, all: bool) -> std::result::Result<(), SimFailure> {
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

    pub(super) fn advance_clock(&mut self) -> std::result::Result<(), SimFailure> {
        self.land_delayed(true)?;
        let secs = match self.rng.below(100) {
            0..=59 => self.rng.range(1, 30),
            60..=94 => self.rng.range(30, 240),
            _ => self.rng.range(180, 600),
        };
        // Stopped at a visitor's request, which comes on time.
        let to = self.clock_stop(self.now() + Duration::seconds(secs));
        let secs = (to - self.now()).num_seconds();
        // A wake is one transition from its start; a tick is bounded per transition, from
        // each intent it wrote and still holds, so the tick itself may outlast the stale age.
        let expired: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(op, o)| match o.kind {
                Kind::Wake(..) => o.started_clock + TRANSITION_BOUND <= to,
                Kind::Tick(_) => {
                    o.claimed.iter().any(|(id, at)| {
                        self.claims.get(id) == Some(*op) && *at + TRANSITION_BOUND <= to
                    }) || o.claiming.values().any(|at| *at + TRANSITION_BOUND <= to)
                }
            })
            .map(|(id, _)| *id)
            .collect();
        for op in expired {
            self.log(format!(
                "op {op}: killed, a transition in flight past the transition bound"
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
}
