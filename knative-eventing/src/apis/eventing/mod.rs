//! `eventing.knative.dev`: v1 [`Broker`](broker::Broker) and [`Trigger`](trigger::Trigger),
//! and v1beta3 `EventType`.
//!
//! A Broker is an event mesh: producers post events to its address, and each Trigger subscribes
//! a destination to the events that pass its filter.

pub mod broker;
pub mod trigger;

pub use trigger::{SubscriptionsAPIFilter, Trigger, TriggerFilter, TriggerSpec, TriggerStatus};
