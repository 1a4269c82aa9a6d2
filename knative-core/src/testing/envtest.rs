//! Helpers for integration tests against a real kube-apiserver.
//!
//! The kubeconfig is taken from `KNATIVE_TEST_KUBECONFIG`, else from `KUBECONFIG`.
//! There is deliberately no silent skip: without an API server the tests fail and say how
//! to start one.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config, ResourceExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const HOW_TO: &str = "integration tests need a real API server: run `scripts/test.sh`, or \
     `export KUBECONFIG=$(scripts/envtest.sh up)` before `cargo test`";

/// A client for the test environment's API server.
///
/// # Panics
/// When no kubeconfig is configured or the server cannot be reached: the message says how to
/// start the test environment.
pub async fn client() -> Client {
    let path = std::env::var("KNATIVE_TEST_KUBECONFIG")
        .or_else(|_| std::env::var("KUBECONFIG"))
        .unwrap_or_else(|_| panic!("no KUBECONFIG set; {HOW_TO}"));
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {path}: {e}; {HOW_TO}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("invalid kubeconfig {path}: {e}; {HOW_TO}"));
    let client = Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a client: {e}"));
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("API server of {path} unreachable: {e}; {HOW_TO}"));
    client
}

/// A namespace that exists for one test. The test environment starts from an empty etcd on
/// every `up`, so namespaces left behind by failed tests are gone on the next run.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates a fresh namespace named `<prefix>-<pid>-<n>`.
    ///
    /// # Panics
    /// When the API server refuses to create it.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace literal");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        Self {
            name,
            client: client.clone(),
        }
    }
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl TestNamespace {
    /// Deletes the namespace (and so everything in it).
    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// Applies `crds` (server-side, as `field_manager`) and waits until each is established, so
/// that the kinds are served when this returns.
///
/// # Panics
/// When a CRD is refused or not established within 30 s.
pub async fn install_crds(client: &Client, field_manager: &str, crds: &[CustomResourceDefinition]) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply(field_manager).force();
    for crd in crds {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("cannot install the CRD {name}: {e}"));
    }
    for crd in crds {
        let name = crd.name_any();
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("the CRD {name} is not established after 30 s"))
        .unwrap_or_else(|e| panic!("watching the CRD {name}: {e}"));
    }
}

/// How long [`eventually`] waits.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `probe` every 100 ms until it yields a value, for at most [`PATIENCE`].
///
/// # Panics
/// When `probe` yields nothing in time; the message names `what` was awaited.
pub async fn eventually<T>(what: &str, probe: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(PATIENCE, probe)
        .await
        .unwrap_or_else(|| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

/// Polls `probe` every 100 ms until it yields a value, for at most `patience`; `None` when it
/// never did (for a caller that adds its own diagnostics to the failure).
pub async fn eventually_within<T>(
    patience: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
