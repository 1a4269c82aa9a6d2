//! Children as the controller's informers keep them, when the decoded object would take several
//! times the memory of what it says.
//!
//! A Revision's Deployment carries two containers, thirty-odd environment variables, probes and
//! ports; decoded into k8s-openapi's types (every optional field present, most of them empty) it
//! takes about 17 KB of memory, its JSON about 3 KB. With a thousand Revisions the Deployment
//! informer alone held 19 MB. [`CompactDeployment`] keeps a Deployment's metadata and status as
//! they are and its spec as the JSON the API server sent, decoded when a pass reads it.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};

/// A Deployment with its spec kept as JSON: what the Revision and ServerlessService reconcilers
/// read Deployments through (`Caches::changes::<CompactDeployment>()`,
/// `ctx.lister::<CompactDeployment>()`). The API is the Deployments' own (`apps/v1`); only the
/// in-memory form differs.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CompactDeployment {
    /// The Deployment's metadata.
    pub metadata: ObjectMeta,
    /// The spec, as compact JSON.
    #[serde(default, deserialize_with = "compact_json")]
    spec: Option<Box<str>>,
    /// The Deployment's status.
    #[serde(default)]
    pub status: Option<DeploymentStatus>,
}

/// Any JSON value, kept as its compact text.
fn compact_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<str>>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    value
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_string(&v).map(String::into_boxed_str))
        .transpose()
        .map_err(serde::de::Error::custom)
}

impl CompactDeployment {
    /// The spec, decoded.
    ///
    /// # Errors
    /// When the spec is not a Deployment spec k8s-openapi can decode (a field of the wrong
    /// type, or a required one missing).
    pub fn spec(&self) -> Result<Option<DeploymentSpec>, serde_json::Error> {
        self.spec.as_deref().map(serde_json::from_str).transpose()
    }

    /// The whole Deployment, its spec decoded.
    ///
    /// # Errors
    /// As [`spec`](Self::spec).
    pub fn into_deployment(self) -> Result<Deployment, serde_json::Error> {
        Ok(Deployment {
            spec: self.spec()?,
            metadata: self.metadata,
            status: self.status,
        })
    }
}

impl Resource for CompactDeployment {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Deployment::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Deployment::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Deployment::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        Deployment::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Deployment::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_json() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hello-00001-deployment", "namespace": "default",
                         "labels": {"serving.knative.dev/revision": "hello-00001"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"serving.knative.dev/revisionUID": "u"}},
                "template": {"metadata": {"labels": {"serving.knative.dev/revisionUID": "u"}},
                             "spec": {"containers": [{"name": "user-container", "image": "x",
                                                      "env": [{"name": "A", "value": "1"}]}]}},
                "futureField": {"kept": true}
            },
            "status": {"availableReplicas": 1}
        })
    }

    #[test]
    fn a_decoded_compact_deployment_is_the_deployment() {
        let compact: CompactDeployment = serde_json::from_value(deployment_json()).unwrap();
        let full: Deployment = serde_json::from_value(deployment_json()).unwrap();
        assert_eq!(compact.clone().into_deployment().unwrap(), full);
        assert_eq!(compact.metadata, full.metadata);
        assert_eq!(compact.status, full.status);
    }

    #[test]
    fn a_deployment_without_a_spec_has_none() {
        let compact: CompactDeployment =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": null})).unwrap();
        assert_eq!(compact.spec().unwrap(), None);
    }

    #[test]
    fn a_watch_event_decodes_into_a_compact_deployment() {
        // As kube's watcher reads them: the event's type, then the object.
        let line = json!({"type": "MODIFIED", "object": deployment_json()}).to_string();
        let event: kube::core::WatchEvent<CompactDeployment> = serde_json::from_str(&line).unwrap();
        let kube::core::WatchEvent::Modified(compact) = event else {
            panic!("not a modification: {event:?}");
        };
        assert_eq!(compact.spec().unwrap().unwrap().replicas, Some(2));
    }
}
