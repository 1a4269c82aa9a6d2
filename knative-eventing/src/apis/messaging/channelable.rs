//! The Channelable duck type: what every channel implementation's spec and status embed
//! (`eventingduckv1.ChannelableSpec` / `ChannelableStatus`).

use knative_core::apis::{AddressStatus, FieldError, Status};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::delivery::{DeliverySpec, DeliveryStatus};

/// The spec every channel embeds: its subscribers and default delivery.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelableSpec {
    /// The subscriptions of this channel, maintained by the Subscription reconciler.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberSpec>,
    /// How events are delivered to subscribers that do not say otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// One subscriber of a channel, resolved: where to send, where to send replies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberSpec {
    /// The UID of the Subscription this entry stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The generation of that Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Where events are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// The CA certificates of the subscriber.
    #[serde(
        rename = "subscriberCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    /// The OIDC audience of the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    /// Where the subscriber's replies are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
    /// The CA certificates of the reply destination.
    #[serde(
        rename = "replyCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reply_ca_certs: Option<String>,
    /// The OIDC audience of the reply destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_audience: Option<String>,
    /// How events are delivered to this subscriber (dead-letter sink resolved to a URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// The name of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The status every channel embeds.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ChannelableStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,
    /// Where events are sent to the channel.
    #[serde(flatten)]
    pub address: AddressStatus,
    /// The state of each subscriber as the dispatcher sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberStatus>,
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
}

/// The state of one subscriber of a channel.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberStatus {
    /// The UID of the Subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The generation of the Subscription the dispatcher acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `True` once the dispatcher delivers to this subscriber.
    #[serde(default)]
    pub ready: String,
    /// A human-readable message when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ChannelableSpec {
    /// Each subscriber needs a subscriber or a reply URI; the delivery spec is valid (paths
    /// relative to the spec).
    pub(crate) fn validate_fields(&self) -> FieldError {
        let mut errs = FieldError::default();
        for (i, subscriber) in self.subscribers.iter().enumerate() {
            if subscriber.subscriber_uri.is_none() && subscriber.reply_uri.is_none() {
                errs = errs.also(
                    FieldError::err_missing_field(["replyUri", "subscriberUri"])
                        .with_details("expected at least one of, got none")
                        .via_field_index("subscribers", i),
                );
            }
        }
        if let Some(delivery) = &self.delivery {
            errs = errs.also(delivery.validate().err().map(|e| e.via_field("delivery")));
        }
        errs
    }
}
