//! `knative webhook` as a process, registered with the real API server: an invalid Service is
//! refused with its field path, a valid one is stored defaulted, and SIGTERM with
//! `--unregister-on-exit` removes the registration again.
//!
//! The registration selects only the test's namespace (by a label) and carries a unique name
//! suffix, so no other test ever reaches this webhook.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::testing::KillOnDrop;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::Service;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

const SELECTOR_LABEL: &str = "webhook-cli-test.knative-rs.dev/namespace";

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn service(name: &str, traffic: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "name": name },
        "spec": {
            "template": { "spec": { "containers": [{ "image": "ghcr.io/knative/helloworld-go" }] } },
            "traffic": traffic,
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn the_webhook_command_registers_refuses_invalid_services_and_unregisters_on_sigterm() {
    let client = client().await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in knative_serving::crds() {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("knative-webhook-cli-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("install CRD");
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("established")
        .unwrap();
    }
    let ns = TestNamespace::create(&client, "webhook-cli").await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { SELECTOR_LABEL: ns.name } } })),
        )
        .await
        .expect("label the namespace");

    let kubeconfig = std::env::var("KNATIVE_TEST_KUBECONFIG")
        .or_else(|_| std::env::var("KUBECONFIG"))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let suffix = format!("{}.cli-test.knative-rs.dev", ns.name);
    let mut webhook = KillOnDrop::new(
        Command::new(env!("CARGO_BIN_EXE_knative"))
            .args([
                "webhook",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--register-url",
                &format!("https://127.0.0.1:{port}"),
                "--namespace-selector",
                &format!("{SELECTOR_LABEL}={}", ns.name),
                "--registration-suffix",
                &suffix,
                "--unregister-on-exit",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start knative webhook"),
    );

    let validating_name = format!("validation.webhook.serving.knative.dev.{suffix}");
    let configurations = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    eventually("the validating webhook is registered", async || {
        configurations.get_opt(&validating_name).await.unwrap()
    })
    .await;

    let services = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::erase::<Service>(&()),
    );
    let invalid = service("split", json!([{ "latestRevision": true, "percent": 90 }]));
    let refusal = eventually("the webhook refuses an invalid Service", async || {
        services
            .create(&PostParams::default(), &invalid)
            .await
            .err()
    })
    .await;
    let kube::Error::Api(status) = &refusal else {
        panic!("not a refusal by the API server: {refusal}")
    };
    assert!(
        status.message.contains("spec.traffic"),
        "the refusal names the field: {}",
        status.message
    );

    let stored = services
        .create(&PostParams::default(), &service("hello", json!(null)))
        .await
        .expect("a valid Service is stored");
    assert_eq!(
        stored.data["spec"]["template"]["spec"]["containers"][0]["name"], "user-container",
        "stored defaulted"
    );

    let pid = webhook.child().id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let exit = eventually("knative webhook exits", async || {
        webhook.child().try_wait().unwrap()
    })
    .await;
    assert!(exit.success(), "knative webhook exits cleanly: {exit}");
    assert!(
        configurations
            .get_opt(&validating_name)
            .await
            .unwrap()
            .is_none(),
        "--unregister-on-exit removed the validating webhook"
    );
    ns.delete().await;
}
