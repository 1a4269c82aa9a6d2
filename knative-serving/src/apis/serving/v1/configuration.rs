//! Configuration: the floating head of a linear history of Revisions.

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RevisionTemplateSpec;
use crate::apis::serving::{self, metadata};
use crate::apis::{Defaults, SetDefaults, Validate};

/// The desired state of a Configuration: the template each new Revision is stamped out from
/// (`serving.knative.dev/v1` Configuration).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Configuration",
    namespaced,
    status = "ConfigurationStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "config",
    shortname = "cfg",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Configuration represents the \"floating HEAD\" of a linear history of Revisions. Users create new Revisions by updating the Configuration's spec. The \"latest created\" revision's name is available under status, as is the \"latest ready\" revision's name.",
    printcolumn = r#"{"name": "LatestCreated", "type": "string", "jsonPath": ".status.latestCreatedRevisionName"}"#,
    printcolumn = r#"{"name": "LatestReady", "type": "string", "jsonPath": ".status.latestReadyRevisionName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
pub struct ConfigurationSpec {
    /// The specification of the next Revision to stamp out.
    #[serde(default, skip_serializing_if = "is_default")]
    pub template: RevisionTemplateSpec,
}

/// The fields of a Configuration's status that a Service's status inlines too.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatusFields {
    /// The latest Revision stamped out from this Configuration whose `Ready` became `True`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,

    /// The latest Revision stamped out from this Configuration, ready or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
}

/// The observed state of a Configuration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ConfigurationStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// The latest created and latest ready Revisions.
    #[serde(flatten)]
    pub configuration: ConfigurationStatusFields,
}

impl KnativeStatus for ConfigurationStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Configuration {
    /// `Ready` alone: it mirrors the latest created Revision's readiness.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| ConditionSet::living(&[]));
        &SET
    }
}

impl Validate for Configuration {
    /// Knative's `Configuration.Validate` on create: metadata (name, labels, no autoscaling
    /// annotations) and the template.
    fn validate_with(&self, defaults: &Defaults) -> Result<(), FieldError> {
        metadata::validate_object_metadata(&self.metadata, false, defaults)
            .also(validate_labels(&self.metadata).via_field("labels"))
            .via_field("metadata")
            .also(
                self.spec
                    .validate_in(&self.metadata, defaults)
                    .via_field("spec"),
            )
            .into_result()
    }
}

impl SetDefaults for Configuration {
    fn set_defaults(&mut self, defaults: &Defaults) {
        self.spec.template.set_defaults(defaults);
    }
}

impl ConfigurationSpec {
    /// Knative's `ConfigurationSpec.Validate` inside the resource whose metadata is `parent`.
    pub(crate) fn validate_in(&self, parent: &ObjectMeta, defaults: &Defaults) -> FieldError {
        self.template
            .validate_in(parent, defaults)
            .via_field("template")
    }
}

/// Knative's `Configuration.validateLabels`: known `serving.knative.dev/*` labels only, and the
/// service label names an owner.
fn validate_labels(meta: &ObjectMeta) -> FieldError {
    let mut errs = FieldError::default();
    for (key, value) in meta.labels.iter().flatten() {
        match key.as_str() {
            serving::ROUTE_LABEL_KEY | serving::VISIBILITY_LABEL_KEY_OBSOLETE => {}
            serving::SERVICE_LABEL_KEY => {
                errs = errs.also(metadata::verify_label_owner_ref(
                    meta, value, key, "Service",
                ))
            }
            _ if key.starts_with(metadata::GROUP_NAME_PREFIX) => {
                errs = errs.also(FieldError::err_invalid_key_name(key, ""))
            }
            _ => {}
        }
    }
    errs
}

fn is_default(template: &RevisionTemplateSpec) -> bool {
    *template == RevisionTemplateSpec::default()
}
