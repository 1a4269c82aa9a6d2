//! What a reconciler tells the driver when it cannot finish.

use std::time::Duration;

/// The outcome of a reconcile that did not complete, as knative.dev/pkg's controller errors.
///
/// - [`ReconcileError::Permanent`]: retrying will not help (a bad spec, a name clash). The driver
///   marks the happy condition False with the reason, publishes a Warning Event and does not retry.
/// - [`ReconcileError::Transient`]: something outside failed (the API server, a network call).
///   The driver publishes a Warning Event `InternalError` and retries with per-object
///   exponential backoff.
/// - [`ReconcileError::RequeueAfter`]: nothing failed, but the reconciler wants to look again
///   after a delay (a rollout step, a grace period). No Event.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Retrying will not help until the resource changes.
    #[error("{reason}: {message}")]
    Permanent {
        /// A one-word CamelCase reason, used for the condition and the Event.
        reason: String,
        /// What went wrong, for a human.
        message: String,
    },
    /// A failure that may go away on retry.
    #[error(transparent)]
    Transient(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Reconcile again after the delay.
    #[error("requeue after {0:?}")]
    RequeueAfter(Duration),
}

impl ReconcileError {
    /// A permanent error with a CamelCase `reason` and a human `message`.
    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A transient error wrapping any error.
    pub fn transient(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Transient(err.into())
    }
}

impl From<kube::Error> for ReconcileError {
    fn from(err: kube::Error) -> Self {
        Self::Transient(Box::new(err))
    }
}

/// Why one pass of the driver failed; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The reconciler returned a transient error.
    #[error("reconcile failed: {0}")]
    Reconcile(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The cached object is not a valid object of its kind (the API server's schema and the
    /// Rust type disagree); retried, in case a newer version decodes.
    #[error("failed to decode the cached {kind}: {source}")]
    Decode {
        /// The kind of the object.
        kind: String,
        /// Why it did not decode.
        #[source]
        source: serde_json::Error,
    },
    /// Writing the status failed (after retrying conflicts).
    #[error("failed to update status: {0}")]
    UpdateStatus(#[source] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("failed to {action} finalizer: {source}")]
    Finalizer {
        /// `add` or `remove`.
        action: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// client-go's default per-item rate limiter (5 ms doubling up to 1000 s), which Knative's
/// controllers use: the delay before retry number `failures` (1-based).
pub fn failure_backoff(failures: u32) -> Duration {
    const BASE_MS: u64 = 5;
    const MAX: Duration = Duration::from_secs(1000);
    let exp = failures.saturating_sub(1).min(40);
    Duration::from_millis(BASE_MS.saturating_mul(1u64 << exp)).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_five_milliseconds() {
        assert_eq!(failure_backoff(1), Duration::from_millis(5));
    }

    #[test]
    fn backoff_doubles_with_each_failure() {
        assert_eq!(failure_backoff(2), Duration::from_millis(10));
        assert_eq!(failure_backoff(5), Duration::from_millis(80));
    }

    #[test]
    fn backoff_is_capped_at_a_thousand_seconds() {
        assert_eq!(failure_backoff(30), Duration::from_secs(1000));
        assert_eq!(failure_backoff(u32::MAX), Duration::from_secs(1000));
    }

    #[test]
    fn kube_errors_are_transient() {
        let err: ReconcileError = kube::Error::LinesCodecMaxLineLengthExceeded.into();
        assert!(matches!(err, ReconcileError::Transient(_)));
    }
}
