//! EventType (`eventing.knative.dev/v1beta3`): an entry in the registry of the event types a
//! Broker, Channel or source offers.

use std::sync::LazyLock;

use knative_core::apis::{ConditionSet, FieldError, KReference, KnativeObject, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::{Defaults, SetDefaults, Validate};

/// Condition: the referenced Broker, Channel or source exists.
pub const EVENT_TYPE_CONDITION_REFERENCE_EXISTS: &str = "ReferenceExists";

/// The desired state of an EventType (`eventing.knative.dev/v1beta3` EventType).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1beta3",
    kind = "EventType",
    namespaced,
    status = "Status",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "eventing",
    doc = "EventType represents a type of event that can be consumed from a Broker.",
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".spec.attributes[?(@.name=='type')].value"}"#,
    printcolumn = r#"{"name": "Source", "type": "string", "jsonPath": ".spec.attributes[?(@.name=='source')].value"}"#,
    printcolumn = r#"{"name": "Reference Name", "type": "string", "jsonPath": ".spec.reference.name"}"#,
    printcolumn = r#"{"name": "Reference Kind", "type": "string", "jsonPath": ".spec.reference.kind"}"#,
    printcolumn = r#"{"name": "Description", "type": "string", "jsonPath": ".spec.description"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeSpec {
    /// The Broker, Channel or source that offers this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    /// A human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The CloudEvents attributes of events of this type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<EventAttributeDefinition>,
}

/// One CloudEvents attribute of an EventType.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct EventAttributeDefinition {
    /// The attribute's name, e.g. `type`.
    pub name: String,
    /// Whether events of this type always carry it.
    #[serde(default)]
    pub required: bool,
    /// Its value, which may hold `{variables}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

impl KnativeObject for EventType {
    /// `Ready` from `ReferenceExists`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> =
            LazyLock::new(|| ConditionSet::living(&[EVENT_TYPE_CONDITION_REFERENCE_EXISTS]));
        &SET
    }
}

impl Validate for EventType {
    /// Knative's v1beta3 `EventTypeSpec.Validate`: the attributes define `type`, `source`,
    /// `specversion` and `id`; the reference, when set, is valid.
    fn validate(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        let missing: Vec<&str> = ["type", "source", "specversion", "id"]
            .into_iter()
            .filter(|name| !spec.attributes.iter().any(|a| a.name == *name))
            .collect();
        let mut errs = FieldError::default();
        if !missing.is_empty() {
            errs = errs.also(FieldError::err_missing_field(missing).via_field("attributes"));
        }
        if let Some(reference) = &spec.reference {
            errs = errs.also(reference.validate().err().map(|e| e.via_field("reference")));
        }
        errs.via_field("spec").into_result()
    }
}

impl SetDefaults for EventType {
    /// The reference's namespace.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        if let Some(reference) = &mut self.spec.reference {
            reference.set_defaults(&namespace);
        }
    }
}
