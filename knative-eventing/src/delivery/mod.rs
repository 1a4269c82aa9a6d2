//! Delivery: how an event gets from a data plane to its destination.
//!
//! - [`RetryPolicy`] and [`DeliveryPolicy`]: retries with linear or exponential backoff,
//!   per-attempt timeouts, `Retry-After` capped by `retryAfterMax`, a dead-letter sink; built
//!   from a Knative [`DeliverySpec`](crate::apis::delivery::DeliverySpec) with `TryFrom`.
//! - [`Dispatcher`]: sends events over HTTP (`Prefer: reply`), retrying on network errors,
//!   timeouts, 5xx, 404, 408, 409 and 429, and dead-letters them with `knativeerrordest`,
//!   `knativeerrorcode` and `knativeerrordata`; every delivery ends in one [`Outcome`].
//! - [`codec`]: CloudEvents over HTTP in binary and structured mode (the `cloudevents-sdk`
//!   crate's HTTP binding) with clear reasons for malformed events.
//! - [`server`]: the small hyper 1 server the broker and channels listen with.
//! - [`recorder`]: a sink that records (and can fail or reply to) what it receives.
//!
//! ```
//! use std::time::Duration;
//! use knative_eventing::apis::delivery::DeliverySpec;
//! use knative_eventing::delivery::DeliveryPolicy;
//!
//! let spec: DeliverySpec = serde_json::from_str(
//!     r#"{"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT0.1S",
//!         "deadLetterSink": {"uri": "http://dlq.default.svc/"}}"#,
//! ).unwrap();
//! let policy = DeliveryPolicy::try_from(&spec).unwrap();
//! assert_eq!(policy.retry.retry, 5);
//! assert_eq!(policy.retry.backoff_delay(3), Duration::from_millis(300));
//! ```

mod client;
pub mod codec;
mod dispatcher;
pub mod recorder;
mod retry;
pub mod server;
mod stats;

pub use codec::ContentMode;
pub use dispatcher::{
    DeliveryPolicy, Dispatcher, Failure, MAX_ERROR_DATA, Outcome, dead_letter_event,
};
pub use retry::{Backoff, PolicyError, RetryPolicy, parse_retry_after};
pub use stats::{DeliveryStats, StatsSnapshot};
