//! The Sequence and Parallel reconcilers (Knative's `pkg/reconciler/sequence` and
//! `pkg/reconciler/parallel`), wiring channels of the flow's template kind and Subscriptions
//! exactly as Knative names and connects them:
//!
//! - Sequence `s` with steps 0..n: channel `s-kn-sequence-<i>` in front of each step, and
//!   Subscription `s-kn-sequence-<i>` from channel i to step i, replying to channel i+1 (the
//!   last one to the Sequence's `reply`). The Sequence's address is channel 0's.
//! - Parallel `p` with branches 0..n: ingress channel `p-kn-parallel`; per branch, channel
//!   `p-kn-parallel-<i>`, Subscription `p-kn-parallel-filter-<i>` from the ingress channel to
//!   the branch's filter replying to that channel, and Subscription `p-kn-parallel-<i>` from it
//!   to the branch's subscriber replying to the branch's (else the Parallel's) `reply`. The
//!   Parallel's address is the ingress channel's.
//!
//! Every child is controlled by the flow; children of removed steps or branches are deleted.
//! `ChannelsReady` and `SubscriptionsReady` are True when all of them are Ready.

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{
    Addressable, Condition, ConditionStatus, Destination, KReference, KnativeObject,
};
use knative_core::reconciler::{Context, ReconcileError, Reconciler};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::apis::delivery::DeliverySpec;
use crate::apis::flows::parallel::{
    PARALLEL_CONDITION_ADDRESSABLE, PARALLEL_CONDITION_CHANNELS_READY,
    PARALLEL_CONDITION_SUBSCRIPTIONS_READY,
};
use crate::apis::flows::sequence::{
    SEQUENCE_CONDITION_ADDRESSABLE, SEQUENCE_CONDITION_CHANNELS_READY,
    SEQUENCE_CONDITION_SUBSCRIPTIONS_READY,
};
use crate::apis::flows::{
    ChannelStatusRef, ObjectReference, ParallelBranchStatus, SubscriptionStatusRef,
};
use crate::apis::messaging::ChannelTemplateSpec;
use crate::apis::{Parallel, Sequence, Subscription, SubscriptionSpec};
use crate::reconciler::{
    address_url, api_resource, controller_ref, dynamic_object, is_controlled_by, kreference,
    ready_status, reconcile_child,
};

/// The name of the channel in front of step `i` of Sequence `sequence`.
pub fn sequence_channel_name(sequence: &str, i: usize) -> String {
    format!("{sequence}-kn-sequence-{i}")
}

/// The name of the Subscription of step `i` of Sequence `sequence`.
pub fn sequence_subscription_name(sequence: &str, i: usize) -> String {
    format!("{sequence}-kn-sequence-{i}")
}

/// The name of the ingress channel of Parallel `parallel`.
pub fn parallel_channel_name(parallel: &str) -> String {
    format!("{parallel}-kn-parallel")
}

/// The name of the channel of branch `i` of Parallel `parallel`.
pub fn parallel_branch_channel_name(parallel: &str, i: usize) -> String {
    format!("{parallel}-kn-parallel-{i}")
}

/// The name of the filter Subscription of branch `i`.
pub fn parallel_filter_subscription_name(parallel: &str, i: usize) -> String {
    format!("{parallel}-kn-parallel-filter-{i}")
}

/// The name of the subscriber Subscription of branch `i`.
pub fn parallel_subscription_name(parallel: &str, i: usize) -> String {
    format!("{parallel}-kn-parallel-{i}")
}

/// What a flow is made of: the channels' kind, the owner, the namespace.
struct Wiring<'a> {
    ctx: &'a Context,
    namespace: String,
    resource: ApiResource,
    template: ChannelTemplateSpec,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    owner_uid: Option<String>,
}

impl Wiring<'_> {
    async fn channel(
        &self,
        name: &str,
    ) -> Result<(ChannelStatusRef, Option<String>), ReconcileError> {
        let mut desired = dynamic_object(&self.resource, &self.namespace, name);
        desired.metadata.owner_references = Some(vec![self.owner.clone()]);
        desired.data = json!({ "spec": self.template.spec.clone().unwrap_or_else(|| json!({})) });
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client().clone(), &self.namespace, &self.resource);
        let channel = reconcile_child(
            &api,
            desired,
            self.owner_uid.as_deref(),
            |existing, desired| {
                // Keep the subscribers the Subscription reconciler writes.
                let mut spec = desired.data["spec"].clone();
                if let (Some(map), Some(subs)) = (
                    spec.as_object_mut(),
                    existing.data.pointer("/spec/subscribers"),
                ) {
                    map.insert("subscribers".to_owned(), subs.clone());
                }
                if existing.data.get("spec") == Some(&spec) {
                    return false;
                }
                existing.data["spec"] = spec;
                true
            },
        )
        .await?;
        let status = ChannelStatusRef {
            channel: ObjectReference {
                api_version: self.resource.api_version.clone(),
                kind: self.resource.kind.clone(),
                name: name.to_owned(),
                namespace: self.namespace.clone(),
            },
            ready: ready_condition(ready_status(&channel.data)),
        };
        Ok((status, address_url(&channel.data)))
    }

    fn channel_ref(&self, name: &str) -> KReference {
        let mut reference = kreference(&self.resource, &self.namespace, name);
        // Subscriptions may not name a namespace.
        reference.namespace.clear();
        reference
    }

    async fn subscription(
        &self,
        name: &str,
        channel: &str,
        subscriber: Option<Destination>,
        reply: Option<Destination>,
        delivery: Option<DeliverySpec>,
    ) -> Result<SubscriptionStatusRef, ReconcileError> {
        let desired = Subscription {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace.clone()),
                owner_references: Some(vec![self.owner.clone()]),
                ..ObjectMeta::default()
            },
            spec: SubscriptionSpec {
                channel: self.channel_ref(channel),
                subscriber,
                reply,
                delivery,
            },
            status: None,
        };
        let api: Api<Subscription> = Api::namespaced(self.ctx.client().clone(), &self.namespace);
        let sub = reconcile_child(
            &api,
            desired,
            self.owner_uid.as_deref(),
            |existing, desired| {
                if existing.spec == desired.spec {
                    return false;
                }
                existing.spec = desired.spec.clone();
                true
            },
        )
        .await?;
        let ready = sub
            .status
            .as_ref()
            .and_then(|s| s.status.get_condition(knative_core::apis::CONDITION_READY))
            .cloned();
        Ok(SubscriptionStatusRef {
            subscription: ObjectReference {
                api_version: Subscription::api_version(&()).into_owned(),
                kind: Subscription::kind(&()).into_owned(),
                name: name.to_owned(),
                namespace: self.namespace.clone(),
            },
            ready,
        })
    }
}

impl Wiring<'_> {
    /// Deletes the channels and Subscriptions this flow controls that are no longer wanted
    /// (steps or branches removed), as Knative's `removeUnwanted*` do.
    async fn remove_unwanted(
        &self,
        channels: &[String],
        subscriptions: &[String],
    ) -> Result<(), ReconcileError> {
        let owned = |meta: &ObjectMeta| is_controlled_by(meta, self.owner_uid.as_deref());
        let dynamic: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client().clone(), &self.namespace, &self.resource);
        for channel in dynamic.list(&ListParams::default()).await?.items {
            if owned(&channel.metadata) && !channels.contains(&channel.name_any()) {
                dynamic
                    .delete(&channel.name_any(), &DeleteParams::default())
                    .await?;
            }
        }
        let subs: Api<Subscription> = Api::namespaced(self.ctx.client().clone(), &self.namespace);
        for sub in subs.list(&ListParams::default()).await?.items {
            if owned(&sub.metadata) && !subscriptions.contains(&sub.name_any()) {
                subs.delete(&sub.name_any(), &DeleteParams::default())
                    .await?;
            }
        }
        Ok(())
    }
}

fn ready_condition(
    ready: Option<(ConditionStatus, Option<String>, Option<String>)>,
) -> Option<Condition> {
    ready.map(|(status, reason, message)| Condition {
        reason,
        message,
        ..Condition::new(knative_core::apis::CONDITION_READY, status)
    })
}

fn wiring<'a, K: Resource<DynamicType = ()>>(
    owner: &K,
    template: Option<&ChannelTemplateSpec>,
    ctx: &'a Context,
) -> Wiring<'a> {
    let template = template
        .cloned()
        .unwrap_or_else(ChannelTemplateSpec::in_memory);
    Wiring {
        ctx,
        namespace: owner.meta().namespace.clone().unwrap_or_default(),
        resource: api_resource(&template.api_version, &template.kind),
        template,
        owner: controller_ref(owner),
        owner_uid: owner.meta().uid.clone(),
    }
}

/// Marks `condition` True when every child is Ready, else Unknown with the first one that is
/// not.
fn all_ready<'a>(
    children: impl IntoIterator<Item = (&'a ObjectReference, Option<&'a Condition>)>,
) -> Result<(), String> {
    for (reference, ready) in children {
        if !ready.is_some_and(Condition::is_true) {
            return Err(format!(
                "{} {} is not ready",
                reference.kind, reference.name
            ));
        }
    }
    Ok(())
}

fn http_address(url: Option<String>) -> (Option<Addressable>, Vec<Addressable>) {
    let address = url.map(|url| Addressable {
        name: Some("http".to_owned()),
        url: Some(url),
        ..Addressable::default()
    });
    (address.clone(), address.into_iter().collect())
}

/// Reconciles Sequences. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequenceReconciler;

#[async_trait]
impl Reconciler<Sequence> for SequenceReconciler {
    async fn reconcile_kind(
        &self,
        sequence: &mut Sequence,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let name = sequence.name_any();
        let w = wiring(&*sequence, sequence.spec.channel_template.as_ref(), ctx);
        let steps = sequence.spec.steps.clone();
        let mut channels = Vec::with_capacity(steps.len());
        let mut first_address = None;
        for i in 0..steps.len() {
            let (status, url) = w.channel(&sequence_channel_name(&name, i)).await?;
            if i == 0 {
                first_address = url;
            }
            channels.push(status);
        }
        let mut subscriptions = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            let reply = if i + 1 < steps.len() {
                Some(Destination {
                    ref_: Some(w.channel_ref(&sequence_channel_name(&name, i + 1))),
                    ..Destination::default()
                })
            } else {
                sequence.spec.reply.clone()
            };
            subscriptions.push(
                w.subscription(
                    &sequence_subscription_name(&name, i),
                    &sequence_channel_name(&name, i),
                    Some(step.destination.clone()),
                    reply,
                    step.delivery.clone(),
                )
                .await?,
            );
        }

        let wanted: Vec<String> = (0..steps.len())
            .map(|i| sequence_channel_name(&name, i))
            .collect();
        w.remove_unwanted(&wanted, &wanted).await?;

        let now = ctx.now();
        let channels_ready = all_ready(channels.iter().map(|c| (&c.channel, c.ready.as_ref())));
        let subscriptions_ready = all_ready(
            subscriptions
                .iter()
                .map(|s| (&s.subscription, s.ready.as_ref())),
        );
        let (address, addresses) = http_address(first_address);
        let status = sequence.status.get_or_insert_with(Default::default);
        status.channel_statuses = channels;
        status.subscription_statuses = subscriptions;
        let addressable = address.is_some();
        status.address.address = address;
        status.address.addresses = addresses;
        let mut conditions = sequence.manage_conditions(now);
        mark(
            &mut conditions,
            SEQUENCE_CONDITION_CHANNELS_READY,
            channels_ready,
            "ChannelsNotReady",
        );
        mark(
            &mut conditions,
            SEQUENCE_CONDITION_SUBSCRIPTIONS_READY,
            subscriptions_ready,
            "SubscriptionsNotReady",
        );
        if addressable {
            conditions.mark_true(SEQUENCE_CONDITION_ADDRESSABLE);
        } else {
            conditions.mark_unknown(
                SEQUENCE_CONDITION_ADDRESSABLE,
                "EmptyHostname",
                "The first channel has no address yet",
            );
        }
        Ok(())
    }
}

fn mark(
    conditions: &mut knative_core::apis::ConditionManager<'_>,
    condition: &str,
    outcome: Result<(), String>,
    reason: &str,
) {
    match outcome {
        Ok(()) => conditions.mark_true(condition),
        Err(message) => conditions.mark_unknown(condition, reason, &message),
    }
}

/// Reconciles Parallels. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParallelReconciler;

#[async_trait]
impl Reconciler<Parallel> for ParallelReconciler {
    async fn reconcile_kind(
        &self,
        parallel: &mut Parallel,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let name = parallel.name_any();
        let w = wiring(&*parallel, parallel.spec.channel_template.as_ref(), ctx);
        let ingress_name = parallel_channel_name(&name);
        let (ingress, ingress_url) = w.channel(&ingress_name).await?;
        let mut branches = Vec::new();
        for (i, branch) in parallel.spec.branches.clone().into_iter().enumerate() {
            let channel_name = parallel_branch_channel_name(&name, i);
            let (channel, _) = w.channel(&channel_name).await?;
            let filter = w
                .subscription(
                    &parallel_filter_subscription_name(&name, i),
                    &ingress_name,
                    branch.filter.clone(),
                    Some(Destination {
                        ref_: Some(w.channel_ref(&channel_name)),
                        ..Destination::default()
                    }),
                    branch.delivery.clone(),
                )
                .await?;
            let subscriber = w
                .subscription(
                    &parallel_subscription_name(&name, i),
                    &channel_name,
                    Some(branch.subscriber.clone()),
                    branch.reply.clone().or_else(|| parallel.spec.reply.clone()),
                    branch.delivery.clone(),
                )
                .await?;
            branches.push(ParallelBranchStatus {
                filter_subscription_status: filter,
                filter_channel_status: channel,
                subscription_status: subscriber,
            });
        }

        let count = branches.len();
        let wanted_channels: Vec<String> = std::iter::once(ingress_name.clone())
            .chain((0..count).map(|i| parallel_branch_channel_name(&name, i)))
            .collect();
        let wanted_subscriptions: Vec<String> = (0..count)
            .flat_map(|i| {
                [
                    parallel_filter_subscription_name(&name, i),
                    parallel_subscription_name(&name, i),
                ]
            })
            .collect();
        w.remove_unwanted(&wanted_channels, &wanted_subscriptions)
            .await?;

        let now = ctx.now();
        let channels_ready = all_ready(
            std::iter::once((&ingress.channel, ingress.ready.as_ref())).chain(branches.iter().map(
                |b| {
                    (
                        &b.filter_channel_status.channel,
                        b.filter_channel_status.ready.as_ref(),
                    )
                },
            )),
        );
        let subscriptions_ready = all_ready(branches.iter().flat_map(|b| {
            [
                (
                    &b.filter_subscription_status.subscription,
                    b.filter_subscription_status.ready.as_ref(),
                ),
                (
                    &b.subscription_status.subscription,
                    b.subscription_status.ready.as_ref(),
                ),
            ]
        }));
        let (address, addresses) = http_address(ingress_url);
        let addressable = address.is_some();
        let status = parallel.status.get_or_insert_with(Default::default);
        status.ingress_channel_status = ingress;
        status.branch_statuses = branches;
        status.address.address = address;
        status.address.addresses = addresses;
        let mut conditions = parallel.manage_conditions(now);
        mark(
            &mut conditions,
            PARALLEL_CONDITION_CHANNELS_READY,
            channels_ready,
            "ChannelsNotReady",
        );
        mark(
            &mut conditions,
            PARALLEL_CONDITION_SUBSCRIPTIONS_READY,
            subscriptions_ready,
            "SubscriptionsNotReady",
        );
        if addressable {
            conditions.mark_true(PARALLEL_CONDITION_ADDRESSABLE);
        } else {
            conditions.mark_unknown(
                PARALLEL_CONDITION_ADDRESSABLE,
                "EmptyHostname",
                "The ingress channel has no address yet",
            );
        }
        Ok(())
    }
}
