//! Kubernetes errors -> the core's domain outcomes (the table in the crate documentation), and
//! one request bounded by a timeout with its error mapped the same way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use idle_scaler_core::{Error as CoreError, Reach, Target};

use crate::{Error, auth_error};

/// Kubernetes error -> core outcome (the table in this crate's documentation).
pub(crate) fn map_error(target: &Target, op: &'static str, e: kube::Error) -> CoreError {
    map_error_at(format!("{op} {target}"), e)
}

/// [`map_error`] for a request described by `what` (`"list endpointslices apps/web"`).
pub(crate) fn map_error_at(what: String, e: kube::Error) -> CoreError {
    if let Some(text) = auth_error(&e) {
        // No source: kube's error would render the plugin's output.
        return CoreError::unavailable(format!("{what}: {}", Error::Auth(text)));
    }
    let mapped = match &e {
        kube::Error::Api(s) => {
            let detail = what.clone();
            // A body that parsed as a Status without a code (a proxy's `{}`) still has a
            // reason or nothing; the reason helpers check both.
            match s.code {
                404 => CoreError::not_found(detail),
                409 => CoreError::conflict(detail),
                401 | 403 => CoreError::forbidden(detail),
                429 => CoreError::unavailable(detail).with_reach(Reach::Answered),
                400..=499 => CoreError::invalid(detail),
                _ if s.is_not_found() => CoreError::not_found(detail),
                _ if s.is_conflict() => CoreError::conflict(detail),
                _ if s.is_forbidden() => CoreError::forbidden(detail),
                _ if s.is_invalid() => CoreError::invalid(detail),
                // 5xx and anything unrecognised: the API server is not serving us now.
                _ => CoreError::unavailable(format!("{what}: HTTP {}", s.code))
                    .with_reach(Reach::Answered),
            }
        }
        // Connect refused, TLS failure, dropped connection, unreadable body: transport.
        other => CoreError::unavailable(what).with_reach(transport_reach(other)),
    };
    mapped.with_cause(cause(e))
}

/// The error inside `e`: kube's own errors print their cause in their text, so attached as
/// they are, a rendered chain would name that cause twice.
fn cause(e: kube::Error) -> idle_scaler_core::Cause {
    match e {
        kube::Error::Api(status) => Arc::new(*status),
        kube::Error::HyperError(e) => Arc::new(e),
        kube::Error::Service(e) => e.into(),
        other => Arc::new(other),
    }
}

/// Runs one request under `timeout`, its error mapped like [`map_error`]; `what` describes it
/// (`"create endpointslice apps/idle-scaler-web"`), built only on failure.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = kube::Result<T>>,
) -> idle_scaler_core::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_error_at(what(), e)),
        Err(_) => Err(CoreError::unavailable(format!(
            "{}: no answer within {} ms",
            what(),
            timeout.as_millis()
        ))
        .with_reach(Reach::NoAnswer)),
    }
}

/// Whether a transport failure happened before a connection was made (the API server
/// cannot be reached) or after (this request got no answer).
fn transport_reach(e: &kube::Error) -> Reach {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return Reach::NotReached;
        }
        cause = c.source();
    }
    Reach::NoAnswer
}
