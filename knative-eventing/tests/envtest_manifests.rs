//! `knative_eventing::crds()` on a real kube-apiserver (see `scripts/envtest.sh`): every CRD is
//! accepted and established, and every manifest of Knative's Eventing documentation
//! (`examples/manifests/eventing/`) applies unchanged, its spec stored without a field pruned.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::testing::envtest::{TestNamespace, client};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use tokio::sync::OnceCell;

/// Installs Eventing's CRDs once per test binary, by server-side apply, and waits until the
/// API server serves them.
async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-eventing-envtest").force();
        for crd in knative_eventing::crds() {
            api.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install {}: {e}", crd.name_any()));
        }
        for crd in knative_eventing::crds() {
            let name = crd.name_any();
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
                .unwrap();
        }
    })
    .await;
    client
}

fn manifests() -> Vec<(String, DynamicObject)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests/eventing");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_yaml::from_str(&text).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_eventing_crd_is_established() {
    let client = setup().await;
    let api = Api::<CustomResourceDefinition>::all(client);
    for crd in knative_eventing::crds() {
        let stored = api.get(&crd.name_any()).await.unwrap();
        assert_eq!(stored.spec.names.kind, crd.spec.names.kind);
    }
}

#[tokio::test]
async fn every_documented_manifest_applies_and_keeps_its_spec() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-manifests").await;
    for (file, object) in manifests() {
        let types = object.types.clone().expect("apiVersion and kind");
        let resource = kube::api::ApiResource::from_gvk(
            &kube::api::GroupVersionKind::try_from(&types).unwrap(),
        );
        // A manifest that names its namespace (`default`) goes there; the others to ours.
        let namespace = object.namespace().unwrap_or_else(|| ns.name.clone());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let applied = api
            .patch(
                &object.name_any(),
                &PatchParams::apply("kubectl"),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: the API server refused it: {e}"));
        // A manifest without a spec (a Broker) is stored with the CRD's default, `{}`.
        let sent = object
            .data
            .get("spec")
            .cloned()
            .unwrap_or(serde_json::json!({}));
        assert_eq!(
            applied.data.get("spec"),
            Some(&sent),
            "{file}: the stored spec differs (a field was pruned or changed)"
        );
        // Several documented manifests share a name: each is applied on its own.
        api.delete(&object.name_any(), &DeleteParams::default())
            .await
            .unwrap();
    }
    ns.delete().await;
}
