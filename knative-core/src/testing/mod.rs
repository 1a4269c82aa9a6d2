//! Fixtures for testing reconcilers, shared by users and by the SDK's own tests
//! (enable the `testing` feature).
//!
//! - [`RecordingApi`]: an in-memory API server behind a real `kube::Client`, for table-style
//!   reconciler tests: objects in; creates, updates, status updates, patches, deletes and Events
//!   out; induced failures such as a 409 on the next update.
//! - [`envtest`]: connect to the real API server of the test environment
//!   (`scripts/envtest.sh up`) and make a fresh namespace per test.
//! - [`embedded`]: a Kubernetes-compatible API server in the test's own process (the one
//!   `knative local` runs): real HTTP, list and watch, patches, `/status`, finalizers, owner
//!   garbage collection, CRDs; it starts in milliseconds, in memory or on a data directory.
//!   Where it differs from kube-apiserver, its README says so; the same API scenarios run
//!   against both in `knative-apiserver`'s tests.
//! - [`KillOnDrop`]: a child process (a controller under test) that does not outlive a failing
//!   test.

mod api;
pub mod envtest;

/// A child process that is killed (and reaped) when this is dropped, so that a test that fails
/// half-way leaves no controller running against the shared test environment.
#[derive(Debug)]
pub struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    /// Guards `child`.
    pub fn new(child: std::process::Child) -> Self {
        Self(Some(child))
    }

    /// The child, to signal or wait for.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0
            .as_mut()
            .expect("the child is guarded until into_inner")
    }

    /// The child, no longer guarded (e.g. for `wait_with_output`).
    pub fn into_inner(mut self) -> std::process::Child {
        self.0
            .take()
            .expect("the child is guarded until into_inner")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The embedded API server ([`knative_apiserver`]), for integration tests that need a real
/// API server but not a cluster.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use knative_core::testing::embedded::ApiServer;
/// use kube::api::{Api, PostParams};
///
/// let server = ApiServer::builder().in_memory().start().await?;
/// let client = server.client();
/// let config_maps: Api<ConfigMap> = Api::namespaced(client, "default");
/// let cm: ConfigMap = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "config-domain"}, "data": {"example.com": ""}
/// }))?;
/// config_maps.create(&PostParams::default(), &cm).await?;
/// assert_eq!(config_maps.get("config-domain").await?.data.unwrap()["example.com"], "");
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub mod embedded {
    pub use knative_apiserver::{ApiServer, Builder, Error, RunningApiServer};
}

pub use api::{Action, RecordedEvent, RecordingApi, Verb};

#[cfg(test)]
mod tests {
    use super::KillOnDrop;

    #[test]
    fn a_guarded_child_is_killed_and_reaped_when_the_guard_is_dropped() {
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let proc_entry = format!("/proc/{}", child.id());
        assert!(std::path::Path::new(&proc_entry).exists());
        drop(KillOnDrop::new(child));
        assert!(!std::path::Path::new(&proc_entry).exists());
    }

    #[test]
    fn a_child_taken_out_of_its_guard_keeps_running() {
        let guard = KillOnDrop::new(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        );
        let mut child = guard.into_inner();
        assert!(child.try_wait().unwrap().is_none(), "still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
