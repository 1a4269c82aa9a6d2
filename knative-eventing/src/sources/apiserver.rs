//! The ApiServerSource adapter: Kubernetes watch events as CloudEvents.
//!
//! Each watched resource (`spec.resources[]`: apiVersion, kind, label selector) is watched in the
//! source's namespace. An object seen for the first time is an `add`, a change to a known object
//! an `update`, a deletion a `delete`. As in Knative:
//!
//! - `Resource` mode: type `dev.knative.apiserver.resource.<action>`, data = the object;
//! - `Reference` mode: type `dev.knative.apiserver.ref.<action>`, data = a reference
//!   (`apiVersion`, `kind`, `namespace`, `name`);
//!
//! with `source` = the API server's URL and `subject` = the object's path
//! (`/api/v1/namespaces/default/configmaps/x`).
//!
//! The adapter takes its configuration as Knative's does: [`SourceConfig`], the JSON of
//! `K_SOURCE_CONFIG` (namespaces, resources as group/version/resource with a label selector,
//! owner, mode, filters), with `K_SINK` and `K_CE_OVERRIDES` ([`ApiServerAdapter::from_env`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use futures::{StreamExt, TryStreamExt};
use http::Uri;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::apis::eventing::SubscriptionsAPIFilter;
use crate::apis::sources::api_server::{APIVersionKind, ApiServerSource};
use crate::delivery::{DeliveryPolicy, Dispatcher, Outcome};
use crate::filter::Filter;
use crate::sources::adapter::{AdapterEnv, AdapterEnvError, K_SOURCE_CONFIG, required};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It appeared (or was there when the watch started).
    Add,
    /// It changed.
    Update,
    /// It was deleted.
    Delete,
}

/// What the events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventMode {
    /// A reference to the object.
    #[default]
    Reference,
    /// The whole object.
    Resource,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

impl EventMode {
    /// The CloudEvent type of `action` in this mode.
    pub fn event_type(self, action: Action) -> String {
        match self {
            EventMode::Reference => format!("dev.knative.apiserver.ref.{}", action.as_str()),
            EventMode::Resource => format!("dev.knative.apiserver.resource.{}", action.as_str()),
        }
    }
}

/// Why an ApiServerSource cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerSourceError {
    /// `spec.mode` is neither `Reference` nor `Resource`.
    #[error("invalid value: {0}: spec.mode")]
    Mode(String),
    /// The sink URI is missing or invalid.
    #[error("the ApiServerSource has no valid sink URI (status.sinkUri): {0}")]
    Sink(String),
    /// No namespace to watch (and not all of them).
    #[error("no namespace to watch: namespaces is empty and allNamespaces is false")]
    Namespaces,
    /// A filter does not compile.
    #[error("{0}")]
    Filter(String),
    /// The adapter's environment is not usable.
    #[error(transparent)]
    Env(#[from] AdapterEnvError),
    /// A resource is not valid or unknown to the API server.
    #[error("resources[{index}]: {message}")]
    Resource {
        /// The resource's index.
        index: usize,
        /// What went wrong.
        message: String,
    },
}

/// Turns watched objects into CloudEvents (no I/O).
#[derive(Debug, Clone)]
pub struct ApiServerEvents {
    /// The event source: the API server's URL.
    pub source: String,
    /// Reference or Resource mode.
    pub mode: EventMode,
    /// Extensions added to every event (`ceOverrides.extensions`).
    pub extensions: BTreeMap<String, String>,
}

impl ApiServerEvents {
    /// The event for `action` on `object` (of `resource`), at `time`, with id `id`.
    pub fn event(
        &self,
        action: Action,
        resource: &ApiResource,
        object: &DynamicObject,
        time: DateTime<Utc>,
        id: &str,
    ) -> Event {
        let namespace = object.namespace();
        let name = object.name_any();
        let prefix = if resource.group.is_empty() {
            format!("/api/{}", resource.version)
        } else {
            format!("/apis/{}/{}", resource.group, resource.version)
        };
        let subject = match &namespace {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}/{name}", resource.plural),
            None => format!("{prefix}/{}/{name}", resource.plural),
        };
        let data = match self.mode {
            EventMode::Resource => {
                let mut object = serde_json::to_value(object).unwrap_or_default();
                if let Some(map) = object.as_object_mut() {
                    map.insert("apiVersion".into(), resource.api_version.clone().into());
                    map.insert("kind".into(), resource.kind.clone().into());
                }
                object
            }
            EventMode::Reference => serde_json::json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "namespace": namespace.unwrap_or_default(),
                "name": name,
            }),
        };
        let mut builder = EventBuilderV10::new()
            .id(id)
            .source(self.source.as_str())
            .ty(self.mode.event_type(action))
            .subject(subject)
            .time(time)
            .data("application/json", data);
        for (k, v) in &self.extensions {
            builder = builder.extension(k, v.as_str());
        }
        // id, source and type are always set and non-empty.
        builder.build().unwrap_or_else(|_| Event::default())
    }
}

/// Tracks which objects were seen, to tell an `add` from an `update`.
#[derive(Debug, Default)]
pub struct Seen {
    uids: HashSet<String>,
}

impl Seen {
    /// The action of a watch event: `Apply` of an unknown object is an add, of a known one an
    /// update; `Delete` is a delete (and forgets the object).
    pub fn classify(
        &mut self,
        event: &watcher::Event<DynamicObject>,
    ) -> Vec<(Action, DynamicObject)> {
        let key = |o: &DynamicObject| o.uid().unwrap_or_else(|| o.name_any());
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let action = if self.uids.insert(key(o)) {
                    Action::Add
                } else {
                    Action::Update
                };
                vec![(action, o.clone())]
            }
            watcher::Event::Delete(o) => {
                self.uids.remove(&key(o));
                vec![(Action::Delete, o.clone())]
            }
            watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
        }
    }
}

/// The adapter's configuration, `K_SOURCE_CONFIG`, in the shape of Knative's
/// `pkg/adapter/apiserver.Config`:
///
/// ```json
/// {"namespaces": ["demo"], "allNamespaces": false,
///  "resources": [{"gvr": {"Group": "", "Version": "v1", "Resource": "configmaps"},
///                 "selector": "watched=yes"}],
///  "owner": {"apiVersion": "apps/v1", "kind": "Deployment"},
///  "mode": "Reference", "filters": [{"prefix": {"type": "dev.knative.apiserver.ref."}}]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceConfig {
    /// The namespaces watched.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Whether every namespace is watched (then `namespaces` is ignored).
    #[serde(default)]
    pub all_namespaces: bool,
    /// The resources watched.
    #[serde(default)]
    pub resources: Vec<ResourceWatch>,
    /// Only objects owned by an object of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<APIVersionKind>,
    /// `Reference` (the default) or `Resource`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// Only events passing every filter (subscriptions-API dialects) are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<SubscriptionsAPIFilter>,
}

/// One watched resource of a [`SourceConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceWatch {
    /// The resource.
    pub gvr: GroupVersionResource,
    /// A label selector in the API's syntax (`app=web,tier in (a,b)`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

/// A group, version and resource, serialized as Go's `schema.GroupVersionResource` (no JSON
/// tags: capitalised field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupVersionResource {
    /// The API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// The version.
    #[serde(default)]
    pub version: String,
    /// The resource (plural, lower case: `configmaps`).
    #[serde(default)]
    pub resource: String,
}

impl SourceConfig {
    /// The configuration the ApiServerSource reconciler gives `source`'s adapter, watching
    /// `namespaces` (or every namespace): each resource's kind guessed to its plural resource
    /// name as Knative does, its label selector rendered.
    pub fn from_source(
        source: &ApiServerSource,
        namespaces: Vec<String>,
        all_namespaces: bool,
    ) -> Self {
        let spec = &source.spec;
        SourceConfig {
            namespaces,
            all_namespaces,
            resources: spec
                .resources
                .iter()
                .map(|r| {
                    let (group, version) = r
                        .api_version
                        .split_once('/')
                        .unwrap_or(("", &r.api_version));
                    let plural =
                        ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &r.kind))
                            .plural;
                    ResourceWatch {
                        gvr: GroupVersionResource {
                            group: group.to_owned(),
                            version: version.to_owned(),
                            resource: plural,
                        },
                        selector: r.selector.as_ref().map(label_selector).unwrap_or_default(),
                    }
                })
                .collect(),
            owner: spec.resource_owner.clone(),
            mode: spec.event_mode.clone(),
            filters: spec.filters.clone(),
        }
    }
}

/// A running ApiServerSource: watches its resources and sends their events to the sink.
#[derive(Debug, Clone)]
pub struct ApiServerAdapter {
    /// How events are made.
    pub events: ApiServerEvents,
    /// The namespaces watched; `None` watches all of them.
    pub namespaces: Option<Vec<String>>,
    /// The resources watched, with their label selectors.
    pub resources: Vec<ResourceWatch>,
    /// Only objects with an owner reference to this kind.
    pub owner: Option<APIVersionKind>,
    /// Only events passing this filter are sent.
    pub filter: Filter,
    /// Where events go.
    pub sink: Uri,
    /// How they are delivered.
    pub delivery: DeliveryPolicy,
}

impl ApiServerAdapter {
    /// The adapter of `source` for the API server at `server_url` (the events' source),
    /// watching the source's namespace.
    pub fn from_source(
        source: &ApiServerSource,
        server_url: &str,
    ) -> Result<Self, ApiServerSourceError> {
        let spec = &source.spec;
        let sink = source
            .status
            .as_ref()
            .and_then(|s| s.sink_uri.clone())
            .or_else(|| spec.source.sink.uri.clone())
            .ok_or_else(|| ApiServerSourceError::Sink("not resolved".into()))?;
        let sink = sink
            .parse::<Uri>()
            .map_err(|_| ApiServerSourceError::Sink(sink.clone()))?;
        let namespace = source
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        for (index, r) in spec.resources.iter().enumerate() {
            if r.api_version.is_empty() || r.kind.is_empty() {
                return Err(ApiServerSourceError::Resource {
                    index,
                    message: "apiVersion and kind are required".into(),
                });
            }
        }
        Self::from_config(
            SourceConfig::from_source(source, vec![namespace], false),
            spec.source
                .ce_overrides
                .as_ref()
                .map(|o| o.extensions.clone())
                .unwrap_or_default(),
            sink,
            server_url,
        )
    }

    /// The adapter an `apiserversource-<name>` Deployment runs, configured by its environment
    /// as Knative's adapter is: `K_SOURCE_CONFIG` ([`SourceConfig`] as JSON), `K_SINK` and
    /// `K_CE_OVERRIDES` (see [`AdapterEnv`]). `server_url` is the API server's URL, the events'
    /// `source`.
    pub fn from_env(
        lookup: impl Fn(&str) -> Option<String>,
        server_url: &str,
    ) -> Result<Self, ApiServerSourceError> {
        let env = AdapterEnv::from_lookup(&lookup)?;
        let json = required(&lookup, K_SOURCE_CONFIG)?;
        let config: SourceConfig =
            serde_json::from_str(&json).map_err(|e| AdapterEnvError::Invalid {
                name: K_SOURCE_CONFIG,
                reason: e.to_string(),
            })?;
        Self::from_config(config, env.overrides.extensions, env.sink, server_url)
    }

    /// The adapter of `config`, adding `extensions` to every event and sending to `sink`.
    pub fn from_config(
        config: SourceConfig,
        extensions: BTreeMap<String, String>,
        sink: Uri,
        server_url: &str,
    ) -> Result<Self, ApiServerSourceError> {
        let mode = match config.mode.as_str() {
            "" | "Reference" => EventMode::Reference,
            "Resource" => EventMode::Resource,
            other => return Err(ApiServerSourceError::Mode(other.to_owned())),
        };
        if config.resources.is_empty() {
            return Err(ApiServerSourceError::Resource {
                index: 0,
                message: "at least one resource is required".into(),
            });
        }
        for (index, r) in config.resources.iter().enumerate() {
            if r.gvr.version.is_empty() || r.gvr.resource.is_empty() {
                return Err(ApiServerSourceError::Resource {
                    index,
                    message: "gvr.Version and gvr.Resource are required".into(),
                });
            }
        }
        if !config.all_namespaces && config.namespaces.is_empty() {
            return Err(ApiServerSourceError::Namespaces);
        }
        let filter = config
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| Filter::from_subscriptions_api(f, &format!("filters[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiServerSourceError::Filter(e.to_string()))?;
        Ok(ApiServerAdapter {
            events: ApiServerEvents {
                source: server_url.to_owned(),
                mode,
                extensions,
            },
            namespaces: (!config.all_namespaces).then_some(config.namespaces),
            resources: config.resources,
            owner: config.owner,
            filter: Filter::all(filter),
            sink,
            delivery: DeliveryPolicy::default(),
        })
    }

    /// Watches every resource until `shutdown` completes, delivering one event per change.
    pub async fn run(
        &self,
        client: Client,
        dispatcher: &Dispatcher,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ApiServerSourceError> {
        let mut watches = Vec::new();
        for (index, watch) in self.resources.iter().enumerate() {
            let (resource, namespaced) = discover(&client, &watch.gvr)
                .await
                .map_err(|message| ApiServerSourceError::Resource { index, message })?;
            let apis: Vec<Api<DynamicObject>> = match (&self.namespaces, namespaced) {
                (Some(namespaces), true) => namespaces
                    .iter()
                    .map(|ns| Api::namespaced_with(client.clone(), ns, &resource))
                    .collect(),
                _ => vec![Api::all_with(client.clone(), &resource)],
            };
            for api in apis {
                let mut config = watcher::Config::default();
                if !watch.selector.is_empty() {
                    config = config.labels(&watch.selector);
                }
                let resource = resource.clone();
                let stream = watcher(api, config).map_ok(move |e| (resource.clone(), e));
                watches.push(stream.boxed());
            }
        }
        let mut events = futures::stream::select_all(watches);
        let mut seen: HashMap<String, Seen> = HashMap::new();
        tokio::pin!(shutdown);
        loop {
            let next = tokio::select! {
                () = &mut shutdown => return Ok(()),
                next = events.next() => next,
            };
            let (resource, event) = match next {
                None => return Ok(()),
                Some(Err(e)) => {
                    // The watcher retries by itself; errors are reported, not fatal.
                    tracing::warn!(error = %e, "watch error");
                    continue;
                }
                Some(Ok(item)) => item,
            };
            let seen = seen
                .entry(format!("{}/{}", resource.api_version, resource.plural))
                .or_default();
            for (action, object) in seen.classify(&event) {
                if !self.owned(&object) {
                    continue;
                }
                let ce = self.events.event(
                    action,
                    &resource,
                    &object,
                    Utc::now(),
                    &uuid::Uuid::new_v4().to_string(),
                );
                if !self.filter.matches(&ce) {
                    continue;
                }
                match dispatcher.deliver(&ce, &self.sink, &self.delivery).await {
                    Outcome::Delivered { .. } => {}
                    other => tracing::error!(?other, "apiserver event not delivered"),
                }
            }
        }
    }

    /// Whether `object` passes the owner filter: an owner reference of the owner's kind (and
    /// API group, when the owner names an apiVersion).
    fn owned(&self, object: &DynamicObject) -> bool {
        let Some(owner) = &self.owner else {
            return true;
        };
        let group = |api_version: &str| {
            api_version
                .split_once('/')
                .map_or(String::new(), |(g, _)| g.to_owned())
        };
        object.owner_references().iter().any(|r| {
            r.kind == owner.kind
                && (owner.api_version.is_empty()
                    || group(&r.api_version) == group(&owner.api_version))
        })
    }
}

/// The API resource of `gvr` (its kind, from discovery) and whether it is namespaced.
async fn discover(
    client: &Client,
    gvr: &GroupVersionResource,
) -> Result<(ApiResource, bool), String> {
    let gv = kube::core::GroupVersion::gv(&gvr.group, &gvr.version);
    let group = kube::discovery::oneshot::pinned_group(client, &gv)
        .await
        .map_err(|e| format!("{}/{}: {e}", gv.api_version(), gvr.resource))?;
    group
        .versioned_resources(&gvr.version)
        .into_iter()
        .find(|(r, _)| r.plural == gvr.resource)
        .map(|(r, caps)| (r, caps.scope == kube::discovery::Scope::Namespaced))
        .ok_or_else(|| {
            format!(
                "the API server serves no resource {} in {}",
                gvr.resource,
                gv.api_version()
            )
        })
}

fn label_selector(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().join(",");
        parts.push(match expr.operator.as_str() {
            "In" => format!("{} in ({values})", expr.key),
            "NotIn" => format!("{} notin ({values})", expr.key),
            "Exists" => expr.key.clone(),
            _ => format!("!{}", expr.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::AttributesReader;

    fn config_map() -> (ApiResource, DynamicObject) {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "demo", "uid": "u1"},
            "data": {"k": "v"}
        }))
        .unwrap();
        (resource, object)
    }

    fn events(mode: EventMode) -> ApiServerEvents {
        ApiServerEvents {
            source: "https://10.96.0.1:443".into(),
            mode,
            extensions: BTreeMap::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn reference_mode_sends_a_reference() {
        let (resource, object) = config_map();
        let e = events(EventMode::Reference).event(Action::Add, &resource, &object, now(), "1");
        assert_eq!(e.ty(), "dev.knative.apiserver.ref.add");
        assert_eq!(e.source(), "https://10.96.0.1:443");
        assert_eq!(e.subject(), Some("/api/v1/namespaces/demo/configmaps/cfg"));
        assert_eq!(
            e.data(),
            Some(&cloudevents::Data::Json(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap", "namespace": "demo", "name": "cfg"
            })))
        );
    }

    #[test]
    fn resource_mode_sends_the_object() {
        let (resource, object) = config_map();
        let e = events(EventMode::Resource).event(Action::Delete, &resource, &object, now(), "1");
        assert_eq!(e.ty(), "dev.knative.apiserver.resource.delete");
        let Some(cloudevents::Data::Json(data)) = e.data() else {
            panic!("JSON data expected");
        };
        assert_eq!(data["data"]["k"], "v");
        assert_eq!(data["kind"], "ConfigMap");
    }

    #[test]
    fn a_known_object_is_updated_and_a_deleted_one_forgotten() {
        let (_, object) = config_map();
        let mut seen = Seen::default();
        let actions = |seen: &mut Seen, e| {
            seen.classify(&e)
                .into_iter()
                .map(|(a, _)| a)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            actions(&mut seen, watcher::Event::InitApply(object.clone())),
            [Action::Add]
        );
        assert_eq!(
            actions(&mut seen, watcher::Event::Apply(object.clone())),
            [Action::Update]
        );
        assert_eq!(
            actions(&mut seen, watcher::Event::Delete(object.clone())),
            [Action::Delete]
        );
        assert_eq!(
            actions(&mut seen, watcher::Event::Apply(object)),
            [Action::Add]
        );
    }

    #[test]
    fn label_selectors_render_as_the_api_expects() {
        let selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector =
            serde_json::from_value(serde_json::json!({
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]
            }))
            .unwrap();
        assert_eq!(label_selector(&selector), "app=web,tier in (a,b)");
    }
}
