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

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use futures::{StreamExt, TryStreamExt};
use http::Uri;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::apis::sources::api_server::ApiServerSource;
use crate::delivery::{DeliveryPolicy, Dispatcher, Outcome};

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
    /// A resource's apiVersion/kind is unknown to the API server.
    #[error("spec.resources[{index}]: {message}")]
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

/// A running ApiServerSource: watches its resources and sends their events to the sink.
#[derive(Debug, Clone)]
pub struct ApiServerAdapter {
    /// How events are made.
    pub events: ApiServerEvents,
    /// The namespace watched.
    pub namespace: String,
    /// The resources watched, with their label selectors.
    pub resources: Vec<(GroupVersionKind, Option<String>)>,
    /// Where events go.
    pub sink: Uri,
    /// How they are delivered.
    pub delivery: DeliveryPolicy,
}

impl ApiServerAdapter {
    /// The adapter of `source` for the API server at `server_url` (the events' source).
    pub fn from_source(
        source: &ApiServerSource,
        server_url: &str,
    ) -> Result<Self, ApiServerSourceError> {
        let spec = &source.spec;
        let mode = match spec.event_mode.as_str() {
            "" | "Reference" => EventMode::Reference,
            "Resource" => EventMode::Resource,
            other => return Err(ApiServerSourceError::Mode(other.to_owned())),
        };
        let sink = source
            .status
            .as_ref()
            .and_then(|s| s.sink_uri.clone())
            .or_else(|| spec.source.sink.uri.clone())
            .ok_or_else(|| ApiServerSourceError::Sink("not resolved".into()))?;
        let sink = sink
            .parse::<Uri>()
            .map_err(|_| ApiServerSourceError::Sink(sink.clone()))?;
        let resources = spec
            .resources
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let (group, version) = match r.api_version.split_once('/') {
                    Some((g, v)) => (g, v),
                    None => ("", r.api_version.as_str()),
                };
                if version.is_empty() || r.kind.is_empty() {
                    return Err(ApiServerSourceError::Resource {
                        index,
                        message: "apiVersion and kind are required".into(),
                    });
                }
                let selector = r.selector.as_ref().map(label_selector);
                Ok((GroupVersionKind::gvk(group, version, &r.kind), selector))
            })
            .collect::<Result<_, _>>()?;
        Ok(ApiServerAdapter {
            events: ApiServerEvents {
                source: server_url.to_owned(),
                mode,
                extensions: spec
                    .source
                    .ce_overrides
                    .as_ref()
                    .map(|o| o.extensions.clone())
                    .unwrap_or_default(),
            },
            namespace: source
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            resources,
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
        for (index, (gvk, selector)) in self.resources.iter().enumerate() {
            let (resource, _) = kube::discovery::pinned_kind(&client, gvk)
                .await
                .map_err(|e| ApiServerSourceError::Resource {
                    index,
                    message: e.to_string(),
                })?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &self.namespace, &resource);
            let mut config = watcher::Config::default();
            if let Some(selector) = selector {
                config = config.labels(selector);
            }
            let stream = watcher(api, config).map_ok(move |e| (resource.clone(), e));
            watches.push(stream.boxed());
        }
        let mut events = futures::stream::select_all(watches);
        let mut seen: Vec<Seen> = Vec::new();
        let mut seen_by_kind = std::collections::HashMap::new();
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
            let slot = *seen_by_kind
                .entry(resource.kind.clone())
                .or_insert_with(|| {
                    seen.push(Seen::default());
                    seen.len() - 1
                });
            for (action, object) in seen[slot].classify(&event) {
                let ce = self.events.event(
                    action,
                    &resource,
                    &object,
                    Utc::now(),
                    &uuid::Uuid::new_v4().to_string(),
                );
                match dispatcher.deliver(&ce, &self.sink, &self.delivery).await {
                    Outcome::Delivered { .. } => {}
                    other => tracing::error!(?other, "apiserver event not delivered"),
                }
            }
        }
    }
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
