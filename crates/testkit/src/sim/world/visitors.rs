//! The visitors of an adaptive world (`policy = adaptive`): requests shaped so that rhythms
//! form. A poller comes back a fixed period after its last answer (regular gaps: the app
//! sleeps at the floor and is pre-warmed); a person comes back after a gap drawn from a range
//! just past the window (irregular gaps that mostly end soon after it: keeping the app up
//! costs less than its cold starts, so it is kept up for its next request). Each
//! request is a wake by a visitor ([`WakeReason::Visitor`]) in a wake slot of its own, tried
//! again until it is answered or a quarter of an hour late, as a browser or a poller would.
//! Their apps get no other activity from the world (no random wakes, redeploys or
//! recreations that bump it), no pins, deletions or 403s (any of them would stop the rhythm
//! for the rest of the world), so the gaps the job learns are the visitors' own; outside
//! scalings, faults and now and then an expiry or status change still hit them.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use idle_scaler_core::rhythm::{GAP_SAMPLES, Gap, Rhythm, Settings};
use idle_scaler_core::{Config, RhythmStore, WakeReason};
use uuid::Uuid;

use super::World;
use crate::memory::MemoryStore;
use crate::rng::Rng;
use crate::sim::SimFailure;
use crate::sim::gate::OpId;

/// The first wake slot of the visitors (slots 0 and 1 are the world's random wakes).
const FIRST_SLOT: usize = 2;

/// How late a request may be answered before its visitor gives up on it.
const PATIENCE: Duration = Duration::minutes(15);

/// Per mille of a poller's runs that do not happen (its host was down): the pre-warm made
/// for it is wasted.
const SKIP_PER_MILLE: u64 = 40;

struct Visitor {
    id: Uuid,
    /// Minutes from an answer to the next request, drawn from this range (inclusive).
    gap: (i64, i64),
    /// When the next request comes.
    next: DateTime<Utc>,
    /// The wake serving the request in flight.
    op: Option<OpId>,
}

/// The visitors of one world.
pub(in crate::sim) struct Visitors {
    list: Vec<Visitor>,
    /// Visitor wakes that answered.
    answered: BTreeSet<OpId>,
}

impl Visitors {
    /// Two pollers (every 25 and 40 minutes) and a person (every 11 to 16 minutes) on the
    /// apps `ids` names, their first requests within the first hour. A world lasts a few
    /// simulated hours, too few requests to learn a rhythm from nothing, so each app starts
    /// with the rhythm a day of its visitor's requests would have left in the store (as after
    /// a restart of the job); the world's requests go on teaching it.
    pub(in crate::sim) fn new(
        rng: &mut Rng,
        ids: [Uuid; 3],
        now: DateTime<Utc>,
        store: &MemoryStore,
        config: &Config,
    ) -> Self {
        let gaps = [(25, 25), (40, 40), (11, 16)];
        let settings = Settings::of(config);
        let list: Vec<Visitor> = ids
            .into_iter()
            .zip(gaps)
            .map(|(id, gap)| Visitor {
                id,
                gap,
                next: now + Duration::minutes(rng.range(1, 60)),
                op: None,
            })
            .collect();
        for v in &list {
            let mut rhythm = Rhythm::default();
            let mut at = now - Duration::days(1);
            for _ in 0..GAP_SAMPLES / 2 {
                let minutes = rng.range(v.gap.0, v.gap.1);
                at += Duration::minutes(minutes);
                rhythm.gaps.push(Gap {
                    ended_at: at,
                    minutes: u32::try_from(minutes).unwrap_or(0),
                });
            }
            let early = settings.is_some_and(|s| rhythm.sleeps_early(&s));
            let saved = super::ready(store.save_rhythm(v.id, &rhythm, early));
            assert_eq!(saved, Some(true), "seeding the rhythm of {}", v.id);
        }
        Self {
            list,
            answered: BTreeSet::new(),
        }
    }

    /// Whether the app is a visitor's: the world leaves its activity to the visitor.
    pub(in crate::sim) fn visits(&self, id: Uuid) -> bool {
        self.list.iter().any(|v| v.id == id)
    }

    /// The visitor wakes in flight.
    fn in_flight(&self) -> impl Iterator<Item = OpId> + '_ {
        self.list.iter().filter_map(|v| v.op)
    }
}

impl World {
    /// The visitors' part of a step: a request whose time has come is sent (the step's
    /// action: true), or a visitor wake in flight is let through one call at a time, half
    /// the time, so that a request is answered within minutes rather than after many clock
    /// moves (a gap the job learns includes that delay).
    pub(super) fn visit(&mut self) -> std::result::Result<bool, SimFailure> {
        let Some(mut v) = self.visitors.take() else {
            return Ok(false);
        };
        let now = self.now();
        let mut start = None;
        for (i, visitor) in v.list.iter_mut().enumerate() {
            if let Some(op) = visitor.op {
                if self.ops.contains_key(&op) {
                    continue;
                }
                visitor.op = None;
                if v.answered.remove(&op) {
                    self.report.visits += 1;
                    let (lo, hi) = visitor.gap;
                    let mut gap = self.rng.range(lo, hi);
                    if lo == hi && self.rng.per_mille(SKIP_PER_MILLE) {
                        gap *= 2;
                    }
                    visitor.next = now + Duration::minutes(gap);
                } else if now > visitor.next + PATIENCE {
                    // Given up: the next request comes a gap after this one was due.
                    let (lo, hi) = visitor.gap;
                    let gap = self.rng.range(lo, hi);
                    visitor.next += Duration::minutes(gap);
                }
            }
            if start.is_none() && visitor.op.is_none() && visitor.next <= now {
                start = Some((i, visitor.id));
            }
        }
        let in_flight: Vec<OpId> = v.in_flight().collect();
        self.visitors = Some(v);
        if let Some((i, id)) = start {
            self.log(format!("visitor of {id}: a request"));
            self.start_wake_for(FIRST_SLOT + i, id, WakeReason::Visitor)?;
            let op = self.next_op;
            if let Some(v) = &mut self.visitors {
                v.list[i].op = Some(op);
            }
            return Ok(true);
        }
        if !in_flight.is_empty() && self.rng.percent(50) {
            let op = in_flight[self.rng.index(in_flight.len())];
            self.advance(op)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A visitor wake answered (`Ok`): its visitor's next request is a gap from now.
    pub(super) fn visit_answered(&mut self, op: OpId) {
        if let Some(v) = &mut self.visitors
            && v.in_flight().any(|o| o == op)
        {
            v.answered.insert(op);
        }
    }

    /// Where a clock move to `to` stops: at the next visitor's request, if it comes first, so
    /// that requests are sent on time.
    pub(super) fn clock_stop(&self, to: DateTime<Utc>) -> DateTime<Utc> {
        let now = self.now();
        self.visitors
            .iter()
            .flat_map(|v| v.list.iter())
            .filter(|v| v.op.is_none() && v.next > now)
            .map(|v| v.next)
            .fold(to, DateTime::min)
    }

    /// Whether the world leaves the app's activity to its visitor.
    pub(super) fn visited(&self, id: Uuid) -> bool {
        self.visitors.as_ref().is_some_and(|v| v.visits(id))
    }
}
