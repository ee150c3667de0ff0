//! The simulation's `Parker`: each call gated like the store's and the scaler's, over the
//! world's `MemoryParker`, recording what was unparked for the invariants.

use std::time::Duration;

use async_trait::async_trait;
use idle_scaler_core::{ParkReport, ParkedApp, Parker, Result, Target, Unpark};

use super::SimPorts;
use crate::memory::ParkerMethod;
use crate::sim::gate::{Call, Event};

#[async_trait]
impl Parker for SimPorts {
    async fn park(&self, target: &Target) -> Result<ParkReport> {
        let f = self.enter(Call::Park(ParkerMethod::Park)).await?;
        let r = self.parker.park(target).await;
        self.leave(f, r).await
    }

    async fn unpark(&self, target: &Target) -> Result<Unpark> {
        let f = self.enter(Call::Park(ParkerMethod::Unpark)).await?;
        let r = self.parker.unpark(target).await;
        if let Ok(Unpark::Done(report)) = &r {
            self.record_unparked(target, report, false);
        }
        self.leave(f, r).await
    }

    /// One readiness-checked look, no wait: the simulation's clock moves only between steps,
    /// so a wait here could never see the app become ready.
    async fn unpark_when_ready(&self, target: &Target, _timeout: Duration) -> Result<Unpark> {
        let f = self
            .enter(Call::Park(ParkerMethod::UnparkWhenReady))
            .await?;
        let r = self.parker.unpark(target).await;
        if let Ok(Unpark::Done(report)) = &r {
            self.record_unparked(target, report, false);
        }
        self.leave(f, r).await
    }

    async fn unpark_now(&self, target: &Target) -> Result<ParkReport> {
        let f = self.enter(Call::Park(ParkerMethod::UnparkNow)).await?;
        let r = self.parker.unpark_now(target).await;
        if let Ok(report) = &r {
            self.record_unparked(target, report, true);
        }
        self.leave(f, r).await
    }

    async fn parked(&self) -> Result<Vec<ParkedApp>> {
        let f = self.enter(Call::Park(ParkerMethod::Parked)).await?;
        let r = self.parker.parked().await;
        if r.is_ok() {
            self.record(Event::Listed { op: self.op() });
        }
        self.leave(f, r).await
    }
}

impl SimPorts {
    fn record_unparked(&self, target: &Target, report: &ParkReport, now: bool) {
        let unparked = report.count("unparked");
        if unparked > 0 {
            self.record(Event::Unparked {
                op: self.op(),
                target: target.clone(),
                unparked,
                now,
            });
        }
    }
}
