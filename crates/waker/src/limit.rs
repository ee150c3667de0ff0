//! Wakes per namespace and minute: a scanner walking every hostname cannot wake a fleet.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use idle_scaler_core::{ClusterName, Target};

/// The window the limit counts wakes in.
const WINDOW: TimeDelta = TimeDelta::seconds(60);

type Namespace = (Option<ClusterName>, String);

/// The wakes started in the last minute, per namespace (of its cluster).
#[derive(Debug)]
pub(crate) struct WakeLimit {
    per_minute: usize,
    started: Mutex<HashMap<Namespace, VecDeque<DateTime<Utc>>>>,
}

impl WakeLimit {
    pub(crate) fn new(per_minute: usize) -> Self {
        Self {
            per_minute: per_minute.max(1),
            started: Mutex::default(),
        }
    }

    /// Whether a wake of `target` may start at `now` (the waker's clock); counts it when it
    /// may. A sliding window: never more than `per_minute` in any minute.
    pub(crate) fn try_start(&self, target: &Target, now: DateTime<Utc>) -> bool {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget namespaces whose wakes all left the window, so the map stays as small as
        // the namespaces woken in the last minute.
        started.retain(|_, times| {
            while times.front().is_some_and(|t| now - *t >= WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = started
            .entry((target.cluster.clone(), target.namespace.clone()))
            .or_default();
        if times.len() >= self.per_minute {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests;
