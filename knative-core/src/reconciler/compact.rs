//! Objects as the informers keep them: metadata decoded, the rest as the JSON the API server
//! sent, decoded when a pass reads it.
//!
//! Decoded into Rust types, a Kubernetes object takes several times the memory of its JSON: every
//! optional field of k8s-openapi's types is inline (a `Container` is 2,120 bytes before any of
//! its strings, a `PodSpec` 1,416), and a Knative Service, Configuration or Revision carries a
//! pod template. Measured on the objects of the controller benchmark: a Revision takes 7.7 KB
//! decoded against 1.4 KB of JSON, a Revision's Deployment 28 KB against 5 KB. An informer
//! holds every object of its kind for as long as the process runs, and a reconciler reads a
//! handful per pass; so the caches keep [`Compact`] objects and decode on read.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A `K` as the informers keep it: the metadata that keys, selects and maps objects to their
/// owners decoded, everything else as compact JSON text, decoded by [`Compact::decode`].
///
/// It is the same resource as `K` for the API ([`Resource`] answers as `K` does), so an
/// `Api<Compact<K>>` lists and watches `K`s.
///
/// Its [`metadata`](Compact::metadata) (also what [`Resource::meta`] returns) holds every field
/// of the object's but two: `managedFields` are dropped (no reconciler reads them, and they are
/// often the larger part of an object's metadata), and `annotations` are kept as JSON with the
/// rest ([`Compact::annotations`]; [`Compact::decode`] puts them back), because a decoded map
/// costs about a kilobyte per object.
pub struct Compact<K> {
    metadata: ObjectMeta,
    /// The metadata's annotations, as a JSON object.
    annotations: Option<Box<str>>,
    /// The other top-level fields, as a JSON object (`{"apiVersion":…,"spec":…}`).
    rest: Box<str>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Compact<K> {
    /// The object's metadata without `managedFields` and `annotations`.
    pub fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// The object's annotations, decoded (empty when it has none).
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.annotations
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }
}

impl<K: DeserializeOwned> Compact<K> {
    /// The whole object, decoded.
    ///
    /// # Errors
    /// When the JSON is not a `K` (a field of the wrong type, or a required one missing): the
    /// API server's schema and `K` disagree.
    pub fn decode(&self) -> Result<K, serde_json::Error> {
        let metadata = serde_json::to_string(&self.metadata)?;
        let annotations = self.annotations.as_deref().unwrap_or_default();
        let mut json =
            String::with_capacity(metadata.len() + annotations.len() + self.rest.len() + 32);
        json.push_str("{\"metadata\":");
        if self.annotations.is_some() {
            json.push_str("{\"annotations\":");
            json.push_str(annotations);
            push_fields(&mut json, &metadata);
        } else {
            json.push_str(&metadata);
        }
        push_fields(&mut json, &self.rest);
        serde_json::from_str(&json)
    }
}

impl<K: Resource + Serialize> Compact<K> {
    /// `object` in compact form (what the informer would hold of it).
    ///
    /// # Errors
    /// When `object` cannot be serialized as JSON (a map with non-string keys).
    pub fn new(object: &K) -> Result<Self, serde_json::Error> {
        let mut fields = match serde_json::to_value(object)? {
            serde_json::Value::Object(fields) => fields,
            _ => serde_json::Map::new(),
        };
        fields.remove("metadata");
        let mut metadata = object.meta().clone();
        metadata.managed_fields = None;
        let annotations = metadata
            .annotations
            .take()
            .map(|a| serde_json::to_string(&a).map(String::into_boxed_str))
            .transpose()?;
        Ok(Self {
            metadata,
            annotations,
            rest: serde_json::to_string(&fields)?.into_boxed_str(),
            _kind: PhantomData,
        })
    }
}

/// Appends the fields of the JSON object `object` to `json`, an object left open after at least
/// one field, and closes it.
fn push_fields(json: &mut String, object: &str) {
    match object.strip_prefix('{') {
        Some("}") | None => json.push('}'),
        Some(fields) => {
            json.push(',');
            json.push_str(fields);
        }
    }
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            annotations: self.annotations.clone(),
            rest: self.rest.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("kind", &K::kind(&()))
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("resource_version", &self.metadata.resource_version)
            .field("json_len", &self.rest.len())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CompactVisitor(PhantomData))
    }
}

struct CompactVisitor<K>(PhantomData<fn() -> K>);

impl<'de, K> Visitor<'de> for CompactVisitor<K> {
    type Value = Compact<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut metadata: Option<ObjectMeta> = None;
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "metadata" {
                metadata = Some(map.next_value()?);
            } else {
                rest.insert(key, map.next_value()?);
            }
        }
        let mut metadata = metadata.unwrap_or_default();
        metadata.managed_fields = None;
        let annotations = match metadata.annotations.take() {
            Some(annotations) => Some(to_json(&annotations)?),
            None => None,
        };
        Ok(Compact {
            metadata,
            annotations,
            rest: to_json(&rest)?,
            _kind: PhantomData,
        })
    }
}

fn to_json<T: Serialize, E: serde::de::Error>(value: &T) -> Result<Box<str>, E> {
    serde_json::to_string(value)
        .map(String::into_boxed_str)
        .map_err(E::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ManagedFieldsEntry};

    fn deployment() -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("hello-00001-deployment".into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_owned(), "hello".to_owned())].into()),
                annotations: Some(
                    [("serving.knative.dev/creator".to_owned(), "admin".to_owned())].into(),
                ),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                selector: LabelSelector::default(),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "user-container".into(),
                            image: Some("ghcr.io/knative/helloworld-go".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                ready_replicas: Some(1),
                ..DeploymentStatus::default()
            }),
        }
    }

    #[test]
    fn a_compact_object_decodes_to_the_object_it_was_made_from() {
        let original = deployment();
        let compact = Compact::new(&original).unwrap();
        assert_eq!(compact.decode().unwrap(), original);
    }

    #[test]
    fn a_watch_event_decodes_into_a_compact_object_with_the_same_metadata_and_fields() {
        let original = deployment();
        let event = serde_json::json!({ "type": "MODIFIED", "object": original });
        let decoded: kube::core::WatchEvent<Compact<Deployment>> =
            serde_json::from_value(event).unwrap();
        let kube::core::WatchEvent::Modified(compact) = decoded else {
            panic!("expected a modification");
        };
        assert_eq!(compact.meta().labels, original.metadata.labels);
        assert_eq!(compact.decode().unwrap(), original);
    }

    #[test]
    fn annotations_are_kept_apart_from_the_metadata_and_restored_on_decode() {
        let original = deployment();
        let compact = Compact::new(&original).unwrap();
        assert_eq!(compact.meta().annotations, None);
        assert_eq!(
            Some(compact.annotations()),
            original.metadata.annotations.clone()
        );
        let json = serde_json::to_string(&original).unwrap();
        let decoded: Compact<Deployment> = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded.meta().annotations, None);
        assert_eq!(decoded.decode().unwrap(), original);
    }

    #[test]
    fn an_object_with_annotations_and_no_other_metadata_decodes() {
        let compact: Compact<ConfigMap> = serde_json::from_value(serde_json::json!({
            "metadata": { "annotations": { "a": "b" } }
        }))
        .unwrap();
        let decoded = compact.decode().unwrap();
        assert_eq!(
            decoded.metadata.annotations,
            Some([("a".to_owned(), "b".to_owned())].into())
        );
    }

    #[test]
    fn managed_fields_are_not_kept() {
        let mut original = deployment();
        original.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..ManagedFieldsEntry::default()
        }]);
        let json = serde_json::to_string(&original).unwrap();
        let compact: Compact<Deployment> = serde_json::from_str(&json).unwrap();
        assert_eq!(compact.meta().managed_fields, None);
        assert_eq!(compact.decode().unwrap().metadata.managed_fields, None);
        assert!(!compact.rest.contains("kubectl"));
    }

    #[test]
    fn an_object_with_nothing_but_metadata_decodes() {
        let original = ConfigMap {
            metadata: ObjectMeta {
                name: Some("empty".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let compact: Compact<ConfigMap> =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": "empty" } })).unwrap();
        assert_eq!(compact.decode().unwrap(), original);
    }

    #[test]
    fn a_field_of_the_wrong_type_is_an_error_on_decode() {
        let compact: Compact<Deployment> = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "broken" },
            "spec": { "replicas": "three" }
        }))
        .unwrap();
        let err = compact.decode().unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn a_compact_object_answers_for_its_kind() {
        assert_eq!(Compact::<Deployment>::kind(&()), "Deployment");
        assert_eq!(Compact::<Deployment>::api_version(&()), "apps/v1");
        assert_eq!(Compact::<Deployment>::plural(&()), "deployments");
    }
}
