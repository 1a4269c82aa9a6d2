//! Channel data planes: an event sent to a channel goes to every subscription.
//!
//! - [`InMemoryChannel`]: the `InMemoryChannel` dispatcher. Accepts events (202), fans each out to
//!   every [`SubscriptionRoute`], delivers with the subscription's [`DeliveryPolicy`], and sends a
//!   subscriber's reply event on to the subscription's `reply`. Fast, and lost on restart, like
//!   Knative's.
//! - [`imc_dispatcher`]: every InMemoryChannel of a cluster behind one server, their
//!   subscriptions kept current from the API server (Knative's `imc-dispatcher`).
//! - [`jetstream`]: a durable channel on NATS JetStream: 202 only after JetStream stored the
//!   event, one durable consumer per subscription, acknowledged only once the event was
//!   delivered or dead-lettered, so nothing is lost when the dispatcher or the server restarts.

pub mod imc_dispatcher;
pub mod jetstream;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use cloudevents::Event;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::{Semaphore, watch};

use crate::apis::messaging::channelable::SubscriberSpec;
use crate::delivery::codec;
use crate::delivery::{DeliveryPolicy, DeliveryStats, Dispatcher, Outcome, PolicyError, server};

/// One subscription as a channel dispatcher runs it (Knative's `SubscriberSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRoute {
    /// A name for logs (the subscription's UID or name).
    pub name: String,
    /// Where events go; `None` sends them straight to `reply`.
    pub subscriber: Option<Uri>,
    /// Where the subscriber's reply events go; `None` discards them.
    pub reply: Option<Uri>,
    /// How events (and replies) are delivered.
    pub delivery: DeliveryPolicy,
}

/// Why a subscriber spec cannot be routed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// A URI is not valid.
    #[error("subscriber {name}: invalid URI {uri}")]
    InvalidUri {
        /// The subscription.
        name: String,
        /// The URI.
        uri: String,
    },
    /// The delivery spec is invalid.
    #[error("subscriber {0}: delivery: {1}")]
    Delivery(String, PolicyError),
}

impl TryFrom<&SubscriberSpec> for SubscriptionRoute {
    type Error = SubscriptionError;

    /// Builds a route from a channel's `spec.subscribers[]` entry, as the Subscription
    /// reconciler writes it (resolved URIs, its own delivery spec).
    fn try_from(spec: &SubscriberSpec) -> Result<Self, Self::Error> {
        let name = spec
            .name
            .clone()
            .or_else(|| spec.uid.clone())
            .unwrap_or_default();
        let parse = |uri: &Option<String>| {
            uri.as_deref()
                .filter(|u| !u.is_empty())
                .map(|u| {
                    u.parse::<Uri>().map_err(|_| SubscriptionError::InvalidUri {
                        name: name.clone(),
                        uri: u.to_owned(),
                    })
                })
                .transpose()
        };
        let delivery = match &spec.delivery {
            None => DeliveryPolicy::default(),
            Some(d) => DeliveryPolicy::try_from(d)
                .map_err(|e| SubscriptionError::Delivery(name.clone(), e))?,
        };
        Ok(SubscriptionRoute {
            subscriber: parse(&spec.subscriber_uri)?,
            reply: parse(&spec.reply_uri)?,
            delivery,
            name,
        })
    }
}

/// The in-memory channel dispatcher. Cheap to clone; clones share subscriptions and counters.
#[derive(Clone, Debug)]
pub struct InMemoryChannel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    subscriptions: watch::Sender<Arc<Vec<SubscriptionRoute>>>,
    dispatcher: Dispatcher,
    in_flight: Arc<Semaphore>,
    stats: DeliveryStats,
}

impl InMemoryChannel {
    /// A channel with no subscriptions, at most `max_in_flight` deliveries at once (ingress
    /// waits beyond that).
    pub fn new(max_in_flight: usize) -> Self {
        Self::with_dispatcher(max_in_flight, Dispatcher::new())
    }

    /// A channel like [`InMemoryChannel::new`] delivering through `dispatcher` (and its
    /// connection pool).
    pub fn with_dispatcher(max_in_flight: usize, dispatcher: Dispatcher) -> Self {
        InMemoryChannel {
            inner: Arc::new(Inner {
                subscriptions: watch::Sender::new(Arc::new(Vec::new())),
                dispatcher,
                in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
                stats: DeliveryStats::default(),
            }),
        }
    }

    /// Replaces the subscriptions.
    pub fn set_subscriptions(&self, subscriptions: Vec<SubscriptionRoute>) {
        self.inner
            .subscriptions
            .send_replace(Arc::new(subscriptions));
    }

    /// The current subscriptions.
    pub fn subscriptions(&self) -> Arc<Vec<SubscriptionRoute>> {
        self.inner.subscriptions.borrow().clone()
    }

    /// What happened to the events so far (one delivery per event and subscription).
    pub fn stats(&self) -> &DeliveryStats {
        &self.inner.stats
    }

    /// Accepts an event and schedules its delivery to every subscription; returns how many.
    pub async fn publish(&self, event: Event) -> usize {
        self.inner.stats.accepted();
        let subscriptions = self.inner.subscriptions.borrow().clone();
        let event = Arc::new(event);
        for index in 0..subscriptions.len() {
            let permit = self
                .inner
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the channel never closes its semaphore");
            let channel = self.clone();
            let subscriptions = subscriptions.clone();
            let event = event.clone();
            tokio::spawn(async move {
                let route = &subscriptions[index];
                channel
                    .inner
                    .stats
                    .record(&fan_out(&channel.inner.dispatcher, route, &event).await);
                drop(permit);
            });
        }
        subscriptions.len()
    }

    /// The HTTP ingress: `POST` a CloudEvent, get 202 (or 400 with the reason).
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::POST {
            return server::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only POST is supported: send a CloudEvent",
            );
        }
        let (parts, body) = request.into_parts();
        let decoded = match server::read_body(body).await {
            Ok(body) => codec::decode(&parts.headers, body)
                .map_err(|e| server::text(StatusCode::BAD_REQUEST, e.to_string())),
            Err(response) => Err(response),
        };
        match decoded {
            Ok(event) => {
                self.publish(event).await;
                server::text(StatusCode::ACCEPTED, "")
            }
            Err(response) => {
                self.inner.stats.rejected();
                response
            }
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

/// Delivers one event for one subscription: to the subscriber, then its reply (if any) to the
/// subscription's `reply`; with no subscriber, the event itself goes to `reply`. The outcome is
/// the subscriber's, unless the reply could not be delivered.
pub async fn fan_out(dispatcher: &Dispatcher, route: &SubscriptionRoute, event: &Event) -> Outcome {
    let outcome = match &route.subscriber {
        Some(subscriber) => dispatcher.deliver(event, subscriber, &route.delivery).await,
        None => Outcome::Delivered {
            reply: Some(Box::new(event.clone())),
            attempts: 0,
        },
    };
    let (reply, attempts) = match outcome {
        Outcome::Delivered {
            reply: Some(reply),
            attempts,
        } => (reply, attempts),
        other => {
            log_outcome(route, &other);
            return other;
        }
    };
    let Some(reply_to) = &route.reply else {
        return Outcome::Delivered {
            reply: Some(reply),
            attempts,
        };
    };
    let forwarded = dispatcher.deliver(&reply, reply_to, &route.delivery).await;
    log_outcome(route, &forwarded);
    match forwarded {
        Outcome::Delivered { .. } => Outcome::Delivered {
            reply: Some(reply),
            attempts,
        },
        failed => failed,
    }
}

fn log_outcome(route: &SubscriptionRoute, outcome: &Outcome) {
    match outcome {
        Outcome::Delivered { .. } => {}
        Outcome::DeadLettered { failure, attempts } => {
            tracing::warn!(subscription = %route.name, %failure, attempts, "event dead-lettered");
        }
        Outcome::Failed {
            failure, attempts, ..
        } => {
            tracing::error!(subscription = %route.name, %failure, attempts, "event could not be delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_spec_becomes_a_route() {
        let spec: SubscriberSpec = serde_json::from_value(serde_json::json!({
            "uid": "abc", "subscriberUri": "http://sub/", "replyUri": "http://reply/",
            "delivery": {"retry": 2}
        }))
        .unwrap();
        let route = SubscriptionRoute::try_from(&spec).unwrap();
        assert_eq!(route.name, "abc");
        assert_eq!(route.subscriber.unwrap(), "http://sub/");
        assert_eq!(route.reply.unwrap(), "http://reply/");
        assert_eq!(route.delivery.retry.retry, 2);
    }

    #[test]
    fn an_invalid_subscriber_uri_is_reported() {
        let spec: SubscriberSpec = serde_json::from_value(
            serde_json::json!({"uid": "abc", "subscriberUri": "http://a b/"}),
        )
        .unwrap();
        assert!(matches!(
            SubscriptionRoute::try_from(&spec),
            Err(SubscriptionError::InvalidUri { .. })
        ));
    }
}
