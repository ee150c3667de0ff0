//! Unit tests of the tick and wake protocols over mocked ports.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mockall::predicate::eq;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use crate::report::{Recovery, SleptApp};
use crate::{
    AsleepRow, Candidate, Config, ConfirmOutcome, DeploymentRecord, Error, FixedScalerFactory,
    MockClock, MockScaler, MockScalerFactory, MockStore, Scale, ServedClusters, SkipReason,
    SleepState, StaleIntent, Target, WakeResult,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn seen() -> DateTime<Utc> {
    t0() - chrono::Duration::hours(2)
}

fn idle_before() -> DateTime<Utc> {
    t0() - chrono::Duration::minutes(30)
}

fn enabled() -> Config {
    Config {
        enabled: true,
        ..Config::default()
    }
}

fn clock() -> Arc<MockClock> {
    let mut c = MockClock::new();
    c.expect_now().return_const(t0());
    Arc::new(c)
}

fn job(config: Config, store: MockStore, scaler: MockScaler) -> Job {
    job_builder(config, store, scaler).build()
}

fn job_builder(config: Config, store: MockStore, scaler: MockScaler) -> super::JobBuilder {
    Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(clock())
}

fn candidate(provider_id: &str) -> Candidate {
    Candidate::new(Uuid::new_v4(), provider_id, seen())
}

fn web() -> Target {
    Target {
        cluster: None,
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn scale(replicas: i32, rv: &str) -> Scale {
    Scale {
        replicas,
        resource_version: rv.into(),
    }
}

fn record(id: Uuid, state: SleepState, replicas: Option<i32>) -> DeploymentRecord {
    DeploymentRecord {
        id,
        provider_id: "k8s:apps/web".into(),
        status: "healthy".into(),
        always_on: false,
        expires_at: None,
        last_activity_at: seen(),
        sleep_state: state,
        sleep_state_changed_at: seen(),
        replicas_before_sleep: replicas,
    }
}

/// A store that selects `candidates`, has no stale intents and counts `asleep` rows.
fn store_with(candidates: Vec<Candidate>, asleep: i64) -> MockStore {
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .return_once(move |_, _, _, _| Ok(candidates));
    store.expect_count_asleep().returning(move || Ok(asleep));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    quiet(&mut store);
    store
}

/// Every sleep the store is asked to claim is claimed and confirmed.
fn sleeps_confirmed(store: &mut MockStore) {
    store
        .expect_claim_sleep()
        .returning(|_, _, _, _, _| Ok(true));
    store
        .expect_confirm_sleep()
        .returning(|_, _, _, _| Ok(ConfirmOutcome::Confirmed));
}

/// A tick's store with no candidates and one asleep app, `row`, due for the drift check.
fn drift_store(row: AsleepRow) -> MockStore {
    let mut store = MockStore::new();
    store.expect_stale_intents().returning(|_, _| Ok(vec![]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    store.expect_count_asleep().returning(|| Ok(1));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
    store
        .expect_asleep_to_check()
        .return_once(move |_, _, _| Ok(vec![row]));
    store
}

/// The gauges sampled after a tick or a wake: no app asleep.
fn no_asleep(store: &mut MockStore) {
    store.expect_count_asleep().returning(|| Ok(0));
    store.expect_sum_asleep_replicas().returning(|_| Ok(0));
}

/// The calls a tick makes beside the protocol under test, answered with nothing to do:
/// lasting skips back off, the drift check finds no row due, a dry run lists no backoff.
fn quiet(store: &mut MockStore) {
    store.expect_back_off().returning(|_, _, _| Ok(true));
    store
        .expect_asleep_to_check()
        .returning(|_, _, _| Ok(vec![]));
    store.expect_backed_off().returning(|_, _| Ok(vec![]));
}

type Snapshot = Vec<(
    CompositeKey,
    Option<::metrics::Unit>,
    Option<::metrics::SharedString>,
    DebugValue,
)>;

/// Runs `f` on a current-thread runtime with a local metrics recorder.
fn recorded<F: Future>(f: F) -> (F::Output, Snapshot) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let out = ::metrics::with_local_recorder(&recorder, || {
        // Paused: a protocol that waits (a wake behind a sleep in flight) runs in virtual time.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(f)
    });
    (out, snapshotter.snapshot().into_vec())
}

fn counter(s: &Snapshot, name: &str, label: (&str, &str)) -> Option<u64> {
    s.iter().find_map(|(k, _, _, v)| {
        let key = k.key();
        // An empty label pair matches a series without labels.
        let matches = key.name() == name
            && (label == ("", "")
                || key
                    .labels()
                    .any(|l| l.key() == label.0 && l.value() == label.1));
        match v {
            DebugValue::Counter(n) if matches => Some(*n),
            _ => None,
        }
    })
}

fn outcome(s: &Snapshot, outcome: &str) -> u64 {
    counter(
        s,
        crate::metrics::SCALED_TO_ZERO_TOTAL,
        ("outcome", outcome),
    )
    .unwrap_or(0)
}

fn gauge(s: &Snapshot, name: &str) -> Option<f64> {
    s.iter().find_map(|(k, _, _, v)| match v {
        DebugValue::Gauge(g) if k.key().name() == name => Some(g.into_inner()),
        _ => None,
    })
}

// One file per protocol, as in the job itself: a new test goes beside the code it tests.
mod clusters; // several clusters: a client each, fail-open and blast radius per cluster
mod liveness; // backoff, blast radius, fights_back, intent stamps, config guardrails
mod logs; // capturing a test thread's tracing events
mod park; // parking after a sleep, unparking after a wake, the reconcile of parked apps
mod reconcile; // drift: asleep rows whose app runs
mod recover; // stale intents
mod run; // the flag, fail-open, priming, the loop
mod sleep; // selection, claim, scale-down, confirm, blast radius, dry run
mod traffic; // the activity source's answer
mod wake; // wake
