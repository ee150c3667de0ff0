//! The benchmark's tables (Markdown, as docs/performance.md shows them) and the goals,
//! each judged against fixed 30 in the same run.

use std::fmt::Write;

use super::replay::{Figures, Policy, RunResult, ratio};
use super::{Class, Workload};

/// One goal: what it asks, whether the run met it, and the figures it was judged on.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// What it asks.
    pub name: String,
    /// Whether the run met it.
    pub met: bool,
    /// The adaptive figure, fixed 30's, and their ratio.
    pub detail: String,
}

/// A figure of the adaptive run against fixed 30's, met when at most `limit` times it.
fn judge(name: String, adaptive: f64, fixed: f64, limit: f64) -> Goal {
    let r = if fixed > 0.0 {
        format!("{:.2}x", adaptive / fixed)
    } else {
        "n/a".to_owned()
    };
    Goal {
        name,
        met: adaptive <= fixed * limit,
        detail: format!("{adaptive:.0} vs {fixed:.0} ({r})"),
    }
}

/// The goals for the adaptive run against fixed 30; empty when either is missing.
pub fn goals(results: &[RunResult]) -> Vec<Goal> {
    let find = |p: Policy| results.iter().find(|r| r.policy == p);
    let (Some(a), Some(f)) = (find(Policy::ADAPTIVE_30), find(Policy::FIXED_30)) else {
        return Vec::new();
    };
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let cold = |x: &Figures| x.cold_starts as f64;
    #[allow(clippy::cast_precision_loss)]
    let first = |x: &Figures| x.first_of_day_cold as f64;
    let mut out = vec![
        judge(
            "overall: cold starts at most 0.5x".into(),
            cold(&a.overall),
            cold(&f.overall),
            0.5,
        ),
        judge(
            "overall: replica-minutes at most 0.8x".into(),
            a.overall.replica_minutes(),
            f.overall.replica_minutes(),
            0.8,
        ),
        judge(
            "periodic: cold starts at most 0.1x".into(),
            cold(&a.class(Class::Periodic)),
            cold(&f.class(Class::Periodic)),
            0.1,
        ),
        judge(
            "business hours: first-of-day cold starts at most 0.5x".into(),
            first(&a.class(Class::BusinessHours)),
            first(&f.class(Class::BusinessHours)),
            0.5,
        ),
    ];
    for class in Class::ALL {
        let (ac, fc) = (a.class(class), f.class(class));
        out.push(judge(
            format!("{}: cold starts at most 1.05x", class.name()),
            cold(&ac),
            cold(&fc),
            1.05,
        ));
        out.push(judge(
            format!("{}: replica-minutes at most 1.05x", class.name()),
            ac.replica_minutes(),
            fc.replica_minutes(),
            1.05,
        ));
    }
    out
}

/// The report of one workload: the overall table, one per class, and the goals.
pub fn render(workload: &Workload, results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Mix: {} ({} apps, seed {}, {} requests)\n",
        workload.mix.name,
        workload.apps.len(),
        workload.seed,
        workload.requests()
    );
    table(
        &mut s,
        "All apps",
        results.iter().map(|r| (r.policy, r.overall)),
    );
    for class in Class::ALL {
        let n = results.first().map_or(0, |r| r.class(class).apps);
        table(
            &mut s,
            &format!("{} ({n} apps)", class.name()),
            results.iter().map(|r| (r.policy, r.class(class))),
        );
    }
    let goals = goals(results);
    if !goals.is_empty() {
        let _ = writeln!(s, "Goals (adaptive 30 against fixed 30):\n");
        let _ = writeln!(s, "| goal | met | adaptive vs fixed 30 |\n|---|---|---|");
        for g in goals {
            let met = if g.met { "yes" } else { "**no**" };
            let _ = writeln!(s, "| {} | {met} | {} |", g.name, g.detail);
        }
        s.push('\n');
    }
    s
}

fn table(s: &mut String, title: &str, rows: impl Iterator<Item = (Policy, Figures)>) {
    let _ = writeln!(s, "{title}:\n");
    let _ = writeln!(
        s,
        "| policy | requests | cold starts | per 1,000 requests | first-of-day cold / first-of-day | \
         replica-minutes awake | pre-warms used | pre-warms wasted |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (p, f) in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {} / {} ({:.0}%) | {:.0} | {} | {} |",
            p.name,
            f.requests,
            f.cold_starts,
            f.cold_per_1000(),
            f.first_of_day_cold,
            f.first_of_day,
            100.0 * ratio(f.first_of_day_cold, f.first_of_day),
            f.replica_minutes(),
            f.prewarms_used,
            f.prewarms_wasted,
        );
    }
    s.push('\n');
}
