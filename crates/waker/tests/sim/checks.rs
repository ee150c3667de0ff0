//! The checks, against the model the clients planned by: invariant 12 (a forwarded request
//! reaches one pod once, unchanged; every request gets a status line, a pod's broken answer
//! a `502` or a cut body) and invariant 13 (only an allowed caller's request reaches a pod,
//! and only a pod of the app its `Host` names; a refused caller gets the generic answer).

use std::collections::{BTreeMap, HashMap};

use crate::client::{Outcome, Sent};
use crate::pods::{Mode, Pod, Received};

/// What a pod got of a request.
struct Reach {
    pod: usize,
    mode: Mode,
    /// The body arrived whole.
    whole: bool,
}

/// Counts for the report.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: u64,
    pub allowed: u64,
    pub refused_or_unknown: u64,
    pub reached: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub cut_requests_502: u64,
    pub cut_answers_502: u64,
    pub cut_answers_cut_body: u64,
    pub broken_bodies: u64,
    pub not_connected_after_drain: u64,
    pub keepalive_closed_by_drain: u64,
    pub second_not_sent: u64,
    pub scale_writes: u64,
    pub drains: u64,
    pub crashes: u64,
    /// Armed crash points the wake never reached (it ended before), by point.
    pub crashes_missed: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Ledger {
    sent: HashMap<u64, Sent>,
    reached: HashMap<u64, Reach>,
    pub stats: Stats,
}

impl Ledger {
    pub fn sent(&mut self, s: &Sent) {
        self.stats.requests += 1;
        if s.allowed {
            self.stats.allowed += 1;
        } else {
            self.stats.refused_or_unknown += 1;
        }
        self.sent.insert(s.id, s.clone());
    }

    /// Requests not answered yet.
    pub fn open(&self) -> usize {
        self.sent.len()
    }

    /// A pod's record of a request.
    pub fn received(&mut self, r: &Received, pods: &[Pod]) -> Result<(), String> {
        let id = r.id;
        if let Some(first) = self.reached.get(&id) {
            return Err(format!(
                "request {id} reached pod {} again (first: pod {}): replayed",
                r.pod, first.pod
            ));
        }
        let Some(s) = self.sent.get(&id) else {
            return Err(format!(
                "request {id} reached pod {} after its client had its answer",
                r.pod
            ));
        };
        let app = pods[r.pod].app;
        if app.is_none() || app != s.app {
            return Err(format!(
                "request {id} for app {:?} reached pod {} of app {app:?}",
                s.app, r.pod
            ));
        }
        if !s.allowed {
            return Err(format!(
                "request {id} of a refused caller reached pod {}",
                r.pod
            ));
        }
        if (r.method.as_str(), r.path.as_str()) != (s.method.as_str(), s.path.as_str()) {
            return Err(format!(
                "request {id} changed on the way: sent {} {}, received {} {}",
                s.method, s.path, r.method, r.path
            ));
        }
        if r.hash.is_some_and(|h| h != s.hash) {
            return Err(format!(
                "request {id}: body hash differs from what was sent"
            ));
        }
        self.stats.reached += 1;
        self.reached.insert(
            id,
            Reach {
                pod: r.pod,
                mode: r.mode,
                whole: r.hash.is_some(),
            },
        );
        Ok(())
    }

    /// A client's outcome; `generation` is the listener's now.
    pub fn done(&mut self, s: Sent, outcome: Outcome, generation: u64) -> Result<(), String> {
        let id = s.id;
        self.sent.remove(&id);
        let reach = self.reached.get(&id);
        let drained = s.generation < generation;
        let (status, retry_after, pod, body) = match outcome {
            Outcome::Answered {
                status,
                retry_after,
                pod,
                body,
            } => (status, retry_after, pod, body),
            Outcome::NotSent => {
                self.stats.second_not_sent += 1;
                return Ok(());
            }
            Outcome::NotConnected(_) if drained => {
                self.stats.not_connected_after_drain += 1;
                return Ok(());
            }
            // HTTP/1.1's race: the listener closed the idle kept-alive connection as the
            // drain asked while the client sent its next request; nothing of it was read.
            Outcome::NoAnswer(_) if s.second && drained && reach.is_none() => {
                self.stats.keepalive_closed_by_drain += 1;
                return Ok(());
            }
            other => {
                return Err(format!(
                    "request {id} ({s:?}) got no status line: {other:?}"
                ));
            }
        };
        *self.stats.statuses.entry(status).or_default() += 1;
        if !s.allowed {
            // The generic answer: the same for a refused caller as for an unknown app.
            if status != 503 || retry_after.as_deref() != Some("30") || pod.is_some() {
                return Err(format!(
                    "request {id} ({s:?}) not answered generically: {status}, Retry-After {retry_after:?}, pod {pod:?}"
                ));
            }
            return Ok(());
        }
        let Some(reach) = reach else {
            if pod.is_some() || status < 500 {
                return Err(format!(
                    "request {id} reached no pod, yet {status} from pod {pod:?}"
                ));
            }
            return Ok(());
        };
        let body_ok = body
            .as_ref()
            .is_ok_and(|b| **b == *format!("ok {id}").as_bytes());
        match reach.mode {
            Mode::CutRequest => {
                if status != 502 {
                    return Err(format!("request {id}: pod cut it off, answered {status}"));
                }
                self.stats.cut_requests_502 += 1;
            }
            _ if !reach.whole => {
                self.stats.broken_bodies += 1;
                if status < 500 {
                    return Err(format!(
                        "request {id}: body broke on the way, answered {status}"
                    ));
                }
            }
            Mode::Normal => {
                if status != 200 || pod != Some(reach.pod) || !body_ok {
                    return Err(format!(
                        "request {id}: pod {} answered it, the client got {status} from {pod:?}, body {body:?}",
                        reach.pod
                    ));
                }
            }
            Mode::CutAnswer => match (status, &body) {
                (502, _) => self.stats.cut_answers_502 += 1,
                (200, Err(_)) if pod == Some(reach.pod) => self.stats.cut_answers_cut_body += 1,
                _ => {
                    return Err(format!(
                        "request {id}: pod cut its answer, the client got {status}, body {body:?}"
                    ));
                }
            },
        }
        Ok(())
    }
}
