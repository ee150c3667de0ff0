use chrono::TimeZone;
use uuid::Uuid;

use super::*;

fn at(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

fn row(provider_id: &str) -> DeploymentRecord {
    DeploymentRecord {
        id: Uuid::nil(),
        provider_id: provider_id.to_owned(),
        status: HEALTHY.to_owned(),
        always_on: false,
        expires_at: None,
        last_activity_at: at(0),
        sleep_state: SleepState::Awake,
        sleep_state_changed_at: at(0),
        replicas_before_sleep: None,
    }
}

#[test]
fn only_healthy_awake_unpinned_unexpired_idle_cluster_rows_may_sleep() {
    let none = Backoff::default();
    let (now, idle_before) = (at(60), at(30));
    let ok = row("k8s:apps/web");
    assert!(may_sleep(&ok, &none, &Keep::default(), now, idle_before));
    assert!(may_sleep(
        &row("k8s@east:apps/web"),
        &none,
        &Keep::default(),
        now,
        idle_before
    ));
    let changed: [fn(&mut DeploymentRecord); 7] = [
        |r| r.status = "failed".to_owned(),
        |r| r.always_on = true,
        |r| r.sleep_state = SleepState::Asleep,
        |r| r.provider_id = "fly:web".to_owned(),
        |r| r.expires_at = Some(at(60)),
        |r| r.last_activity_at = at(31),
        |r| r.sleep_state = SleepState::Sleeping,
    ];
    for change in changed {
        let mut r = ok.clone();
        change(&mut r);
        assert!(
            !may_sleep(&r, &none, &Keep::default(), now, idle_before),
            "{r:?}"
        );
    }
    let mut future_expiry = ok.clone();
    future_expiry.expires_at = Some(at(61));
    assert!(may_sleep(
        &future_expiry,
        &none,
        &Keep::default(),
        now,
        idle_before
    ));
}

#[test]
fn a_backoff_holds_until_its_retry_time_or_new_activity() {
    let r = row("k8s:apps/web");
    let backoff = Backoff {
        retry_after: Some(at(90)),
        activity_at: Some(at(0)),
    };
    assert!(!may_sleep(&r, &backoff, &Keep::default(), at(89), at(30)));
    assert!(may_sleep(&r, &backoff, &Keep::default(), at(90), at(30)));
    let mut redeployed = r.clone();
    redeployed.last_activity_at = at(1);
    assert!(backoff.ended_by(redeployed.last_activity_at));
    assert!(may_sleep(
        &redeployed,
        &backoff,
        &Keep::default(),
        at(89),
        at(30)
    ));
}

#[test]
fn a_keep_holds_a_row_until_its_time_or_the_request_it_waits_for() {
    let r = row("k8s:apps/web");
    let none = Backoff::default();
    let keep = Keep {
        until: Some(at(90)),
        activity_at: Some(at(0)),
    };
    assert!(!may_sleep(&r, &none, &keep, at(89), at(30)));
    assert!(may_sleep(&r, &none, &keep, at(90), at(30)));
    // A request moved the activity: the keep is over, and the window runs from the request.
    let mut used = r.clone();
    used.last_activity_at = at(1);
    assert!(!keep.holds(used.last_activity_at, at(2)));
    assert!(may_sleep(&used, &none, &keep, at(89), at(30)));
}

#[test]
fn the_waker_wakes_what_the_host_lets_sleep_in_any_state() {
    let mut r = row("k8s:apps/web");
    r.sleep_state = SleepState::Asleep;
    assert!(may_wake(&r, at(1)));
    r.expires_at = Some(at(1));
    assert!(!may_wake(&r, at(1)));
    r.expires_at = None;
    r.always_on = true;
    assert!(!may_wake(&r, at(1)));
    r.always_on = false;
    r.status = "failed".to_owned();
    assert!(!may_wake(&r, at(1)));
}

#[test]
fn out_of_reach_names_other_clusters_and_protected_namespaces() {
    let config = Config {
        protected_namespaces: vec!["kube-system".to_owned()],
        ..Config::default()
    };
    let served = ServedClusters::default_only();
    let target = |id: &str| Target::parse(id).expect("target");
    assert_eq!(
        out_of_reach(&config, &served, &target("k8s:apps/web")),
        None
    );
    assert_eq!(
        out_of_reach(&config, &served, &target("k8s:kube-system/dns")),
        Some(SkipReason::ProtectedNamespace)
    );
    assert_eq!(
        out_of_reach(&config, &served, &target("k8s@east:apps/web")),
        Some(SkipReason::Foreign)
    );
}

#[test]
fn a_wake_restores_the_recorded_count_or_the_default() {
    assert_eq!(restore_count(Some(3), 1), 3);
    assert_eq!(restore_count(None, 2), 2);
    assert_eq!(restore_count(Some(0), 2), 2);
    assert_eq!(restore_count(Some(-1), 2), 2);
}
