//! The data plane: requests travel gateway → (activator) → queue-proxy → user container.
//!
//! - [`queue`]: the queue-proxy sidecar (concurrency breaker, stats, probes, drain).
//! - [`activator`]: buffers requests while a revision has no ready backend, then throttles.
//! - [`gateway`]: implements the `networking.internal.knative.dev` Ingress.
//! - [`proxy`]: the forwarding client all three share.

pub mod activator;
pub mod gateway;
pub mod proxy;
pub mod queue;
pub mod throttler;
