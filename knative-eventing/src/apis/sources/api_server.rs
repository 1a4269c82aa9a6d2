//! ApiServerSource: turns Kubernetes API events into CloudEvents.

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, SourceSpec, SourceStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ping::validate_sink;
use super::{SOURCE_CONDITION_DEPLOYED, SOURCE_CONDITION_SINK_PROVIDED};
use crate::apis::eventing::SubscriptionsAPIFilter;
use crate::apis::{Defaults, SetDefaults, Validate, schema};

/// `mode: Reference`: events carry a reference to the changed object.
pub const MODE_REFERENCE: &str = "Reference";
/// `mode: Resource`: events carry the changed object.
pub const MODE_RESOURCE: &str = "Resource";

/// The desired state of an ApiServerSource (`sources.knative.dev/v1` ApiServerSource).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sources.knative.dev",
    version = "v1",
    kind = "ApiServerSource",
    namespaced,
    status = "SourceStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "sources",
    doc = "ApiServerSource is an event source that brings Kubernetes API server events into Knative.",
    printcolumn = r#"{"name": "Sink", "type": "string", "jsonPath": ".status.sinkUri"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiServerSourceSpec {
    /// Where events go, and overrides of their attributes.
    #[serde(flatten)]
    pub source: SourceSpec,
    /// The kinds of resource to watch.
    #[serde(default)]
    pub resources: Vec<APIVersionKindSelector>,
    /// Only objects controlled by an owner of this kind.
    #[serde(rename = "owner", default, skip_serializing_if = "Option::is_none")]
    pub resource_owner: Option<APIVersionKind>,
    /// `Reference` (default) or `Resource`.
    #[serde(rename = "mode", default, skip_serializing_if = "String::is_empty")]
    pub event_mode: String,
    /// The service account the adapter watches with; defaulted to `default`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Which namespaces to watch; the source's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub namespace_selector: Option<LabelSelector>,
    /// Filters on the produced events, in the subscriptions-API dialects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::subscriptions_api_filters")]
    pub filters: Vec<SubscriptionsAPIFilter>,
}

/// A kind of resource.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct APIVersionKind {
    /// API version, e.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Kind, e.g. `Deployment`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// A kind of resource, optionally narrowed by labels.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct APIVersionKindSelector {
    /// API version, e.g. `v1`.
    #[serde(default)]
    pub api_version: String,
    /// Kind, e.g. `Event`.
    #[serde(default)]
    pub kind: String,
    /// Only objects with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub selector: Option<LabelSelector>,
}

impl KnativeObject for ApiServerSource {
    /// `Ready` from `SinkProvided` and `Deployed`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[SOURCE_CONDITION_SINK_PROVIDED, SOURCE_CONDITION_DEPLOYED])
        });
        &SET
    }
}

/// Kubernetes' `schema.ParseGroupVersion`: `version` or `group/version`, nothing more.
fn is_group_version(api_version: &str) -> bool {
    let parts: Vec<&str> = api_version.split('/').collect();
    match parts.as_slice() {
        [version] => !version.is_empty(),
        [group, version] => !group.is_empty() && !version.is_empty(),
        _ => false,
    }
}

impl Validate for ApiServerSource {
    /// Knative's `ApiServerSourceSpec.Validate`: mode `Reference` or `Resource`, a valid sink,
    /// at least one resource with a valid `apiVersion` and a `kind`, a valid owner, valid
    /// `ceOverrides` and filters.
    fn validate(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        let mut errs = FieldError::default();
        if spec.event_mode != MODE_REFERENCE && spec.event_mode != MODE_RESOURCE {
            errs = errs.also(FieldError::err_invalid_value(&spec.event_mode, "mode"));
        }
        errs = errs.also(validate_sink(&spec.source, &self.metadata.namespace));
        if spec.resources.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["resources"]));
        }
        for (i, resource) in spec.resources.iter().enumerate() {
            errs = errs.also(
                validate_kind(&resource.api_version, &resource.kind)
                    .via_field_index("resources", i),
            );
        }
        if let Some(owner) = &spec.resource_owner {
            errs = errs.also(validate_kind(&owner.api_version, &owner.kind).via_field("owner"));
        }
        for (i, filter) in spec.filters.iter().enumerate() {
            errs = errs.also(
                filter
                    .validate()
                    .err()
                    .map(|e| e.via_field_index("filters", i)),
            );
        }
        errs.via_field("spec").into_result()
    }
}

fn validate_kind(api_version: &str, kind: &str) -> FieldError {
    let mut errs = FieldError::default();
    if !is_group_version(api_version) {
        errs = errs.also(FieldError::err_invalid_value(
            format!("unexpected GroupVersion string: {api_version}"),
            "apiVersion",
        ));
    }
    if kind.trim().is_empty() {
        errs = errs.also(FieldError::err_missing_field(["kind"]));
    }
    errs
}

impl SetDefaults for ApiServerSource {
    /// Knative's `ApiServerSource.SetDefaults`: mode `Reference`, service account `default`,
    /// the sink's namespace.
    fn set_defaults(&mut self, _: &Defaults) {
        if self.spec.event_mode.is_empty() {
            self.spec.event_mode = MODE_REFERENCE.to_owned();
        }
        if self.spec.service_account_name.is_empty() {
            self.spec.service_account_name = "default".to_owned();
        }
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec.source.sink.set_defaults(&namespace);
    }
}
