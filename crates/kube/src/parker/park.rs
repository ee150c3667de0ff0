//! Parking one slept app: read its namespace, plan with the current waker addresses, write
//! the planned slices, delete idle-scaler's slices of the app the plan no longer has.

use std::collections::BTreeSet;

use idle_scaler_core::parking::ParkReport;
use idle_scaler_core::{Error as CoreError, Result, Target};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use tracing::{debug, info};

use super::{KubeParker, Slices, ours_selector};
use crate::bounded;
use crate::parking::{self, Skip};

impl KubeParker {
    pub(super) async fn park_app(&self, target: &Target) -> Result<ParkReport> {
        let waker = self.waker()?;
        let scaler = self.factory.built().await?;
        let ns = target.namespace.as_str();
        let deployments: Api<Deployment> = Api::namespaced(scaler.client.clone(), ns);
        let services: Api<Service> = Api::namespaced(scaler.client.clone(), ns);
        let slices = Slices::new(&scaler, ns);
        let lp = ListParams::default();
        let ours = ours_selector(target);
        let (deployments, services, ours) = tokio::try_join!(
            bounded(
                scaler.timeout,
                || format!("list deployments {ns}"),
                deployments.list(&lp)
            ),
            bounded(
                scaler.timeout,
                || format!("list services {ns}"),
                services.list(&lp)
            ),
            slices.list(&ours),
        )?;
        let deployment = deployments
            .items
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(target.name.as_str()))
            .ok_or_else(|| CoreError::not_found(format!("deployment {target} does not exist")))?;
        let plan = parking::plan_routed(
            deployment,
            &services.items,
            &deployments.items,
            &waker,
            &self.protected,
            self.routes.as_deref(),
        );

        let mut report = ParkReport::default();
        for skipped in &plan.skipped {
            report.add(skipped.reason.as_str());
            // Every other app's Service is `not_selected`: counted, never worth a line.
            if skipped.reason != Skip::NotSelected {
                debug!(target = %target, service = %skipped.name, reason = skipped.reason.as_str(),
                    "parking: service not parked");
            }
        }
        for service in &plan.parked {
            if !service.over_limit.is_empty() {
                info!(target = %target, service = %service.name, ports = ?service.over_limit,
                    "parking: HTTP ports beyond the eighth are not parked");
            }
            for slice in &service.slices {
                let current = ours
                    .items
                    .iter()
                    .find(|s| s.metadata.name == slice.metadata.name);
                report.add(slices.put(slice, current).await);
            }
        }
        // Written first, deleted after: a Service switching family never lacks a waker.
        let planned: BTreeSet<&str> = plan
            .parked
            .iter()
            .flat_map(|s| &s.slices)
            .filter_map(|s| s.metadata.name.as_deref())
            .collect();
        let stale: Vec<_> = ours
            .items
            .iter()
            .filter(|s| !planned.contains(s.metadata.name.as_deref().unwrap_or_default()))
            .cloned()
            .collect();
        report.merge(&slices.delete_all(&stale).await);
        debug!(target = %target, results = ?report.results, "parking: parked");
        Ok(report)
    }
}
