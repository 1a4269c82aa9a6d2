//! Many revisions ticked together (knative/serving `pkg/autoscaler/scaling/multiscaler.go`,
//! without its goroutines): each revision has its metric windows, its autoscaler (of its class)
//! and its latest decision; a tick decides for every revision and reports the decisions that
//! changed.
//!
//! ```
//! use std::collections::BTreeMap;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_core::config::AutoscalerConfig;
//! use knative_serving::autoscaler::{AutoscalerParams, AutoscalerRegistry};
//! use knative_serving::autoscaler::metrics::Stat;
//! use knative_serving::autoscaler::multiscaler::MultiScaler;
//!
//! let config = AutoscalerConfig::default();
//! let annotations = BTreeMap::new();
//! let now = Timestamp::from_second(1_700_000_000).unwrap();
//! let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
//! scalers.create("default/hello-00001", &AutoscalerParams::new(&annotations, &config, now)).unwrap();
//!
//! scalers.record(&"default/hello-00001", now, &Stat::concurrency(140.0));
//! let mut changed = Vec::new();
//! scalers.tick(now, |_| 1, |key, status| changed.push((*key, status.desired_scale)));
//! assert_eq!(changed, [("default/hello-00001", 2)]);
//! ```

use std::collections::HashMap;
use std::hash::Hash;

use k8s_openapi::jiff::Timestamp;

use super::kpa::resolve_metric_target;
use super::metrics::{MetricSpec, RevisionMetrics, ScalingMetric, Stat};
use super::{Autoscaler, AutoscalerError, AutoscalerParams, AutoscalerRegistry, MetricSnapshot};
use crate::apis::autoscaling::{METRIC_ANNOTATION_KEY, TARGET_BURST_CAPACITY_ANNOTATION};

/// A revision's latest decision (Knative's `DeciderStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeciderStatus {
    /// The desired scale; -1 until the first valid decision.
    pub desired_scale: i32,
    /// The latest excess burst capacity.
    pub excess_burst_capacity: i32,
}

/// One revision: its windows, its autoscaler and its latest decision.
#[derive(Debug)]
struct RevisionScaler {
    metrics: RevisionMetrics,
    autoscaler: Box<dyn Autoscaler>,
    status: DeciderStatus,
}

/// The autoscalers of many revisions, keyed by `K` (e.g. `namespace/name`).
#[derive(Debug)]
pub struct MultiScaler<K> {
    registry: AutoscalerRegistry,
    /// Boxed: the table stays small, so its spare capacity costs a pointer per bucket rather
    /// than a whole revision.
    scalers: HashMap<K, Box<RevisionScaler>>,
}

impl<K: Hash + Eq> MultiScaler<K> {
    /// No revisions yet; autoscalers are made by `registry`.
    pub fn new(registry: AutoscalerRegistry) -> Self {
        Self {
            registry,
            scalers: HashMap::new(),
        }
    }

    /// Starts scaling the revision `key` as `params` describe (`Create`), unless it is scaled
    /// already; returns its status. A new revision's status is a desired scale of -1 and the
    /// excess burst capacity of one pod.
    ///
    /// # Errors
    /// When the registry cannot make an autoscaler for the revision's class.
    pub fn create(
        &mut self,
        key: K,
        params: &AutoscalerParams<'_>,
    ) -> Result<DeciderStatus, AutoscalerError> {
        if let Some(scaler) = self.scalers.get(&key) {
            return Ok(scaler.status);
        }
        let scaler = Box::new(RevisionScaler {
            metrics: RevisionMetrics::new(&MetricSpec::new(params)),
            autoscaler: self.registry.create(params)?,
            status: initial_status(params),
        });
        let status = scaler.status;
        self.scalers.insert(key, scaler);
        Ok(status)
    }

    /// Applies changed settings to the revision `key` (`Update`); false when it is not scaled.
    ///
    /// # Errors
    /// When its autoscaler rejects the settings.
    pub fn update(
        &mut self,
        key: &K,
        params: &AutoscalerParams<'_>,
    ) -> Result<bool, AutoscalerError> {
        let Some(scaler) = self.scalers.get_mut(key) else {
            return Ok(false);
        };
        scaler.metrics.update(&MetricSpec::new(params), params.now);
        scaler.autoscaler.update(params)?;
        Ok(true)
    }

    /// Stops scaling the revision `key`; false when it was not scaled.
    pub fn delete(&mut self, key: &K) -> bool {
        self.scalers.remove(key).is_some()
    }

    /// Records a stat of the revision `key`; false (and dropped) when it is not scaled.
    pub fn record(&mut self, key: &K, now: Timestamp, stat: &Stat) -> bool {
        match self.scalers.get_mut(key) {
            Some(scaler) => {
                scaler.metrics.record(now, stat);
                true
            }
            None => false,
        }
    }

    /// Decides for every revision at `now`, given each one's ready pods. Invalid decisions are
    /// skipped; `changed` is called for each revision whose desired scale changed or whose
    /// excess burst capacity changed sign (Knative's `updateLatestScale`).
    pub fn tick(
        &mut self,
        now: Timestamp,
        mut ready_pods: impl FnMut(&K) -> i32,
        mut changed: impl FnMut(&K, &DeciderStatus),
    ) {
        for (key, scaler) in &mut self.scalers {
            if scaler.decide(now, ready_pods(key)) {
                changed(key, &scaler.status);
            }
        }
    }

    /// Decides for the revision `key` alone at `now`, out of the tick (what Knative's `Poke`
    /// makes a decider do when a request reaches a revision at zero). Returns its status when
    /// the decision changed it, as [`MultiScaler::tick`] reports changes.
    pub fn tick_one(&mut self, key: &K, now: Timestamp, ready_pods: i32) -> Option<DeciderStatus> {
        let scaler = self.scalers.get_mut(key)?;
        scaler.decide(now, ready_pods).then_some(scaler.status)
    }

    /// The latest decision for the revision `key`.
    pub fn status(&self, key: &K) -> Option<DeciderStatus> {
        self.scalers.get(key).map(|s| s.status)
    }

    /// The number of revisions scaled.
    pub fn len(&self) -> usize {
        self.scalers.len()
    }

    /// Whether no revision is scaled.
    pub fn is_empty(&self) -> bool {
        self.scalers.is_empty()
    }

    /// The bytes held for all revisions: the hash table (estimated from its capacity, with
    /// hashbrown's one control byte per bucket), every revision's boxed state (windows with
    /// their buckets, autoscaler, status), and what `key_heap` says each key holds on the heap.
    /// Allocator overhead is not counted.
    pub fn memory_footprint(&self, key_heap: impl Fn(&K) -> usize) -> usize {
        let capacity = self.scalers.capacity();
        let buckets = if capacity == 0 {
            0
        } else {
            (capacity * 8 / 7).next_power_of_two()
        };
        let table = buckets * (size_of::<(K, Box<RevisionScaler>)>() + 1);
        table
            + self
                .scalers
                .iter()
                .map(|(key, scaler)| {
                    key_heap(key) + size_of::<RevisionScaler>() - size_of::<RevisionMetrics>()
                        + scaler.metrics.memory_footprint()
                        + scaler.autoscaler.memory_footprint()
                })
                .sum::<usize>()
    }
}

impl RevisionScaler {
    /// One decision; true when it changed the desired scale or the sign of the excess burst
    /// capacity (Knative's `updateLatestScale`). Invalid decisions change nothing.
    fn decide(&mut self, now: Timestamp, ready_pods: i32) -> bool {
        let snapshot = MetricSnapshot {
            now,
            ready_pods,
            metrics: &self.metrics,
        };
        let decision = self.autoscaler.scale(&snapshot);
        if !decision.valid {
            return false;
        }
        let status = &mut self.status;
        let moved = status.desired_scale != decision.desired_scale
            || (status.excess_burst_capacity < 0) != (decision.excess_burst_capacity < 0);
        status.desired_scale = decision.desired_scale;
        status.excess_burst_capacity = decision.excess_burst_capacity;
        moved
    }
}

/// Knative's `createScaler`: no decision yet, and the excess burst capacity of one pod (or the
/// target burst capacity itself when it is 0 or -1).
fn initial_status(params: &AutoscalerParams<'_>) -> DeciderStatus {
    let target_burst_capacity = params
        .float_annotation(TARGET_BURST_CAPACITY_ANNOTATION)
        .unwrap_or(params.config.target_burst_capacity);
    let excess_burst_capacity = if target_burst_capacity == 0.0 || target_burst_capacity == -1.0 {
        target_burst_capacity as i32
    } else {
        let metric = ScalingMetric::from_annotation(
            params
                .annotations
                .get(METRIC_ANNOTATION_KEY)
                .map(String::as_str),
        );
        let (_, total) = resolve_metric_target(params, metric);
        (total - target_burst_capacity) as i32
    };
    DeciderStatus {
        desired_scale: -1,
        excess_burst_capacity,
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

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_new_revision_has_no_decision_and_one_pods_burst_capacity() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        let status = scalers
            .create("a", &AutoscalerParams::new(&none, &config, at(0)))
            .unwrap();
        assert_eq!(
            status,
            DeciderStatus {
                desired_scale: -1,
                excess_burst_capacity: 100 - 211
            }
        );
        let minus_one = annotations(&[("autoscaling.knative.dev/target-burst-capacity", "-1")]);
        let status = scalers
            .create("b", &AutoscalerParams::new(&minus_one, &config, at(0)))
            .unwrap();
        assert_eq!(status.excess_burst_capacity, -1);
        assert_eq!(scalers.len(), 2);
    }

    #[test]
    fn creating_twice_keeps_the_first() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let params = AutoscalerParams::new(&none, &config, at(0));
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        scalers.create("a", &params).unwrap();
        scalers.record(&"a", at(0), &Stat::concurrency(700.0));
        scalers.tick(at(0), |_| 1, |_, _| {});
        assert_eq!(scalers.create("a", &params).unwrap().desired_scale, 10);
    }

    #[test]
    fn unknown_classes_are_rejected() {
        let config = AutoscalerConfig::default();
        let hpa = annotations(&[(
            "autoscaling.knative.dev/class",
            "hpa.autoscaling.knative.dev",
        )]);
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        assert!(
            scalers
                .create("a", &AutoscalerParams::new(&hpa, &config, at(0)))
                .is_err()
        );
        assert!(scalers.is_empty());
    }

    #[test]
    fn tick_reports_changes_and_skips_revisions_without_data() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let params = AutoscalerParams::new(&none, &config, at(0));
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        scalers.create("busy", &params).unwrap();
        scalers.create("idle", &params).unwrap();
        scalers.record(&"busy", at(0), &Stat::concurrency(70.0));
        let mut changed = Vec::new();
        scalers.tick(at(0), |_| 1, |k, s| changed.push((*k, *s)));
        assert_eq!(
            changed,
            [(
                "busy",
                DeciderStatus {
                    desired_scale: 1,
                    excess_burst_capacity: -181
                }
            )]
        );
        assert_eq!(scalers.status(&"idle").unwrap().desired_scale, -1);
        // Same decision again: nothing to report.
        scalers.record(&"busy", at(1), &Stat::concurrency(70.0));
        changed.clear();
        scalers.tick(at(1), |_| 1, |k, s| changed.push((*k, *s)));
        assert!(changed.is_empty());
    }

    #[test]
    fn a_sign_change_of_the_burst_capacity_is_a_change() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        scalers
            .create("a", &AutoscalerParams::new(&none, &config, at(0)))
            .unwrap();
        scalers.record(&"a", at(0), &Stat::concurrency(0.0));
        scalers.tick(at(0), |_| 2, |_, _| {});
        let mut changed = 0;
        scalers.record(&"a", at(1), &Stat::concurrency(0.0));
        // Same desired scale (1), but 3 pods leave spare capacity: 300 − 211 > 0.
        scalers.tick(at(1), |_| 3, |_, _| changed += 1);
        assert_eq!(
            scalers.status(&"a").unwrap(),
            DeciderStatus {
                desired_scale: 1,
                excess_burst_capacity: 89
            }
        );
        assert_eq!(changed, 1);
    }

    #[test]
    fn update_resizes_windows_and_respecs_the_decider() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        scalers
            .create("a", &AutoscalerParams::new(&none, &config, at(0)))
            .unwrap();
        let target = annotations(&[("autoscaling.knative.dev/target", "10")]);
        assert!(
            scalers
                .update(&"a", &AutoscalerParams::new(&target, &config, at(0)))
                .unwrap()
        );
        assert!(
            !scalers
                .update(&"b", &AutoscalerParams::new(&target, &config, at(0)))
                .unwrap()
        );
        scalers.record(&"a", at(0), &Stat::concurrency(70.0));
        scalers.tick(at(0), |_| 1, |_, _| {});
        assert_eq!(scalers.status(&"a").unwrap().desired_scale, 10);
    }

    #[test]
    fn tick_one_decides_for_one_revision_and_reports_a_change_once() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let params = AutoscalerParams::new(&none, &config, at(0));
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        scalers.create("cold", &params).unwrap();
        scalers.create("other", &params).unwrap();
        scalers.record(&"cold", at(0), &Stat::concurrency(140.0));
        scalers.record(&"other", at(0), &Stat::concurrency(140.0));
        let status = scalers.tick_one(&"cold", at(0), 0).expect("a change");
        assert_eq!(status.desired_scale, 2);
        assert_eq!(scalers.status(&"other").unwrap().desired_scale, -1);
        assert_eq!(
            scalers.tick_one(&"cold", at(0), 0),
            None,
            "same decision again"
        );
        assert_eq!(scalers.tick_one(&"missing", at(0), 0), None);
    }

    #[test]
    fn records_and_deletes_of_unknown_revisions_are_dropped() {
        let mut scalers: MultiScaler<&str> = MultiScaler::new(AutoscalerRegistry::default());
        assert!(!scalers.record(&"a", at(0), &Stat::concurrency(1.0)));
        assert!(!scalers.delete(&"a"));
    }

    #[test]
    fn memory_footprint_grows_with_revisions() {
        let config = AutoscalerConfig::default();
        let none = annotations(&[]);
        let mut scalers = MultiScaler::new(AutoscalerRegistry::default());
        assert_eq!(scalers.memory_footprint(|_: &u32| 0), 0);
        for key in 0..100u32 {
            scalers
                .create(key, &AutoscalerParams::new(&none, &config, at(0)))
                .unwrap();
        }
        let per_revision = scalers.memory_footprint(|_| 0) / 100;
        assert!(per_revision > 132 * 8, "{per_revision}");
        assert!(per_revision < 2048, "{per_revision}");
    }
}
