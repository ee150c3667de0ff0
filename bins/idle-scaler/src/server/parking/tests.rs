use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

/// Binds the eight parking ports somewhere free on loopback: a base the system just handed
/// out, tried again when another process holds one of the seven after it.
fn bind_free() -> ParkingSockets {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind(SocketAddr::from((LOOPBACK, 0)))
            .expect("an ephemeral port");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        if port > u16::MAX - 7 {
            continue;
        }
        if let Ok(sockets) = ParkingSockets::bind(SocketAddr::from((LOOPBACK, port)), 16) {
            return sockets;
        }
    }
    panic!("no eight free consecutive loopback ports in 50 tries");
}

#[tokio::test]
async fn binds_eight_consecutive_ports_in_offset_order_and_each_accepts() {
    let sockets = bind_free();
    let base = sockets.base();
    let listeners = sockets.into_listeners();
    assert_eq!(listeners.len(), 8);
    for (offset, listener) in (0u16..).zip(&listeners) {
        let local = listener.local_addr().expect("addr");
        assert_eq!(local.port(), base.port() + offset, "offset {offset}");
        let client = tokio::net::TcpStream::connect(local)
            .await
            .expect("connect");
        let (_, peer) = listener.accept().await.expect("accepted");
        assert_eq!(peer, client.local_addr().expect("client addr"));
    }
}

#[tokio::test]
async fn a_port_in_use_fails_the_whole_bind_naming_it_and_frees_the_others() {
    let sockets = bind_free();
    let base = sockets.base();
    drop(sockets);
    // Someone else holds the fourth port.
    let taken = SocketAddr::from((LOOPBACK, base.port() + 3));
    let holder = std::net::TcpListener::bind(taken).expect("hold port 3");
    let e = format!(
        "{:#}",
        ParkingSockets::bind(base, 16).expect_err("port 3 is taken")
    );
    assert!(
        e.contains(&format!("port 3 on {taken}")),
        "the error names the port: {e}"
    );
    // The three bound before it were released: they bind again.
    for offset in 0..3 {
        std::net::TcpListener::bind(SocketAddr::from((LOOPBACK, base.port() + offset)))
            .unwrap_or_else(|e| panic!("port {offset} still held: {e}"));
    }
    drop(holder);
}

#[test]
fn a_base_whose_eight_ports_do_not_fit_is_refused_before_binding() {
    for port in [0, 65529, 65535] {
        let e = format!(
            "{:#}",
            ParkingSockets::bind(SocketAddr::from((LOOPBACK, port)), 16).expect_err("refused")
        );
        assert!(e.contains("from 1 to 65528"), "{port}: {e}");
    }
}

const TEST_LINGER: Linger = Linger {
    poll: Duration::from_secs(1),
    settle: Duration::from_secs(2),
    max: Duration::from_secs(15),
};

/// A predicate that answers true `listed_for` times, then false; and how often it was asked.
fn listed_for(times: u32) -> (impl FnMut() -> std::future::Ready<bool>, Arc<AtomicU32>) {
    let asked = Arc::new(AtomicU32::new(0));
    let counter = asked.clone();
    let predicate = move || std::future::ready(counter.fetch_add(1, Ordering::SeqCst) < times);
    (predicate, asked)
}

/// Lingers with [`TEST_LINGER`]: how it ended, and after how long.
async fn linger<F, Fut>(listed: F) -> (LingerEnd, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let end = linger_while_listed(listed, TEST_LINGER).await;
    (end, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn stays_open_while_listed_then_for_the_settle_time() {
    let (listed, asked) = listed_for(4);
    // Asked at 0, 1, 2, 3 s (listed) and 4 s (not): closes 2 s later.
    assert_eq!(
        linger(listed).await,
        (LingerEnd::Unlisted, Duration::from_secs(6))
    );
    assert_eq!(asked.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn not_listed_at_sigterm_closes_after_the_settle_time_alone() {
    let (listed, asked) = listed_for(0);
    assert_eq!(
        linger(listed).await,
        (LingerEnd::Unlisted, TEST_LINGER.settle)
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pod_listed_for_ever_closes_at_the_maximum() {
    let (listed, _) = listed_for(u32::MAX);
    assert_eq!(linger(listed).await, (LingerEnd::Max, TEST_LINGER.max));
}

#[tokio::test(start_paused = true)]
async fn unlisted_near_the_maximum_still_closes_at_the_maximum() {
    // Not listed from 14 s on: the settle time would end at 16 s, past the maximum.
    let (listed, _) = listed_for(14);
    assert_eq!(linger(listed).await, (LingerEnd::Max, TEST_LINGER.max));
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_counts_against_the_maximum() {
    // An API that takes 10 s per question: the second question is still out at 15 s.
    let predicate = || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        true
    };
    assert_eq!(linger(predicate).await, (LingerEnd::Max, TEST_LINGER.max));
}

#[tokio::test(start_paused = true)]
async fn the_stop_token_is_cancelled_when_the_linger_ends_and_not_before() {
    let (listed, _) = listed_for(3);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = stop_parking_after_linger(listed, TEST_LINGER, stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!stop.is_cancelled(), "stopped while the settle time runs");
    stop.cancelled().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(task.await.expect("task"), LingerEnd::Unlisted);
}

#[test]
fn the_daemons_linger_ends_before_the_drain_deadline_inside_the_grace() {
    let drain = Duration::from_secs(crate::settings::DRAIN_SECONDS);
    let grace = Duration::from_secs(crate::settings::SHUTDOWN_GRACE_SECONDS);
    assert!(PARKING_LINGER.settle < PARKING_LINGER.max);
    assert!(
        PARKING_LINGER.max < drain,
        "requests accepted last get time to be answered"
    );
    assert!(drain < grace);
    // A shorter drain caps the linger; a longer one leaves it.
    let short = PARKING_LINGER.capped(Duration::from_secs(5));
    assert_eq!(short.max, Duration::from_secs(5));
    assert_eq!(short.settle, PARKING_LINGER.settle);
    assert_eq!(PARKING_LINGER.capped(grace), PARKING_LINGER);
}
