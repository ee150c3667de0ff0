//! The host fixtures (`HostOps`) the other cases build on.

use idle_scaler_core::{SleepState, Store};
use uuid::Uuid;

use super::{idle, mins, now, row};
use crate::host::{HostOps, NewDeployment};

/// The fixtures themselves: each changes its column and reports whether the row existed;
/// a duplicate id and a restore count of 0 are refused as the schema refuses them.
pub async fn host_ops_change_what_they_say<S: Store + HostOps>(s: &S) {
    let id = idle(s, "app", 60).await;
    let missing = Uuid::new_v4();
    assert!(
        s.insert(NewDeployment::k8s("apps", "dup", now()).id(id))
            .await
            .is_err()
    );
    assert!(
        s.insert(NewDeployment::k8s("apps", "zero", now()).sleep_state(
            SleepState::Asleep,
            now(),
            Some(0)
        ))
        .await
        .is_err()
    );

    assert!(s.bump_activity(id, now()).await.expect("bump"));
    assert!(s.set_always_on(id, true).await.expect("pin"));
    assert!(
        s.set_expires_at(id, Some(now() + mins(9)))
            .await
            .expect("expiry")
    );
    assert!(s.set_status(id, "failed").await.expect("status"));
    assert!(
        s.set_sleep_state(id, SleepState::Sleeping, now() - mins(1), Some(7))
            .await
            .expect("state")
    );
    assert!(
        s.set_sleep_state(id, SleepState::Asleep, now(), Some(0))
            .await
            .is_err()
    );
    let r = row(s, id).await;
    assert_eq!(r.last_activity_at, now());
    assert!(r.always_on);
    assert_eq!(r.expires_at, Some(now() + mins(9)));
    assert_eq!(r.status, "failed");
    assert_eq!(
        (
            r.sleep_state,
            r.sleep_state_changed_at,
            r.replicas_before_sleep
        ),
        (SleepState::Sleeping, now() - mins(1), Some(7))
    );
    assert!(s.set_expires_at(id, None).await.expect("expiry"));
    assert_eq!(row(s, id).await.expires_at, None);
    assert_eq!(s.rows().await.expect("rows"), vec![row(s, id).await]);

    assert!(!s.bump_activity(missing, now()).await.expect("bump"));
    assert!(!s.set_always_on(missing, true).await.expect("pin"));
    assert!(!s.set_expires_at(missing, None).await.expect("expiry"));
    assert!(!s.set_status(missing, "x").await.expect("status"));
    assert!(
        !s.set_sleep_state(missing, SleepState::Awake, now(), None)
            .await
            .expect("state")
    );
    assert!(s.delete(id).await.expect("delete"));
    assert!(!s.delete(id).await.expect("delete"));
    assert_eq!(s.read(id).await.expect("read"), None);
}
