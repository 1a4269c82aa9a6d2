//! `knative-controller`, the lean Serving controller, as a process against the real API server:
//! Knative's helloworld Service is reconciled to its Configuration, Route, Revision, Deployment
//! and PodAutoscaler; SIGTERM stops it cleanly.

use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use knative_core::testing::KillOnDrop;
use knative_core::testing::envtest::{TestNamespace, client, eventually, install_crds};
use knative_serving::apis::{Configuration, PodAutoscaler, Route, Service};
use kube::api::{Api, Patch, PatchParams};

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

    let service: Service =
        serde_yaml::from_str(include_str!("../../manifests/helloworld-go.yaml")).unwrap();
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .patch(
            "hello",
            &PatchParams::apply("knative-lean-controller-test"),
            &Patch::Apply(&service),
        )
        .await
        .expect("apply helloworld");

    let configs = Api::<Configuration>::namespaced(client.clone(), &ns.name);
    eventually("Configuration hello", async || {
        configs.get_opt("hello").await.ok()?
    })
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
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    let deployment = eventually("Deployment hello-00001-deployment", async || {
        deployments.get_opt("hello-00001-deployment").await.ok()?
    })
    .await;
    let containers: Vec<String> = deployment
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(containers, ["user-container", "queue-proxy"]);

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
