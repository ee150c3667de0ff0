//! Invariants 12 and 13 of the parking listener, checked by a seeded simulation: the real
//! `ParkingListener` over loopback TCP, the real `Job` and `Waker` (in-memory store, the
//! Kubernetes adapter against the fake API server, a scaler that can crash between calls),
//! the in-memory directory, and apps that are tiny HTTP servers recording what they get.
//!
//! Each step is one seeded random event (a request, a pod ready or not, refusing or cutting
//! exchanges, a foreign endpoint, an app put to sleep, a drain with requests held, a crash
//! mid-wake); after each step every pod record and every finished client is checked.
//! The events are a function of the seed; their timing is the real listener's over real
//! sockets, so a failing seed reproduces the same events, not always the same interleaving.
//!
//! `IDLE_SCALER_WAKER_SIM_STEPS` (default 300) steps, seed `IDLE_SCALER_WAKER_SIM_SEED`
//! (default 1); a failure prints both and the step.

#[path = "../common/parking_rig.rs"]
mod parking_rig; // shared with the `it` tests: asleep apps, the waker, clients from pods

mod checks; // the invariants, against the clients' model
mod client; // callers, Host forms, the model, the client
mod crash; // the scaler that dies between two calls
mod events; // one step: the events and what each does
mod pods; // the apps' recording pods
mod world; // apps, directory, listener generations

use std::time::Instant;

const DEFAULT_STEPS: u64 = 300;

fn env_u64(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a whole number")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_12_and_13_hold_at_every_step() {
    let steps = env_u64("IDLE_SCALER_WAKER_SIM_STEPS").unwrap_or(DEFAULT_STEPS);
    let seed = env_u64("IDLE_SCALER_WAKER_SIM_SEED").unwrap_or(1);
    let started = Instant::now();
    let mut sim = events::Sim::new(seed).await;
    for step in 0..steps {
        let checked = match sim.step().await {
            Ok(()) => sim.check().await,
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            panic!(
                "violation at seed {seed}, step {step} (IDLE_SCALER_WAKER_SIM_SEED={seed} IDLE_SCALER_WAKER_SIM_STEPS={}): {e}",
                step + 1
            );
        }
    }
    if let Err(e) = sim.finish().await {
        panic!("violation at seed {seed}, after the last step {steps}: {e}");
    }
    let elapsed = started.elapsed();
    let stats = &sim.ledger.stats;
    println!(
        "waker sim: seed {seed}, {steps} steps in {:.1} s ({:.0} steps/s); {stats:#?}",
        elapsed.as_secs_f64(),
        steps as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    assert_eq!(sim.ledger.open(), 0, "every request answered");
    assert!(
        stats.requests > steps / 4,
        "requests were sent: {}",
        stats.requests
    );
}
