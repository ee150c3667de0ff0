//! Operations in flight: starting ticks and wakes, letting their port calls through one at a
//! time (with a fault drawn per call), polling them, and accounting for how they end.

use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{Outcome, SleepState, WakeReason, WakeResult};
use uuid::Uuid;

use super::{AwaitNow, Ended, Kind, Op, OpOut, World};
use crate::host::HostOps;
use crate::memory::StoreMethod;
use crate::sim::SimFailure;
use crate::sim::gate::{Call, Fault, OpId};

impl World {
    pub(super) fn start_tick(&mut self, instance: usize) -> std::result::Result<(), SimFailure> {
        if self.ops.values().any(|o| o.kind == Kind::Tick(instance)) {
            return Ok(());
        }
        self.next_op += 1;
        let op = self.next_op;
        let job = self.tick_job(instance, op);
        self.report.ticks_started += 1;
        self.kinds.insert(op, Kind::Tick(instance));
        self.log(format!("op {op}: tick of instance {instance} starts"));
        let mut o = Op::new(
            Kind::Tick(instance),
            Box::pin(async move { OpOut::Tick(job.tick().await) }),
            self.step,
            self.now(),
        );
        o.due_drift = self.due_drift();
        self.parking_at_tick_start(instance, &mut o);
        self.ops.insert(op, o);
        self.poll(op)
    }

    pub(super) fn start_wake(
        &mut self,
        slot: usize,
        id: Uuid,
    ) -> std::result::Result<(), SimFailure> {
        self.start_wake_for(slot, id, WakeReason::Api)
    }

    pub(super) fn start_wake_for(
        &mut self,
        slot: usize,
        id: Uuid,
        reason: WakeReason,
    ) -> std::result::Result<(), SimFailure> {
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
        self.log(format!("op {op}: wake {id} starts ({reason:?})"));
        self.ops.insert(
            op,
            Op::new(
                Kind::Wake(slot, id),
                Box::pin(async move { OpOut::Wake(job.wake_for(id, reason).await) }),
                self.step,
                self.now(),
            ),
        );
        self.poll(op)
    }

    /// Wakes in flight that have scaled their app up and not yet flipped the row (`prewarms`:
    /// ticks with such a pre-warm; a pre-warm is a wake, invariant 10 applies to it).
    pub(super) fn cancellable_wakes(&self, prewarms: bool) -> Vec<OpId> {
        let not_awake = |id: Uuid| {
            self.store
                .read(id)
                .await_now()
                .is_some_and(|r| r.sleep_state != SleepState::Awake)
        };
        self.ops
            .iter()
            .filter(|(_, o)| match o.kind {
                Kind::Wake(_, id) => !prewarms && o.scaled_up && not_awake(id),
                Kind::Tick(_) => {
                    prewarms
                        && o.prewarms
                            .iter()
                            .any(|(id, scaled)| *scaled && not_awake(*id))
                }
            })
            .map(|(op, _)| *op)
            .collect()
    }

    /// Drops a wake between its scale-up and its row flip (its process died): the app runs
    /// under a row still `asleep` and marked as being woken, which the drift check settles.
    pub(super) fn cancel_wake(&mut self, op: OpId) -> std::result::Result<(), SimFailure> {
        if matches!(self.ops.get(&op).map(|o| o.kind), Some(Kind::Tick(_))) {
            self.log(format!("op {op}: tick cut after a pre-warm's scale-up"));
            self.report.prewarms_cut += 1;
        } else {
            self.log(format!("op {op}: wake cancelled after its scale-up"));
        }
        self.report.wakes_cancelled += 1;
        self.end(op);
        self.check()
    }

    /// Lets one waiting port call of `op` through (chosen at random when its concurrent
    /// attempts wait at several), with a fault decided now.
    pub(super) fn advance(&mut self, op: OpId) -> std::result::Result<(), SimFailure> {
        let waiting = self.shared.waiting(op);
        if waiting.is_empty() {
            return Err(self.fail(0, format!("harness: op {op} waits at no gate")));
        }
        let (waiter, call) = waiting[self.rng.index(waiting.len())];
        let fault = self.fault_for(call);
        if matches!(call, Call::Park(_)) {
            self.sync_ready();
        }
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
        let now = self.now();
        let claiming: Vec<u64> = self
            .shared
            .waiting(op)
            .into_iter()
            .filter(|(_, call)| *call == Call::Store(StoreMethod::ClaimSleep))
            .map(|(w, _)| w)
            .collect();
        if let Some(o) = self.ops.get_mut(&op) {
            o.claiming.retain(|w, _| claiming.contains(w));
            for w in claiming {
                o.claiming.entry(w).or_insert(now);
            }
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

    /// Drops `op` half way: its process died (a tick's instance restarts with a new job).
    pub(super) fn end(&mut self, op: OpId) {
        if let Some(o) = self.ops.remove(&op) {
            self.shared.forget(op);
            self.ended.insert(op, Ended { step: self.step });
            if let Kind::Tick(i) = o.kind {
                self.tick_jobs[i] = None;
                self.parking_process_died(i);
            }
        }
    }

    fn complete(&mut self, op: OpId, out: OpOut) -> std::result::Result<(), SimFailure> {
        let Some(o) = self.ops.remove(&op) else {
            return Ok(());
        };
        self.shared.forget(op);
        self.ended.insert(op, Ended { step: self.step });
        if matches!(o.kind, Kind::Tick(_)) && self.now() - o.started_clock > STALE_INTENT_AFTER {
            self.report.slow_ticks += 1;
            self.log(format!(
                "op {op}: slow tick, {}s long",
                (self.now() - o.started_clock).num_seconds()
            ));
        }
        match out {
            OpOut::Tick(Ok(report)) => {
                self.report.ticks_completed += 1;
                self.report.ticks_stopped_early += u64::from(report.stopped_early);
                self.report.drifts_fixed += report.drift.values().sum::<u64>();
                self.report.scaled_down += report.outcome(Outcome::ScaledDown);
                self.report.scale_failed += report.outcome(Outcome::ScaleFailed);
                self.report.recovered += report.recovered.values().sum::<u64>();
                let parking = |r: &str| report.parking.get(r).copied().unwrap_or(0);
                self.report.slices_parked += parking("parked");
                self.report.park_conflicts += parking("conflict");
                self.log(format!(
                    "op {op}: tick done: {} slept, {} failed, skips {:?}, recovered {:?}, drift {:?}{}",
                    report.outcome(Outcome::ScaledDown),
                    report.outcome(Outcome::ScaleFailed),
                    report.skips,
                    report.recovered,
                    report.drift,
                    if report.stopped_early { ", stopped early" } else { "" }
                ));
                if !o.faulted {
                    self.report.clean_ticks += 1;
                    self.after_clean_tick(op, &o)?;
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
                self.visit_answered(op);
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
}
