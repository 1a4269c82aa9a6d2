//! The Broker reconciler: a Broker's address and dead-letter sink (Knative's multi-tenant
//! channel-based broker, `pkg/reconciler/broker`).
//!
//! Every Broker of the reconciler's class is served by one shared ingress and one shared
//! filter, so a Broker needs no Deployment of its own: its address is the ingress with the
//! Broker's namespace and name as path, `http://broker-ingress.<system namespace>.svc.cluster.local/<namespace>/<name>`
//! as Knative's MT broker, or under a configured base URL (an ingress outside the cluster, a
//! local process). With an in-cluster ingress, `IngressReady` and `FilterReady` follow the
//! Endpoints of the `broker-ingress` and `broker-filter` Services; with a configured URL they
//! are True (the embedder runs them).
//!
//! ```no_run
//! use knative_core::reconciler::Driver;
//! use knative_eventing::reconciler::broker::{BrokerReconciler, BrokerIngress};
//!
//! # async fn run(client: kube::Client) {
//! let reconciler = BrokerReconciler::new(BrokerIngress::Url("http://127.0.0.1:8080".into()));
//! Driver::new(client, reconciler).run().await.unwrap();
//! # }
//! ```

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Endpoints;
use knative_core::apis::{Addressable, KnativeObject};
use knative_core::reconciler::{Context, ReconcileError, Reconciler};
use kube::{Api, ResourceExt};

use crate::apis::Broker;
use crate::apis::eventing::broker::{
    BROKER_CONDITION_ADDRESSABLE, BROKER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
    BROKER_CONDITION_FILTER, BROKER_CONDITION_INGRESS,
};
use crate::resolver::Resolver;

/// The class of Broker this reconciler serves.
pub const MT_BROKER_CLASS: &str = "MTChannelBasedBroker";

/// Where the shared broker ingress is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerIngress {
    /// Knative's layout: the `broker-ingress` and `broker-filter` Services in this namespace.
    InCluster {
        /// The namespace Eventing runs in (`knative-eventing`).
        system_namespace: String,
    },
    /// An ingress at this base URL (no trailing slash), e.g. a local process.
    Url(String),
}

impl Default for BrokerIngress {
    fn default() -> Self {
        BrokerIngress::InCluster {
            system_namespace: "knative-eventing".to_owned(),
        }
    }
}

impl BrokerIngress {
    /// The address of Broker `namespace/name`.
    pub fn broker_url(&self, namespace: &str, name: &str) -> String {
        match self {
            BrokerIngress::InCluster { system_namespace } => format!(
                "http://broker-ingress.{system_namespace}.svc.cluster.local/{namespace}/{name}"
            ),
            BrokerIngress::Url(base) => {
                format!("{}/{namespace}/{name}", base.trim_end_matches('/'))
            }
        }
    }
}

/// Reconciles Brokers of class `MTChannelBasedBroker`.
#[derive(Clone, Debug, Default)]
pub struct BrokerReconciler {
    ingress: BrokerIngress,
}

impl BrokerReconciler {
    /// A reconciler whose Brokers are served by `ingress`.
    pub fn new(ingress: BrokerIngress) -> Self {
        BrokerReconciler { ingress }
    }
}

#[async_trait]
impl Reconciler<Broker> for BrokerReconciler {
    async fn reconcile_kind(
        &self,
        broker: &mut Broker,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        if broker.class().is_some_and(|c| c != MT_BROKER_CLASS) {
            // Another implementation owns this Broker.
            return Ok(());
        }
        let namespace = broker.namespace().unwrap_or_default();
        let name = broker.name_any();
        let now = ctx.now();

        match &self.ingress {
            BrokerIngress::InCluster { system_namespace } => {
                let endpoints: Api<Endpoints> =
                    Api::namespaced(ctx.client().clone(), system_namespace);
                for (service, condition) in [
                    ("broker-ingress", BROKER_CONDITION_INGRESS),
                    ("broker-filter", BROKER_CONDITION_FILTER),
                ] {
                    let ready = endpoints
                        .get_opt(service)
                        .await?
                        .is_some_and(|e| has_addresses(&e));
                    let mut conditions = broker.manage_conditions(now);
                    if ready {
                        conditions.mark_true(condition);
                    } else {
                        conditions.mark_false(
                            condition,
                            "EndpointsUnavailable",
                            &format!(
                                "Endpoints \"{system_namespace}/{service}\" have no ready addresses"
                            ),
                        );
                    }
                }
            }
            BrokerIngress::Url(_) => {
                let mut conditions = broker.manage_conditions(now);
                conditions.mark_true(BROKER_CONDITION_INGRESS);
                conditions.mark_true(BROKER_CONDITION_FILTER);
            }
        }

        let url = self.ingress.broker_url(&namespace, &name);
        let status = broker.status.get_or_insert_with(Default::default);
        status.address.address = Some(Addressable {
            name: Some("http".to_owned()),
            url: Some(url.clone()),
            ..Addressable::default()
        });
        status.address.addresses = vec![Addressable {
            name: Some("http".to_owned()),
            url: Some(url),
            ..Addressable::default()
        }];
        broker
            .manage_conditions(now)
            .mark_true(BROKER_CONDITION_ADDRESSABLE);

        let sink = broker
            .spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.clone());
        match sink {
            None => {
                broker.status.get_or_insert_with(Default::default).delivery = Default::default();
                broker.manage_conditions(now).mark_true_with_reason(
                    BROKER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
                    "DeadLetterSinkNotConfigured",
                    "No dead letter sink is configured.",
                );
            }
            Some(sink) => match Resolver::new(ctx.client().clone())
                .resolve(&sink, &namespace)
                .await
            {
                Ok(resolved) => {
                    let delivery = &mut broker.status.get_or_insert_with(Default::default).delivery;
                    delivery.dead_letter_sink_uri = Some(resolved.url);
                    delivery.dead_letter_sink_ca_certs = resolved.ca_certs;
                    delivery.dead_letter_sink_audience = resolved.audience;
                    broker
                        .manage_conditions(now)
                        .mark_true(BROKER_CONDITION_DEAD_LETTER_SINK_RESOLVED);
                }
                Err(err) => {
                    broker.status.get_or_insert_with(Default::default).delivery =
                        Default::default();
                    broker.manage_conditions(now).mark_false(
                        BROKER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
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

fn has_addresses(endpoints: &Endpoints) -> bool {
    endpoints
        .subsets
        .iter()
        .flatten()
        .any(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()))
}
