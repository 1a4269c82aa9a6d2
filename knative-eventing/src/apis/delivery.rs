//! How events are delivered: retries, backoff, timeouts and the dead-letter sink
//! (`eventingduckv1.DeliverySpec`), shared by Brokers, Triggers, Channels and Subscriptions.
//!
//! ```
//! use std::time::Duration;
//! use knative_eventing::apis::delivery::{BackoffPolicy, DeliverySpec};
//!
//! let delivery: DeliverySpec = serde_yaml::from_str(r#"
//! deadLetterSink:
//!   ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: dlq}
//! retry: 5
//! backoffPolicy: exponential
//! backoffDelay: PT0.2S
//! timeout: PT1S
//! "#).unwrap();
//! assert!(delivery.validate().is_ok());
//! assert_eq!(delivery.backoff_policy, Some(BackoffPolicy::Exponential));
//! assert_eq!(delivery.backoff_delay_duration(), Some(Duration::from_millis(200)));
//! assert_eq!(delivery.timeout_duration(), Some(Duration::from_secs(1)));
//!
//! let bad: DeliverySpec = serde_json::from_str(r#"{"retry": -1, "backoffDelay": "1s"}"#).unwrap();
//! assert_eq!(
//!     bad.validate().unwrap_err().to_string(),
//!     "invalid value: -1: retry\ninvalid value: 1s: backoffDelay"
//! );
//! ```

use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::fmt::temporal::SpanParser;
use knative_core::apis::{Destination, FieldError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How events are delivered to a subscriber, and what happens when delivery fails.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Where events that could not be delivered are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
    /// The minimum number of retries before an event goes to the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    /// The timeout of each attempt, an ISO-8601 duration (e.g. `PT1S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How the delay between retries grows: `linear` (delay × attempt) or `exponential`
    /// (delay × 2^attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<BackoffPolicy>,
    /// The base delay between retries, an ISO-8601 duration (e.g. `PT0.2S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// The longest `Retry-After` duration honoured, an ISO-8601 duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
    /// The format events are sent in: `json` (structured) or `binary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DeliveryFormat>,
}

/// How the delay between retries grows.
///
/// Deserialises any string, so that an unknown policy is reported by validation with its field
/// path rather than by the decoder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "String", into = "String")]
pub enum BackoffPolicy {
    /// `linear`: the delay is `backoffDelay × attempt`.
    Linear,
    /// `exponential`: the delay is `backoffDelay × 2^attempt`.
    Exponential,
    /// Any other value (invalid).
    Other(String),
}

/// The format events are delivered in. Like [`BackoffPolicy`], unknown values are kept for
/// validation to report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "String", into = "String")]
pub enum DeliveryFormat {
    /// `json`: structured mode.
    Json,
    /// `binary`: binary mode.
    Binary,
    /// Any other value (invalid).
    Other(String),
}

/// The resolved dead-letter sink, as statuses report it (`eventingduckv1.DeliveryStatus`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// The resolved URI of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// The CA certificates of the dead-letter sink.
    #[serde(
        rename = "deadLetterSinkCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// The OIDC audience of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
}

impl DeliverySpec {
    /// Validates as Knative's `DeliverySpec.Validate` does (paths relative to the spec): the
    /// dead-letter sink is a valid Destination, `retry` is not negative, `backoffPolicy` is
    /// `linear` or `exponential`, the durations are ISO-8601 (and `timeout`/`retryAfterMax`
    /// not negative), `format` is `json` or `binary`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let mut errs = FieldError::default();
        if let Some(sink) = &self.dead_letter_sink {
            errs = errs.also(sink.validate().err().map(|e| e.via_field("deadLetterSink")));
        }
        if let Some(retry) = self.retry.filter(|r| *r < 0) {
            errs = errs.also(FieldError::err_invalid_value(retry, "retry"));
        }
        if let Some(timeout) = &self.timeout
            && parse_iso8601_duration(timeout).is_none_or(|d| d.is_negative())
        {
            errs = errs.also(FieldError::err_invalid_value(timeout, "timeout"));
        }
        if let Some(BackoffPolicy::Other(policy)) = &self.backoff_policy {
            errs = errs.also(FieldError::err_invalid_value(policy, "backoffPolicy"));
        }
        if let Some(delay) = &self.backoff_delay
            && parse_iso8601_duration(delay).is_none()
        {
            errs = errs.also(FieldError::err_invalid_value(delay, "backoffDelay"));
        }
        if let Some(max) = &self.retry_after_max
            && parse_iso8601_duration(max).is_none_or(|d| d.is_negative())
        {
            errs = errs.also(FieldError::err_invalid_value(max, "retryAfterMax"));
        }
        if let Some(DeliveryFormat::Other(format)) = &self.format {
            errs = errs.also(FieldError::err_invalid_value(format, "format"));
        }
        errs.into_result()
    }

    /// Defaults the namespace of the dead-letter sink's reference to the parent's.
    pub fn set_defaults(&mut self, parent_namespace: &str) {
        if let Some(sink) = &mut self.dead_letter_sink {
            sink.set_defaults(parent_namespace);
        }
    }

    /// The per-attempt timeout, when set and valid.
    pub fn timeout_duration(&self) -> Option<Duration> {
        positive(self.timeout.as_deref()?)
    }

    /// The base backoff delay, when set and valid.
    pub fn backoff_delay_duration(&self) -> Option<Duration> {
        positive(self.backoff_delay.as_deref()?)
    }

    /// The longest `Retry-After` honoured, when set and valid.
    pub fn retry_after_max_duration(&self) -> Option<Duration> {
        positive(self.retry_after_max.as_deref()?)
    }
}

impl BackoffPolicy {
    /// The delay before retry number `attempt` (1-based) for a base `delay`: `delay × attempt`
    /// (linear) or `delay × 2^attempt` (exponential), as Knative's dispatcher computes it.
    /// `None` for an invalid policy.
    pub fn delay(&self, delay: Duration, attempt: u32) -> Option<Duration> {
        match self {
            BackoffPolicy::Linear => Some(delay.saturating_mul(attempt)),
            BackoffPolicy::Exponential => {
                Some(delay.saturating_mul(2u32.checked_pow(attempt).unwrap_or(u32::MAX)))
            }
            BackoffPolicy::Other(_) => None,
        }
    }
}

impl From<String> for BackoffPolicy {
    fn from(s: String) -> Self {
        match s.as_str() {
            "linear" => BackoffPolicy::Linear,
            "exponential" => BackoffPolicy::Exponential,
            _ => BackoffPolicy::Other(s),
        }
    }
}

impl From<BackoffPolicy> for String {
    fn from(p: BackoffPolicy) -> Self {
        p.to_string()
    }
}

impl fmt::Display for BackoffPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackoffPolicy::Linear => "linear",
            BackoffPolicy::Exponential => "exponential",
            BackoffPolicy::Other(s) => s,
        })
    }
}

impl JsonSchema for BackoffPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BackoffPolicy".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

impl From<String> for DeliveryFormat {
    fn from(s: String) -> Self {
        match s.as_str() {
            "json" => DeliveryFormat::Json,
            "binary" => DeliveryFormat::Binary,
            _ => DeliveryFormat::Other(s),
        }
    }
}

impl From<DeliveryFormat> for String {
    fn from(f: DeliveryFormat) -> Self {
        match f {
            DeliveryFormat::Json => "json".to_owned(),
            DeliveryFormat::Binary => "binary".to_owned(),
            DeliveryFormat::Other(s) => s,
        }
    }
}

impl JsonSchema for DeliveryFormat {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeliveryFormat".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

/// A signed ISO-8601 duration (`PnYnMnWnDTnHnMnS`, fractions allowed, `-` for negative), as
/// Knative's `period.Parse` reads it. Years count 365.2425 days and months a twelfth of that,
/// as `period.DurationApprox` does. `None` when `text` is not such a duration.
pub fn parse_iso8601_duration(text: &str) -> Option<SignedDuration> {
    static PARSER: SpanParser = SpanParser::new();
    let span = PARSER.parse_span(text).ok()?;
    const DAY: f64 = 86_400.0;
    const YEAR: f64 = 365.2425 * DAY;
    let calendar = f64::from(span.get_years()) * YEAR
        + f64::from(span.get_months()) * YEAR / 12.0
        + f64::from(span.get_weeks()) * 7.0 * DAY
        + f64::from(span.get_days()) * DAY;
    let clock = i128::from(span.get_hours()) * 3_600_000_000_000
        + i128::from(span.get_minutes()) * 60_000_000_000
        + i128::from(span.get_seconds()) * 1_000_000_000
        + i128::from(span.get_milliseconds()) * 1_000_000
        + i128::from(span.get_microseconds()) * 1_000
        + i128::from(span.get_nanoseconds());
    #[allow(clippy::cast_possible_truncation)]
    let nanos = clock + (calendar * 1e9) as i128;
    Some(SignedDuration {
        negative: nanos < 0,
        magnitude: Duration::from_nanos(u64::try_from(nanos.unsigned_abs()).ok()?),
    })
}

/// A duration with a sign: ISO-8601 durations may be negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedDuration {
    /// Whether the duration is below zero.
    pub negative: bool,
    /// Its absolute value.
    pub magnitude: Duration,
}

impl SignedDuration {
    /// Whether the duration is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative && !self.magnitude.is_zero()
    }
}

fn positive(text: &str) -> Option<Duration> {
    parse_iso8601_duration(text)
        .filter(|d| !d.is_negative())
        .map(|d| d.magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_durations_parse_with_fractions_and_calendar_units() {
        let d = |s: &str| parse_iso8601_duration(s).map(|d| (d.is_negative(), d.magnitude));
        assert_eq!(d("PT0.2S"), Some((false, Duration::from_millis(200))));
        assert_eq!(d("PT1M30S"), Some((false, Duration::from_secs(90))));
        assert_eq!(d("P1D"), Some((false, Duration::from_secs(86_400))));
        assert_eq!(d("P1W"), Some((false, Duration::from_secs(7 * 86_400))));
        assert_eq!(d("-PT5S"), Some((true, Duration::from_secs(5))));
        assert_eq!(d("P0D"), Some((false, Duration::ZERO)));
    }

    #[test]
    fn non_iso8601_durations_are_rejected() {
        for bad in ["1s", "5 seconds", "", "PT", "P1S", "T1S"] {
            assert_eq!(parse_iso8601_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn linear_backoff_multiplies_by_the_attempt() {
        let base = Duration::from_millis(100);
        assert_eq!(
            BackoffPolicy::Linear.delay(base, 3),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn exponential_backoff_doubles_per_attempt() {
        let base = Duration::from_millis(100);
        assert_eq!(
            BackoffPolicy::Exponential.delay(base, 3),
            Some(Duration::from_millis(800))
        );
    }

    #[test]
    fn negative_timeout_and_unknown_policy_and_format_are_invalid() {
        let spec = DeliverySpec {
            timeout: Some("-PT1S".into()),
            backoff_policy: Some(BackoffPolicy::Other("random".into())),
            format: Some(DeliveryFormat::Other("xml".into())),
            retry_after_max: Some("soon".into()),
            ..DeliverySpec::default()
        };
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            "invalid value: -PT1S: timeout\ninvalid value: random: backoffPolicy\n\
             invalid value: soon: retryAfterMax\ninvalid value: xml: format"
        );
    }

    #[test]
    fn dead_letter_sink_errors_carry_its_path() {
        let spec: DeliverySpec =
            serde_json::from_str(r#"{"deadLetterSink": {"uri": "/relative"}}"#).unwrap();
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: deadLetterSink.uri"
        );
    }

    #[test]
    fn policies_and_formats_round_trip_as_knatives_strings() {
        let spec: DeliverySpec =
            serde_json::from_str(r#"{"backoffPolicy": "linear", "format": "binary"}"#).unwrap();
        assert_eq!(spec.backoff_policy, Some(BackoffPolicy::Linear));
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"backoffPolicy": "linear", "format": "binary"})
        );
    }
}
