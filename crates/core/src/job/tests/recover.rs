//! Recovery of stale intents.

use super::*;

fn stale(activity_after: bool) -> StaleIntent {
    let changed = t0() - chrono::Duration::minutes(10);
    StaleIntent {
        id: Uuid::new_v4(),
        provider_id: "k8s:apps/web".into(),
        last_activity_at: if activity_after {
            changed + chrono::Duration::minutes(1)
        } else {
            seen()
        },
        sleep_state_changed_at: changed,
        replicas_before_sleep: Some(2),
    }
}

fn recovery(
    intent: StaleIntent,
    replicas_now: i32,
    configure: impl FnOnce(&mut MockStore, &mut MockScaler),
) -> TickReport {
    let mut store = MockStore::new();
    quiet(&mut store);
    store
        .expect_stale_intents()
        .with(
            eq(ServedClusters::default_only()),
            eq(t0() - STALE_INTENT_AFTER),
        )
        .times(1)
        .return_once(move |_, _| Ok(vec![intent]));
    store
        .expect_select_candidates()
        .returning(|_, _, _, _| Ok(vec![]));
    no_asleep(&mut store);
    let mut scaler = MockScaler::new();
    scaler
        .expect_get_scale()
        .returning(move |_| Ok(scale(replicas_now, "5")));
    configure(&mut store, &mut scaler);
    let (report, _) = recorded(job(enabled(), store, scaler).tick());
    report.unwrap()
}

#[test]
fn stale_intent_with_the_app_running_goes_back_to_awake() {
    let intent = stale(false);
    let (id, at) = (intent.id, intent.sleep_state_changed_at);
    let report = recovery(intent, 2, |store, scaler| {
        store
            .expect_settle_intent()
            .with(eq(id), eq(at), eq(SleepState::Awake), eq(t0()))
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        store.expect_revert_sleep().times(0);
        store.expect_confirm_sleep().times(0);
        scaler.expect_set_replicas().times(0);
    });
    assert_eq!(report.recovered(Recovery::Awake), 1);
}

#[test]
fn stale_intent_with_the_app_at_zero_is_confirmed_asleep() {
    let intent = stale(false);
    let (id, at) = (intent.id, intent.sleep_state_changed_at);
    let report = recovery(intent, 0, |store, scaler| {
        store
            .expect_settle_intent()
            .with(eq(id), eq(at), eq(SleepState::Asleep), eq(t0()))
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        store.expect_confirm_sleep().times(0);
        store.expect_revert_sleep().times(0);
        scaler.expect_set_replicas().times(0);
    });
    assert_eq!(report.recovered(Recovery::Asleep), 1);
}

#[test]
fn stale_intent_with_later_activity_is_restored_and_awake() {
    let report = recovery(stale(true), 0, |store, scaler| {
        store.expect_confirm_sleep().times(0);
        store
            .expect_settle_intent()
            .withf(|_, _, to, _| *to == SleepState::Awake)
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        // Conditional on the version read, so a live transition that touched it since wins.
        scaler
            .expect_set_replicas()
            .withf(|t, r, rv| *t == web() && *r == 2 && *rv == Some("5"))
            .times(1)
            .returning(|_, _, _| Ok(()));
    });
    assert_eq!(report.recovered(Recovery::Restored), 1);
}

/// Found by the simulation: two instances recover the same leftover; one reverts it and a
/// tick claims the row anew. The other's write must not undo that live intent: it is a
/// compare-and-set on the intent's change time, which the store refuses.
#[test]
fn recovery_never_settles_an_intent_other_than_the_one_it_read() {
    let report = recovery(stale(false), 2, |store, scaler| {
        store
            .expect_settle_intent()
            .times(1)
            .returning(|_, _, _, _| Ok(false));
        store.expect_revert_sleep().times(0);
        scaler.expect_set_replicas().times(0);
    });
    assert_eq!(report.recovered(Recovery::Raced), 1);
    assert_eq!(report.recovered(Recovery::Awake), 0);
}
