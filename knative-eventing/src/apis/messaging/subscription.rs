//! Subscription: delivers a channel's events to a subscriber, and its replies onwards.

use std::sync::LazyLock;

use knative_core::apis::{
    AuthStatus, ConditionSet, Destination, FieldError, KReference, KnativeObject, KnativeStatus,
    Status, ValidationOptions,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::delivery::{DeliverySpec, DeliveryStatus};
use crate::apis::{Defaults, SetDefaults, Validate};

/// Condition: the channel, subscriber and reply resolved.
pub const SUBSCRIPTION_CONDITION_REFERENCES_RESOLVED: &str = "ReferencesResolved";
/// Condition: the subscriber is listed in the channel's `spec.subscribers`.
pub const SUBSCRIPTION_CONDITION_ADDED_TO_CHANNEL: &str = "AddedToChannel";
/// Condition: the channel reports this subscriber ready.
pub const SUBSCRIPTION_CONDITION_CHANNEL_READY: &str = "ChannelReady";

/// The desired state of a Subscription (`messaging.knative.dev/v1` Subscription).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "messaging.knative.dev",
    version = "v1",
    kind = "Subscription",
    namespaced,
    status = "SubscriptionStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "sub",
    category = "all",
    category = "knative",
    category = "messaging",
    doc = "Subscription routes events received on a Channel to a DNS name and corresponds to the subscriptions.channels.knative.dev CRD.",
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// The channel to subscribe to (in the Subscription's namespace).
    #[serde(default)]
    pub channel: KReference,
    /// Where the channel's events are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<Destination>,
    /// Where the subscriber's replies are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    /// How events are delivered to the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// The observed state of a Subscription.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,
    /// The resolved URIs of the subscriber, the reply and the dead-letter sink.
    #[serde(default)]
    pub physical_subscription: PhysicalSubscription,
    /// The service account generated for OIDC authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

/// A Subscription resolved to URIs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalSubscription {
    /// The resolved subscriber URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// The resolved reply URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
}

impl KnativeStatus for SubscriptionStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Subscription {
    /// `Ready` from `ReferencesResolved`, `AddedToChannel` and `ChannelReady`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                SUBSCRIPTION_CONDITION_REFERENCES_RESOLVED,
                SUBSCRIPTION_CONDITION_ADDED_TO_CHANNEL,
                SUBSCRIPTION_CONDITION_CHANNEL_READY,
            ])
        });
        &SET
    }
}

fn is_empty(destination: Option<&Destination>) -> bool {
    destination.is_none_or(|d| d.ref_.is_none() && d.uri.as_deref().unwrap_or_default().is_empty())
}

impl Validate for Subscription {
    /// Knative's `SubscriptionSpec.Validate`: a channel (name, kind, apiVersion, no
    /// namespace), a subscriber or a reply, each a valid Destination, a valid delivery spec.
    fn validate(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        let channel = &spec.channel;
        if channel.name.is_empty() && channel.kind.is_empty() && channel.api_version.is_empty() {
            return Err(FieldError::err_missing_field(["channel"])
                .with_details("the Subscription must reference a channel")
                .via_field("spec"));
        }
        let mut errs = FieldError::default();
        let mut channel_errs = channel.validate().err().unwrap_or_default();
        if !channel.namespace.is_empty() {
            channel_errs = channel_errs.also(FieldError::err_disallowed_fields(["namespace"]));
        }
        errs = errs.also(channel_errs.via_field("channel"));
        let options = ValidationOptions {
            parent_namespace: self.metadata.namespace.clone().unwrap_or_default(),
            ..ValidationOptions::default()
        };
        let (no_subscriber, no_reply) = (
            is_empty(spec.subscriber.as_ref()),
            is_empty(spec.reply.as_ref()),
        );
        if no_subscriber && no_reply {
            errs = errs.also(
                FieldError::err_missing_field(["reply", "subscriber"]).with_details(
                    "the Subscription must reference at least one of (reply or a subscriber)",
                ),
            );
        }
        for (field, destination, empty) in [
            ("subscriber", &spec.subscriber, no_subscriber),
            ("reply", &spec.reply, no_reply),
        ] {
            if let Some(d) = destination.as_ref().filter(|_| !empty) {
                errs = errs.also(d.validate_with(&options).err().map(|e| e.via_field(field)));
            }
        }
        if let Some(delivery) = &spec.delivery {
            errs = errs.also(delivery.validate().err().map(|e| e.via_field("delivery")));
        }
        errs.via_field("spec").into_result()
    }
}

impl SetDefaults for Subscription {
    /// The namespaces of the subscriber, reply and dead-letter sink references.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        for d in [&mut self.spec.subscriber, &mut self.spec.reply]
            .into_iter()
            .flatten()
        {
            d.set_defaults(&namespace);
        }
        if let Some(delivery) = &mut self.spec.delivery {
            delivery.set_defaults(&namespace);
        }
    }
}
