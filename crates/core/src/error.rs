use crate::config::ConfigError;

/// Domain outcomes the adapters translate their errors into.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `deployments` row has this id.
    #[error("no deployment with id {0}")]
    UnknownDeployment(uuid::Uuid),
    /// The object (a Deployment, a database row) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A precondition failed: the object changed since it was read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The credentials lack a permission (for Kubernetes: RBAC is wrong).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request was rejected as invalid.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend could not be reached in time (connect failure, timeout, 5xx).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database failed a query.
    #[error("store: {0}")]
    Store(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
