//! `knative crds` on a real kube-apiserver: every CRD it prints is accepted and established,
//! and Knative's own YAML applies to them unchanged, with nothing pruned.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::serving::v1::Service;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde::Deserialize;

fn printed_crds() -> Vec<CustomResourceDefinition> {
    let out = Command::new(env!("CARGO_BIN_EXE_knative"))
        .arg("crds")
        .output()
        .expect("run knative crds");
    assert!(
        out.status.success(),
        "knative crds failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("UTF-8");
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| CustomResourceDefinition::deserialize(doc).expect("a CRD document"))
        .collect()
}

async fn install(client: &Client) -> Vec<CustomResourceDefinition> {
    let crds = printed_crds();
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in &crds {
        api.patch(
            &crd.name_any(),
            &PatchParams::apply("knative-crds-test").force(),
            &Patch::Apply(crd),
        )
        .await
        .unwrap_or_else(|e| panic!("the API server refused {}: {e}", crd.name_any()));
    }
    for crd in &crds {
        let name = crd.name_any();
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
        .unwrap();
    }
    crds
}

/// Applies one YAML document from Knative's docs, unchanged, and returns what the server stored.
async fn apply(client: &Client, namespace: &str, yaml: &str) -> serde_json::Value {
    let obj: DynamicObject = serde_yaml::from_str(yaml).expect("YAML");
    let types = obj.types.clone().expect("apiVersion and kind");
    let (group, version) = types.api_version.split_once('/').expect("group/version");
    let gvk = GroupVersionKind::gvk(group, version, &types.kind);
    let plural = format!("{}s", types.kind.to_lowercase());
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    );
    let stored = api
        .patch(
            &obj.name_any(),
            &PatchParams::apply("knative-crds-test"),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the API server refused the {} from Knative's docs: {e}",
                types.kind
            )
        });
    serde_json::to_value(stored).unwrap()
}

#[tokio::test]
async fn every_printed_crd_is_accepted_and_established() {
    let client = client().await;
    let crds = install(&client).await;
    let names: Vec<String> = crds.iter().map(ResourceExt::name_any).collect();
    for expected in [
        "services.serving.knative.dev",
        "configurations.serving.knative.dev",
        "revisions.serving.knative.dev",
        "routes.serving.knative.dev",
        "podautoscalers.autoscaling.internal.knative.dev",
        "ingresses.networking.internal.knative.dev",
        "serverlessservices.networking.internal.knative.dev",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from knative crds: {names:?}"
        );
    }
    let stored = Api::<CustomResourceDefinition>::all(client.clone())
        .get("services.serving.knative.dev")
        .await
        .unwrap();
    assert_eq!(
        stored.spec.names.short_names,
        Some(vec!["kservice".to_owned(), "ksvc".to_owned()])
    );
}

const HELLOWORLD: &str = include_str!("../../manifests/helloworld-go.yaml");

/// Knative's traffic-splitting example (docs: "Traffic management"), unchanged.
const TRAFFIC_SPLIT: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: example-service
spec:
  template:
    metadata:
      name: example-service-green
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          env:
            - name: TARGET
              value: "green"
  traffic:
    - tag: current
      revisionName: example-service-blue
      percent: 50
    - tag: candidate
      revisionName: example-service-green
      percent: 50
    - tag: latest
      latestRevision: true
      percent: 0
"#;

#[tokio::test]
async fn knatives_helloworld_service_applies_unchanged_and_nothing_is_pruned() {
    let client = client().await;
    install(&client).await;
    let ns = TestNamespace::create(&client, "crds-helloworld").await;
    let stored = apply(&client, &ns.name, HELLOWORLD).await;
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/knative/helloworld-go:latest");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(
        container["env"][0],
        serde_json::json!({"name": "TARGET", "value": "World"})
    );
    let typed: Service =
        serde_json::from_value(stored).expect("the stored object reads back as our Service type");
    assert_eq!(typed.name_any(), "hello");
    ns.delete().await;
}

#[tokio::test]
async fn knatives_traffic_splitting_service_applies_unchanged_and_nothing_is_pruned() {
    let client = client().await;
    install(&client).await;
    let ns = TestNamespace::create(&client, "crds-traffic").await;
    let stored = apply(&client, &ns.name, TRAFFIC_SPLIT).await;
    assert_eq!(
        stored["spec"]["template"]["metadata"]["name"],
        "example-service-green"
    );
    let traffic = stored["spec"]["traffic"].as_array().expect("traffic kept");
    assert_eq!(traffic.len(), 3);
    assert_eq!(
        traffic[0],
        serde_json::json!({"tag": "current", "revisionName": "example-service-blue", "percent": 50})
    );
    assert_eq!(
        traffic[2],
        serde_json::json!({"tag": "latest", "latestRevision": true, "percent": 0})
    );
    ns.delete().await;
}
