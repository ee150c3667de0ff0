//! One step: a seeded random event and what it does to the world, and the checks after it.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checks::Ledger;
use crate::client::{self, APPS, CALLERS, Outcome, Planned, Sent};
use crate::crash::POINTS;
use crate::pods::{Mode, Received};
use crate::world::{SimWorld, TIMEOUT};
use idle_scaler_testkit::sim::Rng;

/// Clients in flight at most; the next request waits for one to finish.
const MAX_CLIENTS: usize = 256;

/// How long after an allowed request for an app a scale write of it may come (the flight
/// runs its wake within the waker's timeout).
const WAKE_WINDOW: Duration = Duration::from_secs(TIMEOUT.as_secs() + 5);

pub struct Sim {
    rng: Rng,
    world: SimWorld,
    pub ledger: Ledger,
    clients: JoinSet<Vec<(Sent, Outcome)>>,
    next_id: u64,
    /// When an allowed request for each app was last sent: what may cause its wake.
    last_allowed: [Option<Instant>; APPS.len()],
}

impl Sim {
    pub async fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            world: SimWorld::build().await,
            ledger: Ledger::default(),
            clients: JoinSet::new(),
            next_id: 0,
            last_allowed: [None; APPS.len()],
        }
    }

    pub async fn step(&mut self) -> Result<(), String> {
        let a = self.rng.index(APPS.len());
        match self.rng.below(100) {
            0..=49 => self.request(None).await?,
            50..=59 => {
                let pod = 2 * a + self.rng.index(2);
                self.world.set_endpoint(a, Some(pod));
            }
            60..=65 => self.world.set_endpoint(a, None),
            66..=70 => {
                let p = self.rng.index(self.world.pods.len());
                if self.world.pods[p].listens() {
                    self.world.pods[p].refuse().await;
                } else {
                    self.world.listen(p).await;
                }
            }
            71..=76 => {
                let mode = match self.rng.below(10) {
                    0..=5 => Mode::Normal,
                    6 | 7 => Mode::CutRequest,
                    _ => Mode::CutAnswer,
                };
                self.world.pods[self.rng.index(self.world.pods.len())].set_mode(mode);
            }
            77..=79 => {
                // A Service of the same name in a namespace nobody parks gets an endpoint.
                let foreign = self.world.foreign();
                self.world
                    .directory
                    .set_endpoint("other", APPS[a].name, Some("http"), foreign);
            }
            80..=84 => self.world.sleep(a).await,
            85 => self.drain_with_held(a).await?,
            86 => self.crash_mid_wake(a).await?,
            // Nothing happens: the clients in flight go on.
            _ => tokio::task::yield_now().await,
        }
        Ok(())
    }

    /// A request from a random caller (or, with `to`, an allowed one for app `to` by name).
    async fn request(&mut self, to: Option<usize>) -> Result<(), String> {
        while self.clients.len() >= MAX_CLIENTS {
            self.settle_one().await?;
        }
        let caller = match to {
            Some(a) => CALLERS
                .iter()
                .find(|c| c.namespace == Some(APPS[a].namespace))
                .expect("a caller of every app's namespace"),
            None => &CALLERS[self.rng.index(CALLERS.len())],
        };
        let generation = self.world.generation;
        let mut first = self.plan(caller, false, generation);
        if let Some(a) = to {
            first = first.to(a, caller);
        }
        let second = self
            .rng
            .percent(30)
            .then(|| self.plan(caller, true, generation));
        for planned in std::iter::once(&first).chain(second.as_ref()) {
            self.ledger.sent(&planned.sent);
            if let (true, Some(a)) = (planned.sent.allowed, planned.sent.app) {
                self.last_allowed[a] = Some(Instant::now());
            }
        }
        self.world.lookups_due += 1;
        let to = self.world.served.addr;
        self.clients
            .spawn(client::run(caller.ip, to, first, second));
        Ok(())
    }

    fn plan(&mut self, caller: &client::CallerSpec, second: bool, generation: u64) -> Planned {
        self.next_id += 1;
        client::plan(&mut self.rng, self.next_id, caller, second, generation)
    }

    /// Requests held for a sleeping app, then `SIGTERM`: every one is answered.
    async fn drain_with_held(&mut self, a: usize) -> Result<(), String> {
        self.world.sleep(a).await;
        for _ in 0..=self.rng.below(3) {
            self.request(Some(a)).await?;
        }
        self.world.restart().await?;
        self.ledger.stats.drains += 1;
        Ok(())
    }

    /// A wake of app `a` whose process dies at a seeded point between two port calls; the
    /// listener is drained and a new `Job` and `Waker` take over.
    async fn crash_mid_wake(&mut self, a: usize) -> Result<(), String> {
        self.world.sleep(a).await;
        // A fresh waker: no flight of the app lingers, so the request starts a wake.
        self.world.restart().await?;
        let point = POINTS[self.rng.index(POINTS.len())];
        let hung = self.world.crash.hung();
        self.world.crash.arm(Some(point));
        self.request(Some(a)).await?;
        // The point comes within milliseconds, unless the wake ends before it.
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.world.crash.hung() == hung && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.world.crash.arm(None);
        if self.world.crash.hung() == hung {
            // The wake ended before the point (it failed, or the app was already up).
            *self
                .ledger
                .stats
                .crashes_missed
                .entry(format!("{point:?}"))
                .or_default() += 1;
        } else {
            self.ledger.stats.crashes += 1;
        }
        self.world.restart().await
    }

    /// Waits for one client to finish (if any is in flight) and checks it.
    async fn settle_one(&mut self) -> Result<(), String> {
        let Some(done) = self.clients.join_next().await else {
            return Ok(());
        };
        self.pod_records()?;
        self.client_done(done.expect("client task"))
    }

    fn pod_records(&mut self) -> Result<(), String> {
        let records: Vec<Received> = std::mem::take(
            &mut *self
                .world
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for r in &records {
            self.ledger.received(r, &self.world.pods)?;
        }
        Ok(())
    }

    fn client_done(&mut self, done: Vec<(Sent, Outcome)>) -> Result<(), String> {
        for (sent, outcome) in done {
            self.ledger.done(sent, outcome, self.world.generation)?;
        }
        Ok(())
    }

    /// The checks after a step: pod records, finished clients, scale writes.
    pub async fn check(&mut self) -> Result<(), String> {
        // Finished clients first, then the pods' records: a pod records before it answers,
        // so every record of a finished client's request is in.
        let mut finished = Vec::new();
        while let Some(done) = self.clients.try_join_next() {
            finished.push(done.expect("client task"));
        }
        self.pod_records()?;
        for done in finished {
            self.client_done(done)?;
        }
        let writes = self.world.take_scale_writes();
        for (a, n) in writes.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            self.ledger.stats.scale_writes += n;
            let caused = self.last_allowed[a].is_some_and(|t| t.elapsed() <= WAKE_WINDOW);
            if !caused {
                return Err(format!(
                    "{}/{} scaled with no allowed request in the last {WAKE_WINDOW:?}: a refused caller woke it",
                    APPS[a].namespace, APPS[a].name
                ));
            }
        }
        Ok(())
    }

    /// Every pod healthy and ready, then every client's answer checked.
    pub async fn finish(&mut self) -> Result<(), String> {
        self.world.crash.arm(None);
        for p in 0..self.world.pods.len() {
            self.world.pods[p].set_mode(Mode::Normal);
            self.world.listen(p).await;
        }
        for a in 0..APPS.len() {
            self.world.set_endpoint(a, Some(2 * a));
        }
        while !self.clients.is_empty() {
            self.settle_one().await?;
        }
        self.check().await
    }
}
