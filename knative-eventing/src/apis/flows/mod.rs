//! `flows.knative.dev/v1`: [`Sequence`] and [`Parallel`], built from Channels and
//! Subscriptions.
//!
//! A Sequence sends each event through its steps in order, each step's reply becoming the next
//! step's input; a Parallel sends each event to every branch whose filter accepts it.

pub mod parallel;
pub mod sequence;

use knative_core::apis::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use parallel::{Parallel, ParallelBranch, ParallelBranchStatus, ParallelSpec, ParallelStatus};
pub use sequence::{Sequence, SequenceSpec, SequenceStatus, SequenceStep};

/// A reference to a Kubernetes object, as flows' statuses report their children
/// (`corev1.ObjectReference`, the fields Knative sets).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Kind of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The state of a channel a flow created.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ChannelStatusRef {
    /// The channel.
    #[serde(default)]
    pub channel: ObjectReference,
    /// Its Ready condition, once observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Condition>,
}

/// The state of a Subscription a flow created.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct SubscriptionStatusRef {
    /// The Subscription.
    #[serde(default)]
    pub subscription: ObjectReference,
    /// Its Ready condition, once observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Condition>,
}
