//! The watches that keep the route table current: Ingresses, and the Gateway API kinds once
//! their CRDs are served.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use idle_scaler_core::routes::{RouteKind, RouteTable};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use kube::core::ApiResource;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::RouteIndexSettings;
use super::objects::{Gateway, HttpRoute, ReferenceGrant, resource};
use super::reduce::{self, Context, Gateways, Grants, Notes, Reduced};
use crate::reflect::{Change, reflect_kept};

/// Which kinds have been listed once (or found absent or forbidden).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Synced {
    pub ingresses: bool,
    pub http_routes: bool,
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub table: RwLock<RouteTable>,
    pub synced: watch::Sender<Synced>,
    /// `None` until listed, and when they may not be read.
    gateways: Mutex<Option<Gateways>>,
    grants: Mutex<Grants>,
    /// Bumped when Gateway listeners or grants change: the routes are reduced again.
    relist: watch::Sender<u64>,
    regex_logged: AtomicBool,
}

impl Shared {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, RouteTable> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, kind: RouteKind, change: Change<Reduced>) {
        match change {
            // Pages were applied as they came (`page`): remove what the list did not bring.
            Change::Listed(_) => {
                let mut table = self.write();
                table.finish_list(kind);
                debug!(
                    ?kind,
                    routes = table.len(),
                    rules = table.rules(),
                    "route index: listed"
                );
            }
            Change::Applied(Reduced { route: Some(r), .. }) => self.write().upsert(r),
            Change::Applied(r) | Change::Deleted(r) => {
                self.write().remove(kind, &r.namespace, &r.name);
            }
        }
    }

    /// One page of a list of `kind`, applied at once so a list is never held whole.
    fn page(&self, kind: RouteKind, items: Vec<Reduced>, first: bool) -> Vec<Reduced> {
        let mut table = self.write();
        if first {
            table.start_list(kind);
        }
        for r in items {
            match r.route {
                Some(route) => table.upsert(route),
                None => {
                    table.remove(kind, &r.namespace, &r.name);
                }
            }
        }
        Vec::new()
    }

    fn mark(&self, f: impl FnOnce(&mut Synced)) {
        self.synced.send_modify(f);
    }

    fn reduce_route(&self, r: &HttpRoute) -> Reduced {
        let gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let ctx = Context {
            gateways: gateways.as_ref(),
            grants: &grants,
        };
        let mut notes = Notes::default();
        let reduced = reduce::http_route(r, &ctx, &mut notes);
        if notes.regex_paths > 0 && !self.regex_logged.swap(true, Ordering::Relaxed) {
            info!(namespace = %reduced.namespace, route = %reduced.name, "route index: RegularExpression path matches are not evaluated; those matches are skipped (said once)");
        }
        if notes.denied_backends > 0 {
            debug!(namespace = %reduced.namespace, route = %reduced.name, denied = notes.denied_backends, "route index: cross-namespace backends no ReferenceGrant allows are left out");
        }
        reduced
    }
}

/// What listing a kind once says about it.
enum Probe {
    Served,
    /// 404: the kind (its CRD) is not served.
    Absent,
    /// 403: the service account may not list it.
    Forbidden,
}

/// Asks for one object of `api`'s kind until the API server answers whether it serves it.
async fn probe<K>(api: &Api<K>, timeout: Duration, what: &str) -> Probe
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut pause = Duration::from_millis(200);
    let mut warned = false;
    loop {
        let failure =
            match tokio::time::timeout(timeout, api.list(&ListParams::default().limit(1))).await {
                Ok(Ok(_)) => return Probe::Served,
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Probe::Absent,
                Ok(Err(kube::Error::Api(s))) if s.code == 403 => return Probe::Forbidden,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} ms", timeout.as_millis()),
            };
        if !warned {
            warn!(resource = what, error = %failure, "route index: list failed; retrying");
            warned = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

fn forbidden(what: &str) {
    warn!(
        resource = what,
        "route index: listing is forbidden (RBAC needs list, watch); this kind is skipped"
    );
}

pub(super) async fn ingresses(
    client: kube::Client,
    settings: RouteIndexSettings,
    shared: std::sync::Arc<Shared>,
) {
    let api: Api<Ingress> = Api::all(client);
    match probe(&api, settings.request_timeout, "ingresses").await {
        Probe::Served => {}
        Probe::Absent => {
            info!("route index: ingresses are not served; skipped");
            return shared.mark(|s| s.ingresses = true);
        }
        Probe::Forbidden => {
            forbidden("ingresses");
            return shared.mark(|s| s.ingresses = true);
        }
    }
    let keep = |i: Ingress| reduce::ingress(&i);
    reflect_kept(
        api,
        None,
        settings.request_timeout,
        "ingresses",
        keep,
        |items, first| shared.page(RouteKind::Ingress, items, first),
        |c| {
            let listed = matches!(c, Change::Listed(_));
            shared.apply(RouteKind::Ingress, c);
            if listed {
                shared.mark(|s| s.ingresses = true);
            }
        },
    )
    .await;
}

/// Watches the Gateway API kinds once `httproutes` is served, asking again every
/// `crd_recheck` until it is.
pub(super) async fn gateway_api(
    client: kube::Client,
    settings: RouteIndexSettings,
    shared: std::sync::Arc<Shared>,
) {
    let timeout = settings.request_timeout;
    let routes: Api<HttpRoute> =
        Api::all_with(client.clone(), &resource("HTTPRoute", "httproutes", "v1"));
    let mut said = false;
    loop {
        match probe(&routes, timeout, "httproutes").await {
            Probe::Served => break,
            Probe::Absent => {
                if !said {
                    info!(
                        recheck_seconds = settings.crd_recheck.as_secs(),
                        "route index: the Gateway API is not served (no HTTPRoute CRD); HTTPRoutes skipped until it is"
                    );
                    said = true;
                }
                shared.mark(|s| s.http_routes = true);
                tokio::time::sleep(settings.crd_recheck).await;
            }
            Probe::Forbidden => {
                forbidden("httproutes");
                return shared.mark(|s| s.http_routes = true);
            }
        }
    }
    if said {
        info!("route index: the Gateway API is served now; watching HTTPRoutes");
    }
    let (gateways_listed, mut gateways_rx) = watch::channel(false);
    let (grants_listed, mut grants_rx) = watch::channel(false);
    let gateways = follow_gateways(client.clone(), timeout, &shared, gateways_listed);
    let grants = follow_grants(client, timeout, &shared, grants_listed);
    let routes = async {
        // Routes reduced before their Gateways are known would attach nowhere.
        let _ = gateways_rx.wait_for(|l| *l).await;
        let _ = grants_rx.wait_for(|l| *l).await;
        let mut relist = shared.relist.subscribe();
        loop {
            relist.borrow_and_update();
            let keep = |r: HttpRoute| shared.reduce_route(&r);
            let page = |items, first| shared.page(RouteKind::HttpRoute, items, first);
            let follow = reflect_kept(
                routes.clone(),
                None,
                timeout,
                "httproutes",
                keep,
                page,
                |c| {
                    let listed = matches!(c, Change::Listed(_));
                    shared.apply(RouteKind::HttpRoute, c);
                    if listed {
                        shared.mark(|s| s.http_routes = true);
                    }
                },
            );
            tokio::select! {
                () = follow => {}
                changed = relist.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    debug!("route index: Gateway listeners or ReferenceGrants changed; listing HTTPRoutes again");
                }
            }
        }
    };
    tokio::join!(gateways, grants, routes);
}

/// Keeps `shared.gateways` current; a change of listeners relists the routes.
async fn follow_gateways(
    client: kube::Client,
    timeout: Duration,
    shared: &Shared,
    listed: watch::Sender<bool>,
) {
    let api: Api<Gateway> = Api::all_with(client, &resource("Gateway", "gateways", "v1"));
    match probe(&api, timeout, "gateways").await {
        Probe::Served => {}
        Probe::Absent => {
            info!("route index: Gateways are not served; HTTPRoutes keep their own hostnames");
            listed.send_replace(true);
            return;
        }
        Probe::Forbidden => {
            forbidden("gateways");
            listed.send_replace(true);
            return;
        }
    }
    let keep = |g: Gateway| {
        let key = (
            g.metadata.namespace.clone().unwrap_or_default(),
            g.metadata.name.clone().unwrap_or_default(),
        );
        (key, reduce::listeners(&g))
    };
    reflect_kept(
        api,
        None,
        timeout,
        "gateways",
        keep,
        |p, _| p,
        |c| {
            let mut guard = shared.gateways.lock().unwrap_or_else(|e| e.into_inner());
            let map = guard.get_or_insert_with(Gateways::new);
            let changed = match c {
                Change::Listed(all) => {
                    let new: Gateways = all.into_iter().collect();
                    let changed = *map != new;
                    *map = new;
                    changed
                }
                Change::Applied((k, v)) => map.insert(k, v.clone()).as_ref() != Some(&v),
                Change::Deleted((k, _)) => map.remove(&k).is_some(),
            };
            drop(guard);
            listed.send_replace(true);
            if changed {
                shared.relist.send_modify(|n| *n += 1);
            }
        },
    )
    .await;
}

/// Keeps `shared.grants` current (v1beta1, or v1 where only that is served).
async fn follow_grants(
    client: kube::Client,
    timeout: Duration,
    shared: &Shared,
    listed: watch::Sender<bool>,
) {
    let mut api = None;
    for version in ["v1beta1", "v1"] {
        let ar: ApiResource = resource("ReferenceGrant", "referencegrants", version);
        let a: Api<ReferenceGrant> = Api::all_with(client.clone(), &ar);
        match probe(&a, timeout, "referencegrants").await {
            Probe::Served => {
                api = Some(a);
                break;
            }
            Probe::Absent => {}
            Probe::Forbidden => {
                forbidden("referencegrants");
                break;
            }
        }
    }
    let Some(api) = api else {
        debug!("route index: no ReferenceGrants: cross-namespace backends are left out");
        listed.send_replace(true);
        return;
    };
    let keep = |g: ReferenceGrant| {
        let key = (
            g.metadata.namespace.clone().unwrap_or_default(),
            g.metadata.name.clone().unwrap_or_default(),
        );
        (key, reduce::grants(&g))
    };
    reflect_kept(
        api,
        None,
        timeout,
        "referencegrants",
        keep,
        |p, _| p,
        |c| {
            let mut map = shared.grants.lock().unwrap_or_else(|e| e.into_inner());
            let changed = match c {
                Change::Listed(all) => {
                    let new: Grants = all.into_iter().collect();
                    let changed = *map != new;
                    *map = new;
                    changed
                }
                Change::Applied((k, v)) => map.insert(k, v.clone()).as_ref() != Some(&v),
                Change::Deleted((k, _)) => map.remove(&k).is_some(),
            };
            drop(map);
            listed.send_replace(true);
            if changed {
                shared.relist.send_modify(|n| *n += 1);
            }
        },
    )
    .await;
}
