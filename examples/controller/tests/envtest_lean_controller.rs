//! `knative-controller`, the lean Serving controller, as a process against the real API server:
//! Knative's helloworld Service is reconciled to its Configuration, Route, Revision, Deployment
//! and PodAutoscaler; SIGTERM stops it cleanly.

use std::process::{Command, Stdio};

#[path = "common/helloworld.rs"]
mod helloworld;

use knative_core::testing::KillOnDrop;
use knative_core::testing::envtest::{TestNamespace, client, eventually, install_crds};
use knative_serving::apis::{PodAutoscaler, Route};
use kube::api::Api;

#[tokio::test]
async fn the_lean_controller_reconciles_helloworld_and_stops_on_sigterm() {
    let client = client().await;
    install_crds(
        &client,
        "knative-lean-controller-test",
        &knative_serving::crds(),
    )
    .await;
    let ns = TestNamespace::create(&client, "lean-controller").await;
    let kubeconfig = std::env::var("KNATIVE_TEST_KUBECONFIG")
        .or_else(|_| std::env::var("KUBECONFIG"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_knative-controller"))
        .args(["--namespace", &ns.name, "--metrics-addr", "127.0.0.1:0"])
        .args([
            "--autoscaler-addr",
            "127.0.0.1:0",
            "--kubeconfig",
            &kubeconfig,
        ])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start knative-controller");
    let child = KillOnDrop::new(child);

    helloworld::apply_and_await_its_deployment(&client, &ns.name, "knative-lean-controller-test")
        .await;
    let routes = Api::<Route>::namespaced(client.clone(), &ns.name);
    eventually("Route hello", async || {
        routes.get_opt("hello").await.ok()?
    })
    .await;
    let autoscalers = Api::<PodAutoscaler>::namespaced(client.clone(), &ns.name);
    eventually("PodAutoscaler hello-00001", async || {
        autoscalers.get_opt("hello-00001").await.ok()?
    })
    .await;

    let child = child.into_inner();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exited with {}\n{log}",
        output.status
    );
    assert!(log.contains("starting the Serving reconcilers"), "{log}");
    ns.delete().await;
}
