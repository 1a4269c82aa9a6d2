//! # knative-eventing
//!
//! Knative Eventing in Rust: brokers, triggers, channels, subscriptions, flows and sources over
//! CloudEvents (work in progress).
//!
//! - [`apis`]: the object model and its validation.
//! - [`reconciler`]: the control plane.
//! - [`filter`]: Trigger filters and the CloudEvents subscriptions-API dialects.
//! - [`delivery`]: retries, backoff, timeouts, dead-letter sinks, replies.
//! - [`broker`], [`channel`]: data planes.
//! - [`sources`]: event sources' adapters.

pub mod apis;
pub mod broker;
pub mod channel;
pub mod delivery;
pub mod filter;
pub mod reconciler;
pub mod sources;
