//! The queue-proxy's traffic tests with the fast path off: every request through hyper's server
//! and client, as requests the fast path does not take are served.

const FAST_PATH: bool = false;

#[path = "queue_proxy/cases.rs"]
mod cases;
