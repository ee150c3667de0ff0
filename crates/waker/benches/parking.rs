//! The parking listener's first-request overhead: from the moment the slept app's own
//! endpoint is ready (the directory publishes it) to the moment each held client has the
//! app's whole answer, for 1 and for 1,000 concurrent held requests to one app. Everything
//! over real TCP on loopback: clients from a pod address, the parking listener, the forward
//! to a real HTTP app; the wake through the real `Job` and Kubernetes adapter against the fake
//! API server; the in-memory store and directory. The clients and the app run in processes
//! of their own; the moments are compared on the system clock, which all of them share.
//! Run: `cargo bench -p idle-scaler-waker --bench parking`.
//!
//! The listener's instructions in the measured span, repeatably on a busy machine: run the
//! built bench under `valgrind --tool=callgrind` with `PARKING_BENCH_CALLGRIND=1` (callgrind's
//! counters are zeroed before the endpoint is published and dumped once every client has its
//! answer: one dump per round) and `PARKING_BENCH_ROUNDS=<n>` (only n rounds of 1,000 held).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{App, HOST, POD, Parked, pct};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::Instant;

/// Now on the system clock, in nanoseconds since the epoch.
fn now_ns() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_nanos()).expect("nanoseconds")
}

/// One request on its own connection from the pod address, written and read as bytes (the
/// listener closes the connection after the app's answer, so its end is the answer's end):
/// the lightest client, so the clients' process takes little of the cores from the listener.
async fn raw_request(to: std::net::SocketAddr) -> u64 {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::new(POD.parse().expect("ip"), 0))
        .expect("bind source");
    let mut stream = socket.connect(to).await.expect("connect");
    let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::with_capacity(512);
    stream.read_to_end(&mut answer).await.expect("read");
    let at = now_ns();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello from the app\n"),
        "not the app's answer: {answer}"
    );
    at
}

/// The held clients' role: `COUNT` requests to `TO` at once, each on its connection; prints
/// when each had its whole answer.
async fn held() {
    let (to, count) = common::role_args();
    let clients: Vec<_> = (0..count).map(|_| tokio::spawn(raw_request(to))).collect();
    let mut out = String::new();
    for c in clients {
        out.push_str(&c.await.expect("client").to_string());
        out.push('\n');
    }
    print!("{out}");
}

/// One round: `held` requests held for a slept app, then its endpoint (`app`) published. The
/// overhead of each request, and the scale writes the round made.
async fn round(held: usize, app: std::net::SocketAddr) -> (Vec<Duration>, usize) {
    let parked = Parked::start().await;
    let clients = tokio::spawn(common::run_role("held", parked.addr, held));
    let deadline = Instant::now() + Duration::from_secs(30);
    while parked.directory.waiting() < held || parked.fake.replicas("apps", "web") != Some(1) {
        assert!(Instant::now() < deadline, "requests never all held");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    callgrind("-z");
    let ready = now_ns();
    parked
        .directory
        .set_endpoint("apps", "web", Some("http"), app);
    let done = clients.await.expect("clients");
    callgrind("-d");
    assert_eq!(done.len(), held, "every client answered");
    let overheads = done
        .into_iter()
        .map(|at| Duration::from_nanos(at.saturating_sub(ready)))
        .collect();
    parked.shutdown.cancel();
    (overheads, parked.scale_writes())
}

/// `callgrind_control <what>` for this process when `PARKING_BENCH_CALLGRIND` is set (the
/// bench runs under callgrind): `-z` zeroes the counters, `-d` dumps them.
fn callgrind(what: &str) {
    if std::env::var_os("PARKING_BENCH_CALLGRIND").is_some() {
        let _ = std::process::Command::new("callgrind_control")
            .args([what, &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

fn main() {
    if common::play_role("held", held) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = App::start();
    println!("parking listener first-request overhead (endpoint ready -> client has the answer)");
    let plan = match std::env::var("PARKING_BENCH_ROUNDS") {
        Ok(n) => vec![(1000, n.parse().expect("PARKING_BENCH_ROUNDS: a number"))],
        Err(_) => vec![(1, 100), (1000, 5)],
    };
    for (held, rounds) in plan {
        let mut all = Vec::new();
        let mut max_writes = 0;
        for _ in 0..rounds {
            let (o, writes) = rt.block_on(round(held, app.addr));
            all.extend(o);
            max_writes = max_writes.max(writes);
        }
        all.sort();
        println!(
            "{held:>5} held x {rounds:>3} rounds: p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  scale writes per round {max_writes}",
            pct(&all, 0.5).as_secs_f64() * 1e3,
            pct(&all, 0.99).as_secs_f64() * 1e3,
            all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}
