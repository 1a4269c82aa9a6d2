//! Event sources' adapters: the processes that turn something happening into CloudEvents sent to
//! a sink.
//!
//! - [`adapter`]: the environment every adapter reads (`K_SINK`, `K_CE_OVERRIDES`).
//! - [`ping`]: PingSource, `dev.knative.sources.ping` on a cron schedule in a time zone.
//! - [`apiserver`]: ApiServerSource, Kubernetes watch events as
//!   `dev.knative.apiserver.{ref,resource}.{add,update,delete}`.

pub mod adapter;
pub mod apiserver;
pub mod ping;
