//! List, then watch from the list's `resourceVersion`, resume after a watch ends, list again
//! after `410 Gone`: one resource kept current for the parking directory and the route index.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::map_error_at;

/// Longest single watch request; the apiserver's own cap is in the same range.
const WATCH_SECONDS: u32 = 290;
/// Items per list page.
const PAGE: u32 = 500;
/// Pauses after a failure, doubled up to the last.
const PAUSE_FIRST: Duration = Duration::from_millis(200);
const PAUSE_MAX: Duration = Duration::from_secs(10);

/// What the watched set did.
#[derive(Debug)]
pub(crate) enum Change<K> {
    /// A complete list: replaces everything known.
    Listed(Vec<K>),
    /// Added or modified.
    Applied(K),
    /// Deleted.
    Deleted(K),
}

/// Keeps `api`'s objects (narrowed by `labels`) current through `on`, until the task is
/// dropped. `what` names the resource in logs.
pub(crate) async fn reflect<K>(
    api: Api<K>,
    labels: Option<String>,
    timeout: Duration,
    what: &'static str,
    on: impl FnMut(Change<K>) + Send,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    reflect_kept(api, labels, timeout, what, |k| k, |items, _| items, on).await;
}

/// [`reflect`] passing on what `keep` makes of each object, applied as each list page
/// arrives: a complete list holds only the kept forms, never every object at once. `page`
/// sees each page's kept forms (and whether it is a list's first) and returns those the
/// complete list carries: a caller that applies pages as they come returns none, so a list
/// of 100,000 objects is never held whole.
pub(crate) async fn reflect_kept<K, T>(
    api: Api<K>,
    labels: Option<String>,
    timeout: Duration,
    what: &'static str,
    mut keep: impl FnMut(K) -> T + Send,
    mut page: impl FnMut(Vec<T>, bool) -> Vec<T> + Send,
    mut on: impl FnMut(Change<T>) + Send,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut pause = PAUSE_FIRST;
    let mut failing = false;
    'list: loop {
        let mut version = match list(&api, labels.as_deref(), timeout, what, &mut keep, &mut page)
            .await
        {
            Ok((items, version)) => {
                if failing {
                    info!(resource = what, "watch: listing works again");
                    failing = false;
                }
                on(Change::Listed(items));
                pause = PAUSE_FIRST;
                version
            }
            Err(e) => {
                if !failing {
                    warn!(resource = what, error = %idle_scaler_core::error_chain(&e), "watch: list failed; retrying");
                    failing = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(PAUSE_MAX);
                continue;
            }
        };
        loop {
            let mut wp = WatchParams::default().timeout(WATCH_SECONDS);
            if let Some(l) = &labels {
                wp = wp.labels(l);
            }
            let stream = match api.watch(&wp, &version).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(resource = what, error = %e, "watch: watch refused; listing again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(PAUSE_MAX);
                    continue 'list;
                }
            };
            let mut stream = std::pin::pin!(stream);
            let mut news = false;
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        debug!(resource = what, error = %e, "watch: watch broke; resuming");
                        break;
                    }
                };
                news = true;
                match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                        if let Some(v) = o.meta().resource_version.clone() {
                            version = v;
                        }
                        on(Change::Applied(keep(o)));
                    }
                    WatchEvent::Deleted(o) => {
                        if let Some(v) = o.meta().resource_version.clone() {
                            version = v;
                        }
                        on(Change::Deleted(keep(o)));
                    }
                    WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                    WatchEvent::Error(status) => {
                        // 410: our version is gone; anything else: start over as well.
                        debug!(
                            resource = what,
                            code = status.code,
                            "watch: watch error; listing again"
                        );
                        if status.code != 410 {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(PAUSE_MAX);
                        }
                        continue 'list;
                    }
                }
            }
            if news {
                pause = PAUSE_FIRST;
            } else {
                // A watch that ends at once without news: not in a tight loop.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(PAUSE_MAX);
            }
        }
    }
}

/// Every object, page by page, kept by `keep`, and the list's version.
async fn list<K, T>(
    api: &Api<K>,
    labels: Option<&str>,
    timeout: Duration,
    what: &'static str,
    keep: &mut impl FnMut(K) -> T,
    page_hook: &mut impl FnMut(Vec<T>, bool) -> Vec<T>,
) -> idle_scaler_core::Result<(Vec<T>, String)>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut items = Vec::new();
    let mut first = true;
    let mut lp = ListParams::default().limit(PAGE);
    if let Some(l) = labels {
        lp = lp.labels(l);
    }
    loop {
        let page = match tokio::time::timeout(timeout, api.list(&lp)).await {
            Ok(r) => r.map_err(|e| map_error_at(format!("list {what}"), e))?,
            Err(_) => {
                return Err(idle_scaler_core::Error::unavailable(format!(
                    "list {what}: no answer within {} ms",
                    timeout.as_millis()
                ))
                .with_reach(idle_scaler_core::Reach::NoAnswer));
            }
        };
        let kept: Vec<T> = page.items.into_iter().map(&mut *keep).collect();
        items.extend(page_hook(kept, first));
        first = false;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok((items, page.metadata.resource_version.unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests;
