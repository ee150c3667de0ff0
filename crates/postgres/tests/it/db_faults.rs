//! Database faults under the real job: the job's connection terminated in the middle of a
//! tick (`pg_terminate_backend` from another connection, while the job's query waits on a
//! lock, so the kill lands inside a statement), and a PostgreSQL restart (on a private
//! cluster started by the test, never the shared server other tests use). Each time the
//! tick fails cleanly (or, for one app, the transition does), the next tick succeeds, and
//! nothing is left half done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use idle_scaler_core::{Config, FixedScalerFactory, Job, Outcome, SleepState, Store, SystemClock};
use idle_scaler_kube::KubeScaler;
use idle_scaler_postgres::PgStore;
use idle_scaler_testkit::fake_kube::FakeApiServer;
use idle_scaler_testkit::host::{HostOps, NewDeployment};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

const APPS: usize = 4;

fn job(store: PgStore, fake: &FakeApiServer) -> Job {
    let config = Config {
        enabled: true,
        concurrency: 1,
        ..Config::default()
    };
    let scaler = KubeScaler::from_url(&fake.url(), Duration::from_secs(10)).expect("scaler");
    Job::builder(
        config,
        Arc::new(store),
        Arc::new(FixedScalerFactory(Arc::new(scaler))),
    )
    .clock(Arc::new(SystemClock))
    .build()
}

async fn idle_apps(store: &PgStore, fake: &FakeApiServer) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..APPS {
        let name = format!("app-{i}");
        fake.create_deployment("apps", &name, 2);
        let row = NewDeployment::k8s("apps", &name, Utc::now() - chrono::Duration::hours(3));
        ids.push(store.insert(row).await.expect("insert"));
    }
    ids
}

/// Every row `awake` over a running app or `asleep` over one at 0: nothing half done.
async fn nothing_half_done(store: &PgStore, fake: &FakeApiServer) {
    for row in store.rows().await.expect("rows") {
        let name = row.provider_id.trim_start_matches("k8s:apps/");
        let replicas = fake.replicas("apps", name).expect("deployment");
        match row.sleep_state {
            SleepState::Awake => assert!(replicas > 0, "{row:?} over {replicas}"),
            SleepState::Asleep => assert_eq!(replicas, 0, "{row:?}"),
            SleepState::Sleeping => panic!("left sleeping: {row:?}"),
        }
    }
}

/// Waits (bounded) until a backend other than `except` waits on a lock, and returns its pid.
async fn backend_waiting_on_a_lock(admin: &PgPool, except: i32) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> $1 \
             LIMIT 1",
        )
        .bind(except)
        .fetch_optional(admin)
        .await
        .expect("pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never blocked on the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn terminated_connection_mid_tick_fails_cleanly_and_the_next_tick_succeeds(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let admin = pool_options
        .clone()
        .connect_with(connect.clone())
        .await
        .expect("admin pool");
    let job_pool = pool_options
        .max_connections(1)
        .connect_with(connect)
        .await
        .expect("job pool");
    let fake = FakeApiServer::start().await;
    let store = PgStore::from_pool(job_pool.clone());
    let ids = idle_apps(&store, &fake).await;
    let job = Arc::new(job(store.clone(), &fake));

    // 1. The tick's first query blocks behind a table lock; its backend is terminated.
    let mut lock = admin.begin().await.expect("begin");
    let admin_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *lock)
        .await
        .expect("pid");
    lock.execute("LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let tick = tokio::spawn({
        let job = job.clone();
        async move { job.tick().await }
    });
    let victim = backend_waiting_on_a_lock(&admin, admin_pid).await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .fetch_one(&mut *lock)
        .await
        .expect("terminate");
    assert!(killed);
    lock.rollback().await.expect("rollback");
    let result = tick.await.expect("join");
    assert!(result.is_err(), "{result:?}");
    assert!(
        fake.requests().is_empty(),
        "a failed tick touched Kubernetes: {:?}",
        fake.requests()
    );
    nothing_half_done(&store, &fake).await;

    // 2. Mid-transition: one app's claim blocks on its row; that backend is terminated.
    // The claim is aborted with it, so that app stays awake and running; the others sleep.
    let mut lock = admin.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM deployments WHERE id = $1 FOR UPDATE")
        .bind(ids[0])
        .execute(&mut *lock)
        .await
        .expect("row lock");
    let tick = tokio::spawn({
        let job = job.clone();
        async move { job.tick().await }
    });
    let victim = backend_waiting_on_a_lock(&admin, admin_pid).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .execute(&mut *lock)
        .await
        .expect("terminate");
    lock.rollback().await.expect("rollback");
    let report = tick.await.expect("join").expect("the tick itself goes on");
    assert_eq!(report.outcome(Outcome::ScaleFailed), 1, "{report:?}");
    assert_eq!(
        report.outcome(Outcome::ScaledDown),
        APPS as u64 - 1,
        "{report:?}"
    );
    nothing_half_done(&store, &fake).await;
    assert_eq!(
        store
            .get(ids[0])
            .await
            .expect("get")
            .expect("row")
            .sleep_state,
        SleepState::Awake
    );

    // 3. The next tick succeeds on a new connection and finishes the job.
    let report = job.tick().await.expect("next tick");
    assert_eq!(report.outcome(Outcome::ScaledDown), 1, "{report:?}");
    nothing_half_done(&store, &fake).await;
    assert_eq!(store.count_asleep().await.expect("count"), APPS as i64);
    admin.close().await;
    job_pool.close().await;
}

/// A PostgreSQL cluster of the test's own on a free loopback port, stopped on drop.
struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateCluster {
    fn bin_dir() -> Option<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        // Version directories are numbers: the newest last.
        dirs.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    }

    /// Runs a server binary, as `postgres` when we are root (the server refuses root).
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let status = if Self::is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .status()
        } else {
            Command::new(&exe).args(args).status()
        }
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(status.success(), "{tool} {args:?}: {status}");
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn init() -> Self {
        let bin = Self::bin_dir().expect("PostgreSQL server binaries under /usr/lib/postgresql");
        let dir = tempfile::tempdir().expect("temp dir");
        if Self::is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success());
        }
        // A free port now; the tiny race with another process binding it is acceptable.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cluster = Self { bin, dir, port };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        cluster.start();
        cluster
    }

    fn start(&self) {
        let (data, log) = (
            self.data(),
            self.dir.path().join("log").display().to_string(),
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "start", "-o", &opts],
        );
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        // Best effort: the cluster may already be stopped.
        let _ = if Self::is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

#[tokio::test]
async fn postgres_restart_fails_the_tick_cleanly_and_the_next_tick_succeeds() {
    let cluster = PrivateCluster::init();
    assert!(cluster.path().exists());
    let store = PgStore::connect_with_timeout(&cluster.url(), Duration::from_secs(2))
        .await
        .expect("connect to the private cluster");
    store.migrate().await.expect("migrate");
    let fake = FakeApiServer::start().await;
    idle_apps(&store, &fake).await;
    let job = Arc::new(job(store.clone(), &fake));

    // The restart lands inside the tick: its first query waits behind a table lock when the
    // server shuts down (fast: every session is terminated).
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&cluster.url())
        .await
        .expect("admin");
    let mut lock = admin.begin().await.expect("begin");
    let admin_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *lock)
        .await
        .expect("pid");
    lock.execute("LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let tick = tokio::spawn({
        let job = job.clone();
        async move { job.tick().await }
    });
    let observer = PgPoolOptions::new()
        .max_connections(1)
        .connect(&cluster.url())
        .await
        .expect("observer");
    backend_waiting_on_a_lock(&observer, admin_pid).await;
    observer.close().await;
    cluster.stop();
    drop(lock);
    admin.close().await;
    let result = tick.await.expect("join");
    assert!(result.is_err(), "{result:?}");

    // While it is down a tick fails as cleanly.
    let result = job.tick().await;
    assert!(result.is_err(), "{result:?}");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    for i in 0..APPS {
        assert_eq!(fake.replicas("apps", &format!("app-{i}")), Some(2));
    }

    // Back: the pool reconnects and the next tick does the work.
    cluster.start();
    let report = job.tick().await.expect("tick after the restart");
    assert_eq!(
        report.outcome(Outcome::ScaledDown),
        APPS as u64,
        "{report:?}"
    );
    nothing_half_done(&store, &fake).await;
    store.pool().close().await;
}
