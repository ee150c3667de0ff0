//! Parking through the binary: a slept app's Service is parked at the binary's parking
//! listener, and a caller that goes through a data plane (endpoints picked from all of the
//! Service's slices) reaches the app: PostgreSQL, the fake API server, real app servers.

pub mod world; // apps/web, its Services, callers' pods, the binary with parking on

use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::dataplane;
use crate::support::{database_url, eventually, job_command, kubeconfig, run_async, setup};
use world::*;

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_slept_app_is_parked_and_a_caller_by_dns_name_reaches_it_then_it_is_unparked(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    let hand_written = w
        .slice("idle-scaler-web-admin")
        .expect("hand-written slice");
    w.fake.set_ready_delay(Duration::from_millis(800));
    let mut daemon = w.daemon().await;

    let parked = w.parked(&mut daemon).await;
    assert_eq!(w.fake.replicas("apps", "web"), Some(0));
    assert_eq!(
        parked["endpoints"][0]["addresses"][0], "127.0.0.1",
        "{parked}"
    );
    assert_eq!(parked["ports"][0]["name"], "http", "{parked}");
    assert_eq!(parked["ports"][0]["port"], w.port, "{parked}");
    assert_eq!(
        parked["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "idle-scaler"
    );
    // The data plane now sends every caller to the parking listener.
    assert_eq!(
        dataplane::endpoints(&w.fake, "apps", "web", "http"),
        [format!("127.0.0.1:{}", w.port).parse().expect("addr")]
    );

    // While the request is held and the app starts, the parked slice stays: there is never
    // a moment without a ready endpoint.
    let watcher = async {
        let mut seen_scaled = false;
        loop {
            let own = w.own_ready();
            let parked_now = w.slice(PARKED).is_some();
            seen_scaled |= w.fake.replicas("apps", "web") == Some(1);
            assert!(
                own || parked_now,
                "the parked slice went before the app's own endpoints were ready"
            );
            if seen_scaled && !parked_now {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let request = w.call(
        APPS_POD,
        "web.apps.svc.cluster.local",
        "POST",
        "{\"item\":42}",
    );
    let (answer, ()) = tokio::join!(request, async {
        tokio::time::timeout(DEADLINE, watcher)
            .await
            .expect("the parked slice goes once the app is ready");
    });
    let answer = answer.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}\n{}", daemon.output());
    assert_eq!(answer.body, "app saw POST /orders?id=7 {\"item\":42}");
    assert_eq!(w.app.hits.load(Ordering::SeqCst), 1);
    // Unparked: the data plane sends callers to the app itself.
    assert_eq!(
        dataplane::endpoints(&w.fake, "apps", "web", "http"),
        [w.app.addr]
    );
    // The hand-written slice with idle-scaler's name was never changed nor deleted.
    let after = w.slice("idle-scaler-web-admin").expect("still there");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        hand_written["metadata"]["resourceVersion"]
    );
    assert!(
        !w.fake
            .requests()
            .iter()
            .any(|r| r.method != "GET" && r.path.ends_with("/endpointslices/idle-scaler-web-admin")),
        "a write touched the hand-written slice"
    );
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn two_hundred_concurrent_callers_make_one_scale_write_and_all_reach_the_app(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = std::sync::Arc::new(world(&opts).await);
    w.fake.set_ready_delay(Duration::from_millis(500));
    let mut daemon = w.daemon().await;
    w.parked(&mut daemon).await;
    let writes_before = w.scale_writes();

    let calls: Vec<_> = (0..200)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                w.call(APPS_POD, "web.apps", "POST", &format!("n={i}"))
                    .await
                    .map(|a| (i, a))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.expect("join"));
    }

    for answer in &answers {
        let (i, a) = answer.as_ref().expect("an answer");
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body, format!("app saw POST /orders?id=7 n={i}"));
    }
    assert_eq!(w.app.hits.load(Ordering::SeqCst), 200);
    assert_eq!(
        w.scale_writes() - writes_before,
        1,
        "one wake: one scale write"
    );
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn the_caller_check_refuses_other_namespaces_and_non_pods_and_admits_the_apps_own_by_bare_name(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    let mut daemon = w.daemon().await;
    w.parked(&mut daemon).await;
    let writes_before = w.scale_writes();

    let other = w
        .call(OTHER_POD, "web.apps.svc.cluster.local", "GET", "")
        .await
        .expect("an answer");
    let stranger = w
        .call(NO_POD, "web.apps", "GET", "")
        .await
        .expect("an answer");
    for refused in [&other, &stranger] {
        assert_eq!(refused.status, 503, "{refused:?}");
    }
    // The generic answer: the same for both, nothing said about the app.
    assert_eq!(other.body, stranger.body);
    assert!(!other.body.contains("web"), "{other:?}");
    assert_eq!(w.scale_writes(), writes_before, "nothing woken");
    assert_eq!(w.fake.replicas("apps", "web"), Some(0));
    assert_eq!(w.app.hits.load(Ordering::SeqCst), 0);

    let own = w.call(APPS_POD, "web", "GET", "").await.expect("an answer");
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.body, "app saw GET /orders?id=7 ");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn sigterm_answers_every_held_request_and_sends_no_empty_reply(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    // The app takes longer to start than the daemon takes to stop.
    w.fake.set_ready_delay(Duration::from_secs(120));
    let mut daemon = w.daemon().await;
    w.parked(&mut daemon).await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let stream = dataplane::connect(&w.fake, ip(APPS_POD), ("apps", "web"))
            .await
            .expect("connect");
        streams.push(stream);
    }
    let held: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(async move {
                let body = format!("n={i}");
                dataplane::exchange(s, "web.apps", ("POST", "/orders", &body)).await
            })
        })
        .collect();
    eventually(DEADLINE, "the wake to start", || async {
        (w.fake.replicas("apps", "web") == Some(1)).then_some(())
    })
    .await;

    daemon.send_sigterm();

    for h in held {
        let answer = h
            .await
            .expect("join")
            .expect("an answer, not an empty reply");
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.head.contains("\r\nretry-after: "), "{answer:?}");
    }
    assert_eq!(
        daemon.wait_for_exit(DEADLINE).await,
        Some(0),
        "{}",
        daemon.output()
    );
    assert_eq!(w.app.hits.load(Ordering::SeqCst), 0);
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_rollout_that_replaces_the_waker_address_while_requests_arrive_loses_no_request(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = std::sync::Arc::new(world(&opts).await);
    w.fake.set_ready_delay(Duration::from_secs(2));
    let mut a = w.daemon_at(WAKER_A).await;
    let parked = w.parked(&mut a).await;
    assert_eq!(parked["endpoints"][0]["addresses"][0], WAKER_A);

    let stop = tokio_util::sync::CancellationToken::new();
    // A request every 25 ms, each on its own connection, none waiting for another.
    let load = async {
        let mut requests = Vec::new();
        let mut every = tokio::time::interval(Duration::from_millis(25));
        while !stop.is_cancelled() {
            every.tick().await;
            let (i, w) = (requests.len(), w.clone());
            requests.push(tokio::spawn(async move {
                w.call(APPS_POD, "web.apps", "POST", &format!("n={i}"))
                    .await
                    .map(|a| (i, a))
            }));
        }
        let mut answers = Vec::new();
        for r in requests {
            answers.push(r.await.expect("join"));
        }
        answers
    };
    let rollout = async {
        // The new pod: its first pass re-points the slices at its own address.
        let _b = w.daemon_at(WAKER_B).await;
        eventually(DEADLINE, "the slices to leave the old pod", || async {
            w.slice(PARKED)
                .is_none_or(|s| s["endpoints"][0]["addresses"][0] == WAKER_B)
                .then_some(())
        })
        .await;
        // The old pod goes: its listener stays while a slice lists it, then closes.
        assert_eq!(a.terminate(DEADLINE).await, Some(0), "{}", a.output());
        // Requests keep arriving after it is gone, then the load stops.
        let after = w.app.hits.load(Ordering::SeqCst);
        eventually(DEADLINE, "requests after the old pod left", || async {
            (w.app.hits.load(Ordering::SeqCst) >= after + 10).then_some(())
        })
        .await;
        stop.cancel();
    };
    let (answers, ()) = tokio::join!(load, rollout);

    assert!(answers.len() > 20, "{}", answers.len());
    for answer in &answers {
        let (i, a) = answer
            .as_ref()
            .expect("an answer, not a refused or empty one");
        assert_eq!(a.status, 200, "request {i}: {a:?}");
        assert_eq!(a.body, format!("app saw POST /orders?id=7 n={i}"));
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn tick_parks_and_says_so_and_unpark_all_removes_every_parked_slice_and_nothing_else(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    let mut tick = job_command(&["tick"], &w.db, &w.kubeconfig.1);
    tick.env("DEPLOY_SCALE_TO_ZERO_PARKING", "endpointslices")
        .env(
            "IDLE_SCALER_WAKER_ADDRESSES",
            format!("127.0.0.1:{}", w.port),
        )
        .env("IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES", "true");
    let ticked = run_async(tick).await;
    assert_eq!(ticked.code, Some(0), "{}", ticked.stderr);
    // The tick parks as the daemon does, and says so: `web` parked, `web-admin` not (its
    // slice's name is taken by one idle-scaler did not write).
    assert!(
        ticked.stdout.contains("scaled_down=1")
            && ticked.stdout.contains("parking parked=1")
            && ticked.stdout.contains("parking conflict=1"),
        "{}",
        ticked.stdout
    );
    assert!(w.slice(PARKED).is_some());

    let out = run_async(job_command(&["unpark", "--all"], &w.db, &w.kubeconfig.1)).await;

    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("unparked apps/web: 1 slices removed")
            && out.stdout.contains("1 parked apps, 1 unparked, 0 failed"),
        "{}",
        out.stdout
    );
    assert!(w.slice(PARKED).is_none());
    assert!(
        w.slice("idle-scaler-web-admin").is_some(),
        "not idle-scaler's"
    );
    assert!(w.fake.endpoint_slices("apps").iter().all(
        |s| s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] != "idle-scaler"
    ));
    // Nothing left: a second run removes nothing and succeeds.
    let again = run_async(job_command(&["unpark", "--all"], &w.db, &w.kubeconfig.1)).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.contains("0 parked apps"), "{}", again.stdout);
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn parking_without_a_waker_address_is_a_startup_error_naming_the_variables(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (_store, fake) = setup(&opts).await;
    let (_dir, kc) = kubeconfig(&fake.url());
    let mut cmd = job_command(&["run"], &database_url(&opts, None), &kc);
    cmd.env("DEPLOY_SCALE_TO_ZERO_PARKING", "endpointslices")
        .env("IDLE_SCALER_LISTEN_ADDR", "127.0.0.1:0")
        .env("IDLE_SCALER_WAKER_LISTEN_ADDR", "off")
        .env("IDLE_SCALER_PROBE_LISTEN_ADDR", "off")
        .env("IDLE_SCALER_PARKING_LISTEN_ADDR", "off");

    let out = run_async(cmd).await;

    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("IDLE_SCALER_WAKER_SERVICE") && out.stderr.contains("POD_NAMESPACE"),
        "{}",
        out.stderr
    );
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn tick_points_the_slices_at_the_ready_endpoints_of_the_watched_waker_service(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    dataplane::create(
        &w.fake,
        "/apis/discovery.k8s.io/v1/namespaces/ops/endpointslices",
        &serde_json::json!({
            "metadata": {
                "name": "waker-abc12",
                "labels": { "kubernetes.io/service-name": "waker" },
            },
            "addressType": "IPv4",
            "ports": [{ "name": "parking", "port": w.port, "protocol": "TCP" }],
            "endpoints": [
                { "addresses": [WAKER_A], "conditions": { "ready": true } },
                { "addresses": [WAKER_B], "conditions": { "ready": false } },
            ],
        }),
    )
    .await;
    let mut tick = job_command(&["tick"], &w.db, &w.kubeconfig.1);
    tick.env("DEPLOY_SCALE_TO_ZERO_PARKING", "endpointslices")
        .env("IDLE_SCALER_WAKER_SERVICE", "ops/waker")
        .env("IDLE_SCALER_ALLOW_LOOPBACK_ADDRESSES", "true");

    let ticked = run_async(tick).await;

    assert_eq!(ticked.code, Some(0), "{}", ticked.stderr);
    assert!(
        ticked.stdout.contains("parking parked=1"),
        "{}",
        ticked.stdout
    );
    let parked = w.slice(PARKED).expect("parked");
    // The ready endpoint only, on the port the Service names `parking`.
    assert_eq!(
        parked["endpoints"].as_array().map(Vec::len),
        Some(1),
        "{parked}"
    );
    assert_eq!(parked["endpoints"][0]["addresses"][0], WAKER_A, "{parked}");
    assert_eq!(parked["ports"][0]["port"], w.port, "{parked}");
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn two_wakers_listed_at_once_both_hold_callers_of_an_app_one_of_them_woke(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = std::sync::Arc::new(world(&opts).await);
    w.fake.set_ready_delay(Duration::from_secs(5));
    let both = format!("{WAKER_A}:{p},{WAKER_B}:{p}", p = w.port);
    let mut a = w.daemon_with(WAKER_A, &both).await;
    let mut b = w.daemon_with(WAKER_B, &both).await;
    w.parked(&mut a).await;
    w.parked(&mut b).await;
    assert_eq!(
        dataplane::endpoints(&w.fake, "apps", "web", "http").len(),
        2,
        "both wakers listed"
    );

    // A request every 50 ms for 4 s, spread over both wakers by the data plane, while the
    // app starts (5 s): the waker that did not wake it knows the app from the parked slice.
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let mut calls = Vec::new();
    for i in 0..80 {
        every.tick().await;
        let w = w.clone();
        calls.push(tokio::spawn(async move {
            w.call(APPS_POD, "web.apps", "POST", &format!("n={i}"))
                .await
                .map(|a| (i, a))
        }));
    }
    for c in calls {
        let (i, a) = c.await.expect("join").expect("an answer");
        assert_eq!(a.status, 200, "request {i}: {a:?}");
    }
    assert_eq!(w.fake.replicas("apps", "web"), Some(1));
}
