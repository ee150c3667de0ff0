//! Connections to one app at once: when a slept app's endpoint turns ready, every request
//! held for it is released together, and a thousand simultaneous connects would overflow the
//! app's listen backlog (often 128), whose dropped SYNs are retried only after a second.
//! Forwards beyond the cap wait for a connection to finish (its answer fully sent).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use idle_scaler_core::Target;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::pool::Pool;

/// The open forwards per app, capped.
#[derive(Debug)]
pub(super) struct Gate {
    max: usize,
    per_app: Mutex<HashMap<Target, Arc<Semaphore>>>,
}

impl Gate {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            per_app: Mutex::default(),
        }
    }

    /// A place for one forward to `target`'s app, waiting until `deadline` at most.
    pub(super) async fn enter(&self, target: &Target, deadline: Instant) -> Option<Place> {
        let semaphore = {
            let mut per_app = self.per_app.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget apps with no forward open, so the map stays as small as the apps being
            // forwarded to now.
            per_app.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < self.max);
            // Looked up before it is inserted: the key's clone (its strings) only for a new app.
            match per_app.get(target) {
                Some(semaphore) => semaphore.clone(),
                None => {
                    let semaphore = Arc::new(Semaphore::new(self.max));
                    per_app.insert(target.clone(), semaphore.clone());
                    semaphore
                }
            }
        };
        // A free place needs no timer: of a burst released at once, the first `max` take
        // theirs without one.
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout_at(deadline, semaphore.acquire_owned())
                .await
                .ok()?
                .ok()?,
        };
        Some(Place { _permit: permit })
    }
}

/// One open forward; it ends when the app's answer has been passed on (or dropped).
#[derive(Debug)]
pub(super) struct Place {
    /// Held for its drop: the place comes free with it.
    _permit: OwnedSemaphorePermit,
}

/// The app's answer body, holding its forward's [`Place`] until it is done; a kept-alive
/// connection goes back to its pool once the answer has been read to the end (and is dropped,
/// closing it, when the answer broke off or the caller went away).
#[derive(Debug)]
pub(super) struct GatedBody {
    body: Incoming,
    place: Option<Place>,
    give_back: Option<(Arc<Pool>, SocketAddr, SendRequest<Incoming>)>,
}

impl GatedBody {
    pub(super) fn new(body: Incoming, place: Place) -> Self {
        Self {
            body,
            place: Some(place),
            give_back: None,
        }
    }

    /// Gives `sender`, the connection to `to` the answer comes on, back to `pool` at its end.
    pub(super) fn returning(
        mut self,
        pool: Arc<Pool>,
        to: SocketAddr,
        sender: SendRequest<Incoming>,
    ) -> Self {
        self.give_back = Some((pool, to, sender));
        self
    }
}

impl Drop for GatedBody {
    fn drop(&mut self) {
        // A server stops polling once the body says it is at its end (a `Content-Length`
        // answer read whole), so the end is not always seen in `poll_frame`.
        if self.body.is_end_stream()
            && let Some((pool, to, sender)) = self.give_back.take()
        {
            pool.put(to, sender);
        }
    }
}

impl Body for GatedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match polled {
            Poll::Ready(None) => {
                if let Some((pool, to, sender)) = this.give_back.take() {
                    pool.put(to, sender);
                }
                this.place = None;
            }
            Poll::Ready(Some(Err(_))) => {
                this.give_back = None;
                this.place = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
