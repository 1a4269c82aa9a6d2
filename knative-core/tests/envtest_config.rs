//! The live configuration store against a real API server.
//!
//! Run with `KUBECONFIG=… cargo test -p knative-core --features testing --test envtest_config`.

#![cfg(feature = "testing")]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use knative_core::config::{AutoscalerConfig, Config, ConfigStore};
use knative_core::testing::envtest::{TestNamespace, client};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config_map(name: &str, pairs: &[(&str, &str)]) -> ConfigMap {
    let data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data,
    }))
    .expect("ConfigMap literal")
}

/// Polls `check` until it holds or the timeout passes.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(store: &ConfigStore) {
    tokio::time::timeout(TIMEOUT, store.ready())
        .await
        .expect("the store syncs");
}

#[tokio::test]
async fn empty_namespace_yields_the_defaults() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "config-empty").await;
    let store = ConfigStore::start(client.clone(), ns.name.clone());
    ready(&store).await;
    assert_eq!(*store.snapshot(), Config::default());
    ns.delete().await;
}

#[tokio::test]
async fn config_map_changes_are_reflected_and_invalid_ones_complained_about() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "config-live").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let store = ConfigStore::start(client.clone(), ns.name.clone());
    ready(&store).await;
    let mut changes = store.changes();

    // A valid ConfigMap is reflected in the snapshot, and subscribers are told.
    config_maps
        .create(
            &PostParams::default(),
            &config_map("config-autoscaler", &[("stable-window", "2m")]),
        )
        .await
        .expect("create config-autoscaler");
    eventually("the new stable window", async || {
        store.snapshot().autoscaler.stable_window == Duration::from_secs(120)
    })
    .await;
    assert!(changes.has_changed().expect("the store is alive"));
    assert_eq!(
        changes.borrow_and_update().autoscaler.stable_window,
        Duration::from_secs(120)
    );

    // An invalid value keeps the last good configuration and produces a Warning Event.
    let patch = serde_json::json!({"data": {"stable-window": "2s"}});
    config_maps
        .patch(
            "config-autoscaler",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch config-autoscaler");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let mut warning = None;
    eventually("a Warning Event with reason InvalidConfig", async || {
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list events");
        warning = list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("InvalidConfig")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("config-autoscaler")
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ConfigMap")
        });
        warning.is_some()
    })
    .await;
    let note = warning.and_then(|e| e.note).unwrap_or_default();
    assert!(
        note.contains("stable-window") && note.contains("\"2s\""),
        "{note}"
    );
    assert_eq!(
        store.snapshot().autoscaler.stable_window,
        Duration::from_secs(120)
    );

    // Deleting the ConfigMap reverts to the defaults.
    config_maps
        .delete("config-autoscaler", &DeleteParams::default())
        .await
        .expect("delete config-autoscaler");
    eventually("the default autoscaler configuration", async || {
        store.snapshot().autoscaler == AutoscalerConfig::default()
    })
    .await;
    assert_eq!(*store.snapshot(), Config::default());
    ns.delete().await;
}

#[tokio::test]
async fn config_maps_present_at_start_are_read_before_ready() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "config-start").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    config_maps
        .create(
            &PostParams::default(),
            &config_map("config-gc", &[("min-non-active-revisions", "3")]),
        )
        .await
        .expect("create config-gc");
    config_maps
        .create(
            &PostParams::default(),
            &config_map("config-domain", &[("example.com", "")]),
        )
        .await
        .expect("create config-domain");
    let store = ConfigStore::start(client.clone(), ns.name.clone());
    ready(&store).await;
    let snapshot = store.snapshot();
    assert_eq!(snapshot.gc.min_non_active_revisions, 3);
    assert_eq!(snapshot.domain.lookup(&BTreeMap::new()), "example.com");
    ns.delete().await;
}
