//! The Channel and InMemoryChannel reconcilers (Knative's `pkg/reconciler/channel` and
//! `pkg/reconciler/inmemorychannel/controller`).
//!
//! A Channel creates a backing channel of its template's kind, of its own name, that it
//! controls (the template's `spec` and the Channel's `delivery`; the backing channel's
//! `spec.subscribers` belong to the Subscription reconciler and are kept), and reflects its
//! address, subscriber statuses and `Ready` (`BackingChannelReady`).
//!
//! An InMemoryChannel is served by the shared in-memory dispatcher: in the cluster, through an
//! ExternalName Service `<name>-kn-channel` pointing at `imc-dispatcher.<system namespace>`,
//! whose cluster-local name is the channel's address, as Knative's; or under a configured base
//! URL (`<base>/<namespace>/<name>`). Its subscribers are reported ready at the generation the
//! dispatcher will read from its spec.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{Addressable, ConditionStatus, KnativeObject};
use knative_core::reconciler::{Context, ReconcileError, Reconciler};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

use crate::apis::messaging::channel::{
    CHANNEL_CONDITION_ADDRESSABLE, CHANNEL_CONDITION_BACKING_CHANNEL_READY,
    CHANNEL_CONDITION_DEAD_LETTER_SINK_RESOLVED,
};
use crate::apis::messaging::in_memory_channel::{
    IMC_CONDITION_ADDRESSABLE, IMC_CONDITION_DEAD_LETTER_SINK_RESOLVED, IMC_CONDITION_SERVICE_READY,
};
use crate::apis::messaging::{ChannelTemplateSpec, SubscriberStatus};
use crate::apis::{Channel, InMemoryChannel};
use crate::reconciler::{
    address_url, api_resource, controller_ref, dynamic_object, kreference, ready_status,
    reconcile_child,
};
use crate::resolver::Resolver;

/// Reconciles Channels into backing channels. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelReconciler;

#[async_trait]
impl Reconciler<Channel> for ChannelReconciler {
    async fn reconcile_kind(
        &self,
        channel: &mut Channel,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = channel.namespace().unwrap_or_default();
        let name = channel.name_any();
        let template = channel
            .spec
            .channel_template
            .clone()
            .unwrap_or_else(ChannelTemplateSpec::in_memory);
        let resource = api_resource(&template.api_version, &template.kind);
        let mut desired = dynamic_object(&resource, &namespace, &name);
        desired.metadata.owner_references = Some(vec![controller_ref(channel)]);
        let mut spec = template.spec.clone().unwrap_or_else(|| json!({}));
        if let (Some(map), Some(delivery)) =
            (spec.as_object_mut(), &channel.spec.channelable.delivery)
        {
            map.insert(
                "delivery".to_owned(),
                serde_json::to_value(delivery).unwrap_or_default(),
            );
        }
        desired.data = json!({ "spec": spec });
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client().clone(), &namespace, &resource);
        let backing = reconcile_child(
            &api,
            desired,
            channel.uid().as_deref(),
            merge_spec_keeping_subscribers,
        )
        .await?;

        let now = ctx.now();
        let status = channel.status.get_or_insert_with(Default::default);
        status.channel = Some(kreference(&resource, &namespace, &name));
        status.channelable.subscribers = subscriber_statuses(&backing.data);
        match ready_status(&backing.data) {
            Some((ConditionStatus::True, _, _)) => channel
                .manage_conditions(now)
                .mark_true(CHANNEL_CONDITION_BACKING_CHANNEL_READY),
            Some((ConditionStatus::False, reason, message)) => {
                channel.manage_conditions(now).mark_false(
                    CHANNEL_CONDITION_BACKING_CHANNEL_READY,
                    reason.as_deref().unwrap_or("BackingChannelNotReady"),
                    message
                        .as_deref()
                        .unwrap_or("The backing channel is not ready"),
                )
            }
            _ => channel.manage_conditions(now).mark_unknown(
                CHANNEL_CONDITION_BACKING_CHANNEL_READY,
                "BackingChannelNotConfigured",
                "BackingChannel has not yet been reconciled.",
            ),
        }
        let url = address_url(&backing.data);
        let status = channel.status.get_or_insert_with(Default::default);
        status.channelable.address.address = url.clone().map(|url| Addressable {
            name: Some("http".to_owned()),
            url: Some(url),
            ..Addressable::default()
        });
        status.channelable.address.addresses = status
            .channelable
            .address
            .address
            .clone()
            .into_iter()
            .collect();
        let dead_letter = backing
            .data
            .pointer("/status/deadLetterSinkUri")
            .and_then(Value::as_str)
            .map(str::to_owned);
        status.channelable.delivery.dead_letter_sink_uri = dead_letter.clone();
        let has_sink = channel
            .spec
            .channelable
            .delivery
            .as_ref()
            .is_some_and(|d| d.dead_letter_sink.is_some());
        let mut conditions = channel.manage_conditions(now);
        if url.is_some() {
            conditions.mark_true(CHANNEL_CONDITION_ADDRESSABLE);
        } else {
            conditions.mark_unknown(
                CHANNEL_CONDITION_ADDRESSABLE,
                "EmptyHostname",
                "The backing channel has no address yet",
            );
        }
        match (has_sink, dead_letter) {
            (false, _) => conditions.mark_true_with_reason(
                CHANNEL_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                "DeadLetterSinkNotConfigured",
                "No dead letter sink is configured.",
            ),
            (true, Some(_)) => conditions.mark_true(CHANNEL_CONDITION_DEAD_LETTER_SINK_RESOLVED),
            (true, None) => conditions.mark_unknown(
                CHANNEL_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                "DeadLetterSinkNotResolved",
                "The backing channel has not resolved the dead letter sink yet",
            ),
        }
        Ok(())
    }
}

/// Copies the desired spec into the backing channel, keeping its `subscribers`.
fn merge_spec_keeping_subscribers(existing: &mut DynamicObject, desired: &DynamicObject) -> bool {
    let mut spec = desired.data["spec"].clone();
    if let (Some(map), Some(subscribers)) = (
        spec.as_object_mut(),
        existing.data.pointer("/spec/subscribers"),
    ) {
        map.insert("subscribers".to_owned(), subscribers.clone());
    }
    if existing.data.get("spec") == Some(&spec) {
        return false;
    }
    existing.data["spec"] = spec;
    true
}

fn subscriber_statuses(data: &Value) -> Vec<SubscriberStatus> {
    data.pointer("/status/subscribers")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Where the in-memory dispatcher is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelDispatcher {
    /// Knative's layout: the `imc-dispatcher` Service in this namespace, reached through one
    /// ExternalName Service per channel.
    InCluster {
        /// The namespace Eventing runs in (`knative-eventing`).
        system_namespace: String,
    },
    /// A dispatcher at this base URL; a channel's address is `<base>/<namespace>/<name>`.
    Url(String),
}

impl Default for ChannelDispatcher {
    fn default() -> Self {
        ChannelDispatcher::InCluster {
            system_namespace: "knative-eventing".to_owned(),
        }
    }
}

/// Reconciles InMemoryChannels.
#[derive(Clone, Debug, Default)]
pub struct InMemoryChannelReconciler {
    dispatcher: ChannelDispatcher,
}

impl InMemoryChannelReconciler {
    /// A reconciler whose channels are served by `dispatcher`.
    pub fn new(dispatcher: ChannelDispatcher) -> Self {
        InMemoryChannelReconciler { dispatcher }
    }
}

#[async_trait]
impl Reconciler<InMemoryChannel> for InMemoryChannelReconciler {
    async fn reconcile_kind(
        &self,
        imc: &mut InMemoryChannel,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = imc.namespace().unwrap_or_default();
        let name = imc.name_any();
        let now = ctx.now();
        let url = match &self.dispatcher {
            ChannelDispatcher::InCluster { system_namespace } => {
                let service_name = format!("{name}-kn-channel");
                let desired = Service {
                    metadata: ObjectMeta {
                        name: Some(service_name.clone()),
                        namespace: Some(namespace.clone()),
                        labels: Some(BTreeMap::from([(
                            "messaging.knative.dev/role".to_owned(),
                            "in-memory-channel".to_owned(),
                        )])),
                        owner_references: Some(vec![controller_ref(imc)]),
                        ..ObjectMeta::default()
                    },
                    spec: Some(ServiceSpec {
                        type_: Some("ExternalName".to_owned()),
                        external_name: Some(format!(
                            "imc-dispatcher.{system_namespace}.svc.cluster.local"
                        )),
                        ..ServiceSpec::default()
                    }),
                    ..Service::default()
                };
                let api: Api<Service> = Api::namespaced(ctx.client().clone(), &namespace);
                reconcile_child(&api, desired, imc.uid().as_deref(), |existing, desired| {
                    let (e, d) = (existing.spec.as_ref(), desired.spec.as_ref());
                    let same = e.and_then(|s| s.external_name.as_ref())
                        == d.and_then(|s| s.external_name.as_ref())
                        && e.and_then(|s| s.type_.as_ref()) == d.and_then(|s| s.type_.as_ref());
                    if !same {
                        let spec = existing.spec.get_or_insert_with(Default::default);
                        spec.type_ = Some("ExternalName".to_owned());
                        spec.external_name = d.and_then(|s| s.external_name.clone());
                    }
                    !same
                })
                .await?;
                format!("http://{service_name}.{namespace}.svc.cluster.local")
            }
            ChannelDispatcher::Url(base) => {
                format!("{}/{namespace}/{name}", base.trim_end_matches('/'))
            }
        };
        imc.manage_conditions(now)
            .mark_true(IMC_CONDITION_SERVICE_READY);
        let generation_subscribers: Vec<SubscriberStatus> = imc
            .spec
            .channelable
            .subscribers
            .iter()
            .map(|s| SubscriberStatus {
                uid: s.uid.clone(),
                observed_generation: s.generation,
                ready: "True".to_owned(),
                message: None,
            })
            .collect();
        let status = imc.status.get_or_insert_with(Default::default);
        let address = Addressable {
            name: Some("http".to_owned()),
            url: Some(url),
            ..Addressable::default()
        };
        status.channelable.address.address = Some(address.clone());
        status.channelable.address.addresses = vec![address];
        status.channelable.subscribers = generation_subscribers;
        imc.manage_conditions(now)
            .mark_true(IMC_CONDITION_ADDRESSABLE);

        let sink = imc
            .spec
            .channelable
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.clone());
        match sink {
            None => {
                imc.status
                    .get_or_insert_with(Default::default)
                    .channelable
                    .delivery = Default::default();
                imc.manage_conditions(now).mark_true_with_reason(
                    IMC_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                    "DeadLetterSinkNotConfigured",
                    "No dead letter sink is configured.",
                );
            }
            Some(sink) => match Resolver::new(ctx.client().clone())
                .resolve(&sink, &namespace)
                .await
            {
                Ok(resolved) => {
                    imc.status
                        .get_or_insert_with(Default::default)
                        .channelable
                        .delivery
                        .dead_letter_sink_uri = Some(resolved.url);
                    imc.manage_conditions(now)
                        .mark_true(IMC_CONDITION_DEAD_LETTER_SINK_RESOLVED);
                }
                Err(err) => {
                    imc.manage_conditions(now).mark_false(
                        IMC_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                        err.reason(),
                        &format!("Unable to get the dead letter sink's URI: {err}"),
                    );
                    if err.is_retryable() {
                        return Err(ReconcileError::transient(err));
                    }
                }
            },
        }
        Ok(())
    }
}
