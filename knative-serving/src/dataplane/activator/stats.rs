//! What the activator tells the autoscaler: the concurrency of each revision it serves.
//!
//! [`ConcurrencyReporter`] counts requests in and out per revision and, as Knative's activator
//! does, sends a stat **at once** on the first request to a revision (so a revision at zero
//! starts scaling up without waiting for the next tick), then one stat per revision every
//! reporting interval with the time-weighted average concurrency and the request count. The
//! stats go to a [`StatSink`]: [`HttpStatSink`] POSTs them as protobuf
//! [`WireStatMessages`] to the autoscaler's [`STAT_PUSH_PATH`]; a tokio channel sender is a
//! sink too, for tests and embedders.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use tokio::sync::mpsc;

use super::RevisionKey;
use crate::autoscaler::wire::{
    PROTOBUF_CONTENT_TYPE, STAT_PUSH_PATH, WireStat, WireStatMessage, WireStatMessages,
};

/// Where the activator's stats go.
pub trait StatSink: Send + Sync + fmt::Debug + 'static {
    /// Hands over one batch. Must not block: the first-request stat is pushed from the request
    /// path.
    fn push(&self, stats: WireStatMessages);
}

impl StatSink for mpsc::UnboundedSender<WireStatMessages> {
    fn push(&self, stats: WireStatMessages) {
        if self.send(stats).is_err() {
            tracing::warn!("stat receiver gone; activator stats dropped");
        }
    }
}

/// A sink that POSTs each batch, protobuf-encoded, to `{autoscaler}/stats`. Batches are sent in
/// order by a background task; when the autoscaler falls 64 batches behind, new ones are dropped
/// with a warning (the next tick carries fresh numbers anyway).
#[derive(Debug, Clone)]
pub struct HttpStatSink {
    tx: mpsc::Sender<WireStatMessages>,
}

impl HttpStatSink {
    /// Starts the sender task (needs a tokio runtime) for the autoscaler at `autoscaler`, e.g.
    /// `http://autoscaler.knative-serving.svc.cluster.local:8080`.
    ///
    /// # Errors
    /// When `autoscaler` plus [`STAT_PUSH_PATH`] is not a valid `http://` URI.
    pub fn spawn(autoscaler: &str) -> Result<Self, http::Error> {
        let uri: Uri = format!("{}{STAT_PUSH_PATH}", autoscaler.trim_end_matches('/')).parse()?;
        let (tx, mut rx) = mpsc::channel::<WireStatMessages>(64);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(uri.clone())
                    .header(header::CONTENT_TYPE, PROTOBUF_CONTENT_TYPE)
                    .body(Full::new(Bytes::from(batch.encode_to_vec())));
                let Ok(request) = request else { continue };
                match client.request(request).await {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => {
                        tracing::warn!(status = %response.status(), %uri, "autoscaler refused stats");
                    }
                    Err(err) => tracing::warn!(%err, %uri, "cannot push stats to the autoscaler"),
                }
            }
        });
        Ok(Self { tx })
    }
}

impl StatSink for HttpStatSink {
    fn push(&self, stats: WireStatMessages) {
        if let Err(err) = self.tx.try_send(stats) {
            tracing::warn!(%err, "autoscaler stat queue full; batch dropped");
        }
    }
}

/// Counts the requests of one revision over a reporting window (pure: time comes in).
#[derive(Debug, Clone)]
pub struct RequestStats {
    in_flight: u64,
    last_change: Instant,
    window_start: Instant,
    /// Requests × seconds since the window started.
    area: f64,
    requests: u64,
}

/// One window's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Time-weighted average of the requests in flight over the window.
    pub average_concurrency: f64,
    /// Requests that arrived in the window.
    pub request_count: u64,
    /// Requests in flight at the end of the window.
    pub in_flight: u64,
}

impl RequestStats {
    /// An empty window starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            in_flight: 0,
            last_change: now,
            window_start: now,
            area: 0.0,
            requests: 0,
        }
    }

    /// A request arrived at `now`.
    pub fn request_in(&mut self, now: Instant) {
        self.advance(now);
        self.in_flight += 1;
        self.requests += 1;
    }

    /// A request finished at `now`.
    pub fn request_out(&mut self, now: Instant) {
        self.advance(now);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The window ending at `now`; a new one starts.
    pub fn report(&mut self, now: Instant) -> Report {
        self.advance(now);
        let span = now
            .saturating_duration_since(self.window_start)
            .as_secs_f64();
        let average_concurrency = if span > 0.0 {
            self.area / span
        } else {
            self.in_flight as f64
        };
        let report = Report {
            average_concurrency,
            request_count: self.requests,
            in_flight: self.in_flight,
        };
        self.window_start = now;
        self.area = 0.0;
        self.requests = 0;
        report
    }

    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_change);
        self.area += self.in_flight as f64 * elapsed.as_secs_f64();
        self.last_change = self.last_change.max(now);
    }
}

/// The activator's per-revision request counts, reported to a [`StatSink`].
#[derive(Debug)]
pub struct ConcurrencyReporter {
    pod_name: String,
    sink: Arc<dyn StatSink>,
    revisions: Mutex<HashMap<RevisionKey, Entry>>,
}

#[derive(Debug)]
struct Entry {
    stats: RequestStats,
    /// The first request was already reported on its own and must not be counted twice.
    reported_first: bool,
}

impl ConcurrencyReporter {
    /// A reporter naming itself `pod_name` in its stats.
    pub fn new(pod_name: impl Into<String>, sink: Arc<dyn StatSink>) -> Self {
        Self {
            pod_name: pod_name.into(),
            sink,
            revisions: Mutex::new(HashMap::new()),
        }
    }

    /// A request for `revision` arrived at `now`. The first one since the revision was last
    /// idle is pushed to the sink at once (concurrency 1, one request).
    pub fn request_in(&self, revision: &RevisionKey, now: Instant) {
        let first = {
            let mut revisions = self.lock();
            if let Some(entry) = revisions.get_mut(revision) {
                entry.stats.request_in(now);
                false
            } else {
                let mut stats = RequestStats::new(now);
                stats.request_in(now);
                revisions.insert(
                    revision.clone(),
                    Entry {
                        stats,
                        reported_first: true,
                    },
                );
                true
            }
        };
        if first {
            self.sink.push(WireStatMessages {
                messages: vec![self.message(revision, 1.0, 1.0)],
            });
        }
    }

    /// A request for `revision` finished at `now`.
    pub fn request_out(&self, revision: &RevisionKey, now: Instant) {
        if let Some(entry) = self.lock().get_mut(revision) {
            entry.stats.request_out(now);
        }
    }

    /// The stats of every revision for the window ending at `now`. Revisions with nothing in
    /// flight and no request in the window are reported one last time, then forgotten (so that
    /// their next request counts as a first one again).
    pub fn report(&self, now: Instant) -> WireStatMessages {
        let mut revisions = self.lock();
        let mut messages = Vec::with_capacity(revisions.len());
        revisions.retain(|revision, entry| {
            let report = entry.stats.report(now);
            let mut requests = report.request_count;
            if std::mem::take(&mut entry.reported_first) {
                requests = requests.saturating_sub(1);
            }
            messages.push(self.message(revision, report.average_concurrency, requests as f64));
            report.in_flight > 0 || report.request_count > 0
        });
        WireStatMessages { messages }
    }

    /// Pushes [`report`](Self::report) to the sink every `interval`, forever.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let stats = self.report(Instant::now());
            if !stats.messages.is_empty() {
                self.sink.push(stats);
            }
        }
    }

    fn message(&self, revision: &RevisionKey, concurrency: f64, requests: f64) -> WireStatMessage {
        WireStatMessage {
            namespace: revision.namespace.clone(),
            name: revision.name.clone(),
            stat: Some(WireStat {
                pod_name: self.pod_name.clone(),
                average_concurrent_requests: concurrency,
                request_count: requests,
                ..WireStat::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RevisionKey, Entry>> {
        self.revisions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, millis: u64) -> Instant {
        base + Duration::from_millis(millis)
    }

    #[test]
    fn average_concurrency_is_weighted_by_time() {
        let t0 = Instant::now();
        let mut stats = RequestStats::new(t0);
        stats.request_in(t0);
        stats.request_in(at(t0, 500));
        stats.request_out(at(t0, 750));
        // 1 request for 500 ms, 2 for 250 ms, 1 for 250 ms: 1.25 on average over 1 s.
        let report = stats.report(at(t0, 1000));
        assert!((report.average_concurrency - 1.25).abs() < 1e-9);
        assert_eq!(report.request_count, 2);
        assert_eq!(report.in_flight, 1);
    }

    #[test]
    fn a_new_window_starts_after_each_report() {
        let t0 = Instant::now();
        let mut stats = RequestStats::new(t0);
        stats.request_in(t0);
        stats.report(at(t0, 1000));
        let report = stats.report(at(t0, 2000));
        assert!((report.average_concurrency - 1.0).abs() < 1e-9);
        assert_eq!(report.request_count, 0);
    }

    fn reporter() -> (
        ConcurrencyReporter,
        mpsc::UnboundedReceiver<WireStatMessages>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ConcurrencyReporter::new("activator-0", Arc::new(tx)), rx)
    }

    fn key() -> RevisionKey {
        RevisionKey::new("default", "hello-00001")
    }

    #[test]
    fn the_first_request_is_pushed_at_once_and_not_counted_twice() {
        let (reporter, mut rx) = reporter();
        let t0 = Instant::now();
        reporter.request_in(&key(), t0);
        reporter.request_in(&key(), t0);
        let pushed = rx.try_recv().expect("first request pushed at once");
        let stat = pushed.messages[0].stat.clone().unwrap();
        assert_eq!(pushed.messages[0].name, "hello-00001");
        assert_eq!(stat.pod_name, "activator-0");
        assert_eq!(stat.average_concurrent_requests, 1.0);
        assert_eq!(stat.request_count, 1.0);
        assert!(rx.try_recv().is_err(), "only the first request is pushed");

        let report = reporter.report(at(t0, 1000));
        let stat = report.messages[0].stat.clone().unwrap();
        assert_eq!(stat.request_count, 1.0, "the second request only");
        assert!((stat.average_concurrent_requests - 2.0).abs() < 1e-9);
    }

    #[test]
    fn an_idle_revision_is_reported_once_more_then_forgotten() {
        let (reporter, mut rx) = reporter();
        let t0 = Instant::now();
        reporter.request_in(&key(), t0);
        reporter.request_out(&key(), at(t0, 100));
        assert_eq!(reporter.report(at(t0, 1000)).messages.len(), 1);
        let idle = reporter.report(at(t0, 2000));
        assert_eq!(idle.messages.len(), 1);
        assert_eq!(
            idle.messages[0]
                .stat
                .clone()
                .unwrap()
                .average_concurrent_requests,
            0.0
        );
        assert!(reporter.report(at(t0, 3000)).messages.is_empty());
        let _ = rx.try_recv();
        reporter.request_in(&key(), at(t0, 3500));
        assert!(
            rx.try_recv().is_ok(),
            "a request after idling is a first request again"
        );
    }
}
