//! Single flight: one attempt per key at a time, its result shared by every caller that asks
//! while it runs. The attempt runs as a task of its own, so callers that go away (an HTTP
//! client that disconnects, a cancelled future) never leave it half done.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::task::JoinError;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// One attempt: when it started and its result, shared by every caller.
#[derive(Clone)]
pub struct Flight<T: Clone> {
    /// When the first caller started it.
    pub started: Instant,
    /// The attempt's result; every clone of it resolves to the same value.
    pub landing: Shared<BoxFuture<'static, T>>,
}

impl<T: Clone> std::fmt::Debug for Flight<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

struct Entry<T: Clone> {
    /// Tells this flight from a later one of the same key (instants can tie under a paused
    /// clock).
    number: u64,
    flight: Flight<T>,
}

struct State<K, T: Clone> {
    in_flight: HashMap<K, Entry<T>>,
    started: u64,
}

/// The attempts in flight, one per key. Cloning gives another handle on the same flights.
pub struct SingleFlight<K, T: Clone> {
    state: Arc<Mutex<State<K, T>>>,
    tasks: TaskTracker,
    /// Run each attempt in its callers' futures instead of a task of its own.
    inline: bool,
    /// How long a finished attempt keeps answering later callers.
    linger: fn(&T) -> Duration,
    /// The result of an attempt whose task panicked or was aborted.
    cut_short: fn(&K, JoinError) -> T,
}

impl<K, T: Clone> Clone for SingleFlight<K, T> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            tasks: self.tasks.clone(),
            inline: self.inline,
            linger: self.linger,
            cut_short: self.cut_short,
        }
    }
}

impl<K, T: Clone> std::fmt::Debug for SingleFlight<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl<K, T> SingleFlight<K, T>
where
    K: Eq + Hash + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// No attempt in flight. `cut_short` gives the result of an attempt whose task ended
    /// without one (a panic); a finished attempt is forgotten at once.
    pub fn new(cut_short: fn(&K, JoinError) -> T) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                in_flight: HashMap::new(),
                started: 0,
            })),
            tasks: TaskTracker::new(),
            inline: false,
            linger: |_| Duration::ZERO,
            cut_short,
        }
    }

    /// A finished attempt keeps answering later callers for `linger(result)` before a new
    /// one may start (a task of its own waits, outside [`SingleFlight::wait`]).
    #[must_use]
    pub fn lingering(mut self, linger: fn(&T) -> Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Runs each attempt inside the futures of its callers instead of a task of its own, for
    /// a harness that polls every future itself (a deterministic simulation). An attempt then
    /// stops half way while no caller polls it, and the next caller of its key resumes it.
    #[must_use]
    pub fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }

    /// The attempt of `key`: the one in flight, or `start(now)` started now.
    pub fn join<F, Fut>(&self, key: K, start: F) -> Flight<T>
    where
        F: FnOnce(Instant) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = state.in_flight.get(&key) {
            return entry.flight.clone();
        }
        state.started += 1;
        let number = state.started;
        let started = Instant::now();
        let attempt = start(started);
        let forget = Forget {
            state: self.state.clone(),
            key: key.clone(),
            number,
        };
        let linger = self.linger;
        let run = async move {
            let result = attempt.await;
            let wait = linger(&result);
            if !wait.is_zero() {
                // A lingering answer does not hold up a shutdown that waits for attempts.
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    drop(forget);
                });
            }
            result
        };
        let landing = if self.inline {
            run.boxed()
        } else {
            let task = self.tasks.spawn(run);
            let (cut_short, k) = (self.cut_short, key.clone());
            async move { task.await.unwrap_or_else(|e| cut_short(&k, e)) }.boxed()
        }
        .shared();
        let flight = Flight { started, landing };
        state.in_flight.insert(
            key,
            Entry {
                number,
                flight: flight.clone(),
            },
        );
        flight
    }

    /// Waits until every attempt started so far has finished (a graceful shutdown); new
    /// attempts may start meanwhile and afterwards.
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

/// Forgets one flight when dropped: when its attempt ends, however it ends (a panic too).
struct Forget<K: Eq + Hash, T: Clone> {
    state: Arc<Mutex<State<K, T>>>,
    key: K,
    number: u64,
}

impl<K: Eq + Hash, T: Clone> Drop for Forget<K, T> {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .in_flight
            .get(&self.key)
            .is_some_and(|e| e.number == self.number)
        {
            state.in_flight.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests;
