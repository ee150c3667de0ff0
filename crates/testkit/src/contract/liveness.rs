//! Liveness: rows that back off, and other providers' rows, never starve real candidates.

use idle_scaler_core::ServedClusters;
use std::future::Future;

use chrono::Duration;
use idle_scaler_core::{BackOff, Store};

use super::{idle_before, insert, mins, now};
use crate::host::{HostOps, NewDeployment};

/// The reasons a row backs off for: each a lasting skip (or a failed scale) of the tick.
pub const LASTING_SKIPS: [&str; 7] = [
    "malformed",
    "protected_namespace",
    "not_found",
    "raced",
    "activity_unknown",
    "fights_back",
    "scale_failed",
];

/// Real candidates in the liveness cases, more than one tick's `limit` of 50.
pub const REAL_CANDIDATES: usize = 60;

/// Rows per lasting skip in the contract case: over the `limit` of 50, so if backed-off rows
/// were only skipped after selection, the first page would hold nothing else. The stores' own
/// tests run the same check with 10,000 per kind ([`backed_off_rows_never_starve_at`]).
const PER_KIND: usize = 60;

/// Backed-off rows of every lasting kind, and rows of another provider, all idle longer than
/// every real candidate: a tick's page of 50 holds the 50 oldest real candidates only.
pub async fn backed_off_rows_never_starve_candidates<S: Store + HostOps>(s: &S) {
    backed_off_rows_never_starve_at(s, PER_KIND).await;
}

/// [`backed_off_rows_never_starve_candidates`] with `per_kind` rows of each lasting skip (and
/// as many foreign rows).
// Not an `async fn`: under `src/contract/` each `pub async fn` is a case of the list.
#[allow(clippy::manual_async_fn)]
pub fn backed_off_rows_never_starve_at<S: Store + HostOps>(
    s: &S,
    per_kind: usize,
) -> impl Future<Output = ()> + Send + '_ {
    async move {
        let minutes = |n: usize| mins(i64::try_from(n).expect("small"));
        // The oldest rows of all: other providers' (never selected) and those backing off.
        for i in 0..per_kind {
            let at = now() - mins(100_000) - minutes(i);
            insert(s, NewDeployment::new(format!("docker:app-{i}"), at)).await;
        }
        for (k, reason) in LASTING_SKIPS.iter().enumerate() {
            let retry_after = now() + Duration::hours(1) + minutes(k);
            let backoff = BackOff {
                reason: (*reason).to_owned(),
                retry_after,
                retry_key: retry_after - (now() - idle_before()),
            };
            for i in 0..per_kind {
                let at = now() - mins(50_000) - minutes(i);
                let id = insert(s, NewDeployment::k8s(reason, &format!("app-{i}"), at)).await;
                assert!(s.back_off(id, at, &backoff).await.expect("back_off"));
            }
        }
        let mut real = Vec::new();
        for i in 0..REAL_CANDIDATES {
            let at = now() - mins(60) - minutes(REAL_CANDIDATES - i);
            real.push(insert(s, NewDeployment::k8s("real", &format!("app-{i}"), at)).await);
        }
        let found = s
            .select_candidates(&ServedClusters::default(), now(), idle_before(), 50)
            .await
            .expect("select");
        let ids: Vec<_> = found.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            real[..50],
            "the 50 oldest real candidates, oldest first"
        );
    }
}
