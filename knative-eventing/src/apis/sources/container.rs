//! ContainerSource: runs a user's container that sends events to `K_SINK`.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, SourceSpec, SourceStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ping::validate_sink;
use super::{SOURCE_CONDITION_DEPLOYED, SOURCE_CONDITION_SINK_PROVIDED};
use crate::apis::{Defaults, SetDefaults, Validate, schema};

/// The desired state of a ContainerSource (`sources.knative.dev/v1` ContainerSource).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "ContainerSource",
    namespaced,
    status = "SourceStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "sources",
    doc = "ContainerSource is the Schema for the containersources API",
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
pub struct ContainerSourceSpec {
    /// Where events go, and overrides of their attributes.
    #[serde(flatten)]
    pub source: SourceSpec,
    /// The pod that produces events.
    #[serde(default)]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub template: PodTemplateSpec,
}

impl KnativeObject for ContainerSource {
    /// `Ready` from `SinkProvided` and `Deployed`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[SOURCE_CONDITION_SINK_PROVIDED, SOURCE_CONDITION_DEPLOYED])
        });
        &SET
    }
}

impl Validate for ContainerSource {
    /// Knative's `ContainerSourceSpec.Validate`: a valid sink, at least one container, each
    /// with a name and an image (at their real paths, `spec.template.spec.containers[i]`).
    fn validate(&self) -> Result<(), FieldError> {
        let errs = validate_sink(&self.spec.source, &self.metadata.namespace);
        let mut template = FieldError::default();
        let containers = self
            .spec
            .template
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        if containers.is_empty() {
            template = template.also(FieldError::err_missing_field(["containers"]));
        }
        for (i, container) in containers.iter().enumerate() {
            let mut c = FieldError::default();
            if container.name.is_empty() {
                c = c.also(FieldError::err_missing_field(["name"]));
            }
            if container.image.as_deref().unwrap_or_default().is_empty() {
                c = c.also(FieldError::err_missing_field(["image"]));
            }
            template = template.also(c.via_field_index("containers", i));
        }
        errs.also(template.via_field("template.spec"))
            .via_field("spec")
            .into_result()
    }
}

impl SetDefaults for ContainerSource {
    /// Knative's `ContainerSource.SetDefaults`: unnamed containers are named
    /// `<source>-<index>`; the sink's namespace.
    fn set_defaults(&mut self, _: &Defaults) {
        let name = self.metadata.name.clone().unwrap_or_default();
        if let Some(spec) = &mut self.spec.template.spec {
            for (i, container) in spec.containers.iter_mut().enumerate() {
                if container.name.is_empty() {
                    container.name = format!("{name}-{i}");
                }
            }
        }
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec.source.sink.set_defaults(&namespace);
    }
}
