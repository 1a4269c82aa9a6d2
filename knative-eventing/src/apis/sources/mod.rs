//! `sources.knative.dev/v1`: [`PingSource`], [`ApiServerSource`], [`ContainerSource`] and
//! [`SinkBinding`]. Their statuses are the Source duck's
//! ([`SourceStatus`](knative_core::apis::SourceStatus)).

pub mod api_server;
pub mod container;
pub mod cron;
pub mod ping;
pub mod sink_binding;

pub use api_server::{
    APIVersionKind, APIVersionKindSelector, ApiServerSource, ApiServerSourceSpec,
};
pub use container::{ContainerSource, ContainerSourceSpec};
pub use ping::{PingSource, PingSourceSpec};
pub use sink_binding::{Reference, SinkBinding, SinkBindingSpec};

/// Condition: the sink resolved to a URI.
pub const SOURCE_CONDITION_SINK_PROVIDED: &str = "SinkProvided";
/// Condition: the source's adapter Deployment is available.
pub const SOURCE_CONDITION_DEPLOYED: &str = "Deployed";
