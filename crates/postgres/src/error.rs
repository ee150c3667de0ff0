//! The crate's error, and its translation into the core's domain errors.

use std::time::Duration;

/// What can go wrong in the PostgreSQL store. No variant ever carries a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `DATABASE_URL` could not be parsed.
    #[error("invalid database URL: {reason}")]
    InvalidUrl {
        /// Why (password redacted).
        reason: String,
    },
    /// The server could not be reached (or refused us) within the bound.
    #[error("cannot connect to PostgreSQL at {host}:{port} (timeout {timeout:?}): {reason}")]
    Connect {
        /// Host from the URL.
        host: String,
        /// Port from the URL.
        port: u16,
        /// The connect bound.
        timeout: Duration,
        /// The cause (password redacted).
        reason: String,
    },
    /// A pre-existing `deployments` table lacks what the store needs.
    #[error("{0}; see docs/host-integration.md and crates/postgres/sql/host-integration.sql")]
    IncompatibleSchema(String),
    /// A migration failed for another reason.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("{op}")]
    Query {
        /// The store operation.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A row holds a value the schema should have prevented.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `map_err` helper naming the operation.
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { op, source }
    }

    /// True when the database could not be reached (rather than refusing a statement): the
    /// core's store error says so.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Query { source, .. } => matches!(
                source,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

impl From<Error> for idle_scaler_core::Error {
    fn from(e: Error) -> Self {
        // Unreachable or refusing, it is the store that failed: one variant, so callers (the
        // HTTP layer, the tick) treat a database outage one way; the cause stays attached.
        let message = if e.is_unavailable() {
            "PostgreSQL unreachable"
        } else {
            "PostgreSQL"
        };
        Self::store(message).with_source(e)
    }
}

/// The password of a `postgres://user:password@host/...` URL, as written: the core's rule.
/// Owned, so a caller may keep it next to the URL it came from.
pub(crate) fn password_of(url: &str) -> Option<String> {
    idle_scaler_core::redact::password_of(url).map(str::to_owned)
}

/// `text` with `password` (as written and percent-decoded) redacted by the core's rule:
/// drivers sometimes echo their input.
pub(crate) fn redact(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) => idle_scaler_core::redact::redact_password(text, p),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
