//! The pure part of delivery: when to retry, how long to wait, built from a [`DeliverySpec`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::StatusCode;

use crate::apis::delivery::{BackoffPolicy, DeliverySpec};

/// How the delay between retries grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backoff {
    /// `delay × retry` (the first retry is number 1).
    Linear,
    /// `delay × 2^retry`; Knative's default.
    #[default]
    Exponential,
}

/// When and how often a failed delivery is retried.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`retry: 5` means up to 6 attempts).
    pub retry: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// The base delay.
    pub delay: Duration,
    /// The timeout of one attempt (connect, response and body), if any.
    pub timeout: Option<Duration>,
    /// The longest `Retry-After` honoured; `None` ignores `Retry-After`, as Knative does unless
    /// `retryAfterMax` is set.
    pub retry_after_max: Option<Duration>,
}

/// Why a [`DeliverySpec`] cannot be turned into a [`RetryPolicy`]. The spec's own validation
/// reports the same problems with field paths; this error is for specs that skipped it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A field holds a value the data plane cannot use.
    #[error("invalid value: {value}: {field}")]
    Invalid {
        /// The field's path relative to the DeliverySpec.
        field: &'static str,
        /// The offending value.
        value: String,
    },
}

impl TryFrom<&DeliverySpec> for RetryPolicy {
    type Error = PolicyError;

    fn try_from(spec: &DeliverySpec) -> Result<Self, Self::Error> {
        let invalid = |field, value: &dyn ToString| PolicyError::Invalid {
            field,
            value: value.to_string(),
        };
        let retry = match spec.retry {
            None => 0,
            Some(n) => u32::try_from(n).map_err(|_| invalid("retry", &n))?,
        };
        let backoff = match &spec.backoff_policy {
            None | Some(BackoffPolicy::Exponential) => Backoff::Exponential,
            Some(BackoffPolicy::Linear) => Backoff::Linear,
            Some(BackoffPolicy::Other(other)) => return Err(invalid("backoffPolicy", other)),
        };
        let duration = |field, text: &Option<String>, parsed: Option<Duration>| match text {
            None => Ok(None),
            Some(t) => parsed.map(Some).ok_or_else(|| invalid(field, t)),
        };
        Ok(RetryPolicy {
            retry,
            backoff,
            delay: duration(
                "backoffDelay",
                &spec.backoff_delay,
                spec.backoff_delay_duration(),
            )?
            .unwrap_or_default(),
            timeout: duration("timeout", &spec.timeout, spec.timeout_duration())?
                .filter(|d| !d.is_zero()),
            retry_after_max: duration(
                "retryAfterMax",
                &spec.retry_after_max,
                spec.retry_after_max_duration(),
            )?,
        })
    }
}

impl RetryPolicy {
    /// No retries, no timeout.
    pub fn none() -> Self {
        RetryPolicy::default()
    }

    /// Whether an attempt that ended with `status` may be retried: 5xx, 404, 408, 409 and 429,
    /// as Knative's dispatcher does. Network errors and timeouts are always retryable.
    pub fn is_retryable(status: StatusCode) -> bool {
        status.is_server_error()
            || matches!(
                status,
                StatusCode::NOT_FOUND
                    | StatusCode::REQUEST_TIMEOUT
                    | StatusCode::CONFLICT
                    | StatusCode::TOO_MANY_REQUESTS
            )
    }

    /// The backoff before retry number `retry` (1-based).
    pub fn backoff_delay(&self, retry: u32) -> Duration {
        match self.backoff {
            Backoff::Linear => self.delay.saturating_mul(retry),
            Backoff::Exponential => self
                .delay
                .saturating_mul(2u32.checked_pow(retry).unwrap_or(u32::MAX)),
        }
    }

    /// The wait before retry number `retry` after a response with `status` and `retry_after`
    /// (the header's value, if any), received at `now`: the backoff, or, for 429 and 503 when
    /// `retry_after_max` is set, the `Retry-After` duration capped by it (never less than the
    /// backoff).
    pub fn wait_before(
        &self,
        retry: u32,
        status: Option<StatusCode>,
        retry_after: Option<&str>,
        now: DateTime<Utc>,
    ) -> Duration {
        let backoff = self.backoff_delay(retry);
        let honoured = matches!(
            status,
            Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        );
        match (self.retry_after_max, retry_after, honoured) {
            (Some(max), Some(header), true) => parse_retry_after(header, now)
                .map(|after| after.min(max).max(backoff))
                .unwrap_or(backoff),
            _ => backoff,
        }
    }
}

/// Parses a `Retry-After` header: delta-seconds or an HTTP date (relative to `now`; a date in the
/// past means no wait).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> DeliverySpec {
        serde_json::from_value(json).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn an_empty_spec_means_one_attempt_and_no_timeout() {
        let policy = RetryPolicy::try_from(&DeliverySpec::default()).unwrap();
        assert_eq!(policy, RetryPolicy::none());
    }

    #[test]
    fn spec_fields_map_to_the_policy() {
        let policy = RetryPolicy::try_from(&spec(serde_json::json!({
            "retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.2S",
            "timeout": "PT1S", "retryAfterMax": "PT30S"
        })))
        .unwrap();
        assert_eq!(
            policy,
            RetryPolicy {
                retry: 5,
                backoff: Backoff::Linear,
                delay: Duration::from_millis(200),
                timeout: Some(Duration::from_secs(1)),
                retry_after_max: Some(Duration::from_secs(30)),
            }
        );
    }

    #[test]
    fn invalid_spec_values_are_rejected_with_their_field() {
        let err = RetryPolicy::try_from(&spec(serde_json::json!({"backoffDelay": "2s"})));
        assert_eq!(
            err.unwrap_err().to_string(),
            "invalid value: 2s: backoffDelay"
        );
        let err = RetryPolicy::try_from(&spec(serde_json::json!({"retry": -1})));
        assert_eq!(err.unwrap_err().to_string(), "invalid value: -1: retry");
    }

    #[test]
    fn linear_backoff_is_delay_times_retry() {
        let policy = RetryPolicy {
            backoff: Backoff::Linear,
            delay: Duration::from_millis(100),
            ..RetryPolicy::none()
        };
        assert_eq!(policy.backoff_delay(1), Duration::from_millis(100));
        assert_eq!(policy.backoff_delay(3), Duration::from_millis(300));
    }

    #[test]
    fn exponential_backoff_is_delay_times_two_to_the_retry() {
        let policy = RetryPolicy {
            delay: Duration::from_millis(100),
            ..RetryPolicy::none()
        };
        assert_eq!(policy.backoff_delay(1), Duration::from_millis(200));
        assert_eq!(policy.backoff_delay(3), Duration::from_millis(800));
        assert_eq!(
            policy.backoff_delay(40),
            Duration::from_millis(100) * u32::MAX
        );
    }

    #[test]
    fn retryable_statuses_are_knatives() {
        for code in [404, 408, 409, 429, 500, 502, 503, 504] {
            assert!(RetryPolicy::is_retryable(
                StatusCode::from_u16(code).unwrap()
            ));
        }
        for code in [200, 202, 400, 401, 403, 410, 413] {
            assert!(!RetryPolicy::is_retryable(
                StatusCode::from_u16(code).unwrap()
            ));
        }
    }

    #[test]
    fn retry_after_is_capped_by_retry_after_max() {
        let policy = RetryPolicy {
            delay: Duration::from_millis(10),
            retry_after_max: Some(Duration::from_secs(5)),
            ..RetryPolicy::none()
        };
        let wait = |status, header| policy.wait_before(1, Some(status), header, now());
        assert_eq!(
            wait(StatusCode::TOO_MANY_REQUESTS, Some("3")),
            Duration::from_secs(3)
        );
        assert_eq!(
            wait(StatusCode::SERVICE_UNAVAILABLE, Some("120")),
            Duration::from_secs(5)
        );
        assert_eq!(
            wait(StatusCode::INTERNAL_SERVER_ERROR, Some("3")),
            Duration::from_millis(20)
        );
        assert_eq!(
            wait(StatusCode::TOO_MANY_REQUESTS, Some("soon")),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn retry_after_is_ignored_without_retry_after_max() {
        let policy = RetryPolicy::none();
        assert_eq!(
            policy.wait_before(1, Some(StatusCode::TOO_MANY_REQUESTS), Some("3"), now()),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:07 GMT", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }
}
