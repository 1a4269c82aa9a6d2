//! InMemoryChannel: a best-effort channel whose dispatcher keeps events in memory.

use std::sync::LazyLock;

use knative_core::apis::{ConditionSet, FieldError, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::channelable::{ChannelableSpec, ChannelableStatus};
use crate::apis::{Defaults, SetDefaults, Validate};

/// Condition: the Kubernetes Service that addresses the channel exists.
pub const IMC_CONDITION_SERVICE_READY: &str = "ChannelServiceReady";
/// Condition: the channel has an address.
pub const IMC_CONDITION_ADDRESSABLE: &str = "Addressable";
/// Condition: the dead-letter sink, if any, resolved to a URI.
pub const IMC_CONDITION_DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";

/// The desired state of an InMemoryChannel (`messaging.knative.dev/v1` InMemoryChannel).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "InMemoryChannel",
    namespaced,
    status = "InMemoryChannelStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "imc",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    doc = "InMemoryChannel is a resource representing an in memory channel",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
pub struct InMemoryChannelSpec {
    /// Subscribers and delivery.
    #[serde(flatten)]
    pub channelable: ChannelableSpec,
}

/// The observed state of an InMemoryChannel.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct InMemoryChannelStatus {
    /// Conditions, address, subscribers and dead-letter sink.
    #[serde(flatten)]
    pub channelable: ChannelableStatus,
}

impl KnativeStatus for InMemoryChannelStatus {
    fn duck(&self) -> &Status {
        &self.channelable.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.channelable.status
    }
}

impl KnativeObject for InMemoryChannel {
    /// `Ready` from `ChannelServiceReady`, `Addressable` and `DeadLetterSinkResolved`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                IMC_CONDITION_SERVICE_READY,
                IMC_CONDITION_ADDRESSABLE,
                IMC_CONDITION_DEAD_LETTER_SINK_RESOLVED,
            ])
        });
        &SET
    }
}

impl Validate for InMemoryChannel {
    /// Knative's `InMemoryChannel.Validate`: every subscriber has a subscriber or reply URI,
    /// the delivery spec is valid.
    fn validate(&self) -> Result<(), FieldError> {
        self.spec
            .channelable
            .validate_fields()
            .via_field("spec")
            .into_result()
    }
}

impl SetDefaults for InMemoryChannel {
    /// The dead-letter sink's namespace.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        if let Some(delivery) = &mut self.spec.channelable.delivery {
            delivery.set_defaults(&namespace);
        }
    }
}
