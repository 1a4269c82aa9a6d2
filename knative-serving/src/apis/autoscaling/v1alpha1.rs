//! `autoscaling.internal.knative.dev/v1alpha1`: [`PodAutoscaler`], the internal resource
//! through which a Revision asks an autoscaler (of the class its annotations name) to scale it.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::ObjectReference;
use knative_core::apis::{ConditionSet, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::networking::ProtocolType;

/// Condition: the scale target receives traffic (has pods); False once scaled to zero.
pub const POD_AUTOSCALER_CONDITION_ACTIVE: &str = "Active";
/// Condition: the scale target reached its initial scale.
pub const POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED: &str = "ScaleTargetInitialized";
/// Condition: the PodAutoscaler's ServerlessService is ready.
pub const POD_AUTOSCALER_CONDITION_SKS_READY: &str = "SKSReady";

/// The desired state of a PodAutoscaler (`autoscaling.internal.knative.dev/v1alpha1`).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "autoscaling.internal.knative.dev",
    version = "v1alpha1",
    kind = "PodAutoscaler",
    namespaced,
    status = "PodAutoscalerStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "kpa",
    shortname = "pa",
    category = "knative-internal",
    category = "autoscaling",
    doc = "PodAutoscaler is a Knative abstraction that encapsulates the interface by which Knative components instantiate autoscalers. This definition is an abstraction that may be backed by multiple definitions.",
    printcolumn = r#"{"name": "DesiredScale", "type": "integer", "jsonPath": ".status.desiredScale"}"#,
    printcolumn = r#"{"name": "ActualScale", "type": "integer", "jsonPath": ".status.actualScale"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PodAutoscalerSpec {
    /// The Revision's hard limit of concurrent requests per pod (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,

    /// The `/scale`-able resource (the Revision's Deployment) this PodAutoscaler sizes.
    pub scale_target_ref: ObjectReference,

    /// Whether the scale target is reachable, i.e. has a Route sending it traffic.
    #[serde(default, skip_serializing_if = "Reachability::is_unknown")]
    pub reachability: Reachability,

    /// The application-layer protocol of the Revision.
    pub protocol_type: ProtocolType,
}

/// Whether a PodAutoscaler's scale target can be reached through a Route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reachability {
    /// Not known, e.g. while the Revision is activating (the empty string).
    #[default]
    #[serde(rename = "")]
    Unknown,
    /// A Route sends it traffic.
    Reachable,
    /// No Route sends it traffic: it may scale below its minimum.
    Unreachable,
}

impl Reachability {
    /// Whether this is [`Reachability::Unknown`] (serialised by omission).
    pub fn is_unknown(&self) -> bool {
        *self == Reachability::Unknown
    }
}

/// The observed state of a PodAutoscaler.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodAutoscalerStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// The Kubernetes Service that serves the Revision, owned by the PodAutoscaler's
    /// ServerlessService.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,

    /// The Kubernetes Service that exposes the Revision's metrics.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metrics_service_name: String,

    /// The number of replicas the autoscaler wants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_scale: Option<i32>,

    /// The number of replicas there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_scale: Option<i32>,
}

impl KnativeStatus for PodAutoscalerStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for PodAutoscaler {
    /// `Ready` from `Active`, `ScaleTargetInitialized` and `SKSReady`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                POD_AUTOSCALER_CONDITION_ACTIVE,
                POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED,
                POD_AUTOSCALER_CONDITION_SKS_READY,
            ])
        });
        &SET
    }
}
