//! # knative-core
//!
//! Knative's API machinery in Rust, the layer every other crate of the SDK builds on.
//!
//! - [`apis`]: conditions with knative.dev/pkg's semantics, duck types, field errors.
//! - [`client`]: a client for the cluster of a kubeconfig, or kube's defaults.
//! - [`reconciler`]: the [`Reconciler`](reconciler::Reconciler) trait and one generic driver
//!   onto `kube::runtime::Controller`.
//! - [`config`]: typed configuration from ConfigMaps, watched live.
//! - [`leader`]: Lease-based leader election.
//! - [`http1`]: HTTP/1.1 client connections driven by their user, for the data planes.
//! - [`metrics`]: Prometheus metrics of the reconcilers.
//! - `testing` (feature `testing`): a recording API double and helpers for a real API server.

pub mod apis;
pub mod client;
pub mod config;
pub mod http1;
pub mod leader;
pub mod metrics;
pub mod reconciler;
pub mod signal;
#[cfg(feature = "testing")]
pub mod testing;
