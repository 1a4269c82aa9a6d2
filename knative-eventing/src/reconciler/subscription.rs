//! The Subscription reconciler (Knative's `pkg/reconciler/subscription`): the subscriber, the
//! reply and the dead-letter sink resolved to URIs, and the Subscription's entry (by UID) in
//! its channel's `spec.subscribers` (the backing channel's, for a Channel). A finalizer takes
//! the entry out again when the Subscription is deleted.

use std::time::Duration;

use async_trait::async_trait;
use knative_core::apis::{KReference, KnativeObject};
use knative_core::reconciler::{Context, ReconcileError, Reconciler};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

use crate::apis::Subscription;
use crate::apis::delivery::DeliverySpec;
use crate::apis::messaging::SubscriberSpec;
use crate::apis::messaging::subscription::{
    SUBSCRIPTION_CONDITION_ADDED_TO_CHANNEL, SUBSCRIPTION_CONDITION_CHANNEL_READY,
    SUBSCRIPTION_CONDITION_REFERENCES_RESOLVED,
};
use crate::reconciler::api_resource;
use crate::resolver::{ResolveError, Resolver};

/// How long to wait before looking again at a Channel that has no backing channel yet.
const BACKING_CHANNEL_RECHECK: Duration = Duration::from_secs(5);

/// Reconciles Subscriptions. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct SubscriptionReconciler;

#[async_trait]
impl Reconciler<Subscription> for SubscriptionReconciler {
    async fn reconcile_kind(
        &self,
        sub: &mut Subscription,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = sub.namespace().unwrap_or_default();
        let now = ctx.now();
        let Some((api, mut channel)) = physical_channel(sub, ctx, &namespace).await? else {
            return Err(ReconcileError::RequeueAfter(BACKING_CHANNEL_RECHECK));
        };

        let resolver = Resolver::new(ctx.client().clone());
        let resolved = async {
            let subscriber = match &sub.spec.subscriber {
                Some(d) => Some(resolver.resolve(d, &namespace).await?),
                None => None,
            };
            let reply = match &sub.spec.reply {
                Some(d) => Some(resolver.resolve(d, &namespace).await?),
                None => None,
            };
            let dead_letter = match sub
                .spec
                .delivery
                .as_ref()
                .and_then(|d| d.dead_letter_sink.as_ref())
            {
                Some(d) => Some(resolver.resolve(d, &namespace).await?),
                None => None,
            };
            Ok::<_, ResolveError>((subscriber, reply, dead_letter))
        }
        .await;
        let (subscriber, reply, dead_letter) = match resolved {
            Ok(r) => r,
            Err(err) => {
                sub.manage_conditions(now).mark_false(
                    SUBSCRIPTION_CONDITION_REFERENCES_RESOLVED,
                    err.reason(),
                    &format!("Failed to resolve spec: {err}"),
                );
                return if err.is_retryable() {
                    Err(ReconcileError::transient(err))
                } else {
                    Ok(())
                };
            }
        };
        let physical = &mut sub
            .status
            .get_or_insert_with(Default::default)
            .physical_subscription;
        physical.subscriber_uri = subscriber.as_ref().map(|r| r.url.clone());
        physical.reply_uri = reply.as_ref().map(|r| r.url.clone());
        physical.delivery.dead_letter_sink_uri = dead_letter.as_ref().map(|r| r.url.clone());
        sub.manage_conditions(now)
            .mark_true(SUBSCRIPTION_CONDITION_REFERENCES_RESOLVED);

        let delivery = sub.spec.delivery.clone().map(|mut d| {
            // The dispatcher reads the dead-letter sink as a URI.
            d.dead_letter_sink = dead_letter
                .as_ref()
                .map(|r| knative_core::apis::Destination {
                    uri: Some(r.url.clone()),
                    ..Default::default()
                });
            d
        });
        let entry = SubscriberSpec {
            uid: sub.uid(),
            generation: sub.metadata.generation,
            subscriber_uri: subscriber.as_ref().map(|r| r.url.clone()),
            subscriber_ca_certs: subscriber.as_ref().and_then(|r| r.ca_certs.clone()),
            subscriber_audience: subscriber.as_ref().and_then(|r| r.audience.clone()),
            reply_uri: reply.as_ref().map(|r| r.url.clone()),
            reply_ca_certs: reply.as_ref().and_then(|r| r.ca_certs.clone()),
            reply_audience: reply.as_ref().and_then(|r| r.audience.clone()),
            delivery: delivery.filter(|d: &DeliverySpec| *d != DeliverySpec::default()),
            name: Some(sub.name_any()),
        };
        if set_subscriber(&mut channel.data, &entry) {
            channel = api
                .replace(&channel.name_any(), &PostParams::default(), &channel)
                .await?;
        }
        sub.manage_conditions(now)
            .mark_true(SUBSCRIPTION_CONDITION_ADDED_TO_CHANNEL);

        let ready = channel
            .data
            .pointer("/status/subscribers")
            .and_then(Value::as_array)
            .and_then(|subs| {
                subs.iter()
                    .find(|s| s.get("uid").and_then(Value::as_str) == entry.uid.as_deref())
            })
            .filter(|s| s.get("observedGeneration").and_then(Value::as_i64) >= entry.generation)
            .and_then(|s| s.get("ready").and_then(Value::as_str))
            .map(str::to_owned);
        match ready.as_deref() {
            Some("True") => sub
                .manage_conditions(now)
                .mark_true(SUBSCRIPTION_CONDITION_CHANNEL_READY),
            Some("False") => sub.manage_conditions(now).mark_false(
                SUBSCRIPTION_CONDITION_CHANNEL_READY,
                "SubscriptionNotMarkedReadyByChannel",
                "The channel reports the subscriber not ready",
            ),
            _ => {
                sub.manage_conditions(now).mark_unknown(
                    SUBSCRIPTION_CONDITION_CHANNEL_READY,
                    "SubscriptionNotMarkedReadyByChannel",
                    "The channel has not yet marked the subscriber ready",
                );
                return Err(ReconcileError::RequeueAfter(BACKING_CHANNEL_RECHECK));
            }
        }
        Ok(())
    }

    async fn finalize_kind(
        &self,
        sub: &mut Subscription,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = sub.namespace().unwrap_or_default();
        if let Some((api, mut channel)) = physical_channel(sub, ctx, &namespace).await?
            && remove_subscriber(&mut channel.data, sub.uid().as_deref())
        {
            api.replace(&channel.name_any(), &PostParams::default(), &channel)
                .await?;
        }
        Ok(())
    }

    fn uses_finalizer(&self) -> bool {
        true
    }
}

/// The channel events are dispatched from: `spec.channel`, or its backing channel when it is a
/// Channel. `None` (with `ChannelReady` Unknown) while a Channel has no backing channel yet;
/// a missing channel is `ReferencesResolved` False and a transient error.
async fn physical_channel(
    sub: &mut Subscription,
    ctx: &Context,
    namespace: &str,
) -> Result<Option<(Api<DynamicObject>, DynamicObject)>, ReconcileError> {
    let now = ctx.now();
    let reference = sub.spec.channel.clone();
    let Some((api, object)) = get_dynamic(ctx, &reference, namespace).await? else {
        let message = format!(
            "Failed to get Spec.Channel or backing channel: {} {namespace}/{} not found",
            reference.kind, reference.name
        );
        sub.manage_conditions(now).mark_false(
            SUBSCRIPTION_CONDITION_REFERENCES_RESOLVED,
            "ChannelNotFound",
            &message,
        );
        return Err(ReconcileError::transient(message));
    };
    if !(reference.kind == "Channel" && reference.api_version == "messaging.knative.dev/v1") {
        return Ok(Some((api, object)));
    }
    let backing: Option<KReference> = object
        .data
        .pointer("/status/channel")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok());
    let found = match backing {
        Some(backing) => get_dynamic(ctx, &backing, namespace).await?,
        None => None,
    };
    if found.is_none() {
        sub.manage_conditions(now).mark_unknown(
            SUBSCRIPTION_CONDITION_CHANNEL_READY,
            "BackingChannelNotReady",
            "The Channel has no backing channel yet",
        );
    }
    Ok(found)
}

async fn get_dynamic(
    ctx: &Context,
    reference: &KReference,
    namespace: &str,
) -> Result<Option<(Api<DynamicObject>, DynamicObject)>, ReconcileError> {
    let namespace = if reference.namespace.is_empty() {
        namespace
    } else {
        &reference.namespace
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client().clone(),
        namespace,
        &api_resource(&reference.api_version, &reference.kind),
    );
    Ok(api.get_opt(&reference.name).await?.map(|o| (api, o)))
}

/// Puts `entry` into the channel's `spec.subscribers` (replacing the one of the same UID);
/// whether anything changed.
fn set_subscriber(data: &mut Value, entry: &SubscriberSpec) -> bool {
    let wanted = serde_json::to_value(entry).unwrap_or_default();
    if !data.get("spec").is_some_and(Value::is_object) {
        data["spec"] = Value::Object(Default::default());
    }
    let subscribers = data["spec"].as_object_mut().map(|s| {
        s.entry("subscribers")
            .or_insert_with(|| Value::Array(Vec::new()))
    });
    let Some(Value::Array(subscribers)) = subscribers else {
        return false;
    };
    match subscribers
        .iter_mut()
        .find(|s| s.get("uid").and_then(Value::as_str) == entry.uid.as_deref())
    {
        Some(existing) if *existing == wanted => false,
        Some(existing) => {
            *existing = wanted;
            true
        }
        None => {
            subscribers.push(wanted);
            true
        }
    }
}

/// Takes the entry of `uid` out of the channel's `spec.subscribers`; whether it was there.
fn remove_subscriber(data: &mut Value, uid: Option<&str>) -> bool {
    let Some(Value::Array(subscribers)) = data.pointer_mut("/spec/subscribers") else {
        return false;
    };
    let before = subscribers.len();
    subscribers.retain(|s| s.get("uid").and_then(Value::as_str) != uid);
    subscribers.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_replaces_the_one_of_its_uid_and_keeps_the_others() {
        let mut data = json!({"spec": {"subscribers": [{"uid": "a", "subscriberUri": "http://old"}, {"uid": "b"}]}});
        let entry = SubscriberSpec {
            uid: Some("a".into()),
            subscriber_uri: Some("http://new".into()),
            ..SubscriberSpec::default()
        };
        assert!(set_subscriber(&mut data, &entry));
        assert_eq!(
            data["spec"]["subscribers"],
            json!([{"uid": "a", "subscriberUri": "http://new"}, {"uid": "b"}])
        );
        assert!(
            !set_subscriber(&mut data, &entry),
            "no change the second time"
        );
    }

    #[test]
    fn removing_an_entry_leaves_the_others() {
        let mut data = json!({"spec": {"subscribers": [{"uid": "a"}, {"uid": "b"}]}});
        assert!(remove_subscriber(&mut data, Some("a")));
        assert_eq!(data["spec"]["subscribers"], json!([{"uid": "b"}]));
        assert!(!remove_subscriber(&mut data, Some("a")));
    }
}
