//! Channel: a channel of whatever implementation the template (or the cluster's default) names,
//! backed by an object of that kind.

use std::sync::LazyLock;

use knative_core::apis::{
    ConditionSet, FieldError, KReference, KnativeObject, KnativeStatus, Status,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::channelable::{ChannelableSpec, ChannelableStatus};
use crate::apis::{Defaults, SetDefaults, Validate, schema};

/// Condition: the backing channel exists and is Ready.
pub const CHANNEL_CONDITION_BACKING_CHANNEL_READY: &str = "BackingChannelReady";
/// Condition: the Channel has an address.
pub const CHANNEL_CONDITION_ADDRESSABLE: &str = "Addressable";
/// Condition: the dead-letter sink, if any, resolved to a URI.
pub const CHANNEL_CONDITION_DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";

/// The desired state of a Channel (`messaging.knative.dev/v1` Channel).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "Channel",
    namespaced,
    status = "ChannelStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "ch",
    category = "all",
    category = "knative",
    category = "messaging",
    category = "channel",
    doc = "Channel represents a generic Channel. It is normally used when we want a Channel, but do not need a specific Channel implementation.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSpec {
    /// The kind (and spec) of the backing channel; defaulted to the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Subscribers (set on the backing channel, not here) and delivery.
    #[serde(flatten)]
    pub channelable: ChannelableSpec,
}

/// The kind of channel to create, and its spec.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelTemplateSpec {
    /// The API version of the channel kind, e.g. `messaging.knative.dev/v1`.
    #[serde(default)]
    pub api_version: String,
    /// The channel kind, e.g. `InMemoryChannel`.
    #[serde(default)]
    pub kind: String,
    /// The spec of the channel to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub spec: Option<serde_json::Value>,
}

/// The observed state of a Channel.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ChannelStatus {
    /// Conditions, address, subscribers and dead-letter sink.
    #[serde(flatten)]
    pub channelable: ChannelableStatus,
    /// The backing channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<KReference>,
}

impl KnativeStatus for ChannelStatus {
    fn duck(&self) -> &Status {
        &self.channelable.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.channelable.status
    }
}

impl KnativeObject for Channel {
    /// `Ready` from `BackingChannelReady`, `Addressable` and `DeadLetterSinkResolved`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                CHANNEL_CONDITION_BACKING_CHANNEL_READY,
                CHANNEL_CONDITION_ADDRESSABLE,
                CHANNEL_CONDITION_DEAD_LETTER_SINK_RESOLVED,
            ])
        });
        &SET
    }
}

impl ChannelTemplateSpec {
    /// The cluster's default channel: `messaging.knative.dev/v1` InMemoryChannel.
    pub fn in_memory() -> Self {
        ChannelTemplateSpec {
            api_version: "messaging.knative.dev/v1".to_owned(),
            kind: "InMemoryChannel".to_owned(),
            spec: None,
        }
    }

    /// `IsValidChannelTemplate`: `kind` and `apiVersion` are required (paths relative to the
    /// template).
    pub fn validate(&self) -> Result<(), FieldError> {
        let mut errs = FieldError::default();
        if self.kind.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["kind"]));
        }
        if self.api_version.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["apiVersion"]));
        }
        errs.into_result()
    }
}

/// A channel template that is required: missing, or invalid (paths relative to the parent).
pub(crate) fn validate_required_template(template: Option<&ChannelTemplateSpec>) -> FieldError {
    match template {
        None => FieldError::err_missing_field(["channelTemplate"]),
        Some(t) => t
            .validate()
            .err()
            .unwrap_or_default()
            .via_field("channelTemplate"),
    }
}

impl Validate for Channel {
    /// Knative's `Channel.Validate`: a valid template (defaulting sets one), no subscribers
    /// (they belong to the backing channel), a valid delivery spec.
    fn validate(&self) -> Result<(), FieldError> {
        let mut errs = validate_required_template(self.spec.channel_template.as_ref());
        if !self.spec.channelable.subscribers.is_empty() {
            errs = errs.also(FieldError::err_disallowed_fields(["subscribers"]));
        }
        if let Some(delivery) = &self.spec.channelable.delivery {
            errs = errs.also(delivery.validate().err().map(|e| e.via_field("delivery")));
        }
        errs.via_field("spec").into_result()
    }
}

impl SetDefaults for Channel {
    /// The cluster's default channel template (InMemoryChannel) and the dead-letter sink's
    /// namespace.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec
            .channel_template
            .get_or_insert_with(ChannelTemplateSpec::in_memory);
        if let Some(delivery) = &mut self.spec.channelable.delivery {
            delivery.set_defaults(&namespace);
        }
    }
}
