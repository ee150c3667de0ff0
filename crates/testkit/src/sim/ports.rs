//! The simulation's view of the ports: every `Store`, `Scaler` and `Parker` call of an operation
//! waits at its gate until the scheduler grants it, so the scheduler interleaves operations one port call
//! at a time and decides, per call, whether it fails, fails after its effect (the response is
//! lost), or never completes (the process died there).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idle_scaler_core::{
    AsleepRow, BackOff, BackedOff, Candidate, ConfirmOutcome, DeploymentRecord, Drift, Error,
    Result, Scale, Scaler, ServedClusters, SleepState, StaleIntent, Store, Target,
};
use uuid::Uuid;

use super::cluster::SimCluster;
use super::gate::{Call, DelayedWrite, Event, Fault, Gate, OpId, Shared};
use crate::host::HostOps;
use crate::memory::{MemoryParker, MemoryStore, StoreMethod};

mod parker; // the `Parker` calls, gated like the others
mod rhythm; // the `RhythmStore` calls, gated like the others

/// The `Store`, `Scaler` and `Parker` of one job instance, on behalf of its operation in flight.
#[derive(Clone)]
pub(super) struct SimPorts {
    pub(super) shared: Shared,
    /// The operation the calls belong to: a tick instance's job outlives its ticks (its drift
    /// slice is sized by its last count of asleep rows), so the scheduler sets it per tick.
    pub(super) op: Arc<AtomicU64>,
    pub(super) store: MemoryStore,
    pub(super) cluster: Arc<SimCluster>,
    /// The Services and slices of the cluster; the scheduler keeps each app's readiness in it
    /// current from the cluster's replicas before it grants a call.
    pub(super) parker: Arc<MemoryParker>,
}

impl std::fmt::Debug for SimPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPorts").field("op", &self.op()).finish()
    }
}

impl SimPorts {
    fn op(&self) -> OpId {
        self.op.load(Ordering::SeqCst)
    }

    async fn enter(&self, call: Call) -> Result<Fault> {
        let fault = Gate::new(self.shared.clone(), self.op(), call).await;
        match fault {
            Fault::ErrBefore if call.is_kube() => {
                Err(Error::unavailable("injected: 500 Internal Server Error"))
            }
            Fault::ErrBefore => Err(Error::store("injected: connection reset")),
            Fault::CrashBefore => self.hang().await,
            Fault::None | Fault::ErrAfter | Fault::CrashAfter | Fault::Delayed => Ok(fault),
        }
    }

    async fn leave<T>(&self, fault: Fault, result: Result<T>) -> Result<T> {
        match fault {
            Fault::ErrAfter => Err(Error::unavailable(
                "injected: timed out after the request was sent",
            )),
            Fault::CrashAfter => self.hang().await,
            _ => result,
        }
    }

    /// The process died here: this call never returns.
    async fn hang<T>(&self) -> T {
        self.shared.lock().crashed.push(self.op());
        std::future::pending().await
    }

    fn record(&self, event: Event) {
        self.shared.lock().events.push(event);
    }

    fn record_forbidden<T>(&self, target: &Target, r: &Result<T>) {
        if matches!(r, Err(Error::Forbidden { .. })) {
            self.record(Event::Forbidden {
                op: self.op(),
                target: target.clone(),
            });
        }
    }

    async fn row(&self, id: Uuid) -> Option<DeploymentRecord> {
        self.store.read(id).await.ok().flatten()
    }
}

#[async_trait]
impl Store for SimPorts {
    async fn select_candidates(
        &self,
        served: &ServedClusters,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Candidate>> {
        let f = self
            .enter(Call::Store(StoreMethod::SelectCandidates))
            .await?;
        let r = self
            .store
            .select_candidates(served, now, idle_before, limit)
            .await;
        if let Ok(found) = &r {
            self.record(Event::Selected {
                op: self.op(),
                now,
                found: found.iter().map(|c| (c.id, c.last_activity_at)).collect(),
                backoffs: found.iter().map(|c| (c.id, c.backoff_count)).collect(),
            });
        }
        self.leave(f, r).await
    }

    async fn claim_sleep(
        &self,
        id: Uuid,
        seen: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        replicas: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::ClaimSleep)).await?;
        let before = self.row(id).await;
        let adaptive = self.store.adaptive_of(id);
        let r = self
            .store
            .claim_sleep(id, seen, idle_before, replicas, now)
            .await;
        if let Ok(won) = &r {
            self.record(Event::Claim {
                op: self.op(),
                id,
                seen,
                idle_before,
                now,
                before,
                adaptive,
                won: *won,
            });
        }
        self.leave(f, r).await
    }

    async fn confirm_sleep(
        &self,
        id: Uuid,
        seen: DateTime<Utc>,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let f = self.enter(Call::Store(StoreMethod::ConfirmSleep)).await?;
        let before = self.row(id).await;
        let r = self.store.confirm_sleep(id, seen, intent_at, now).await;
        if let Ok(outcome) = &r {
            self.record(Event::Confirm {
                op: self.op(),
                id,
                seen,
                before,
                outcome: *outcome,
            });
        }
        self.leave(f, r).await
    }

    async fn revert_sleep(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::RevertSleep)).await?;
        let r = self.store.revert_sleep(id, intent_at, now).await;
        if let Ok(done) = &r {
            self.record(Event::Revert {
                op: self.op(),
                id,
                done: *done,
            });
        }
        self.leave(f, r).await
    }

    async fn back_off(&self, id: Uuid, seen: DateTime<Utc>, backoff: &BackOff) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::BackOff)).await?;
        let r = self.store.back_off(id, seen, backoff).await;
        self.leave(f, r).await
    }

    async fn backed_off(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<BackedOff>> {
        let f = self.enter(Call::Store(StoreMethod::BackedOff)).await?;
        let r = self.store.backed_off(now, limit).await;
        self.leave(f, r).await
    }

    async fn settle_intent(
        &self,
        id: Uuid,
        intent_at: DateTime<Utc>,
        to: SleepState,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::SettleIntent)).await?;
        let before = self.row(id).await;
        let r = self.store.settle_intent(id, intent_at, to, now).await;
        if let Ok(done) = &r {
            self.record(Event::Settle {
                op: self.op(),
                id,
                to,
                before,
                done: *done,
            });
        }
        self.leave(f, r).await
    }

    async fn stale_intents(
        &self,
        served: &ServedClusters,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<StaleIntent>> {
        let f = self.enter(Call::Store(StoreMethod::StaleIntents)).await?;
        let r = self.store.stale_intents(served, older_than).await;
        self.leave(f, r).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<DeploymentRecord>> {
        let f = self.enter(Call::Store(StoreMethod::Get)).await?;
        let r = self.store.get(id).await;
        if let Ok(row) = &r {
            self.record(Event::Read {
                op: self.op(),
                row: row.clone(),
            });
        }
        self.leave(f, r).await
    }

    async fn finish_wake(
        &self,
        id: Uuid,
        from: SleepState,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::FinishWake)).await?;
        let r = self.store.finish_wake(id, from, state_at, now).await;
        if let Ok(done) = &r {
            self.record(Event::FinishWake {
                op: self.op(),
                id,
                from,
                done: *done,
            });
        }
        self.leave(f, r).await
    }

    async fn begin_wake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::BeginWake)).await?;
        let before = self.row(id).await;
        let r = self.store.begin_wake(id, state_at, now).await;
        if let Ok(done) = &r {
            self.record(Event::BeginWake {
                op: self.op(),
                id,
                before,
                done: *done,
            });
        }
        self.leave(f, r).await
    }

    async fn asleep_to_check(
        &self,
        served: &ServedClusters,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AsleepRow>> {
        let f = self.enter(Call::Store(StoreMethod::AsleepToCheck)).await?;
        let r = self
            .store
            .asleep_to_check(served, checked_before, limit)
            .await;
        if let Ok(rows) = &r {
            self.record(Event::ToCheck {
                op: self.op(),
                checked_before,
                rows: rows.clone(),
            });
        }
        self.leave(f, r).await
    }

    async fn mark_checked(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::MarkChecked)).await?;
        let r = self.store.mark_checked(id, now).await;
        self.leave(f, r).await
    }

    async fn reconcile_awake(
        &self,
        id: Uuid,
        state_at: DateTime<Utc>,
        kind: Drift,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::ReconcileAwake)).await?;
        let r = self.store.reconcile_awake(id, state_at, kind, now).await;
        self.leave(f, r).await
    }

    async fn touch_awake(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::TouchAwake)).await?;
        let r = self.store.touch_awake(id, now).await;
        if let Ok(done) = &r {
            self.record(Event::TouchAwake {
                op: self.op(),
                id,
                done: *done,
            });
        }
        self.leave(f, r).await
    }

    async fn record_traffic(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let f = self.enter(Call::Store(StoreMethod::RecordTraffic)).await?;
        let r = self.store.record_traffic(id, at).await;
        self.leave(f, r).await
    }

    async fn list_sleeping(&self) -> Result<Vec<DeploymentRecord>> {
        let f = self.enter(Call::Store(StoreMethod::ListSleeping)).await?;
        let r = self.store.list_sleeping().await;
        self.leave(f, r).await
    }

    async fn count_asleep(&self) -> Result<i64> {
        let f = self.enter(Call::Store(StoreMethod::CountAsleep)).await?;
        let r = self.store.count_asleep().await;
        self.leave(f, r).await
    }

    async fn find_by_provider_id(&self, provider_id: &str) -> Result<Option<DeploymentRecord>> {
        // A read: gated, no event (the waker is not simulated).
        let f = self
            .enter(Call::Store(StoreMethod::FindByProviderId))
            .await?;
        let r = self.store.find_by_provider_id(provider_id).await;
        self.leave(f, r).await
    }

    async fn sum_asleep_replicas(&self, default: i32) -> Result<i64> {
        let f = self
            .enter(Call::Store(StoreMethod::SumAsleepReplicas))
            .await?;
        let r = self.store.sum_asleep_replicas(default).await;
        self.leave(f, r).await
    }
}

#[async_trait]
impl Scaler for SimPorts {
    async fn get_scale(&self, target: &Target) -> Result<Scale> {
        let f = self.enter(Call::GetScale).await?;
        let r = self.cluster.scale(target);
        self.record_forbidden(target, &r);
        self.leave(f, r).await
    }

    async fn set_replicas<'a>(
        &self,
        target: &Target,
        replicas: i32,
        resource_version: Option<&'a str>,
    ) -> Result<()> {
        let f = self.enter(Call::SetReplicas).await?;
        if f == Fault::Delayed {
            self.shared.lock().delayed.push(DelayedWrite {
                op: self.op(),
                target: target.clone(),
                replicas,
                resource_version: resource_version.map(str::to_owned),
            });
            return Err(Error::unavailable(
                "injected: timed out; the request may still be applied",
            ));
        }
        let before = self.cluster.get(target);
        let r = self.cluster.set_scale(target, replicas, resource_version);
        self.record_forbidden(target, &r);
        if r.is_ok() {
            self.record(Event::Scaled {
                op: self.op(),
                target: target.clone(),
                replicas,
                before,
            });
        }
        self.leave(f, r.map(|_| ())).await
    }
}
