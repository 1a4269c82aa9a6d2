//! Broker: an addressable event mesh that Triggers subscribe to.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use knative_core::apis::{
    AddressStatus, ConditionSet, FieldError, KReference, KnativeObject, KnativeStatus, Status,
    ValidationOptions,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::apis::delivery::{DeliverySpec, DeliveryStatus};
use crate::apis::{Defaults, SetDefaults, Validate};

/// Annotation naming the implementation (class) of a Broker.
pub const BROKER_CLASS_ANNOTATION: &str = "eventing.knative.dev/broker.class";
/// The ConfigMap a Broker without `spec.config` is configured from, in the system namespace.
pub const DEFAULT_BROKER_CONFIG: &str = "config-br-default-channel";

/// Condition: the Broker's ingress accepts events.
pub const BROKER_CONDITION_INGRESS: &str = "IngressReady";
/// Condition: the Broker's filter dispatches to its Triggers.
pub const BROKER_CONDITION_FILTER: &str = "FilterReady";
/// Condition: the Broker has an address.
pub const BROKER_CONDITION_ADDRESSABLE: &str = "Addressable";
/// Condition: the dead-letter sink, if any, resolved to a URI.
pub const BROKER_CONDITION_DEAD_LETTER_SINK_RESOLVED: &str = "DeadLetterSinkResolved";

/// The desired state of a Broker (`eventing.knative.dev/v1` Broker).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "eventing.knative.dev",
    version = "v1",
    kind = "Broker",
    namespaced,
    status = "BrokerStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    category = "eventing",
    doc = "Broker collects a pool of events that are consumable using Triggers. Brokers provide a well-known endpoint for event delivery that senders can use with minimal knowledge of the event routing strategy. Subscribers use Triggers to request delivery of events from a Broker's pool to a specific URL or Addressable endpoint.",
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.address.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BrokerSpec {
    /// The configuration of this Broker's class (usually a ConfigMap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    /// How events are delivered to the Broker's Triggers, unless a Trigger says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// The observed state of a Broker.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct BrokerStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,
    /// Where events are sent to the Broker.
    #[serde(flatten)]
    pub address: AddressStatus,
    /// The resolved dead-letter sink.
    #[serde(flatten)]
    pub delivery: DeliveryStatus,
}

impl KnativeStatus for BrokerStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Broker {
    /// `Ready` from `IngressReady`, `FilterReady`, `Addressable` and `DeadLetterSinkResolved`.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                BROKER_CONDITION_INGRESS,
                BROKER_CONDITION_FILTER,
                BROKER_CONDITION_ADDRESSABLE,
                BROKER_CONDITION_DEAD_LETTER_SINK_RESOLVED,
            ])
        });
        &SET
    }
}

impl Broker {
    /// The Broker's class, from its `eventing.knative.dev/broker.class` annotation.
    pub fn class(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(BROKER_CLASS_ANNOTATION)
            .map(String::as_str)
            .filter(|c| !c.is_empty())
    }
}

impl Validate for Broker {
    /// Knative's `Broker.Validate`: the class annotation is set (defaulting sets it), the
    /// config reference and the delivery spec are valid.
    fn validate(&self) -> Result<(), FieldError> {
        let mut errs = FieldError::default();
        if self.class().is_none() {
            errs = errs.also(FieldError::err_missing_field([BROKER_CLASS_ANNOTATION]));
        }
        let options = ValidationOptions {
            parent_namespace: self.metadata.namespace.clone().unwrap_or_default(),
            // The default config lives in the system namespace.
            different_namespace_allowed: true,
            ..ValidationOptions::default()
        };
        let mut spec = FieldError::default();
        if let Some(config) = &self.spec.config {
            spec = spec.also(
                config
                    .validate_with(&options)
                    .err()
                    .map(|e| e.via_field("config")),
            );
        }
        if let Some(delivery) = &self.spec.delivery {
            spec = spec.also(delivery.validate().err().map(|e| e.via_field("delivery")));
        }
        errs.also(spec.via_field("spec")).into_result()
    }
}

impl SetDefaults for Broker {
    /// Knative's `Broker.SetDefaults`: the class annotation and the config
    /// (`config-br-default-channel` in the system namespace), as `config-br-defaults` ships.
    fn set_defaults(&mut self, defaults: &Defaults) {
        let namespace = self.metadata.namespace.clone().unwrap_or_default();
        let annotations = self.metadata.annotations.get_or_insert_with(BTreeMap::new);
        let class = annotations
            .entry(BROKER_CLASS_ANNOTATION.to_owned())
            .or_default();
        if class.is_empty() {
            class.clone_from(&defaults.broker_class);
        }
        let config = self.spec.config.get_or_insert_with(|| KReference {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            namespace: defaults.system_namespace.clone(),
            name: DEFAULT_BROKER_CONFIG.to_owned(),
            ..KReference::default()
        });
        config.set_defaults(&namespace);
        if let Some(delivery) = &mut self.spec.delivery {
            delivery.set_defaults(&namespace);
        }
    }
}
