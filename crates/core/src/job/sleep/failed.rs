//! A scale-down that failed with neither 409 nor 404: did it take effect?

use tracing::warn;

use super::{Attempt, Intent, Step, TickCtx};
use crate::job::log_scale_error;
use crate::{Error, Scale, Target};

impl TickCtx<'_> {
    /// A scale-down that failed with anything but 409/404 (a timeout, a dropped connection,
    /// a 5xx) may have been applied, or may still be: a request the client gave up on can
    /// land later. Reverting blindly would leave the app at 0 under an `awake` row, which
    /// nothing repairs. So read it back: at 0, the sleep happened (`Ok`: confirm it); moved
    /// to another version, our precondition can never match again, so revert; gone, revert
    /// (`not_found`); same version still above 0, or unreadable, the write may yet land:
    /// leave the intent to recovery, which settles it from what Kubernetes holds once the
    /// intent is stale (long after any request could still be in flight).
    pub(super) async fn after_failed_scale_down(
        &self,
        intent: Intent,
        target: &Target,
        read: &Scale,
        e: &Error,
    ) -> Step<()> {
        let id = intent.id;
        match self.scaler(target).get_scale(target).await {
            Ok(s) if s.replicas == 0 => {
                warn!(deployment_id = %id, target = %target, error = %crate::error_chain(&e),
                    "scaling to 0 reported an error but took effect; confirming the sleep");
                Ok(())
            }
            Ok(s) if s.resource_version != read.resource_version => {
                self.revert(intent).await;
                log_scale_error(id, target, e, "scaling to 0 failed; row reverted");
                Err(Attempt::Failed)
            }
            Ok(_) => {
                log_scale_error(
                    id,
                    target,
                    e,
                    "scaling to 0 failed and may still be applied; the intent stays for recovery",
                );
                Err(Attempt::Failed)
            }
            Err(Error::NotFound { .. }) => {
                self.revert(intent).await;
                Err(super::gone(id, target))
            }
            Err(again) => {
                log_scale_error(id, target, e, "scaling to 0 failed");
                log_scale_error(
                    id,
                    target,
                    &again,
                    "and reading the scale back failed; the intent stays for recovery",
                );
                Err(Attempt::Failed)
            }
        }
    }
}
