//! A revision's metric windows, as knative/serving's `MetricCollector` keeps them per revision
//! (`pkg/autoscaler/metrics/collector.go`): every stat (a scrape of the revision's pods, or an
//! activator push) goes into a stable and a panic window for concurrency and for requests per
//! second; the autoscaler reads their averages.
//!
//! ```
//! use std::collections::BTreeMap;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_core::config::AutoscalerConfig;
//! use knative_serving::autoscaler::metrics::{MetricSpec, RevisionMetrics, ScalingMetric, Stat};
//! use knative_serving::autoscaler::AutoscalerParams;
//!
//! let config = AutoscalerConfig::default();
//! let annotations = BTreeMap::new();
//! let now = Timestamp::from_second(1_700_000_000).unwrap();
//! let spec = MetricSpec::new(&AutoscalerParams::new(&annotations, &config, now));
//! assert_eq!(spec.panic_window, std::time::Duration::from_secs(6));
//!
//! let mut metrics = RevisionMetrics::new(&spec);
//! metrics.record(now, &Stat::concurrency(42.0));
//! assert_eq!(metrics.stable_and_panic(ScalingMetric::Concurrency, now), Ok((42.0, 42.0)));
//! ```

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::AutoscalerParams;
use super::aggregation::{TimedFloat64Buckets, smoothing_coefficient};
use crate::apis::autoscaling::{
    METRIC_AGGREGATION_ALGORITHM_ANNOTATION, PANIC_WINDOW_PERCENTAGE_ANNOTATION, RPS,
};

/// The width of a metric bucket: queue-proxies are scraped once a second (`BucketSize`).
pub const BUCKET_SIZE: Duration = Duration::from_secs(1);

/// One measurement of a revision, summed over its pods (Knative's `metrics.Stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// Requests in flight on average over the measurement.
    pub average_concurrent_requests: f64,
    /// The part of `average_concurrent_requests` that came through the activator (counted by
    /// the activator's own stats, so subtracted here).
    pub average_proxied_concurrent_requests: f64,
    /// Requests received since the previous stat (about one second: requests per second).
    pub request_count: f64,
    /// The part of `request_count` that came through the activator.
    pub proxied_request_count: f64,
}

impl Stat {
    /// A stat of `concurrency` requests in flight and nothing else.
    pub fn concurrency(concurrency: f64) -> Self {
        Self {
            average_concurrent_requests: concurrency,
            ..Self::default()
        }
    }
}

/// The metric a revision scales on (`autoscaling.knative.dev/metric`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ScalingMetric {
    /// Requests in flight per pod (the default).
    #[default]
    Concurrency,
    /// Requests per second per pod.
    Rps,
}

impl ScalingMetric {
    /// The metric an annotation value names: `rps`, or concurrency for anything else, as
    /// Knative's decider falls back to concurrency.
    pub fn from_annotation(value: Option<&str>) -> Self {
        match value {
            Some(RPS) => Self::Rps,
            _ => Self::Concurrency,
        }
    }
}

/// How a window's buckets are averaged (`autoscaling.knative.dev/metric-aggregation-algorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AggregationAlgorithm {
    /// The plain mean of the window's buckets (the default).
    #[default]
    Linear,
    /// Recent buckets weigh exponentially more (`weighted-exponential`).
    WeightedExponential,
}

impl AggregationAlgorithm {
    /// The algorithm an annotation value names; anything but `weighted-exponential` (or
    /// `weightedExponential`) is linear.
    pub fn from_annotation(value: Option<&str>) -> Self {
        match value {
            Some("weighted-exponential" | "weightedExponential") => Self::WeightedExponential,
            _ => Self::Linear,
        }
    }
}

/// The windows a revision's metrics are kept over (Knative's `Metric` spec, from `MakeMetric`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricSpec {
    /// The stable window (`autoscaling.knative.dev/window`, else `stable-window`).
    pub stable_window: Duration,
    /// The panic window: the stable window times the panic window percentage, rounded to a
    /// second and at least one bucket.
    pub panic_window: Duration,
    /// How the windows are averaged.
    pub algorithm: AggregationAlgorithm,
}

impl MetricSpec {
    /// Knative's `MakeMetric`: the windows from the revision's annotations, falling back on
    /// `config-autoscaler`. Annotations that do not parse fall back too (the webhook rejects
    /// them before they get here).
    pub fn new(params: &AutoscalerParams<'_>) -> Self {
        let stable_window = params.stable_window();
        let percentage = params
            .float_annotation(PANIC_WINDOW_PERCENTAGE_ANNOTATION)
            .unwrap_or(params.config.panic_window_percentage);
        Self {
            stable_window,
            panic_window: panic_window(stable_window, percentage),
            algorithm: AggregationAlgorithm::from_annotation(
                METRIC_AGGREGATION_ALGORITHM_ANNOTATION
                    .get(params.annotations)
                    .map(|(_, v)| v),
            ),
        }
    }
}

/// `time.Duration(float64(stable) * percentage / 100).Round(time.Second)`, at least a bucket.
fn panic_window(stable_window: Duration, percentage: f64) -> Duration {
    const SECOND: i64 = 1_000_000_000;
    let stable = i64::try_from(stable_window.as_nanos()).unwrap_or(i64::MAX);
    // Go converts the float to a Duration by truncation (saturating here).
    let nanos = (stable as f64 * percentage / 100.0) as i64;
    let remainder = nanos.rem_euclid(SECOND);
    let rounded = if remainder + remainder < SECOND {
        nanos - remainder
    } else {
        nanos.saturating_add(SECOND - remainder)
    };
    Duration::from_nanos(u64::try_from(rounded).unwrap_or(0)).max(BUCKET_SIZE)
}

/// The averages of a metric were asked for while nothing had been recorded for a whole stable
/// window (Knative's `ErrNoData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no data available")]
pub struct NoData;

/// The metric windows of one revision (a `collection` of Knative's `MetricCollector`): stable
/// and panic windows of concurrency and of requests per second.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionMetrics {
    concurrency: TimedFloat64Buckets,
    concurrency_panic: TimedFloat64Buckets,
    rps: TimedFloat64Buckets,
    rps_panic: TimedFloat64Buckets,
    /// The smoothing coefficients of the stable and the panic windows when they are averaged
    /// with exponential weights (Knative's `WeightedFloat64Buckets`); `None` when linear.
    weights: Option<(f64, f64)>,
}

impl RevisionMetrics {
    /// Empty windows as `spec` describes them.
    pub fn new(spec: &MetricSpec) -> Self {
        let window = |w| TimedFloat64Buckets::new(w, BUCKET_SIZE);
        let mut metrics = Self {
            concurrency: window(spec.stable_window),
            concurrency_panic: window(spec.panic_window),
            rps: window(spec.stable_window),
            rps_panic: window(spec.panic_window),
            weights: None,
        };
        if spec.algorithm == AggregationAlgorithm::WeightedExponential {
            metrics.weights = Some(metrics.coefficients());
        }
        metrics
    }

    /// Records a stat taken at `now`. Requests proxied by the activator are subtracted: the
    /// activator reports them itself.
    pub fn record(&mut self, now: Timestamp, stat: &Stat) {
        let concurrency =
            stat.average_concurrent_requests - stat.average_proxied_concurrent_requests;
        self.concurrency.record(now, concurrency);
        self.concurrency_panic.record(now, concurrency);
        let rps = stat.request_count - stat.proxied_request_count;
        self.rps.record(now, rps);
        self.rps_panic.record(now, rps);
    }

    /// The stable and panic averages of `metric` at `now` (`StableAndPanicConcurrency`,
    /// `StableAndPanicRPS`).
    ///
    /// # Errors
    /// [`NoData`] when nothing was recorded for a whole stable window.
    pub fn stable_and_panic(
        &self,
        metric: ScalingMetric,
        now: Timestamp,
    ) -> Result<(f64, f64), NoData> {
        let (stable, panic) = match metric {
            ScalingMetric::Concurrency => (&self.concurrency, &self.concurrency_panic),
            ScalingMetric::Rps => (&self.rps, &self.rps_panic),
        };
        if stable.is_empty(now) {
            return Err(NoData);
        }
        Ok(match self.weights {
            None => (stable.window_average(now), panic.window_average(now)),
            Some((stable_c, panic_c)) => (
                stable.weighted_average(stable_c, now),
                panic.weighted_average(panic_c, now),
            ),
        })
    }

    /// Applies a changed spec: windows are resized keeping their recent data (`updateMetric`).
    /// The algorithm is fixed at creation, as Knative fixes it (its annotation is immutable).
    pub fn update(&mut self, spec: &MetricSpec, now: Timestamp) {
        self.concurrency.resize_window(spec.stable_window, now);
        self.concurrency_panic.resize_window(spec.panic_window, now);
        self.rps.resize_window(spec.stable_window, now);
        self.rps_panic.resize_window(spec.panic_window, now);
        if self.weights.is_some() {
            self.weights = Some(self.coefficients());
        }
    }

    /// The aggregation algorithm of the windows.
    pub fn algorithm(&self) -> AggregationAlgorithm {
        match self.weights {
            None => AggregationAlgorithm::Linear,
            Some(_) => AggregationAlgorithm::WeightedExponential,
        }
    }

    /// The bytes these windows hold, themselves and their buckets (from their capacity).
    pub fn memory_footprint(&self) -> usize {
        let buckets = size_of::<TimedFloat64Buckets>();
        size_of::<Self>() - 4 * buckets
            + self.concurrency.memory_footprint()
            + self.concurrency_panic.memory_footprint()
            + self.rps.memory_footprint()
            + self.rps_panic.memory_footprint()
    }

    fn coefficients(&self) -> (f64, f64) {
        (
            smoothing_coefficient(self.concurrency.num_buckets()),
            smoothing_coefficient(self.concurrency_panic.num_buckets()),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use knative_core::config::AutoscalerConfig;

    use super::*;

    const BASE: i64 = 1_700_000_000;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(BASE + second).unwrap()
    }

    fn spec(annotations: &[(&str, &str)], config: &AutoscalerConfig) -> MetricSpec {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        MetricSpec::new(&AutoscalerParams::new(&annotations, config, at(0)))
    }

    #[test]
    fn windows_default_to_config_autoscaler() {
        let s = spec(&[], &AutoscalerConfig::default());
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
        assert_eq!(s.algorithm, AggregationAlgorithm::Linear);
    }

    #[test]
    fn window_annotation_sets_the_stable_window_and_scales_the_panic_window() {
        let s = spec(
            &[("autoscaling.knative.dev/window", "30s")],
            &AutoscalerConfig::default(),
        );
        assert_eq!(s.stable_window, Duration::from_secs(30));
        assert_eq!(s.panic_window, Duration::from_secs(3));
    }

    #[test]
    fn panic_window_percentage_annotation_overrides_config() {
        let s = spec(
            &[("autoscaling.knative.dev/panic-window-percentage", "20")],
            &AutoscalerConfig::default(),
        );
        assert_eq!(s.panic_window, Duration::from_secs(12));
        let s = spec(
            &[("autoscaling.knative.dev/panicWindowPercentage", "50")],
            &AutoscalerConfig::default(),
        );
        assert_eq!(s.panic_window, Duration::from_secs(30));
    }

    #[test]
    fn panic_window_is_rounded_to_a_second_and_at_least_one() {
        assert_eq!(
            panic_window(Duration::from_secs(25), 10.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            panic_window(Duration::from_secs(24), 10.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            panic_window(Duration::from_secs(6), 1.0),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn unparsable_annotations_fall_back_on_config() {
        let s = spec(
            &[
                ("autoscaling.knative.dev/window", "soon"),
                ("autoscaling.knative.dev/panic-window-percentage", "lots"),
            ],
            &AutoscalerConfig::default(),
        );
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
    }

    #[test]
    fn aggregation_algorithm_annotation_selects_weighted_windows() {
        for value in ["weighted-exponential", "weightedExponential"] {
            let s = spec(
                &[(
                    "autoscaling.knative.dev/metric-aggregation-algorithm",
                    value,
                )],
                &AutoscalerConfig::default(),
            );
            assert_eq!(s.algorithm, AggregationAlgorithm::WeightedExponential);
        }
        let mut metrics = RevisionMetrics::new(&MetricSpec {
            stable_window: Duration::from_secs(10),
            panic_window: Duration::from_secs(3),
            algorithm: AggregationAlgorithm::WeightedExponential,
        });
        metrics.record(at(0), &Stat::concurrency(10.0));
        let (stable, _) = metrics
            .stable_and_panic(ScalingMetric::Concurrency, at(0))
            .unwrap();
        assert!(
            stable < 10.0,
            "a weighted average of one bucket is a fraction of it"
        );
    }

    #[test]
    fn proxied_requests_are_not_counted_twice() {
        let mut metrics = RevisionMetrics::new(&spec(&[], &AutoscalerConfig::default()));
        metrics.record(
            at(0),
            &Stat {
                average_concurrent_requests: 10.0,
                average_proxied_concurrent_requests: 4.0,
                request_count: 100.0,
                proxied_request_count: 30.0,
            },
        );
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Concurrency, at(0)),
            Ok((6.0, 6.0))
        );
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Rps, at(0)),
            Ok((70.0, 70.0))
        );
    }

    #[test]
    fn stable_and_panic_windows_average_their_own_spans() {
        let mut metrics = RevisionMetrics::new(&spec(&[], &AutoscalerConfig::default()));
        for s in 0..60 {
            metrics.record(at(s), &Stat::concurrency(if s < 54 { 0.0 } else { 60.0 }));
        }
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Concurrency, at(59)),
            Ok((6.0, 60.0))
        );
    }

    #[test]
    fn no_data_for_a_stable_window_is_an_error() {
        let mut metrics = RevisionMetrics::new(&spec(&[], &AutoscalerConfig::default()));
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Concurrency, at(0)),
            Err(NoData)
        );
        metrics.record(at(0), &Stat::concurrency(1.0));
        assert!(
            metrics
                .stable_and_panic(ScalingMetric::Concurrency, at(60))
                .is_ok()
        );
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Concurrency, at(61)),
            Err(NoData)
        );
    }

    #[test]
    fn update_resizes_the_windows() {
        let config = AutoscalerConfig::default();
        let mut metrics = RevisionMetrics::new(&spec(&[], &config));
        for s in 0..60 {
            metrics.record(at(s), &Stat::concurrency(s as f64));
        }
        metrics.update(
            &spec(&[("autoscaling.knative.dev/window", "10s")], &config),
            at(59),
        );
        // The ten newest seconds, 50..=59, and the newest one for the 1s panic window.
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Concurrency, at(59)),
            Ok((54.5, 59.0))
        );
    }

    #[test]
    fn metric_annotation_values() {
        assert_eq!(
            ScalingMetric::from_annotation(Some("rps")),
            ScalingMetric::Rps
        );
        assert_eq!(
            ScalingMetric::from_annotation(Some("concurrency")),
            ScalingMetric::Concurrency
        );
        assert_eq!(
            ScalingMetric::from_annotation(None),
            ScalingMetric::Concurrency
        );
    }

    #[test]
    fn weighted_windows_average_as_weighted_buckets_do() {
        let spec = MetricSpec {
            stable_window: Duration::from_secs(10),
            panic_window: Duration::from_secs(3),
            algorithm: AggregationAlgorithm::WeightedExponential,
        };
        let mut metrics = RevisionMetrics::new(&spec);
        let mut stable =
            super::super::aggregation::WeightedFloat64Buckets::new(spec.stable_window, BUCKET_SIZE);
        let mut panic =
            super::super::aggregation::WeightedFloat64Buckets::new(spec.panic_window, BUCKET_SIZE);
        for s in 0..20 {
            let v = (s * 7 % 11) as f64;
            metrics.record(at(s), &Stat::concurrency(v));
            stable.record(at(s), v);
            panic.record(at(s), v);
        }
        assert_eq!(
            metrics.stable_and_panic(ScalingMetric::Concurrency, at(21)),
            Ok((stable.window_average(at(21)), panic.window_average(at(21))))
        );
        assert_eq!(
            metrics.algorithm(),
            AggregationAlgorithm::WeightedExponential
        );
    }

    #[test]
    fn memory_footprint_counts_every_window() {
        let metrics = RevisionMetrics::new(&spec(&[], &AutoscalerConfig::default()));
        // 60 + 6 buckets for each of concurrency and rps.
        assert!(metrics.memory_footprint() >= 132 * 8 + size_of::<RevisionMetrics>());
        assert!(metrics.memory_footprint() < 132 * 8 + size_of::<RevisionMetrics>() + 64);
    }
}
