//! The labeler: marks which Routes use which Revisions and Configurations (Knative's
//! `pkg/reconciler/labeler`), so that Revision garbage collection and scale-to-zero know what
//! is routed.
//!
//! A Revision or Configuration a Route's traffic refers to (in its spec or its status, a
//! Configuration's latest created Revision for `latestRevision` targets, and a Revision's
//! controlling Configuration) carries the Route's name in the comma-separated annotation
//! `serving.knative.dev/routes`. A Revision is labelled `serving.knative.dev/routingState:
//! active` while that annotation names some Route and `reserve` once it names none, and
//! `serving.knative.dev/routingStateModified` records when its state last changed. New
//! Revisions start `pending` (see the Configuration reconciler).
//!
//! The Route reconciler calls [`Labeler::sync`] at the end of every pass and [`Labeler::clear`]
//! when a Route is deleted. The metadata changes themselves are pure: [`metadata_patch`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use knative_core::reconciler::cache::Cacheable;
use knative_core::reconciler::{Context, Lister};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Map, Value, json};

use crate::apis::serving::{
    ROUTES_ANNOTATION_KEY, ROUTING_STATE_LABEL_KEY, ROUTING_STATE_MODIFIED_ANNOTATION_KEY,
};
use crate::apis::{Configuration, Revision, Route};

/// A Revision's routing state while some Route sends it traffic.
pub const ROUTING_STATE_ACTIVE: &str = "active";
/// A Revision's routing state once no Route refers to it any more.
pub const ROUTING_STATE_RESERVE: &str = "reserve";
/// A new Revision's routing state, before the labeler looked at it.
pub const ROUTING_STATE_PENDING: &str = "pending";

/// `routingStateModified`'s format: RFC 3339 in UTC, to the second (Go's `time.RFC3339`).
pub fn routing_state_modified(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The Routes named in `meta`'s `serving.knative.dev/routes` annotation.
pub fn routes_of(meta: &ObjectMeta) -> BTreeSet<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ROUTES_ANNOTATION_KEY))
        .map(|v| {
            v.split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON merge patch that adds (`remove` false) or removes Route `route` from `meta`'s
/// routes annotation, and with `routing_state` (Revisions) sets the routing state that
/// follows; `None` when nothing changes.
pub fn metadata_patch(
    meta: &ObjectMeta,
    route: &str,
    remove: bool,
    routing_state: bool,
    now: Timestamp,
) -> Option<Value> {
    let mut labels = Map::new();
    let mut annotations = Map::new();

    let mut routes = routes_of(meta);
    let changed = if remove {
        routes.remove(route)
    } else {
        routes.insert(route.to_owned())
    };
    if changed {
        let value = if routes.is_empty() {
            Value::Null
        } else {
            Value::String(routes.iter().cloned().collect::<Vec<_>>().join(","))
        };
        annotations.insert(ROUTES_ANNOTATION_KEY.to_owned(), value);
    }
    if routing_state {
        let want = if routes.is_empty() {
            ROUTING_STATE_RESERVE
        } else {
            ROUTING_STATE_ACTIVE
        };
        let have = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(ROUTING_STATE_LABEL_KEY))
            .map(String::as_str);
        if have != Some(want) {
            labels.insert(ROUTING_STATE_LABEL_KEY.to_owned(), want.into());
            annotations.insert(
                ROUTING_STATE_MODIFIED_ANNOTATION_KEY.to_owned(),
                routing_state_modified(now).into(),
            );
        }
    }
    let mut metadata = Map::new();
    if !labels.is_empty() {
        metadata.insert("labels".to_owned(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".to_owned(), Value::Object(annotations));
    }
    (!metadata.is_empty()).then(|| json!({ "metadata": metadata }))
}

/// The Revisions and Configurations `route` refers to, as Knative's `syncRoutingMeta` walks
/// them: every target of its status and spec traffic; a Revision's controlling Configuration;
/// a `latestRevision` target's latest created Revision. Those that do not exist are left out.
async fn referenced(
    ctx: &Context,
    route: &Route,
) -> Result<(Vec<Revision>, Vec<Configuration>), kube::Error> {
    let namespace = route.namespace().unwrap_or_default();
    let revisions = ctx.lister::<Revision>(&namespace);
    let configs = ctx.lister::<Configuration>(&namespace);
    let status_traffic = route
        .status
        .as_ref()
        .map(|s| s.route.traffic.clone())
        .unwrap_or_default();
    let (mut revs, mut cfgs) = (Vec::<Revision>::new(), Vec::<Configuration>::new());
    for target in status_traffic.iter().chain(&route.spec.traffic) {
        let mut config_name = target.configuration_name.clone().filter(|n| !n.is_empty());
        if let Some(name) = target.revision_name.as_deref().filter(|n| !n.is_empty()) {
            let Some(rev) = find(&revisions, &mut revs, name).await? else {
                continue;
            };
            if let Some(owner) = rev
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "Configuration")
            {
                config_name = Some(owner.name.clone());
            }
        }
        if let Some(name) = config_name {
            let Some(config) = find(&configs, &mut cfgs, &name).await? else {
                continue;
            };
            let latest_created = config
                .status
                .as_ref()
                .and_then(|s| s.configuration.latest_created_revision_name.clone())
                .filter(|n| !n.is_empty());
            if let (Some(latest), Some(true)) = (latest_created, target.latest_revision) {
                find(&revisions, &mut revs, &latest).await?;
            }
        }
    }
    Ok((revs, cfgs))
}

/// `name` from `found` if already read, else through `lister` (remembered in `found`).
async fn find<K: Cacheable>(
    lister: &Lister<K>,
    found: &mut Vec<K>,
    name: &str,
) -> Result<Option<K>, kube::Error> {
    if let Some(k) = found
        .iter()
        .find(|k| k.meta().name.as_deref() == Some(name))
    {
        return Ok(Some(k.clone()));
    }
    let got = lister.get(name).await?;
    if let Some(k) = &got {
        found.push(k.clone());
    }
    Ok(got)
}

/// Knative's labeler, with what it knows of which Revisions and Configurations name which
/// Route. Taking a Route's name off what it no longer uses needs the items that name it; rather
/// than scanning the namespace on every Route pass (a pass would cost O(items in the
/// namespace): with 1,000 Services the API server spent its time serving those scans), the
/// labeler scans a namespace once, on its first pass there, and then keeps the index by its own
/// patches. Cheap to clone; clones share the index.
#[derive(Clone, Debug, Default)]
pub struct Labeler {
    index: Arc<Mutex<HashMap<String, NamespaceIndex>>>,
}

/// What the labeler patches: Revisions and Configurations.
trait Labelled:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}
impl Labelled for Revision {}
impl Labelled for Configuration {}

/// Per namespace: for each (is a Revision, Route), the names of the items that name the Route.
type NamespaceIndex = HashMap<(bool, String), BTreeSet<String>>;

impl Labeler {
    /// A labeler with an empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Labels what `route` refers to and unlabels what it referred to before, in the pass of
    /// `ctx` (reading what it refers to through its listers).
    ///
    /// # Errors
    /// When the API server refuses a read or a patch (the pass is retried).
    pub async fn sync(&self, ctx: &Context, route: &Route) -> Result<(), kube::Error> {
        let (client, now) = (ctx.client(), ctx.now());
        let (revisions, configs) = referenced(ctx, route).await?;
        let name = route.name_any();
        let namespace = route.namespace().unwrap_or_default();
        self.scan_once(client, &namespace).await?;
        let keep_revs: BTreeSet<String> = revisions.iter().map(ResourceExt::name_any).collect();
        let keep_cfgs: BTreeSet<String> = configs.iter().map(ResourceExt::name_any).collect();
        self.unlabel_others::<Revision>(client, &namespace, &name, &keep_revs, true, now)
            .await?;
        self.unlabel_others::<Configuration>(client, &namespace, &name, &keep_cfgs, false, now)
            .await?;
        for rev in &revisions {
            apply::<Revision>(client, &namespace, &rev.metadata, &name, false, true, now).await?;
            self.note(&namespace, true, &name, &rev.name_any(), true);
        }
        for config in &configs {
            apply::<Configuration>(
                client,
                &namespace,
                &config.metadata,
                &name,
                false,
                false,
                now,
            )
            .await?;
            self.note(&namespace, false, &name, &config.name_any(), true);
        }
        Ok(())
    }

    /// Removes Route `namespace/route` from every Revision and Configuration that names it.
    ///
    /// # Errors
    /// When the API server refuses a read or a patch.
    pub async fn clear(
        &self,
        client: &Client,
        namespace: &str,
        route: &str,
        now: Timestamp,
    ) -> Result<(), kube::Error> {
        self.scan_once(client, namespace).await?;
        let none = BTreeSet::new();
        self.unlabel_others::<Revision>(client, namespace, route, &none, true, now)
            .await?;
        self.unlabel_others::<Configuration>(client, namespace, route, &none, false, now)
            .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NamespaceIndex>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that item `name` (a Revision or not) names `route` now (`names`) or no more.
    fn note(&self, namespace: &str, revision: bool, route: &str, name: &str, names: bool) {
        let mut index = self.lock();
        let Some(ns) = index.get_mut(namespace) else {
            return;
        };
        let key = (revision, route.to_owned());
        if names {
            ns.entry(key).or_default().insert(name.to_owned());
        } else if let Some(items) = ns.get_mut(&key) {
            items.remove(name);
            if items.is_empty() {
                ns.remove(&key);
            }
        }
    }

    /// Fills the index of `namespace` from the API server, the first time only: the Revisions
    /// whose routing state is active and every Configuration, metadata only, from the API
    /// server's watch cache.
    async fn scan_once(&self, client: &Client, namespace: &str) -> Result<(), kube::Error> {
        if self.lock().contains_key(namespace) {
            return Ok(());
        }
        let active = ListParams::default()
            .match_any()
            .labels(&format!("{ROUTING_STATE_LABEL_KEY}={ROUTING_STATE_ACTIVE}"));
        let revisions = Api::<Revision>::namespaced(client.clone(), namespace)
            .list_metadata(&active)
            .await?;
        let configs = Api::<Configuration>::namespaced(client.clone(), namespace)
            .list_metadata(&ListParams::default().match_any())
            .await?;
        let mut scanned = NamespaceIndex::new();
        let items = revisions
            .items
            .iter()
            .map(|r| (true, &r.metadata))
            .chain(configs.items.iter().map(|c| (false, &c.metadata)));
        for (revision, meta) in items {
            let name = meta.name.clone().unwrap_or_default();
            for route in routes_of(meta) {
                scanned
                    .entry((revision, route))
                    .or_default()
                    .insert(name.clone());
            }
        }
        // Another pass may have scanned meanwhile: what it noted since stays.
        let mut index = self.lock();
        let ns = index.entry(namespace.to_owned()).or_default();
        for (key, names) in scanned {
            ns.entry(key).or_default().extend(names);
        }
        Ok(())
    }

    /// Takes `route` off the items the index says name it, but for `keep`; each is read first,
    /// so that the patch starts from its current routes.
    async fn unlabel_others<K: Labelled>(
        &self,
        client: &Client,
        namespace: &str,
        route: &str,
        keep: &BTreeSet<String>,
        routing_state: bool,
        now: Timestamp,
    ) -> Result<(), kube::Error> {
        let stale: Vec<String> = self
            .lock()
            .get(namespace)
            .and_then(|ns| ns.get(&(routing_state, route.to_owned())))
            .map(|names| names.difference(keep).cloned().collect())
            .unwrap_or_default();
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        for name in stale {
            if let Some(item) = api.get_metadata_opt(&name).await?
                && routes_of(&item.metadata).contains(route)
            {
                apply::<K>(
                    client,
                    namespace,
                    &item.metadata,
                    route,
                    true,
                    routing_state,
                    now,
                )
                .await?;
            }
            self.note(namespace, routing_state, route, &name, false);
        }
        Ok(())
    }
}

/// Patches `item`'s routes annotation (and routing state) for `route`; a no-op when nothing
/// changes, and nothing to do when the item is gone.
async fn apply<K: Labelled>(
    client: &Client,
    namespace: &str,
    item: &ObjectMeta,
    route: &str,
    remove: bool,
    routing_state: bool,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let Some(patch) = metadata_patch(item, route, remove, routing_state, now) else {
        return Ok(());
    };
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = item.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing left to label.
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn now() -> Timestamp {
        "2026-11-28T12:00:00.123Z".parse().unwrap()
    }

    fn meta(routes: Option<&str>, state: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            annotations: routes.map(|r| BTreeMap::from([(ROUTES_ANNOTATION_KEY.into(), r.into())])),
            labels: state.map(|s| BTreeMap::from([(ROUTING_STATE_LABEL_KEY.into(), s.into())])),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn the_modified_time_is_rfc3339_to_the_second() {
        assert_eq!(routing_state_modified(now()), "2026-11-28T12:00:00Z");
    }

    #[test]
    fn a_pending_revision_a_route_uses_becomes_active_with_the_route_named() {
        let patch = metadata_patch(&meta(None, Some("pending")), "hello", false, true, now());
        assert_eq!(
            patch,
            Some(json!({ "metadata": {
                "labels": { ROUTING_STATE_LABEL_KEY: "active" },
                "annotations": {
                    ROUTES_ANNOTATION_KEY: "hello",
                    ROUTING_STATE_MODIFIED_ANNOTATION_KEY: "2026-11-28T12:00:00Z",
                },
            }}))
        );
    }

    #[test]
    fn a_second_route_is_added_in_sorted_order_without_a_state_change() {
        let patch = metadata_patch(
            &meta(Some("zeta"), Some("active")),
            "alpha",
            false,
            true,
            now(),
        );
        assert_eq!(
            patch,
            Some(json!({ "metadata": { "annotations": { ROUTES_ANNOTATION_KEY: "alpha,zeta" } } }))
        );
    }

    #[test]
    fn removing_the_last_route_deletes_the_annotation_and_reserves_the_revision() {
        let patch = metadata_patch(
            &meta(Some("hello"), Some("active")),
            "hello",
            true,
            true,
            now(),
        );
        assert_eq!(
            patch,
            Some(json!({ "metadata": {
                "labels": { ROUTING_STATE_LABEL_KEY: "reserve" },
                "annotations": {
                    ROUTES_ANNOTATION_KEY: null,
                    ROUTING_STATE_MODIFIED_ANNOTATION_KEY: "2026-11-28T12:00:00Z",
                },
            }}))
        );
    }

    #[test]
    fn nothing_changes_when_the_route_is_already_named_and_the_state_is_right() {
        assert_eq!(
            metadata_patch(
                &meta(Some("a,hello"), Some("active")),
                "hello",
                false,
                true,
                now()
            ),
            None
        );
        assert_eq!(
            metadata_patch(&meta(None, None), "hello", true, false, now()),
            None
        );
    }

    #[test]
    fn configurations_get_the_routes_annotation_but_no_routing_state() {
        let patch = metadata_patch(&meta(None, None), "hello", false, false, now());
        assert_eq!(
            patch,
            Some(json!({ "metadata": { "annotations": { ROUTES_ANNOTATION_KEY: "hello" } } }))
        );
    }
}
