//! Upgraded connections (WebSocket and the like): once the app has said `101 Switching
//! Protocols`, the caller's connection and the app's are spliced, byte for byte, with no idle
//! timeout (a quiet WebSocket is a normal one).

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

/// Splices the caller's side and the app's side once both have switched, in a task of its
/// own (the HTTP exchange that asked for it has ended by then).
pub(super) fn splice(caller: OnUpgrade, app: OnUpgrade) {
    tokio::spawn(async move {
        let (caller, app) = match tokio::try_join!(caller, app) {
            Ok(both) => both,
            Err(e) => {
                debug!(error = %e, "parking: upgrade did not complete");
                return;
            }
        };
        let mut caller = TokioIo::new(caller);
        let mut app = TokioIo::new(app);
        match tokio::io::copy_bidirectional(&mut caller, &mut app).await {
            Ok((up, down)) => debug!(up, down, "parking: upgraded connection closed"),
            Err(e) => debug!(error = %e, "parking: upgraded connection broke"),
        }
    });
}
