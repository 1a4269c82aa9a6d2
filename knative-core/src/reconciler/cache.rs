//! Shared informers: one watch per kind for the whole process, a cache of what it saw, and
//! [`Lister`]s that read through that cache — what Knative's reconcilers get from their shared
//! informer factory.
//!
//! A [`Driver`](super::Driver) given [`Caches`] takes the objects it reconciles from the
//! informer of its kind, and the controllers' watches of other kinds subscribe to theirs with
//! [`Caches::changes`]: a Configuration pass then reads its Revisions from the Revision
//! informer's cache instead of asking the API server on every pass, and one watch of Revisions
//! serves every controller that needs them.
//!
//! A controller is told about a change only after the informer's cache holds it, so a pass
//! triggered by a child's change reads that change (or a newer one) from the cache. What a
//! [`Lister`] finds may still be slightly old when the pass was triggered by something else, as
//! with Knative's listers: a write based on it is guarded by its `resourceVersion` and conflicts
//! rather than overwrite. What it does not find is looked up on the API server, so a child
//! created by the previous pass is never created twice because the cache had not seen it yet.

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::api::ListParams;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

use super::compact::Compact;

/// What a cacheable kind must be: a namespaced Kubernetes resource.
pub trait Cacheable:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Cacheable for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// How many changes a slow subscriber may fall behind before it is handed the whole cache
/// again (as a resync) instead of the changes it missed.
const CHANGES_BUFFER: usize = 1024;

/// The informer of one kind: its cache, the channel its changes are announced on once the cache
/// holds them, and the task that watches.
struct Informer<K: Cacheable> {
    store: Store<Compact<K>>,
    /// Whether the store has been filled. Tracked here rather than with
    /// `Store::wait_until_ready`, whose future wakes only the last of several tasks waiting on
    /// it (and the controller reading the store waits on it).
    ready: watch::Receiver<bool>,
    changes: broadcast::Sender<Change<K>>,
    task: tokio::task::JoinHandle<()>,
}

/// A change an informer announces. An added or modified object is announced by name and read
/// from the store when a subscriber takes it: the channel keeps its last changes until they are
/// overwritten, and holding objects there would keep every version the store has since replaced
/// alive (a thousand per busy kind).
#[derive(Clone, Debug)]
enum Change<K: Cacheable> {
    /// Added or modified: the store holds it (unless it has been deleted since).
    Applied(ObjectRef<Compact<K>>),
    /// Deleted, or dropped by a relist: the store no longer holds it.
    Deleted(Arc<Compact<K>>),
}

impl<K: Cacheable> Change<K> {
    fn applied(object: &Compact<K>) -> Self {
        let meta = object.meta();
        let key = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
        Self::Applied(match meta.namespace.as_deref() {
            Some(namespace) => key.within(namespace),
            None => key,
        })
    }
}

impl<K: Cacheable> Drop for Informer<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Inner {
    client: Client,
    namespace: Option<String>,
    informers: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

/// The shared informers of one process, started per kind on first use; cheap to clone (clones
/// share the informers). The watches stop when the last clone is dropped.
#[derive(Clone)]
pub struct Caches {
    inner: Arc<Inner>,
}

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = self
            .inner
            .informers
            .lock()
            .map(|i| i.len())
            .unwrap_or_default();
        f.debug_struct("Caches")
            .field("namespace", &self.inner.namespace)
            .field("kinds", &kinds)
            .finish()
    }
}

impl Caches {
    /// Informers of the objects in `namespace` (`None`: all namespaces), watching with `client`.
    /// Give the drivers that share them the same namespace.
    pub fn new(client: Client, namespace: Option<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                namespace,
                informers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The client the informers watch with.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The namespace the informers watch (`None`: all namespaces).
    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// The API of every `K` in the informers' namespace (all namespaces when `None`), for a
    /// watch of its own besides the informers (e.g. one with a label selector).
    pub fn api<K: Resource<DynamicType = (), Scope = NamespaceResourceScope>>(&self) -> Api<K> {
        match &self.inner.namespace {
            Some(ns) => Api::namespaced(self.inner.client.clone(), ns),
            None => Api::all(self.inner.client.clone()),
        }
    }

    /// The informer of `K`, started (in a task of the current Tokio runtime) on first use. Its
    /// watch is never filtered: a [`Lister`] takes what the cache holds for all there is.
    fn informer<K: Cacheable>(&self) -> Arc<Informer<K>> {
        let mut informers = self
            .inner
            .informers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(found) = informers
            .get(&TypeId::of::<K>())
            .and_then(|i| Arc::clone(i).downcast::<Informer<K>>().ok())
        {
            return found;
        }
        // Objects are decoded as `Compact` (metadata, and the rest as JSON) straight from the
        // watch: the full `K` is never built for the cache.
        let api = self.api::<Compact<K>>();
        let (store, writer) = reflector::store();
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let (filled, ready) = watch::channel(false);
        // The reflector applies each event to the cache before it passes the event on.
        let events = reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        let task = tokio::spawn(announce(events, store.clone(), filled, changes.clone()));
        let informer = Arc::new(Informer {
            store,
            ready,
            changes,
            task,
        });
        informers.insert(
            TypeId::of::<K>(),
            Arc::clone(&informer) as Arc<dyn Any + Send + Sync>,
        );
        informer
    }

    /// The cache of every `K` (starting its informer if need be), in [`Compact`] form: what a
    /// `kube::runtime::Controller` of `Compact<K>` reads.
    pub fn store<K: Cacheable>(&self) -> Store<Compact<K>> {
        self.informer::<K>().store.clone()
    }

    /// Every `K` the informer holds once it has filled its cache, then every change (added,
    /// modified or deleted objects, each once the cache holds it): the stream to trigger a
    /// controller with (`Controller::for_shared_stream`, `owns_shared_stream`,
    /// `watches_shared_stream`). The objects are the cache's own, shared rather than copied, in
    /// [`Compact`] form (metadata decoded; [`Compact::decode`] for the rest). A subscriber that
    /// falls more than a thousand changes behind gets the whole cache again.
    pub fn changes<K: Cacheable>(&self) -> impl Stream<Item = Arc<Compact<K>>> + Send + 'static {
        let informer = self.informer::<K>();
        let receiver = informer.changes.subscribe();
        let store = (informer.store.clone(), informer.ready.clone());
        drop(informer);
        // Subscribed before the cache is read: what changes after that is heard of, at worst
        // twice.
        futures::stream::unfold(
            (receiver, store, None),
            |(mut receiver, store, pending)| async move {
                let mut pending = match pending {
                    Some(pending) => pending,
                    None => current(&store).await,
                };
                loop {
                    if let Some(object) = pending.pop_front() {
                        return Some((object, (receiver, store, Some(pending))));
                    }
                    let object = match receiver.recv().await {
                        Ok(Change::Applied(key)) => match store.0.get(&key) {
                            Some(object) => object,
                            // Deleted since: its deletion is announced next.
                            None => continue,
                        },
                        Ok(Change::Deleted(object)) => object,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            pending = current(&store).await;
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    return Some((object, (receiver, store, Some(pending))));
                }
            },
        )
    }

    /// A [`Lister`] of the `K`s in `namespace`, reading through the cache of `K` when an
    /// informer of `K` has been started (by a driver or a subscriber), has filled its cache and
    /// covers `namespace`; it never starts one.
    pub fn lister<K: Cacheable>(&self, namespace: &str) -> Lister<K> {
        Lister {
            api: Api::namespaced(self.inner.client.clone(), namespace),
            store: self.ready_store(namespace),
            namespace: namespace.to_owned(),
        }
    }

    fn ready_store<K: Cacheable>(&self, namespace: &str) -> Option<Store<Compact<K>>> {
        if self.namespace().is_some_and(|ns| ns != namespace) {
            return None;
        }
        let informers = self
            .inner
            .informers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let informer = informers
            .get(&TypeId::of::<K>())?
            .downcast_ref::<Informer<K>>()?;
        (*informer.ready.borrow()).then(|| informer.store.clone())
    }
}

/// Announces each change of the watch once `store` holds it: an added, modified or deleted
/// object as it comes; a (re)list, which the store takes in all at once at its end, as every
/// object it holds then and every object it held before that is gone.
async fn announce<K: Cacheable>(
    events: impl Stream<Item = Result<watcher::Event<Compact<K>>, watcher::Error>>,
    store: Store<Compact<K>>,
    filled: watch::Sender<bool>,
    changes: broadcast::Sender<Change<K>>,
) {
    let mut events = std::pin::pin!(events);
    let mut before: Vec<Arc<Compact<K>>> = Vec::new();
    // Nobody listening is fine: subscribers start from the cache.
    let send = |change: Change<K>| drop(changes.send(change));
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(object)) => send(Change::applied(&object)),
            Ok(watcher::Event::Delete(object)) => send(Change::Deleted(Arc::new(object))),
            Ok(watcher::Event::Init) => before = store.state(),
            Ok(watcher::Event::InitApply(_)) => {}
            Ok(watcher::Event::InitDone) => {
                filled.send_replace(true);
                for object in store.state() {
                    send(Change::applied(&*object));
                }
                for object in std::mem::take(&mut before) {
                    if store.get(&ObjectRef::from_obj(&*object)).is_none() {
                        send(Change::Deleted(object));
                    }
                }
            }
            Err(err) => {
                tracing::debug!(kind = %K::kind(&()), %err, "informer watch failed; retrying");
            }
        }
    }
}

/// Everything the store holds, once it has been filled.
async fn current<K: Cacheable>(
    (store, ready): &(Store<Compact<K>>, watch::Receiver<bool>),
) -> VecDeque<Arc<Compact<K>>> {
    let mut ready = ready.clone();
    match ready.wait_for(|filled| *filled).await {
        Ok(_) => store.state().into(),
        // The informer stopped before it filled its cache.
        Err(_) => VecDeque::new(),
    }
}

/// Reads the `K`s of one namespace: from a watch cache when the process has one, else (and for
/// what the cache does not hold) from the API server.
pub struct Lister<K: Cacheable> {
    api: Api<K>,
    store: Option<Store<Compact<K>>>,
    namespace: String,
}

impl<K: Cacheable> fmt::Debug for Lister<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lister")
            .field("namespace", &self.namespace)
            .field("cached", &self.store.is_some())
            .finish()
    }
}

impl<K: Cacheable> Lister<K> {
    /// A lister without a cache: every read goes to the API server.
    pub fn uncached(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            store: None,
            namespace: namespace.to_owned(),
        }
    }

    /// The API of the `K`s of this namespace, for writes.
    pub fn api(&self) -> &Api<K> {
        &self.api
    }

    /// Whether reads are served from a cache.
    pub fn is_cached(&self) -> bool {
        self.store.is_some()
    }

    /// The object named `name`: the cache's copy (decoded), or the API server's when the cache
    /// has none.
    ///
    /// # Errors
    /// When the API server fails to answer, or the cached JSON is not a `K`
    /// ([`kube::Error::SerdeError`]).
    pub async fn get(&self, name: &str) -> Result<Option<K>, kube::Error> {
        if let Some(store) = &self.store
            && let Some(found) = store.get(&ObjectRef::new(name).within(&self.namespace))
        {
            return found.decode().map(Some).map_err(kube::Error::SerdeError);
        }
        self.api.get_opt(name).await
    }

    /// The objects whose labels include every `(key, value)` of `labels`: the cache's when it
    /// has any (decoded), else the API server's (served from its watch cache).
    ///
    /// # Errors
    /// When the API server fails to answer, or cached JSON is not a `K`
    /// ([`kube::Error::SerdeError`]).
    pub async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<K>, kube::Error> {
        if let Some(store) = &self.store {
            let found: Vec<K> = store
                .state_filter(|o| {
                    o.meta().namespace.as_deref() == Some(self.namespace.as_str())
                        && has_labels(o.meta().labels.as_ref(), labels)
                })
                .into_iter()
                .map(|o| o.decode())
                .collect::<Result<_, _>>()
                .map_err(kube::Error::SerdeError)?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(self
            .api
            .list(&ListParams::default().match_any().labels(&selector))
            .await?
            .items)
    }
}

fn has_labels(
    have: Option<&std::collections::BTreeMap<String, String>>,
    want: &[(&str, &str)],
) -> bool {
    want.iter()
        .all(|(k, v)| have.and_then(|h| h.get(*k)).map(String::as_str) == Some(*v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    impl Caches {
        /// Installs `store` as the informer of `K`, fed by the test rather than a watch.
        fn install<K: Cacheable>(
            &self,
            store: Store<Compact<K>>,
            filled: bool,
        ) -> broadcast::Sender<Change<K>> {
            let (changes, _) = broadcast::channel(4);
            let informer = Arc::new(Informer {
                store,
                ready: watch::channel(filled).1,
                changes: changes.clone(),
                task: tokio::spawn(async {}),
            });
            self.inner
                .informers
                .lock()
                .unwrap()
                .insert(TypeId::of::<K>(), informer as Arc<dyn Any + Send + Sync>);
            changes
        }
    }

    fn config_map(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Compact<ConfigMap> {
        Compact::new(&ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        })
        .unwrap()
    }

    /// Caches whose client fails every request: a lister that reaches it did not use its cache.
    fn unreachable(namespace: Option<&str>) -> Caches {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Caches::new(
            Client::try_from(config).unwrap(),
            namespace.map(str::to_owned),
        )
    }

    fn filled(
        objects: Vec<Compact<ConfigMap>>,
    ) -> (Store<Compact<ConfigMap>>, Writer<Compact<ConfigMap>>) {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for o in objects {
            writer.apply_watcher_event(&Event::InitApply(o));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (reader, writer)
    }

    fn names<'a>(objects: impl IntoIterator<Item = &'a ObjectMeta>) -> Vec<String> {
        let mut names: Vec<_> = objects
            .into_iter()
            .filter_map(|meta| meta.name.clone())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_lister_reads_a_cached_object_without_asking_the_api_server() {
        let caches = unreachable(None);
        let (store, _writer) = filled(vec![config_map("ns", "a", &[])]);
        caches.install(store, true);
        let lister = caches.lister::<ConfigMap>("ns");
        assert!(lister.is_cached());
        let found = lister.get("a").await.unwrap().unwrap();
        assert_eq!(found.metadata.name.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn a_lister_asks_the_api_server_for_what_the_cache_lacks() {
        let caches = unreachable(None);
        let (store, _writer) = filled(vec![config_map("ns", "a", &[])]);
        caches.install(store, true);
        let lister = caches.lister::<ConfigMap>("ns");
        assert!(lister.get("b").await.is_err(), "expected an API request");
        assert!(lister.get("a").await.is_ok());
    }

    #[tokio::test]
    async fn a_cached_list_keeps_the_namespace_and_every_label() {
        let caches = unreachable(None);
        let (store, _writer) = filled(vec![
            config_map("ns", "match", &[("app", "x"), ("tier", "web")]),
            config_map("ns", "one-label", &[("app", "x")]),
            config_map("other", "elsewhere", &[("app", "x"), ("tier", "web")]),
        ]);
        caches.install(store, true);
        let lister = caches.lister::<ConfigMap>("ns");
        let found = lister.list(&[("app", "x"), ("tier", "web")]).await.unwrap();
        assert_eq!(names(found.iter().map(|o| &o.metadata)), ["match"]);
    }

    #[tokio::test]
    async fn an_empty_cached_list_is_checked_with_the_api_server() {
        let caches = unreachable(None);
        let (store, _writer) = filled(vec![config_map("ns", "a", &[("app", "x")])]);
        caches.install(store, true);
        let lister = caches.lister::<ConfigMap>("ns");
        assert!(lister.list(&[("app", "y")]).await.is_err());
    }

    #[tokio::test]
    async fn a_cache_not_yet_filled_is_not_used() {
        let caches = unreachable(None);
        let (store, _writer) = reflector::store::<Compact<ConfigMap>>();
        caches.install(store, false);
        assert!(!caches.lister::<ConfigMap>("ns").is_cached());
    }

    #[tokio::test]
    async fn a_lister_never_starts_an_informer() {
        let caches = unreachable(None);
        assert!(!caches.lister::<ConfigMap>("ns").is_cached());
        assert!(caches.inner.informers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn caches_of_one_namespace_serve_no_other() {
        let caches = unreachable(Some("mine"));
        let (store, _writer) = filled(vec![]);
        caches.install(store, true);
        assert!(caches.lister::<ConfigMap>("mine").is_cached());
        assert!(!caches.lister::<ConfigMap>("other").is_cached());
    }

    #[tokio::test]
    async fn a_subscriber_gets_what_the_cache_holds_then_each_change() {
        let caches = unreachable(None);
        let (store, mut writer) = filled(vec![config_map("ns", "a", &[])]);
        let announce = caches.install(store, true);
        let mut changes = std::pin::pin!(caches.changes::<ConfigMap>());
        let first = changes.next().await.unwrap();
        assert_eq!(first.meta().name.as_deref(), Some("a"));
        let b = config_map("ns", "b", &[]);
        writer.apply_watcher_event(&Event::Apply(b.clone()));
        announce.send(Change::applied(&b)).unwrap();
        let second = changes.next().await.unwrap();
        assert_eq!(second.meta().name.as_deref(), Some("b"));
        announce
            .send(Change::Deleted(Arc::new(config_map("ns", "gone", &[]))))
            .unwrap();
        let third = changes.next().await.unwrap();
        assert_eq!(third.meta().name.as_deref(), Some("gone"));
    }

    #[tokio::test]
    async fn a_subscriber_reads_a_changed_object_as_the_cache_holds_it_when_it_takes_the_change() {
        let caches = unreachable(None);
        let (store, mut writer) = filled(vec![]);
        let announce = caches.install(store, true);
        let mut changes = std::pin::pin!(caches.changes::<ConfigMap>());
        // Two changes of "a" and the deletion of "b" before the subscriber takes any.
        let first = config_map("ns", "a", &[("version", "1")]);
        writer.apply_watcher_event(&Event::Apply(first.clone()));
        announce.send(Change::applied(&first)).unwrap();
        let second = config_map("ns", "a", &[("version", "2")]);
        writer.apply_watcher_event(&Event::Apply(second.clone()));
        announce.send(Change::applied(&second)).unwrap();
        let b = config_map("ns", "b", &[]);
        announce.send(Change::applied(&b)).unwrap();
        announce.send(Change::Deleted(Arc::new(b))).unwrap();
        let mut heard = Vec::new();
        // The cache as it is when the subscriber first reads (holding "a"), then the changes.
        for _ in 0..4 {
            let object = changes.next().await.unwrap();
            let version = object
                .meta()
                .labels
                .as_ref()
                .and_then(|l| l.get("version").cloned());
            heard.push((object.meta().name.clone().unwrap(), version));
        }
        assert_eq!(
            heard,
            [
                ("a".to_owned(), Some("2".to_owned())),
                ("a".to_owned(), Some("2".to_owned())),
                ("a".to_owned(), Some("2".to_owned())),
                // "b" was never in the cache: only its deletion is heard of.
                ("b".to_owned(), None),
            ]
        );
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_the_whole_cache_again() {
        let caches = unreachable(None);
        let (store, _writer) = filled(vec![config_map("ns", "a", &[]), config_map("ns", "b", &[])]);
        let announce = caches.install(store, true);
        let mut changes = std::pin::pin!(caches.changes::<ConfigMap>());
        let initial = [changes.next().await.unwrap(), changes.next().await.unwrap()];
        assert_eq!(names(initial.iter().map(|o| o.meta())), ["a", "b"]);
        // The test channel holds 4 changes: 6 overflow it.
        for i in 0..6 {
            announce
                .send(Change::applied(&config_map("ns", &format!("c{i}"), &[])))
                .unwrap();
        }
        let resync = [changes.next().await.unwrap(), changes.next().await.unwrap()];
        assert_eq!(names(resync.iter().map(|o| o.meta())), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_relist_is_announced_at_its_end_with_the_objects_it_dropped() {
        let (store, writer) = reflector::store::<Compact<ConfigMap>>();
        let (changes, mut heard) = broadcast::channel(16);
        let (filled, ready) = watch::channel(false);
        let events = futures::stream::iter(
            [
                Event::Init,
                Event::InitApply(config_map("ns", "a", &[])),
                Event::InitApply(config_map("ns", "b", &[])),
                Event::InitDone,
                Event::Apply(config_map("ns", "c", &[])),
                // A relist after which "a" is gone.
                Event::Init,
                Event::InitApply(config_map("ns", "b", &[])),
                Event::InitApply(config_map("ns", "c", &[])),
                Event::InitDone,
            ]
            .map(Ok),
        );
        announce::<ConfigMap>(reflector(writer, events), store, filled, changes).await;
        assert!(*ready.borrow(), "the store is filled");
        let mut batches = Vec::new();
        while let Ok(change) = heard.try_recv() {
            batches.push(match change {
                Change::Applied(key) => key.name,
                Change::Deleted(object) => object.meta().name.clone().unwrap(),
            });
        }
        // The first list's objects in any order, then "c", then the relist's and the dropped one.
        let (first, rest) = batches.split_at(2);
        let mut first = first.to_vec();
        first.sort();
        assert_eq!(first, ["a", "b"]);
        assert_eq!(rest[0], "c");
        let mut relist = rest[1..].to_vec();
        relist.sort();
        assert_eq!(relist, ["a", "b", "c"]);
    }
}
