//! The object store: every object in memory, a redb file as the durable copy, one global
//! resourceVersion counter, a bounded history of changes for watches, owner-reference
//! garbage collection and namespace termination.
//!
//! Every write is committed to redb before it becomes visible, so a restart with the same
//! data directory loses nothing that was acknowledged, and the counter goes on from where it
//! was. The history starts empty after a restart: a watch from an older resourceVersion gets
//! 410 Gone and relists, as a client must after an etcd compaction.

use crate::error::ApiError;
use crate::object::{self, Endpoint, Minted};
use crate::patch::{self, PatchKind};
use crate::resources::{self, Registry, ResourceType, TypeKey};
use redb::{Database, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RESOURCE_VERSION: &str = "resourceVersion";

/// Live watchers lagging more than this many changes behind are told 410 and relist.
const BROADCAST_CAPACITY: usize = 8192;

/// The namespaces that always exist.
const SYSTEM_NAMESPACES: [&str; 2] = ["default", "kube-system"];

/// What a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub(crate) struct Change {
    pub type_key: TypeKey,
    pub kind: ChangeKind,
    /// The object after the change (for a deletion: its last state, at the deletion's
    /// resourceVersion).
    pub object: Value,
    /// The object before the change, so selector watches can see objects leave the selection.
    pub previous: Option<Value>,
    pub rv: u64,
}

/// Where a watch starts.
pub(crate) struct WatchStart {
    /// Changes to replay first: synthetic ADDED events for a watch without resourceVersion,
    /// the history after the requested one otherwise.
    pub replay: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    /// The resourceVersion the replay brings the watcher to.
    pub at: u64,
}

/// How a deletion treats dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// Dependents are deleted (Foreground is served the same way).
    Background,
    /// Dependents lose their owner reference and stay.
    Orphan,
}

/// DeleteOptions that the store honours.
#[derive(Debug, Clone)]
pub(crate) struct DeleteOptions {
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// The outcome of a delete.
pub(crate) enum Deleted {
    /// The object is gone; its last state.
    Gone(Value),
    /// The object has finalizers: it is marked with a deletionTimestamp.
    Pending(Value),
}

/// The store; cheap to share behind an `Arc`.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
}

type ObjKey = (String, String);

struct Inner {
    rv: u64,
    /// Shared with requests in flight; CRD changes copy it.
    registry: Arc<Registry>,
    objects: BTreeMap<TypeKey, BTreeMap<ObjKey, Value>>,
    uids: HashMap<String, (TypeKey, ObjKey)>,
    history: VecDeque<Arc<Change>>,
    history_capacity: usize,
    /// Every change after this resourceVersion is in `history`.
    history_start: u64,
    db: Option<Database>,
    /// Removed objects whose dependents and namespaces still need attention.
    removed: Vec<Value>,
    /// Objects written with owner references none of which exists: Kubernetes' garbage
    /// collector deletes them, and so does `settle`.
    dangling: Vec<(TypeKey, ObjKey)>,
    next_cluster_ip: u32,
}

impl Store {
    /// A store in `dir` (created if missing), or in memory when `dir` is `None`.
    pub(crate) fn open(dir: Option<&Path>, history_capacity: usize) -> Result<Self, String> {
        let mut inner = Inner {
            rv: 0,
            registry: Arc::new(Registry::builtin()),
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_capacity,
            history_start: 0,
            db: None,
            removed: Vec::new(),
            dangling: Vec::new(),
            next_cluster_ip: 1,
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
            let db = Database::create(dir.join("store.redb"))
                .map_err(|e| format!("cannot open the store in {dir:?}: {e}"))?;
            inner.load(&db)?;
            inner.db = Some(db);
        }
        inner.history_start = inner.rv;
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let store = Self {
            inner: Mutex::new(inner),
            tx,
        };
        store.ensure_system_namespaces()?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write: writes are
        // applied in memory only after redb committed them, in one step.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_system_namespaces(&self) -> Result<(), String> {
        let now = object::timestamp(jiff::Timestamp::now());
        for name in SYSTEM_NAMESPACES {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self.create(&resources::type_key("", "namespaces"), "v1", None, ns, &now) {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// The registry of served kinds as it is now.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.lock().registry.clone()
    }

    /// The latest resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub(crate) fn create(
        &self,
        type_key: &str,
        version: &str,
        namespace: Option<&str>,
        body: Value,
        now: &str,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let result = inner.create(&self.tx, type_key, version, namespace, body, now);
        inner.settle(&self.tx, now);
        result
    }

    pub(crate) fn get(
        &self,
        type_key: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let inner = self.lock();
        let rt = inner.rt(type_key)?;
        inner
            .objects
            .get(type_key)
            .and_then(|objects| objects.get(&(namespace.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// The objects of a type (in one namespace, or all) that pass `filter`, in key order,
    /// with the resourceVersion of the snapshot.
    pub(crate) fn list(
        &self,
        type_key: &str,
        namespace: Option<&str>,
        filter: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(type_key)
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object)
            .filter(|object| filter(object))
            .cloned()
            .collect();
        (items, inner.rv)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &self,
        type_key: &str,
        version: &str,
        namespace: &str,
        name: &str,
        body: Value,
        endpoint: Endpoint,
        now: &str,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let current = inner.current(type_key, namespace, name)?;
        let result = inner.update(&self.tx, type_key, version, &current, body, endpoint, now);
        inner.settle(&self.tx, now);
        result
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &self,
        type_key: &str,
        version: &str,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        endpoint: Endpoint,
        now: &str,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let result = match inner.current(type_key, namespace, name) {
            Ok(current) => {
                let patched = patch::apply(kind, &current, patch)?;
                inner.update(
                    &self.tx, type_key, version, &current, patched, endpoint, now,
                )
            }
            Err(_) if kind == PatchKind::Apply && endpoint == Endpoint::Main => {
                let mut body = patch.clone();
                let given = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or(name)
                    .to_string();
                if given != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({given}) does not match the name on the URL ({name})"
                    )));
                }
                let Some(metadata) = body
                    .as_object_mut()
                    .map(|b| b.entry("metadata").or_insert_with(|| json!({})))
                    .and_then(Value::as_object_mut)
                else {
                    return Err(ApiError::bad_request(
                        "an apply patch must be an object with object metadata",
                    ));
                };
                metadata.insert("name".into(), json!(name));
                let ns = inner.rt(type_key)?.namespaced.then_some(namespace);
                inner.create(&self.tx, type_key, version, ns, body, now)
            }
            Err(missing) => Err(missing),
        };
        inner.settle(&self.tx, now);
        result
    }

    pub(crate) fn delete(
        &self,
        type_key: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
        now: &str,
    ) -> Result<Deleted, ApiError> {
        let mut inner = self.lock();
        let current = inner.current(type_key, namespace, name)?;
        let rt = inner.rt(type_key)?;
        let precondition = |field: &str, wanted: &Option<String>| {
            wanted
                .as_ref()
                .is_some_and(|w| current["metadata"][field].as_str() != Some(w.as_str()))
        };
        if precondition("uid", &options.uid)
            || precondition("resourceVersion", &options.resource_version)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "Precondition failed: the object's uid or resourceVersion does not match",
            ));
        }
        if options.propagation == Propagation::Orphan {
            inner.orphan_dependents(&self.tx, &current, now);
        }
        let result = inner.delete(&self.tx, type_key, &current, now);
        inner.settle(&self.tx, now);
        result
    }

    /// Starts a watch of one type from `from` (None: the current objects, as ADDED events).
    pub(crate) fn watch(&self, type_key: &str, from: Option<u64>) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let replay = match from {
            None => inner
                .objects
                .get(type_key)
                .into_iter()
                .flat_map(|objects| objects.values())
                .map(|object| {
                    Arc::new(Change {
                        type_key: type_key.to_string(),
                        kind: ChangeKind::Added,
                        object: object.clone(),
                        previous: None,
                        rv: rv_of(object),
                    })
                })
                .collect(),
            Some(rv) if rv < inner.history_start => {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    inner.history_start + 1
                )));
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|c| c.rv > rv && c.type_key == type_key)
                .cloned()
                .collect(),
        };
        Ok(WatchStart {
            replay,
            live,
            at: inner.rv,
        })
    }

    /// The resourceVersion a bookmark may report to `live`: the latest one, once the watcher
    /// has received every change up to it.
    pub(crate) fn bookmark(&self, live: &broadcast::Receiver<Arc<Change>>) -> Option<u64> {
        let inner = self.lock();
        live.is_empty().then_some(inner.rv)
    }

    /// Whether the watch history still covers `rv`.
    pub(crate) fn check_continuation(&self, rv: u64) -> Result<(), ApiError> {
        let inner = self.lock();
        if rv < inner.history_start {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            ));
        }
        Ok(())
    }
}

fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or("")
}

fn obj_key(object: &Value) -> ObjKey {
    (
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        object::name_of(object).to_string(),
    )
}

fn db_key(type_key: &str, key: &ObjKey) -> String {
    format!("{type_key}|{}|{}", key.0, key.1)
}

fn storage_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("the store failed: {e}"))
}

impl Inner {
    fn load(&mut self, db: &Database) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("cannot read the store: {e}");
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(OBJECTS).map_err(|e| err(&e))?;
        txn.open_table(META).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        let txn = db.begin_read().map_err(|e| err(&e))?;
        let meta = txn.open_table(META).map_err(|e| err(&e))?;
        self.rv = meta
            .get(RESOURCE_VERSION)
            .map_err(|e| err(&e))?
            .map(|v| v.value())
            .unwrap_or(0);
        let objects = txn.open_table(OBJECTS).map_err(|e| err(&e))?;
        for entry in objects.iter().map_err(|e| err(&e))? {
            let (key, value) = entry.map_err(|e| err(&e))?;
            let type_key = key.value().split('|').next().unwrap_or("").to_string();
            let object: Value = serde_json::from_slice(value.value())
                .map_err(|e| format!("corrupt object {}: {e}", key.value()))?;
            self.index(&type_key, object);
        }
        let crds: Vec<Value> = self
            .objects
            .get(&crd_key())
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        for crd in crds {
            if let Ok(rt) = resources::from_crd(&crd) {
                Arc::make_mut(&mut self.registry).set_custom(&rt.key(), Some(rt));
            }
        }
        let services = self.objects.get("/services").map(|s| s.len()).unwrap_or(0);
        self.next_cluster_ip = services as u32 + 1;
        Ok(())
    }

    fn index(&mut self, type_key: &str, object: Value) {
        let key = obj_key(&object);
        self.uids.insert(
            uid_of(&object).to_string(),
            (type_key.to_string(), key.clone()),
        );
        self.objects
            .entry(type_key.to_string())
            .or_default()
            .insert(key, object);
    }

    fn rt(&self, type_key: &str) -> Result<ResourceType, ApiError> {
        self.registry
            .get(type_key)
            .cloned()
            .ok_or_else(|| ApiError::no_route(type_key))
    }

    fn current(&self, type_key: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let rt = self.rt(type_key)?;
        self.objects
            .get(type_key)
            .and_then(|o| o.get(&(namespace.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    fn create(
        &mut self,
        tx: &broadcast::Sender<Arc<Change>>,
        type_key: &str,
        version: &str,
        namespace: Option<&str>,
        body: Value,
        now: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.rt(type_key)?;
        if let Some(ns) = namespace.filter(|_| rt.namespaced) {
            match self
                .objects
                .get("/namespaces")
                .and_then(|n| n.get(&(String::new(), ns.to_string())))
            {
                None => return Err(ApiError::not_found("", "namespaces", ns)),
                Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} \
                         because it is being terminated",
                        rt.plural,
                        object::name_of(&body)
                    )));
                }
                Some(_) => {}
            }
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let suffix = name_suffix(&uid);
        let minted = Minted {
            now,
            uid: &uid,
            suffix: &suffix,
        };
        let mut object = object::prepare_create(&rt, version, namespace, body, &minted)?;
        let key = obj_key(&object);
        if self
            .objects
            .get(type_key)
            .is_some_and(|o| o.contains_key(&key))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &key.1));
        }
        self.check_crd(type_key, &object)?;
        if type_key == "/services" {
            self.allocate_cluster_ip(&mut object);
        }
        self.write(tx, type_key, &key, ChangeKind::Added, object, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        tx: &broadcast::Sender<Arc<Change>>,
        type_key: &str,
        version: &str,
        current: &Value,
        body: Value,
        endpoint: Endpoint,
        now: &str,
    ) -> Result<Value, ApiError> {
        let rt = self.rt(type_key)?;
        let Some(mut next) = object::prepare_update(&rt, version, current, body, endpoint, now)?
        else {
            return Ok(current.clone());
        };
        self.check_crd(type_key, &next)?;
        if type_key == "/services" && next["spec"]["clusterIP"].is_null() {
            next["spec"]["clusterIP"] = current["spec"]["clusterIP"].clone();
            next["spec"]["clusterIPs"] = current["spec"]["clusterIPs"].clone();
        }
        let key = obj_key(current);
        if next["metadata"].get("deletionTimestamp").is_some()
            && object::finalizers(&next).is_empty()
        {
            return self.write(
                tx,
                type_key,
                &key,
                ChangeKind::Deleted,
                next,
                Some(current.clone()),
            );
        }
        self.write(
            tx,
            type_key,
            &key,
            ChangeKind::Modified,
            next,
            Some(current.clone()),
        )
    }

    fn delete(
        &mut self,
        tx: &broadcast::Sender<Arc<Change>>,
        type_key: &str,
        current: &Value,
        now: &str,
    ) -> Result<Deleted, ApiError> {
        let key = obj_key(current);
        if type_key == "/namespaces" {
            return self.terminate_namespace(tx, current, now);
        }
        if !object::finalizers(current).is_empty() {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return Ok(Deleted::Pending(current.clone()));
            }
            let marked = object::mark_deleting(current, now);
            let marked = self.write(
                tx,
                type_key,
                &key,
                ChangeKind::Modified,
                marked,
                Some(current.clone()),
            )?;
            return Ok(Deleted::Pending(marked));
        }
        let gone = self.write(
            tx,
            type_key,
            &key,
            ChangeKind::Deleted,
            current.clone(),
            Some(current.clone()),
        )?;
        Ok(Deleted::Gone(gone))
    }

    /// Marks the namespace terminating and deletes its content; it goes when it is empty.
    fn terminate_namespace(
        &mut self,
        tx: &broadcast::Sender<Arc<Change>>,
        namespace: &Value,
        now: &str,
    ) -> Result<Deleted, ApiError> {
        let name = object::name_of(namespace).to_string();
        if SYSTEM_NAMESPACES.contains(&name.as_str()) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let key = (String::new(), name.clone());
        let marked = if namespace["metadata"].get("deletionTimestamp").is_some() {
            namespace.clone()
        } else {
            let mut marked = object::mark_deleting(namespace, now);
            marked["status"]["phase"] = json!("Terminating");
            self.write(
                tx,
                "/namespaces",
                &key,
                ChangeKind::Modified,
                marked,
                Some(namespace.clone()),
            )?
        };
        let content: Vec<(TypeKey, Value)> = self
            .objects
            .iter()
            .filter(|(t, _)| t.as_str() != "/namespaces")
            .flat_map(|(t, objects)| {
                objects
                    .iter()
                    .filter(|((ns, _), _)| *ns == name)
                    .map(move |(_, o)| (t.clone(), o.clone()))
            })
            .collect();
        for (type_key, object) in content {
            if let Err(e) = self.delete(tx, &type_key, &object, now) {
                tracing::warn!(namespace = %name, error = %e, "cannot delete namespace content");
            }
        }
        self.finish_namespace(tx, &name);
        Ok(
            match self.objects.get("/namespaces").and_then(|n| n.get(&key)) {
                Some(still) => Deleted::Pending(still.clone()),
                None => Deleted::Gone(marked),
            },
        )
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finish_namespace(&mut self, tx: &broadcast::Sender<Arc<Change>>, name: &str) {
        let key = (String::new(), name.to_string());
        let Some(namespace) = self
            .objects
            .get("/namespaces")
            .and_then(|n| n.get(&key))
            .cloned()
        else {
            return;
        };
        let empty = self
            .objects
            .iter()
            .all(|(t, objects)| t == "/namespaces" || !objects.keys().any(|(ns, _)| ns == name));
        if namespace["metadata"].get("deletionTimestamp").is_some()
            && empty
            && object::finalizers(&namespace).is_empty()
            && let Err(e) = self.write(
                tx,
                "/namespaces",
                &key,
                ChangeKind::Deleted,
                namespace.clone(),
                Some(namespace),
            )
        {
            tracing::warn!(namespace = %name, error = %e, "cannot remove a terminated namespace");
        }
    }

    /// Follows up removals: garbage-collects dependents, finishes namespaces, drops the
    /// objects of deleted CRDs. Failures are logged: the request that caused them succeeded.
    fn settle(&mut self, tx: &broadcast::Sender<Arc<Change>>, now: &str) {
        loop {
            self.settle_removals(tx, now);
            let dangling = std::mem::take(&mut self.dangling);
            if dangling.is_empty() {
                return;
            }
            // A dependent whose every owner is gone (written after its owner was deleted, e.g.
            // by a controller acting on a stale cache) is collected, as Kubernetes' garbage
            // collector does once it sees it.
            for (type_key, key) in dangling {
                let Some(object) = self
                    .objects
                    .get(&type_key)
                    .and_then(|o| o.get(&key))
                    .cloned()
                else {
                    continue;
                };
                if !self.owners_all_gone(&object) {
                    continue;
                }
                if let Err(e) = self.delete(tx, &type_key, &object, now) {
                    tracing::warn!(error = %e, "garbage collection of an orphaned dependent failed");
                }
            }
        }
    }

    /// Whether `object` names owners and none of them exists (and it is not being deleted).
    fn owners_all_gone(&self, object: &Value) -> bool {
        let owners = owner_uids(object);
        !owners.is_empty()
            && object["metadata"].get("deletionTimestamp").is_none()
            && !owners.iter().any(|u| self.uids.contains_key(*u))
    }

    fn settle_removals(&mut self, tx: &broadcast::Sender<Arc<Change>>, now: &str) {
        while let Some(removed) = self.removed.pop() {
            let uid = uid_of(&removed).to_string();
            let dependents: Vec<(TypeKey, Value)> = self
                .objects
                .iter()
                .flat_map(|(t, objects)| objects.values().map(move |o| (t.clone(), o)))
                .filter(|(_, o)| owner_uids(o).contains(&uid.as_str()))
                .map(|(t, o)| (t, o.clone()))
                .collect();
            for (type_key, dependent) in dependents {
                let owners_left = owner_uids(&dependent)
                    .iter()
                    .any(|u| *u != uid && self.uids.contains_key(*u));
                let result = if owners_left {
                    self.drop_owner(tx, &type_key, &dependent, &uid).map(|_| ())
                } else {
                    self.delete(tx, &type_key, &dependent, now).map(|_| ())
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "garbage collection of a dependent failed");
                }
            }
            let ns = removed["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !ns.is_empty() {
                self.finish_namespace(tx, &ns);
            }
            if removed["kind"] == "CustomResourceDefinition"
                && let Ok(rt) = resources::from_crd(&removed)
            {
                let instances: Vec<Value> = self
                    .objects
                    .get(&rt.key())
                    .map(|o| o.values().cloned().collect())
                    .unwrap_or_default();
                for instance in instances {
                    let key = obj_key(&instance);
                    if let Err(e) = self.write(
                        tx,
                        &rt.key(),
                        &key,
                        ChangeKind::Deleted,
                        instance.clone(),
                        Some(instance),
                    ) {
                        tracing::warn!(error = %e, "cannot delete a custom resource of a deleted CRD");
                    }
                }
                Arc::make_mut(&mut self.registry).set_custom(&rt.key(), None);
            }
        }
    }

    fn orphan_dependents(&mut self, tx: &broadcast::Sender<Arc<Change>>, owner: &Value, now: &str) {
        let uid = uid_of(owner).to_string();
        let dependents: Vec<(TypeKey, Value)> = self
            .objects
            .iter()
            .flat_map(|(t, objects)| objects.values().map(move |o| (t.clone(), o)))
            .filter(|(_, o)| owner_uids(o).contains(&uid.as_str()))
            .map(|(t, o)| (t, o.clone()))
            .collect();
        for (type_key, dependent) in dependents {
            if let Err(e) = self.drop_owner(tx, &type_key, &dependent, &uid) {
                tracing::warn!(error = %e, now, "cannot orphan a dependent");
            }
        }
    }

    fn drop_owner(
        &mut self,
        tx: &broadcast::Sender<Arc<Change>>,
        type_key: &str,
        dependent: &Value,
        uid: &str,
    ) -> Result<Value, ApiError> {
        let mut next = dependent.clone();
        if let Some(Value::Array(refs)) = next["metadata"].get_mut("ownerReferences") {
            refs.retain(|r| r["uid"].as_str() != Some(uid));
            if refs.is_empty() {
                next["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("ownerReferences"));
            }
        }
        let key = obj_key(dependent);
        self.write(
            tx,
            type_key,
            &key,
            ChangeKind::Modified,
            next,
            Some(dependent.clone()),
        )
    }

    /// Validates a CRD before it is written.
    fn check_crd(&self, type_key: &str, object: &Value) -> Result<(), ApiError> {
        if type_key != crd_key() {
            return Ok(());
        }
        let rt = resources::from_crd(object).map_err(|why| {
            let (field, why) = why.split_once(": ").unwrap_or(("spec", why.as_str()));
            ApiError::invalid(
                "CustomResourceDefinition",
                object::name_of(object),
                field,
                why,
            )
        })?;
        if self.registry.get(&rt.key()).is_some_and(|t| !t.custom) {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                object::name_of(object),
                "spec.group",
                "Invalid value: the group and plural name a built-in resource",
            ));
        }
        Ok(())
    }

    fn allocate_cluster_ip(&mut self, service: &mut Value) {
        let spec = &mut service["spec"];
        if spec["type"] == "ExternalName"
            || spec["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty())
        {
            return;
        }
        let in_use: std::collections::HashSet<&str> = self
            .objects
            .get("/services")
            .into_iter()
            .flat_map(|s| s.values())
            .filter_map(|s| s["spec"]["clusterIP"].as_str())
            .collect();
        // 10.96.0.0/12, skipping .0 addresses and addresses in use.
        let ip = loop {
            let n = self.next_cluster_ip;
            self.next_cluster_ip = self.next_cluster_ip.wrapping_add(1);
            if n & 0xff == 0 {
                continue;
            }
            let ip = format!(
                "10.{}.{}.{}",
                96 + (n >> 16) % 16,
                (n >> 8) & 0xff,
                n & 0xff
            );
            if !in_use.contains(ip.as_str()) {
                break ip;
            }
        };
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }

    /// Commits one change: durable first, then visible in memory, the history and to watchers.
    fn write(
        &mut self,
        tx: &broadcast::Sender<Arc<Change>>,
        type_key: &str,
        key: &ObjKey,
        kind: ChangeKind,
        mut object: Value,
        previous: Option<Value>,
    ) -> Result<Value, ApiError> {
        let rv = self.rv + 1;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if let Some(db) = &self.db {
            let bytes = serde_json::to_vec(&object).map_err(storage_error)?;
            let txn = db.begin_write().map_err(storage_error)?;
            {
                let mut objects = txn.open_table(OBJECTS).map_err(storage_error)?;
                let k = db_key(type_key, key);
                if kind == ChangeKind::Deleted {
                    objects.remove(k.as_str()).map_err(storage_error)?;
                } else {
                    objects
                        .insert(k.as_str(), bytes.as_slice())
                        .map_err(storage_error)?;
                }
                let mut meta = txn.open_table(META).map_err(storage_error)?;
                meta.insert(RESOURCE_VERSION, rv).map_err(storage_error)?;
            }
            txn.commit().map_err(storage_error)?;
        }
        self.rv = rv;
        if kind == ChangeKind::Deleted {
            if let Some(objects) = self.objects.get_mut(type_key) {
                objects.remove(key);
            }
            self.uids.remove(uid_of(&object));
            self.removed.push(object.clone());
        } else {
            self.index(type_key, object.clone());
            if self.owners_all_gone(&object) {
                self.dangling.push((type_key.to_owned(), key.clone()));
            }
            if type_key == crd_key()
                && let Ok(rt) = resources::from_crd(&object)
            {
                Arc::make_mut(&mut self.registry).set_custom(&rt.key(), Some(rt));
            }
        }
        let change = Arc::new(Change {
            type_key: type_key.to_string(),
            kind,
            object: object.clone(),
            previous,
            rv,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_capacity {
            if let Some(dropped) = self.history.pop_front() {
                self.history_start = dropped.rv;
            }
        }
        // No receiver is not an error: nobody watches.
        let _ = tx.send(change);
        Ok(object)
    }
}

fn owner_uids(object: &Value) -> Vec<&str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
        .unwrap_or_default()
}

fn crd_key() -> TypeKey {
    resources::type_key("apiextensions.k8s.io", "customresourcedefinitions")
}

/// Five characters from kube-apiserver's alphabet for generated names (no vowels, no
/// look-alikes), taken from the random uid.
fn name_suffix(uid: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uid.bytes()
        .filter(u8::is_ascii_hexdigit)
        .collect::<Vec<u8>>()
        .chunks(2)
        .take(5)
        .map(|pair| {
            let n = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0);
            ALPHABET[n as usize % ALPHABET.len()] as char
        })
        .collect()
}
