//! The activator: buffers requests for a revision with no ready backend, then throttles them to
//! the revision's capacity, as Knative's activator does.
//!
//! A request names its revision with the headers the gateway sets, [`REVISION_NAMESPACE_HEADER`]
//! and [`REVISION_NAME_HEADER`]. The [`Activator`] then
//!
//! 1. counts it for the autoscaler ([`stats::ConcurrencyReporter`]): the first request to an idle
//!    revision is reported at once, then every revision's concurrency each second;
//! 2. waits, in a bounded queue, for a slot on a ready backend ([`RevisionThrottler`]: at most
//!    `containerConcurrency` × backends requests at once); after the queue timeout it answers
//!    `503 Service Unavailable` with a body saying why;
//! 3. forwards it to that backend (a queue-proxy) with `K-Proxy-Request: activator`, so the
//!    queue-proxy counts it as proxied, and honours `K-Original-Host` as Knative does.
//!
//! Backends come from [`Activator::set_backends`]: a static list ([`StaticRevision`]) or the
//! Endpoints of each revision's private Service, watched by [`cluster::watch`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use knative_serving::dataplane::activator::{Activator, ActivatorConfig, RevisionKey};
//!
//! # async fn example() -> std::io::Result<()> {
//! let (stats, _autoscaler) = tokio::sync::mpsc::unbounded_channel();
//! let activator = Activator::new(ActivatorConfig::default(), Arc::new(stats));
//! let hello = RevisionKey::new("default", "hello-00001");
//! activator.upsert_revision(&hello, 10);
//! // Requests for hello-00001 wait until a backend is ready:
//! activator.set_backends(&hello, ["127.0.0.1:8012".parse().unwrap()]);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! activator.serve(listener, std::future::pending()).await;
//! # Ok(())
//! # }
//! ```

pub mod cluster;
pub(crate) mod server;
pub mod stats;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::net::TcpListener;

pub use self::server::ResponseBody;
use self::stats::{ConcurrencyReporter, StatSink};
use crate::dataplane::proxy::{Forwarder, text_response};
use crate::dataplane::throttler::{RevisionThrottler, ThrottleError};

/// The header naming the namespace of the revision a request is for (set by the gateway).
pub const REVISION_NAMESPACE_HEADER: &str = "knative-serving-namespace";
/// The header naming the revision a request is for (set by the gateway).
pub const REVISION_NAME_HEADER: &str = "knative-serving-revision";
/// The header marking a request as proxied; the activator sets it to [`ACTIVATOR_NAME`].
pub const PROXY_HEADER: &str = "k-proxy-request";
/// The header carrying the host the client asked for, when a hop rewrote `Host`.
pub const ORIGINAL_HOST_HEADER: &str = "k-original-host";
/// The header of Knative's network probes; the activator answers `activator` probes itself.
pub const NETWORK_PROBE_HEADER: &str = "k-network-probe";
/// The activator's name, in [`PROXY_HEADER`] and in answers to probes.
pub const ACTIVATOR_NAME: &str = "activator";

/// A revision, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// The revision's namespace.
    pub namespace: String,
    /// The revision's name.
    pub name: String,
}

impl RevisionKey {
    /// The revision `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How an [`Activator`] buffers and reports.
#[derive(Clone, Debug)]
pub struct ActivatorConfig {
    /// The name the activator reports its stats under (Knative: the activator's pod name).
    pub pod_name: String,
    /// At most this many requests wait per revision; more get `503` at once (Knative: 10,000).
    pub queue_depth: usize,
    /// How long a request waits for a backend before it gets `503`.
    pub queue_timeout: Duration,
    /// How often concurrency is reported to the autoscaler (Knative: every second).
    pub report_interval: Duration,
}

impl Default for ActivatorConfig {
    fn default() -> Self {
        Self {
            pod_name: ACTIVATOR_NAME.to_owned(),
            queue_depth: 10_000,
            queue_timeout: Duration::from_secs(60),
            report_interval: Duration::from_secs(1),
        }
    }
}

/// A revision with a fixed list of backends, for running the activator without a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRevision {
    /// The revision.
    pub revision: RevisionKey,
    /// Its `containerConcurrency` (`0`: unlimited).
    pub container_concurrency: u32,
    /// Its ready backends (queue-proxies), possibly none.
    pub backends: Vec<SocketAddr>,
}

impl std::str::FromStr for StaticRevision {
    type Err = String;

    /// `namespace/name[@containerConcurrency]=host:port,host:port` (the list may be empty), e.g.
    /// `default/hello-00001@10=127.0.0.1:8012`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let format = "expected namespace/name[@containerConcurrency]=[host:port,...]";
        let (revision, backends) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: no '=': {format}"))?;
        let (revision, cc) = match revision.split_once('@') {
            Some((revision, cc)) => (
                revision,
                cc.parse::<u32>()
                    .map_err(|e| format!("{s:?}: containerConcurrency {cc:?}: {e}"))?,
            ),
            None => (revision, 0),
        };
        let (namespace, name) = revision
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
            .ok_or_else(|| {
                format!("{s:?}: revision {revision:?} is not namespace/name: {format}")
            })?;
        let backends = backends
            .split(',')
            .filter(|b| !b.is_empty())
            .map(|b| {
                b.parse::<SocketAddr>()
                    .map_err(|e| format!("{s:?}: backend {b:?} is not host:port: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            revision: RevisionKey::new(namespace, name),
            container_concurrency: cc,
            backends,
        })
    }
}

/// The activator, ready to serve: an HTTP handler plus the per-revision throttlers it feeds.
#[derive(Debug)]
pub struct Activator {
    config: ActivatorConfig,
    revisions: RwLock<HashMap<RevisionKey, Arc<RevisionThrottler>>>,
    reporter: Arc<ConcurrencyReporter>,
    forwarder: Forwarder,
}

impl Activator {
    /// An activator knowing no revision yet, reporting to `stats`.
    pub fn new(config: ActivatorConfig, stats: Arc<dyn StatSink>) -> Arc<Self> {
        Self::with_forwarder(config, stats, Forwarder::new())
    }

    /// Like [`new`](Self::new), forwarding with `forwarder` (to share its connection pools).
    pub fn with_forwarder(
        config: ActivatorConfig,
        stats: Arc<dyn StatSink>,
        forwarder: Forwarder,
    ) -> Arc<Self> {
        Arc::new(Self {
            reporter: Arc::new(ConcurrencyReporter::new(config.pod_name.clone(), stats)),
            config,
            revisions: RwLock::new(HashMap::new()),
            forwarder,
        })
    }

    /// Makes `revision` known (requests for unknown revisions get `404`) or updates its
    /// `containerConcurrency`.
    pub fn upsert_revision(&self, revision: &RevisionKey, container_concurrency: u32) {
        if let Some(throttler) = self.throttler(revision) {
            throttler.set_container_concurrency(container_concurrency);
            return;
        }
        let mut revisions = self.revisions.write().unwrap_or_else(|p| p.into_inner());
        revisions
            .entry(revision.clone())
            .or_insert_with(|| {
                RevisionThrottler::new(container_concurrency, self.config.queue_depth)
            })
            .set_container_concurrency(container_concurrency);
    }

    /// Forgets `revision`; its waiting requests time out.
    pub fn remove_revision(&self, revision: &RevisionKey) {
        let mut revisions = self.revisions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(throttler) = revisions.remove(revision) {
            throttler.update_backends([]);
        }
    }

    /// Replaces the ready backends of `revision` (making it known, with concurrency 0, if it
    /// was not); waiting requests go to the new ones at once.
    pub fn set_backends(
        &self,
        revision: &RevisionKey,
        backends: impl IntoIterator<Item = SocketAddr>,
    ) {
        let throttler = match self.throttler(revision) {
            Some(throttler) => throttler,
            None => {
                let mut revisions = self.revisions.write().unwrap_or_else(|p| p.into_inner());
                Arc::clone(
                    revisions
                        .entry(revision.clone())
                        .or_insert_with(|| RevisionThrottler::new(0, self.config.queue_depth)),
                )
            }
        };
        throttler.update_backends(backends);
    }

    /// Adds a static revision: [`upsert_revision`](Self::upsert_revision) then
    /// [`set_backends`](Self::set_backends).
    pub fn add_static(&self, revision: &StaticRevision) {
        self.upsert_revision(&revision.revision, revision.container_concurrency);
        self.set_backends(&revision.revision, revision.backends.iter().copied());
    }

    /// The throttler of `revision`, to observe its queue and backends.
    pub fn throttler(&self, revision: &RevisionKey) -> Option<Arc<RevisionThrottler>> {
        self.revisions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(revision)
            .cloned()
    }

    /// The reporter of request counts, to run or observe.
    pub fn reporter(&self) -> &Arc<ConcurrencyReporter> {
        &self.reporter
    }

    /// Serves HTTP/1.1 and h2c on `listener` and reports stats every
    /// [`report_interval`](ActivatorConfig::report_interval), until `shutdown` resolves; then
    /// lets in-flight requests finish.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let reporting = tokio::spawn(Arc::clone(&self.reporter).run(self.config.report_interval));
        server::serve(listener, self, shutdown).await;
        reporting.abort();
    }

    /// Answers one request: probes, then buffering, throttling and forwarding.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<ResponseBody> {
        if let Some(probe) = req.headers().get(NETWORK_PROBE_HEADER) {
            if probe == ACTIVATOR_NAME {
                return text(StatusCode::OK, ACTIVATOR_NAME);
            }
        } else if is_kube_probe(&req) {
            return text(StatusCode::OK, "ok");
        }
        let revision = match revision_of(&req) {
            Ok(revision) => revision,
            Err(message) => return text(StatusCode::BAD_REQUEST, message),
        };
        let Some(throttler) = self.throttler(&revision) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("revision {revision} is unknown to the activator"),
            );
        };

        self.reporter.request_in(&revision, Instant::now());
        let counted = Counted {
            reporter: Arc::clone(&self.reporter),
            revision,
        };
        let permit = match tokio::time::timeout(self.config.queue_timeout, throttler.acquire())
            .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(ThrottleError::QueueFull { depth })) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "activator: revision {} is overloaded: {depth} requests already wait for a backend",
                        counted.revision
                    ),
                );
            }
            Err(_) => {
                let backends = throttler.backends().len();
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "activator: revision {} had no backend with room for this request within {:?} ({backends} ready backends)",
                        counted.revision, self.config.queue_timeout
                    ),
                );
            }
        };

        rewrite_host(&mut req);
        req.headers_mut()
            .insert(PROXY_HEADER, HeaderValue::from_static(ACTIVATOR_NAME));
        match self.forwarder.forward(req, permit.backend()).await {
            // The slot and the count are held until the response body is done (or dropped).
            Ok(response) => response.map(move |body| {
                body.map_frame(move |frame| {
                    let _held = (&permit, &counted);
                    frame
                })
                .map_err(Into::into)
                .boxed_unsync()
            }),
            Err(err) => {
                tracing::debug!(%err, revision = %counted.revision, "forwarding failed");
                err.into_response()
                    .map(|b| b.map_err(|never| match never {}).boxed_unsync())
            }
        }
    }
}

impl server::Handler for Activator {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        Activator::handle(self, req)
    }
}

/// Counts a request out of the reporter when dropped.
struct Counted {
    reporter: Arc<ConcurrencyReporter>,
    revision: RevisionKey,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.reporter.request_out(&self.revision, Instant::now());
    }
}

fn revision_of<B>(req: &Request<B>) -> Result<RevisionKey, String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    match (
        header(REVISION_NAMESPACE_HEADER),
        header(REVISION_NAME_HEADER),
    ) {
        (Some(namespace), Some(name)) => Ok(RevisionKey::new(namespace, name)),
        _ => Err(format!(
            "activator: the request must name its revision with the {} and {} headers",
            "Knative-Serving-Namespace", "Knative-Serving-Revision"
        )),
    }
}

fn is_kube_probe<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|agent| agent.starts_with("kube-probe/"))
}

/// Knative's `RewriteHostIn`: a `K-Original-Host` header becomes the request's host.
fn rewrite_host<B>(req: &mut Request<B>) {
    if let Some(host) = req.headers_mut().remove(ORIGINAL_HOST_HEADER) {
        req.headers_mut().insert(header::HOST, host);
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<ResponseBody> {
    text_response(status, message).map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_revision_parses_with_concurrency_and_backends() {
        let parsed: StaticRevision = "default/hello-00001@10=127.0.0.1:8012,127.0.0.1:8013"
            .parse()
            .unwrap();
        assert_eq!(parsed.revision, RevisionKey::new("default", "hello-00001"));
        assert_eq!(parsed.container_concurrency, 10);
        assert_eq!(parsed.backends.len(), 2);
    }

    #[test]
    fn a_static_revision_may_start_without_backends() {
        let parsed: StaticRevision = "default/hello-00001=".parse().unwrap();
        assert_eq!(parsed.container_concurrency, 0);
        assert!(parsed.backends.is_empty());
    }

    #[test]
    fn a_malformed_static_revision_says_what_is_wrong() {
        let err = "hello=127.0.0.1:1".parse::<StaticRevision>().unwrap_err();
        assert!(err.contains("is not namespace/name"), "{err}");
        let err = "a/b=nowhere".parse::<StaticRevision>().unwrap_err();
        assert!(
            err.contains("backend \"nowhere\" is not host:port"),
            "{err}"
        );
        let err = "a/b@x=".parse::<StaticRevision>().unwrap_err();
        assert!(err.contains("containerConcurrency \"x\""), "{err}");
    }

    #[test]
    fn the_original_host_header_replaces_host() {
        let mut req = Request::builder()
            .header(header::HOST, "activator")
            .header(ORIGINAL_HOST_HEADER, "hello.default.example.com")
            .body(())
            .unwrap();
        rewrite_host(&mut req);
        assert_eq!(req.headers()[header::HOST], "hello.default.example.com");
        assert!(!req.headers().contains_key(ORIGINAL_HOST_HEADER));
    }
}
