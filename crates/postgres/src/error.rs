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
    #[error("{op}: {source}")]
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
    /// core reports those as `Unavailable`.
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
        if e.is_unavailable() {
            Self::Unavailable(format!("PostgreSQL: {e}"))
        } else {
            Self::Store(e.to_string())
        }
    }
}

/// The password part of a `postgres://user:password@host/...` URL, as written.
pub(crate) fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then(|| password.to_owned())
}

/// `text` with every occurrence of `password` (as written, and percent-decoded) replaced:
/// drivers sometimes echo their input.
pub(crate) fn redact(text: &str, password: Option<&str>) -> String {
    let Some(p) = password else {
        return text.to_owned();
    };
    let decoded = percent_decode(p);
    text.replace(p, "***").replace(decoded.as_str(), "***")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            // Both digits are < 16, so the byte cannot overflow.
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_found_and_redacted() {
        let url = "postgres://u:s3cr%40t@db.example:5433/app?sslmode=disable";
        assert_eq!(password_of(url).as_deref(), Some("s3cr%40t"));
        assert_eq!(
            redact("bad url postgres://u:s3cr%40t@db", Some("s3cr%40t")),
            "bad url postgres://u:***@db"
        );
        assert_eq!(
            redact("auth failed for s3cr@t", Some("s3cr%40t")),
            "auth failed for ***"
        );
        assert_eq!(password_of("postgres://u@h/db"), None);
        assert_eq!(password_of("postgres://h/db"), None);
    }
}
