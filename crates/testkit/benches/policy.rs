//! The policy benchmark (issue 22): 1,000 synthetic apps over 8 simulated weeks, replayed
//! through the real job and the in-memory store on a virtual clock, under fixed 10, 30 and 60
//! minutes and the adaptive policy (falling back to 30), for two mixes (20% and 10% periodic
//! apps). Prints Markdown tables (overall and per class) and whether each goal is met; the
//! workload's classes and parameters are documented in `idle_scaler_testkit::workload`.
//!
//! `cargo bench -p idle-scaler-testkit --bench policy`; `POLICY_BENCH_APPS` (default 1000) and
//! `POLICY_BENCH_SEED` (default 22) change the size and the seed; `POLICY_BENCH_QUICK=1` runs
//! only fixed 30 and adaptive on the 20% mix (for tuning).

use std::time::Instant;

use idle_scaler_core::metrics::{COLD_STARTS_TOTAL, PREWARMS_TOTAL};
use idle_scaler_core::reexports::metrics;
use idle_scaler_testkit::workload::{APPS, Mix, Policy, RunResult, Workload, render, replay};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A counter's value in a snapshot, summed over the series whose labels include `label`.
fn counter(snap: &[Metric], name: &str, label: Option<(&str, &str)>) -> u64 {
    snap.iter()
        .filter(|(k, ..)| k.kind() == MetricKind::Counter && k.key().name() == name)
        .filter(|(k, ..)| has_label(k, label))
        .map(|(.., v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

/// One series of a debugging recorder's snapshot.
type Metric = (
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);

fn has_label(k: &CompositeKey, label: Option<(&str, &str)>) -> bool {
    label.is_none_or(|(name, value)| {
        k.key()
            .labels()
            .any(|l| l.key() == name && l.value() == value)
    })
}

/// One policy's run with its own recorder, and the job's counters checked against the
/// harness's: the figures come from one place, and the job must agree with them.
fn run(workload: &Workload, policy: Policy) -> RunResult {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    // The local recorder sees every metric: the job runs on this thread only.
    let result = metrics::with_local_recorder(&recorder, || rt.block_on(replay(workload, policy)));
    let o = result.overall;
    // A snapshot drains the counters: one, read three times.
    let snap = snap.snapshot().into_vec();
    let job_cold = counter(&snap, COLD_STARTS_TOTAL, None);
    let job_used = counter(&snap, PREWARMS_TOTAL, Some(("result", "used")));
    let job_wasted = counter(&snap, PREWARMS_TOTAL, Some(("result", "wasted")));
    eprintln!(
        "{} / {}: {} ticks in {:.1} s; job counted {job_cold} cold starts (harness: {} wakes of \
         asleep rows), pre-warms used {job_used} / wasted {job_wasted} (harness: {} / {})",
        workload.mix.name,
        policy.name,
        result.ticks,
        started.elapsed().as_secs_f64(),
        o.request_wakes,
        o.prewarms_used,
        o.prewarms_wasted,
    );
    result
}

fn main() {
    let apps = env_or("POLICY_BENCH_APPS", APPS);
    let seed = env_or("POLICY_BENCH_SEED", 22_u64);
    println!("## Policy benchmark: {apps} apps, 8 simulated weeks, seed {seed}\n");
    let quick = env_or("POLICY_BENCH_QUICK", 0_u8) == 1;
    let (mixes, policies) = if quick {
        (
            &[Mix::PERIODIC_20][..],
            &[Policy::FIXED_30, Policy::ADAPTIVE_30][..],
        )
    } else {
        (&[Mix::PERIODIC_20, Mix::PERIODIC_10][..], &Policy::ALL[..])
    };
    for mix in mixes {
        let workload = Workload::generate(*mix, apps, seed);
        // One thread per policy: the runs share nothing but the workload.
        let results: Vec<RunResult> = std::thread::scope(|scope| {
            let runs: Vec<_> = policies
                .iter()
                .map(|p| scope.spawn(|| run(&workload, *p)))
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("a policy's run"))
                .collect()
        });
        println!("{}", render(&workload, &results));
    }
}
