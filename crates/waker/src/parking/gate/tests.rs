use std::time::Duration;

use super::*;

#[tokio::test(start_paused = true)]
async fn forwards_to_one_app_are_capped_and_wait_for_a_place_until_their_deadline() {
    let gate = Gate::new(2);
    let (a, b) = (Target::new("apps", "a"), Target::new("apps", "b"));
    let soon = Instant::now() + Duration::from_secs(1);
    let first = gate.enter(&a, soon).await.expect("first");
    let _second = gate.enter(&a, soon).await.expect("second");
    assert!(
        gate.enter(&a, soon).await.is_none(),
        "a third waits until its deadline"
    );
    let _other = gate
        .enter(&b, soon)
        .await
        .expect("another app has its own places");
    let later = Instant::now() + Duration::from_secs(1);
    let (third, ()) = tokio::join!(gate.enter(&a, later), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
    });
    assert!(third.is_some(), "a place came free before the deadline");
}
