//! The apps the waker may be asked to wake, in memory: identification never waits on the
//! store. A flood of requests for unknown apps would otherwise take the connections the job
//! needs for its ticks and for the real wakes.
//!
//! The index holds the `asleep` and `sleeping` rows by `provider_id`, replaced as a whole by
//! one store query (`list_sleeping`) every [`REFRESH`] from its own task, and the rows this
//! waker woke, kept awake for [`WOKEN_MEMORY`] so that the settle logic (an app ready for a
//! few seconds gets its own 502/503 passed through) still sees them. An awake app the waker
//! did not wake is not in it: to the waker it is an unknown app.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use idle_scaler_core::{DeploymentRecord, Result, SleepState, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

/// How often the index reads the `asleep` and `sleeping` rows: an app the job slept a moment
/// ago is known to the waker within this time.
pub(crate) const REFRESH: Duration = Duration::from_secs(3);

/// How long a row this waker woke stays in the index as awake.
pub(crate) const WOKEN_MEMORY: Duration = Duration::from_secs(600);

/// The index: read by every request, written by the refresh task and the waker's wakes.
#[derive(Debug)]
pub(crate) struct AppIndex {
    state: RwLock<State>,
    /// True once a refresh has succeeded: lookups before it wait (bounded) rather than call
    /// every app unknown.
    loaded: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct State {
    /// The `asleep` and `sleeping` rows of the last refresh.
    listed: HashMap<String, DeploymentRecord>,
    /// When the query of the last refresh started.
    listed_at: Option<Instant>,
    /// Rows this waker woke, as awake, with the moment they were marked.
    woken: HashMap<String, (DeploymentRecord, Instant)>,
}

impl Default for AppIndex {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            loaded: watch::Sender::new(false),
        }
    }
}

impl AppIndex {
    /// The row of the app at `provider_id`, as far as the index knows. Never waits.
    pub fn get(&self, provider_id: &str) -> Option<DeploymentRecord> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let woken = state
            .woken
            .get(provider_id)
            .filter(|(_, at)| at.elapsed() < WOKEN_MEMORY);
        let listed = state.listed.get(provider_id);
        match (woken, listed) {
            // A wake newer than the last list: the list may have been read before it.
            (Some((row, at)), Some(_)) if state.listed_at.is_none_or(|l| *at >= l) => {
                Some(row.clone())
            }
            (_, Some(row)) => Some(row.clone()),
            (Some((row, _)), None) => Some(row.clone()),
            (None, None) => None,
        }
    }

    /// Waits until the first refresh has succeeded, at most `timeout`; a waker whose store
    /// has not answered yet then answers from an empty index (every app unknown).
    pub async fn loaded(&self, timeout: Duration) {
        if *self.loaded.borrow() {
            return;
        }
        let mut rx = self.loaded.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|l| *l)).await;
    }

    /// Reads the `asleep` and `sleeping` rows and replaces the listed ones with them.
    pub async fn refresh(&self, store: &dyn Store) -> Result<()> {
        let started = Instant::now();
        let rows = store.list_sleeping().await?;
        let mut listed: HashMap<String, DeploymentRecord> = HashMap::with_capacity(rows.len());
        for row in rows {
            match listed.entry(row.provider_id.clone()) {
                Entry::Vacant(v) => {
                    v.insert(row);
                }
                // Several rows for one app: the store's own choice (latest activity, then
                // greatest id), so both ways of finding an app agree.
                Entry::Occupied(mut o) => {
                    let cur = o.get();
                    if (row.last_activity_at, row.id) > (cur.last_activity_at, cur.id) {
                        o.insert(row);
                    }
                }
            }
        }
        let n = listed.len();
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.listed = listed;
            state.listed_at = Some(started);
            state.woken.retain(|_, (_, at)| at.elapsed() < WOKEN_MEMORY);
        }
        self.loaded.send_replace(true);
        debug!(
            apps = n,
            took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "waker: app index refreshed"
        );
        Ok(())
    }

    /// Records that this waker's wake of the app at `provider_id` succeeded: its row is
    /// `awake` since `now` (unless the index already knew it awake: its time stays).
    pub fn mark_awake(&self, provider_id: &str, now: DateTime<Utc>) {
        let Some(mut row) = self.get(provider_id) else {
            return;
        };
        if row.sleep_state != SleepState::Awake {
            row.sleep_state = SleepState::Awake;
            row.sleep_state_changed_at = now;
            row.last_activity_at = now;
            row.replicas_before_sleep = None;
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state
            .woken
            .insert(provider_id.to_owned(), (row, Instant::now()));
    }
}

/// The refresh task: one store query every `every` until the index is dropped. A failure is
/// logged once per outage; the index keeps its last rows meanwhile.
pub(crate) fn spawn_refresh(
    index: Weak<AppIndex>,
    store: Arc<dyn Store>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let Some(index) = index.upgrade() else {
                return;
            };
            match index.refresh(store.as_ref()).await {
                Ok(()) if failing => {
                    failing = false;
                    info!("waker: app index refreshed again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    warn!(error = %idle_scaler_core::error_chain(&e), "waker: app index refresh failed; answering from the last rows read");
                }
                Err(_) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests;
