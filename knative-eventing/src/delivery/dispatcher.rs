//! Sending events over HTTP with retries, per-attempt timeouts, replies and a dead-letter sink.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use cloudevents::Event;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use super::client::HttpClient;
use super::codec::{self, ContentMode};
use super::retry::RetryPolicy;
use crate::apis::delivery::{DeliveryFormat, DeliverySpec};

/// The most response body read back from a subscriber (a reply event, or error data).
const MAX_RESPONSE_BODY: usize = 4 * 1024 * 1024;
/// How much of a failed response's body goes into `knativeerrordata`, as in Knative.
pub const MAX_ERROR_DATA: usize = 1024;

/// Everything about delivering to one destination: retries, dead-letter sink, content mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Retries, backoff and timeouts.
    pub retry: RetryPolicy,
    /// Where events go when every attempt failed, if anywhere.
    pub dead_letter_sink: Option<Uri>,
    /// The content mode of outgoing events.
    pub mode: ContentMode,
}

impl DeliveryPolicy {
    /// Builds a policy from a DeliverySpec and the dead-letter sink's resolved URI (the spec
    /// holds a Destination, which the control plane resolves into `status.deadLetterSinkUri`).
    pub fn from_spec(
        spec: &DeliverySpec,
        dead_letter_sink: Option<Uri>,
    ) -> Result<Self, super::PolicyError> {
        Ok(DeliveryPolicy {
            retry: RetryPolicy::try_from(spec)?,
            dead_letter_sink,
            mode: match spec.format {
                Some(DeliveryFormat::Json) => ContentMode::Structured,
                _ => ContentMode::Binary,
            },
        })
    }
}

impl TryFrom<&DeliverySpec> for DeliveryPolicy {
    type Error = super::PolicyError;

    /// Uses `deadLetterSink.uri` when it is a plain URI; a `ref` needs the control plane to
    /// resolve it, see [`DeliveryPolicy::from_spec`].
    fn try_from(spec: &DeliverySpec) -> Result<Self, Self::Error> {
        let sink = match spec
            .dead_letter_sink
            .as_ref()
            .and_then(|d| d.uri.as_deref())
        {
            None => None,
            Some(uri) => Some(
                uri.parse::<Uri>()
                    .map_err(|_| super::PolicyError::Invalid {
                        field: "deadLetterSink.uri",
                        value: uri.to_owned(),
                    })?,
            ),
        };
        DeliveryPolicy::from_spec(spec, sink)
    }
}

/// How a delivery ended. Every event ends in exactly one of these: nothing is dropped without
/// being counted.
#[derive(Debug)]
pub enum Outcome {
    /// The destination accepted the event (2xx), maybe answering with a reply event.
    Delivered {
        /// The reply event, when the response carried one.
        reply: Option<Box<Event>>,
        /// Attempts made (1 = first try).
        attempts: u32,
    },
    /// Every attempt failed and the event went to the dead-letter sink.
    DeadLettered {
        /// The last failure.
        failure: Failure,
        /// Attempts made at the destination.
        attempts: u32,
    },
    /// Every attempt failed and there was no dead-letter sink, or it failed too.
    Failed {
        /// The last failure at the destination.
        failure: Failure,
        /// Why the dead-letter sink did not take it, if there was one.
        dead_letter: Option<Failure>,
        /// Attempts made at the destination.
        attempts: u32,
    },
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The destination answered with a non-2xx status.
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the response body.
        body: Bytes,
    },
    /// The attempt timed out.
    Timeout,
    /// Connecting or talking to the destination failed.
    Network(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { status, .. } => write!(f, "status {status}"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Network(e) => write!(f, "network error: {e}"),
        }
    }
}

/// The result of one attempt.
struct Response {
    status: StatusCode,
    retry_after: Option<String>,
    headers: http::HeaderMap,
    body: Bytes,
}

/// An HTTP client that delivers events as a [`DeliveryPolicy`] says. Cheap to clone; clones
/// share one connection pool.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    client: HttpClient,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Dispatcher {
    /// A dispatcher with its own connection pool.
    pub fn new() -> Self {
        Dispatcher {
            client: HttpClient::default(),
        }
    }

    /// Delivers `event` to `destination` with `Prefer: reply`, retrying as `policy` says; when
    /// every attempt failed, sends it to the dead-letter sink with the `knativeerrordest`,
    /// `knativeerrorcode` and `knativeerrordata` extensions.
    pub async fn deliver(
        &self,
        event: &Event,
        destination: &Uri,
        policy: &DeliveryPolicy,
    ) -> Outcome {
        let (headers, body) = codec::encode(event, policy.mode);
        self.deliver_with(&headers, &body, destination, policy, || Ok(event.clone()))
            .await
    }

    /// Delivers an event already encoded as HTTP headers and body (binary or structured mode,
    /// whatever `policy.mode` says), as [`Dispatcher::deliver`] does: a data plane that
    /// forwards what it received need not decode and re-encode it. The headers should hold only
    /// the event's own (`ce-*`, `content-type`); the event is decoded only if it has to go to the
    /// dead-letter sink.
    pub async fn deliver_encoded(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        destination: &Uri,
        policy: &DeliveryPolicy,
    ) -> Outcome {
        self.deliver_with(headers, body, destination, policy, || {
            codec::decode(headers, body.clone())
        })
        .await
    }

    async fn deliver_with(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        destination: &Uri,
        policy: &DeliveryPolicy,
        event: impl FnOnce() -> Result<Event, codec::DecodeError>,
    ) -> Outcome {
        let (attempts, result) = self
            .send_with_retries(headers, body, destination, policy)
            .await;
        let failure = match result {
            Ok(response) => {
                let reply = if codec::carries_event(&response.headers) {
                    match codec::decode(&response.headers, response.body) {
                        Ok(reply) => Some(Box::new(reply)),
                        Err(e) => {
                            tracing::warn!(%destination, error = %e, "ignoring a malformed reply event");
                            None
                        }
                    }
                } else {
                    None
                };
                return Outcome::Delivered { reply, attempts };
            }
            Err(failure) => failure,
        };
        let Some(sink) = &policy.dead_letter_sink else {
            return Outcome::Failed {
                failure,
                dead_letter: None,
                attempts,
            };
        };
        let dead = match event() {
            Ok(event) => dead_letter_event(&event, destination, &failure),
            Err(e) => {
                return Outcome::Failed {
                    failure,
                    dead_letter: Some(Failure::Network(format!(
                        "the event cannot be dead-lettered: {e}"
                    ))),
                    attempts,
                };
            }
        };
        let (headers, body) = codec::encode(&dead, policy.mode);
        match self
            .send_with_retries(&headers, &body, sink, policy)
            .await
            .1
        {
            Ok(_) => Outcome::DeadLettered { failure, attempts },
            Err(dead_failure) => Outcome::Failed {
                failure,
                dead_letter: Some(dead_failure),
                attempts,
            },
        }
    }

    /// Sends `event` once, without retries, and returns the response status.
    pub async fn send_once(
        &self,
        event: &Event,
        destination: &Uri,
        mode: ContentMode,
        timeout: Option<Duration>,
    ) -> Result<StatusCode, Failure> {
        let (headers, body) = codec::encode(event, mode);
        let response = self.attempt(&headers, body, destination, timeout).await?;
        Ok(response.status)
    }

    async fn send_with_retries(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        destination: &Uri,
        policy: &DeliveryPolicy,
    ) -> (u32, Result<Response, Failure>) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self
                .attempt(headers, body.clone(), destination, policy.retry.timeout)
                .await;
            let (status, retry_after, failure) = match result {
                Ok(response) if response.status.is_success() => return (attempts, Ok(response)),
                Ok(response) => {
                    let retryable = RetryPolicy::is_retryable(response.status);
                    let failure = Failure::Status {
                        status: response.status,
                        body: response.body,
                    };
                    if !retryable {
                        return (attempts, Err(failure));
                    }
                    (Some(response.status), response.retry_after, failure)
                }
                Err(failure) => (None, None, failure),
            };
            if attempts > policy.retry.retry {
                return (attempts, Err(failure));
            }
            let wait = policy.retry.wait_before(
                attempts,
                status,
                retry_after.as_deref(),
                chrono::Utc::now(),
            );
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    async fn attempt(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        destination: &Uri,
        timeout: Option<Duration>,
    ) -> Result<Response, Failure> {
        let extra = [(
            http::HeaderName::from_static("prefer"),
            HeaderValue::from_static("reply"),
        )];
        let exchange = async {
            let response = self
                .client
                .post(destination, headers, &extra, body, MAX_RESPONSE_BODY)
                .await
                .map_err(Failure::Network)?;
            let (parts, body) = response.into_parts();
            Ok(Response {
                status: parts.status,
                retry_after: parts
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                headers: parts.headers,
                body,
            })
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .unwrap_or(Err(Failure::Timeout)),
            None => exchange.await,
        }
    }
}

/// The event sent to a dead-letter sink: the original with `knativeerrordest` (where delivery
/// failed), `knativeerrorcode` (the last status, when there was one) and `knativeerrordata` (the
/// start of the response body, base64).
pub fn dead_letter_event(event: &Event, destination: &Uri, failure: &Failure) -> Event {
    let mut dead = event.clone();
    dead.set_extension("knativeerrordest", destination.to_string());
    if let Failure::Status { status, body } = failure {
        dead.set_extension("knativeerrorcode", status.as_u16().to_string());
        if !body.is_empty() {
            let data = &body[..body.len().min(MAX_ERROR_DATA)];
            dead.set_extension(
                "knativeerrordata",
                base64::engine::general_purpose::STANDARD.encode(data),
            );
        }
    }
    dead
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("/s")
            .ty("t")
            .build()
            .unwrap()
    }

    #[test]
    fn dead_letter_event_carries_the_error_extensions() {
        let failure = Failure::Status {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from(vec![b'x'; 2000]),
        };
        let dest: Uri = "http://sub.example/".parse().unwrap();
        let dead = dead_letter_event(&event(), &dest, &failure);
        assert_eq!(dead.id(), "1");
        assert_eq!(
            dead.extension("knativeerrordest").unwrap().to_string(),
            "http://sub.example/"
        );
        assert_eq!(
            dead.extension("knativeerrorcode").unwrap().to_string(),
            "502"
        );
        let data = dead.extension("knativeerrordata").unwrap().to_string();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(decoded.len(), MAX_ERROR_DATA);
    }

    #[test]
    fn a_network_failure_has_no_error_code() {
        let dest: Uri = "http://127.0.0.1:1/".parse().unwrap();
        let dead = dead_letter_event(&event(), &dest, &Failure::Timeout);
        assert!(dead.extension("knativeerrorcode").is_none());
        assert!(dead.extension("knativeerrordest").is_some());
    }

    #[test]
    fn a_policy_takes_a_plain_dead_letter_uri_from_the_spec() {
        let spec: DeliverySpec = serde_json::from_value(serde_json::json!({
            "deadLetterSink": {"uri": "http://dls.example/"}, "retry": 2, "format": "json"
        }))
        .unwrap();
        let policy = DeliveryPolicy::try_from(&spec).unwrap();
        assert_eq!(policy.retry.retry, 2);
        assert_eq!(policy.mode, ContentMode::Structured);
        assert_eq!(policy.dead_letter_sink.unwrap(), "http://dls.example/");
    }
}
