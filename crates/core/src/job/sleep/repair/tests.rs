use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::{MockScaler, Scale};

fn scale(replicas: i32, version: &str) -> Scale {
    Scale {
        replicas,
        resource_version: version.to_owned(),
    }
}

/// A scaler whose Deployment reads at `replicas` with a new version each read, and whose
/// writes meet a conflict `conflicts` times before one lands.
fn scaler(replicas: i32, conflicts: usize) -> (MockScaler, Arc<AtomicUsize>) {
    let mut scaler = MockScaler::new();
    let reads = Arc::new(AtomicUsize::new(0));
    let r = reads.clone();
    scaler.expect_get_scale().returning(move |_| {
        let n = r.fetch_add(1, Ordering::SeqCst);
        Ok(scale(replicas, &format!("v{n}")))
    });
    let writes = Arc::new(AtomicUsize::new(0));
    let w = writes.clone();
    scaler
        .expect_set_replicas()
        .returning(move |_, replicas, version| {
            assert_eq!(replicas, 3, "restores the recorded count");
            assert!(
                version.is_some(),
                "a restore always writes with a precondition"
            );
            if w.fetch_add(1, Ordering::SeqCst) < conflicts {
                Err(Error::conflict("stale resourceVersion"))
            } else {
                Ok(())
            }
        });
    (scaler, writes)
}

fn target() -> Target {
    Target::new("apps", "web")
}

#[tokio::test]
async fn a_redeploy_that_keeps_the_app_at_zero_does_not_end_the_restore() {
    // A redeploy changes the Deployment's version while it stays at 0: the first write meets
    // a conflict, and the restore must read again and write again, not take it as someone
    // else's scale-up (which would leave the app at 0 under an awake row).
    let (scaler, writes) = scaler(0, 1);
    assert!(restore(&scaler, uuid::Uuid::nil(), &target(), 3).await);
    assert_eq!(writes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_restore_that_keeps_meeting_changes_is_left_owed() {
    let (scaler, writes) = scaler(0, usize::MAX);
    assert!(!restore(&scaler, uuid::Uuid::nil(), &target(), 3).await);
    assert_eq!(writes.load(Ordering::SeqCst), RESTORE_ATTEMPTS);
}

#[tokio::test]
async fn an_app_someone_else_scaled_up_is_left_as_it_is() {
    let (scaler, writes) = scaler(2, 0);
    assert!(restore(&scaler, uuid::Uuid::nil(), &target(), 3).await);
    assert_eq!(writes.load(Ordering::SeqCst), 0);
}
