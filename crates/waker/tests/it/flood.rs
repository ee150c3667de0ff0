//! A flood of requests for unknown apps while the database is 20 ms away (a loopback proxy
//! delaying each direction): naming the app never takes the store, so a real wake during the
//! flood takes about as long as without it, and unknown and known-but-not-sleepable apps get
//! their answer without a store call. Real PostgreSQL, real adapter against the fake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use idle_scaler_postgres::PgStore;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;

const DELAY: Duration = Duration::from_millis(20);
const FLOOD: usize = 4_000;

/// A TCP proxy to `upstream` that delivers every chunk `DELAY` after it was read, in each
/// direction, and counts the bytes sent towards the server.
struct SlowProxy {
    addr: SocketAddr,
    to_server: Arc<AtomicU64>,
}

impl SlowProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let to_server = Arc::new(AtomicU64::new(0));
        let counted = to_server.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream).await.expect("upstream");
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, Some(counted.clone())));
                tokio::spawn(pipe(sr, cw, None));
            }
        });
        Self { addr, to_server }
    }

    fn sent(&self) -> u64 {
        self.to_server.load(Ordering::SeqCst)
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Option<Arc<AtomicU64>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            // The simulated latency: each chunk is delivered at its own time, in order.
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Some(c) = &count {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
        if tx
            .send((Instant::now() + DELAY, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn ask(target: &str) -> Request<Body> {
    Request::builder()
        .header("X-Idle-Scaler-Target", target)
        .header("X-Original-URI", "/")
        .body(Body::empty())
        .expect("request")
}

/// Time until a held request for `target` is answered with the redirect of a woken app.
async fn wake(router: &Router, target: &str) -> Duration {
    let started = Instant::now();
    let res = send(router, ask(target)).await;
    assert_eq!(res.status(), 307, "{target} woken");
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_flood_of_unknown_apps_leaves_the_store_to_real_wakes(pool: PgPool) {
    let options = pool.connect_options();
    let upstream: SocketAddr = format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], options.get_port())));
    let database = options.get_database().expect("a test database").to_owned();
    let proxy = SlowProxy::start(upstream).await;
    let url = format!(
        "postgres://{}@{}/{database}",
        options.get_username(),
        proxy.addr
    );
    let store = PgStore::connect(&url).await.expect("through the proxy");

    let fake = FakeApiServer::start().await;
    let past = Utc::now() - chrono::Duration::hours(2);
    for name in ["quiet", "busy", "pinned"] {
        fake.create_deployment("apps", name, 0);
        let row =
            NewDeployment::k8s("apps", name, past).sleep_state(SleepState::Asleep, past, Some(1));
        store
            .insert(row.always_on(name == "pinned"))
            .await
            .expect("insert");
    }
    let store: Arc<dyn idle_scaler_core::Store> = Arc::new(store);
    let kube = Arc::new(KubeScaler::from_url(&fake.url(), Duration::from_secs(10)).expect("kube"));
    let job = Arc::new(
        Job::builder(
            Config::default(),
            store.clone(),
            Arc::new(FixedScalerFactory(kube.clone())),
        )
        .build(),
    );
    let config = WakerConfig {
        waker_timeout_seconds: 30,
        waker_max_wakes_per_minute: 1000,
        ..WakerConfig::default()
    };
    // No periodic refresh during the test: every store call below is a wake's.
    let waker = Arc::new(
        Waker::builder(job, store, kube, Arc::new(SystemClock), config)
            .index_refresh(Duration::from_secs(3600))
            .build(),
    );
    waker.refresh_index().await.expect("index");
    let router = waker.clone().router();

    let unloaded = wake(&router, "apps/quiet").await;

    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (router, done, sent) = (router.clone(), done.clone(), sent.clone());
            tokio::spawn(async move {
                let mut i = 0usize;
                while !done.load(Ordering::SeqCst) || sent.load(Ordering::SeqCst) < FLOOD as u64 {
                    let res = send(&router, ask(&format!("apps/nope-{w}-{i}"))).await;
                    assert_eq!(res.status(), 503);
                    sent.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let flooded = wake(&router, "apps/busy").await;
    done.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("flood worker");
    }
    let ratio = flooded.as_secs_f64() / unloaded.as_secs_f64();
    println!(
        "wake unloaded {unloaded:?}, during a flood of {} unknown-app requests {flooded:?}: ratio {ratio:.2}",
        sent.load(Ordering::SeqCst)
    );
    assert!(sent.load(Ordering::SeqCst) >= FLOOD as u64);
    assert!(ratio < 2.0, "the wake took {ratio:.2}x its unloaded time");

    // Unknown and known-but-not-sleepable: the same answer, no store call for either.
    let before = proxy.sent();
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..500 {
        for (k, target) in [format!("apps/nope-{i}"), "apps/pinned".to_owned()]
            .iter()
            .enumerate()
        {
            let started = Instant::now();
            let res = send(&router, ask(target)).await;
            times[k].push(started.elapsed());
            assert_eq!(res.status(), 503, "{target}");
        }
    }
    assert_eq!(proxy.sent(), before, "no store call for either");
    let [unknown, pinned] = times;
    println!(
        "median answer: unknown app {:?}, known but not sleepable {:?}",
        median(unknown),
        median(pinned)
    );
    assert_eq!(fake.replicas("apps", "pinned"), Some(0), "nothing woken");
}
