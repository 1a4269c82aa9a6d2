//! Parallel: every event goes to each branch whose filter accepts it.

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

/// Condition: every channel of the Parallel is Ready.
pub const PARALLEL_CONDITION_CHANNELS_READY: &str = "ChannelsReady";
/// Condition: every Subscription of the Parallel is Ready.
pub const PARALLEL_CONDITION_SUBSCRIPTIONS_READY: &str = "SubscriptionsReady";
/// Condition: the Parallel has an address (its ingress channel's).
pub const PARALLEL_CONDITION_ADDRESSABLE: &str = "Addressable";

/// The desired state of a Parallel (`flows.knative.dev/v1` Parallel).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "flows.knative.dev",
    version = "v1",
    kind = "Parallel",
    namespaced,
    status = "ParallelStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "flows",
    doc = "Parallel defines conditional branches that will be wired in series through Channels and Subscriptions.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ParallelSpec {
    /// The branches.
    #[serde(default)]
    pub branches: Vec<ParallelBranch>,
    /// The kind of channel to create; defaulted to the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Option<ChannelTemplateSpec>,
    /// Where branch replies go when a branch has no `reply` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

/// One branch: an optional filter (whose reply, if any, is what the subscriber receives), a
/// subscriber, and where its reply goes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct ParallelBranch {
    /// Decides which events the branch's subscriber receives: those it replies with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Destination>,
    /// Where the branch's events are sent.
    #[serde(default)]
    pub subscriber: Destination,
    /// Where the subscriber's reply goes; the Parallel's `reply` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    /// How events are delivered to this branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// The observed state of a Parallel.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParallelStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,
    /// The channel every event enters through.
    #[serde(default)]
    pub ingress_channel_status: ChannelStatusRef,
    /// The channels and Subscriptions of each branch.
    #[serde(default)]
    pub branch_statuses: Vec<ParallelBranchStatus>,
    /// The Parallel's address: its ingress channel's.
    #[serde(flatten)]
    pub address: AddressStatus,
}

/// The children of one branch.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParallelBranchStatus {
    /// The Subscription from the ingress channel to the filter.
    #[serde(default)]
    pub filter_subscription_status: SubscriptionStatusRef,
    /// The channel between the filter and the subscriber.
    #[serde(default)]
    pub filter_channel_status: ChannelStatusRef,
    /// The Subscription from the filter channel to the subscriber.
    #[serde(rename = "subscriberSubscriptionStatus", default)]
    pub subscription_status: SubscriptionStatusRef,
}

impl KnativeStatus for ParallelStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Parallel {
    /// `Ready` from `ChannelsReady`, `SubscriptionsReady` and `Addressable`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                PARALLEL_CONDITION_CHANNELS_READY,
                PARALLEL_CONDITION_SUBSCRIPTIONS_READY,
                PARALLEL_CONDITION_ADDRESSABLE,
            ])
        });
        &SET
    }
}

impl Validate for Parallel {
    /// Knative's `ParallelSpec.Validate`: at least one branch, each with valid filter,
    /// subscriber, reply and delivery; a valid channel template; a valid reply.
    fn validate(&self) -> Result<(), FieldError> {
        let spec = &self.spec;
        let options = ValidationOptions {
            parent_namespace: self.metadata.namespace.clone().unwrap_or_default(),
            ..ValidationOptions::default()
        };
        let check = |d: &Destination, field: &str| {
            d.validate_with(&options).err().map(|e| e.via_field(field))
        };
        let mut errs = FieldError::default();
        if spec.branches.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["branches"]));
        }
        for (i, branch) in spec.branches.iter().enumerate() {
            let mut branch_errs = FieldError::default()
                .also(branch.filter.as_ref().and_then(|f| check(f, "filter")))
                .also(check(&branch.subscriber, "subscriber"))
                .also(branch.reply.as_ref().and_then(|r| check(r, "reply")));
            if let Some(delivery) = &branch.delivery {
                branch_errs =
                    branch_errs.also(delivery.validate().err().map(|e| e.via_field("delivery")));
            }
            errs = errs.also(branch_errs.via_field_index("branches", i));
        }
        errs = errs.also(validate_required_template(spec.channel_template.as_ref()));
        if let Some(reply) = &spec.reply {
            errs = errs.also(check(reply, "reply"));
        }
        errs.via_field("spec").into_result()
    }
}

impl SetDefaults for Parallel {
    /// The cluster's default channel template and the namespaces of every reference.
    fn set_defaults(&mut self, _: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        self.spec
            .channel_template
            .get_or_insert_with(ChannelTemplateSpec::in_memory);
        for branch in &mut self.spec.branches {
            for d in [&mut branch.filter, &mut branch.reply]
                .into_iter()
                .flatten()
            {
                d.set_defaults(&namespace);
            }
            branch.subscriber.set_defaults(&namespace);
            if let Some(delivery) = &mut branch.delivery {
                delivery.set_defaults(&namespace);
            }
        }
        if let Some(reply) = &mut self.spec.reply {
            reply.set_defaults(&namespace);
        }
    }
}
