//! The deterministic simulation (see `idle_scaler_testkit::sim`): invariants 2 to 9 and 11
//! checked after every step, over many seeded worlds.
//!
//! `IDLE_SCALER_SIM_STEPS` (default 100,000) is the total number of steps, spread over worlds
//! of 2,500 steps with seeds 1, 2, 3, ... (even seeds under `policy = adaptive`);
//! `IDLE_SCALER_SIM_SEED` runs that one world for `IDLE_SCALER_SIM_STEPS` steps instead (what
//! a failure prints to reproduce it).

use idle_scaler_testkit::sim::{self, SimConfig, SimReport};

const DEFAULT_STEPS: u64 = 100_000;
const STEPS_PER_WORLD: u64 = 2_500;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = v
        .strip_prefix("0x")
        .map_or_else(|| v.parse(), |hex| u64::from_str_radix(hex, 16));
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not an unsigned integer")))
}

#[test]
fn invariants_hold_in_every_simulated_world() {
    let steps = env_u64("IDLE_SCALER_SIM_STEPS").unwrap_or(DEFAULT_STEPS);
    let worlds: Vec<SimConfig> = match env_u64("IDLE_SCALER_SIM_SEED") {
        Some(seed) => vec![SimConfig::new(seed, steps)],
        None => (1..=steps.div_ceil(STEPS_PER_WORLD))
            .map(|seed| SimConfig::new(seed, STEPS_PER_WORLD.min(steps)))
            .collect(),
    };
    let mut total = SimReport::default();
    for world in &worlds {
        match sim::run(world) {
            Ok(report) => total.add(&report),
            Err(failure) => panic!("{failure}"),
        }
    }
    println!("simulation: {} worlds, {total:#?}", worlds.len());
    assert!(total.steps >= steps.min(STEPS_PER_WORLD));
    // The mix must actually exercise the protocols, or the test proves nothing.
    assert!(
        total.scaled_down > 0 && total.woke_up > 0 && total.recovered > 0,
        "{total:#?}"
    );
    assert!(total.crashes > 0 && total.faults_before > 0 && total.faults_after > 0);
    // And the liveness and drift models: ticks longer than the stale age, both instances in
    // flight at once, 403s, wakes cut after their scale-up, drifts set awake.
    if worlds.len() > 1 {
        assert!(
            total.slow_ticks > 0
                && total.slow_tick_claims > 0
                && total.overlapping_ticks > 0
                && total.forbidden_answers > 0
                && total.backoffs_checked > 0
                && total.wakes_cancelled > 0
                && total.drifts_fixed > 0
                && total.drift_strikes > 0
                && total.restore_counts_checked > 0,
            "{total:#?}"
        );
        // Parking: slept apps parked and checked so, conflicts met, awake apps unparked by
        // due sweeps.
        assert!(
            total.slices_parked > 0
                && total.park_conflicts > 0
                && total.slices_unparked > 0
                && total.sleeps_parked_checked > 0
                && total.sweeps_checked > 0
                && total.hand_written_checked > 0,
            "{total:#?}"
        );
        // The adaptive worlds: visitors answered, keeps recorded, claims at the floor, and
        // pre-warms run, used, wasted and cut after their scale-up.
        assert!(
            total.visits > 0
                && total.keeps > 0
                && total.early_claims > 0
                && total.prewarms_run > 0
                && total.prewarms_used > 0
                && total.prewarms_wasted > 0
                && total.prewarms_cut > 0,
            "{total:#?}"
        );
    }
}

/// The same seed gives the same run, step for step.
#[test]
fn a_seed_reproduces_its_run_exactly() {
    let a = sim::run(&SimConfig::new(42, 1_500));
    let b = sim::run(&SimConfig::new(42, 1_500));
    match (a, b) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!((a.step, a.message, a.trace), (b.step, b.message, b.trace)),
        (a, b) => panic!("runs differ: {a:?} vs {b:?}"),
    }
}
