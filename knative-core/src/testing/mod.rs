//! Fixtures for testing reconcilers, shared by users and by the SDK's own tests
//! (enable the `testing` feature).
//!
//! - [`RecordingApi`]: an in-memory API server behind a real `kube::Client`, for table-style
//!   reconciler tests: objects in; creates, updates, status updates, patches, deletes and Events
//!   out; induced failures such as a 409 on the next update.
//! - [`envtest`]: connect to the real API server of the test environment
//!   (`scripts/envtest.sh up`) and make a fresh namespace per test.

mod api;
pub mod envtest;

pub use api::{Action, RecordedEvent, RecordingApi, Verb};
