use crate::config::ConfigError;

use std::sync::Arc;

/// The underlying failure of an [`Error`], kept so `source()` chains reach the driver's or
/// the client's own error. Shared, so that one wake's error can answer every caller of it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Domain outcomes the adapters translate their errors into. Each variant keeps a message
/// for people and, where there is one, the cause for programs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No `deployments` row has this id: the one not-found of a deployment id, whichever
    /// path (tick, wake, CLI, HTTP) meets it.
    #[error("no deployment with id {0}")]
    UnknownDeployment(uuid::Uuid),
    /// The Kubernetes Deployment does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// What was looked up.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<Cause>,
    },
    /// A precondition failed: the object changed since it was read.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<Cause>,
    },
    /// The credentials lack a permission (for Kubernetes: RBAC is wrong).
    #[error("forbidden: {message}")]
    Forbidden {
        /// What was refused.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<Cause>,
    },
    /// The request was rejected as invalid.
    #[error("invalid: {message}")]
    Invalid {
        /// Why.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<Cause>,
    },
    /// A backend (Kubernetes, an activity source) did not serve the request: connect
    /// failure, timeout, 5xx.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What could not be reached.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<Cause>,
        /// How far the request got: whether the backend is down or one request failed.
        reach: Reach,
    },
    /// The database failed (unreachable, or a statement failed).
    #[error("store: {message}")]
    Store {
        /// The store operation and what went wrong.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Cause>,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The deployment's app runs in a cluster this instance does not serve: ask an instance
    /// that serves it. Nothing was changed.
    #[error("deployment {id} is in cluster {cluster}, which this instance does not serve")]
    ClusterNotServed {
        /// The row.
        id: uuid::Uuid,
        /// The cluster its `provider_id` names.
        cluster: String,
    },
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $variant:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Self {
                Self::$variant { message: message.into(), source: None }
            }
        )*
    };
}

impl Error {
    constructors! {
        /// [`Error::NotFound`] without a cause.
        not_found => NotFound;
        /// [`Error::Conflict`] without a cause.
        conflict => Conflict;
        /// [`Error::Forbidden`] without a cause.
        forbidden => Forbidden;
        /// [`Error::Invalid`] without a cause.
        invalid => Invalid;
        /// [`Error::Store`] without a cause.
        store => Store;
    }

    /// Attaches the underlying error (a no-op on variants without a cause slot).
    #[must_use]
    pub fn with_source<E: std::error::Error + Send + Sync + 'static>(self, cause: E) -> Self {
        let cause: Cause = Arc::new(cause);
        self.with_cause(cause)
    }

    /// Attaches an already shared or boxed cause.
    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        match &mut self {
            Self::NotFound { source, .. }
            | Self::Conflict { source, .. }
            | Self::Forbidden { source, .. }
            | Self::Invalid { source, .. }
            | Self::Unavailable { source, .. }
            | Self::Store { source, .. } => *source = Some(cause.into()),
            Self::UnknownDeployment(_) | Self::Config(_) | Self::ClusterNotServed { .. } => {}
        }
        self
    }

    /// The message for people, without the variant's prefix.
    pub fn message(&self) -> String {
        match self {
            Self::NotFound { message, .. }
            | Self::Conflict { message, .. }
            | Self::Forbidden { message, .. }
            | Self::Invalid { message, .. }
            | Self::Unavailable { message, .. }
            | Self::Store { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl Error {
    /// [`Error::Unavailable`] without a cause, for a backend that could not be reached
    /// ([`Reach::NotReached`]; [`Error::with_reach`] says otherwise).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
            reach: Reach::NotReached,
        }
    }

    /// Says how far an [`Error::Unavailable`] request got (a no-op on other variants).
    #[must_use]
    pub fn with_reach(mut self, to: Reach) -> Self {
        if let Self::Unavailable { reach, .. } = &mut self {
            *reach = to;
        }
        self
    }
}

/// How far a request that ended in [`Error::Unavailable`] got. A backend that answers, even
/// with an error, is up: one failed request must not mark a whole cluster unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// No connection could be made (refused, no route, TLS handshake failed).
    NotReached,
    /// Connected, but no answer came in time, or the connection dropped before it.
    NoAnswer,
    /// The backend answered, refusing for now (429, 5xx).
    Answered,
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `e` and its causes, joined by `: `: what a log line shows. HTTP clients say only "client
/// error (Connect)"; the causes say which (refused, a certificate from an unknown issuer, ...).
/// Each error in the chain prints only its own context, so each cause appears once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests;
