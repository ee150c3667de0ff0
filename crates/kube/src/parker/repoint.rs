//! What is parked now (one labelled list of idle-scaler's slices, all namespaces), and
//! re-pointing all of it when the waker addresses change: each slice rewritten in place for
//! its family, a slice added for a family the waker gained, one deleted for a family it lost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use idle_scaler_core::parking::{ParkReport, ParkedApp};
use idle_scaler_core::{Result, Target};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{KubeParker, Slices};
use crate::bounded;
use crate::parking::{
    AddressFamily, DEPLOYMENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
    WakerAddresses, repointed,
};

/// Services re-pointed at once.
const CONCURRENCY: usize = 8;
/// The first pause before trying a failed re-point again; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

fn key<'a>(slice: &'a EndpointSlice, label: &str) -> Option<&'a str> {
    let meta = &slice.metadata;
    meta.labels.as_ref()?.get(label).map(String::as_str)
}

/// The Deployment a parked slice belongs to: the annotation's full name, else the label.
fn deployment_of(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEPLOYMENT_LABEL))
        .map(String::as_str)
        .or_else(|| key(slice, DEPLOYMENT_LABEL))
}

/// Groups idle-scaler's slices by app: `(namespace, deployment)` -> its parked Services.
pub(super) fn group_by_app(
    slices: &[EndpointSlice],
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut apps: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for slice in slices {
        let (Some(ns), Some(deployment), Some(service)) = (
            slice.metadata.namespace.as_deref(),
            deployment_of(slice),
            key(slice, SERVICE_NAME_LABEL),
        ) else {
            continue;
        };
        apps.entry((ns.to_owned(), deployment.to_owned()))
            .or_default()
            .insert(service.to_owned());
    }
    apps
}

impl KubeParker {
    /// Every slice labelled managed-by idle-scaler, in every namespace: one list.
    async fn all_parked(&self) -> Result<Vec<EndpointSlice>> {
        let scaler = self.factory.built().await?;
        let api: Api<EndpointSlice> = Api::all(scaler.client.clone());
        let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let what = || "list idle-scaler's endpointslices".to_owned();
        Ok(bounded(scaler.timeout, what, api.list(&lp)).await?.items)
    }

    /// Whether a slice idle-scaler wrote lists `ip` as an endpoint (one list, all
    /// namespaces): a stopping waker keeps its parking listener open while one does.
    ///
    /// # Errors
    /// `unavailable` when the slices could not be listed.
    pub async fn lists_address(&self, ip: IpAddr) -> Result<bool> {
        let wanted = ip.to_string();
        Ok(self.all_parked().await?.iter().any(|slice| {
            slice.endpoints.iter().any(|e| {
                e.addresses
                    .iter()
                    .any(|a| a.parse::<IpAddr>().ok() == Some(ip) || *a == wanted)
            })
        }))
    }

    pub(super) async fn parked_apps(&self) -> Result<Vec<ParkedApp>> {
        let slices = self.all_parked().await?;
        Ok(group_by_app(&slices)
            .into_iter()
            .map(|((namespace, name), services)| ParkedApp {
                target: Target {
                    cluster: self.cluster.clone(),
                    namespace,
                    name,
                },
                services: u32::try_from(services.len()).unwrap_or(u32::MAX),
            })
            .collect())
    }

    /// Points every parked slice at the current waker addresses (one list, then a write per
    /// slice that points elsewhere); an empty report when no address is known yet. Only
    /// idle-scaler's slices are written; a slice of an app woken meanwhile may be rewritten,
    /// never created anew for a Service that has none left.
    pub async fn repoint(&self) -> Result<ParkReport> {
        let Some(waker) = self.addresses() else {
            return Ok(ParkReport::default());
        };
        let scaler = self.factory.built().await?;
        let mut services: BTreeMap<(String, String), Vec<EndpointSlice>> = BTreeMap::new();
        for slice in self.all_parked().await? {
            let (Some(ns), Some(service)) = (
                slice.metadata.namespace.clone(),
                key(&slice, SERVICE_NAME_LABEL).map(str::to_owned),
            ) else {
                continue;
            };
            services.entry((ns, service)).or_default().push(slice);
        }
        let reports: Vec<ParkReport> = futures::stream::iter(services)
            .map(|((ns, _), slices)| {
                let api = Slices::new(&scaler, &ns);
                let waker = &waker;
                async move { repoint_service(&api, &slices, waker).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut report = ParkReport::default();
        for r in &reports {
            report.merge(r);
        }
        Ok(report)
    }

    /// Re-points the parked slices now, and again on every change of the waker addresses,
    /// until `shutdown` (a failed pass is tried again, with a growing pause). The first pass
    /// fixes slices a previous run left pointing at addresses that are gone.
    pub async fn follow_addresses(&self, shutdown: CancellationToken) {
        let mut feed = self.addresses.clone();
        let mut open = true;
        let mut due = true;
        let mut pointed = false;
        let mut pause = RETRY_FIRST;
        loop {
            if due {
                feed.borrow_and_update();
                pointed = self.repoint_logged().await;
                if pointed {
                    pause = RETRY_FIRST;
                }
            }
            due = true;
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = feed.changed(), if open => {
                    if changed.is_err() {
                        // The sender is gone (static addresses): no change will come.
                        open = false;
                        due = false;
                    }
                }
                () = tokio::time::sleep(pause), if !pointed => {
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One [`Self::repoint`], logged; true when every slice points at the waker now.
    async fn repoint_logged(&self) -> bool {
        match self.repoint().await {
            Ok(report) if report.count("failed") == 0 => {
                if report.count("parked") + report.count("unparked") > 0 {
                    info!(results = ?report.results, "parking: slices re-pointed at the waker addresses");
                }
                true
            }
            Ok(report) => {
                warn!(results = ?report.results, "parking: some slices could not be re-pointed; trying again");
                false
            }
            Err(e) => {
                warn!(error = %idle_scaler_core::error_chain(&e),
                    "parking: the parked slices could not be listed to re-point them; trying again");
                false
            }
        }
    }
}

/// Points one Service's parked slices at `waker`: its slice of each family the waker has,
/// rewritten (or created from a sibling), then the slices of families it lost deleted.
async fn repoint_service(
    api: &Slices,
    slices: &[EndpointSlice],
    waker: &WakerAddresses,
) -> ParkReport {
    let mut report = ParkReport::default();
    let family_of = |s: &EndpointSlice| AddressFamily::from_address_type(&s.address_type);
    let Some(template) = slices.first() else {
        return report;
    };
    for family in [AddressFamily::V4, AddressFamily::V6] {
        let Some(addresses) = waker.family(family) else {
            continue;
        };
        let current = slices.iter().find(|s| family_of(s) == Some(family));
        let planned = repointed(current.unwrap_or(template), family, addresses);
        // A slice of this family under another name is not ours to rename: write ours.
        let current = current.filter(|s| s.metadata.name == planned.metadata.name);
        report.add(api.put(&planned, current).await);
    }
    let lost: Vec<EndpointSlice> = slices
        .iter()
        .filter(|s| family_of(s).is_none_or(|f| waker.family(f).is_none()))
        .cloned()
        .collect();
    report.merge(&api.delete_all(&lost).await);
    report
}
