//! Request accounting for the autoscaler, as Knative's queue-proxy does it.
//!
//! [`RequestStats`] is Knative's `RequestStats` (`knative.dev/networking/pkg/http/stats`): it
//! integrates concurrency over time between reports and answers, for each reporting period, the
//! *time-weighted average* number of requests in flight, the number of requests that arrived, and
//! the parts of both that came through a proxy (requests carrying `K-Proxy-Request`, which the
//! activator sets). It is pure: every event and report takes `now`.
//!
//! [`StatsLayer`] feeds it from live traffic (a request is in flight from its arrival, queueing
//! in the breaker included, until its response body has been sent) and records per-response
//! metrics ([`RequestMetrics`], served on the user-metrics port). [`StatsReporter`] turns a
//! report into Knative's protobuf [`WireStat`] or Prometheus text.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::body::{ResponseBody, guard_response};
use crate::autoscaler::wire::WireStat;

/// The header a proxy in front of the queue-proxy (the activator) sets on the requests it sends.
pub const PROXY_HEADER: &str = "k-proxy-request";

/// What [`RequestStats::report`] returns for one reporting period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatsReport {
    /// Time-weighted average of requests in flight.
    pub average_concurrency: f64,
    /// Time-weighted average of proxied requests in flight.
    pub average_proxied_concurrency: f64,
    /// Requests that arrived in the period.
    pub request_count: f64,
    /// Proxied requests that arrived in the period.
    pub proxied_request_count: f64,
}

/// Knative's request statistics: concurrency integrated over time, counts since the last report.
#[derive(Clone, Debug)]
pub struct RequestStats {
    last_change: Instant,
    concurrency: u64,
    proxied_concurrency: u64,
    seconds_in_use: f64,
    computed_concurrency: f64,
    computed_proxied_concurrency: f64,
    request_count: f64,
    proxied_request_count: f64,
}

impl RequestStats {
    /// Empty statistics starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            last_change: now,
            concurrency: 0,
            proxied_concurrency: 0,
            seconds_in_use: 0.0,
            computed_concurrency: 0.0,
            computed_proxied_concurrency: 0.0,
            request_count: 0.0,
            proxied_request_count: 0.0,
        }
    }

    /// A request arrived at `now`.
    pub fn request_in(&mut self, now: Instant, proxied: bool) {
        self.compute(now);
        self.concurrency += 1;
        self.request_count += 1.0;
        if proxied {
            self.proxied_concurrency += 1;
            self.proxied_request_count += 1.0;
        }
    }

    /// A request finished at `now`.
    pub fn request_out(&mut self, now: Instant, proxied: bool) {
        self.compute(now);
        self.concurrency = self.concurrency.saturating_sub(1);
        if proxied {
            self.proxied_concurrency = self.proxied_concurrency.saturating_sub(1);
        }
    }

    /// Requests in flight right now.
    pub fn concurrency(&self) -> u64 {
        self.concurrency
    }

    /// The averages and counts since the previous report; starts a new period at `now`.
    pub fn report(&mut self, now: Instant) -> StatsReport {
        self.compute(now);
        let mut report = StatsReport {
            request_count: self.request_count,
            proxied_request_count: self.proxied_request_count,
            ..StatsReport::default()
        };
        if self.seconds_in_use > 0.0 {
            report.average_concurrency = self.computed_concurrency / self.seconds_in_use;
            report.average_proxied_concurrency =
                self.computed_proxied_concurrency / self.seconds_in_use;
        }
        self.seconds_in_use = 0.0;
        self.computed_concurrency = 0.0;
        self.computed_proxied_concurrency = 0.0;
        self.request_count = 0.0;
        self.proxied_request_count = 0.0;
        report
    }

    fn compute(&mut self, now: Instant) {
        // Events may race a report and carry an earlier time; Knative ignores the difference.
        let Some(elapsed) = now.checked_duration_since(self.last_change) else {
            return;
        };
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.seconds_in_use += secs;
            self.computed_concurrency += self.concurrency as f64 * secs;
            self.computed_proxied_concurrency += self.proxied_concurrency as f64 * secs;
            self.last_change = now;
        }
    }
}

/// Per-response metrics of the user-metrics port (`:9091`), named as Knative's queue-proxy names
/// them: `revision_request_count` by response code, `revision_request_latencies` in
/// milliseconds and `revision_queue_depth`.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    request_count: Family<CodeLabels, Counter>,
    latencies: Family<CodeLabels, Histogram>,
    queue_depth: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    response_code: u16,
    response_code_class: &'static str,
}

impl CodeLabels {
    fn new(code: u16) -> Self {
        let response_code_class = match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        Self {
            response_code: code,
            response_code_class,
        }
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            request_count: Family::default(),
            latencies: Family::new_with_constructor(|| {
                // Knative's buckets for request latencies, in milliseconds.
                Histogram::new([
                    5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 250.0, 300.0, 350.0,
                    400.0, 450.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 2000.0, 5000.0,
                    10000.0, 20000.0, 50000.0, 100000.0,
                ])
            }),
            queue_depth: Gauge::default(),
        }
    }
}

impl RequestMetrics {
    /// Registers the metrics in `registry` (which carries the revision's labels).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "revision_request_count",
            "The number of requests that are routed to queue-proxy",
            self.request_count.clone(),
        );
        registry.register(
            "revision_request_latencies",
            "The response latencies of requests routed to queue-proxy, in milliseconds",
            self.latencies.clone(),
        );
        registry.register(
            "revision_queue_depth",
            "The current number of items in the serving and waiting queue",
            self.queue_depth.clone(),
        );
    }

    fn record(&self, code: u16, latency: Duration) {
        let labels = CodeLabels::new(code);
        self.latencies
            .get_or_create(&labels)
            .observe(latency.as_secs_f64() * 1000.0);
        self.request_count.get_or_create(&labels).inc();
    }
}

/// The queue-proxy's live statistics, shared by the [`StatsLayer`] and the stats servers.
#[derive(Clone, Debug)]
pub struct SharedStats {
    stats: Arc<Mutex<RequestStats>>,
    metrics: RequestMetrics,
}

impl SharedStats {
    /// Empty statistics starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            stats: Arc::new(Mutex::new(RequestStats::new(now))),
            metrics: RequestMetrics::default(),
        }
    }

    /// The per-response metrics.
    pub fn metrics(&self) -> &RequestMetrics {
        &self.metrics
    }

    /// Requests in flight right now.
    pub fn concurrency(&self) -> u64 {
        self.stats.lock().concurrency()
    }

    /// The report for the period ending `now` (see [`RequestStats::report`]).
    pub fn report(&self, now: Instant) -> StatsReport {
        self.stats.lock().report(now)
    }

    /// Counts a request in; the guard counts it out, recording its status and latency, when
    /// dropped (as a `500` unless [`InFlight::respond`] said otherwise).
    pub(crate) fn request_started(&self, proxied: bool) -> InFlight {
        let started = Instant::now();
        self.request_in(started, proxied);
        InFlight {
            stats: self.clone(),
            proxied,
            started,
            status: 500,
        }
    }

    fn request_in(&self, now: Instant, proxied: bool) {
        let depth = {
            let mut stats = self.stats.lock();
            stats.request_in(now, proxied);
            stats.concurrency()
        };
        self.metrics.queue_depth.set(depth as i64);
    }

    fn request_out(&self, now: Instant, proxied: bool) {
        let depth = {
            let mut stats = self.stats.lock();
            stats.request_out(now, proxied);
            stats.concurrency()
        };
        self.metrics.queue_depth.set(depth as i64);
    }
}

/// A tower layer counting every request through it in a [`SharedStats`].
#[derive(Clone, Debug)]
pub struct StatsLayer {
    stats: SharedStats,
}

impl StatsLayer {
    /// A layer feeding `stats`.
    pub fn new(stats: SharedStats) -> Self {
        Self { stats }
    }
}

impl<S> tower::Layer<S> for StatsLayer {
    type Service = StatsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatsService {
            inner,
            stats: self.stats.clone(),
        }
    }
}

/// The service [`StatsLayer`] builds.
#[derive(Clone, Debug)]
pub struct StatsService<S> {
    inner: S,
    stats: SharedStats,
}

/// Counts a request out (and records its metrics) when its response is over.
pub(crate) struct InFlight {
    stats: SharedStats,
    proxied: bool,
    started: Instant,
    status: u16,
}

impl InFlight {
    /// The status the request is recorded with.
    pub(crate) fn respond(&mut self, status: u16) {
        self.status = status;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = Instant::now();
        self.stats.request_out(now, self.proxied);
        self.stats
            .metrics
            .record(self.status, now.saturating_duration_since(self.started));
    }
}

impl<S, B> tower::Service<Request<B>> for StatsService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Counted as a server error if the request is abandoned before a response.
        let mut in_flight = self
            .stats
            .request_started(req.headers().contains_key(PROXY_HEADER));
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            in_flight.respond(response.status().as_u16());
            Ok(guard_response(response, in_flight))
        })
    }
}

/// Turns [`StatsReport`]s into what the autoscaler scrapes.
#[derive(Clone, Debug)]
pub struct StatsReporter {
    pod_name: String,
    labels: PrometheusLabels,
    started: Instant,
}

/// The labels Knative puts on the queue-proxy's autoscaler metrics in Prometheus format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrometheusLabels {
    /// `destination_namespace`.
    pub namespace: String,
    /// `destination_configuration`.
    pub configuration: String,
    /// `destination_revision`.
    pub revision: String,
    /// `destination_pod`.
    pub pod: String,
}

impl StatsReporter {
    /// A reporter for the pod `labels.pod`, whose process started at `started`.
    pub fn new(labels: PrometheusLabels, started: Instant) -> Self {
        Self {
            pod_name: labels.pod.clone(),
            labels,
            started,
        }
    }

    /// Knative's protobuf `Stat` for `report`, taken at `now`.
    pub fn wire_stat(&self, report: &StatsReport, now: Instant) -> WireStat {
        WireStat {
            pod_name: self.pod_name.clone(),
            average_concurrent_requests: report.average_concurrency,
            average_proxied_concurrent_requests: report.average_proxied_concurrency,
            request_count: report.request_count,
            proxied_request_count: report.proxied_request_count,
            process_uptime: now.saturating_duration_since(self.started).as_secs_f64(),
        }
    }

    /// The Prometheus text Knative's queue-proxy serves for `report` over `period`, taken at
    /// `now`: `queue_requests_per_second`, `queue_proxied_operations_per_second`,
    /// `queue_average_concurrent_requests`, `queue_average_proxied_concurrent_requests` and
    /// `process_uptime`.
    pub fn prometheus_text(&self, report: &StatsReport, period: Duration, now: Instant) -> String {
        use std::fmt::Write as _;
        let per_second = |count: f64| {
            let secs = period.as_secs_f64();
            if secs > 0.0 { count / secs } else { count }
        };
        let labels = format!(
            "destination_configuration=\"{}\",destination_namespace=\"{}\",destination_pod=\"{}\",destination_revision=\"{}\"",
            escape_label(&self.labels.configuration),
            escape_label(&self.labels.namespace),
            escape_label(&self.labels.pod),
            escape_label(&self.labels.revision),
        );
        let uptime = now.saturating_duration_since(self.started).as_secs_f64();
        let gauges = [
            (
                "queue_requests_per_second",
                "Number of requests received since last Stat",
                per_second(report.request_count),
            ),
            (
                "queue_proxied_operations_per_second",
                "Number of proxied requests received since last Stat",
                per_second(report.proxied_request_count),
            ),
            (
                "queue_average_concurrent_requests",
                "Number of requests currently being handled by this pod",
                report.average_concurrency,
            ),
            (
                "queue_average_proxied_concurrent_requests",
                "Number of proxied requests currently being handled by this pod",
                report.average_proxied_concurrency,
            ),
            (
                "process_uptime",
                "The number of seconds that the process has been up",
                uptime,
            ),
        ];
        let mut text = String::with_capacity(1024);
        for (name, help, value) in gauges {
            let _ = writeln!(text, "# HELP {name} {help}");
            let _ = writeln!(text, "# TYPE {name} gauge");
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
        text
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn average_concurrency_is_weighted_by_time() {
        let t0 = Instant::now();
        let mut stats = RequestStats::new(t0);
        // One request for the whole second, a second one for its last half.
        stats.request_in(t0, false);
        stats.request_in(at(t0, 500), false);
        let report = stats.report(at(t0, 1000));
        assert!(
            (report.average_concurrency - 1.5).abs() < 1e-9,
            "{report:?}"
        );
        assert_eq!(report.request_count, 2.0);
    }

    #[test]
    fn proxied_requests_count_in_both_totals() {
        let t0 = Instant::now();
        let mut stats = RequestStats::new(t0);
        stats.request_in(t0, true);
        stats.request_in(t0, false);
        stats.request_out(at(t0, 500), true);
        let report = stats.report(at(t0, 1000));
        assert_eq!(report.request_count, 2.0);
        assert_eq!(report.proxied_request_count, 1.0);
        assert!((report.average_proxied_concurrency - 0.5).abs() < 1e-9);
        assert!((report.average_concurrency - 1.5).abs() < 1e-9);
    }

    #[test]
    fn a_report_starts_a_new_period_but_keeps_requests_in_flight() {
        let t0 = Instant::now();
        let mut stats = RequestStats::new(t0);
        stats.request_in(t0, false);
        let _ = stats.report(at(t0, 1000));
        let second = stats.report(at(t0, 2000));
        assert_eq!(second.request_count, 0.0);
        assert!((second.average_concurrency - 1.0).abs() < 1e-9);
    }

    #[test]
    fn an_event_older_than_the_last_change_is_counted_without_going_back_in_time() {
        let t0 = Instant::now();
        let mut stats = RequestStats::new(at(t0, 1000));
        stats.request_in(t0, false);
        assert_eq!(stats.concurrency(), 1);
        let report = stats.report(at(t0, 2000));
        assert!((report.average_concurrency - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_wire_stat_carries_the_pod_name_and_uptime() {
        let t0 = Instant::now();
        let reporter = StatsReporter::new(
            PrometheusLabels {
                pod: "hello-00001-abc".into(),
                ..PrometheusLabels::default()
            },
            t0,
        );
        let report = StatsReport {
            average_concurrency: 2.0,
            average_proxied_concurrency: 1.0,
            request_count: 7.0,
            proxied_request_count: 3.0,
        };
        let stat = reporter.wire_stat(&report, at(t0, 2500));
        assert_eq!(stat.pod_name, "hello-00001-abc");
        assert_eq!(stat.request_count, 7.0);
        assert_eq!(stat.proxied_request_count, 3.0);
        assert!((stat.process_uptime - 2.5).abs() < 1e-9);
    }

    #[test]
    fn prometheus_text_has_knatives_names_and_labels_and_rates_per_second() {
        let t0 = Instant::now();
        let reporter = StatsReporter::new(
            PrometheusLabels {
                namespace: "default".into(),
                configuration: "hello".into(),
                revision: "hello-00001".into(),
                pod: "hello-00001-abc".into(),
            },
            t0,
        );
        let report = StatsReport {
            request_count: 20.0,
            ..StatsReport::default()
        };
        let text = reporter.prometheus_text(&report, Duration::from_secs(2), t0);
        assert!(text.contains(
            "queue_requests_per_second{destination_configuration=\"hello\",destination_namespace=\"default\",destination_pod=\"hello-00001-abc\",destination_revision=\"hello-00001\"} 10\n"
        ), "{text}");
        assert!(text.contains("# TYPE queue_average_concurrent_requests gauge\n"));
    }
}
