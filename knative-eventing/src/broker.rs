//! The Broker data plane: ingress and filter in one in-memory component.
//!
//! - Ingress ([`Broker::handle`] over HTTP, [`Broker::publish`] in process) accepts CloudEvents
//!   in binary or structured mode and answers 202; a request that is not a valid event gets 400
//!   with the reason. It guards against loops with the `knativebrokerttl` extension: an event
//!   without one starts at [`DEFAULT_TTL`]; a malformed one is refused.
//! - The filter matches every event against each Trigger's compiled [`Filter`] and delivers it to
//!   the subscriber of each matching Trigger through the [`Dispatcher`] (retries, dead-letter
//!   sink). The TTL is removed from what subscribers see; a reply event comes back to the
//!   ingress with the TTL decremented, and is dropped (and counted) when it reaches 0.
//!
//! Every accepted event ends counted in [`DeliveryStats`]: delivered, dead-lettered, failed or
//! dropped. Deliveries in flight are bounded ([`BrokerConfig::max_in_flight`]): when the bound is
//! reached, ingress waits before answering, which pushes back on senders instead of buffering
//! without limit.
//!
//! ```no_run
//! use knative_eventing::broker::{Broker, BrokerConfig, TriggerRoute};
//! use knative_eventing::delivery::DeliveryPolicy;
//! use knative_eventing::filter::Filter;
//!
//! # async fn run() -> std::io::Result<()> {
//! let broker = Broker::new(BrokerConfig::default());
//! broker.set_triggers(vec![TriggerRoute {
//!     name: "orders".into(),
//!     filter: Filter::exact("type", "com.example.order.created"),
//!     subscriber: "http://127.0.0.1:8081/".parse().unwrap(),
//!     delivery: DeliveryPolicy::default(),
//! }]);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! broker.serve(listener, std::future::pending()).await
//! # }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::{Semaphore, watch};

use crate::apis::eventing::trigger::Trigger;
use crate::delivery::codec::{self, ContentMode, DecodeError};
use crate::delivery::{
    DeliveryPolicy, DeliveryStats, Dispatcher, Failure, Outcome, PolicyError, server,
};
use crate::filter::{Filter, FilterError};

/// The extension that carries an event's remaining hops through brokers.
pub const TTL_EXTENSION: &str = "knativebrokerttl";
/// The TTL an event gets when it enters a broker without one, as in Knative.
pub const DEFAULT_TTL: i64 = 255;

/// Tuning of a [`Broker`].
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The TTL of events that arrive without one.
    pub default_ttl: i64,
    /// The most deliveries in flight at once (each retrying delivery holds one).
    pub max_in_flight: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            default_ttl: DEFAULT_TTL,
            max_in_flight: 10_000,
        }
    }
}

/// One Trigger as the filter runs it.
#[derive(Debug, Clone)]
pub struct TriggerRoute {
    /// The Trigger's name (for logs).
    pub name: String,
    /// Which events it wants.
    pub filter: Filter,
    /// Where they go.
    pub subscriber: Uri,
    /// How they are delivered.
    pub delivery: DeliveryPolicy,
}

/// Why a Trigger cannot be routed yet.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Its subscriber has not been resolved to a URI.
    #[error("trigger {0}: the subscriber has no resolved URI (status.subscriberUri)")]
    Unresolved(String),
    /// A URI is not valid.
    #[error("trigger {trigger}: invalid URI {uri}")]
    InvalidUri {
        /// The Trigger.
        trigger: String,
        /// The URI.
        uri: String,
    },
    /// Its filters do not compile.
    #[error("trigger {0}: {1}")]
    Filter(String, FilterError),
    /// Its delivery spec is invalid.
    #[error("trigger {0}: spec.delivery: {1}")]
    Delivery(String, PolicyError),
}

impl TriggerRoute {
    /// Builds the route of a Trigger: subscriber from `status.subscriberUri` (or a plain
    /// `spec.subscriber.uri`), dead-letter sink from `status.deadLetterSinkUri` (or a plain
    /// `spec.delivery.deadLetterSink.uri`), filters compiled.
    pub fn from_trigger(trigger: &Trigger) -> Result<Self, RouteError> {
        let name = trigger.metadata.name.clone().unwrap_or_default();
        let status = trigger.status.as_ref();
        let subscriber = status
            .and_then(|s| s.subscriber_uri.clone())
            .or_else(|| trigger.spec.subscriber.uri.clone())
            .ok_or_else(|| RouteError::Unresolved(name.clone()))?;
        let parse = |uri: &str| {
            uri.parse::<Uri>().map_err(|_| RouteError::InvalidUri {
                trigger: name.clone(),
                uri: uri.to_owned(),
            })
        };
        let subscriber = parse(&subscriber)?;
        let filter = Filter::compile(trigger.spec.filter.as_ref(), &trigger.spec.filters)
            .map_err(|e| RouteError::Filter(name.clone(), e))?;
        let delivery = match &trigger.spec.delivery {
            None => DeliveryPolicy::default(),
            Some(spec) => {
                let sink = status
                    .and_then(|s| s.delivery.dead_letter_sink_uri.clone())
                    .or_else(|| spec.dead_letter_sink.as_ref().and_then(|d| d.uri.clone()))
                    .map(|uri| parse(&uri))
                    .transpose()?;
                DeliveryPolicy::from_spec(spec, sink)
                    .map_err(|e| RouteError::Delivery(name.clone(), e))?
            }
        };
        Ok(TriggerRoute {
            name,
            filter,
            subscriber,
            delivery,
        })
    }
}

/// Why ingress refused an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    /// The request is not a valid CloudEvent.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The TTL extension is not an integer.
    #[error("malformed CloudEvent: extension {TTL_EXTENSION} must be an integer, got {0:?}")]
    BadTtl(String),
}

/// What ingress did with an accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Handed to this many matching Triggers.
    Routed(usize),
    /// Its TTL was exhausted: dropped (and counted).
    Dropped,
}

/// A Broker's data plane. Cheap to clone; clones share triggers, connections and counters.
#[derive(Clone, Debug)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BrokerConfig,
    triggers: watch::Sender<Arc<Vec<TriggerRoute>>>,
    dispatcher: Dispatcher,
    in_flight: Arc<Semaphore>,
    stats: DeliveryStats,
}

impl Broker {
    /// A broker with no Triggers.
    pub fn new(config: BrokerConfig) -> Self {
        Self::with_dispatcher(config, Dispatcher::new())
    }

    /// A broker that delivers through `dispatcher`.
    pub fn with_dispatcher(config: BrokerConfig, dispatcher: Dispatcher) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        Broker {
            inner: Arc::new(Inner {
                config,
                triggers: watch::Sender::new(Arc::new(Vec::new())),
                dispatcher,
                in_flight,
                stats: DeliveryStats::default(),
            }),
        }
    }

    /// Replaces the Triggers; events already being delivered finish with the old ones.
    pub fn set_triggers(&self, triggers: Vec<TriggerRoute>) {
        self.inner.triggers.send_replace(Arc::new(triggers));
    }

    /// What happened to the events so far.
    pub fn stats(&self) -> &DeliveryStats {
        &self.inner.stats
    }

    /// Accepts an event: checks its TTL and hands it to every matching Trigger. Returns once the
    /// deliveries are scheduled (waiting while [`BrokerConfig::max_in_flight`] are running).
    pub async fn publish(&self, mut event: Event) -> Result<Accepted, IngressError> {
        let ttl = match event.extension(TTL_EXTENSION) {
            None => self.inner.config.default_ttl,
            Some(value) => {
                parse_ttl(value).ok_or_else(|| IngressError::BadTtl(value.to_string()))?
            }
        };
        self.inner.stats.accepted();
        if ttl <= 0 {
            tracing::info!(id = %cloudevents::AttributesReader::id(&event), "dropping an event whose {TTL_EXTENSION} is exhausted");
            self.inner.stats.dropped();
            return Ok(Accepted::Dropped);
        }
        // Subscribers do not see the broker's bookkeeping; a reply gets it back, decremented.
        event.remove_extension(TTL_EXTENSION);
        let triggers = self.inner.triggers.borrow().clone();
        let matching: Vec<usize> = (0..triggers.len())
            .filter(|&i| triggers[i].filter.matches(&event))
            .collect();
        self.fan_out(triggers, matching, Payload::Event(event), ttl)
            .await
    }

    /// [`Broker::publish`] for an event as it arrived in binary mode, already checked by
    /// [`forwardable`]: filtered on its headers and forwarded as they are, never decoded.
    async fn publish_forwarded(&self, forwarded: Forwarded, body: Bytes) -> Accepted {
        let ttl = forwarded.ttl.unwrap_or(self.inner.config.default_ttl);
        self.inner.stats.accepted();
        if ttl <= 0 {
            tracing::info!("dropping an event whose {TTL_EXTENSION} is exhausted");
            self.inner.stats.dropped();
            return Accepted::Dropped;
        }
        let triggers = self.inner.triggers.borrow().clone();
        let matching: Vec<usize> = {
            // Read once: every Trigger's filter looks attributes up again.
            let attributes = forwarded.attributes();
            let attribute = |name: &str| {
                attributes
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| Cow::Borrowed(*v))
            };
            (0..triggers.len())
                .filter(|&i| triggers[i].filter.matches_with(&attribute))
                .collect()
        };
        self.fan_out(
            triggers,
            matching,
            Payload::Encoded(forwarded.headers, body),
            ttl,
        )
        .await
        .unwrap_or(Accepted::Dropped)
    }

    /// Delivers `payload` to the `matching` triggers in the background: on the ingress
    /// connection's task when serving HTTP, see [`server::run_after_request`].
    async fn fan_out(
        &self,
        triggers: Arc<Vec<TriggerRoute>>,
        matching: Vec<usize>,
        payload: Payload,
        ttl: i64,
    ) -> Result<Accepted, IngressError> {
        let payload = Arc::new(payload);
        for &index in &matching {
            let permit = self
                .inner
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("the broker never closes its semaphore");
            let broker = self.clone();
            let triggers = triggers.clone();
            let payload = payload.clone();
            server::run_after_request(async move {
                let trigger = &triggers[index];
                let outcome = payload.deliver(&broker.inner.dispatcher, trigger).await;
                drop(permit);
                broker.finish(trigger, ttl, outcome).await;
            });
        }
        Ok(Accepted::Routed(matching.len()))
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
        let body = match server::read_body(body).await {
            Ok(body) => body,
            Err(response) => {
                self.inner.stats.rejected();
                return response;
            }
        };
        let result = match forwardable(parts.headers) {
            Ok(forwarded) => Ok(self.publish_forwarded(forwarded, body).await),
            Err(headers) => match codec::decode(&headers, body) {
                Ok(event) => self.publish(event).await,
                Err(e) => Err(e.into()),
            },
        };
        match result {
            Ok(_) => server::accepted(),
            Err(e) => {
                self.inner.stats.rejected();
                server::text(StatusCode::BAD_REQUEST, e.to_string())
            }
        }
    }

    /// Serves the HTTP ingress on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let broker = self.clone();
        server::serve(
            listener,
            move |request| {
                let broker = broker.clone();
                async move { broker.handle(request).await }
            },
            shutdown,
        )
        .await
    }

    /// `publish` → deliver → `finish` → `publish` is recursive: a named, boxed future type breaks
    /// the cycle the compiler would otherwise follow to prove it `Send`.
    fn publish_reply(
        &self,
        reply: Event,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Accepted, IngressError>> + Send>> {
        let broker = self.clone();
        Box::pin(async move { broker.publish(reply).await })
    }

    async fn finish(&self, trigger: &TriggerRoute, ttl: i64, outcome: Outcome) {
        self.inner.stats.record(&outcome);
        match outcome {
            Outcome::Delivered {
                reply: Some(mut reply),
                ..
            } => {
                reply.set_extension(TTL_EXTENSION, ttl - 1);
                let reply = *reply;
                if let Err(e) = self.publish_reply(reply).await {
                    tracing::warn!(trigger = %trigger.name, error = %e, "refusing a reply event");
                    self.inner.stats.rejected();
                }
            }
            Outcome::Delivered { reply: None, .. } => {}
            Outcome::DeadLettered { failure, attempts } => {
                tracing::warn!(trigger = %trigger.name, %failure, attempts, "event dead-lettered");
            }
            Outcome::Failed {
                failure,
                dead_letter,
                attempts,
            } => {
                tracing::error!(
                    trigger = %trigger.name,
                    %failure,
                    dead_letter = ?dead_letter.map(|f| f.to_string()),
                    attempts,
                    "event could not be delivered"
                );
            }
        }
    }
}

/// What a matching Trigger's subscriber is sent.
enum Payload {
    /// A decoded event.
    Event(Event),
    /// An event as it arrived in binary mode: its `ce-*` and `content-type` headers, its body.
    Encoded(HeaderMap, Bytes),
}

impl Payload {
    async fn deliver(&self, dispatcher: &Dispatcher, trigger: &TriggerRoute) -> Outcome {
        match self {
            Payload::Event(event) => {
                dispatcher
                    .deliver(event, &trigger.subscriber, &trigger.delivery)
                    .await
            }
            Payload::Encoded(headers, body) if trigger.delivery.mode == ContentMode::Binary => {
                dispatcher
                    .deliver_encoded(headers, body, &trigger.subscriber, &trigger.delivery)
                    .await
            }
            // The Trigger wants another content mode: decode once, encode its way.
            Payload::Encoded(headers, body) => match codec::decode(headers, body.clone()) {
                Ok(event) => {
                    dispatcher
                        .deliver(&event, &trigger.subscriber, &trigger.delivery)
                        .await
                }
                Err(e) => Outcome::Failed {
                    failure: Failure::Network(format!("the event cannot be re-encoded: {e}")),
                    dead_letter: None,
                    attempts: 0,
                },
            },
        }
    }
}

/// A binary-mode event the ingress forwards without decoding it.
struct Forwarded {
    /// The event's `ce-*` headers (but `ce-knativebrokerttl`) and `content-type`.
    headers: HeaderMap,
    /// Its `knativebrokerttl`, if it had one.
    ttl: Option<i64>,
}

impl Forwarded {
    /// The attributes with their canonical string values, as a decoded event would give them.
    fn attributes(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .filter_map(|(header, value)| {
                let name = match header.as_str().strip_prefix("ce-") {
                    Some(name) => name,
                    None if header == http::header::CONTENT_TYPE => "datacontenttype",
                    None => return None,
                };
                Some((name, value.to_str().ok()?))
            })
            .collect()
    }

    /// The canonical string value of attribute `name`, as a decoded event would give it.
    #[cfg(test)]
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// Takes a request's headers for forwarding if it can be forwarded as it is: a CloudEvents 1.0
/// binary-mode request whose attributes a decoder would take verbatim (required ones present and
/// non-empty, visible ASCII without percent-encoding, extension names of lower-case letters and
/// digits, no `time` or `dataschema` to parse, an integer `knativebrokerttl`, no header twice).
/// Otherwise gives the headers back for the full decoder, which accepts or refuses the request
/// with the reason. The kept headers are moved, not copied.
fn forwardable(headers: HeaderMap) -> Result<Forwarded, HeaderMap> {
    let Some(ttl) = forwardable_ttl(&headers) else {
        return Err(headers);
    };
    let mut forwarded = HeaderMap::with_capacity(8);
    // A name is `None` for a further value of the previous one: only headers not forwarded
    // (`forwardable_ttl` refused a forwarded one twice).
    for (name, value) in headers {
        let Some(name) = name else { continue };
        let keep = name == http::header::CONTENT_TYPE
            || name
                .as_str()
                .strip_prefix("ce-")
                .is_some_and(|attribute| attribute != TTL_EXTENSION);
        if keep {
            forwarded.insert(name, value);
        }
    }
    Ok(Forwarded {
        headers: forwarded,
        ttl,
    })
}

/// The checks of [`forwardable`]: `Some(ttl)` when the request can be forwarded. One pass over
/// the headers, no lookups by name (each parses the name) unless some header comes twice.
fn forwardable_ttl(headers: &HeaderMap) -> Option<Option<i64>> {
    // A name with several values: any, then which (rare, so looked up only then).
    let some_twice = headers.len() != headers.keys_len();
    let twice =
        |name: &http::HeaderName| some_twice && headers.get_all(name).iter().nth(1).is_some();
    let mut ttl = None;
    let (mut spec_version, mut id, mut source, mut ty) = (false, false, false, false);
    for (name, value) in headers {
        let attribute = match name.as_str().strip_prefix("ce-") {
            Some(attribute) => attribute,
            None if name == http::header::CONTENT_TYPE => {
                let text = value.to_str().ok()?;
                if text.starts_with("application/cloudevents") || twice(name) {
                    return None;
                }
                continue;
            }
            None => continue,
        };
        let visible = value
            .as_bytes()
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'%');
        let plain_name = !attribute.is_empty()
            && attribute
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !visible || !plain_name || matches!(attribute, "time" | "dataschema") || twice(name) {
            return None;
        }
        match attribute {
            "specversion" if value.as_bytes() == b"1.0" => spec_version = true,
            "specversion" => return None,
            "id" => id = !value.is_empty(),
            "source" => source = !value.is_empty(),
            "type" => ty = !value.is_empty(),
            TTL_EXTENSION => ttl = Some(value.to_str().ok()?.trim().parse::<i64>().ok()?),
            _ => {}
        }
    }
    (spec_version && id && source && ty).then_some(ttl)
}

fn parse_ttl(value: &ExtensionValue) -> Option<i64> {
    match value {
        ExtensionValue::Integer(i) => Some(*i),
        ExtensionValue::String(s) => s.trim().parse().ok(),
        ExtensionValue::Boolean(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary_headers(extra: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/orders"),
            ("ce-type", "order.created"),
            ("content-type", "application/json"),
        ]
        .iter()
        .chain(extra)
        {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn a_plain_binary_event_is_forwarded_with_only_its_own_headers() {
        let forwarded = forwardable(binary_headers(&[
            ("authorization", "Bearer secret"),
            ("ce-region", "eu"),
            ("ce-knativebrokerttl", "7"),
        ]))
        .expect("forwardable");
        assert_eq!(forwarded.ttl, Some(7));
        assert!(forwarded.headers.get("authorization").is_none());
        assert!(forwarded.headers.get("ce-knativebrokerttl").is_none());
        assert_eq!(forwarded.attribute("region"), Some("eu"));
        assert_eq!(forwarded.attribute("type"), Some("order.created"));
        assert_eq!(
            forwarded.attribute("datacontenttype"),
            Some("application/json")
        );
        assert_eq!(forwarded.attribute("subject"), None);
        let mut attributes = forwarded.attributes();
        attributes.sort();
        assert_eq!(
            attributes,
            [
                ("datacontenttype", "application/json"),
                ("id", "1"),
                ("region", "eu"),
                ("source", "/orders"),
                ("specversion", "1.0"),
                ("type", "order.created"),
            ]
        );
    }

    #[test]
    fn a_header_that_is_not_forwarded_may_come_twice() {
        let forwarded = forwardable(binary_headers(&[("accept", "a/b"), ("accept", "c/d")]))
            .expect("forwardable");
        assert!(forwarded.headers.get("accept").is_none());
        assert_eq!(forwarded.attribute("id"), Some("1"));
        assert_eq!(forwarded.headers.len(), 5);
    }

    #[test]
    fn events_a_decoder_would_have_to_interpret_go_through_the_decoder() {
        for extra in [
            [("ce-time", "2026-01-01T00:00:00Z")],
            [("ce-dataschema", "http://schema")],
            [("ce-subject", "caf%C3%A9")],
            [("ce-knativebrokerttl", "many")],
            [("ce-id", "2")],
            [("content-type", "text/plain")],
        ] {
            assert!(forwardable(binary_headers(&extra)).is_err(), "{extra:?}");
        }
        let mut no_id = binary_headers(&[]);
        no_id.remove("ce-id");
        assert!(forwardable(no_id).is_err());
        let mut structured = binary_headers(&[]);
        structured.insert(
            http::header::CONTENT_TYPE,
            "application/cloudevents+json".parse().unwrap(),
        );
        assert!(forwardable(structured).is_err());
    }

    fn trigger(json: serde_json::Value) -> Trigger {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_route_uses_the_resolved_subscriber_and_dead_letter_sink() {
        let t = trigger(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "t"},
            "spec": {
                "broker": "default",
                "filter": {"attributes": {"type": "a"}},
                "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "svc"}},
                "delivery": {"retry": 3, "deadLetterSink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "dls"}}}
            },
            "status": {"subscriberUri": "http://svc.default.svc.cluster.local/",
                       "deadLetterSinkUri": "http://dls.default.svc.cluster.local/"}
        }));
        let route = TriggerRoute::from_trigger(&t).unwrap();
        assert_eq!(route.subscriber, "http://svc.default.svc.cluster.local/");
        assert_eq!(route.filter, Filter::all([Filter::exact("type", "a")]));
        assert_eq!(route.delivery.retry.retry, 3);
        assert_eq!(
            route.delivery.dead_letter_sink.unwrap(),
            "http://dls.default.svc.cluster.local/"
        );
    }

    #[test]
    fn an_unresolved_subscriber_is_reported() {
        let t = trigger(serde_json::json!({
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "t"},
            "spec": {"broker": "default",
                     "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "svc"}}}
        }));
        assert!(matches!(
            TriggerRoute::from_trigger(&t),
            Err(RouteError::Unresolved(name)) if name == "t"
        ));
    }

    #[test]
    fn ttl_parses_from_strings_and_integers() {
        assert_eq!(parse_ttl(&ExtensionValue::String("12".into())), Some(12));
        assert_eq!(parse_ttl(&ExtensionValue::Integer(3)), Some(3));
        assert_eq!(parse_ttl(&ExtensionValue::String("many".into())), None);
    }
}
