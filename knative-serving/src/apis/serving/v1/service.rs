//! Service: a Configuration and a Route managed as one network service.

use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::route::TrafficParent;
use super::{ConfigurationSpec, ConfigurationStatusFields, RouteSpec, RouteStatusFields};
use crate::apis::serving::{self, metadata};
use crate::apis::{Defaults, SetDefaults, Validate};

/// Condition: the Service's Configuration is ready.
pub const SERVICE_CONDITION_CONFIGURATIONS_READY: &str = "ConfigurationsReady";
/// Condition: the Service's Route is ready.
pub const SERVICE_CONDITION_ROUTES_READY: &str = "RoutesReady";

/// The desired state of a Service: a Configuration's template and a Route's traffic, in one
/// object (`serving.knative.dev/v1` Service).
///
/// On the wire both are inlined: `spec.template` and `spec.traffic`.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Service",
    namespaced,
    status = "ServiceStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "kservice",
    shortname = "ksvc",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Service acts as a top-level container that manages a Route and Configuration which implement a network service. Service exists to provide a singular abstraction which can be access controlled, reasoned about, and which encapsulates software lifecycle decisions such as rollout policy and team resource ownership. Service acts only as an orchestrator of the underlying Routes and Configurations (much as a kubernetes Deployment orchestrates ReplicaSets), and its usage is optional but recommended.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "LatestCreated", "type": "string", "jsonPath": ".status.latestCreatedRevisionName"}"#,
    printcolumn = r#"{"name": "LatestReady", "type": "string", "jsonPath": ".status.latestReadyRevisionName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
pub struct ServiceSpec {
    /// The template of the Service's Revisions (`spec.template`).
    #[serde(flatten)]
    pub configuration: ConfigurationSpec,

    /// The traffic split over the Service's Revisions (`spec.traffic`); targets name a
    /// Revision or, with no name, the Service's latest Revision.
    #[serde(flatten)]
    pub route: RouteSpec,
}

/// The observed state of a Service: its Configuration's and Route's, inlined.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ServiceStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// The latest created and latest ready Revisions.
    #[serde(flatten)]
    pub configuration: ConfigurationStatusFields,

    /// URL, address and traffic.
    #[serde(flatten)]
    pub route: RouteStatusFields,
}

impl KnativeStatus for ServiceStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Service {
    /// `Ready` from `ConfigurationsReady` and `RoutesReady`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                SERVICE_CONDITION_CONFIGURATIONS_READY,
                SERVICE_CONDITION_ROUTES_READY,
            ])
        });
        &SET
    }
}

impl Validate for Service {
    /// Knative's `Service.Validate` on create: metadata (name, labels, rollout duration; no
    /// autoscaling annotations), the template and the traffic.
    ///
    /// A Service without traffic is valid: defaulting sends all of it to the latest Revision.
    fn validate_with(&self, defaults: &Defaults) -> Result<(), FieldError> {
        let annotations = self.metadata.annotations.clone().unwrap_or_default();
        metadata::validate_object_metadata(&self.metadata, false, defaults)
            .also(validate_labels(&self.metadata).via_field("labels"))
            .also(
                metadata::validate_rollout_duration_annotation(&annotations)
                    .via_field("annotations"),
            )
            .via_field("metadata")
            .also(
                self.spec
                    .configuration
                    .validate_in(&self.metadata, defaults)
                    .also(self.spec.route.validate_in(TrafficParent::Service))
                    .via_field("spec"),
            )
            .into_result()
    }
}

impl SetDefaults for Service {
    /// Knative's `Service.SetDefaults`: the template's defaults, and traffic defaulted to 100%
    /// to the latest Revision.
    fn set_defaults(&mut self, defaults: &Defaults) {
        self.spec.configuration.template.set_defaults(defaults);
        self.spec.route.set_defaults_in(TrafficParent::Service);
    }
}

/// Knative's `Service.validateLabels`: the visibility label's value, and no
/// `serving.knative.dev/*` labels.
fn validate_labels(meta: &ObjectMeta) -> FieldError {
    let mut errs = FieldError::default();
    for (key, value) in meta.labels.iter().flatten() {
        if key == serving::VISIBILITY_LABEL_KEY {
            errs = errs.also(metadata::validate_cluster_visibility_label(value, key));
        } else if key.starts_with(metadata::GROUP_NAME_PREFIX) {
            errs = errs.also(FieldError::err_invalid_key_name(key, ""));
        }
    }
    errs
}
