//! Where the scheduler and the ports meet: every `Store`, `Scaler` and `Parker` call of an operation
//! waits at a [`Gate`] until the scheduler grants it, with the fault the scheduler drew for
//! it, and the ports report each effect (an [`Event`]) and each write the apiserver still
//! holds (a [`DelayedWrite`]) through the same shared state.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};
use idle_scaler_core::{AsleepRow, ConfirmOutcome, DeploymentRecord, SleepState, Target};
use uuid::Uuid;

use super::cluster::SimDeployment;
use crate::memory::{AdaptiveColumns, ParkerMethod, StoreMethod};

/// An operation (one tick or one wake) in the simulation.
pub(super) type OpId = u64;

/// A port call, as the gate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    Store(StoreMethod),
    GetScale,
    SetReplicas,
    Park(ParkerMethod),
}

impl Call {
    /// Writes can fail after their effect (the commit happened, the answer was lost).
    pub(super) fn is_write(self) -> bool {
        match self {
            Self::Store(method) => method.is_write(),
            Self::SetReplicas => true,
            Self::GetScale | Self::Park(ParkerMethod::Parked) => false,
            Self::Park(_) => true,
        }
    }

    pub(super) fn is_kube(self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// What happens to a granted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Served normally.
    None,
    /// Fails without effect (connection refused, 500, a timeout before the write).
    ErrBefore,
    /// Takes effect, then fails (the response was lost: a timeout after the commit).
    ErrAfter,
    /// The process dies before the call reaches the other side.
    CrashBefore,
    /// The process dies after the call took effect, before it learns the answer.
    CrashAfter,
    /// Kubernetes writes only: the client times out now, but the request is still in the
    /// apiserver and may be applied later (with its precondition checked then).
    Delayed,
}

/// A write the apiserver still holds after its client gave up.
#[derive(Debug, Clone)]
pub(super) struct DelayedWrite {
    pub(super) op: OpId,
    pub(super) target: Target,
    pub(super) replicas: i32,
    pub(super) resource_version: Option<String>,
}

/// What the operations did, recorded at the moment of each effect, with the row or the
/// Deployment as it was just before: the invariants are checked against this log.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Selected {
        op: OpId,
        now: DateTime<Utc>,
        found: Vec<(Uuid, DateTime<Utc>)>,
        backoffs: Vec<(Uuid, u32)>,
    },
    /// The slice of `asleep` rows a tick's drift check read.
    ToCheck {
        op: OpId,
        checked_before: DateTime<Utc>,
        rows: Vec<AsleepRow>,
    },
    /// A Kubernetes request answered 403.
    Forbidden {
        op: OpId,
        target: Target,
    },
    Claim {
        op: OpId,
        id: Uuid,
        seen: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
        before: Option<DeploymentRecord>,
        /// The row's adaptive columns just before the write.
        adaptive: Option<AdaptiveColumns>,
        won: bool,
    },
    Confirm {
        op: OpId,
        id: Uuid,
        seen: DateTime<Utc>,
        before: Option<DeploymentRecord>,
        outcome: ConfirmOutcome,
    },
    Revert {
        op: OpId,
        id: Uuid,
        done: bool,
    },
    Settle {
        op: OpId,
        id: Uuid,
        to: SleepState,
        before: Option<DeploymentRecord>,
        done: bool,
    },
    FinishWake {
        op: OpId,
        id: Uuid,
        from: SleepState,
        done: bool,
    },
    Read {
        op: OpId,
        row: Option<DeploymentRecord>,
    },
    Scaled {
        op: OpId,
        target: Target,
        replicas: i32,
        before: Option<SimDeployment>,
    },
    /// The adaptive policy's early candidates (merged into the tick's selection).
    SelectedEarly {
        op: OpId,
        now: DateTime<Utc>,
        found: Vec<(Uuid, DateTime<Utc>)>,
        backoffs: Vec<(Uuid, u32)>,
    },
    /// A wake marked the row as being woken (for a tick: one of its pre-warms).
    BeginWake {
        op: OpId,
        id: Uuid,
        before: Option<DeploymentRecord>,
        done: bool,
    },
    /// A wake bumped the activity of an awake row.
    TouchAwake {
        op: OpId,
        id: Uuid,
        done: bool,
    },
    /// A keep recorded (`won`) against the activity it was decided on.
    Keep {
        op: OpId,
        id: Uuid,
        won: bool,
    },
    /// A keep ended, with the row's activity and adaptive columns just before.
    EndKeep {
        op: OpId,
        id: Uuid,
        before: Option<(DateTime<Utc>, AdaptiveColumns)>,
        done: bool,
    },
    /// A pre-warm's row flip, with the row just before and just after.
    FinishPrewarm {
        op: OpId,
        id: Uuid,
        before: Option<DeploymentRecord>,
        after: Option<DeploymentRecord>,
        done: bool,
    },
    /// A Parker list of the parked apps answered: the tick's sweep ran (invariant 11).
    Listed {
        op: OpId,
    },
    /// A Parker call that deleted `unparked` of the app's parked slices (`now`: without a
    /// readiness check, which the sim never asks for).
    Unparked {
        op: OpId,
        target: Target,
        unparked: u64,
        now: bool,
    },
}

struct Waiter {
    op: OpId,
    call: Call,
    waker: Waker,
}

/// Shared between the scheduler and every port of every operation.
#[derive(Default)]
pub(super) struct Gates {
    waiting: BTreeMap<u64, Waiter>,
    granted: Option<(u64, Fault)>,
    next_waiter: u64,
    /// Operations a crash fault hit: the scheduler drops their future.
    pub(super) crashed: Vec<OpId>,
    /// Effects since the scheduler last looked.
    pub(super) events: Vec<Event>,
    /// Kubernetes writes still in flight after their client timed out.
    pub(super) delayed: Vec<DelayedWrite>,
}

/// The lock around [`Gates`].
#[derive(Clone, Default)]
pub(super) struct Shared(Arc<Mutex<Gates>>);

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Gates> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The calls of `op` waiting at their gate, in the order they arrived.
    pub(super) fn waiting(&self, op: OpId) -> Vec<(u64, Call)> {
        self.lock()
            .waiting
            .iter()
            .filter(|(_, w)| w.op == op)
            .map(|(id, w)| (*id, w.call))
            .collect()
    }

    /// Lets waiter `id` through with `fault`, waking the task it belongs to.
    pub(super) fn grant(&self, id: u64, fault: Fault) {
        let mut g = self.lock();
        g.granted = Some((id, fault));
        if let Some(w) = g.waiting.get(&id) {
            w.waker.wake_by_ref();
        }
    }

    /// True while a grant has not been taken (a harness bug if it outlives a poll).
    pub(super) fn grant_pending(&self) -> bool {
        self.lock().granted.is_some()
    }

    /// Forgets the waiters of a dropped operation (their gates are dropped with it).
    pub(super) fn forget(&self, op: OpId) {
        self.lock().waiting.retain(|_, w| w.op != op);
    }
}

/// One port call waiting for the scheduler; resolves to the fault drawn for it.
pub(super) struct Gate {
    shared: Shared,
    op: OpId,
    call: Call,
    id: Option<u64>,
}

impl Gate {
    pub(super) fn new(shared: Shared, op: OpId, call: Call) -> Self {
        Self {
            shared,
            op,
            call,
            id: None,
        }
    }
}

impl Future for Gate {
    type Output = Fault;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fault> {
        let shared = self.shared.clone();
        let mut g = shared.lock();
        let id = *self.id.get_or_insert_with(|| {
            g.next_waiter += 1;
            g.next_waiter
        });
        if let Some((granted, fault)) = g.granted
            && granted == id
        {
            g.granted = None;
            g.waiting.remove(&id);
            return Poll::Ready(fault);
        }
        let (op, call) = (self.op, self.call);
        g.waiting.insert(
            id,
            Waiter {
                op,
                call,
                waker: cx.waker().clone(),
            },
        );
        Poll::Pending
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.lock().waiting.remove(&id);
        }
    }
}
