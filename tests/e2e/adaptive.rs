//! The adaptive policy through the binary's wiring (issue 22): the daemon's store keeps the
//! rhythms, and `plan` and `tick` say when an app is kept up for its expected request.

use chrono::{Duration, Utc};
use idle_scaler_core::RhythmStore;
use idle_scaler_core::rhythm::{Gap, Rhythm};
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{database_url, job_command, kubeconfig, run_async, setup};

/// Quiet spells that mostly end soon after the 30-minute window (8 to 55 minutes; 80% of the
/// longer ones within 50): the policy keeps the app up to 52 minutes after its activity.
fn just_past_the_window() -> Rhythm {
    let now = Utc::now();
    let gaps = [10, 34, 12, 45, 38, 8, 50, 36, 40, 55];
    Rhythm {
        gaps: gaps
            .iter()
            .enumerate()
            .map(|(i, m)| Gap {
                ended_at: now - Duration::hours(10 - i64::try_from(i).expect("small")),
                minutes: *m,
            })
            .collect(),
        day_starts: Vec::new(),
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn an_app_whose_next_request_is_expected_soon_is_kept_and_plan_says_why(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (store, fake) = setup(&opts).await;
    fake.create_deployment("apps", "web", 2);
    let id = store
        .insert(NewDeployment::k8s(
            "apps",
            "web",
            Utc::now() - Duration::minutes(40),
        ))
        .await
        .expect("insert");
    assert!(
        store
            .save_rhythm(id, &just_past_the_window(), false)
            .await
            .expect("save")
    );
    let (_dir, kc) = kubeconfig(&fake.url());
    let db = database_url(&opts, None);
    let run = |args: &'static [&'static str], policy: &'static str| {
        let mut cmd = job_command(args, &db, &kc);
        cmd.env("DEPLOY_SCALE_TO_ZERO_POLICY", policy);
        run_async(cmd)
    };

    // The fixed window sleeps it: idle 40 minutes.
    let fixed = run(&["plan"], "fixed").await;
    assert!(
        fixed.stdout.contains("1 would be put to sleep"),
        "{}\n{}",
        fixed.stdout,
        fixed.stderr
    );
    let plan = run(&["plan"], "adaptive").await;
    assert_eq!(plan.code, Some(0), "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout
            .contains("0 would be put to sleep (1 idle candidates)")
            && plan.stdout.contains("skipped predicted_use=1"),
        "{}",
        plan.stdout
    );
    let tick = run(&["tick"], "adaptive").await;
    assert_eq!(tick.code, Some(0), "{}\n{}", tick.stdout, tick.stderr);
    assert!(
        tick.stdout.contains("skipped predicted_use=1"),
        "{}",
        tick.stdout
    );
    assert_eq!(fake.replicas("apps", "web"), Some(2));
    // The tick recorded the keep: the app is no candidate until it runs out.
    let after = run(&["plan"], "adaptive").await;
    assert!(
        after.stdout.contains("(0 idle candidates)"),
        "{}",
        after.stdout
    );
}
