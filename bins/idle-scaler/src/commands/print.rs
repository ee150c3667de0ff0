//! The command reports as text: a tick's summary, the rows backing off.

use idle_scaler_core::{BackedOff, Outcome, TickReport};

/// A tick's counts, one line each beyond the first (`skipped predicted_use=1`).
pub(super) fn print_summary(report: &TickReport) {
    if report.disabled {
        println!("disabled: DEPLOY_SCALE_TO_ZERO_ENABLED is off; nothing done");
        return;
    }
    if report.no_scaler {
        println!("no Kubernetes client: nothing done (fail-open)");
        return;
    }
    if !report.clusters_unreachable.is_empty() {
        println!(
            "clusters unreachable (their apps left alone): {}",
            report.clusters_unreachable.join(",")
        );
    }
    println!(
        "candidates={} scaled_down={} scale_failed={} stopped_early={} idle_apps={} took={}ms",
        report.candidates,
        report.outcome(Outcome::ScaledDown),
        report.outcome(Outcome::ScaleFailed),
        report.stopped_early,
        report
            .idle_apps
            .map_or_else(|| "?".into(), |n| n.to_string()),
        report.duration.as_millis(),
    );
    for (reason, n) in &report.skips {
        println!("skipped {}={n}", reason.as_str());
    }
    for (result, n) in &report.recovered {
        println!("recovered {result}={n}");
    }
    for (kind, n) in &report.drift {
        println!("drift {}={n}", kind.as_str());
    }
    for (result, n) in &report.parking {
        println!("parking {result}={n}");
    }
}

/// Rows a tick will not try before their next attempt, and why.
pub(super) fn print_backing_off(rows: &[BackedOff]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<25}  {:<8}  TARGET",
        "BACKING OFF", "REASON", "NEXT ATTEMPT", "BACKOFFS"
    );
    for b in rows {
        println!(
            "{:<36}  {:<20}  {:<25}  {:<8}  {}",
            b.id,
            b.reason,
            b.retry_after
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            b.backoff_count,
            b.provider_id.escape_debug()
        );
    }
    println!(
        "{} backing off (a wake or new activity ends a backoff at once)",
        rows.len()
    );
}
