//! `eventing.knative.dev`: v1 [`Broker`] and [`Trigger`], v1beta3 [`EventType`].
//!
//! A Broker is an event mesh: producers post events to its address, and each Trigger subscribes
//! a destination to the events that pass its filter. EventTypes register what a Broker offers.

pub mod broker;
pub mod event_type;
pub mod trigger;

pub use broker::{Broker, BrokerSpec, BrokerStatus};
pub use event_type::{EventAttributeDefinition, EventType, EventTypeSpec};
pub use trigger::{SubscriptionsAPIFilter, Trigger, TriggerFilter, TriggerSpec, TriggerStatus};
