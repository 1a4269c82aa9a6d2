//! The data plane: requests travel gateway → (activator) → queue-proxy → user container.
//!
//! - [`queue`]: the queue-proxy sidecar (concurrency breaker, stats, probes, drain).
//! - [`activator`]: buffers requests while a revision has no ready backend, then throttles.
//! - [`gateway`]: implements the `networking.internal.knative.dev` Ingress.
//! - [`proxy`]: the forwarding client all three share.
//! - Layers the queue-proxy stacks (each a tower `Layer`): [`probe`], [`timeout`], [`stats`],
//!   [`breaker`]; with [`drain`] and the shared response [`body`] helpers.

pub mod activator;
pub mod body;
pub mod breaker;
pub mod drain;
pub mod gateway;
pub mod probe;
pub mod proxy;
pub mod queue;
pub mod stats;
pub mod throttler;
pub mod timeout;
mod upstream;
