//! Knative Eventing's object model, wire-compatible with Knative's YAML.
//!
//! - [`delivery`]: [`DeliverySpec`] (retries, backoff, timeouts, dead-letter sinks), shared by
//!   every kind that delivers events.
//! - [`eventing`]: `eventing.knative.dev/v1` [`Broker`] and [`Trigger`] with its filters
//!   ([`TriggerFilter`], [`SubscriptionsAPIFilter`]); `eventing.knative.dev/v1beta3`
//!   [`EventType`].
//! - [`messaging`]: `messaging.knative.dev/v1` [`Channel`], [`InMemoryChannel`],
//!   [`Subscription`].
//! - [`flows`]: `flows.knative.dev/v1` [`Sequence`] and [`Parallel`].
//! - [`sources`]: `sources.knative.dev/v1` [`PingSource`], [`ApiServerSource`],
//!   [`ContainerSource`], [`SinkBinding`].
//!
//! Every user-facing kind validates with [`Validate`] and defaults with [`SetDefaults`], as
//! Knative's webhook does. Errors are [`FieldError`]s with paths such as
//! `spec.filters[0].exact[Type]`, rendered with Knative's messages.
//!
//! ```
//! use knative_eventing::apis::{Defaults, SetDefaults, Trigger, Validate};
//!
//! let mut trigger: Trigger = serde_yaml::from_str(r#"
//! apiVersion: eventing.knative.dev/v1
//! kind: Trigger
//! metadata:
//!   name: my-service-trigger
//!   namespace: default
//! spec:
//!   broker: default
//!   filter:
//!     attributes:
//!       type: dev.knative.foo.bar
//!       myextension: my-extension-value
//!   subscriber:
//!     ref:
//!       apiVersion: serving.knative.dev/v1
//!       kind: Service
//!       name: my-service
//! "#).unwrap();
//! trigger.set_defaults(&Defaults::default());
//! assert!(trigger.validate().is_ok());
//!
//! trigger.spec.filter.as_mut().unwrap().attributes.insert("Type".into(), "x".into());
//! assert_eq!(
//!     trigger.validate().unwrap_err().to_string(),
//!     "invalid key name \"Type\": spec.filter.attributes[Type]\n\
//!      Attribute name must start with a letter and can only contain lowercase alphanumeric"
//! );
//! ```

pub mod check;
pub mod delivery;
pub mod eventing;
pub mod flows;
pub mod messaging;
pub mod sources;

mod schema;

pub use knative_core::apis::FieldError;

pub use delivery::{BackoffPolicy, DeliveryFormat, DeliverySpec, DeliveryStatus};
pub use eventing::{
    Broker, BrokerSpec, BrokerStatus, EventType, EventTypeSpec, SubscriptionsAPIFilter, Trigger,
    TriggerFilter, TriggerSpec, TriggerStatus,
};
pub use flows::{Parallel, ParallelSpec, ParallelStatus, Sequence, SequenceSpec, SequenceStatus};
pub use messaging::{
    Channel, ChannelSpec, ChannelStatus, ChannelTemplateSpec, InMemoryChannel, InMemoryChannelSpec,
    InMemoryChannelStatus, Subscription, SubscriptionSpec, SubscriptionStatus,
};
pub use sources::{
    ApiServerSource, ApiServerSourceSpec, ContainerSource, ContainerSourceSpec, PingSource,
    PingSourceSpec, SinkBinding, SinkBindingSpec,
};

/// A resource that checks itself as Knative's admission webhook does.
pub trait Validate {
    /// Every problem found, each with the path of the field concerned.
    fn validate(&self) -> Result<(), FieldError>;
}

/// A resource that fills in unset fields as Knative's defaulting webhook does.
pub trait SetDefaults {
    /// Sets every unset field that Knative defaults, from `defaults`. Idempotent.
    fn set_defaults(&mut self, defaults: &Defaults);
}

/// The values of Knative's `config-br-defaults` and `default-ch-webhook` that defaulting
/// needs; [`Defaults::default()`] holds Knative's stock values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// The class given to a Broker without the `eventing.knative.dev/broker.class`
    /// annotation (`MTChannelBasedBroker`).
    pub broker_class: String,
    /// The namespace Knative Eventing runs in (`knative-eventing`), where the default Broker
    /// config lives.
    pub system_namespace: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            broker_class: "MTChannelBasedBroker".to_owned(),
            system_namespace: "knative-eventing".to_owned(),
        }
    }
}
