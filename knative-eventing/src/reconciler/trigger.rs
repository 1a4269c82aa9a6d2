//! The Trigger reconciler (Knative's `pkg/reconciler/broker/trigger`): the Trigger's Broker,
//! its subscriber resolved to a URI through the Addressable duck type, its dead-letter sink
//! (the Trigger's own, else the Broker's), and the object of its `knative.dev/dependency`
//! annotation.
//!
//! The shared broker filter reads Triggers and their `status.subscriberUri` from the API, so
//! there is no per-Trigger Subscription: `SubscriptionReady` is True once the subscriber
//! resolved and the Broker is Ready.

use async_trait::async_trait;
use knative_core::apis::{ConditionStatus, KReference, KnativeObject};
use knative_core::reconciler::{Compact, Context, ReconcileError, Reconciler};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};

use crate::apis::eventing::trigger::{
    DEPENDENCY_ANNOTATION, TRIGGER_CONDITION_BROKER, TRIGGER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
    TRIGGER_CONDITION_DEPENDENCY, TRIGGER_CONDITION_SUBSCRIBED,
    TRIGGER_CONDITION_SUBSCRIBER_RESOLVED,
};
use crate::apis::{Broker, Trigger};
use crate::reconciler::{api_resource, ready_status};
use crate::resolver::Resolver;

/// Reconciles Triggers. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct TriggerReconciler;

impl TriggerReconciler {
    /// A Trigger reconciler.
    pub fn new() -> Self {
        TriggerReconciler
    }
}

#[async_trait]
impl Reconciler<Trigger> for TriggerReconciler {
    async fn reconcile_kind(
        &self,
        trigger: &mut Trigger,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = trigger.namespace().unwrap_or_default();
        let now = ctx.now();
        let client = ctx.client().clone();
        let resolver = Resolver::new(client.clone());

        let broker_namespace = trigger
            .spec
            .broker_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| namespace.clone());
        let brokers: Api<Broker> = Api::namespaced(client.clone(), &broker_namespace);
        let Some(broker) = brokers.get_opt(&trigger.spec.broker).await? else {
            let message = format!("Broker \"{}\" does not exist", trigger.spec.broker);
            trigger.manage_conditions(now).mark_false(
                TRIGGER_CONDITION_BROKER,
                "BrokerDoesNotExist",
                &message,
            );
            return Ok(());
        };
        let broker_ready = broker
            .status
            .as_ref()
            .and_then(|s| s.status.get_condition(knative_core::apis::CONDITION_READY))
            .cloned();
        match broker_ready {
            Some(c) if c.is_true() => trigger
                .manage_conditions(now)
                .mark_true(TRIGGER_CONDITION_BROKER),
            Some(c) if c.is_false() => trigger.manage_conditions(now).mark_false(
                TRIGGER_CONDITION_BROKER,
                c.reason.as_deref().unwrap_or("BrokerNotReady"),
                c.message.as_deref().unwrap_or("The Broker is not ready"),
            ),
            _ => trigger.manage_conditions(now).mark_unknown(
                TRIGGER_CONDITION_BROKER,
                "BrokerUnknown",
                "The status of the Broker is unknown",
            ),
        }

        let subscriber = resolver.resolve(&trigger.spec.subscriber, &namespace).await;
        let status = trigger.status.get_or_insert_with(Default::default);
        match subscriber {
            Ok(resolved) => {
                status.subscriber_uri = Some(resolved.url);
                status.subscriber_ca_certs = resolved.ca_certs;
                status.subscriber_audience = resolved.audience;
                trigger
                    .manage_conditions(now)
                    .mark_true(TRIGGER_CONDITION_SUBSCRIBER_RESOLVED);
            }
            Err(err) => {
                status.subscriber_uri = None;
                let mut conditions = trigger.manage_conditions(now);
                conditions.mark_false(
                    TRIGGER_CONDITION_SUBSCRIBER_RESOLVED,
                    err.reason(),
                    &format!("Unable to get the Subscriber's URI: {err}"),
                );
                conditions.mark_unknown(
                    TRIGGER_CONDITION_SUBSCRIBED,
                    "SubscriberNotResolved",
                    "The subscriber has no URI yet",
                );
                return if err.is_retryable() {
                    Err(ReconcileError::transient(err))
                } else {
                    Ok(())
                };
            }
        }

        let own_sink = trigger
            .spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.clone());
        let broker_sink = broker
            .status
            .as_ref()
            .and_then(|s| s.delivery.dead_letter_sink_uri.clone());
        let dead_letter = match (own_sink, broker_sink) {
            (Some(sink), _) => Some(resolver.resolve(&sink, &namespace).await.map(|r| r.url)),
            (None, Some(uri)) => Some(Ok(uri)),
            (None, None) => None,
        };
        let status = trigger.status.get_or_insert_with(Default::default);
        match dead_letter {
            None => {
                status.delivery = Default::default();
                trigger.manage_conditions(now).mark_true_with_reason(
                    TRIGGER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                    "DeadLetterSinkNotConfigured",
                    "No dead letter sink is configured.",
                );
            }
            Some(Ok(uri)) => {
                status.delivery.dead_letter_sink_uri = Some(uri);
                trigger
                    .manage_conditions(now)
                    .mark_true(TRIGGER_CONDITION_DEAD_LETTER_SINK_RESOLVED);
            }
            Some(Err(err)) => {
                status.delivery = Default::default();
                trigger.manage_conditions(now).mark_false(
                    TRIGGER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                    err.reason(),
                    &format!("Unable to get the dead letter sink's URI: {err}"),
                );
                if err.is_retryable() {
                    return Err(ReconcileError::transient(err));
                }
            }
        }

        if trigger
            .status
            .as_ref()
            .and_then(|s| s.status.get_condition(TRIGGER_CONDITION_BROKER))
            .is_some_and(|c| c.status == ConditionStatus::True)
        {
            trigger
                .manage_conditions(now)
                .mark_true(TRIGGER_CONDITION_SUBSCRIBED);
        } else {
            trigger.manage_conditions(now).mark_unknown(
                TRIGGER_CONDITION_SUBSCRIBED,
                "BrokerNotReady",
                "The Broker's filter serves the Trigger once the Broker is Ready",
            );
        }

        reconcile_dependency(trigger, ctx, &namespace).await
    }
}

/// `DependencyReady` from the object of the `knative.dev/dependency` annotation (True when
/// there is none).
async fn reconcile_dependency(
    trigger: &mut Trigger,
    ctx: &Context,
    namespace: &str,
) -> Result<(), ReconcileError> {
    let now = ctx.now();
    let Some(annotation) = trigger.annotations().get(DEPENDENCY_ANNOTATION).cloned() else {
        trigger
            .manage_conditions(now)
            .mark_true(TRIGGER_CONDITION_DEPENDENCY);
        return Ok(());
    };
    let reference: KReference = match serde_json::from_str(&annotation) {
        Ok(r) => r,
        Err(e) => {
            trigger.manage_conditions(now).mark_false(
                TRIGGER_CONDITION_DEPENDENCY,
                "ReferenceError",
                &format!(
                    "Unable to unmarshal objectReference from dependency annotation of trigger: {e}"
                ),
            );
            return Ok(());
        }
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client().clone(),
        namespace,
        &api_resource(&reference.api_version, &reference.kind),
    );
    let Some(object) = api.get_opt(&reference.name).await? else {
        trigger.manage_conditions(now).mark_false(
            TRIGGER_CONDITION_DEPENDENCY,
            "DependencyDoesNotExist",
            &format!(
                "Dependency does not exist: {} \"{}\" not found",
                reference.kind, reference.name
            ),
        );
        return Ok(());
    };
    match ready_status(&object.data) {
        Some((ConditionStatus::True, _, _)) => trigger
            .manage_conditions(now)
            .mark_true(TRIGGER_CONDITION_DEPENDENCY),
        Some((ConditionStatus::False, reason, message)) => {
            trigger.manage_conditions(now).mark_false(
                TRIGGER_CONDITION_DEPENDENCY,
                reason.as_deref().unwrap_or("DependencyNotReady"),
                message.as_deref().unwrap_or("The dependency is not ready"),
            )
        }
        _ => trigger.manage_conditions(now).mark_unknown(
            TRIGGER_CONDITION_DEPENDENCY,
            "DependencyUnknown",
            "The status of the dependency is unknown",
        ),
    }
    Ok(())
}

impl TriggerReconciler {
    /// What the controller should watch besides Triggers: Brokers (in `namespace`, or all
    /// namespaces), so that a Broker becoming Ready reaches its Triggers at once. Pass it to
    /// `Driver::run_with`.
    pub fn watches(
        client: kube::Client,
        namespace: Option<String>,
    ) -> impl Fn(
        kube::runtime::Controller<Compact<Trigger>>,
    ) -> kube::runtime::Controller<Compact<Trigger>> {
        move |controller| {
            let triggers = controller.store();
            controller.watches(
                crate::reconciler::scoped::<Broker>(&client, &namespace),
                Default::default(),
                move |broker: Broker| {
                    let (ns, name) = (broker.namespace(), broker.name_any());
                    triggers
                        .state()
                        .into_iter()
                        .filter(|t| {
                            // A Trigger that does not decode is retried by its own passes.
                            t.decode().is_ok_and(|t| {
                                t.spec.broker == name
                                    && t.spec.broker_namespace.clone().or_else(|| t.namespace())
                                        == ns
                            })
                        })
                        .map(|t| kube::runtime::reflector::ObjectRef::from_obj(&*t))
                        .collect::<Vec<_>>()
                },
            )
        }
    }
}
