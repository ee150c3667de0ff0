//! The statement timeout, whoever built the pool.
//!
//! A pool the library builds ([`PgStore::connect`](crate::PgStore::connect),
//! [`PgStore::connect_lazy`](crate::PgStore::connect_lazy)) sets `statement_timeout` on each
//! of its sessions. A host's pool ([`PgStore::from_pool`](crate::PgStore::from_pool)) is the
//! host's: its sessions are left as they are, and each statement of the store runs in a
//! short transaction that sets the timeout for that transaction only (`set_config(..., true)`,
//! the function form of `SET LOCAL`), so the bound never leaks into the host's own queries.

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, PgPool, Postgres, SqlStr};

use crate::STATEMENT_TIMEOUT;

/// The store's pool and how its statements get their timeout.
#[derive(Clone, Debug)]
pub(crate) struct Bounded {
    pool: PgPool,
    /// The sessions do not carry the timeout: set it per statement.
    per_statement: bool,
}

impl Bounded {
    /// A pool whose sessions already carry `statement_timeout`.
    pub(crate) fn session(pool: PgPool) -> Self {
        Self {
            pool,
            per_statement: false,
        }
    }

    /// A host's pool: the timeout is set per statement.
    pub(crate) fn per_statement(pool: PgPool) -> Self {
        Self {
            pool,
            per_statement: true,
        }
    }
}

impl std::ops::Deref for Bounded {
    type Target = PgPool;
    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

/// The value of `statement_timeout` the store's statements run under.
fn timeout_setting() -> String {
    format!("{}ms", STATEMENT_TIMEOUT.as_millis())
}

impl<'p> Executor<'p> for &'_ Bounded {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let (pool, per_statement) = (self.pool.clone(), self.per_statement);
        // Collected inside the transaction: it must commit before the caller sees a result.
        let all = async move {
            if !per_statement {
                return pool.fetch_many(query).try_collect::<Vec<_>>().await;
            }
            let mut tx = pool.begin().await?;
            set_local_timeout(&mut tx).await?;
            let items = tx.fetch_many(query).try_collect::<Vec<_>>().await?;
            tx.commit().await?;
            Ok(items)
        };
        stream::once(all)
            .map(|r| match r {
                Ok(items) => stream::iter(items.into_iter().map(Ok)).left_stream(),
                Err(e) => stream::iter([Err(e)]).right_stream(),
            })
            .flatten()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let (pool, per_statement) = (self.pool.clone(), self.per_statement);
        Box::pin(async move {
            if !per_statement {
                return pool.fetch_optional(query).await;
            }
            let mut tx = pool.begin().await?;
            set_local_timeout(&mut tx).await?;
            let row = tx.fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.pool.clone();
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>> {
        let pool = self.pool.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}

async fn set_local_timeout(tx: &mut sqlx::PgTransaction<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(timeout_setting())
        .execute(&mut **tx)
        .await
        .map(drop)
}

impl crate::PgStore {
    /// The `statement_timeout` the store's statements run under, as PostgreSQL reports it
    /// from inside one of them (`30s`): for a host checking what its pool gives the store.
    pub async fn statement_timeout_in_force(&self) -> crate::Result<String> {
        sqlx::query_scalar("SELECT current_setting('statement_timeout')")
            .fetch_one(&self.pool)
            .await
            .map_err(crate::Error::query("statement_timeout"))
    }
}
