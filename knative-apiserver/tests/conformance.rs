//! The same API scenarios as `tests/embedded.rs`, against a real kube-apiserver: the kubeconfig
//! comes from `KNATIVE_TEST_KUBECONFIG`, else `KUBECONFIG` (the project's test environment:
//! `scripts/envtest.sh up`). Both runs must pass; where the embedded server differs from
//! kube-apiserver on purpose, README.md says so.

#[macro_use]
mod scenarios;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};

/// A client for the real API server and a fresh namespace (left for the test environment's
/// next `up` to clear, so a failed run can be inspected).
async fn real() -> (Client, String, ()) {
    let path = std::env::var("KNATIVE_TEST_KUBECONFIG")
        .or_else(|_| std::env::var("KUBECONFIG"))
        .expect("the conformance tests need a real API server: export KUBECONFIG=$(scripts/envtest.sh up)");
    let kubeconfig = Kubeconfig::read_from(&path).expect("a readable kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a valid kubeconfig");
    let client = Client::try_from(config).expect("a client");
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "apis-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {name} on {path}: {e}"));
    (client, name, ())
}

scenario_tests!(real);
