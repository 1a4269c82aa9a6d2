//! Sequence: events pass through steps in order, each step's reply feeding the next.

use std::sync::LazyLock;

use knative_core::apis::{
    AddressStatus, ConditionSet, Destination, FieldError, KnativeObject, KnativeStatus, Status,
    ValidationOptions,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ChannelStatusRef, SubscriptionStatusRef};
use crate::apis::delivery::DeliverySpec;
use crate::apis::messaging::ChannelTemplateSpec;
use crate::apis::messaging::channel::validate_required_template;
use crate::apis::{Defaults, SetDefaults, Validate};

/// Condition: every channel of the Sequence is Ready.
pub const SEQUENCE_CONDITION_CHANNELS_READY: &str = "ChannelsReady";
/// Condition: every Subscription of the Sequence is Ready.
pub const SEQUENCE_CONDITION_SUBSCRIPTIONS_READY: &str = "SubscriptionsReady";
/// Condition: the Sequence has an address (its first channel's).
pub const SEQUENCE_CONDITION_ADDRESSABLE: &str = "Addressable";

/// The desired state of a Sequence (`flows.knative.dev/v1` Sequence).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "flows.knative.dev",
    version = "v1",
    kind = "Sequence",
    namespaced,
    status = "SequenceStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "flows",
    doc = "Sequence defines a sequence of Subscribers that will be wired in series through Channels and Subscriptions.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SequenceSpec {
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<SequenceStep>,
    /// The kind of channel to create between steps; defaulted to the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Where the last step's reply is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

/// One step of a Sequence: a destination, and how events are delivered to it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct SequenceStep {
    /// The step's destination.
    #[serde(flatten)]
    pub destination: Destination,
    /// How events are delivered to this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// The observed state of a Sequence.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SequenceStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,
    /// The Subscription of each step.
    #[serde(default)]
    pub subscription_statuses: Vec<SubscriptionStatusRef>,
    /// The channel in front of each step.
    #[serde(default)]
    pub channel_statuses: Vec<ChannelStatusRef>,
    /// The Sequence's address: its first channel's.
    #[serde(flatten)]
    pub address: AddressStatus,
}

impl KnativeStatus for SequenceStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Sequence {
    /// `Ready` from `ChannelsReady`, `SubscriptionsReady` and `Addressable`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                SEQUENCE_CONDITION_CHANNELS_READY,
                SEQUENCE_CONDITION_SUBSCRIPTIONS_READY,
                SEQUENCE_CONDITION_ADDRESSABLE,
            ])
        });
        &SET
    }
}

impl Validate for Sequence {
    /// Knative's `SequenceSpec.Validate`: at least one step, each a valid Destination with a
    /// valid delivery; a valid channel template (defaulting sets one); a valid reply.
    fn validate(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        let options = ValidationOptions {
            parent_namespace: self.metadata.namespace.clone().unwrap_or_default(),
            ..ValidationOptions::default()
        };
        let mut errs = FieldError::default();
        if spec.steps.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["steps"]));
        }
        for (i, step) in spec.steps.iter().enumerate() {
            let mut step_errs = step
                .destination
                .validate_with(&options)
                .err()
                .unwrap_or_default();
            if let Some(delivery) = &step.delivery {
                step_errs =
                    step_errs.also(delivery.validate().err().map(|e| e.via_field("delivery")));
            }
            errs = errs.also(step_errs.via_field_index("steps", i));
        }
        errs = errs.also(validate_required_template(spec.channel_template.as_ref()));
        if let Some(reply) = &spec.reply {
            errs = errs.also(
                reply
                    .validate_with(&options)
                    .err()
                    .map(|e| e.via_field("reply")),
            );
        }
        errs.via_field("spec").into_result()
    }
}

impl SetDefaults for Sequence {
    /// The cluster's default channel template and the namespaces of step and reply references.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec
            .channel_template
            .get_or_insert_with(ChannelTemplateSpec::in_memory);
        for step in &mut self.spec.steps {
            step.destination.set_defaults(&namespace);
            if let Some(delivery) = &mut step.delivery {
                delivery.set_defaults(&namespace);
            }
        }
        if let Some(reply) = &mut self.spec.reply {
            reply.set_defaults(&namespace);
        }
    }
}
