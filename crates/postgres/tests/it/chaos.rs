//! The real adapters under real concurrency: two job instances (separate pools) on one
//! database, each with its own `KubeScaler` talking HTTP to the fake API server, while a third
//! connection wakes apps and bumps activity, and the fake answers some requests with 409 and
//! 500, delays some past the client's timeout and drops some connections. At the end every
//! invariant holds and the metrics add up to the transitions the reports and the fake saw.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::job::STALE_INTENT_AFTER;
use idle_scaler_core::{
    Config, Error, FixedScalerFactory, Job, Outcome, SleepState, TickReport, WakeResult,
};
use idle_scaler_kube::KubeScaler;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::clock::ManualClock;
use idle_scaler_testkit::fake_kube::{FakeApiServer, Fault};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const APPS: usize = 24;
const ROUNDS: usize = 5;
/// Short, so an injected delay of three times it is a client-side timeout.
const TIMEOUT: Duration = Duration::from_millis(300);

fn job(store: PgStore, fake: &FakeApiServer, clock: &ManualClock) -> Job {
    let config = Config {
        enabled: true,
        max_per_tick: 100,
        concurrency: 4,
        // Every candidate is attempted: the blast radius would hide failures from the count.
        max_consecutive_failures: 1_000,
        default_wake_replicas: 1,
        ..Config::default()
    };
    let scaler = KubeScaler::from_url(&fake.url(), TIMEOUT).expect("scaler");
    Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(Arc::new(clock.clone()))
    .build()
}

/// The faults of one round, consumed by the first matching requests of either instance.
fn inject_faults(fake: &FakeApiServer) {
    fake.inject(
        Fault::status(409)
            .on_method("PATCH")
            .on_path("/scale")
            .times(2),
    );
    fake.inject(Fault::status(500).on_path("/scale").times(3));
    fake.inject(Fault::drop_connection().on_path("/scale").times(2));
    fake.inject(
        Fault::latency(TIMEOUT * 3)
            .on_method("PATCH")
            .on_path("/scale")
            .times(2),
    );
}

#[derive(Default, Debug)]
struct Seen {
    outcomes: BTreeMap<Outcome, u64>,
    recovered: BTreeMap<String, u64>,
    woke_up: u64,
    wake_failed: u64,
    wake_conflicts: u64,
    already_awake: u64,
    failed_ticks: u64,
}

impl Seen {
    fn tick(&mut self, r: Result<TickReport, Error>) {
        match r {
            Ok(r) => {
                for (o, n) in r.outcomes {
                    *self.outcomes.entry(o).or_default() += n;
                }
                for (k, n) in r.recovered {
                    *self.recovered.entry(k.as_str().to_owned()).or_default() += n;
                }
            }
            Err(_) => self.failed_ticks += 1,
        }
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn two_instances_with_wakes_bumps_and_api_faults_keep_every_invariant(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // `sqlx::test` runs the test on one thread, so a thread-local recorder sees every metric.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let pool = |name: &str| {
        let (o, c) = (pool_options.clone(), connect.clone());
        let name = name.to_owned();
        async move {
            o.connect_with(c)
                .await
                .unwrap_or_else(|e| panic!("pool {name}: {e}"))
        }
    };
    let (pool_a, pool_b, pool_c) = (pool("a").await, pool("b").await, pool("c").await);
    let (store_a, store_b, store_c) = (
        PgStore::from_pool(pool_a.clone()),
        PgStore::from_pool(pool_b.clone()),
        PgStore::from_pool(pool_c.clone()),
    );
    let fake = FakeApiServer::start().await;
    let clock = ManualClock::new(Utc::now());

    let mut ids = Vec::new();
    for i in 0..APPS {
        let name = format!("app-{i:02}");
        fake.create_deployment("apps", &name, i32::try_from(i % 3 + 1).expect("small"));
        let row = NewDeployment::k8s(
            "apps",
            &name,
            idle_scaler_core::Clock::now(&clock) - chrono::Duration::hours(3),
        );
        ids.push((store_c.insert(row).await.expect("insert"), name));
    }

    let a = job(store_a, &fake, &clock);
    let b = job(store_b, &fake, &clock);
    let waker = job(store_c.clone(), &fake, &clock);
    let mut seen = Seen::default();

    for round in 0..ROUNDS {
        inject_faults(&fake);
        // Another connection wakes apps and redeploys others while both instances tick.
        let others = async {
            let mut results = Vec::new();
            for k in 0..6 {
                let (id, name) = &ids[(round * 7 + k * 5) % APPS];
                let result = waker.wake(*id).await;
                if let Ok(r) = &result
                    && r.result == WakeResult::WokeUp
                {
                    // Invariant 4, at the moment of success: nothing else writes this app
                    // now (its activity is fresh, so no tick claims it this round).
                    let row = store_c.read(*id).await.expect("read").expect("row");
                    assert_eq!(row.sleep_state, SleepState::Awake, "{row:?}");
                    assert_eq!(fake.replicas("apps", name), r.replicas, "{name}");
                    assert!(r.replicas.is_some_and(|n| n > 0));
                }
                results.push(result);
                let (bumped, _) = &ids[(round * 11 + k * 3 + 1) % APPS];
                store_c
                    .bump_activity(*bumped, idle_scaler_core::Clock::now(&clock))
                    .await
                    .expect("bump");
            }
            results
        };
        let (ra, rb, wakes) = tokio::join!(a.tick(), b.tick(), others);
        seen.tick(ra);
        seen.tick(rb);
        for w in wakes {
            match w {
                Ok(r) if r.result == WakeResult::WokeUp => seen.woke_up += 1,
                Ok(_) => seen.already_awake += 1,
                // Retryable: a transition was in flight; not a failed wake.
                Err(idle_scaler_core::Error::Conflict { .. }) => seen.wake_conflicts += 1,
                Err(_) => seen.wake_failed += 1,
            }
        }
        // Apps idle again, and this round's leftovers stale for the next round's recovery.
        clock.advance(chrono::Duration::minutes(31));
    }

    // No more faults; wait out any request the fake still delays (a client-side timeout can
    // leave a write in flight), then one tick of each instance settles the leftovers.
    fake.clear_faults();
    wait_for_quiet_fake(&fake).await;
    clock.advance(STALE_INTENT_AFTER + chrono::Duration::minutes(1));
    // Half the apps were just redeployed: they must end awake and running.
    for (id, _) in ids.iter().step_by(2) {
        store_c
            .bump_activity(*id, idle_scaler_core::Clock::now(&clock))
            .await
            .expect("bump");
    }
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
    seen.tick(ra);
    seen.tick(rb);

    // Invariants 3 and 5 over the end state: nothing half done.
    let rows = store_c.rows().await.expect("rows");
    let mut asleep = 0;
    for row in &rows {
        let name = ids
            .iter()
            .find(|(id, _)| *id == row.id)
            .map(|(_, n)| n.clone())
            .expect("known row");
        let replicas = fake.replicas("apps", &name).expect("deployment exists");
        assert_ne!(row.sleep_state, SleepState::Sleeping, "{row:?}");
        if row.sleep_state == SleepState::Awake {
            assert!(replicas > 0, "{name} at 0 with its row awake: {row:?}");
        } else {
            asleep += 1;
        }
    }

    // Invariant 5: between two scale-downs of a Deployment there is a scale-up.
    let mut last_write: HashMap<String, i64> = HashMap::new();
    let mut zero_writes = 0;
    for r in fake.requests() {
        if r.method != "PATCH" || r.status != Some(200) {
            continue;
        }
        let replicas = r.json()["spec"]["replicas"].as_i64().expect("replicas");
        if replicas == 0 {
            zero_writes += 1;
            assert_ne!(last_write.get(&r.path), Some(&0), "double sleep: {r:?}");
        }
        last_write.insert(r.path.clone(), replicas);
    }

    // The metrics add up to what the reports and the wakes observed.
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, label: (&str, &str)| -> u64 {
        snapshot
            .iter()
            .find_map(|(k, _, _, v)| {
                let key = k.key();
                let hit = key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == label.0 && l.value() == label.1);
                match v {
                    DebugValue::Counter(n) if hit => Some(*n),
                    _ => None,
                }
            })
            .unwrap_or(0)
    };
    let outcome = |o: &str| {
        counter(
            idle_scaler_core::metrics::SCALED_TO_ZERO_TOTAL,
            ("outcome", o),
        )
    };
    let of = |o: Outcome| seen.outcomes.get(&o).copied().unwrap_or(0);
    assert_eq!(outcome("scaled_down"), of(Outcome::ScaledDown), "{seen:?}");
    assert_eq!(
        outcome("scale_failed"),
        of(Outcome::ScaleFailed),
        "{seen:?}"
    );
    assert_eq!(outcome("woke_up"), seen.woke_up, "{seen:?}");
    assert_eq!(outcome("wake_failed"), seen.wake_failed, "{seen:?}");
    for (result, n) in &seen.recovered {
        assert_eq!(
            counter(
                idle_scaler_core::metrics::RECOVERED_TOTAL,
                ("result", result)
            ),
            *n,
            "recovered {result}"
        );
    }
    let gauge = snapshot.iter().find_map(|(k, _, _, v)| match v {
        DebugValue::Gauge(g) if k.key().name() == idle_scaler_core::metrics::IDLE_APPS => {
            Some(g.into_inner())
        }
        _ => None,
    });
    assert_eq!(gauge, Some(f64::from(asleep)), "idle-apps gauge");
    // Every sleep the fake applied is accounted for: a scale-down confirmed by a tick, or a
    // leftover recovery settled as asleep, or one a wake (or a lost confirm) undid.
    let recovered_asleep = seen.recovered.get("asleep").copied().unwrap_or(0);
    assert!(
        zero_writes >= of(Outcome::ScaledDown),
        "{zero_writes} zero writes, {seen:?}"
    );
    assert!(
        zero_writes
            <= of(Outcome::ScaledDown) + recovered_asleep + seen.woke_up + 2 * ROUNDS as u64,
        "{zero_writes} zero writes, {seen:?}"
    );
    // The scenario did what it is for.
    assert!(of(Outcome::ScaledDown) > 0 && seen.woke_up > 0, "{seen:?}");
    assert!(
        of(Outcome::ScaleFailed) > 0,
        "no fault reached a transition: {seen:?}"
    );
    eprintln!("chaos: {zero_writes} scale-downs applied, {asleep} asleep at the end, {seen:?}");

    for p in [pool_a, pool_b, pool_c] {
        p.close().await;
    }
}

/// Polls until the fake serves no request: a write the client gave up on may still be
/// applied late, and the end state is only final once none is left.
async fn wait_for_quiet_fake(fake: &FakeApiServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fake kept {} requests in flight",
            fake.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
