//! The `Store` (and `RhythmStore`) contract, written once and run against every store: the in-memory one (in
//! this crate's tests) and `PgStore` (in `idle-scaler-postgres`'s tests, one fresh database
//! per case). Each case starts from an empty store and panics on a violation.
//!
//! Run them all with [`contract_cases!`](crate::contract_cases), which hands the list of case
//! names to a macro of the caller's that wraps each in a test.
//!
//! # Adding a case
//!
//! Write `pub async fn <name><S: Store + HostOps>(s: &S)` (add `RhythmStore` to the bounds for
//! the adaptive policy's methods) in the module of the port method it is about, and add `<name>` to the list in [`contract_cases!`](crate::contract_cases): every
//! runner then runs it on its store. A case left out of the list fails this crate's test
//! `contract::tests::every_case_is_in_the_list`, so none can be written and silently skipped.

// One module per part of the protocol; each `pub async fn` in them is a case.
mod backoff; // lasting skips: `back_off`, `backed_off`, and how selection honours them
mod claim; // CAS 1 of a sleep: `claim_sleep`
mod clusters; // several clusters: rows of clusters not served never leave the store
mod confirm; // CAS 2 of a sleep and its undo: `confirm_sleep`, `revert_sleep`
mod drift; // drift checks: `begin_wake`, `asleep_to_check`, `mark_checked`, `reconcile_awake`
mod host; // the `HostOps` fixtures themselves
mod keep; // the adaptive policy's keeps: `keep`, `keeps`, `end_keep`, and how claims honour them
mod liveness; // backed-off and foreign rows never starve real candidates
mod read; // `get`, `find_by_provider_id`, `count_asleep`, `sum_asleep_replicas`, `list_sleeping`
mod recovery; // `stale_intents`, `settle_intent`
mod rhythm; // `select_early`, `rhythms`, `save_rhythm`, `set_prewarm`, `prewarms_due`, `finish_prewarm`
mod select; // `select_candidates`
mod wake; // `finish_wake`, `touch_awake`, `record_traffic`

pub use backoff::*;
pub use claim::*;
pub use clusters::*;
pub use confirm::*;
pub use drift::*;
pub use host::*;
pub use keep::*;
pub use liveness::*;
pub use read::*;
pub use recovery::*;
pub use rhythm::*;
pub use select::*;
pub use wake::*;

use chrono::{DateTime, Duration, TimeZone, Utc};
use idle_scaler_core::ServedClusters;
use idle_scaler_core::Store;
use uuid::Uuid;

use crate::host::{HostOps, NewDeployment};

/// Calls `$m! { case, case, ... }` with every contract case name, so a test file turns each
/// into a test of its store without keeping its own list (which could drift). The one list of
/// cases: `every_case_is_in_the_list` fails when a `pub async fn` case is missing from it.
#[macro_export]
macro_rules! contract_cases {
    ($m:ident) => {
        $m! {
            get_round_trips_every_column,
            get_of_missing_row_is_none,
            find_by_provider_id_finds_the_latest_row_of_that_app,
            select_takes_idle_healthy_awake_rows,
            select_excludes_pinned,
            select_excludes_expired,
            select_excludes_unhealthy,
            select_excludes_sleeping_and_asleep,
            select_excludes_recent_activity,
            select_orders_oldest_first_and_limits,
            select_excludes_other_providers,
            select_returns_only_rows_of_served_clusters,
            select_merges_clusters_oldest_first_within_the_limit,
            stale_intents_and_drift_checks_skip_unserved_clusters,
            drift_checks_merge_clusters_oldest_first_within_the_limit,
            backoff_hides_row_until_retry_after,
            backoff_ends_with_newer_activity,
            backoff_is_cleared_by_a_wake,
            backed_off_lists_reason_and_next_attempt,
            backed_off_rows_never_starve_candidates,
            claim_flips_awake_to_sleeping,
            claim_rechecks_the_whole_predicate,
            claim_loses_to_activity_bump,
            claim_wins_once,
            claim_rejects_zero_replicas,
            confirm_flips_sleeping_to_asleep,
            confirm_loses_to_wake,
            confirm_loses_to_activity,
            confirm_of_row_not_sleeping,
            revert_only_from_sleeping,
            confirm_and_revert_compare_the_intent_stamp,
            confirm_distinguishes_three_outcomes,
            stale_intents_are_old_sleeping_rows,
            settle_intent_is_a_cas_on_the_intent,
            finish_wake_is_a_cas_on_state,
            begin_wake_marks_the_state_it_read,
            asleep_to_check_orders_filters_and_marks,
            reconcile_awake_is_a_cas_and_counts_flaps,
            touch_awake_only_when_awake,
            record_traffic_moves_activity_forward_only_while_awake,
            count_asleep_counts_asleep_only,
            sum_asleep_replicas_sums_restore_counts_of_asleep_rows,
            list_sleeping_lists_sleeping_and_asleep,
            host_ops_change_what_they_say,
            keep_holds_a_row_out_of_candidates_and_claim,
            a_request_ends_a_keep,
            claim_and_wake_clear_a_keep,
            keeps_lists_every_keep_soonest_first,
            select_early_takes_early_rows_between_the_floor_and_the_window,
            rhythms_round_trip_and_go_with_their_row,
            prewarms_come_due_in_order,
            finish_prewarm_wakes_without_activity_and_keeps,
            wake_and_drift_fix_clear_a_prewarm,
        }
    };
}

/// A fixed instant the cases build on (deterministic, far from now).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

/// "now" of the cases; rows idle when active at or before `idle_before()`.
fn now() -> DateTime<Utc> {
    t0() + mins(120)
}

fn idle_before() -> DateTime<Utc> {
    now() - mins(30)
}

async fn insert<S: HostOps>(s: &S, row: NewDeployment) -> Uuid {
    s.insert(row).await.expect("insert")
}

/// An idle, sleepable app named `name`, last active `ago` minutes before `now()`.
async fn idle<S: HostOps>(s: &S, name: &str, ago: i64) -> Uuid {
    insert(s, NewDeployment::k8s("apps", name, now() - mins(ago))).await
}

async fn candidate_ids<S: Store>(s: &S, limit: u32) -> Vec<Uuid> {
    s.select_candidates(&ServedClusters::default(), now(), idle_before(), limit)
        .await
        .expect("select_candidates")
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn row<S: Store>(s: &S, id: Uuid) -> idle_scaler_core::DeploymentRecord {
    s.get(id).await.expect("get").expect("row exists")
}

/// Claims `id` as the tick would, with the activity it was selected with.
async fn claim<S: Store>(s: &S, id: Uuid, replicas: Option<i32>) -> bool {
    let seen = row(s, id).await.last_activity_at;
    s.claim_sleep(id, seen, idle_before(), replicas, now())
        .await
        .expect("claim_sleep")
}

#[cfg(test)]
mod tests;
