//! PostgreSQL [`Store`] for idle-scaler.
//!
//! Every state transition is one conditional statement (`UPDATE ... WHERE <full predicate>
//! RETURNING`): the compare-and-set is enforced by the database at the moment of the write,
//! so two job instances on one database can never both claim a row, and a row that stopped
//! matching (activity, pin, expiry, health) between selection and claim is never slept.
//!
//! Queries are runtime-checked (`sqlx::query`), so building needs no database; every query is
//! exercised by the tests in `tests/`, which run against a real server.
#![warn(missing_docs)]

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use idle_scaler_core::{
    AsleepRow, BackOff, BackedOff, Candidate, ConfirmOutcome, DeploymentRecord, Drift,
    ServedClusters, SleepState, StaleIntent, Store,
};
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tracing::info;
use uuid::Uuid;

/// A compare-and-set statement with its arguments bound in order, run by
/// [`PgStore::matched`]: `true` when it changed a row.
macro_rules! cas {
    ($store:expr, $op:literal, $sql:expr, $($arg:expr),+ $(,)?) => {
        Ok($store.matched($op, sqlx::query($sql)$(.bind($arg))+).await?)
    };
}

mod bounded;
mod error;
#[cfg(feature = "host-ops")]
mod host;
mod host_sql;
mod migrate;
pub mod queries;
mod rhythm;
#[cfg(feature = "host-ops")]
mod scratch;
mod store;

pub use error::{Error, Result};
pub use host_sql::HOST_INTEGRATION_SQL;
pub use migrate::{LEGACY_MIGRATIONS_TABLE, MIGRATIONS_TABLE, MIGRATOR};
#[cfg(feature = "host-ops")]
pub use scratch::ScratchDatabase;

/// How long [`PgStore::connect`] waits for the server, and how long a query waits for a
/// pooled connection: a database that is down fails the command or the tick quickly instead
/// of hanging it.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest one statement of the store may run (set as the session's `statement_timeout`): a
/// row lock the host holds, or a stuck server, fails the tick instead of hanging it forever.
/// Migrations lift it, since building an index on a large table may take longer.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows per sleep state, for a status command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Rows `awake`.
    pub awake: i64,
    /// Rows `sleeping` (intent recorded, not confirmed).
    pub sleeping: i64,
    /// Rows `asleep`.
    pub asleep: i64,
}

/// The PostgreSQL store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: bounded::Bounded,
}

impl std::fmt::Debug for PgStore {
    // Written by hand so no connect option (the password among them) can ever be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL), failing within [`DEFAULT_CONNECT_TIMEOUT`].
    /// Errors name the host and port, never the password. Does not run migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_timeout(url, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// [`PgStore::connect`] with another bound for connecting (and for acquiring a pooled
    /// connection afterwards).
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let password = error::password_of(url);
        let options = options(url)?;
        let (host, port) = (options.get_host().to_owned(), options.get_port());
        let connect_error = |reason: String| Error::Connect {
            host: host.clone(),
            port,
            timeout,
            reason: error::redact(&reason, password.as_deref()),
        };
        // One probe connection first: the pool retries a refused connection until its
        // deadline and then reports only "timed out"; the probe keeps the real cause
        // (refused, authentication, unknown database) for the message.
        let probe = tokio::time::timeout(timeout, PgConnection::connect_with(&options))
            .await
            .map_err(|_| connect_error(format!("no answer within {timeout:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;
        // Closing is a courtesy to the server; a failure here changes nothing for us.
        let _ = probe.close().await;
        let pool = pool_options(timeout)
            .connect_with(options)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        info!(host = %host, port, "connected to PostgreSQL");
        Ok(Self {
            pool: bounded::Bounded::session(pool),
        })
    }

    /// A store whose pool connects on first use, so creating it does no I/O at all (the
    /// binary uses it while the job is disabled). Only the URL is checked now.
    pub fn connect_lazy(url: &str) -> Result<Self> {
        let pool = pool_options(DEFAULT_CONNECT_TIMEOUT).connect_lazy_with(options(url)?);
        Ok(Self {
            pool: bounded::Bounded::session(pool),
        })
    }

    /// A store over a pool the host already has. The host's sessions are left as they are:
    /// each statement of the store runs in a short transaction that sets
    /// [`STATEMENT_TIMEOUT`] for itself only, so the store is bounded like one the library
    /// connects, and the host's own queries are not.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool: bounded::Bounded::per_statement(pool),
        }
    }

    /// The pool, for a host that shares it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the embedded migrations. A pre-existing `deployments` table that lacks what the
    /// store needs gives [`Error::IncompatibleSchema`] naming each problem.
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(Error::query("migrate"))?;
        // Index builds on a large host table may outlast STATEMENT_TIMEOUT; this session only.
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .await
            .map_err(Error::query("migrate"))?;
        let result = match migrate::adopt_legacy_records(&mut conn).await {
            Ok(_) => MIGRATOR.run(&mut *conn).await,
            Err(e) => Err(e),
        };
        // The connection goes back to the pool: restore the bound for later queries.
        let reset = sqlx::query("RESET statement_timeout")
            .execute(&mut *conn)
            .await;
        if reset.is_err() {
            conn.detach();
        }
        match result {
            Ok(()) => {
                info!(
                    migrations = MIGRATOR.iter().count(),
                    "database schema up to date"
                );
                Ok(())
            }
            Err(e) => Err(Error::from_migrate(e)),
        }
    }

    /// Rows per sleep state (a status command's summary).
    pub async fn state_counts(&self) -> Result<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(queries::STATE_COUNTS)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::query("state_counts"))?;
        let mut counts = StateCounts::default();
        for (state, n) in rows {
            match SleepState::parse(&state) {
                Some(SleepState::Awake) => counts.awake = n,
                Some(SleepState::Sleeping) => counts.sleeping = n,
                Some(SleepState::Asleep) => counts.asleep = n,
                None => return Err(Error::Corrupt(format!("unknown sleep_state {state:?}"))),
            }
        }
        Ok(counts)
    }

    async fn fetch_record(&self, id: Uuid) -> Result<Option<DeploymentRecord>> {
        let row: Option<Row> = sqlx::query_as(queries::GET)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::query("get"))?;
        row.map(Row::into_record).transpose()
    }

    /// Runs a conditional write (`UPDATE ... WHERE <predicate> RETURNING`, `DELETE ...
    /// RETURNING`) and reports whether it matched a row: whether the compare-and-set won.
    pub(crate) async fn matched(&self, op: &'static str, query: Cas<'_>) -> Result<bool> {
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::query(op))?;
        Ok(row.is_some())
    }
}

/// A statement with its arguments bound, ready for [`PgStore::matched`].
pub(crate) type Cas<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// A `deployments` row as selected by [`queries::COLUMNS`].
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: Uuid,
    provider_id: String,
    status: String,
    always_on: bool,
    expires_at: Option<DateTime<Utc>>,
    last_activity_at: DateTime<Utc>,
    sleep_state: String,
    sleep_state_changed_at: DateTime<Utc>,
    replicas_before_sleep: Option<i32>,
}

impl Row {
    pub(crate) fn into_record(self) -> Result<DeploymentRecord> {
        let sleep_state = SleepState::parse(&self.sleep_state).ok_or_else(|| {
            Error::Corrupt(format!(
                "row {} has sleep_state {:?}",
                self.id, self.sleep_state
            ))
        })?;
        Ok(DeploymentRecord {
            id: self.id,
            provider_id: self.provider_id,
            status: self.status,
            always_on: self.always_on,
            expires_at: self.expires_at,
            last_activity_at: self.last_activity_at,
            sleep_state,
            sleep_state_changed_at: self.sleep_state_changed_at,
            replicas_before_sleep: self.replicas_before_sleep,
        })
    }
}

/// A candidate as selected by [`queries::SELECT_CANDIDATES`].
#[derive(sqlx::FromRow)]
struct CandidateRow {
    id: Uuid,
    provider_id: String,
    last_activity_at: DateTime<Utc>,
    sleep_state_changed_at: DateTime<Utc>,
    sleep_backoff_count: i32,
    sleep_flaps: i32,
    sleep_flaps_since: Option<DateTime<Utc>>,
    /// The index key the rows of several clusters are merged by.
    eligible_at: DateTime<Utc>,
}

impl CandidateRow {
    fn into_candidate(self) -> Result<Candidate> {
        Ok(Candidate {
            backoff_count: count_of(self.id, "sleep_backoff_count", self.sleep_backoff_count)?,
            flaps: count_of(self.id, "sleep_flaps", self.sleep_flaps)?,
            flaps_since: self.sleep_flaps_since,
            sleep_state_changed_at: self.sleep_state_changed_at,
            ..Candidate::new(self.id, self.provider_id, self.last_activity_at)
        })
    }
}

/// A counter column as the model holds it; a negative one was not written by the store.
fn count_of(id: Uuid, column: &str, n: i32) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Corrupt(format!("row {id} has {column} = {n}")))
}

impl Error {
    fn from_migrate(e: MigrateError) -> Self {
        let db_error = match &e {
            MigrateError::Execute(sqlx::Error::Database(d))
            | MigrateError::ExecuteMigration(sqlx::Error::Database(d), _) => Some(d),
            _ => None,
        };
        // 42P16 invalid_table_definition: raised by the migration's own check of a
        // pre-existing `deployments` table, with the list of problems as the message.
        if let Some(d) = db_error
            && d.code().as_deref() == Some("42P16")
        {
            return Error::IncompatibleSchema(d.message().to_owned());
        }
        Error::Migrate(e.to_string())
    }
}

/// Parses `url` (never echoing its password) and sets the session's statement timeout.
fn options(url: &str) -> Result<PgConnectOptions> {
    let timeout = format!("{}ms", STATEMENT_TIMEOUT.as_millis());
    Ok(parse_url(url)?.options([("statement_timeout", timeout.as_str())]))
}

/// Parses `url` as given, never echoing its password in the error.
fn parse_url(url: &str) -> Result<PgConnectOptions> {
    let password = error::password_of(url);
    PgConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
        reason: error::redact(&e.to_string(), password.as_deref()),
    })
}

/// The options of a pool the store builds. An acquire is bounded by `acquire_timeout` and a
/// statement that fails is reported by the store; sqlx's own WARN for an acquire that was
/// slow but succeeded is only noise to a host, so it is logged at DEBUG
/// (`RUST_LOG=sqlx::pool::acquire=debug` shows it).
fn pool_options(acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .acquire_timeout(acquire_timeout)
        .acquire_slow_level(log::LevelFilter::Debug)
}
