//! Autoscaling: the `autoscaling.knative.dev/*` annotations users put on revision templates,
//! their validation, and the internal [`v1alpha1::PodAutoscaler`] resource.
//!
//! Each annotation has Knative's kebab-case key (`autoscaling.knative.dev/min-scale`) and, where
//! Knative still reads it, an older camelCase spelling (`autoscaling.knative.dev/minScale`);
//! [`AnnotationKey::get`] reads either, preferring the current one.
//!
//! ```
//! use std::collections::BTreeMap;
//! use knative_serving::apis::Defaults;
//! use knative_serving::apis::autoscaling::{self, MIN_SCALE_ANNOTATION};
//!
//! let annotations = BTreeMap::from([
//!     ("autoscaling.knative.dev/minScale".to_owned(), "3".to_owned()),
//!     ("autoscaling.knative.dev/max-scale".to_owned(), "2".to_owned()),
//! ]);
//! assert_eq!(MIN_SCALE_ANNOTATION.get(&annotations), Some(("autoscaling.knative.dev/minScale", "3")));
//! assert_eq!(
//!     autoscaling::validate_annotations(&annotations, &Defaults::default()).to_string(),
//!     "max-scale=2 is less than min-scale=3: autoscaling.knative.dev/max-scale, autoscaling.knative.dev/min-scale"
//! );
//! ```

pub mod v1alpha1;

use std::collections::BTreeMap;

use knative_core::apis::FieldError;

use crate::apis::Defaults;
use crate::apis::names::parse_go_duration;

/// The public autoscaling group, used for annotations and labels.
pub const GROUP_NAME: &str = "autoscaling.knative.dev";
/// The internal autoscaling group, of the [`v1alpha1::PodAutoscaler`] resource.
pub const INTERNAL_GROUP_NAME: &str = "autoscaling.internal.knative.dev";

/// The class of autoscaler a Revision opts into.
pub const CLASS_ANNOTATION_KEY: &str = "autoscaling.knative.dev/class";
/// The Knative Pod Autoscaler class (the default).
pub const KPA: &str = "kpa.autoscaling.knative.dev";
/// The Kubernetes Horizontal Pod Autoscaler class.
pub const HPA: &str = "hpa.autoscaling.knative.dev";

/// The metric to scale on.
pub const METRIC_ANNOTATION_KEY: &str = "autoscaling.knative.dev/metric";
/// Metric: requests in flight (KPA).
pub const CONCURRENCY: &str = "concurrency";
/// Metric: requests per second (KPA).
pub const RPS: &str = "rps";
/// Metric: CPU utilisation (HPA).
pub const CPU: &str = "cpu";
/// Metric: memory usage (HPA).
pub const MEMORY: &str = "memory";

/// The value of the metric to maintain per pod.
pub const TARGET_ANNOTATION_KEY: &str = "autoscaling.knative.dev/target";
/// The smallest target allowed.
pub const TARGET_MIN: f64 = 0.01;

/// The stable window over which the metric is averaged (KPA).
pub const WINDOW_ANNOTATION_KEY: &str = "autoscaling.knative.dev/window";

/// The minimum number of pods.
pub const MIN_SCALE_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/minScale",
);
/// The maximum number of pods (0: no maximum).
pub const MAX_SCALE_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/max-scale",
    "autoscaling.knative.dev/maxScale",
);
/// The number of pods a new Revision starts with.
pub const INITIAL_SCALE_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/initial-scale",
    "autoscaling.knative.dev/initialScale",
);
/// How long to wait before scaling down.
pub const SCALE_DOWN_DELAY_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/scale-down-delay",
    "autoscaling.knative.dev/scaleDownDelay",
);
/// How long the last pod stays after the decision to scale to zero.
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
    "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod",
);
/// The share of the target a pod is meant to run at, in percent.
pub const TARGET_UTILIZATION_PERCENTAGE_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/target-utilization-percentage",
    "autoscaling.knative.dev/targetUtilizationPercentage",
);
/// The spare capacity to keep before taking the activator off the request path (-1:
/// always keep it on).
pub const TARGET_BURST_CAPACITY_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/target-burst-capacity",
    "autoscaling.knative.dev/targetBurstCapacity",
);
/// The panic window, as a percentage of the stable window (KPA).
pub const PANIC_WINDOW_PERCENTAGE_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/panic-window-percentage",
    "autoscaling.knative.dev/panicWindowPercentage",
);
/// The load, as a percentage of the target, that starts panic mode (KPA).
pub const PANIC_THRESHOLD_PERCENTAGE_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/panic-threshold-percentage",
    "autoscaling.knative.dev/panicThresholdPercentage",
);
/// How the KPA averages metrics over its window.
pub const METRIC_AGGREGATION_ALGORITHM_ANNOTATION: AnnotationKey = AnnotationKey::new(
    "autoscaling.knative.dev/metric-aggregation-algorithm",
    "autoscaling.knative.dev/metricAggregationAlgorithm",
);

/// An annotation Knative reads under its current key or an older spelling (knative.dev/pkg's
/// `kmap.KeyPriority`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnotationKey {
    /// The current key, e.g. `autoscaling.knative.dev/min-scale`.
    pub key: &'static str,
    /// The older spelling, e.g. `autoscaling.knative.dev/minScale`.
    pub alias: &'static str,
}

impl AnnotationKey {
    const fn new(key: &'static str, alias: &'static str) -> Self {
        AnnotationKey { key, alias }
    }

    /// The key found and its value, the current key taking precedence.
    pub fn get<'a>(
        &self,
        annotations: &'a BTreeMap<String, String>,
    ) -> Option<(&'static str, &'a str)> {
        [self.key, self.alias]
            .into_iter()
            .find_map(|k| annotations.get(k).map(|v| (k, v.as_str())))
    }
}

/// Bounds of the window annotations, rendered as Go renders a `time.Duration`.
const WINDOW_MIN: (i128, &str) = (6_000_000_000, "6s");
const WINDOW_MAX: (i128, &str) = (3_600_000_000_000, "1h0m0s");
const SECOND: i128 = 1_000_000_000;

/// Knative's `autoscaling.ValidateAnnotations` (paths are the annotation keys): class, scale
/// bounds, targets, windows, metric, aggregation algorithm and initial scale.
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    defaults: &Defaults,
) -> FieldError {
    validate_class(annotations)
        .also(validate_min_max_scale(annotations, defaults))
        .also(validate_floats(annotations))
        .also(validate_window(annotations))
        .also(validate_duration_upto_window_max(
            annotations,
            SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION,
            false,
        ))
        .also(validate_duration_upto_window_max(
            annotations,
            SCALE_DOWN_DELAY_ANNOTATION,
            true,
        ))
        .also(validate_metric(annotations))
        .also(validate_algorithm(annotations))
        .also(validate_initial_scale(annotations, defaults))
}

/// Classes in Knative's domain must be ones Knative knows; other classes belong to plug-in
/// autoscalers.
fn validate_class(annotations: &BTreeMap<String, String>) -> FieldError {
    match annotations.get(CLASS_ANNOTATION_KEY) {
        Some(class) if class.ends_with(".knative.dev") && class != KPA && class != HPA => {
            FieldError::err_invalid_value(class, CLASS_ANNOTATION_KEY)
        }
        _ => FieldError::default(),
    }
}

fn validate_min_max_scale(
    annotations: &BTreeMap<String, String>,
    defaults: &Defaults,
) -> FieldError {
    let (min, min_errs) = get_int_ge0(annotations, MIN_SCALE_ANNOTATION);
    let (max, max_errs) = get_int_ge0(annotations, MAX_SCALE_ANNOTATION);
    let mut errs = min_errs.also(max_errs);
    if max != 0 && max < min {
        errs = errs.also(FieldError::new(
            format!("max-scale={max} is less than min-scale={min}"),
            [MAX_SCALE_ANNOTATION.key, MIN_SCALE_ANNOTATION.key],
        ));
    }
    if let Some((key, _)) = MAX_SCALE_ANNOTATION.get(annotations) {
        let limit = defaults.max_scale_limit;
        if limit != 0 && max > limit {
            errs = errs.also(FieldError::err_out_of_bounds_value(max, 1, limit, key));
        }
        if limit != 0 && max == 0 {
            errs = errs.also(FieldError::new(
                format!("max-scale=0 (unlimited), must be less than {limit}"),
                [key],
            ));
        }
    }
    errs
}

/// `getIntGE0`: a non-negative 32-bit integer, 0 when absent.
fn get_int_ge0(annotations: &BTreeMap<String, String>, key: AnnotationKey) -> (i32, FieldError) {
    let Some((k, v)) = key.get(annotations) else {
        return (0, FieldError::default());
    };
    match v.parse::<i32>() {
        Ok(i) if i >= 0 => (i, FieldError::default()),
        Ok(_) => (0, FieldError::err_out_of_bounds_value(v, 0, i32::MAX, k)),
        Err(e)
            if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) =>
        {
            (0, FieldError::err_out_of_bounds_value(v, 0, i32::MAX, k))
        }
        Err(_) => (0, FieldError::err_invalid_value(v, k)),
    }
}

fn validate_floats(annotations: &BTreeMap<String, String>) -> FieldError {
    let mut errs = FieldError::default();
    let in_range = |key: AnnotationKey, min: f64, max: f64| match key.get(annotations) {
        Some((k, v)) => match v.parse::<f64>() {
            Err(_) => FieldError::err_invalid_value(v, k),
            Ok(f) if f < min || f > max => FieldError::err_out_of_bounds_value(v, min, max, k),
            Ok(_) => FieldError::default(),
        },
        None => FieldError::default(),
    };
    errs = errs
        .also(in_range(PANIC_WINDOW_PERCENTAGE_ANNOTATION, 1.0, 100.0))
        .also(in_range(
            PANIC_THRESHOLD_PERCENTAGE_ANNOTATION,
            110.0,
            1000.0,
        ));
    if let Some(v) = annotations.get(TARGET_ANNOTATION_KEY)
        && !v.parse::<f64>().is_ok_and(|f| f >= TARGET_MIN)
    {
        errs = errs.also(FieldError::err_generic(
            format!("target {v} should be at least {TARGET_MIN}"),
            [TARGET_ANNOTATION_KEY],
        ));
    }
    errs = errs.also(in_range(
        TARGET_UTILIZATION_PERCENTAGE_ANNOTATION,
        1.0,
        100.0,
    ));
    if let Some((k, v)) = TARGET_BURST_CAPACITY_ANNOTATION.get(annotations)
        && !v.parse::<f64>().is_ok_and(|f| f >= 0.0 || f == -1.0)
    {
        errs = errs.also(FieldError::err_invalid_value(v, k));
    }
    errs
}

/// The stable window: 6s to 1h, in whole seconds.
fn validate_window(annotations: &BTreeMap<String, String>) -> FieldError {
    let Some(v) = annotations.get(WINDOW_ANNOTATION_KEY) else {
        return FieldError::default();
    };
    match parse_go_duration(v) {
        None => FieldError::err_invalid_value(v, WINDOW_ANNOTATION_KEY),
        Some(d) if d < WINDOW_MIN.0 || d > WINDOW_MAX.0 => FieldError::err_out_of_bounds_value(
            v,
            WINDOW_MIN.1,
            WINDOW_MAX.1,
            WINDOW_ANNOTATION_KEY,
        ),
        Some(d) if d % SECOND != 0 => FieldError::err_generic(
            "must be specified with at most second precision",
            [WINDOW_ANNOTATION_KEY],
        ),
        Some(_) => FieldError::default(),
    }
}

/// A duration from 0 to the longest window (in whole seconds where `whole_seconds`).
fn validate_duration_upto_window_max(
    annotations: &BTreeMap<String, String>,
    key: AnnotationKey,
    whole_seconds: bool,
) -> FieldError {
    let Some((k, v)) = key.get(annotations) else {
        return FieldError::default();
    };
    match parse_go_duration(v) {
        None => FieldError::err_invalid_value(v, k),
        Some(d) if d < 0 || d > WINDOW_MAX.0 => {
            FieldError::err_out_of_bounds_value(v, "0s", WINDOW_MAX.1, k)
        }
        Some(d) if whole_seconds && d % SECOND != 0 => {
            FieldError::err_generic("must be specified with at most second precision", [k])
        }
        Some(_) => FieldError::default(),
    }
}

/// The KPA scales on concurrency or rps, the HPA on any named metric; other classes choose
/// for themselves.
fn validate_metric(annotations: &BTreeMap<String, String>) -> FieldError {
    let Some(metric) = annotations.get(METRIC_ANNOTATION_KEY) else {
        return FieldError::default();
    };
    let valid = match annotations
        .get(CLASS_ANNOTATION_KEY)
        .map_or(KPA, String::as_str)
    {
        KPA => metric == CONCURRENCY || metric == RPS,
        HPA => !metric.is_empty(),
        _ => true,
    };
    if valid {
        FieldError::default()
    } else {
        FieldError::err_invalid_value(metric, METRIC_ANNOTATION_KEY)
    }
}

/// The KPA's aggregation algorithms (only checked for an explicit KPA class).
fn validate_algorithm(annotations: &BTreeMap<String, String>) -> FieldError {
    if annotations.get(CLASS_ANNOTATION_KEY).map(String::as_str) != Some(KPA) {
        return FieldError::default();
    }
    match METRIC_AGGREGATION_ALGORITHM_ANNOTATION.get(annotations) {
        Some((_, "" | "linear" | "weightedExponential" | "weighted-exponential")) | None => {
            FieldError::default()
        }
        Some((k, v)) => FieldError::err_invalid_value(v, k),
    }
}

/// A non-negative integer, zero only where `allow-zero-initial-scale` says so.
fn validate_initial_scale(
    annotations: &BTreeMap<String, String>,
    defaults: &Defaults,
) -> FieldError {
    match INITIAL_SCALE_ANNOTATION.get(annotations) {
        Some((k, v)) => match v.parse::<i64>() {
            Ok(i) if i > 0 || (i == 0 && defaults.allow_zero_initial_scale) => {
                FieldError::default()
            }
            _ => FieldError::err_invalid_value(v, k),
        },
        None => FieldError::default(),
    }
}
