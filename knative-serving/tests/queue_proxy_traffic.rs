//! The queue-proxy's traffic tests with the fast path for plain HTTP/1.1 requests on, as it is
//! by default.

const FAST_PATH: bool = true;

#[path = "queue_proxy/cases.rs"]
mod cases;
