//! An operation in flight (a tick or a wake): its future and what the checks track of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use idle_scaler_core::{DeploymentRecord, Result, TickReport, WakeReport};
use uuid::Uuid;

use super::Kind;

pub(super) type OpFuture = Pin<Box<dyn Future<Output = OpOut>>>;

pub(super) enum OpOut {
    Tick(Result<TickReport>),
    Wake(Result<WakeReport>),
}

pub(super) struct Op {
    pub(super) kind: Kind,
    pub(super) fut: OpFuture,
    pub(super) started_step: u64,
    pub(super) started_clock: DateTime<Utc>,
    pub(super) faulted: bool,
    pub(super) selected: BTreeMap<Uuid, DateTime<Utc>>,
    /// The `now` this tick selected its candidates at (their cutoffs count from it).
    pub(super) selected_at: Option<DateTime<Utc>>,
    pub(super) last_read: Option<DeploymentRecord>,
    /// The intents this tick wrote, with their stamps (the transition bound counts from them).
    pub(super) claimed: BTreeMap<Uuid, DateTime<Utc>>,
    /// Claims waiting at their gate, by waiter, since when: the stamp is read right before
    /// the call, so a transition starts when its claim call does (a real store call is
    /// bounded by its statement timeout).
    pub(super) claiming: BTreeMap<u64, DateTime<Utc>>,
    /// Rows `asleep` over a running app and due for a drift check when this tick started,
    /// with the `sleep_state_changed_at` of that sleep (invariant 8).
    pub(super) due_drift: Vec<(Uuid, DateTime<Utc>)>,
    /// This tick's drift slice held a row it had to leave for a wake in flight.
    pub(super) slice_waited: bool,
    /// Each candidate's backoff count as selected.
    pub(super) backoffs: BTreeMap<Uuid, u32>,
    /// Rows whose sleep-path read answered 403 in this tick: (activity and backoff count as
    /// selected).
    pub(super) forbidden: BTreeMap<Uuid, (DateTime<Utc>, u32)>,
    /// A wake that has scaled its app up (a cancel now leaves it running under `asleep`).
    pub(super) scaled_up: bool,
    /// Asleep rows at 0 not fully parked and due for a drift check when this tick started,
    /// with the `sleep_state_changed_at` of that sleep (invariant 11a).
    pub(super) due_park: Vec<(Uuid, DateTime<Utc>)>,
    /// The rows this tick's drift check read (not being woken), with their
    /// `sleep_state_changed_at` (invariant 11a).
    pub(super) checked: Vec<(Uuid, DateTime<Utc>)>,
    /// Rows this tick confirmed asleep: it parks them before it ends.
    pub(super) confirmed: Vec<Uuid>,
    /// Apps whose slices some operation deleted while this tick ran.
    pub(super) unparked: Vec<Uuid>,
    /// This tick's process was due to sweep the parked apps when it started.
    pub(super) sweep_due: bool,
    /// Awake, ready apps still parked when this tick started with its sweep due (11b).
    pub(super) stuck: Vec<(Uuid, DateTime<Utc>)>,
    /// This tick's pre-warms that marked their row (a pre-warm is a wake): whether each has
    /// scaled its app up (invariants 9 and 10).
    pub(super) prewarms: BTreeMap<Uuid, bool>,
}

impl Op {
    pub(super) fn new(kind: Kind, fut: OpFuture, step: u64, clock: DateTime<Utc>) -> Self {
        Self {
            kind,
            fut,
            started_step: step,
            started_clock: clock,
            faulted: false,
            selected: BTreeMap::new(),
            selected_at: None,
            last_read: None,
            claimed: BTreeMap::new(),
            claiming: BTreeMap::new(),
            due_drift: Vec::new(),
            slice_waited: false,
            backoffs: BTreeMap::new(),
            forbidden: BTreeMap::new(),
            scaled_up: false,
            due_park: Vec::new(),
            checked: Vec::new(),
            confirmed: Vec::new(),
            unparked: Vec::new(),
            sweep_due: false,
            stuck: Vec::new(),
            prewarms: BTreeMap::new(),
        }
    }
}
