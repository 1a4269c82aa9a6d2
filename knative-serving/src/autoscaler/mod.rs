//! The pluggable autoscaler and Knative's KPA, decision for decision.
//!
//! An [`Autoscaler`] is pure: a [`MetricSnapshot`] of a revision at `now` (its ready pods and
//! its [metric windows](metrics::RevisionMetrics)) goes in, a [`ScaleRecommendation`] (desired
//! scale, excess burst capacity, panic state, validity) comes out. It does no I/O and reads no
//! clock, so it can be replayed, tested and benchmarked exactly. Autoscalers are made per
//! revision by an [`AutoscalerRegistry`], from the class a revision names in
//! `autoscaling.knative.dev/class`; [`kpa`] (`kpa.autoscaling.knative.dev`) is built in and a
//! platform registers its own classes next to it.
//!
//! - [`aggregation`]: Knative's metric windows (linear and weighted-exponential averages, the
//!   max window of the scale-down delay).
//! - [`metrics`]: the per-revision windows fed by stats ([`metrics::RevisionMetrics`]).
//! - [`kpa`]: the Knative Pod Autoscaler (`DeciderSpec` and `Scale()`).
//! - [`multiscaler`]: many revisions, each with its decider and windows, ticked together.
//! - [`deciders`]: the multi-scaler shared by the reconciler, the collector and the tick.
//! - [`collector`]: scrapes the revisions' pods each second and takes the activator's pushes.
//! - [`simulate`]: replays a metrics trace through an autoscaler (`knative autoscaler simulate`).
//!
//! ```
//! use std::collections::BTreeMap;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_core::config::AutoscalerConfig;
//! use knative_serving::autoscaler::{AutoscalerParams, AutoscalerRegistry, MetricSnapshot};
//! use knative_serving::autoscaler::metrics::{MetricSpec, RevisionMetrics, Stat};
//!
//! let config = AutoscalerConfig::default();
//! let annotations = BTreeMap::from([(
//!     "autoscaling.knative.dev/class".to_owned(),
//!     "kpa.autoscaling.knative.dev".to_owned(),
//! )]);
//! let now = Timestamp::from_second(1_700_000_000).unwrap();
//! let params = AutoscalerParams::new(&annotations, &config, now);
//!
//! let registry = AutoscalerRegistry::default();
//! let mut autoscaler = registry.create(&params).unwrap();
//! let mut metrics = RevisionMetrics::new(&MetricSpec::new(&params));
//!
//! // 350 requests in flight on one pod; the default target is 70 per pod.
//! metrics.record(now, &Stat::concurrency(350.0));
//! let decision = autoscaler.scale(&MetricSnapshot { now, ready_pods: 1, metrics: &metrics });
//! assert!(decision.valid);
//! assert_eq!(decision.desired_scale, 5);
//! assert!(decision.panic, "five times the capacity of one pod starts panic mode");
//! assert_eq!(decision.excess_burst_capacity, 100 - 211 - 350);
//! ```

pub mod aggregation;
pub mod collector;
pub mod deciders;
pub mod kpa;
pub mod metrics;
pub mod multiscaler;
pub mod simulate;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use knative_core::config::{AutoscalerConfig, parse_go_duration};

use crate::apis::autoscaling::v1alpha1::{PodAutoscaler, Reachability};
use crate::apis::autoscaling::{AnnotationKey, CLASS_ANNOTATION_KEY, WINDOW_ANNOTATION_KEY};
use metrics::RevisionMetrics;

/// Decides how many pods a revision needs. Implementations are pure: everything they know
/// comes from the [`AutoscalerParams`] they were made or updated with and the snapshots they
/// are given; `now` is an argument, never a clock reading.
///
/// Object safe: a platform keeps `Box<dyn Autoscaler>` per revision, made by the
/// [`AutoscalerRegistry`] for the revision's class.
pub trait Autoscaler: Send + fmt::Debug {
    /// The recommendation for the revision described by `snapshot`. It may update the
    /// autoscaler's own state (panic mode, delayed scale-downs), so call it once per decision.
    fn scale(&mut self, snapshot: &MetricSnapshot<'_>) -> ScaleRecommendation;

    /// Applies changed settings (annotations or `config-autoscaler`), keeping state such as
    /// panic mode.
    ///
    /// # Errors
    /// When the settings do not suit this autoscaler.
    fn update(&mut self, params: &AutoscalerParams<'_>) -> Result<(), AutoscalerError>;

    /// The bytes this autoscaler holds, itself and what it owns, for capacity planning. The
    /// default counts only the value itself.
    fn memory_footprint(&self) -> usize {
        size_of_val(self)
    }
}

/// What an autoscaler sees of a revision at one moment.
#[derive(Clone, Copy, Debug)]
pub struct MetricSnapshot<'a> {
    /// The time of the decision.
    pub now: Timestamp,
    /// The revision's ready pods (0 when it has none, or its endpoints are not known yet).
    pub ready_pods: i32,
    /// The revision's metric windows.
    pub metrics: &'a RevisionMetrics,
}

/// An autoscaler's recommendation (Knative's `ScaleResult`, with the observed values and the
/// panic state the KPA reports as metrics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleRecommendation {
    /// The number of pods the revision should have.
    pub desired_scale: i32,
    /// Spare capacity beyond the target burst capacity: negative keeps the activator in the
    /// request path; -1 when the target burst capacity is -1 (always), 0 when it is 0.
    pub excess_burst_capacity: i32,
    /// Whether the autoscaler is in panic mode.
    pub panic: bool,
    /// Whether the recommendation should be applied; false when there was no data to decide on.
    pub valid: bool,
    /// The stable-window average of the scaling metric the decision used.
    pub observed_stable: f64,
    /// The panic-window average of the scaling metric the decision used.
    pub observed_panic: f64,
}

impl ScaleRecommendation {
    /// A recommendation not to act on (Knative's `invalidSR`), reporting the panic state.
    pub fn invalid(panic: bool) -> Self {
        Self {
            desired_scale: 0,
            excess_burst_capacity: 0,
            panic,
            valid: false,
            observed_stable: 0.0,
            observed_panic: 0.0,
        }
    }
}

/// Everything an autoscaler is made from: the revision's annotations and container
/// concurrency, whether a route reaches it, `config-autoscaler`, and, at creation, its ready
/// pods and the time.
#[derive(Clone, Copy, Debug)]
pub struct AutoscalerParams<'a> {
    /// The PodAutoscaler's annotations (copied from the revision): `autoscaling.knative.dev/*`.
    pub annotations: &'a BTreeMap<String, String>,
    /// The revision's `containerConcurrency` (0: unlimited).
    pub container_concurrency: i64,
    /// Whether a route sends the revision traffic; an unreachable revision may scale to zero at
    /// once.
    pub reachable: bool,
    /// The cluster's `config-autoscaler`.
    pub config: &'a AutoscalerConfig,
    /// The revision's ready pods when the autoscaler is made.
    pub ready_pods: i32,
    /// The time the autoscaler is made or updated.
    pub now: Timestamp,
}

impl<'a> AutoscalerParams<'a> {
    /// Params of a reachable revision with unlimited concurrency and no ready pods; set the
    /// other fields with struct update syntax.
    pub fn new(
        annotations: &'a BTreeMap<String, String>,
        config: &'a AutoscalerConfig,
        now: Timestamp,
    ) -> Self {
        Self {
            annotations,
            container_concurrency: 0,
            reachable: true,
            config,
            ready_pods: 0,
            now,
        }
    }

    /// The params of a [`PodAutoscaler`]: its annotations, `containerConcurrency` and
    /// reachability (anything but `Unreachable` is reachable, as in Knative).
    pub fn from_pod_autoscaler(
        pa: &'a PodAutoscaler,
        config: &'a AutoscalerConfig,
        ready_pods: i32,
        now: Timestamp,
    ) -> Self {
        static NO_ANNOTATIONS: BTreeMap<String, String> = BTreeMap::new();
        Self {
            annotations: pa.metadata.annotations.as_ref().unwrap_or(&NO_ANNOTATIONS),
            container_concurrency: pa.spec.container_concurrency.unwrap_or(0),
            reachable: pa.spec.reachability != Reachability::Unreachable,
            config,
            ready_pods,
            now,
        }
    }

    /// The autoscaler class: `autoscaling.knative.dev/class`, else the cluster's
    /// `pod-autoscaler-class`.
    pub fn class(&self) -> &'a str {
        self.annotations
            .get(CLASS_ANNOTATION_KEY)
            .map_or(self.config.pod_autoscaler_class.as_str(), String::as_str)
    }

    /// The stable window: `autoscaling.knative.dev/window`, else `stable-window`.
    pub fn stable_window(&self) -> Duration {
        self.annotations
            .get(WINDOW_ANNOTATION_KEY)
            .and_then(|v| parse_go_duration(v).ok())
            .unwrap_or(self.config.stable_window)
    }

    /// A float annotation under its current key or older spelling; `None` when absent or not a
    /// number (Knative's `annotationFloat64`).
    pub fn float_annotation(&self, key: AnnotationKey) -> Option<f64> {
        key.get(self.annotations).and_then(|(_, v)| v.parse().ok())
    }
}

/// Why an autoscaler could not be made or updated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AutoscalerError {
    /// No factory is registered for the revision's class.
    #[error("no autoscaler is registered for class {class:?} (registered: {registered})")]
    UnknownClass {
        /// The class asked for.
        class: String,
        /// The registered classes, comma-separated.
        registered: String,
    },
    /// The settings do not suit the autoscaler.
    #[error("autoscaler class {class:?}: {message}")]
    Invalid {
        /// The autoscaler's class.
        class: String,
        /// What is wrong.
        message: String,
    },
}

/// Makes an autoscaler for a revision.
pub type AutoscalerFactory =
    dyn Fn(&AutoscalerParams<'_>) -> Result<Box<dyn Autoscaler>, AutoscalerError> + Send + Sync;

/// Autoscaler factories by class (`autoscaling.knative.dev/class`). [`Default`] has the KPA
/// (`kpa.autoscaling.knative.dev`) built in.
///
/// ```
/// use std::collections::BTreeMap;
/// use k8s_openapi::jiff::Timestamp;
/// use knative_core::config::AutoscalerConfig;
/// use knative_serving::autoscaler::{
///     Autoscaler, AutoscalerError, AutoscalerParams, AutoscalerRegistry, MetricSnapshot,
///     ScaleRecommendation,
/// };
///
/// /// Always one pod more than there is.
/// #[derive(Debug)]
/// struct OneMore;
///
/// impl Autoscaler for OneMore {
///     fn scale(&mut self, snapshot: &MetricSnapshot<'_>) -> ScaleRecommendation {
///         ScaleRecommendation {
///             desired_scale: snapshot.ready_pods + 1,
///             ..ScaleRecommendation::invalid(false)
///         }
///     }
///     fn update(&mut self, _: &AutoscalerParams<'_>) -> Result<(), AutoscalerError> {
///         Ok(())
///     }
/// }
///
/// let mut registry = AutoscalerRegistry::default();
/// registry.register("one-more.example.com", |_| Ok(Box::new(OneMore)));
/// assert_eq!(
///     registry.classes().collect::<Vec<_>>(),
///     ["kpa.autoscaling.knative.dev", "one-more.example.com"]
/// );
///
/// let config = AutoscalerConfig::default();
/// let annotations = BTreeMap::from([(
///     "autoscaling.knative.dev/class".to_owned(),
///     "one-more.example.com".to_owned(),
/// )]);
/// let params = AutoscalerParams::new(&annotations, &config, Timestamp::UNIX_EPOCH);
/// assert!(registry.create(&params).is_ok());
/// ```
#[derive(Clone)]
pub struct AutoscalerRegistry {
    factories: BTreeMap<String, Arc<AutoscalerFactory>>,
}

impl Default for AutoscalerRegistry {
    fn default() -> Self {
        let mut registry = Self::empty();
        registry.register(kpa::KPA_CLASS, kpa::factory);
        registry
    }
}

impl fmt::Debug for AutoscalerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoscalerRegistry")
            .field("classes", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AutoscalerRegistry {
    /// A registry without any class, not even the KPA.
    pub fn empty() -> Self {
        Self {
            factories: BTreeMap::new(),
        }
    }

    /// Registers `factory` for `class`, replacing the factory registered for it before.
    pub fn register<F>(&mut self, class: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&AutoscalerParams<'_>) -> Result<Box<dyn Autoscaler>, AutoscalerError>
            + Send
            + Sync
            + 'static,
    {
        self.factories.insert(class.into(), Arc::new(factory));
        self
    }

    /// Whether a factory is registered for `class`.
    pub fn contains(&self, class: &str) -> bool {
        self.factories.contains_key(class)
    }

    /// The registered classes, in order.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// An autoscaler for the revision `params` describe, of its [class](AutoscalerParams::class).
    ///
    /// # Errors
    /// When no factory is registered for the class, or the factory rejects the params.
    pub fn create(
        &self,
        params: &AutoscalerParams<'_>,
    ) -> Result<Box<dyn Autoscaler>, AutoscalerError> {
        let class = params.class();
        let factory = self
            .factories
            .get(class)
            .ok_or_else(|| AutoscalerError::UnknownClass {
                class: class.to_owned(),
                registered: self.classes().collect::<Vec<_>>().join(", "),
            })?;
        factory(params)
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::apis::autoscaling::v1alpha1::PodAutoscalerSpec;

    #[derive(Debug)]
    struct Fixed(i32);

    impl Autoscaler for Fixed {
        fn scale(&mut self, _: &MetricSnapshot<'_>) -> ScaleRecommendation {
            ScaleRecommendation {
                desired_scale: self.0,
                valid: true,
                ..ScaleRecommendation::invalid(false)
            }
        }
        fn update(&mut self, params: &AutoscalerParams<'_>) -> Result<(), AutoscalerError> {
            self.0 = params.ready_pods;
            Ok(())
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_kpa_is_built_in() {
        let registry = AutoscalerRegistry::default();
        assert!(registry.contains("kpa.autoscaling.knative.dev"));
        assert!(!AutoscalerRegistry::empty().contains("kpa.autoscaling.knative.dev"));
    }

    #[test]
    fn class_comes_from_the_annotation_else_the_cluster_default() {
        let mut config = AutoscalerConfig::default();
        let none = annotations(&[]);
        assert_eq!(
            AutoscalerParams::new(&none, &config, Timestamp::UNIX_EPOCH).class(),
            "kpa.autoscaling.knative.dev"
        );
        config.pod_autoscaler_class = "custom.example.com".to_owned();
        assert_eq!(
            AutoscalerParams::new(&none, &config, Timestamp::UNIX_EPOCH).class(),
            "custom.example.com"
        );
        let explicit = annotations(&[("autoscaling.knative.dev/class", "other.example.com")]);
        assert_eq!(
            AutoscalerParams::new(&explicit, &config, Timestamp::UNIX_EPOCH).class(),
            "other.example.com"
        );
    }

    #[test]
    fn an_unknown_class_names_the_registered_ones() {
        let config = AutoscalerConfig::default();
        let hpa = annotations(&[(
            "autoscaling.knative.dev/class",
            "hpa.autoscaling.knative.dev",
        )]);
        let err = AutoscalerRegistry::default()
            .create(&AutoscalerParams::new(&hpa, &config, Timestamp::UNIX_EPOCH))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"no autoscaler is registered for class "hpa.autoscaling.knative.dev" (registered: kpa.autoscaling.knative.dev)"#
        );
    }

    #[test]
    fn a_registered_class_is_made_by_its_factory_and_can_replace_the_kpa() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let mut registry = AutoscalerRegistry::default();
        registry.register("kpa.autoscaling.knative.dev", |p| {
            Ok(Box::new(Fixed(p.ready_pods)))
        });
        let params = AutoscalerParams {
            ready_pods: 7,
            ..AutoscalerParams::new(&none, &config, Timestamp::UNIX_EPOCH)
        };
        let mut autoscaler = registry.create(&params).unwrap();
        let metrics = RevisionMetrics::new(&metrics::MetricSpec::new(&params));
        let snapshot = MetricSnapshot {
            now: Timestamp::UNIX_EPOCH,
            ready_pods: 0,
            metrics: &metrics,
        };
        assert_eq!(autoscaler.scale(&snapshot).desired_scale, 7);
        autoscaler
            .update(&AutoscalerParams {
                ready_pods: 3,
                ..params
            })
            .unwrap();
        assert_eq!(autoscaler.scale(&snapshot).desired_scale, 3);
        assert_eq!(autoscaler.memory_footprint(), size_of::<Fixed>());
    }

    #[test]
    fn factories_can_reject_params() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let mut registry = AutoscalerRegistry::empty();
        registry.register("kpa.autoscaling.knative.dev", |p| {
            Err(AutoscalerError::Invalid {
                class: p.class().to_owned(),
                message: "nope".to_owned(),
            })
        });
        let err = registry
            .create(&AutoscalerParams::new(
                &none,
                &config,
                Timestamp::UNIX_EPOCH,
            ))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"autoscaler class "kpa.autoscaling.knative.dev": nope"#
        );
    }

    #[test]
    fn params_of_a_pod_autoscaler() {
        let config = AutoscalerConfig::default();
        let pa = PodAutoscaler {
            metadata: ObjectMeta {
                annotations: Some(annotations(&[("autoscaling.knative.dev/window", "2m")])),
                ..ObjectMeta::default()
            },
            spec: PodAutoscalerSpec {
                container_concurrency: Some(10),
                reachability: Reachability::Unreachable,
                ..PodAutoscalerSpec::default()
            },
            status: None,
        };
        let params = AutoscalerParams::from_pod_autoscaler(&pa, &config, 2, Timestamp::UNIX_EPOCH);
        assert_eq!(params.container_concurrency, 10);
        assert!(!params.reachable);
        assert_eq!(params.ready_pods, 2);
        assert_eq!(params.stable_window(), Duration::from_secs(120));
        let bare = PodAutoscaler::default();
        let params =
            AutoscalerParams::from_pod_autoscaler(&bare, &config, 0, Timestamp::UNIX_EPOCH);
        assert!(params.reachable, "unknown reachability counts as reachable");
        assert!(params.annotations.is_empty());
    }

    #[test]
    fn float_annotations_read_either_spelling_and_ignore_garbage() {
        let config = AutoscalerConfig::default();
        let a = annotations(&[
            ("autoscaling.knative.dev/targetBurstCapacity", "50"),
            ("autoscaling.knative.dev/panic-threshold-percentage", "x"),
        ]);
        let params = AutoscalerParams::new(&a, &config, Timestamp::UNIX_EPOCH);
        assert_eq!(
            params.float_annotation(crate::apis::autoscaling::TARGET_BURST_CAPACITY_ANNOTATION),
            Some(50.0)
        );
        assert_eq!(
            params
                .float_annotation(crate::apis::autoscaling::PANIC_THRESHOLD_PERCENTAGE_ANNOTATION),
            None
        );
    }
}
