//! The in-memory channel dispatcher of a cluster (Knative's `imc-dispatcher`): one HTTP server
//! for every InMemoryChannel, each channel's subscriptions read from its `spec.subscribers` as
//! the Subscription reconciler writes them, kept current by a watch on the API server.
//!
//! A request reaches channel `namespace/name` by its path, `/<namespace>/<name>` (the address
//! the InMemoryChannel reconciler gives channels under a dispatcher URL), or by its host,
//! `<name>-kn-channel.<namespace>.svc.cluster.local` (the address it gives them in a cluster);
//! an unknown channel is a 404.
//!
//! ```no_run
//! use knative_eventing::channel::imc_dispatcher::ImcDispatcher;
//!
//! # async fn run(client: kube::Client) -> std::io::Result<()> {
//! let dispatcher = ImcDispatcher::new(10_000);
//! tokio::spawn({
//!     let dispatcher = dispatcher.clone();
//!     async move { dispatcher.watch(client, None).await }
//! });
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! dispatcher.serve(listener, std::future::pending()).await
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use super::{InMemoryChannel, SubscriptionError, SubscriptionRoute};
use crate::apis::InMemoryChannel as InMemoryChannelResource;
use crate::delivery::{DeliveryPolicy, Dispatcher, server};

/// A channel's namespace and name.
pub type ChannelKey = (String, String);

/// Every InMemoryChannel's data plane behind one server. Cheap to clone; clones share channels.
#[derive(Clone, Debug)]
pub struct ImcDispatcher {
    channels: Arc<watch::Sender<Arc<HashMap<ChannelKey, InMemoryChannel>>>>,
    dispatcher: Dispatcher,
    max_in_flight: usize,
}

impl ImcDispatcher {
    /// A dispatcher with no channels; each channel has at most `max_in_flight` deliveries at
    /// once. All channels share one connection pool.
    pub fn new(max_in_flight: usize) -> Self {
        ImcDispatcher {
            channels: Arc::new(watch::Sender::new(Arc::new(HashMap::new()))),
            dispatcher: Dispatcher::new(),
            max_in_flight,
        }
    }

    /// Sets the subscriptions of channel `namespace/name`, adding the channel if it is new.
    pub fn set_channel(&self, namespace: &str, name: &str, routes: Vec<SubscriptionRoute>) {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(channel) = self.channels.borrow().get(&key) {
            channel.set_subscriptions(routes);
            return;
        }
        self.channels.send_modify(|channels| {
            Arc::make_mut(channels)
                .entry(key)
                .or_insert_with(|| {
                    InMemoryChannel::with_dispatcher(self.max_in_flight, self.dispatcher.clone())
                })
                .set_subscriptions(routes);
        });
    }

    /// Removes channel `namespace/name`; events sent to it are 404s from then on.
    pub fn remove_channel(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        if self.channels.borrow().contains_key(&key) {
            self.channels.send_modify(|channels| {
                Arc::make_mut(channels).remove(&key);
            });
        }
    }

    /// Takes channel `imc`'s subscriptions from its `spec.subscribers`; a subscriber without a
    /// delivery spec of its own gets the channel's (`spec.delivery`, with its dead-letter sink
    /// as resolved into `status.deadLetterSinkUri`). An invalid entry leaves the channel as it
    /// was and is returned.
    pub fn sync(&self, imc: &InMemoryChannelResource) -> Result<(), SubscriptionError> {
        let channelable = &imc.spec.channelable;
        let dead_letter = imc
            .status
            .as_ref()
            .and_then(|s| s.channelable.delivery.dead_letter_sink_uri.as_deref())
            .and_then(|u| u.parse().ok());
        let channel_policy = match &channelable.delivery {
            None => DeliveryPolicy::default(),
            Some(spec) => DeliveryPolicy::from_spec(spec, dead_letter)
                .map_err(|e| SubscriptionError::Delivery(imc.name_any(), e))?,
        };
        let routes = channelable
            .subscribers
            .iter()
            .map(|s| {
                let mut route = SubscriptionRoute::try_from(s)?;
                if s.delivery.is_none() {
                    route.delivery = channel_policy.clone();
                }
                Ok(route)
            })
            .collect::<Result<Vec<_>, SubscriptionError>>()?;
        self.set_channel(
            &imc.namespace().unwrap_or_default(),
            &imc.name_any(),
            routes,
        );
        Ok(())
    }

    /// The channel `namespace/name`, if the dispatcher serves it.
    pub fn channel(&self, namespace: &str, name: &str) -> Option<InMemoryChannel> {
        self.channels
            .borrow()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Keeps the channels in step with the InMemoryChannels of `namespace` (every namespace
    /// when `None`) on the API server, until the watch stream ends. Watch errors are logged
    /// and the watch resumes, as kube's watcher does.
    pub async fn watch(&self, client: Client, namespace: Option<String>) {
        let api: Api<InMemoryChannelResource> = match &namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let mut events = watcher(api, watcher::Config::default()).boxed();
        let mut listed: HashSet<ChannelKey> = HashSet::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(imc)) => {
                    listed.insert(key(&imc));
                    self.sync_logged(&imc);
                }
                Ok(watcher::Event::InitDone) => {
                    // Channels deleted while the watch was down.
                    let gone: Vec<ChannelKey> = self
                        .channels
                        .borrow()
                        .keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect();
                    for (namespace, name) in gone {
                        self.remove_channel(&namespace, &name);
                    }
                }
                Ok(watcher::Event::Apply(imc)) => self.sync_logged(&imc),
                Ok(watcher::Event::Delete(imc)) => {
                    let (namespace, name) = key(&imc);
                    self.remove_channel(&namespace, &name);
                }
                Err(e) => tracing::warn!(error = %e, "InMemoryChannel watch error"),
            }
        }
    }

    fn sync_logged(&self, imc: &InMemoryChannelResource) {
        if let Err(e) = self.sync(imc) {
            tracing::error!(channel = %imc.name_any(), error = %e, "channel not updated");
        }
    }

    /// The HTTP ingress of every channel: routed by path or host (see the module), then as
    /// [`InMemoryChannel::handle`].
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some((namespace, name)) = route(&request) else {
            return server::text(
                StatusCode::NOT_FOUND,
                "no channel: POST to /<namespace>/<name> or to <name>-kn-channel.<namespace>.svc",
            );
        };
        match self.channel(&namespace, &name) {
            Some(channel) => channel.handle(request).await,
            None => server::text(
                StatusCode::NOT_FOUND,
                format!("no InMemoryChannel {namespace}/{name}"),
            ),
        }
    }

    /// Serves every channel on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let dispatcher = self.clone();
        server::serve(
            listener,
            move |request| {
                let dispatcher = dispatcher.clone();
                async move { dispatcher.handle(request).await }
            },
            shutdown,
        )
        .await
    }
}

fn key(imc: &InMemoryChannelResource) -> ChannelKey {
    (imc.namespace().unwrap_or_default(), imc.name_any())
}

/// The channel a request is for: `/<namespace>/<name>`, else the host
/// `<name>-kn-channel.<namespace>...`.
fn route<B>(request: &Request<B>) -> Option<ChannelKey> {
    let segments: Vec<&str> = request
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if let [namespace, name] = segments[..] {
        return Some((namespace.to_owned(), name.to_owned()));
    }
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())?;
    let host = host.split(':').next().unwrap_or(host);
    let mut labels = host.split('.');
    let name = labels.next()?.strip_suffix("-kn-channel")?;
    let namespace = labels.next().filter(|ns| !ns.is_empty())?;
    Some((namespace.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::post(uri);
        if let Some(host) = host {
            builder = builder.header(http::header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_channel_is_found_by_its_path() {
        assert_eq!(
            route(&request("/demo/orders", Some("127.0.0.1:8080"))),
            Some(("demo".into(), "orders".into()))
        );
    }

    #[test]
    fn a_channel_is_found_by_its_cluster_host() {
        assert_eq!(
            route(&request(
                "/",
                Some("orders-kn-channel.demo.svc.cluster.local:80")
            )),
            Some(("demo".into(), "orders".into()))
        );
    }

    #[test]
    fn any_other_request_names_no_channel() {
        assert_eq!(route(&request("/", Some("example.com"))), None);
        assert_eq!(route(&request("/a/b/c", Some("x-kn-channel"))), None);
    }
}
