//! The queue-proxy: the sidecar in front of every user container, a drop-in for Knative's.
//!
//! It listens where Knative's does and speaks the same protocols:
//!
//! | port | serves |
//! |------|--------|
//! | 8012 | user traffic, HTTP/1 and h2c, forwarded to `127.0.0.1:USER_PORT` |
//! | 8022 | admin: `/drain` starts draining, `/wait-for-drain` also waits until drained |
//! | 9090 | autoscaler stats at `/metrics`: Knative's protobuf `Stat` when `Accept: application/protobuf`, Prometheus text otherwise |
//! | 9091 | user metrics (`revision_request_count`, `revision_request_latencies`, `revision_queue_depth`) |
//!
//! A request on 8012 passes, outermost first: the [probe layer](super::probe) (answers
//! `K-Network-Probe: queue` and kubelet probes, tells the drainer about traffic), the
//! [timeouts](super::timeout) of the Revision, the [stats](super::stats) the autoscaler scrapes,
//! the [breaker](super::breaker) (`CONTAINER_CONCURRENCY` slots and a queue of ten times as
//! many), and the [forwarder](super::proxy). When the shutdown signal comes, the proxy
//! [drains](super::drain): probes fail, traffic is still served until none has arrived for the
//! quiet period, then the listeners close and the requests in flight finish.
//!
//! Plain HTTP/1.1 requests (origin-form, one `Host`, no body or a `Content-Length` one that
//! has arrived, no hop-by-hop headers, not probes) take a fast path with the same rules: they
//! are forwarded as bytes, parsed with `httparse`, over pooled connections, and their responses
//! relayed with their framing, without hyper's request and response values. A connection leaves
//! it for hyper at its first other request (HTTP/1.0, h2c, upgrades, chunked uploads, probes, bad
//! requests) and stays there. [`QueueConfig::http1_fast_path`] turns it off.
//!
//! ```no_run
//! use knative_serving::dataplane::queue::{QueueConfig, QueueProxy};
//!
//! # async fn example() -> std::io::Result<()> {
//! let mut config = QueueConfig::new(8080);
//! config.container_concurrency = 10;
//! let proxy = QueueProxy::new(config);
//! let listeners = proxy.bind().await?;
//! proxy.serve(listeners, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod config;
mod fast;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceBuilder, ServiceExt};

pub use config::{
    ConfigError, DEFAULT_ADMIN_PORT, DEFAULT_DRAIN_QUIET_PERIOD, DEFAULT_METRICS_PORT,
    DEFAULT_QUEUE_SERVING_PORT, DEFAULT_REVISION_TIMEOUT, DEFAULT_USER_METRICS_PORT, QueueConfig,
};

use super::body::{ResponseBody, boxed, text_response};
use super::breaker::{Breaker, BreakerLayer};
use super::drain::Drainer;
use super::probe::{ProbeLayer, Readiness};
use super::proxy::{Forwarder, ForwarderOptions, UpstreamProtocol};
use super::stats::{PrometheusLabels, SharedStats, StatsLayer, StatsReport, StatsReporter};
use super::timeout::TimeoutLayer;
use crate::autoscaler::wire::PROTOBUF_CONTENT_TYPE;

/// The admin path that starts draining and answers at once.
pub const DRAIN_PATH: &str = "/drain";
/// The admin path that starts draining and answers once drained (Knative's preStop hook).
pub const WAIT_FOR_DRAIN_PATH: &str = "/wait-for-drain";

/// The queue-proxy. Build it from a [`QueueConfig`], [`bind`](Self::bind) its ports (or bring
/// your own listeners) and [`serve`](Self::serve) until a shutdown signal.
#[derive(Debug)]
pub struct QueueProxy {
    config: Arc<QueueConfig>,
    stats: SharedStats,
    reporter: StatsReporter,
    last_report: Arc<Mutex<StatsReport>>,
    drainer: Drainer,
    readiness: Readiness,
    forwarder: Forwarder,
    breaker: BreakerLayer,
    terminating: Arc<AtomicBool>,
}

/// The listeners a [`QueueProxy`] serves. Only `main` is required.
#[derive(Debug)]
pub struct QueueListeners {
    /// User traffic (8012).
    pub main: TcpListener,
    /// Admin (8022).
    pub admin: Option<TcpListener>,
    /// Autoscaler stats (9090).
    pub metrics: Option<TcpListener>,
    /// User metrics (9091).
    pub user_metrics: Option<TcpListener>,
}

impl QueueListeners {
    /// The addresses of the listeners, in the order main, admin, metrics, user metrics.
    pub fn local_addrs(&self) -> std::io::Result<[Option<SocketAddr>; 4]> {
        let addr = |l: &Option<TcpListener>| l.as_ref().map(TcpListener::local_addr).transpose();
        Ok([
            Some(self.main.local_addr()?),
            addr(&self.admin)?,
            addr(&self.metrics)?,
            addr(&self.user_metrics)?,
        ])
    }
}

impl QueueProxy {
    /// A queue-proxy configured by `config`.
    pub fn new(config: QueueConfig) -> Self {
        let started = Instant::now();
        let forwarder = Forwarder::with_options(ForwarderOptions {
            protocol: config.upstream_protocol,
            ..ForwarderOptions::default()
        });
        let reporter = StatsReporter::new(
            PrometheusLabels {
                namespace: config.namespace.clone(),
                configuration: config.configuration.clone(),
                revision: config.revision.clone(),
                pod: config.pod.clone(),
            },
            started,
        );
        Self {
            stats: SharedStats::new(started),
            reporter,
            last_report: Arc::new(Mutex::new(StatsReport::default())),
            drainer: Drainer::new(config.drain_quiet_period),
            readiness: match config.readiness_first_retry {
                Some(first) => Readiness::with_first_retry(config.readiness_probes.clone(), first),
                None => Readiness::new(config.readiness_probes.clone()),
            },
            forwarder,
            breaker: BreakerLayer::for_container_concurrency(config.container_concurrency),
            terminating: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The drainer: [`Drainer::drain`] starts draining without a shutdown signal.
    pub fn drainer(&self) -> &Drainer {
        &self.drainer
    }

    /// The live request statistics.
    pub fn stats(&self) -> &SharedStats {
        &self.stats
    }

    /// The breaker, unless the container concurrency is unlimited.
    pub fn breaker(&self) -> Option<&Breaker> {
        self.breaker.breaker()
    }

    /// Binds the configured ports on the configured address.
    pub async fn bind(&self) -> std::io::Result<QueueListeners> {
        let config = &self.config;
        let bind = |port: u16| TcpListener::bind(SocketAddr::new(config.listen_address, port));
        Ok(QueueListeners {
            main: bind(config.queue_serving_port).await?,
            admin: Some(bind(config.admin_port).await?),
            metrics: Some(bind(config.metrics_port).await?),
            user_metrics: Some(bind(config.user_metrics_port).await?),
        })
    }

    /// Serves `listeners` until `shutdown` completes, then drains: probes fail while requests
    /// are still served until none has arrived for the quiet period; then the listeners close
    /// and the requests in flight finish (bounded by the revision timeout).
    pub async fn serve(
        self,
        listeners: QueueListeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let builder = self.http_builder();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        // Requests cannot outlive the revision timeout; the connections get a second more.
        let in_flight_limit = self
            .config
            .timeouts
            .total
            .unwrap_or(DEFAULT_REVISION_TIMEOUT)
            + Duration::from_secs(1);

        let main = self.main_service();
        let fast = self.fast_path();
        let reaping = fast.clone().map(|fast| tokio::spawn(reap_idle(fast)));
        tasks.spawn(accept_loop(
            listeners.main,
            builder.clone(),
            stop_rx.clone(),
            in_flight_limit,
            fast,
            move |req| main.clone().oneshot(req),
        ));
        if let Some(listener) = listeners.admin {
            let admin = Admin {
                drainer: self.drainer.clone(),
                terminating: Arc::clone(&self.terminating),
            };
            tasks.spawn(accept_loop(
                listener,
                builder.clone(),
                stop_rx.clone(),
                in_flight_limit,
                None,
                move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                },
            ));
        }
        if let Some(listener) = listeners.metrics {
            let reporter = self.reporter.clone();
            let last_report = Arc::clone(&self.last_report);
            let period = self.config.stats_period;
            tasks.spawn(accept_loop(
                listener,
                builder.clone(),
                stop_rx.clone(),
                in_flight_limit,
                None,
                move |req| {
                    let report = *last_report.lock();
                    std::future::ready(Ok::<_, Infallible>(stats_response(
                        &req, &reporter, &report, period,
                    )))
                },
            ));
        }
        if let Some(listener) = listeners.user_metrics {
            let registry = Arc::new(self.user_registry());
            tasks.spawn(accept_loop(
                listener,
                builder.clone(),
                stop_rx.clone(),
                in_flight_limit,
                None,
                move |req| {
                    std::future::ready(Ok::<_, Infallible>(user_metrics_response(&req, &registry)))
                },
            ));
        }
        let reporting = tokio::spawn(report_stats(
            self.stats.clone(),
            Arc::clone(&self.last_report),
            self.config.stats_period,
        ));

        tokio::select! {
            () = shutdown => {}
            Some(result) = tasks.join_next() => {
                // An accept loop only ends early on a listener error.
                reporting.abort();
                if let Some(reaping) = &reaping {
                    reaping.abort();
                }
                return result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
        }
        self.terminating.store(true, Ordering::Release);
        tracing::info!(
            quiet_period = ?self.drainer.quiet_period(),
            "shutting down: draining"
        );
        self.drainer.drain().await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        reporting.abort();
        if let Some(reaping) = &reaping {
            reaping.abort();
        }
        Ok(())
    }

    /// The service behind the user-traffic port: probes, timeouts, stats, breaker, forwarder.
    fn main_service(
        &self,
    ) -> impl Service<
        Request<Incoming>,
        Response = Response<ResponseBody>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + 'static {
        let forwarder = self.forwarder.clone();
        let target = SocketAddr::new(self.config.user_address, self.config.user_port);
        let forward = tower::service_fn(move |req: Request<Incoming>| {
            let forwarder = forwarder.clone();
            async move {
                Ok::<_, Infallible>(match forwarder.forward(req, target).await {
                    Ok(response) => response.map(boxed),
                    Err(error) => {
                        tracing::debug!(%error, "forwarding to the user container failed");
                        error.into_response().map(boxed)
                    }
                })
            }
        });
        ServiceBuilder::new()
            .layer(ProbeLayer::new(
                self.readiness.clone(),
                self.drainer.clone(),
            ))
            .layer(TimeoutLayer::new(self.config.timeouts))
            .layer(StatsLayer::new(self.stats.clone()))
            .layer(self.breaker.clone())
            .service(forward)
    }

    /// The fast path for plain HTTP/1.1 requests ([`fast`]), unless turned off or the user
    /// container speaks only h2c.
    fn fast_path(&self) -> Option<Arc<fast::FastPath>> {
        let config = &self.config;
        if !config.http1_fast_path || config.upstream_protocol == UpstreamProtocol::H2c {
            return None;
        }
        let options = ForwarderOptions::default();
        Some(Arc::new(fast::FastPath {
            stats: self.stats.clone(),
            breaker: self.breaker.breaker().cloned(),
            drainer: self.drainer.clone(),
            timeouts: config.timeouts,
            target: SocketAddr::new(config.user_address, config.user_port),
            connect_timeout: options.connect_timeout,
            header_read_timeout: config.header_read_timeout,
            max_head: self.max_head_bytes(),
            pool: fast::Pool::new(options.pool_idle_timeout, options.pool_max_idle_per_host),
        }))
    }

    /// How much of a request head is read before it is too large (`431`).
    fn max_head_bytes(&self) -> usize {
        self.config.max_header_bytes.max(8192)
    }

    fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // One `write` of head and body copied together rather than a `writev` of both: 2
            // points more of direct throughput at c=16 (docs/performance.md); each body chunk
            // is copied, and no more is taken while the buffer holds `max_buf_size`.
            .writev(false)
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.max_head_bytes());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.config.max_header_bytes).unwrap_or(u32::MAX));
        builder
    }

    fn user_registry(&self) -> Registry {
        let labels = [
            ("namespace_name", &self.config.namespace),
            ("configuration_name", &self.config.configuration),
            ("revision_name", &self.config.revision),
            ("pod_name", &self.config.pod),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.clone().into()));
        let mut registry = Registry::with_labels(labels);
        self.stats.metrics().register(&mut registry);
        registry
    }
}

/// Reports the stats every `period`, keeping the last report for the scrapers.
async fn report_stats(stats: SharedStats, last: Arc<Mutex<StatsReport>>, period: Duration) {
    // A zero period would be a busy loop (and a panic in `interval`).
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let report = stats.report(Instant::now());
        *last.lock() = report;
    }
}

/// Closes the fast path's idle backend connections once they time out (a pool only looks at
/// them when it hands one out).
async fn reap_idle(fast: Arc<fast::FastPath>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(10));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        fast.pool.reap();
    }
}

/// Accepts connections on `listener` and serves each (on the `fast` path while its requests are
/// plain, then with hyper and `handler`) until `stop` turns true; then closes the listener and
/// lets the connections finish their requests (for at most `in_flight_limit`).
async fn accept_loop<H, F>(
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
    in_flight_limit: Duration,
    fast: Option<Arc<fast::FastPath>>,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(builder);
    // Each connection task holds a receiver; all are gone when every connection has ended.
    let (connections, _) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = async { let _ = stop.wait_for(|stop| *stop).await; } => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_transient(&error) => {
                tracing::warn!(%error, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let _ = stream.set_nodelay(true);
        let (fast, stop, handler, builder) = (
            fast.clone(),
            stop.clone(),
            handler.clone(),
            Arc::clone(&builder),
        );
        let (watcher, connection) = (graceful.watcher(), connections.subscribe());
        tokio::spawn(async move {
            let io = match fast {
                Some(fast) => match fast.serve(stream, stop).await {
                    Some(handoff) => handoff,
                    None => return,
                },
                None => fast::Handoff::new(stream),
            };
            let service = hyper::service::service_fn(handler);
            let served = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            if let Err(error) = watcher.watch(served).await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(connection);
        });
    }
    drop(listener);
    let finished = async {
        tokio::join!(graceful.shutdown(), connections.closed());
    };
    if tokio::time::timeout(in_flight_limit, finished)
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the revision timeout; stopping anyway");
    }
    Ok(())
}

/// Accept errors that concern one connection (or a momentary lack of file descriptors), not the
/// listener.
fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) || error.raw_os_error() == Some(24) // EMFILE
        || error.raw_os_error() == Some(23) // ENFILE
}

#[derive(Clone, Debug)]
struct Admin {
    drainer: Drainer,
    terminating: Arc<AtomicBool>,
}

impl Admin {
    async fn handle(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        let wait = match req.uri().path() {
            DRAIN_PATH => false,
            WAIT_FOR_DRAIN_PATH => true,
            path => {
                return text_response(StatusCode::NOT_FOUND, &format!("no admin path {path}"));
            }
        };
        if req.method() != Method::GET && req.method() != Method::POST {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
        }
        // As in Knative: a drain asked for by the user container with no SIGTERM following
        // within a second means its liveness probe is restarting it; serve again.
        let (drainer, terminating) = (self.drainer.clone(), Arc::clone(&self.terminating));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !terminating.load(Ordering::Acquire) {
                drainer.reset();
            }
        });
        if wait {
            self.drainer.drain().await;
            text_response(StatusCode::OK, "drained")
        } else {
            let drainer = self.drainer.clone();
            tokio::spawn(async move { drainer.drain().await });
            text_response(StatusCode::OK, "draining")
        }
    }
}

fn stats_response(
    req: &Request<Incoming>,
    reporter: &StatsReporter,
    report: &StatsReport,
    period: Duration,
) -> Response<ResponseBody> {
    if req.uri().path() != "/metrics" {
        return text_response(StatusCode::NOT_FOUND, "stats are served at /metrics");
    }
    let now = Instant::now();
    let wants_protobuf = req
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(PROTOBUF_CONTENT_TYPE));
    let (body, content_type) = if wants_protobuf {
        (
            reporter.wire_stat(report, now).encode_to_vec(),
            PROTOBUF_CONTENT_TYPE,
        )
    } else {
        (
            reporter.prometheus_text(report, period, now).into_bytes(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut response = Response::new(boxed(Full::new(Bytes::from(body))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn user_metrics_response(req: &Request<Incoming>, registry: &Registry) -> Response<ResponseBody> {
    if req.uri().path() != "/metrics" {
        return text_response(StatusCode::NOT_FOUND, "metrics are served at /metrics");
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode metrics: {error}"),
        );
    }
    let mut response = Response::new(boxed(Full::new(Bytes::from(text))));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
