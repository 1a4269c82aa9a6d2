//! ServerlessService: a Revision's Kubernetes Services, pointed at its pods or the activator.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::ObjectReference;
use knative_core::apis::{ConditionSet, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::networking::ProtocolType;

/// Condition: the Revision's Kubernetes Service has endpoints.
pub const SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED: &str = "EndpointsPopulated";
/// Informational condition: the activator is on the request path.
pub const SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED: &str =
    "ActivatorEndpointsPopulated";

/// The desired state of a ServerlessService (`networking.internal.knative.dev/v1alpha1`).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.internal.knative.dev",
    version = "v1alpha1",
    kind = "ServerlessService",
    namespaced,
    status = "ServerlessServiceStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "sks",
    category = "knative-internal",
    category = "networking",
    doc = "ServerlessService is a proxy for the K8s service objects containing the endpoints for the revision, whether those are endpoints of the activator or revision pods.",
    printcolumn = r#"{"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}"#,
    printcolumn = r#"{"name": "Activators", "type": "integer", "jsonPath": ".spec.numActivators"}"#,
    printcolumn = r#"{"name": "ServiceName", "type": "string", "jsonPath": ".status.serviceName"}"#,
    printcolumn = r#"{"name": "PrivateServiceName", "type": "string", "jsonPath": ".status.privateServiceName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessServiceSpec {
    /// Who receives the Revision's traffic: its pods (`Serve`) or the activator (`Proxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerlessServiceOperationMode>,

    /// The resource (the Revision's Deployment) whose pods this makes "serverless".
    pub object_ref: ObjectReference,

    /// The application-layer protocol of the Revision.
    pub protocol_type: ProtocolType,

    /// How many activators to put in front of the Revision in `Proxy` mode (0: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_activators: Option<i32>,
}

/// Who receives a Revision's traffic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerlessServiceOperationMode {
    /// The Revision's pods.
    Serve,
    /// The activator, which buffers requests while the Revision scales.
    Proxy,
}

/// The observed state of a ServerlessService.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessServiceStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// The Kubernetes Service that balances over the pods currently on the request path
    /// (the Revision's or the activator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,

    /// The Kubernetes Service that balances over the Revision's own pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_service_name: Option<String>,
}

impl KnativeStatus for ServerlessServiceStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for ServerlessService {
    /// `Ready` from `EndpointsPopulated`; `ActivatorEndpointsPopulated` is informational.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED])
        });
        &SET
    }
}
