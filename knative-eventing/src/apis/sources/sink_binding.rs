//! SinkBinding: injects `K_SINK` and `K_CE_OVERRIDES` into the pods of a subject
//! (a Deployment, Job, ... or the PodSpecables matching a selector).

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, SourceSpec, SourceStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SOURCE_CONDITION_SINK_PROVIDED;
use super::ping::validate_sink;
use crate::apis::{Defaults, SetDefaults, Validate, schema};

/// Condition: the subject's pod template carries `K_SINK`.
pub const SINK_BINDING_CONDITION_BINDING_AVAILABLE: &str = "BindingAvailable";

/// The desired state of a SinkBinding (`sources.knative.dev/v1` SinkBinding).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "SinkBinding",
    namespaced,
    status = "SourceStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "sources",
    category = "bindings",
    doc = "SinkBinding describes a Binding that is also a Source. The `sink` (from the Source duck) is resolved to a URL and then projected into the `subject` by augmenting the runtime contract of the referenced containers to have a `K_SINK` environment variable holding the endpoint to which to send cloud events.",
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
pub struct SinkBindingSpec {
    /// Where events go, and overrides of their attributes.
    #[serde(flatten)]
    pub source: SourceSpec,
    /// The object(s) whose pods receive `K_SINK`.
    #[serde(default)]
    pub subject: Reference,
}

/// A reference to one object by name, or to the objects matching a selector (knative.dev/pkg's
/// `tracker.Reference`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// API version of the referent.
    #[serde(default)]
    pub api_version: String,
    /// Kind of the referent.
    #[serde(default)]
    pub kind: String,
    /// Namespace of the referent; defaulted to the binding's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the referent. Exclusive with `selector`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The labels of the referents. Exclusive with `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub selector: Option<LabelSelector>,
}

impl KnativeObject for SinkBinding {
    /// `Ready` from `SinkProvided` and `BindingAvailable`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                SOURCE_CONDITION_SINK_PROVIDED,
                SINK_BINDING_CONDITION_BINDING_AVAILABLE,
            ])
        });
        &SET
    }
}

impl Reference {
    /// pkg's `tracker.Reference.Validate` (paths relative to the reference): `apiVersion` and
    /// `kind` are required; exactly one of `name` and `selector`; the namespace, when set, is
    /// the parent's.
    pub fn validate(&self, parent_namespace: &str) -> Result<(), FieldError> {
        let mut errs = FieldError::default();
        if self.api_version.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["apiVersion"]));
        }
        if self.kind.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["kind"]));
        }
        if !self.namespace.is_empty()
            && !parent_namespace.is_empty()
            && self.namespace != parent_namespace
        {
            errs = errs.also(
                FieldError::new("mismatched namespaces", ["namespace"]).with_details(format!(
                    "parent namespace: \"{parent_namespace}\" does not match ref: \"{}\"",
                    self.namespace
                )),
            );
        }
        errs = errs.also(match (self.name.is_empty(), &self.selector) {
            (false, Some(_)) => FieldError::err_multiple_one_of(["selector", "name"]),
            (true, None) => FieldError::err_missing_one_of(["selector", "name"]),
            _ => FieldError::default(),
        });
        errs.into_result()
    }
}

impl Validate for SinkBinding {
    /// Knative's `SinkBindingSpec.Validate`: a valid subject and sink, valid `ceOverrides`.
    fn validate(&self) -> Result<(), FieldError> {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        validate_sink(&self.spec.source, &self.metadata.namespace)
            .also(
                self.spec
                    .subject
                    .validate(&namespace)
                    .err()
                    .map(|e| e.via_field("subject")),
            )
            .via_field("spec")
            .into_result()
    }
}

impl SetDefaults for SinkBinding {
    /// Knative's `SinkBinding.SetDefaults`: the subject's and sink's namespaces.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        if self.spec.subject.namespace.is_empty() {
            self.spec.subject.namespace.clone_from(&namespace);
        }
        self.spec.source.sink.set_defaults(&namespace);
    }
}
