//! The Knative Pod Autoscaler: knative/serving's decider (`pkg/autoscaler/scaling/autoscaler.go`,
//! `Scale()`) and its settings (`DeciderSpec`, from `MakeDecider` and `ResolveMetricTarget`).
//!
//! Every decision:
//! 1. desired pods from the stable and the panic average: `ceil(observed / target)`, kept
//!    within what the max scale-up and scale-down rates allow from the ready pods (at least one
//!    pod counts), and raised to the activation scale when there is any load;
//! 2. panic mode starts when the panic average asks for `panic-threshold` times the ready pods,
//!    lasts while it keeps asking, and ends a stable window after it last did; in panic mode
//!    the larger of both counts applies and the scale never goes down;
//! 3. with a scale-down delay, the largest decision of the last `scale-down-delay` applies;
//! 4. the excess burst capacity is `floor(ready * total - target burst capacity - panic)`, or 0
//!    and -1 for target burst capacities 0 and -1.
//!
//! ```
//! use std::collections::BTreeMap;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_core::config::AutoscalerConfig;
//! use knative_serving::autoscaler::AutoscalerParams;
//! use knative_serving::autoscaler::kpa::{DeciderSpec, Kpa};
//!
//! let config = AutoscalerConfig::default();
//! let annotations = BTreeMap::new();
//! let now = Timestamp::from_second(1_700_000_000).unwrap();
//! let params = AutoscalerParams { container_concurrency: 10, ..AutoscalerParams::new(&annotations, &config, now) };
//! let spec = DeciderSpec::new(&params);
//! assert_eq!((spec.target_value, spec.total_value), (7.0, 10.0));
//!
//! let mut kpa = Kpa::new(spec, 1, now);
//! // 70 requests in flight over both windows on one pod: ten pods, and panic (10 ≥ 2 × 1).
//! let decision = kpa.decide(now, 1, Ok((70.0, 70.0)));
//! assert_eq!((decision.desired_scale, decision.panic), (10, true));
//! ```

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::aggregation::MaxTimeWindow;
use super::metrics::{NoData, ScalingMetric};
use super::{Autoscaler, AutoscalerError, AutoscalerParams, MetricSnapshot, ScaleRecommendation};
use crate::apis::autoscaling::{
    INITIAL_SCALE_ANNOTATION, METRIC_ANNOTATION_KEY, PANIC_THRESHOLD_PERCENTAGE_ANNOTATION,
    SCALE_DOWN_DELAY_ANNOTATION, TARGET_ANNOTATION_KEY, TARGET_BURST_CAPACITY_ANNOTATION,
    TARGET_MIN, TARGET_UTILIZATION_PERCENTAGE_ANNOTATION,
};

/// The class of the Knative Pod Autoscaler.
pub const KPA_CLASS: &str = crate::apis::autoscaling::KPA;

/// The smallest number of pods a revision gets when it has any load
/// (`autoscaling.knative.dev/activation-scale`, default 1).
pub const ACTIVATION_SCALE_ANNOTATION_KEY: &str = "autoscaling.knative.dev/activation-scale";

/// How often Knative's autoscaler decides; also the granularity of the scale-down delay window.
pub const TICK_INTERVAL: Duration = Duration::from_secs(2);

/// The target utilization of metrics other than concurrency (`TargetUtilization` of Knative's
/// autoscaler config: not a `config-autoscaler` key).
pub const TARGET_UTILIZATION_DEFAULT: f64 = 0.7;

/// The settings of one revision's decider (Knative's `DeciderSpec`).
#[derive(Clone, Debug, PartialEq)]
pub struct DeciderSpec {
    /// The largest ratio of desired to ready pods per decision.
    pub max_scale_up_rate: f64,
    /// The largest ratio of ready to desired pods per decision.
    pub max_scale_down_rate: f64,
    /// The metric scaled on.
    pub scaling_metric: ScalingMetric,
    /// The value of the metric to keep per pod.
    pub target_value: f64,
    /// The most a pod can take of the metric (`target_value` ≤ `total_value`).
    pub total_value: f64,
    /// Spare capacity to keep before the activator leaves the request path (-1: never leaves).
    pub target_burst_capacity: f64,
    /// Requests one activator takes.
    pub activator_capacity: f64,
    /// The ratio of panic-window demand to ready pods that starts panic mode (a fraction: 2.0
    /// for 200%).
    pub panic_threshold: f64,
    /// The stable window: panic mode ends a stable window after the load last justified it.
    pub stable_window: Duration,
    /// How long a lower scale must persist before it applies.
    pub scale_down_delay: Duration,
    /// The revision's initial scale.
    pub initial_scale: i32,
    /// Whether a route reaches the revision; if not, it may scale down without limit.
    pub reachable: bool,
    /// The least number of pods while there is any load.
    pub activation_scale: i32,
}

impl DeciderSpec {
    /// Knative's `MakeDecider`: annotations override `config-autoscaler`; annotations that do
    /// not parse are ignored (the webhook rejects them first).
    pub fn new(params: &AutoscalerParams<'_>) -> Self {
        let config = params.config;
        let scaling_metric = ScalingMetric::from_annotation(
            params
                .annotations
                .get(METRIC_ANNOTATION_KEY)
                .map(String::as_str),
        );
        let (target_value, total_value) = resolve_metric_target(params, scaling_metric);
        let panic_threshold_percentage = params
            .float_annotation(PANIC_THRESHOLD_PERCENTAGE_ANNOTATION)
            .unwrap_or(config.panic_threshold_percentage);
        let scale_down_delay = SCALE_DOWN_DELAY_ANNOTATION
            .get(params.annotations)
            .and_then(|(_, v)| knative_core::config::parse_go_duration(v).ok())
            .unwrap_or(config.scale_down_delay);
        Self {
            max_scale_up_rate: config.max_scale_up_rate,
            max_scale_down_rate: config.max_scale_down_rate,
            scaling_metric,
            target_value,
            total_value,
            target_burst_capacity: params
                .float_annotation(TARGET_BURST_CAPACITY_ANNOTATION)
                .unwrap_or(config.target_burst_capacity),
            activator_capacity: config.activator_capacity,
            panic_threshold: panic_threshold_percentage / 100.0,
            stable_window: params.stable_window(),
            scale_down_delay,
            initial_scale: initial_scale(params),
            reachable: params.reachable,
            activation_scale: int32_annotation(params, ACTIVATION_SCALE_ANNOTATION_KEY)
                .unwrap_or(1),
        }
    }
}

/// Knative's `ResolveMetricTarget`: the target per pod and the most a pod can take.
///
/// The total is the container concurrency, or `container-concurrency-target-default` when it is
/// unlimited (rps: `requests-per-second-target-default`); a `target` annotation replaces it (for
/// concurrency no higher than the container concurrency). The target is the total times the
/// target utilization (`container-concurrency-target-percentage`, or the
/// `target-utilization-percentage` annotation), at least 0.01.
pub fn resolve_metric_target(params: &AutoscalerParams<'_>, metric: ScalingMetric) -> (f64, f64) {
    let config = params.config;
    let (mut total, mut utilization) = match metric {
        ScalingMetric::Rps => (config.rps_target_default, TARGET_UTILIZATION_DEFAULT),
        ScalingMetric::Concurrency => {
            let total = if params.container_concurrency == 0 {
                config.container_concurrency_target_default
            } else {
                params.container_concurrency as f64
            };
            (total, config.container_concurrency_target_fraction)
        }
    };
    if let Some(target) = params
        .annotations
        .get(TARGET_ANNOTATION_KEY)
        .and_then(|v| v.parse::<f64>().ok())
    {
        total = target;
        if metric == ScalingMetric::Concurrency && params.container_concurrency != 0 {
            total = target.min(params.container_concurrency as f64);
        }
    }
    if let Some(percentage) = params.float_annotation(TARGET_UTILIZATION_PERCENTAGE_ANNOTATION) {
        utilization = percentage / 100.0;
    }
    ((total * utilization).max(TARGET_MIN), total)
}

/// Knative's `GetInitialScale`: the annotation, unless it is 0 where zero is not allowed.
fn initial_scale(params: &AutoscalerParams<'_>) -> i32 {
    let config = params.config;
    match INITIAL_SCALE_ANNOTATION
        .get(params.annotations)
        .and_then(|(_, v)| v.parse::<i32>().ok())
    {
        Some(0) if !config.allow_zero_initial_scale => config.initial_scale,
        Some(scale) => scale,
        None => config.initial_scale,
    }
}

fn int32_annotation(params: &AutoscalerParams<'_>, key: &str) -> Option<i32> {
    params.annotations.get(key).and_then(|v| v.parse().ok())
}

/// The KPA decider of one revision: its spec and its state (panic mode, the scale-down delay
/// window). Pure: [`Kpa::decide`] takes the time and the observations as arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Kpa {
    spec: DeciderSpec,
    /// When panic mode was last (re)started; `None` outside panic mode.
    panic_time: Option<Timestamp>,
    /// The most pods asked for in this panic.
    max_panic_pods: i32,
    /// The recommendations of the last scale-down delay, when there is one.
    delay_window: Option<MaxTimeWindow>,
}

impl Kpa {
    /// A decider made at `now` for a revision with `ready_pods` ready pods. With more than one
    /// ready pod it starts in panic mode, holding that scale until it has seen a stable window
    /// of data (metrics are lost when an autoscaler restarts).
    pub fn new(spec: DeciderSpec, ready_pods: i32, now: Timestamp) -> Self {
        Self {
            delay_window: delay_window(&spec),
            spec,
            panic_time: (ready_pods > 1).then_some(now),
            max_panic_pods: ready_pods,
        }
    }

    /// The decider's settings.
    pub fn spec(&self) -> &DeciderSpec {
        &self.spec
    }

    /// Replaces the settings, keeping panic mode and, unless the scale-down delay changed, its
    /// window.
    pub fn set_spec(&mut self, spec: DeciderSpec) {
        if spec.scale_down_delay != self.spec.scale_down_delay {
            self.delay_window = delay_window(&spec);
        }
        self.spec = spec;
    }

    /// Whether the decider is in panic mode.
    pub fn in_panic(&self) -> bool {
        self.panic_time.is_some()
    }

    /// Knative's `Scale()`: the recommendation at `now` for a revision with `ready_pods` ready
    /// pods whose scaling metric averages `observed` (stable, panic) over its windows.
    pub fn decide(
        &mut self,
        now: Timestamp,
        ready_pods: i32,
        observed: Result<(f64, f64), NoData>,
    ) -> ScaleRecommendation {
        let Ok((observed_stable, observed_panic)) = observed else {
            return ScaleRecommendation::invalid(self.in_panic());
        };
        let spec = &self.spec;
        // A revision without ready pods counts as one, so that it can scale up at all.
        let ready = f64::from(ready_pods.max(1));

        // Grow by at least one pod even when the rate is too small to make one.
        let max_scale_up = (spec.max_scale_up_rate * ready).ceil();
        let max_scale_down = if spec.reachable {
            (ready / spec.max_scale_down_rate).floor()
        } else {
            0.0
        };

        let stable_pods = (observed_stable / spec.target_value).ceil();
        let panic_pods = (observed_panic / spec.target_value).ceil();
        let mut desired_stable = stable_pods.max(max_scale_down).min(max_scale_up) as i32;
        let mut desired_panic = panic_pods.max(max_scale_down).min(max_scale_up) as i32;
        if spec.activation_scale > 1 {
            if stable_pods > 0.0 && spec.activation_scale > desired_stable {
                desired_stable = spec.activation_scale;
            }
            if panic_pods > 0.0 && spec.activation_scale > desired_panic {
                desired_panic = spec.activation_scale;
            }
        }

        let over_panic_threshold = panic_pods / ready >= spec.panic_threshold;
        if over_panic_threshold {
            // Start panicking, or extend the panic.
            self.panic_time = Some(now);
        } else if let Some(since) = self.panic_time
            && since.as_nanosecond() + nanos(spec.stable_window) < now.as_nanosecond()
        {
            // The surge has made its way into the stable window.
            self.panic_time = None;
            self.max_panic_pods = 0;
        }

        let mut desired = desired_stable;
        if self.panic_time.is_some() {
            // Provision for the larger of both windows, and never scale down while panicking.
            desired = desired.max(desired_panic).max(self.max_panic_pods);
            self.max_panic_pods = desired;
        }

        if let Some(window) = &mut self.delay_window {
            window.record(now, desired);
            desired = window.current();
        }

        let excess_burst_capacity = if spec.target_burst_capacity == 0.0 {
            0.0
        } else if spec.target_burst_capacity > 0.0 {
            let total_capacity = f64::from(ready_pods) * spec.total_value;
            (total_capacity - spec.target_burst_capacity - observed_panic).floor()
        } else {
            -1.0
        };

        ScaleRecommendation {
            desired_scale: desired,
            excess_burst_capacity: excess_burst_capacity as i32,
            panic: self.in_panic(),
            valid: true,
            observed_stable,
            observed_panic,
        }
    }
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

/// The window of the scale-down delay: only with a delay, since even a one-bucket window would
/// pick the larger of two decisions in one tick rather than the latest.
fn delay_window(spec: &DeciderSpec) -> Option<MaxTimeWindow> {
    (!spec.scale_down_delay.is_zero())
        .then(|| MaxTimeWindow::new(spec.scale_down_delay, TICK_INTERVAL))
}

impl Autoscaler for Kpa {
    fn scale(&mut self, snapshot: &MetricSnapshot<'_>) -> ScaleRecommendation {
        let observed = snapshot
            .metrics
            .stable_and_panic(self.spec.scaling_metric, snapshot.now);
        self.decide(snapshot.now, snapshot.ready_pods, observed)
    }

    fn update(&mut self, params: &AutoscalerParams<'_>) -> Result<(), AutoscalerError> {
        self.set_spec(DeciderSpec::new(params));
        Ok(())
    }

    fn memory_footprint(&self) -> usize {
        size_of::<Self>()
            + self
                .delay_window
                .as_ref()
                .map_or(0, |w| w.memory_footprint() - size_of::<MaxTimeWindow>())
    }
}

/// The registry's factory of the KPA class.
///
/// # Errors
/// Never: every set of params makes a KPA.
pub fn factory(params: &AutoscalerParams<'_>) -> Result<Box<dyn Autoscaler>, AutoscalerError> {
    Ok(Box::new(Kpa::new(
        DeciderSpec::new(params),
        params.ready_pods,
        params.now,
    )))
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

    fn spec_with(
        annotations: &[(&str, &str)],
        config: &AutoscalerConfig,
        container_concurrency: i64,
    ) -> DeciderSpec {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DeciderSpec::new(&AutoscalerParams {
            container_concurrency,
            ..AutoscalerParams::new(&annotations, config, at(0))
        })
    }

    fn spec(annotations: &[(&str, &str)]) -> DeciderSpec {
        spec_with(annotations, &AutoscalerConfig::default(), 0)
    }

    /// A decider with target 10 per pod (total 10, utilization 100%) and no burst capacity.
    fn simple() -> DeciderSpec {
        DeciderSpec {
            target_value: 10.0,
            total_value: 10.0,
            target_burst_capacity: 0.0,
            ..spec(&[])
        }
    }

    #[test]
    fn defaults_follow_config_autoscaler() {
        let s = spec(&[]);
        assert_eq!(s.scaling_metric, ScalingMetric::Concurrency);
        assert_eq!((s.target_value, s.total_value), (70.0, 100.0));
        assert_eq!(s.target_burst_capacity, 211.0);
        assert_eq!(s.panic_threshold, 2.0);
        assert_eq!((s.max_scale_up_rate, s.max_scale_down_rate), (1000.0, 2.0));
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.scale_down_delay, Duration::ZERO);
        assert_eq!(s.activator_capacity, 100.0);
        assert_eq!((s.initial_scale, s.activation_scale), (1, 1));
        assert!(s.reachable);
    }

    #[test]
    fn container_concurrency_is_the_total_instead_of_the_default() {
        let s = spec_with(&[], &AutoscalerConfig::default(), 10);
        assert_eq!((s.target_value, s.total_value), (7.0, 10.0));
    }

    #[test]
    fn target_percentage_of_config_scales_the_target() {
        let config = AutoscalerConfig {
            container_concurrency_target_fraction: 0.5,
            container_concurrency_target_default: 40.0,
            ..AutoscalerConfig::default()
        };
        let s = spec_with(&[], &config, 0);
        assert_eq!((s.target_value, s.total_value), (20.0, 40.0));
    }

    #[test]
    fn target_annotation_replaces_the_total_capped_by_container_concurrency() {
        let s = spec(&[("autoscaling.knative.dev/target", "50")]);
        assert_eq!((s.target_value, s.total_value), (35.0, 50.0));
        let s = spec_with(
            &[("autoscaling.knative.dev/target", "50")],
            &AutoscalerConfig::default(),
            10,
        );
        assert_eq!((s.target_value, s.total_value), (7.0, 10.0));
        let s = spec_with(
            &[("autoscaling.knative.dev/target", "5")],
            &AutoscalerConfig::default(),
            10,
        );
        assert_eq!((s.target_value, s.total_value), (3.5, 5.0));
    }

    #[test]
    fn target_utilization_annotation_overrides_the_percentage() {
        let s = spec(&[(
            "autoscaling.knative.dev/target-utilization-percentage",
            "50",
        )]);
        assert_eq!((s.target_value, s.total_value), (50.0, 100.0));
        let s = spec(&[("autoscaling.knative.dev/targetUtilizationPercentage", "100")]);
        assert_eq!(s.target_value, 100.0);
    }

    #[test]
    fn rps_targets_requests_per_second_default() {
        let s = spec(&[("autoscaling.knative.dev/metric", "rps")]);
        assert_eq!(s.scaling_metric, ScalingMetric::Rps);
        assert_eq!((s.target_value, s.total_value), (140.0, 200.0));
        // Container concurrency does not cap an rps target.
        let s = spec_with(
            &[
                ("autoscaling.knative.dev/metric", "rps"),
                ("autoscaling.knative.dev/target", "300"),
            ],
            &AutoscalerConfig::default(),
            10,
        );
        assert_eq!((s.target_value, s.total_value), (210.0, 300.0));
    }

    #[test]
    fn target_is_at_least_the_minimum() {
        let s = spec(&[("autoscaling.knative.dev/target", "0.001")]);
        assert_eq!(s.target_value, TARGET_MIN);
    }

    #[test]
    fn annotations_override_thresholds_burst_capacity_window_and_delay() {
        let s = spec(&[
            ("autoscaling.knative.dev/panic-threshold-percentage", "150"),
            ("autoscaling.knative.dev/target-burst-capacity", "-1"),
            ("autoscaling.knative.dev/window", "30s"),
            ("autoscaling.knative.dev/scale-down-delay", "20s"),
            ("autoscaling.knative.dev/activation-scale", "3"),
        ]);
        assert_eq!(s.panic_threshold, 1.5);
        assert_eq!(s.target_burst_capacity, -1.0);
        assert_eq!(s.stable_window, Duration::from_secs(30));
        assert_eq!(s.scale_down_delay, Duration::from_secs(20));
        assert_eq!(s.activation_scale, 3);
    }

    #[test]
    fn initial_scale_zero_needs_allow_zero_initial_scale() {
        assert_eq!(
            spec(&[("autoscaling.knative.dev/initial-scale", "3")]).initial_scale,
            3
        );
        assert_eq!(
            spec(&[("autoscaling.knative.dev/initial-scale", "0")]).initial_scale,
            1
        );
        let config = AutoscalerConfig {
            allow_zero_initial_scale: true,
            ..AutoscalerConfig::default()
        };
        assert_eq!(
            spec_with(&[("autoscaling.knative.dev/initialScale", "0")], &config, 0).initial_scale,
            0
        );
    }

    #[test]
    fn desired_pods_are_the_stable_average_over_the_target_rounded_up() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        let d = kpa.decide(at(0), 2, Ok((15.0, 15.0)));
        assert_eq!((d.desired_scale, d.panic, d.valid), (2, false, true));
        assert_eq!((d.observed_stable, d.observed_panic), (15.0, 15.0));
    }

    #[test]
    fn no_data_is_an_invalid_recommendation() {
        let mut kpa = Kpa::new(simple(), 3, at(0));
        let d = kpa.decide(at(0), 3, Err(NoData));
        assert!(!d.valid);
        assert!(d.panic);
    }

    #[test]
    fn scale_up_is_limited_by_the_max_scale_up_rate_but_at_least_one_pod() {
        let spec = DeciderSpec {
            max_scale_up_rate: 2.0,
            panic_threshold: 100.0,
            ..simple()
        };
        let mut kpa = Kpa::new(spec.clone(), 1, at(0));
        assert_eq!(kpa.decide(at(0), 3, Ok((1000.0, 0.0))).desired_scale, 6);
        let mut kpa = Kpa::new(
            DeciderSpec {
                max_scale_up_rate: 1.1,
                ..spec
            },
            1,
            at(0),
        );
        // ceil(1.1 × 3) = 4: one more pod even though 10% of 3 is not a pod.
        assert_eq!(kpa.decide(at(0), 3, Ok((1000.0, 0.0))).desired_scale, 4);
    }

    #[test]
    fn scale_down_is_limited_by_the_max_scale_down_rate() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        assert_eq!(kpa.decide(at(0), 10, Ok((0.0, 0.0))).desired_scale, 5);
        assert_eq!(kpa.decide(at(1), 5, Ok((0.0, 0.0))).desired_scale, 2);
        assert_eq!(kpa.decide(at(2), 1, Ok((0.0, 0.0))).desired_scale, 0);
    }

    #[test]
    fn an_unreachable_revision_scales_down_without_limit() {
        let mut kpa = Kpa::new(
            DeciderSpec {
                reachable: false,
                ..simple()
            },
            1,
            at(0),
        );
        assert_eq!(kpa.decide(at(0), 10, Ok((0.0, 0.0))).desired_scale, 0);
    }

    #[test]
    fn no_ready_pods_count_as_one() {
        let mut kpa = Kpa::new(simple(), 0, at(0));
        // The panic window asks for 2 pods, twice what one pod gives: panic.
        let d = kpa.decide(at(0), 0, Ok((5.0, 20.0)));
        assert_eq!((d.desired_scale, d.panic), (2, true));
    }

    #[test]
    fn panic_starts_at_the_threshold() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        let d = kpa.decide(at(0), 2, Ok((10.0, 30.0)));
        assert!(!d.panic, "3 pods for 2 ready is below 200%");
        assert_eq!(d.desired_scale, 1);
        let d = kpa.decide(at(1), 2, Ok((10.0, 40.0)));
        assert!(d.panic);
        // In panic mode the panic window's count applies.
        assert_eq!(d.desired_scale, 4);
    }

    #[test]
    fn panic_threshold_annotation_lowers_the_threshold() {
        let mut kpa = Kpa::new(
            DeciderSpec {
                panic_threshold: 1.5,
                ..simple()
            },
            1,
            at(0),
        );
        assert!(kpa.decide(at(0), 2, Ok((10.0, 30.0))).panic);
    }

    #[test]
    fn panic_mode_never_scales_down() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        assert_eq!(kpa.decide(at(0), 1, Ok((10.0, 100.0))).desired_scale, 10);
        let d = kpa.decide(at(1), 10, Ok((10.0, 30.0)));
        assert!(d.panic);
        assert_eq!(d.desired_scale, 10);
    }

    #[test]
    fn panic_mode_takes_the_larger_of_stable_and_panic() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        kpa.decide(at(0), 1, Ok((10.0, 30.0)));
        assert_eq!(kpa.decide(at(1), 3, Ok((80.0, 30.0))).desired_scale, 8);
    }

    #[test]
    fn panic_ends_a_stable_window_after_it_was_last_justified() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        kpa.decide(at(0), 1, Ok((10.0, 100.0)));
        // Extended at second 10.
        assert!(kpa.decide(at(10), 1, Ok((10.0, 100.0))).panic);
        assert!(kpa.decide(at(70), 10, Ok((10.0, 10.0))).panic);
        let d = kpa.decide(at(71), 10, Ok((10.0, 10.0)));
        assert!(!d.panic);
        // Back to stable mode, the scale-down rate limits the fall.
        assert_eq!(d.desired_scale, 5);
    }

    #[test]
    fn a_decider_made_with_several_ready_pods_starts_in_panic_and_holds_them() {
        let mut kpa = Kpa::new(simple(), 5, at(0));
        assert!(kpa.in_panic());
        let d = kpa.decide(at(1), 5, Ok((0.0, 0.0)));
        assert_eq!((d.desired_scale, d.panic), (5, true));
        let d = kpa.decide(at(61), 5, Ok((0.0, 0.0)));
        assert_eq!((d.desired_scale, d.panic), (2, false));
        assert!(!Kpa::new(simple(), 1, at(0)).in_panic());
    }

    #[test]
    fn scale_down_delay_applies_the_largest_recommendation_of_the_delay() {
        let spec = DeciderSpec {
            scale_down_delay: Duration::from_secs(10),
            ..simple()
        };
        let mut kpa = Kpa::new(spec, 1, at(0));
        assert_eq!(kpa.decide(at(0), 1, Ok((10.0, 10.0))).desired_scale, 1);
        // Stable load of 2 pods, then none: the 2 is held for the delay (five 2s ticks).
        assert_eq!(kpa.decide(at(2), 1, Ok((20.0, 10.0))).desired_scale, 2);
        for s in (4..12).step_by(2) {
            assert_eq!(
                kpa.decide(at(s), 2, Ok((0.0, 0.0))).desired_scale,
                2,
                "second {s}"
            );
        }
        assert_eq!(kpa.decide(at(12), 2, Ok((0.0, 0.0))).desired_scale, 1);
    }

    #[test]
    fn scale_up_is_not_delayed() {
        let spec = DeciderSpec {
            scale_down_delay: Duration::from_secs(10),
            ..simple()
        };
        let mut kpa = Kpa::new(spec, 1, at(0));
        kpa.decide(at(0), 1, Ok((10.0, 10.0)));
        assert_eq!(kpa.decide(at(2), 1, Ok((30.0, 10.0))).desired_scale, 3);
    }

    #[test]
    fn changing_the_scale_down_delay_replaces_its_window() {
        let mut kpa = Kpa::new(
            DeciderSpec {
                scale_down_delay: Duration::from_secs(10),
                ..simple()
            },
            1,
            at(0),
        );
        kpa.decide(at(0), 1, Ok((30.0, 10.0)));
        kpa.set_spec(simple());
        assert_eq!(kpa.decide(at(2), 3, Ok((10.0, 10.0))).desired_scale, 1);
    }

    #[test]
    fn activation_scale_is_the_least_scale_under_load() {
        let spec = DeciderSpec {
            activation_scale: 3,
            ..simple()
        };
        let mut kpa = Kpa::new(spec, 1, at(0));
        assert_eq!(kpa.decide(at(0), 1, Ok((1.0, 1.0))).desired_scale, 3);
        // Without load it does not hold pods.
        assert_eq!(kpa.decide(at(100), 1, Ok((0.0, 0.0))).desired_scale, 0);
    }

    #[test]
    fn excess_burst_capacity_is_spare_capacity_beyond_the_target_burst() {
        let spec = DeciderSpec {
            target_burst_capacity: 211.0,
            total_value: 100.0,
            ..simple()
        };
        let mut kpa = Kpa::new(spec, 1, at(0));
        // 3 pods × 100 − 211 − 50.5, floored.
        assert_eq!(
            kpa.decide(at(0), 3, Ok((0.0, 50.5))).excess_burst_capacity,
            38
        );
        assert_eq!(
            kpa.decide(at(1), 0, Ok((0.0, 0.0))).excess_burst_capacity,
            -211
        );
    }

    #[test]
    fn target_burst_capacity_zero_and_minus_one() {
        let mut kpa = Kpa::new(simple(), 1, at(0));
        assert_eq!(
            kpa.decide(at(0), 3, Ok((0.0, 50.0))).excess_burst_capacity,
            0
        );
        let mut kpa = Kpa::new(
            DeciderSpec {
                target_burst_capacity: -1.0,
                ..simple()
            },
            1,
            at(0),
        );
        assert_eq!(
            kpa.decide(at(0), 3, Ok((0.0, 50.0))).excess_burst_capacity,
            -1
        );
    }

    #[test]
    fn update_keeps_panic_mode() {
        let config = AutoscalerConfig::default();
        let annotations = BTreeMap::new();
        let params = AutoscalerParams {
            ready_pods: 4,
            ..AutoscalerParams::new(&annotations, &config, at(0))
        };
        let mut kpa = Kpa::new(DeciderSpec::new(&params), 4, at(0));
        Autoscaler::update(&mut kpa, &params).unwrap();
        assert!(kpa.in_panic());
        assert_eq!(kpa.spec(), &DeciderSpec::new(&params));
    }

    #[test]
    fn memory_footprint_counts_the_delay_window() {
        let without = Kpa::new(simple(), 1, at(0));
        assert_eq!(Autoscaler::memory_footprint(&without), size_of::<Kpa>());
        let with = Kpa::new(
            DeciderSpec {
                scale_down_delay: Duration::from_secs(20),
                ..simple()
            },
            1,
            at(0),
        );
        assert!(Autoscaler::memory_footprint(&with) > size_of::<Kpa>() + 10 * 12);
    }
}
