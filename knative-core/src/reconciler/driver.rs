//! One generic driver onto `kube::runtime::Controller` for every Knative resource.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::events::EventPublisher;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::Reconciler;
use super::cache::{Cacheable, Caches, Lister};
use super::compact::Compact;
use super::error::{DriverError, ReconcileError, failure_backoff};
use crate::apis::{KnativeObject, KnativeStatus};
use crate::config::{Config, ConfigStore};
use crate::leader::{LeaderElector, LeaseConfig, run_while_leading};
use crate::metrics::Metrics;

/// The reason the happy condition carries between a new generation and the reconciler's verdict.
const NEW_GENERATION_REASON: &str = "NewObservedGenFailure";
/// client-go's `retry.DefaultRetry` makes five attempts at a conflicting update.
const STATUS_UPDATE_ATTEMPTS: usize = 5;
/// How long the driver remembers an object it wrote whose cache never caught up (it was deleted,
/// or no pass came after the write).
const WRITTEN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// How many objects a [`Driver`] reconciles at once unless told otherwise. Bounded, as Knative
/// bounds its controllers' workers: an unbounded controller that starts with thousands of
/// objects sends thousands of requests at once, and the API server answers with timeouts
/// (measured with 1,000 Services: 504s and 400 MB of in-flight requests in the controller).
pub const DEFAULT_CONCURRENCY: u16 = 4;

/// How a [`Driver`] names itself and its finalizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverOptions {
    /// The reconciler's name: the Events' reporting controller, the metrics' `reconciler` label,
    /// the logs. Default: `<kind>-controller` in lower case, as Knative's agent names.
    pub name: String,
    /// The finalizer the driver manages when the reconciler finalizes. Default: Knative's,
    /// `<plural>.<group>` (e.g. `services.serving.knative.dev`).
    pub finalizer: String,
    /// How many objects are reconciled at once (0 = unbounded). Default:
    /// [`DEFAULT_CONCURRENCY`].
    pub concurrency: u16,
    /// Watch only this namespace (default: all namespaces).
    pub namespace: Option<String>,
}

impl DriverOptions {
    /// Knative's defaults for kind `K`.
    pub fn for_kind<K: Resource<DynamicType = ()>>() -> Self {
        let group = K::group(&());
        let plural = K::plural(&());
        Self {
            name: format!("{}-controller", K::kind(&()).to_lowercase()),
            finalizer: if group.is_empty() {
                plural.into_owned()
            } else {
                format!("{plural}.{group}")
            },
            concurrency: DEFAULT_CONCURRENCY,
            namespace: None,
        }
    }
}

/// What a reconcile sees besides the object: the client, the Event recorder for that object, the
/// configuration snapshot of this pass, and the time of this pass (use it for conditions, so that
/// one pass stamps one time).
#[derive(Clone)]
pub struct Context {
    client: Client,
    recorder: EventPublisher,
    reference: ObjectReference,
    now: Timestamp,
    config: Arc<Config>,
    caches: Option<Caches>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("reference", &self.reference)
            .field("now", &self.now)
            .finish()
    }
}

impl Context {
    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The time this reconcile started.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The configuration for this pass: one immutable snapshot of Knative's ConfigMaps, taken
    /// when the pass started (Knative's defaults when the driver has no
    /// [`ConfigStore`](crate::config::ConfigStore)).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the `K`s of `namespace`: from the watch caches the driver was given
    /// ([`Driver::with_caches`]) when one holds that kind, else from the API server.
    pub fn lister<K: Cacheable>(&self, namespace: &str) -> Lister<K> {
        match &self.caches {
            Some(caches) => caches.lister(namespace),
            None => Lister::uncached(self.client.clone(), namespace),
        }
    }

    /// A reference to the object being reconciled.
    pub fn reference(&self) -> &ObjectReference {
        &self.reference
    }

    /// Publishes an Event about the object being reconciled. A failure to publish is logged,
    /// never returned: Events are best effort, as in client-go.
    pub async fn publish(&self, type_: EventType, reason: &str, note: impl Into<String>) {
        publish(
            &self.recorder,
            &self.reference,
            type_,
            reason,
            note.into(),
            "Reconcile",
        )
        .await;
    }
}

async fn publish(
    recorder: &EventPublisher,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
    action: &str,
) {
    let note = truncate(note, 1024);
    if let Err(err) = recorder
        .publish(reference, type_, reason, action, &note, Timestamp::now())
        .await
    {
        tracing::warn!(%err, reason, object = ?reference.name, "failed to publish event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Runs a [`Reconciler`] for kind `K` on `kube::runtime`, doing for it what knative.dev/pkg's
/// generated reconcilers do (see the [module docs](super)).
pub struct Driver<K: KnativeObject, R: Reconciler<K>> {
    client: Client,
    reconciler: R,
    options: DriverOptions,
    recorder: EventPublisher,
    failures: Mutex<HashMap<(String, String), u32>>,
    /// Objects waiting for a scheduled retry or requeue: the work queue depth we can observe.
    pending: Mutex<HashSet<(String, String)>>,
    metrics: Option<Metrics>,
    config: Option<ConfigStore>,
    leader: Option<LeaseConfig>,
    caches: Option<Caches>,
    /// The objects this driver last wrote, until the cache it reads from has caught up.
    written: Mutex<Written<K>>,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: KnativeObject, R: Reconciler<K>> fmt::Debug for Driver<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<K: KnativeObject, R: Reconciler<K>> Driver<K, R> {
    /// A driver with Knative's default name and finalizer for `K`.
    pub fn new(client: Client, reconciler: R) -> Self {
        Self::with_options(client, reconciler, DriverOptions::for_kind::<K>())
    }

    /// A driver with explicit options.
    pub fn with_options(client: Client, reconciler: R, options: DriverOptions) -> Self {
        let recorder = EventPublisher::new(
            client.clone(),
            options.name.clone(),
            std::env::var("POD_NAME").ok(),
        );
        Self {
            client,
            reconciler,
            options,
            recorder,
            failures: Mutex::new(HashMap::new()),
            written: Mutex::new(Written::default()),
            pending: Mutex::new(HashSet::new()),
            metrics: None,
            config: None,
            leader: None,
            caches: None,
            _kind: std::marker::PhantomData,
        }
    }

    /// Records `reconcile_count`, `reconcile_latency`, `reconcile_in_flight` and
    /// `work_queue_depth` (objects waiting for a scheduled retry or requeue) under the driver's
    /// name.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Gives every pass a snapshot of `store` ([`Context::config`]) and reconciles every object
    /// again when the configuration changes.
    pub fn with_config(mut self, store: ConfigStore) -> Self {
        self.config = Some(store);
        self
    }

    /// Reconciles only while this replica holds the Lease `lease`: among replicas running the
    /// same driver, one writes; when it stops, another takes over within the lease duration.
    pub fn with_leader_election(mut self, lease: LeaseConfig) -> Self {
        self.leader = Some(lease);
        self
    }

    /// Takes the objects to reconcile from the shared informer of `K` in `caches`, and serves
    /// [`Context::lister`]'s reads from the informers there instead of the API server. Give the
    /// controller's watches of other kinds from the same `caches`
    /// ([`Caches::changes`](super::Caches::changes)), so that a pass triggered by a change
    /// reads it.
    pub fn with_caches(mut self, caches: Caches) -> Self {
        self.caches = Some(caches);
        self
    }

    /// The driver's options.
    pub fn options(&self) -> &DriverOptions {
        &self.options
    }

    /// The reconciler being driven.
    pub fn reconciler(&self) -> &R {
        &self.reconciler
    }

    /// Watches every `K` (in all namespaces, or the one of [`DriverOptions::namespace`]) and
    /// reconciles until the process is asked to stop (SIGTERM or Ctrl-C).
    ///
    /// # Errors
    /// When leader election is configured with an invalid [`LeaseConfig`].
    pub async fn run(self) -> Result<(), crate::leader::Error> {
        self.run_with(|controller| controller).await
    }

    /// Like [`Driver::run`], letting the caller configure the controller first, typically to
    /// watch owned children:
    /// `driver.run_with(|c| c.owns(Api::<Deployment>::all(client.clone()), Default::default()))`.
    /// The controller holds `K`s as [`Compact`] objects (a mapping closure that needs more than
    /// their metadata calls [`Compact::decode`]). `configure` is called again each time this
    /// replica becomes leader.
    ///
    /// # Errors
    /// When leader election is configured with an invalid [`LeaseConfig`].
    pub async fn run_with(
        self,
        configure: impl Fn(Controller<Compact<K>>) -> Controller<Compact<K>>,
    ) -> Result<(), crate::leader::Error> {
        let shutdown = shutdown_signal();
        let Some(lease) = self.leader.clone() else {
            Arc::new(self).run_controller(&configure, shutdown).await;
            return Ok(());
        };
        let elector = LeaderElector::new(self.client.clone(), lease)?;
        let leading = elector.subscribe();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let election = tokio::spawn(elector.run(async move {
            let _ = stop_rx.await;
        }));
        let driver = Arc::new(self);
        let work = run_while_leading(leading.clone(), || {
            Arc::clone(&driver).run_controller(&configure, shutdown.clone())
        });
        // A leader stops when its controller has shut down gracefully; a follower has no
        // controller running and stops at the signal.
        let mut follower = leading;
        let follower_stops = async {
            shutdown.clone().await;
            let _ = follower.wait_for(|leading| !*leading).await;
        };
        tokio::select! {
            _ = work => {}
            () = follower_stops => {}
        }
        // Release the Lease so that a follower takes over at once.
        let _ = stop_tx.send(());
        let _ = election.await;
        Ok(())
    }

    async fn run_controller(
        self: Arc<Self>,
        configure: &impl Fn(Controller<Compact<K>>) -> Controller<Compact<K>>,
        shutdown: Shutdown,
    ) {
        let config =
            kube::runtime::controller::Config::default().concurrency(self.options.concurrency);
        let mut controller = match &self.caches {
            // The shared informer of the kind: the other controllers of the process read the
            // same cache.
            Some(caches) if caches.namespace() == self.options.namespace.as_deref() => {
                Controller::for_shared_stream(caches.changes::<K>(), caches.store::<K>())
            }
            _ => {
                if self.caches.is_some() {
                    tracing::warn!(reconciler = %self.options.name, "the driver's namespace is not its caches' namespace: it watches on its own");
                }
                // The controller's cache holds every object of the kind, in compact form (their
                // managedFields dropped: no reconciler reads them, and a status update without
                // them leaves the server's as they are).
                let api = match &self.options.namespace {
                    Some(ns) => Api::<Compact<K>>::namespaced(self.client.clone(), ns),
                    None => Api::<Compact<K>>::all(self.client.clone()),
                };
                let (reader, writer) = kube::runtime::reflector::store();
                let objects =
                    kube::runtime::reflector(writer, watcher(api, watcher::Config::default()))
                        .applied_objects();
                Controller::for_stream(objects, reader)
            }
        };
        controller = configure(controller)
            .with_config(config)
            .graceful_shutdown_on(shutdown.clone());
        if let Some(store) = &self.config {
            let changes = config_changes(store.changes());
            controller = controller.reconcile_all_on(changes);
        }
        let name = self.options.name.clone();
        let run = controller
            .run(
                |obj, driver: Arc<Self>| async move {
                    let decoded = obj.decode().map_err(|source| DriverError::Decode {
                        kind: K::kind(&()).into_owned(),
                        source,
                    })?;
                    driver.reconcile(Arc::new(decoded)).await
                },
                |obj, err, driver: Arc<Self>| driver.retry_after_failure(&*obj, err),
                self,
            )
            .for_each(|result| {
                if let Err(err) = result {
                    tracing::debug!(reconciler = %name, %err, "reconcile did not complete");
                }
                futures::future::ready(())
            });
        // kube's controller waits for its cache before it stops, and a cache whose kind the
        // server does not serve (a CRD not installed) never fills: give in-flight passes a grace
        // period after the shutdown signal, then stop anyway.
        let overdue = async {
            shutdown.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            () = run => tracing::info!(reconciler = %name, "stopped"),
            () = overdue => tracing::warn!(
                reconciler = %name,
                grace = ?SHUTDOWN_GRACE,
                "not stopped within the grace period after the shutdown signal (is its CRD installed?); stopping anyway"
            ),
        }
    }

    /// The controller's retry policy for a failed pass: per-object exponential backoff, reset by
    /// the next successful pass.
    pub fn error_policy(&self, obj: &K, err: &DriverError) -> Action {
        self.retry_after_failure(obj, err)
    }

    /// [`Driver::error_policy`] for any form of the object (the controller's is [`Compact`]).
    fn retry_after_failure(&self, obj: &impl Resource, err: &DriverError) -> Action {
        let key = key_of(obj);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        let delay = failure_backoff(*n);
        drop(failures);
        self.mark_pending(obj, true);
        tracing::warn!(reconciler = %self.options.name, object = %obj.name_any(), %err, ?delay, "reconcile failed");
        Action::requeue(delay)
    }

    /// One pass over one object, as the controller runs it; callable directly from tests.
    ///
    /// # Errors
    /// A transient reconciler error, or a failure to write the status or the finalizer; the
    /// controller retries these with [`Driver::error_policy`].
    pub async fn reconcile(&self, original: Arc<K>) -> Result<Action, DriverError> {
        self.mark_pending(&*original, false);
        let original = self.latest_known(original);
        let started = Instant::now();
        if let Some(metrics) = &self.metrics {
            metrics.reconcile_started(&self.options.name);
        }
        let result = self.reconcile_pass(&original).await;
        if let Some(metrics) = &self.metrics {
            metrics.reconcile_finished(&self.options.name, result.is_ok(), started.elapsed());
        }
        if let Ok(action) = &result {
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key_of(&*original));
            if *action != Action::await_change() {
                self.mark_pending(&*original, true);
            }
        }
        result
    }

    /// `cached`, or what this driver last wrote of it when `cached` is older than that write
    /// (the write's watch event has not reached the cache yet). Starting a pass from the older
    /// copy would end in a status write that conflicts (409), and a second read and write.
    fn latest_known(&self, cached: Arc<K>) -> Arc<K> {
        let key = key_of(&*cached);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = written.entries.get(&key) else {
            return cached;
        };
        if let Some(version) = cached.meta().resource_version.as_deref()
            && entry.superseded.iter().any(|v| v == version)
        {
            return Arc::clone(&entry.object);
        }
        // The cache has caught up, or someone else changed the object since.
        written.entries.remove(&key);
        cached
    }

    /// Notes that this driver wrote `object`, which supersedes the `superseded` versions.
    fn remember(&self, superseded: Vec<String>, mut object: K) {
        // As the cache holds objects.
        object.meta_mut().managed_fields = None;
        let key = key_of(&object);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.entries.len() >= written.next_prune {
            written
                .entries
                .retain(|_, entry| entry.at.elapsed() < WRITTEN_TTL);
            written.next_prune = (written.entries.len() * 2).max(1024);
        }
        written.entries.insert(
            key,
            WrittenObject {
                superseded,
                object: Arc::new(object),
                at: Instant::now(),
            },
        );
    }

    fn forget(&self, obj: &K) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.entries.remove(&key_of(obj));
    }

    fn mark_pending(&self, obj: &impl Resource, pending: bool) {
        let mut set = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending {
            set.insert(key_of(obj));
        } else {
            set.remove(&key_of(obj));
        }
        if let Some(metrics) = &self.metrics {
            metrics.set_work_queue_depth(&self.options.name, set.len() as i64);
        }
    }

    async fn reconcile_pass(&self, original: &K) -> Result<Action, DriverError> {
        let config = self
            .config
            .as_ref()
            .map_or_else(|| Arc::new(Config::default()), ConfigStore::snapshot);
        if !self.reconciler.accepts(original, &config) {
            return Ok(Action::await_change());
        }
        let namespace = original.namespace().unwrap_or_default();
        let api = Api::<K>::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let ctx = Context {
            client: self.client.clone(),
            recorder: self.recorder.clone(),
            reference: original.object_ref(&()),
            now,
            config,
            caches: self.caches.clone(),
        };
        let mut resource = original.clone();
        // The object whose status the status write is based on (changes when the finalizer is set).
        let mut base = original.clone();
        // The versions this pass's writes supersede, for `latest_known`.
        let mut superseded: Vec<String> = original.resource_version().into_iter().collect();
        let mut finalizer_added = false;

        let outcome = if resource.meta().deletion_timestamp.is_none() {
            if self.reconciler.uses_finalizer() && !self.has_finalizer(&resource) {
                base = self
                    .set_finalizers(&api, &resource, true)
                    .await
                    .inspect_err(|err| {
                        tracing::warn!(%err, "failed to add finalizer");
                    })?;
                finalizer_added = true;
                resource = base.clone();
            }
            pre_process(&mut resource, now);
            let outcome = self.reconciler.reconcile_kind(&mut resource, &ctx).await;
            if let Err(ReconcileError::Permanent { reason, message }) = &outcome {
                let happy = K::condition_set().happy().to_owned();
                resource
                    .manage_conditions(now)
                    .mark_false(&happy, reason, message);
            }
            post_process(&mut resource, original);
            outcome
        } else if self.reconciler.uses_finalizer() && self.has_finalizer(&resource) {
            let outcome = self.reconciler.finalize_kind(&mut resource, &ctx).await;
            if outcome.is_ok() {
                self.forget(&resource);
                self.set_finalizers(&api, &resource, false).await?;
                // The object may be gone now; there is no status left to write.
                return Ok(Action::await_change());
            }
            outcome
        } else {
            return Ok(Action::await_change());
        };

        let written = if resource.status() == base.status() {
            Ok(None)
        } else {
            self.update_status(&api, &base, &resource, &mut superseded)
                .await
        };
        let written = match written {
            Ok(Some(object)) => {
                // The finalizer patch's answer, if any, is superseded by the status write too.
                if finalizer_added {
                    superseded.extend(base.resource_version());
                }
                self.remember(superseded, object);
                Ok(())
            }
            Ok(None) => {
                if finalizer_added {
                    // The finalizer patch's answer is the newest copy.
                    self.remember(superseded, base);
                }
                Ok(())
            }
            Err(err) => Err(err),
        };
        if let Err(err) = written {
            publish(
                &self.recorder,
                &ctx.reference,
                EventType::Warning,
                "UpdateFailed",
                format!(
                    "Failed to update status for \"{}\": {err}",
                    resource.name_any()
                ),
                "UpdateStatus",
            )
            .await;
            return Err(DriverError::UpdateStatus(err));
        }

        match outcome {
            Ok(()) => Ok(Action::await_change()),
            Err(ReconcileError::RequeueAfter(delay)) => Ok(Action::requeue(delay)),
            Err(ReconcileError::Permanent { reason, message }) => {
                ctx.publish(EventType::Warning, &reason, message).await;
                Ok(Action::await_change())
            }
            Err(ReconcileError::Transient(err)) => {
                ctx.publish(EventType::Warning, "InternalError", err.to_string())
                    .await;
                Err(DriverError::Reconcile(err))
            }
        }
    }

    fn has_finalizer(&self, obj: &K) -> bool {
        obj.finalizers()
            .iter()
            .any(|f| f == &self.options.finalizer)
    }

    /// Adds (`add`) or removes our finalizer with a merge patch guarded by the object's
    /// resourceVersion, as knative.dev/pkg does, so a concurrent change is never overwritten.
    async fn set_finalizers(&self, api: &Api<K>, obj: &K, add: bool) -> Result<K, DriverError> {
        let mut finalizers: Vec<String> = obj
            .finalizers()
            .iter()
            .filter(|f| *f != &self.options.finalizer)
            .cloned()
            .collect();
        if add {
            finalizers.push(self.options.finalizer.clone());
        }
        let patch = serde_json::json!({
            "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() }
        });
        api.patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| DriverError::Finalizer {
            action: if add { "add" } else { "remove" },
            source,
        })
    }

    /// Writes `desired`'s status over the latest object, retrying 409 conflicts against a fresh
    /// read (the first attempt uses the store's copy, as knative.dev/pkg does). Returns the
    /// object as written, if a write was needed, and adds the versions it read to `superseded`.
    async fn update_status(
        &self,
        api: &Api<K>,
        base: &K,
        desired: &K,
        superseded: &mut Vec<String>,
    ) -> Result<Option<K>, kube::Error> {
        let mut existing = base.clone();
        let name = desired.name_any();
        let mut attempt = 0;
        loop {
            if attempt > 0 {
                existing = api.get(&name).await?;
                superseded.extend(existing.resource_version());
            }
            if existing.status() == desired.status() {
                return Ok(None);
            }
            *existing.status_mut() = desired.status().cloned();
            match api
                .replace_status(&name, &PostParams::default(), &existing)
                .await
            {
                Ok(written) => return Ok(Some(written)),
                Err(kube::Error::Api(status))
                    if status.is_conflict() && attempt + 1 < STATUS_UPDATE_ATTEMPTS =>
                {
                    tracing::debug!(object = %name, attempt, "status update conflicted; retrying on the latest object");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// What a [`Driver`] last wrote of each object, until the cache it reads from has caught up.
struct Written<K> {
    entries: HashMap<(String, String), WrittenObject<K>>,
    /// Expired entries are dropped when the map reaches this size.
    next_prune: usize,
}

impl<K> Default for Written<K> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            next_prune: 1024,
        }
    }
}

struct WrittenObject<K> {
    /// The resourceVersions the write superseded: a cached copy at one of them is older than
    /// `object`.
    superseded: Vec<String>,
    object: Arc<K>,
    at: Instant,
}

fn key_of<K: Resource>(obj: &K) -> (String, String) {
    (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    )
}

/// Before `reconcile_kind`: conditions initialised; a new generation resets the happy condition
/// to Unknown until the reconciler says otherwise.
fn pre_process<K: KnativeObject>(resource: &mut K, now: Timestamp) {
    let generation = resource.meta().generation;
    let happy = K::condition_set().happy().to_owned();
    let observed = resource.status().and_then(|s| s.duck().observed_generation);
    let mut conditions = resource.manage_conditions(now);
    conditions.initialize_conditions();
    if observed != generation {
        conditions.mark_unknown(
            &happy,
            NEW_GENERATION_REASON,
            "unsuccessfully observed a new generation",
        );
    }
}

/// After `reconcile_kind`: the generation is observed, and conditions that did not change keep
/// their `lastTransitionTime` (so that an unchanged object writes nothing).
fn post_process<K: KnativeObject>(resource: &mut K, original: &K) {
    let generation = resource.meta().generation;
    let before = original
        .status()
        .map(|s| s.duck().conditions.clone())
        .unwrap_or_default();
    let status = resource
        .status_mut()
        .get_or_insert_with(Default::default)
        .duck_mut();
    status.observed_generation = generation;
    for condition in &mut status.conditions {
        if let Some(old) = before.iter().find(|c| c.type_ == condition.type_) {
            let same = old.status == condition.status
                && old.severity == condition.severity
                && old.reason == condition.reason
                && old.message == condition.message;
            if same {
                condition.last_transition_time = old.last_transition_time;
            }
        }
    }
}

/// Every change of the configuration, as a stream of `()` for `reconcile_all_on`.
fn config_changes(
    changes: tokio::sync::watch::Receiver<Arc<Config>>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(changes, |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    })
}

/// Completes once the process is asked to stop (SIGTERM or Ctrl-C); cheap to clone.
type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// How long in-flight reconciles may run on after the shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn shutdown_signal() -> Shutdown {
    use futures::FutureExt;
    async {
        crate::signal::shutdown().await;
        tracing::info!("shutdown requested");
    }
    .boxed()
    .shared()
}
