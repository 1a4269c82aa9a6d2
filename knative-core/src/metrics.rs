//! Prometheus metrics of the reconcilers, and the HTTP endpoint that exposes them.
//!
//! [`Metrics`] holds one [`Registry`] with the families Knative's controllers report
//! (knative.dev/pkg `controller/stats_reporter.go`), so existing dashboards find familiar names:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `reconcile_count` (exposed as `reconcile_count_total`) | counter | `reconciler`, `success` |
//! | `reconcile_latency_seconds` | histogram | `reconciler`, `success` |
//! | `reconcile_in_flight` | gauge | `reconciler` |
//! | `work_queue_depth` | gauge | `reconciler` |
//!
//! Two deliberate departures from Knative: latency is in seconds (Prometheus' base unit, so the
//! family carries the `_seconds` suffix) where Knative reported milliseconds, and
//! `reconcile_in_flight` is ours. Knative's Prometheus exporter prefixed every name with the
//! component (`controller_reconcile_count`); [`Metrics::with_prefix`] does the same.
//!
//! A family appears in the exposition once it has its first sample (prometheus-client leaves
//! empty families out).
//!
//! Users register their own metrics in the same registry with [`Metrics::register`], and
//! [`serve`] exposes everything at `GET /metrics` in the OpenMetrics text format.
//!
//! ```
//! use knative_core::metrics::Metrics;
//! use std::time::Duration;
//!
//! let metrics = Metrics::new();
//! metrics.reconcile_started("route");
//! metrics.reconcile_finished("route", true, Duration::from_millis(12));
//! metrics.set_work_queue_depth("route", 3);
//! let text = metrics.encode();
//! assert!(text.contains(r#"reconcile_count_total{reconciler="route",success="true"} 1"#));
//! ```

use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The `Content-Type` of the exposition served at `/metrics`.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the `reconcile_latency_seconds` buckets. They cover Knative's own
/// bounds (10 ms, 100 ms, 1 s, 10 s, 30 s, 60 s) with finer steps where reconciles usually fall.
pub const RECONCILE_LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Reconciler metrics in one Prometheus registry. Cloning is cheap and every clone records into
/// (and encodes) the same registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    // A std mutex is fine here: it is only ever held for a registration or one synchronous
    // encode, never across an await. Recording does not touch it (families are shared handles).
    registry: Arc<Mutex<Registry>>,
    reconcile_count: Family<ReconcileLabels, Counter>,
    reconcile_latency: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    reconcile_in_flight: Family<ReconcilerLabels, Gauge>,
    work_queue_depth: Family<ReconcilerLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    reconciler: String,
    success: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcilerLabels {
    reconciler: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics in a fresh registry, with Knative's family names unprefixed.
    #[must_use]
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// Metrics in a fresh registry whose every name (ours and the user's) starts with
    /// `<prefix>_`, as Knative's exporter did (`controller` gives `controller_reconcile_count`).
    #[must_use]
    pub fn with_prefix(prefix: &str) -> Self {
        Self::with_registry(Registry::with_prefix(prefix))
    }

    fn with_registry(mut registry: Registry) -> Self {
        let reconcile_count = Family::<ReconcileLabels, Counter>::default();
        let reconcile_latency =
            Family::<ReconcileLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let reconcile_in_flight = Family::<ReconcilerLabels, Gauge>::default();
        let work_queue_depth = Family::<ReconcilerLabels, Gauge>::default();
        registry.register(
            "reconcile_count",
            "Number of reconcile operations, by reconciler and outcome",
            reconcile_count.clone(),
        );
        registry.register_with_unit(
            "reconcile_latency",
            "Latency of reconcile operations, by reconciler and outcome",
            Unit::Seconds,
            reconcile_latency.clone(),
        );
        registry.register(
            "reconcile_in_flight",
            "Number of reconcile operations currently running",
            reconcile_in_flight.clone(),
        );
        registry.register(
            "work_queue_depth",
            "Depth of the work queue",
            work_queue_depth.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            reconcile_count,
            reconcile_latency,
            reconcile_in_flight,
            work_queue_depth,
        }
    }

    /// Records that `reconciler` started a reconcile (`reconcile_in_flight` goes up). Pair every
    /// call with one [`reconcile_finished`](Self::reconcile_finished).
    pub fn reconcile_started(&self, reconciler: &str) {
        self.reconcile_in_flight
            .get_or_create(&reconciler_labels(reconciler))
            .inc();
    }

    /// Records that a reconcile of `reconciler` ended, whether it succeeded, and how long it took
    /// (`reconcile_in_flight` goes down, never below zero).
    pub fn reconcile_finished(&self, reconciler: &str, success: bool, elapsed: Duration) {
        let labels = ReconcileLabels {
            reconciler: reconciler.to_owned(),
            success,
        };
        self.reconcile_count.get_or_create(&labels).inc();
        self.reconcile_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let in_flight = self
            .reconcile_in_flight
            .get_or_create(&reconciler_labels(reconciler));
        // Saturating, so that a finish without its start skews nothing below zero.
        let _ = in_flight
            .inner()
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > 0).then(|| n - 1)
            });
    }

    /// Sets the depth of `reconciler`'s work queue.
    pub fn set_work_queue_depth(&self, reconciler: &str, depth: i64) {
        self.work_queue_depth
            .get_or_create(&reconciler_labels(reconciler))
            .set(depth);
    }

    /// Adds one to the depth of `reconciler`'s work queue.
    pub fn inc_work_queue_depth(&self, reconciler: &str) {
        self.work_queue_depth
            .get_or_create(&reconciler_labels(reconciler))
            .inc();
    }

    /// Takes one from the depth of `reconciler`'s work queue.
    pub fn dec_work_queue_depth(&self, reconciler: &str) {
        self.work_queue_depth
            .get_or_create(&reconciler_labels(reconciler))
            .dec();
    }

    /// Registers a user metric in the same registry, so [`encode`](Self::encode) and [`serve`]
    /// expose it alongside the reconciler metrics. Keep a clone of `metric` to record into it.
    ///
    /// ```
    /// use knative_core::metrics::Metrics;
    /// use prometheus_client::metrics::counter::Counter;
    ///
    /// let metrics = Metrics::new();
    /// let scaled: Counter = Counter::default();
    /// metrics.register("scale_decisions", "Scale decisions taken", scaled.clone());
    /// scaled.inc();
    /// assert!(metrics.encode().contains("scale_decisions_total 1"));
    /// ```
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_registry_mut(|registry| registry.register(name, help, metric));
    }

    /// Gives `f` the registry itself, for what [`register`](Self::register) does not cover
    /// (units, sub-registries with a prefix or labels, collectors).
    pub fn with_registry_mut<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The whole registry in the OpenMetrics text format, `# EOF` included.
    #[must_use]
    pub fn encode(&self) -> String {
        // Encoding into a String only fails if a user's custom metric fails to encode; what was
        // written before it is still the most useful thing to return.
        self.try_encode().unwrap_or_else(|partial| partial)
    }

    fn try_encode(&self) -> Result<String, String> {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        match prometheus_client::encoding::text::encode(&mut out, &registry) {
            Ok(()) => Ok(out),
            Err(_) => Err(out),
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(RECONCILE_LATENCY_BUCKETS)
}

fn reconciler_labels(reconciler: &str) -> ReconcilerLabels {
    ReconcilerLabels {
        reconciler: reconciler.to_owned(),
    }
}

/// How long a client may take to send its request headers before the connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight scrapes may take to finish once shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (such as too many open files) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `addr` and serves `GET /metrics` until `shutdown` completes; see [`serve_listener`].
///
/// # Errors
/// When `addr` cannot be bound.
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use knative_core::metrics::{Metrics, serve};
///
/// let metrics = Metrics::new();
/// serve(metrics, ([0, 0, 0, 0], 9090).into(), async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await
/// # }
/// ```
pub async fn serve(
    metrics: Metrics,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_listener(metrics, listener, shutdown).await;
    Ok(())
}

/// Serves the metrics on an already bound listener (bind port 0 and read
/// [`TcpListener::local_addr`] to let the system pick a port) until `shutdown` completes.
///
/// `GET` (or `HEAD`) `/metrics` answers 200 with the exposition in the OpenMetrics format
/// ([`CONTENT_TYPE_OPENMETRICS`]); other methods on `/metrics` answer 405, other paths 404.
/// Malformed requests are answered 400 by HTTP/1 itself and only end their own connection.
/// On shutdown the listener closes at once and requests in flight get a few seconds to finish.
pub async fn serve_listener(
    metrics: Metrics,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = pin!(shutdown);
    let (draining_tx, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(metrics.clone(), stream, draining.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    draining_tx.send_replace(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    metrics: Metrics,
    stream: TcpStream,
    mut draining: watch::Receiver<bool>,
) {
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = respond(&metrics, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "metrics endpoint: connection ended with an error");
            }
        }
        () = async {
            let _ = draining.wait_for(|draining| *draining).await;
        } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

fn respond<B>(metrics: &Metrics, request: &Request<B>) -> Response<String> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match metrics.try_encode() {
        Ok(body) => {
            let mut response = Response::new(body);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
            );
            response
        }
        Err(_) => {
            tracing::error!("metrics endpoint: a registered metric failed to encode");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be encoded\n",
            )
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::sync::oneshot;

    #[test]
    fn counters_and_histogram_carry_reconciler_and_outcome() {
        let metrics = Metrics::new();
        metrics.reconcile_started("route");
        metrics.reconcile_finished("route", true, Duration::from_millis(20));
        metrics.reconcile_started("route");
        metrics.reconcile_finished("route", true, Duration::from_millis(40));
        metrics.reconcile_started("revision");
        metrics.reconcile_finished("revision", false, Duration::from_secs(2));

        let text = metrics.encode();
        assert!(text.contains("# TYPE reconcile_count counter"), "{text}");
        assert!(
            text.contains(r#"reconcile_count_total{reconciler="route",success="true"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"reconcile_count_total{reconciler="revision",success="false"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"reconcile_count_total{reconciler="route",success="false"}"#),
            "{text}"
        );

        assert!(
            text.contains("# TYPE reconcile_latency_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT reconcile_latency_seconds seconds"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"reconcile_latency_seconds_count{reconciler="route",success="true"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"reconcile_latency_seconds_sum{reconciler="route",success="true"} 0.06"#
            ),
            "{text}"
        );
        // 20 ms and 40 ms both fall in the 50 ms bucket; only 20 ms in the 25 ms one.
        assert!(
            text.contains(r#"reconcile_latency_seconds_bucket{le="0.025",reconciler="route",success="true"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"reconcile_latency_seconds_bucket{le="0.05",reconciler="route",success="true"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"reconcile_latency_seconds_bucket{le="1.0",reconciler="revision",success="false"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"reconcile_latency_seconds_bucket{le="2.5",reconciler="revision",success="false"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"reconcile_in_flight{reconciler="route"} 0"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn in_flight_counts_unfinished_reconciles() {
        let metrics = Metrics::new();
        metrics.reconcile_started("service");
        metrics.reconcile_started("service");
        metrics.reconcile_finished("service", true, Duration::ZERO);
        assert!(
            metrics
                .encode()
                .contains(r#"reconcile_in_flight{reconciler="service"} 1"#)
        );
    }

    #[test]
    fn a_finish_without_its_start_leaves_in_flight_at_zero() {
        let metrics = Metrics::new();
        metrics.reconcile_finished("route", false, Duration::ZERO);
        assert!(
            metrics
                .encode()
                .contains(r#"reconcile_in_flight{reconciler="route"} 0"#)
        );
    }

    #[test]
    fn families_appear_once_they_have_a_sample() {
        assert_eq!(Metrics::new().encode(), "# EOF\n");
    }

    #[test]
    fn work_queue_depth_is_set_and_moved() {
        let metrics = Metrics::new();
        metrics.set_work_queue_depth("route", 5);
        metrics.inc_work_queue_depth("route");
        metrics.dec_work_queue_depth("revision");
        let text = metrics.encode();
        assert!(text.contains("# TYPE work_queue_depth gauge"), "{text}");
        assert!(
            text.contains(r#"work_queue_depth{reconciler="route"} 6"#),
            "{text}"
        );
        assert!(
            text.contains(r#"work_queue_depth{reconciler="revision"} -1"#),
            "{text}"
        );
    }

    #[test]
    fn clones_share_one_registry() {
        let metrics = Metrics::new();
        metrics
            .clone()
            .reconcile_finished("gc", true, Duration::ZERO);
        assert!(
            metrics
                .encode()
                .contains(r#"reconcile_count_total{reconciler="gc",success="true"} 1"#)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.set_work_queue_depth("odd\"name\n", 1);
        assert!(
            metrics
                .encode()
                .contains(r#"work_queue_depth{reconciler="odd\"name\n"} 1"#)
        );
    }

    #[test]
    fn user_metrics_share_the_registry() {
        let metrics = Metrics::new();
        let decisions = Gauge::<i64>::default();
        metrics.register(
            "desired_pods",
            "Pods the autoscaler wants",
            decisions.clone(),
        );
        decisions.set(4);
        metrics.with_registry_mut(|registry| {
            registry.sub_registry_with_prefix("activator").register(
                "queued",
                "Queued requests",
                Gauge::<i64>::default(),
            );
        });
        let text = metrics.encode();
        assert!(text.contains("desired_pods 4"), "{text}");
        assert!(text.contains("activator_queued 0"), "{text}");
    }

    #[test]
    fn prefix_applies_to_every_family() {
        let metrics = Metrics::with_prefix("controller");
        metrics.reconcile_started("route");
        metrics.reconcile_finished("route", true, Duration::ZERO);
        metrics.set_work_queue_depth("route", 0);
        metrics.register("extra", "A user metric", Counter::<u64>::default());
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"controller_reconcile_count_total{reconciler="route",success="true"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE controller_work_queue_depth gauge"),
            "{text}"
        );
        assert!(text.contains("controller_extra_total 0"), "{text}");
    }

    struct Server {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start(metrics: Metrics) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(metrics, listener, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, task }
    }

    /// One request over a plain blocking socket: the bytes on the wire are exactly the test's.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let request = request.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            stream.write_all(&request).expect("write");
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .expect("response within 10s");
            String::from_utf8_lossy(&response).into_owned()
        })
        .await
        .expect("no panic")
    }

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
    }

    #[tokio::test]
    async fn endpoint_serves_metrics_and_nothing_else() {
        let metrics = Metrics::new();
        metrics.reconcile_finished("route", true, Duration::from_millis(3));
        let server = start(metrics).await;

        let ok = exchange(server.addr, &get("/metrics")).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.to_ascii_lowercase().contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
            ),
            "{ok}"
        );
        assert!(
            ok.contains(r#"reconcile_count_total{reconciler="route",success="true"} 1"#),
            "{ok}"
        );
        assert!(ok.ends_with("# EOF\n"), "{ok}");

        let missing = exchange(server.addr, &get("/other")).await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        assert!(!missing.contains("reconcile_count"), "{missing}");

        let post = exchange(
            server.addr,
            b"POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(
            post.to_ascii_lowercase().contains("allow: get, head\r\n"),
            "{post}"
        );

        server.stop.send(()).expect("server running");
        tokio::time::timeout(Duration::from_secs(10), server.task)
            .await
            .expect("stops on shutdown")
            .expect("no panic");
    }

    #[tokio::test]
    async fn garbage_is_refused_without_harming_the_server() {
        let server = start(Metrics::new()).await;

        let garbage = exchange(server.addr, b"\x00\xffNOT HTTP AT ALL\r\n\r\n").await;
        assert!(
            garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
            "{garbage}"
        );
        let bad_uri = exchange(
            server.addr,
            b"GET metrics?%%% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            bad_uri.is_empty() || bad_uri.starts_with("HTTP/1.1 4"),
            "{bad_uri}"
        );

        let ok = exchange(server.addr, &get("/metrics")).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");

        server.stop.send(()).expect("server running");
        server.task.await.expect("no panic");
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener() {
        let server = start(Metrics::new()).await;
        let addr = server.addr;
        server.stop.send(()).expect("server running");
        server.task.await.expect("no panic");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "listener still open after shutdown"
        );
    }

    #[tokio::test]
    async fn serve_reports_bind_errors() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("local addr");
        let result = serve(Metrics::new(), addr, std::future::pending()).await;
        assert!(result.is_err());
    }
}
