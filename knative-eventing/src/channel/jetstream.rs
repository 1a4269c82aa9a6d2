//! A durable channel on NATS JetStream.
//!
//! - [`JetStreamChannel`] is the ingress: it stores each event in a JetStream stream (file
//!   storage) and answers 202 only once JetStream acknowledged it; when JetStream does not, the
//!   sender gets 503 and keeps the event. Each event is published with `Nats-Msg-Id` =
//!   `source` + `id`, so a sender retrying after a lost answer does not store it twice.
//! - [`run_dispatcher`] delivers the stream to one subscription through a durable pull consumer.
//!   Every JetStream delivery is one HTTP attempt; a retryable failure is NAKed with the
//!   DeliverySpec's backoff as the redelivery delay, so the retry schedule survives restarts.
//!   After the last retry (or a non-retryable answer) the event goes to the dead-letter sink. A
//!   message is acknowledged only when the event was delivered, dead-lettered, or (with no
//!   dead-letter sink) given up on with an error log, as Knative does; a dispatcher that dies
//!   before acknowledging gets it redelivered after `ack_wait`, so nothing is lost (events are
//!   delivered at least once).
//!
//! ```no_run
//! use knative_eventing::channel::jetstream::{JetStreamChannel, JetStreamConfig, run_dispatcher};
//! use knative_eventing::channel::SubscriptionRoute;
//! use knative_eventing::delivery::DeliveryPolicy;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = JetStreamConfig::new("nats://127.0.0.1:4222", "orders");
//! let channel = JetStreamChannel::connect(&config).await?;
//! let route = SubscriptionRoute {
//!     name: "audit".into(),
//!     subscriber: Some("http://127.0.0.1:8081/".parse()?),
//!     reply: None,
//!     delivery: DeliveryPolicy::default(),
//! };
//! tokio::spawn(run_dispatcher(config, route, std::future::pending()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! channel.serve(listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use super::SubscriptionRoute;
use crate::delivery::{
    DeliveryPolicy, DeliveryStats, Dispatcher, Failure, Outcome, RetryPolicy, codec,
    dead_letter_event, server,
};

/// Where a JetStream channel keeps its events.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// The NATS server (`nats://host:port`).
    pub url: String,
    /// The channel's name; the stream is `KNATIVE_<name>` and the subject `knative.<name>`.
    pub channel: String,
    /// How long JetStream waits for an acknowledgement before redelivering; longer than a
    /// delivery attempt's timeout.
    pub ack_wait: Duration,
    /// The most events a dispatcher delivers at once.
    pub max_in_flight: usize,
}

impl JetStreamConfig {
    /// A configuration with a 30 s `ack_wait` and 256 deliveries in flight.
    pub fn new(url: impl Into<String>, channel: impl Into<String>) -> Self {
        JetStreamConfig {
            url: url.into(),
            channel: channel.into(),
            ack_wait: Duration::from_secs(30),
            max_in_flight: 256,
        }
    }

    /// The JetStream stream's name.
    pub fn stream_name(&self) -> String {
        format!("KNATIVE_{}", token(&self.channel))
    }

    /// The subject events are published on.
    pub fn subject(&self) -> String {
        format!("knative.{}", token(&self.channel))
    }
}

/// Why the JetStream channel could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// Connecting to NATS failed.
    #[error("connecting to NATS: {0}")]
    Connect(String),
    /// Creating or reading the stream or consumer failed.
    #[error("JetStream stream or consumer: {0}")]
    Setup(String),
    /// JetStream did not acknowledge a published event.
    #[error("JetStream did not store the event: {0}")]
    Publish(String),
}

/// The ingress of a JetStream channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JetStreamChannel {
    context: jetstream::Context,
    subject: Arc<str>,
    stats: Arc<DeliveryStats>,
}

impl JetStreamChannel {
    /// Connects to NATS and creates the channel's stream (file storage) if it does not exist.
    pub async fn connect(config: &JetStreamConfig) -> Result<Self, JetStreamError> {
        let context = jetstream::new(connect(&config.url).await?);
        ensure_stream(&context, config).await?;
        Ok(JetStreamChannel {
            context,
            subject: config.subject().into(),
            stats: Arc::default(),
        })
    }

    /// Counts of accepted and rejected events.
    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Stores `event`; returns once JetStream acknowledged it.
    pub async fn publish(&self, event: &Event) -> Result<(), JetStreamError> {
        let message = jetstream::message::PublishMessage::build()
            .payload(codec::to_json(event))
            .message_id(format!("{} {}", event.source(), event.id()));
        let ack = self
            .context
            .send_publish(self.subject.to_string(), message)
            .await
            .map_err(|e| JetStreamError::Publish(e.to_string()))?;
        ack.await
            .map_err(|e| JetStreamError::Publish(e.to_string()))?;
        self.stats.accepted();
        Ok(())
    }

    /// The HTTP ingress: 202 once stored, 400 for a malformed event, 503 when JetStream did not
    /// store it (the sender should retry).
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::POST {
            return server::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only POST is supported: send a CloudEvent",
            );
        }
        let (parts, body) = request.into_parts();
        let body = match server::read_body(body).await {
            Ok(body) => body,
            Err(response) => {
                self.stats.rejected();
                return response;
            }
        };
        let event = match codec::decode(&parts.headers, body) {
            Ok(event) => event,
            Err(e) => {
                self.stats.rejected();
                return server::text(StatusCode::BAD_REQUEST, e.to_string());
            }
        };
        match self.publish(&event).await {
            Ok(()) => server::text(StatusCode::ACCEPTED, ""),
            Err(e) => server::text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    /// Serves the HTTP ingress on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let channel = self.clone();
        server::serve(
            listener,
            move |request| {
                let channel = channel.clone();
                async move { channel.handle(request).await }
            },
            shutdown,
        )
        .await
    }
}

/// Delivers the channel's events to one subscription until `shutdown` completes, reconnecting
/// and resuming from the durable consumer after NATS or JetStream errors. Outcomes are counted in
/// `stats` when given.
pub async fn run_dispatcher(
    config: JetStreamConfig,
    route: SubscriptionRoute,
    shutdown: impl Future<Output = ()>,
) -> Result<(), JetStreamError> {
    run_dispatcher_with_stats(config, route, Arc::default(), shutdown).await
}

/// [`run_dispatcher`], counting outcomes in `stats`.
pub async fn run_dispatcher_with_stats(
    config: JetStreamConfig,
    route: SubscriptionRoute,
    stats: Arc<DeliveryStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), JetStreamError> {
    let context = jetstream::new(connect(&config.url).await?);
    let route = Arc::new(route);
    let dispatcher = Dispatcher::new();
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    tokio::pin!(shutdown);
    loop {
        let messages = tokio::select! {
            () = &mut shutdown => return Ok(()),
            messages = open_consumer(&context, &config, &route.name) => messages,
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "JetStream consumer unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = &mut shutdown => return Ok(()),
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "JetStream consumer interrupted; resuming");
                    break;
                }
                None => break,
            };
            let permit = in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the dispatcher never closes its semaphore");
            let (dispatcher, route, stats) = (dispatcher.clone(), route.clone(), stats.clone());
            tokio::spawn(async move {
                handle_message(&dispatcher, &route, &stats, message).await;
                drop(permit);
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What to tell JetStream about a message after one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done with it (delivered, dead-lettered, or given up on): acknowledge.
    Ack,
    /// Redeliver after this delay.
    Retry(Duration),
    /// The attempt failed for good: send it to the dead-letter sink.
    DeadLetter,
}

/// Decides what follows attempt number `delivered` (1-based, JetStream's delivery count) that
/// ended with `result`: a retryable failure is retried while retries remain, with the policy's
/// backoff (or a capped `Retry-After`) as the delay.
pub fn disposition(
    policy: &RetryPolicy,
    delivered: u32,
    result: &Result<(), Failure>,
    retry_after: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Disposition {
    let failure = match result {
        Ok(()) => return Disposition::Ack,
        Err(failure) => failure,
    };
    let status = match failure {
        Failure::Status { status, .. } => Some(*status),
        Failure::Timeout | Failure::Network(_) => None,
    };
    let retryable = status.is_none_or(RetryPolicy::is_retryable);
    if retryable && delivered <= policy.retry {
        Disposition::Retry(policy.wait_before(delivered, status, retry_after, now))
    } else {
        Disposition::DeadLetter
    }
}

async fn handle_message(
    dispatcher: &Dispatcher,
    route: &SubscriptionRoute,
    stats: &DeliveryStats,
    message: jetstream::Message,
) {
    let delivered = message
        .info()
        .map(|info| u32::try_from(info.delivered).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let event = match codec::from_json(&message.payload) {
        Ok(event) => event,
        Err(e) => {
            // Only this channel's ingress writes the stream; a foreign message cannot be
            // delivered, so it is terminated rather than redelivered forever.
            tracing::error!(error = %e, "terminating a stream message that is not a CloudEvent");
            stats.rejected();
            ack(&message, AckKind::Term).await;
            return;
        }
    };
    let single = DeliveryPolicy {
        retry: RetryPolicy {
            retry: 0,
            ..route.delivery.retry.clone()
        },
        dead_letter_sink: None,
        mode: route.delivery.mode,
    };
    let attempt = match &route.subscriber {
        Some(subscriber) => dispatcher.deliver(&event, subscriber, &single).await,
        None => Outcome::Delivered {
            reply: Some(Box::new(event.clone())),
            attempts: 0,
        },
    };
    let (result, reply) = match attempt {
        Outcome::Delivered { reply, .. } => (Ok(()), reply),
        Outcome::Failed { failure, .. } | Outcome::DeadLettered { failure, .. } => {
            (Err(failure), None)
        }
    };
    let next = disposition(
        &route.delivery.retry,
        delivered,
        &result,
        None,
        chrono::Utc::now(),
    );
    match (next, result) {
        (Disposition::Ack, _) | (Disposition::DeadLetter, Ok(())) => {
            if let (Some(reply), Some(reply_to)) = (reply, &route.reply) {
                let forwarded = dispatcher.deliver(&reply, reply_to, &route.delivery).await;
                if !matches!(forwarded, Outcome::Delivered { .. }) {
                    tracing::error!(subscription = %route.name, ?forwarded, "reply could not be delivered");
                }
            }
            stats.record(&Outcome::Delivered {
                reply: None,
                attempts: delivered,
            });
            ack(&message, AckKind::Ack).await;
        }
        (Disposition::Retry(delay), _) => {
            ack(&message, AckKind::Nak(Some(delay))).await;
        }
        (Disposition::DeadLetter, Err(failure)) => {
            let subscriber = route.subscriber.clone().unwrap_or_default();
            let outcome = match &route.delivery.dead_letter_sink {
                Some(sink) => {
                    let dead = dead_letter_event(&event, &subscriber, &failure);
                    match dispatcher.deliver(&dead, sink, &route.delivery).await {
                        Outcome::Delivered { .. } => Outcome::DeadLettered {
                            failure,
                            attempts: delivered,
                        },
                        _ => {
                            // The dead-letter sink is down: keep the event and try again later.
                            tracing::warn!(subscription = %route.name, "dead-letter sink failed; redelivering later");
                            let delay = route
                                .delivery
                                .retry
                                .backoff_delay(delivered)
                                .max(Duration::from_secs(1));
                            ack(&message, AckKind::Nak(Some(delay))).await;
                            return;
                        }
                    }
                }
                None => {
                    tracing::error!(
                        subscription = %route.name,
                        id = %event.id(),
                        %failure,
                        attempts = delivered,
                        "giving up on an event: retries exhausted and no dead-letter sink"
                    );
                    Outcome::Failed {
                        failure,
                        dead_letter: None,
                        attempts: delivered,
                    }
                }
            };
            stats.record(&outcome);
            ack(&message, AckKind::Ack).await;
        }
    }
}

async fn ack(message: &jetstream::Message, kind: AckKind) {
    // A lost acknowledgement only means a redelivery (at least once), never a lost event.
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(error = %e, "acknowledging a JetStream message failed");
    }
}

async fn connect(url: &str) -> Result<async_nats::Client, JetStreamError> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100u64.saturating_mul(attempts as u64).min(1_000))
        })
        .connect(url)
        .await
        .map_err(|e| JetStreamError::Connect(e.to_string()))
}

async fn ensure_stream(
    context: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<stream::Stream, JetStreamError> {
    context
        .get_or_create_stream(stream::Config {
            name: config.stream_name(),
            subjects: vec![config.subject()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            ..Default::default()
        })
        .await
        .map_err(|e| JetStreamError::Setup(e.to_string()))
}

async fn open_consumer(
    context: &jetstream::Context,
    config: &JetStreamConfig,
    subscription: &str,
) -> Result<consumer::pull::Stream, JetStreamError> {
    let stream = ensure_stream(context, config).await?;
    let name = token(subscription);
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_deliver: -1,
                max_ack_pending: i64::try_from(config.max_in_flight.max(1)).unwrap_or(i64::MAX),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| JetStreamError::Setup(e.to_string()))?;
    consumer
        .messages()
        .await
        .map_err(|e| JetStreamError::Setup(e.to_string()))
}

/// A name usable as a NATS subject token and JetStream name: letters, digits, `-` and `_`.
fn token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retry: 2,
            delay: Duration::from_millis(100),
            ..RetryPolicy::none()
        }
    }

    fn status(code: u16) -> Result<(), Failure> {
        Err(Failure::Status {
            status: StatusCode::from_u16(code).unwrap(),
            body: Bytes::new(),
        })
    }

    #[test]
    fn success_is_acknowledged() {
        assert_eq!(
            disposition(&policy(), 1, &Ok(()), None, now()),
            Disposition::Ack
        );
    }

    #[test]
    fn retryable_failures_are_redelivered_with_the_backoff() {
        assert_eq!(
            disposition(&policy(), 1, &status(503), None, now()),
            Disposition::Retry(Duration::from_millis(200))
        );
        assert_eq!(
            disposition(&policy(), 2, &Err(Failure::Timeout), None, now()),
            Disposition::Retry(Duration::from_millis(400))
        );
    }

    #[test]
    fn the_last_retry_goes_to_the_dead_letter_sink() {
        assert_eq!(
            disposition(&policy(), 3, &status(500), None, now()),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn a_non_retryable_status_is_dead_lettered_at_once() {
        assert_eq!(
            disposition(&policy(), 1, &status(400), None, now()),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn names_become_subject_tokens() {
        let config = JetStreamConfig::new("nats://x", "default/orders.v1");
        assert_eq!(config.subject(), "knative.default_orders_v1");
        assert_eq!(config.stream_name(), "KNATIVE_default_orders_v1");
    }
}
