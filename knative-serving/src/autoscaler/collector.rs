//! Metric collection (knative/serving `pkg/autoscaler/metrics`: the stats scraper, the
//! collector and the activator's stat stream): every second each revision's ready pods are
//! scraped for their [`WireStat`] on the queue-proxy's metrics port, large pod sets by a sample
//! of Knative's size, and the stats the activator pushes to [`STAT_PUSH_PATH`] are taken as they
//! come, deciding at once for a revision at zero. Everything lands in the [`Deciders`].
//!
//! The pure parts — [`population_mean_sample_size`], [`scrape_targets`], [`average_sample`],
//! [`decode_stat`], [`decode_pushed`] — do no I/O; [`HttpScraper`], [`Collector`] and
//! [`serve_stat_push`] are the edges.
//!
//! ```
//! use knative_serving::autoscaler::collector::population_mean_sample_size;
//!
//! // Up to three pods are all scraped; then the sample grows ever more slowly.
//! assert_eq!(population_mean_sample_size(3), 3);
//! assert_eq!(population_mean_sample_size(10), 7);
//! assert_eq!(population_mean_sample_size(1000), 16);
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use prost::Message;
use tokio::net::TcpListener;

use super::deciders::{Deciders, RevisionKey};
use super::metrics::Stat;
use super::wire::{PROTOBUF_CONTENT_TYPE, STAT_PUSH_PATH, WireStat, WireStatMessages};

/// How often every revision is scraped (Knative's `BucketSize`).
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one pod's scrape may take (Knative's `httpClientTimeout`).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// The queue-proxy's metrics port (`networking.AutoscalingQueueMetricsPort`).
pub const QUEUE_METRICS_PORT: u16 = 9090;
/// The label naming a pod's revision (`serving.knative.dev/revision`).
pub const REVISION_LABEL_KEY: &str = "serving.knative.dev/revision";
/// The largest stat response or push body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The square of the Normal distribution's critical value for 95% confidence.
const CRITICAL_VALUE_SQUARED: f64 = 1.96 * 1.96;
/// The square of the margin of error (5).
const MARGIN_OF_ERROR_SQUARED: f64 = 5.0 * 5.0;
/// The population variance Knative assumes.
const VARIANCE: f64 = 100.0;

/// Knative's `populationMeanSampleSize`: how many of `population` pods to scrape to estimate
/// their mean within a 5% margin of error at 95% confidence. All of them up to three, then
/// `ceil(N·X / (N + X − 1))` with `X = C²·σ² / MOE²` (≈ 15.4): never more than 16.
pub fn population_mean_sample_size(population: usize) -> usize {
    if population <= 3 {
        return population;
    }
    let x = CRITICAL_VALUE_SQUARED * VARIANCE / MARGIN_OF_ERROR_SQUARED;
    let n = population as f64;
    (n * x / (n + x - 1.0)).ceil() as usize
}

/// What to scrape of a revision: how many ready pods it has and their IPs, oldest pod first
/// (Knative's `PodIPsByAge`: old pods have settled, young ones may skew low).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrapeTargets {
    /// The revision's ready pods.
    pub ready_pods: i32,
    /// The IPs of the ready pods, oldest first.
    pub ips: Vec<String>,
}

/// The ready pods among `pods` (Ready condition True, not terminating, with an IP), oldest
/// first by start time, then by name.
pub fn scrape_targets<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> ScrapeTargets {
    let mut ready: Vec<(Option<Timestamp>, &str, String)> = pods
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let is_ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            is_ready.then(|| {
                (
                    status.start_time.as_ref().map(|t| t.0),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    ip,
                )
            })
        })
        .collect();
    ready.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    ScrapeTargets {
        ready_pods: i32::try_from(ready.len()).unwrap_or(i32::MAX),
        ips: ready.into_iter().map(|(_, _, ip)| ip).collect(),
    }
}

/// The revision a pod belongs to, from its namespace and `serving.knative.dev/revision` label.
pub fn revision_of(pod: &Pod) -> Option<RevisionKey> {
    let name = pod.metadata.labels.as_ref()?.get(REVISION_LABEL_KEY)?;
    Some(RevisionKey::new(
        pod.metadata.namespace.clone()?,
        name.clone(),
    ))
}

/// The revision's stat from a sample of its pods' stats (Knative's `scrapePods`): the sample's
/// mean per pod, times the ready pods. `sample_size` is what was asked for; the stats are those
/// scraped (as many, or Knative would not average them).
pub fn average_sample(stats: &[Stat], sample_size: usize, ready_pods: i32) -> Stat {
    let sum = stats.iter().fold(Stat::default(), |acc, s| Stat {
        average_concurrent_requests: acc.average_concurrent_requests
            + s.average_concurrent_requests,
        average_proxied_concurrent_requests: acc.average_proxied_concurrent_requests
            + s.average_proxied_concurrent_requests,
        request_count: acc.request_count + s.request_count,
        proxied_request_count: acc.proxied_request_count + s.proxied_request_count,
    });
    let scale = f64::from(ready_pods) / sample_size.max(1) as f64;
    Stat {
        average_concurrent_requests: sum.average_concurrent_requests * scale,
        average_proxied_concurrent_requests: sum.average_proxied_concurrent_requests * scale,
        request_count: sum.request_count * scale,
        proxied_request_count: sum.proxied_request_count * scale,
    }
}

/// Why a pod or a revision could not be scraped.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The request failed (refused, reset, timed out).
    #[error("GET {url}: {message}")]
    Request {
        /// The URL scraped.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The pod answered with another status than 200.
    #[error("GET {url}: status {status}")]
    Status {
        /// The URL scraped.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is not a stat in a format we read.
    #[error("malformed stat: {0}")]
    Malformed(String),
    /// The response is neither protobuf nor Prometheus text.
    #[error("unsupported Content-Type {0:?}")]
    ContentType(String),
    /// No pod of the revision could be scraped.
    #[error("no pods scraped: {0}")]
    NoPodsScraped(Box<ScrapeError>),
    /// Fewer pods than the sample size could be scraped (Knative's `errPodsExhausted`): the
    /// stat would be skewed, so none is recorded.
    #[error("pods exhausted: scraped {scraped} of a sample of {wanted}")]
    PodsExhausted {
        /// Pods scraped.
        scraped: usize,
        /// The sample size.
        wanted: usize,
    },
}

/// A stat response in the format its `Content-Type` names: Knative's protobuf `Stat`
/// (`application/protobuf`), or, from queue-proxies that only speak Prometheus, the text
/// exposition format (`text/plain`) with Knative's queue metric names.
///
/// # Errors
/// When the body does not decode, lacks `queue_average_concurrent_requests`, or the type is
/// neither.
pub fn decode_stat(content_type: Option<&str>, body: &[u8]) -> Result<WireStat, ScrapeError> {
    let media = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    match media {
        PROTOBUF_CONTENT_TYPE => {
            WireStat::decode(body).map_err(|e| ScrapeError::Malformed(e.to_string()))
        }
        "text/plain" => {
            let text =
                std::str::from_utf8(body).map_err(|e| ScrapeError::Malformed(e.to_string()))?;
            parse_prometheus_stat(text)
        }
        other => Err(ScrapeError::ContentType(other.to_owned())),
    }
}

/// A stat from the Prometheus text Knative's queue-proxies served before they spoke protobuf
/// (`queue_average_concurrent_requests`, `queue_average_proxied_concurrent_requests`,
/// `queue_requests_per_second`, `queue_proxied_operations_per_second`, `process_uptime`; the
/// pod from the `destination_pod` label).
///
/// # Errors
/// When `queue_average_concurrent_requests` is missing or a value is not a number.
pub fn parse_prometheus_stat(text: &str) -> Result<WireStat, ScrapeError> {
    let mut stat = WireStat::default();
    let mut seen_concurrency = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| ScrapeError::Malformed(format!("line {line:?}")))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let field = match name {
            "queue_average_concurrent_requests" => {
                seen_concurrency = true;
                &mut stat.average_concurrent_requests
            }
            "queue_average_proxied_concurrent_requests" => {
                &mut stat.average_proxied_concurrent_requests
            }
            "queue_requests_per_second" => &mut stat.request_count,
            "queue_proxied_operations_per_second" => &mut stat.proxied_request_count,
            "process_uptime" => &mut stat.process_uptime,
            _ => continue,
        };
        *field = value
            .parse()
            .map_err(|_| ScrapeError::Malformed(format!("{name}: {value:?} is not a number")))?;
        if let Some(pod) = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("destination_pod="))
        {
            pod.trim_matches('"').clone_into(&mut stat.pod_name);
        }
    }
    if seen_concurrency {
        Ok(stat)
    } else {
        Err(ScrapeError::Malformed(
            "no queue_average_concurrent_requests".to_owned(),
        ))
    }
}

/// Why a push of stats was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// The body is not a protobuf `WireStatMessages`.
    #[error("malformed stat messages: {0}")]
    Malformed(String),
    /// A message lacks its namespace, name or stat.
    #[error("messages[{index}]: {problem}")]
    Incomplete {
        /// The message's index in the batch.
        index: usize,
        /// What is missing.
        problem: &'static str,
    },
}

/// The stats of a push from the activator, each for its revision. The whole batch is refused
/// when any message is incomplete, so that the sender knows and none is dropped unnoticed.
///
/// # Errors
/// When the body does not decode or a message lacks its namespace, name or stat.
pub fn decode_pushed(body: &[u8]) -> Result<Vec<(RevisionKey, Stat)>, PushError> {
    let batch = WireStatMessages::decode(body).map_err(|e| PushError::Malformed(e.to_string()))?;
    batch
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let incomplete = |problem| PushError::Incomplete { index, problem };
            if message.namespace.is_empty() {
                return Err(incomplete("namespace is empty"));
            }
            if message.name.is_empty() {
                return Err(incomplete("name is empty"));
            }
            let stat = message.stat.as_ref().ok_or(incomplete("stat is missing"))?;
            Ok((
                RevisionKey::new(message.namespace.clone(), message.name.clone()),
                Stat::from(stat),
            ))
        })
        .collect()
}

/// Scrapes queue-proxies over HTTP (`GET http://<pod IP>:<port>/metrics`, asking for
/// protobuf).
#[derive(Clone, Debug)]
pub struct HttpScraper {
    client: HttpClient<HttpConnector, Empty<Bytes>>,
    port: u16,
}

impl Default for HttpScraper {
    fn default() -> Self {
        Self::new(QUEUE_METRICS_PORT)
    }
}

impl HttpScraper {
    /// A scraper of the queue-proxies' metrics on `port` ([`QUEUE_METRICS_PORT`] in a cluster).
    pub fn new(port: u16) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(SCRAPE_TIMEOUT));
        connector.set_nodelay(true);
        Self {
            client: HttpClient::builder(TokioExecutor::new()).build(connector),
            port,
        }
    }

    /// One pod's stat.
    ///
    /// # Errors
    /// When the pod does not answer within [`SCRAPE_TIMEOUT`], answers another status than 200,
    /// or with a body that is not a stat.
    pub async fn scrape_pod(&self, ip: &str) -> Result<WireStat, ScrapeError> {
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        let url = format!("http://{host}:{}/metrics", self.port);
        let failed = |message: String| ScrapeError::Request {
            url: url.clone(),
            message,
        };
        let request = Request::get(&url)
            .header(header::ACCEPT, PROTOBUF_CONTENT_TYPE)
            .body(Empty::new())
            .map_err(|e| failed(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            if response.status() != StatusCode::OK {
                return Err(ScrapeError::Status {
                    url: url.clone(),
                    status: response.status().as_u16(),
                });
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| failed(e.to_string()))?
                .to_bytes();
            decode_stat(content_type.as_deref(), &body)
        };
        tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
            .await
            .map_err(|_| failed(format!("timed out after {SCRAPE_TIMEOUT:?}")))?
    }

    /// The revision's stat from a sample of its ready pods (Knative's `scrapePods`): a sample
    /// of [`population_mean_sample_size`] pods, scraped in parallel, oldest first, a failed
    /// pod replaced by the next; `None` when it has no ready pod.
    ///
    /// # Errors
    /// [`ScrapeError::NoPodsScraped`] when no pod answered, [`ScrapeError::PodsExhausted`]
    /// when fewer than the sample did.
    pub async fn scrape_revision(
        &self,
        targets: &ScrapeTargets,
    ) -> Result<Option<Stat>, ScrapeError> {
        if targets.ready_pods <= 0 || targets.ips.is_empty() {
            return Ok(None);
        }
        let wanted = population_mean_sample_size(usize::try_from(targets.ready_pods).unwrap_or(0));
        // Knative's workers: `wanted` of them take the next pod in turn until one answers.
        let next = AtomicUsize::new(0);
        let worker = || async {
            let mut last_error = None;
            while let Some(ip) = targets.ips.get(next.fetch_add(1, Ordering::Relaxed)) {
                match self.scrape_pod(ip).await {
                    Ok(stat) => return Ok(Stat::from(&stat)),
                    Err(err) => last_error = Some(err),
                }
            }
            Err(last_error)
        };
        let results = futures::future::join_all((0..wanted).map(|_| worker())).await;
        let mut stats = Vec::with_capacity(wanted);
        let mut last_error = None;
        for result in results {
            match result {
                Ok(stat) => stats.push(stat),
                Err(err) => last_error = last_error.or(err),
            }
        }
        match (stats.len(), last_error) {
            (n, _) if n == wanted => Ok(Some(average_sample(&stats, wanted, targets.ready_pods))),
            (0, Some(err)) => Err(ScrapeError::NoPodsScraped(Box::new(err))),
            (scraped, _) => Err(ScrapeError::PodsExhausted { scraped, wanted }),
        }
    }
}

/// Where the collector finds pods: typically a reflector's [`Store`] of the pods labelled
/// `serving.knative.dev/revision`.
pub trait PodSource: Send + Sync {
    /// Every known pod.
    fn pods(&self) -> Vec<Arc<Pod>>;
}

impl PodSource for Store<Pod> {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.state()
    }
}

/// What one round of collection did.
#[derive(Debug, Default)]
pub struct CollectReport {
    /// Revisions whose stat was recorded.
    pub recorded: Vec<RevisionKey>,
    /// Revisions that could not be scraped, and why.
    pub failed: Vec<(RevisionKey, ScrapeError)>,
}

/// Scrapes every revision that has a decider, each second, into the [`Deciders`].
pub struct Collector<P> {
    deciders: Deciders,
    scraper: HttpScraper,
    pods: P,
}

impl<P> std::fmt::Debug for Collector<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("scraper", &self.scraper)
            .finish_non_exhaustive()
    }
}

impl<P: PodSource> Collector<P> {
    /// A collector of the revisions of `deciders`, finding their pods in `pods` and scraping
    /// them with `scraper`.
    pub fn new(deciders: Deciders, scraper: HttpScraper, pods: P) -> Self {
        Self {
            deciders,
            scraper,
            pods,
        }
    }

    /// One round: every revision's ready pods counted (for its decisions) and scraped, and
    /// its stat recorded at `now`.
    pub async fn collect_once(&self, now: Timestamp) -> CollectReport {
        let mut pods_by_revision: HashMap<RevisionKey, Vec<Arc<Pod>>> = HashMap::new();
        for pod in self.pods.pods() {
            if let Some(key) = revision_of(&pod) {
                pods_by_revision.entry(key).or_default().push(pod);
            }
        }
        let revisions = self.deciders.revisions().await;
        let scrapes = revisions.into_iter().map(|key| {
            let targets = scrape_targets(
                pods_by_revision
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .map(AsRef::as_ref),
            );
            async move {
                self.deciders.set_ready_pods(&key, targets.ready_pods).await;
                let result = self.scraper.scrape_revision(&targets).await;
                (key, result)
            }
        });
        let mut report = CollectReport::default();
        for (key, result) in futures::future::join_all(scrapes).await {
            match result {
                Ok(Some(stat)) => {
                    if self.deciders.record(&key, now, &stat).await {
                        report.recorded.push(key);
                    }
                }
                Ok(None) => {}
                Err(err) => report.failed.push((key, err)),
            }
        }
        report
    }

    /// Collects every [`SCRAPE_INTERVAL`] on the wall clock until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut interval = tokio::time::interval(SCRAPE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = interval.tick() => {
                    let report = self.collect_once(Timestamp::now()).await;
                    for (key, err) in &report.failed {
                        tracing::warn!(revision = %key, %err, "failed to scrape");
                    }
                }
            }
        }
    }
}

/// The answer to one request to the stat push endpoint: `POST` [`STAT_PUSH_PATH`] with a
/// protobuf [`WireStatMessages`] body records every stat at `now` (deciding at once for a
/// revision at zero) and answers 204; a malformed batch is refused whole with 400, a wrong
/// method 405, another path 404, another content type 415, a body over [`MAX_BODY_BYTES`] 413.
/// Stats of revisions without a decider are dropped and counted in the `X-Dropped` header.
pub async fn handle_push<B>(
    deciders: &Deciders,
    request: Request<B>,
    now: Timestamp,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if request.uri().path() != STAT_PUSH_PATH {
        return plain(StatusCode::NOT_FOUND, "not found\n".to_owned());
    }
    if request.method() != Method::POST {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{STAT_PUSH_PATH} takes POST\n"),
        );
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(PROTOBUF_CONTENT_TYPE);
    if content_type.split(';').next().map(str::trim) != Some(PROTOBUF_CONTENT_TYPE) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("stats must be {PROTOBUF_CONTENT_TYPE}, not {content_type}\n"),
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(err) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the body (at most {MAX_BODY_BYTES} bytes): {err}\n"),
            );
        }
    };
    let stats = match decode_pushed(&body) {
        Ok(stats) => stats,
        Err(err) => return plain(StatusCode::BAD_REQUEST, format!("{err}\n")),
    };
    let mut dropped = 0usize;
    for (key, stat) in &stats {
        if !deciders.record_and_poke(key, now, stat).await {
            tracing::debug!(revision = %key, "pushed stat of a revision without a decider");
            dropped += 1;
        }
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert("x-dropped", http::HeaderValue::from(dropped));
    response
}

fn plain(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves the stat push endpoint ([`handle_push`]) on `listener` (HTTP/1.1 and h2c) until
/// `shutdown` completes, then lets requests in flight finish (up to 10 s).
pub async fn serve_stat_push(
    listener: TcpListener,
    deciders: Deciders,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "stat push: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let deciders = deciders.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let deciders = deciders.clone();
            async move { Ok::<_, Infallible>(handle_push(&deciders, req, Timestamp::now()).await) }
        });
        let conn = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, %err, "stat push connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::autoscaler::wire::WireStatMessage;

    #[test]
    fn sample_sizes_are_knatives() {
        // Knative's sample_size_test.go table.
        for (population, want) in [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 3),
            (5, 4),
            (10, 7),
            (100, 14),
            (1000, 16),
            (1_000_000, 16),
        ] {
            assert_eq!(
                population_mean_sample_size(population),
                want,
                "population {population}"
            );
        }
    }

    fn pod(name: &str, ready: bool, ip: &str, started: i64) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {"serving.knative.dev/revision": "hello-00001"},
            },
            "status": {
                "podIP": ip,
                "startTime": Time(Timestamp::from_second(started).unwrap()),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn targets_are_the_ready_pods_oldest_first() {
        let mut terminating = pod("d", true, "10.0.0.4", 1);
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let pods = [
            pod("young", true, "10.0.0.1", 300),
            pod("old", true, "10.0.0.2", 100),
            pod("unready", false, "10.0.0.3", 50),
            terminating,
            pod("no-ip", true, "", 10),
        ];
        assert_eq!(
            scrape_targets(&pods),
            ScrapeTargets {
                ready_pods: 2,
                ips: vec!["10.0.0.2".to_owned(), "10.0.0.1".to_owned()],
            }
        );
        assert_eq!(
            revision_of(&pods[0]),
            Some(RevisionKey::new("default", "hello-00001"))
        );
    }

    #[test]
    fn a_sample_stands_for_all_ready_pods() {
        let stats = [
            Stat {
                average_concurrent_requests: 2.0,
                average_proxied_concurrent_requests: 1.0,
                request_count: 10.0,
                proxied_request_count: 4.0,
            },
            Stat {
                average_concurrent_requests: 4.0,
                average_proxied_concurrent_requests: 0.0,
                request_count: 20.0,
                proxied_request_count: 0.0,
            },
        ];
        // Mean 3 per pod over 10 ready pods.
        assert_eq!(
            average_sample(&stats, 2, 10),
            Stat {
                average_concurrent_requests: 30.0,
                average_proxied_concurrent_requests: 5.0,
                request_count: 150.0,
                proxied_request_count: 20.0,
            }
        );
    }

    #[test]
    fn protobuf_stats_decode_and_other_types_are_refused() {
        let stat = WireStat {
            pod_name: "p".into(),
            average_concurrent_requests: 1.5,
            ..WireStat::default()
        };
        let body = stat.encode_to_vec();
        assert_eq!(
            decode_stat(Some("application/protobuf"), &body).unwrap(),
            stat
        );
        assert!(matches!(
            decode_stat(Some("application/json"), b"{}"),
            Err(ScrapeError::ContentType(t)) if t == "application/json"
        ));
        assert!(matches!(
            decode_stat(Some("application/protobuf"), &[0xff, 0xff]),
            Err(ScrapeError::Malformed(_))
        ));
    }

    #[test]
    fn prometheus_text_of_knatives_queue_proxy_decodes() {
        let text = "\
# HELP queue_average_concurrent_requests Number of requests currently being handled by this pod
# TYPE queue_average_concurrent_requests gauge
queue_average_concurrent_requests{destination_namespace=\"default\",destination_pod=\"hello-abc\"} 3.5
queue_average_proxied_concurrent_requests{destination_pod=\"hello-abc\"} 1
queue_requests_per_second{destination_pod=\"hello-abc\"} 12
queue_proxied_operations_per_second{destination_pod=\"hello-abc\"} 2
process_uptime{destination_pod=\"hello-abc\"} 42
go_goroutines 17
";
        assert_eq!(
            decode_stat(Some("text/plain; version=0.0.4"), text.as_bytes()).unwrap(),
            WireStat {
                pod_name: "hello-abc".into(),
                average_concurrent_requests: 3.5,
                average_proxied_concurrent_requests: 1.0,
                request_count: 12.0,
                proxied_request_count: 2.0,
                process_uptime: 42.0,
            }
        );
        assert!(matches!(
            parse_prometheus_stat("go_goroutines 1\n"),
            Err(ScrapeError::Malformed(m)) if m.contains("queue_average_concurrent_requests")
        ));
        assert!(matches!(
            parse_prometheus_stat("queue_average_concurrent_requests lots\n"),
            Err(ScrapeError::Malformed(m)) if m.contains("not a number")
        ));
    }

    fn message(namespace: &str, name: &str, concurrency: Option<f64>) -> WireStatMessage {
        WireStatMessage {
            namespace: namespace.into(),
            name: name.into(),
            stat: concurrency.map(|c| WireStat {
                pod_name: "activator-0".into(),
                average_concurrent_requests: c,
                ..WireStat::default()
            }),
        }
    }

    #[test]
    fn pushed_batches_decode_per_revision() {
        let body = WireStatMessages {
            messages: vec![message("a", "r1", Some(2.0)), message("b", "r2", Some(0.5))],
        }
        .encode_to_vec();
        let stats = decode_pushed(&body).unwrap();
        assert_eq!(
            stats,
            [
                (RevisionKey::new("a", "r1"), Stat::concurrency(2.0)),
                (RevisionKey::new("b", "r2"), Stat::concurrency(0.5)),
            ]
        );
    }

    #[test]
    fn incomplete_pushes_are_refused_with_the_index() {
        let body = WireStatMessages {
            messages: vec![message("a", "r1", Some(2.0)), message("a", "r2", None)],
        }
        .encode_to_vec();
        assert_eq!(
            decode_pushed(&body).unwrap_err().to_string(),
            "messages[1]: stat is missing"
        );
        let body = WireStatMessages {
            messages: vec![message("", "r1", Some(2.0))],
        }
        .encode_to_vec();
        assert_eq!(
            decode_pushed(&body).unwrap_err().to_string(),
            "messages[0]: namespace is empty"
        );
        assert!(matches!(
            decode_pushed(b"\xff\xff"),
            Err(PushError::Malformed(_))
        ));
    }
}
