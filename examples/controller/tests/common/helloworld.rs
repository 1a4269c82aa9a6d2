//! What the envtests of both controller binaries (`knative-controller`, `knative controller`)
//! check first: Knative's helloworld Service, applied, reconciles to a Configuration and a
//! Revision Deployment with the user container and the queue-proxy. Shared by `#[path]`.

use k8s_openapi::api::apps::v1::Deployment;
use knative_core::testing::envtest::eventually;
use knative_serving::apis::{Configuration, Service};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

/// Applies `examples/manifests/helloworld-go.yaml` in `namespace` as `manager`, waits for the
/// Configuration `hello` and the Deployment `hello-00001-deployment`, and checks the
/// Deployment's containers.
pub async fn apply_and_await_its_deployment(client: &Client, namespace: &str, manager: &str) {
    let service: Service =
        serde_yaml::from_str(include_str!("../../../manifests/helloworld-go.yaml")).unwrap();
    Api::<Service>::namespaced(client.clone(), namespace)
        .patch(
            "hello",
            &PatchParams::apply(manager),
            &Patch::Apply(&service),
        )
        .await
        .expect("apply helloworld");

    let configs = Api::<Configuration>::namespaced(client.clone(), namespace);
    eventually("Configuration hello", async || {
        configs.get_opt("hello").await.ok()?
    })
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
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
}
