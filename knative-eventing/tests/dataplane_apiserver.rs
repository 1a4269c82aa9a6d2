//! The ApiServerSource adapter against the real API server (envtest): ConfigMaps added, updated
//! and deleted in a namespace arrive at a sink on loopback as CloudEvents.

use std::time::Duration;

use cloudevents::AttributesReader;
use k8s_openapi::api::core::v1::ConfigMap;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_eventing::apis::sources::api_server::ApiServerSource;
use knative_eventing::delivery::Dispatcher;
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::sources::apiserver::ApiServerAdapter;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

#[tokio::test]
async fn config_map_changes_arrive_as_add_update_and_delete_events() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "apiserversource").await;
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let source: ApiServerSource = serde_json::from_value(serde_json::json!({
        "apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource",
        "metadata": {"name": "watch-config", "namespace": ns.name},
        "spec": {
            "mode": "Reference",
            "serviceAccountName": "default",
            "resources": [{"apiVersion": "v1", "kind": "ConfigMap",
                           "selector": {"matchLabels": {"watched": "yes"}}}],
            "sink": {"uri": sink.uri.to_string()}
        }
    }))
    .unwrap();
    let adapter = ApiServerAdapter::from_source(&source, "https://127.0.0.1").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watching = {
        let client = client.clone();
        tokio::spawn(async move {
            adapter
                .run(client, &Dispatcher::new(), async move {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let config_map = |name: &str, watched: &str| -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"watched": watched}},
            "data": {"v": "1"}
        }))
        .unwrap()
    };
    maps.create(&PostParams::default(), &config_map("ignored", "no"))
        .await
        .unwrap();
    maps.create(&PostParams::default(), &config_map("settings", "yes"))
        .await
        .unwrap();
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1);
    maps.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    assert_eq!(sink.wait_for(2, Duration::from_secs(10)).await, 2);
    maps.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(sink.wait_for(3, Duration::from_secs(10)).await, 3);

    let events = sink.events().await;
    let types: Vec<&str> = events.iter().map(|e| e.ty()).collect();
    assert_eq!(
        types,
        [
            "dev.knative.apiserver.ref.add",
            "dev.knative.apiserver.ref.update",
            "dev.knative.apiserver.ref.delete"
        ]
    );
    let subject = format!("/api/v1/namespaces/{}/configmaps/settings", ns.name);
    assert!(events.iter().all(|e| e.subject() == Some(subject.as_str())));
    let _ = stop.send(());
    watching.await.unwrap().unwrap();
    ns.delete().await;
}
