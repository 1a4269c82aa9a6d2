//! The live store: watches the ConfigMaps and hands out immutable snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::pin::pin;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Config, ConfigError};

/// The reason of the Warning Event published on an invalid ConfigMap.
pub const INVALID_CONFIG_REASON: &str = "InvalidConfig";
/// The Events' reporting controller when none is given.
const DEFAULT_REPORTER: &str = "knative-config-store";
/// Events notes are limited to 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

/// The live configuration: watches the ConfigMaps of [`Config`] in a system namespace and hands
/// out one immutable [`Config`] snapshot per reconcile. Cheap to clone; the watch stops when the
/// last clone is dropped.
///
/// - A missing ConfigMap means Knative's defaults; a deleted one reverts to them.
/// - An invalid ConfigMap keeps the last good configuration of that ConfigMap (the defaults if
///   there never was one) and says why: a warning in the log and a `Warning` Event with reason
///   `InvalidConfig` on the ConfigMap.
///
/// ```no_run
/// # async fn example(client: kube::Client) {
/// use knative_core::config::{ConfigStore, SERVING_NAMESPACE};
///
/// let store = ConfigStore::start(client, SERVING_NAMESPACE);
/// store.ready().await;
/// let config = store.snapshot(); // one per reconcile
/// println!("stable window: {:?}", config.autoscaler.stable_window);
///
/// // Re-reconcile everything when the configuration changes.
/// let mut changes = store.changes();
/// while changes.changed().await.is_ok() {
///     let config = changes.borrow_and_update().clone();
///     println!("new configuration: {config:?}");
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct ConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    snapshots: Arc<watch::Sender<Arc<Config>>>,
    ready: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigStore")
            .field("ready", &*self.inner.ready.borrow())
            .field("config", &*self.inner.snapshots.borrow())
            .finish()
    }
}

impl ConfigStore {
    /// Starts watching the ConfigMaps in `namespace` (Knative Serving's is
    /// [`SERVING_NAMESPACE`](super::SERVING_NAMESPACE)). Events are reported as
    /// `knative-config-store`, instance `$POD_NAME`.
    ///
    /// Must be called within a Tokio runtime. Until the first list of ConfigMaps arrives (see
    /// [`ready`](Self::ready)) the snapshot is the defaults.
    pub fn start(client: Client, namespace: impl Into<String>) -> Self {
        let reporter = Reporter {
            controller: DEFAULT_REPORTER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self::start_with_reporter(client, namespace, reporter)
    }

    /// As [`start`](Self::start), reporting Events as `reporter`.
    pub fn start_with_reporter(
        client: Client,
        namespace: impl Into<String>,
        reporter: Reporter,
    ) -> Self {
        let namespace = namespace.into();
        let snapshots = Arc::new(watch::Sender::new(Arc::new(Config::default())));
        let (ready_tx, ready) = watch::channel(false);
        let task = tokio::spawn(run(
            client,
            namespace,
            reporter,
            Arc::clone(&snapshots),
            ready_tx,
        ));
        Self {
            inner: Arc::new(Inner {
                snapshots,
                ready,
                task: Some(task),
            }),
        }
    }

    /// A store that always holds `config`, already ready, for tests.
    pub fn from_static(config: Config) -> Self {
        let snapshots = Arc::new(watch::Sender::new(Arc::new(config)));
        let (_, ready) = watch::channel(true);
        Self {
            inner: Arc::new(Inner {
                snapshots,
                ready,
                task: None,
            }),
        }
    }

    /// The current configuration. Take one per reconcile and use it throughout.
    pub fn snapshot(&self) -> Arc<Config> {
        Arc::clone(&self.inner.snapshots.borrow())
    }

    /// Waits until the ConfigMaps have been listed once, so the snapshot reflects the cluster.
    /// While the API server cannot be reached this waits (the watch retries with a backoff);
    /// bound it with a timeout where that matters.
    pub async fn ready(&self) {
        let mut ready = self.inner.ready.clone();
        // An error means the sender is gone: a static store (always ready) or a stopped one.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// Whether the ConfigMaps have been listed once.
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// A receiver that is notified of every change of configuration after this call; use it to
    /// re-reconcile everything when the configuration changes.
    pub fn changes(&self) -> watch::Receiver<Arc<Config>> {
        self.inner.snapshots.subscribe()
    }
}

/// The watch loop, at the edge: events in, snapshots and Warning Events out.
async fn run(
    client: Client,
    namespace: String,
    reporter: Reporter,
    snapshots: Arc<watch::Sender<Arc<Config>>>,
    ready: watch::Sender<bool>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let recorder = Recorder::new(client, reporter);
    let mut state = StoreState::default();
    // The default watcher configuration: streaming lists are refused by older API servers.
    let mut events = pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%namespace, error = %err, "watching configuration ConfigMaps failed; retrying");
                continue;
            }
        };
        let step = state.handle(event);
        for (config_map, err) in step.invalid {
            tracing::warn!(
                %namespace,
                configmap = %config_map.name_any(),
                error = %err,
                "invalid configuration; keeping the last good one"
            );
            let event = Event {
                type_: EventType::Warning,
                reason: INVALID_CONFIG_REASON.to_owned(),
                note: Some(truncate(err.to_string(), MAX_NOTE_BYTES)),
                action: "LoadConfig".to_owned(),
                secondary: None,
            };
            if let Err(err) = recorder.publish(&event, &config_map.object_ref(&())).await {
                tracing::warn!(%namespace, configmap = %config_map.name_any(), error = %err, "failed to publish event");
            }
        }
        if state.synced {
            let changed = snapshots.send_if_modified(|current| {
                if **current == state.config {
                    return false;
                }
                *current = Arc::new(state.config.clone());
                true
            });
            if changed {
                tracing::info!(%namespace, "configuration changed");
            }
            if step.synced {
                ready.send_replace(true);
                tracing::debug!(%namespace, "configuration synced");
            }
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The store's bookkeeping, without I/O: watcher events in, configuration and complaints out.
#[derive(Debug, Default)]
struct StoreState {
    /// The last good configuration of every ConfigMap.
    config: Config,
    /// The resource version last handled per known ConfigMap present in the cluster, so a
    /// relist does not parse (and complain about) an unchanged ConfigMap again.
    seen: BTreeMap<String, String>,
    /// The ConfigMaps listed so far by a relist in progress.
    listing: Option<BTreeSet<String>>,
    /// Whether a first list completed.
    synced: bool,
}

/// What handling one watcher event produced.
#[derive(Debug, Default)]
struct Step {
    /// ConfigMaps rejected, with why.
    invalid: Vec<(ConfigMap, ConfigError)>,
    /// Whether this event completed a list.
    synced: bool,
}

impl StoreState {
    fn handle(&mut self, event: watcher::Event<ConfigMap>) -> Step {
        let mut step = Step::default();
        match event {
            watcher::Event::Init => self.listing = Some(BTreeSet::new()),
            watcher::Event::InitApply(config_map) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(config_map.name_any());
                }
                self.apply(config_map, &mut step);
            }
            watcher::Event::InitDone => {
                // ConfigMaps deleted while the watch was down are simply absent from the list.
                let listed = self.listing.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .seen
                    .keys()
                    .filter(|name| !listed.contains(*name))
                    .cloned()
                    .collect();
                for name in gone {
                    self.remove(&name);
                }
                self.synced = true;
                step.synced = true;
            }
            watcher::Event::Apply(config_map) => self.apply(config_map, &mut step),
            watcher::Event::Delete(config_map) => self.remove(&config_map.name_any()),
        }
        step
    }

    fn apply(&mut self, config_map: ConfigMap, step: &mut Step) {
        let name = config_map.name_any();
        if !Config::CONFIG_MAP_NAMES.contains(&name.as_str()) {
            return;
        }
        let version = config_map.resource_version().unwrap_or_default();
        if self.seen.get(&name).is_some_and(|seen| *seen == version) {
            return;
        }
        self.seen.insert(name.clone(), version);
        let empty = BTreeMap::new();
        let data = config_map.data.as_ref().unwrap_or(&empty);
        if let Some(Err(err)) = self.config.apply(&name, Some(data)) {
            step.invalid.push((config_map, err));
        }
    }

    fn remove(&mut self, name: &str) {
        if self.seen.remove(name).is_some() {
            self.config.apply(name, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AutoscalerConfig, GcConfig};
    use std::time::Duration;

    fn config_map(name: &str, version: &str, pairs: &[(&str, &str)]) -> ConfigMap {
        let data: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "knative-serving", "resourceVersion": version},
            "data": data,
        }))
        .unwrap()
    }

    fn synced(state: &mut StoreState, config_maps: Vec<ConfigMap>) -> Vec<Step> {
        let mut steps = vec![state.handle(watcher::Event::Init)];
        steps.extend(
            config_maps
                .into_iter()
                .map(|cm| state.handle(watcher::Event::InitApply(cm))),
        );
        steps.push(state.handle(watcher::Event::InitDone));
        steps
    }

    #[test]
    fn empty_namespace_syncs_to_defaults() {
        let mut state = StoreState::default();
        let steps = synced(&mut state, vec![]);
        assert!(steps.last().unwrap().synced);
        assert!(state.synced);
        assert_eq!(state.config, Config::default());
    }

    #[test]
    fn listed_config_maps_are_parsed_and_others_ignored() {
        let mut state = StoreState::default();
        synced(
            &mut state,
            vec![
                config_map("config-autoscaler", "1", &[("stable-window", "2m")]),
                config_map("config-logging", "2", &[("zap-logger-config", "{}")]),
            ],
        );
        assert_eq!(
            state.config.autoscaler.stable_window,
            Duration::from_secs(120)
        );
        assert!(!state.seen.contains_key("config-logging"));
    }

    #[test]
    fn invalid_update_keeps_the_last_good_value_and_complains() {
        let mut state = StoreState::default();
        synced(
            &mut state,
            vec![config_map(
                "config-autoscaler",
                "1",
                &[("stable-window", "2m")],
            )],
        );
        let step = state.handle(watcher::Event::Apply(config_map(
            "config-autoscaler",
            "2",
            &[("stable-window", "1s")],
        )));
        assert_eq!(
            state.config.autoscaler.stable_window,
            Duration::from_secs(120)
        );
        assert_eq!(step.invalid.len(), 1);
        assert_eq!(step.invalid[0].0.name_any(), "config-autoscaler");
        assert_eq!(step.invalid[0].1.key(), "stable-window");
    }

    #[test]
    fn invalid_at_start_keeps_the_defaults_and_complains() {
        let mut state = StoreState::default();
        let steps = synced(
            &mut state,
            vec![config_map(
                "config-gc",
                "1",
                &[("min-non-active-revisions", "-3")],
            )],
        );
        assert_eq!(state.config.gc, GcConfig::default());
        assert_eq!(steps.iter().map(|s| s.invalid.len()).sum::<usize>(), 1);
    }

    #[test]
    fn unchanged_resource_version_is_not_handled_twice() {
        let mut state = StoreState::default();
        let bad = config_map("config-gc", "7", &[("min-non-active-revisions", "-3")]);
        synced(&mut state, vec![bad.clone()]);
        let steps = synced(&mut state, vec![bad]);
        assert!(steps.iter().all(|s| s.invalid.is_empty()));
    }

    #[test]
    fn delete_reverts_to_defaults() {
        let mut state = StoreState::default();
        let cm = config_map("config-autoscaler", "1", &[("stable-window", "2m")]);
        synced(&mut state, vec![cm.clone()]);
        state.handle(watcher::Event::Delete(cm));
        assert_eq!(state.config.autoscaler, AutoscalerConfig::default());
    }

    #[test]
    fn config_map_missing_from_a_relist_reverts_to_defaults() {
        let mut state = StoreState::default();
        synced(
            &mut state,
            vec![config_map(
                "config-autoscaler",
                "1",
                &[("stable-window", "2m")],
            )],
        );
        synced(&mut state, vec![]);
        assert_eq!(state.config, Config::default());
    }

    #[tokio::test]
    async fn static_store_is_ready_and_holds_its_config() {
        let mut config = Config::default();
        config.gc.min_non_active_revisions = 1;
        let store = ConfigStore::from_static(config.clone());
        store.ready().await;
        assert!(store.is_ready());
        assert_eq!(*store.snapshot(), config);
        assert!(!store.changes().has_changed().unwrap());
    }

    #[test]
    fn notes_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("hello".to_owned(), 10), "hello");
    }
}
