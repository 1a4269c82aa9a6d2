//! `messaging.knative.dev/v1`: [`Channel`], [`InMemoryChannel`] and [`Subscription`], and the
//! Channelable duck type they share.
//!
//! A Channel is backed by a channel of a concrete kind (InMemoryChannel by default); each
//! Subscription adds its resolved subscriber to the backing channel's `spec.subscribers`.

pub mod channel;
pub mod channelable;
pub mod in_memory_channel;
pub mod subscription;

pub use channel::{Channel, ChannelSpec, ChannelStatus, ChannelTemplateSpec};
pub use channelable::{ChannelableSpec, ChannelableStatus, SubscriberSpec, SubscriberStatus};
pub use in_memory_channel::{InMemoryChannel, InMemoryChannelSpec, InMemoryChannelStatus};
pub use subscription::{PhysicalSubscription, Subscription, SubscriptionSpec, SubscriptionStatus};
