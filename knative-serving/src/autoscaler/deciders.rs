//! The deciders of a running autoscaler (Knative's `Deciders`: the multi-scaler behind a lock),
//! shared by the three parts that meet at them:
//!
//! - the PodAutoscaler reconciler makes, updates and deletes a revision's decider
//!   ([`Deciders::reconcile`], [`Deciders::delete`]) and reads its latest decision
//!   ([`Deciders::status`]);
//! - the [collector](super::collector) records the stats of the revision's pods and of the
//!   activator ([`Deciders::record`], [`Deciders::record_and_poke`]) and the revision's ready
//!   pods ([`Deciders::set_ready_pods`]);
//! - the tick ([`Deciders::tick`], every [`TICK_INTERVAL`] in [`Deciders::run`]) decides for
//!   every revision, and every changed decision is sent to the subscribers
//!   ([`Deciders::subscribe`]): the reconciler, which applies it at once.
//!
//! ```
//! use std::collections::BTreeMap;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_core::config::AutoscalerConfig;
//! use knative_serving::autoscaler::deciders::{Deciders, RevisionKey};
//! use knative_serving::autoscaler::metrics::Stat;
//! use knative_serving::autoscaler::{AutoscalerParams, AutoscalerRegistry};
//!
//! # tokio_test_block_on(async {
//! let deciders = Deciders::new(AutoscalerRegistry::default());
//! let mut changes = deciders.subscribe();
//! let key = RevisionKey::new("default", "hello-00001");
//! let config = AutoscalerConfig::default();
//! let annotations = BTreeMap::new();
//! let now = Timestamp::from_second(1_700_000_000).unwrap();
//! deciders.reconcile(&key, &AutoscalerParams::new(&annotations, &config, now)).await.unwrap();
//!
//! // Idle, the revision went to zero.
//! deciders.record(&key, now, &Stat::concurrency(0.0)).await;
//! deciders.tick(now).await;
//! assert_eq!(changes.try_recv().unwrap(), key);
//! assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 0);
//!
//! // The activator reports the first request to it: decided at once, not at the next tick.
//! deciders.record_and_poke(&key, now, &Stat::concurrency(1.0)).await;
//! assert_eq!(changes.try_recv().unwrap(), key);
//! assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex as SyncMutex};

use k8s_openapi::jiff::Timestamp;
use knative_core::config::AutoscalerConfig;
use tokio::sync::{Mutex, mpsc};

pub use super::kpa::TICK_INTERVAL;
use super::metrics::Stat;
use super::multiscaler::{DeciderStatus, MultiScaler};
use super::{AutoscalerError, AutoscalerParams, AutoscalerRegistry};

/// A revision, by namespace and name (its PodAutoscaler has the same name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// The revision's namespace.
    pub namespace: String,
    /// The revision's name.
    pub name: String,
}

impl RevisionKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The inputs a decider was last made or updated from, to update it only when they change.
#[derive(Clone, Debug, PartialEq)]
struct Inputs {
    annotations: BTreeMap<String, String>,
    container_concurrency: i64,
    reachable: bool,
    config: AutoscalerConfig,
}

impl Inputs {
    fn of(params: &AutoscalerParams<'_>) -> Self {
        Self {
            annotations: params.annotations.clone(),
            container_concurrency: params.container_concurrency,
            reachable: params.reachable,
            config: params.config.clone(),
        }
    }
}

#[derive(Debug)]
struct Revision {
    inputs: Inputs,
    ready_pods: i32,
}

#[derive(Debug)]
struct State {
    scalers: MultiScaler<RevisionKey>,
    revisions: HashMap<RevisionKey, Revision>,
}

/// The deciders of every revision being autoscaled. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Deciders {
    registry: AutoscalerRegistry,
    state: Arc<Mutex<State>>,
    /// Held only to push or prune, never across an await.
    subscribers: Arc<SyncMutex<Vec<mpsc::UnboundedSender<RevisionKey>>>>,
}

impl fmt::Debug for Deciders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deciders")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Deciders {
    /// No deciders yet; they are made by `registry`, per revision class.
    pub fn new(registry: AutoscalerRegistry) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                scalers: MultiScaler::new(registry.clone()),
                revisions: HashMap::new(),
            })),
            registry,
            subscribers: Arc::new(SyncMutex::new(Vec::new())),
        }
    }

    /// The classes deciders are made for.
    pub fn registry(&self) -> &AutoscalerRegistry {
        &self.registry
    }

    /// Makes the decider of `key` from `params`, or updates it when the annotations, container
    /// concurrency, reachability or `config-autoscaler` changed; returns its latest decision
    /// (a desired scale of -1 until it has decided).
    ///
    /// # Errors
    /// When no autoscaler is registered for the revision's class, or it rejects the params.
    pub async fn reconcile(
        &self,
        key: &RevisionKey,
        params: &AutoscalerParams<'_>,
    ) -> Result<DeciderStatus, AutoscalerError> {
        let inputs = Inputs::of(params);
        let mut state = self.state.lock().await;
        let State { scalers, revisions } = &mut *state;
        match revisions.get_mut(key) {
            Some(revision) => {
                if revision.inputs != inputs {
                    scalers.update(key, params)?;
                    revision.inputs = inputs;
                }
            }
            None => {
                scalers.create(key.clone(), params)?;
                revisions.insert(
                    key.clone(),
                    Revision {
                        inputs,
                        ready_pods: params.ready_pods,
                    },
                );
            }
        }
        Ok(scalers
            .status(key)
            .expect("a revision's decider exists once reconciled"))
    }

    /// Forgets the decider of `key`; false when there was none.
    pub async fn delete(&self, key: &RevisionKey) -> bool {
        let mut state = self.state.lock().await;
        state.revisions.remove(key);
        state.scalers.delete(key)
    }

    /// The latest decision for `key`.
    pub async fn status(&self, key: &RevisionKey) -> Option<DeciderStatus> {
        self.state.lock().await.scalers.status(key)
    }

    /// The revisions that have a decider, in no particular order.
    pub async fn revisions(&self) -> Vec<RevisionKey> {
        self.state.lock().await.revisions.keys().cloned().collect()
    }

    /// Sets the number of ready pods of `key` the next decisions see; false when it has no
    /// decider.
    pub async fn set_ready_pods(&self, key: &RevisionKey, ready_pods: i32) -> bool {
        match self.state.lock().await.revisions.get_mut(key) {
            Some(revision) => {
                revision.ready_pods = ready_pods;
                true
            }
            None => false,
        }
    }

    /// Records a stat of `key` taken at `now` (a scrape of its pods); false, and dropped, when
    /// it has no decider.
    pub async fn record(&self, key: &RevisionKey, now: Timestamp, stat: &Stat) -> bool {
        self.state.lock().await.scalers.record(key, now, stat)
    }

    /// Records a stat the activator pushed and, when the revision is at zero and the stat shows
    /// requests, decides for it at once rather than at the next tick (Knative's `Poke`): the
    /// first request to a revision at zero starts its scale-up without waiting up to two
    /// seconds. False, and dropped, when `key` has no decider.
    pub async fn record_and_poke(&self, key: &RevisionKey, now: Timestamp, stat: &Stat) -> bool {
        let changed = {
            let mut state = self.state.lock().await;
            let State { scalers, revisions } = &mut *state;
            if !scalers.record(key, now, stat) {
                return false;
            }
            let at_zero = scalers.status(key).is_some_and(|s| s.desired_scale == 0);
            // A decider that never decided (-1) has no scale to wake from; the tick decides.
            if at_zero && stat.average_concurrent_requests != 0.0 {
                let ready = revisions.get(key).map_or(0, |r| r.ready_pods);
                scalers.tick_one(key, now, ready).is_some()
            } else {
                false
            }
        };
        if changed {
            self.notify([key.clone()]);
        }
        true
    }

    /// Decides for every revision at `now` with the ready pods last set; returns the revisions
    /// whose decision changed, after sending them to the subscribers.
    pub async fn tick(&self, now: Timestamp) -> Vec<RevisionKey> {
        let mut changed = Vec::new();
        {
            let mut state = self.state.lock().await;
            let State { scalers, revisions } = &mut *state;
            scalers.tick(
                now,
                |key| revisions.get(key).map_or(0, |r| r.ready_pods),
                |key, _| changed.push(key.clone()),
            );
        }
        self.notify(changed.iter().cloned());
        changed
    }

    /// A receiver of the revisions whose decision changed. Unbounded, so that no change is
    /// dropped while the receiver is busy; dropping the receiver unsubscribes it.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<RevisionKey> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// The bytes held for all deciders (see [`MultiScaler::memory_footprint`]), keys and
    /// inputs not counted.
    pub async fn memory_footprint(&self) -> usize {
        let state = self.state.lock().await;
        state
            .scalers
            .memory_footprint(|k| k.namespace.capacity() + k.name.capacity())
    }

    /// Ticks every [`TICK_INTERVAL`] on the wall clock until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = interval.tick() => {
                    let changed = self.tick(Timestamp::now()).await;
                    if !changed.is_empty() {
                        tracing::debug!(changed = changed.len(), "autoscaler decisions changed");
                    }
                }
            }
        }
    }

    fn notify(&self, keys: impl IntoIterator<Item = RevisionKey>) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            subscribers.retain(|tx| tx.send(key.clone()).is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_700_000_000;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(BASE + second).unwrap()
    }

    fn key() -> RevisionKey {
        RevisionKey::new("default", "hello-00001")
    }

    async fn made(deciders: &Deciders, annotations: &BTreeMap<String, String>) {
        let config = AutoscalerConfig::default();
        deciders
            .reconcile(&key(), &AutoscalerParams::new(annotations, &config, at(0)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_new_decider_has_not_decided_yet() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        let config = AutoscalerConfig::default();
        let none = BTreeMap::new();
        let status = deciders
            .reconcile(&key(), &AutoscalerParams::new(&none, &config, at(0)))
            .await
            .unwrap();
        assert_eq!(status.desired_scale, -1);
        assert_eq!(deciders.revisions().await, [key()]);
    }

    #[tokio::test]
    async fn an_unknown_class_is_an_error() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        let config = AutoscalerConfig::default();
        let class = BTreeMap::from([(
            "autoscaling.knative.dev/class".to_owned(),
            "nope.example.com".to_owned(),
        )]);
        let err = deciders
            .reconcile(&key(), &AutoscalerParams::new(&class, &config, at(0)))
            .await
            .unwrap_err();
        assert!(matches!(err, AutoscalerError::UnknownClass { .. }));
        assert!(deciders.revisions().await.is_empty());
    }

    #[tokio::test]
    async fn tick_decides_with_the_ready_pods_set_and_notifies_changes() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        let mut changes = deciders.subscribe();
        made(&deciders, &BTreeMap::new()).await;
        assert!(deciders.set_ready_pods(&key(), 4).await);
        // 4 pods idle: the scale-down rate (2) allows halving to 2.
        deciders
            .record(&key(), at(0), &Stat::concurrency(0.0))
            .await;
        assert_eq!(deciders.tick(at(0)).await, [key()]);
        assert_eq!(deciders.status(&key()).await.unwrap().desired_scale, 2);
        assert_eq!(changes.try_recv().unwrap(), key());
        // Nothing changed: nothing sent.
        deciders
            .record(&key(), at(1), &Stat::concurrency(0.0))
            .await;
        assert!(deciders.tick(at(1)).await.is_empty());
        assert!(changes.try_recv().is_err());
    }

    #[tokio::test]
    async fn changed_inputs_update_the_decider() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        made(&deciders, &BTreeMap::new()).await;
        let target =
            BTreeMap::from([("autoscaling.knative.dev/target".to_owned(), "10".to_owned())]);
        made(&deciders, &target).await;
        deciders
            .record(&key(), at(0), &Stat::concurrency(70.0))
            .await;
        deciders.set_ready_pods(&key(), 1).await;
        deciders.tick(at(0)).await;
        assert_eq!(deciders.status(&key()).await.unwrap().desired_scale, 10);
    }

    #[tokio::test]
    async fn a_request_to_a_revision_at_zero_is_decided_at_once() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        made(&deciders, &BTreeMap::new()).await;
        deciders
            .record(&key(), at(0), &Stat::concurrency(0.0))
            .await;
        deciders.tick(at(0)).await;
        assert_eq!(deciders.status(&key()).await.unwrap().desired_scale, 0);
        let mut changes = deciders.subscribe();

        assert!(
            deciders
                .record_and_poke(&key(), at(1), &Stat::concurrency(3.0))
                .await
        );
        assert_eq!(changes.try_recv().unwrap(), key());
        assert_eq!(deciders.status(&key()).await.unwrap().desired_scale, 1);
    }

    #[tokio::test]
    async fn a_poke_without_requests_or_above_zero_waits_for_the_tick() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        made(&deciders, &BTreeMap::new()).await;
        let mut changes = deciders.subscribe();
        // Never decided (-1): no poke.
        deciders
            .record_and_poke(&key(), at(0), &Stat::concurrency(3.0))
            .await;
        assert!(changes.try_recv().is_err());
        deciders.tick(at(0)).await;
        let _ = changes.try_recv();
        // At 1 now: a poke does not decide out of the tick.
        deciders
            .record_and_poke(&key(), at(1), &Stat::concurrency(300.0))
            .await;
        assert!(changes.try_recv().is_err());
        assert_eq!(deciders.status(&key()).await.unwrap().desired_scale, 1);
    }

    #[tokio::test]
    async fn stats_of_revisions_without_a_decider_are_refused() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        assert!(
            !deciders
                .record(&key(), at(0), &Stat::concurrency(1.0))
                .await
        );
        assert!(
            !deciders
                .record_and_poke(&key(), at(0), &Stat::concurrency(1.0))
                .await
        );
        assert!(!deciders.set_ready_pods(&key(), 1).await);
        made(&deciders, &BTreeMap::new()).await;
        assert!(deciders.delete(&key()).await);
        assert!(!deciders.delete(&key()).await);
        assert_eq!(deciders.status(&key()).await, None);
    }

    #[tokio::test]
    async fn dropped_subscribers_are_pruned() {
        let deciders = Deciders::new(AutoscalerRegistry::default());
        drop(deciders.subscribe());
        let mut live = deciders.subscribe();
        made(&deciders, &BTreeMap::new()).await;
        deciders
            .record(&key(), at(0), &Stat::concurrency(0.0))
            .await;
        deciders.tick(at(0)).await;
        assert_eq!(live.try_recv().unwrap(), key());
        assert_eq!(deciders.subscribers.lock().unwrap().len(), 1);
    }
}
