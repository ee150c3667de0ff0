//! Which namespace a caller's address belongs to: one `list pods` by `status.podIP` (all
//! namespaces) per address, remembered for a while, "no pod" too; concurrent misses for one
//! address share one request; at most a bounded number of addresses remembered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::map_error_at;

/// One address's answer, shared by everyone asking while it is fetched.
type Cell = Arc<OnceCell<(Option<String>, Instant)>>;

/// The cache.
pub(super) struct PodNamespaces {
    client: kube::Client,
    timeout: Duration,
    ttl: Duration,
    capacity: usize,
    cells: Mutex<HashMap<IpAddr, Cell>>,
}

impl std::fmt::Debug for PodNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNamespaces")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl PodNamespaces {
    pub fn new(client: kube::Client, timeout: Duration, ttl: Duration, capacity: usize) -> Self {
        Self {
            client,
            timeout,
            ttl,
            capacity: capacity.max(1),
            cells: Mutex::default(),
        }
    }

    /// The namespace of the pod at `ip`, `None` when no pod (or pods of several namespaces,
    /// such as host-network pods of one node) has it.
    pub async fn namespace(&self, ip: IpAddr) -> idle_scaler_core::Result<Option<String>> {
        let cell = self.cell(ip);
        let (ns, _) = cell
            .get_or_try_init(|| async {
                let ns = self.fetch(ip).await?;
                Ok::<_, idle_scaler_core::Error>((ns, Instant::now()))
            })
            .await?;
        Ok(ns.clone())
    }

    /// The cell of `ip`: the one remembered while fresh (or still being fetched), else a new
    /// one, making room first when the cache is full.
    fn cell(&self, ip: IpAddr) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |c: &Cell| c.get().is_none_or(|(_, at)| at.elapsed() < self.ttl);
        if let Some(c) = cells.get(&ip).filter(|c| fresh(c)) {
            return c.clone();
        }
        if cells.len() >= self.capacity && !cells.contains_key(&ip) {
            cells.retain(|_, c| fresh(c));
            if cells.len() >= self.capacity {
                // Still full of fresh answers: forget the oldest.
                let oldest = cells
                    .iter()
                    .filter_map(|(ip, c)| c.get().map(|(_, at)| (*at, *ip)))
                    .min();
                if let Some((_, ip)) = oldest {
                    cells.remove(&ip);
                }
            }
        }
        let c = Cell::default();
        cells.insert(ip, c.clone());
        c
    }

    async fn fetch(&self, ip: IpAddr) -> idle_scaler_core::Result<Option<String>> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("status.podIP={ip}"));
        let what = format!("list pods by address {ip}");
        let list = match tokio::time::timeout(self.timeout, api.list(&lp)).await {
            Ok(r) => r.map_err(|e| map_error_at(what, e))?,
            Err(_) => {
                return Err(idle_scaler_core::Error::unavailable(format!(
                    "{what}: no answer within {} ms",
                    self.timeout.as_millis()
                ))
                .with_reach(idle_scaler_core::Reach::NoAnswer));
            }
        };
        Ok(namespace_of(&list.items))
    }
}

/// The one namespace of the live pods listed (a finished pod may have left its address to
/// another); `None` when there is none, or several namespaces claim it.
pub(super) fn namespace_of(pods: &[Pod]) -> Option<String> {
    let mut live = pods.iter().filter(|p| {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        !matches!(phase, Some("Succeeded" | "Failed"))
    });
    let ns = live.next()?.metadata.namespace.clone()?;
    live.all(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .then_some(ns)
}
