//! Shared informers ([`Caches`]) against a real API server.
//!
//! Run with `KUBECONFIG=… cargo test -p knative-core --features testing --test envtest_caches`.

#![cfg(feature = "testing")]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use knative_core::reconciler::Caches;
use knative_core::testing::envtest::{TestNamespace, client};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "cache-test"}},
        "data": {"value": value},
    }))
    .expect("ConfigMap literal")
}

/// The next change of the object named `name`, skipping others.
async fn next_change_of(
    changes: &mut (
             impl futures::Stream<Item = Result<ConfigMap, kube::runtime::watcher::Error>> + Unpin
         ),
    name: &str,
) -> ConfigMap {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let change = changes.next().await.expect("the stream goes on");
            if let Ok(object) = change
                && object.name_any() == name
            {
                return object;
            }
        }
    })
    .await
    .expect("a change within the timeout")
}

#[tokio::test]
async fn a_subscriber_hears_of_each_change_once_the_cache_holds_it() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "caches-order").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let caches = Caches::new(client.clone(), Some(ns.name.clone()));
    let mut changes = Box::pin(caches.changes::<ConfigMap>());

    let created = api
        .create(&PostParams::default(), &config_map("watched", "1"))
        .await
        .expect("create");
    let heard = next_change_of(&mut changes, "watched").await;
    assert_eq!(heard.resource_version(), created.resource_version());
    let lister = caches.lister::<ConfigMap>(&ns.name);
    assert!(lister.is_cached(), "the informer's cache is filled");
    let cached = lister.get("watched").await.expect("read").expect("cached");
    assert_eq!(cached.resource_version(), created.resource_version());

    // Each change in turn: whenever the subscriber hears of one, the cache already holds it
    // (or a newer one).
    for value in 2..6 {
        let patch = serde_json::json!({"data": {"value": value.to_string()}});
        let patched = api
            .patch("watched", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
        let heard = next_change_of(&mut changes, "watched").await;
        assert_eq!(heard.resource_version(), patched.resource_version());
        let cached = lister.get("watched").await.expect("read").expect("cached");
        assert_eq!(
            cached.data.unwrap()["value"],
            value.to_string(),
            "the cache holds the change heard of"
        );
        assert!(
            cached.metadata.managed_fields.is_none(),
            "managedFields are not cached"
        );
    }

    // A deletion is heard of once the object has left the cache; the lister then asks the API
    // server, which has no such object either.
    api.delete("watched", &DeleteParams::default())
        .await
        .expect("delete");
    next_change_of(&mut changes, "watched").await;
    assert!(lister.get("watched").await.expect("read").is_none());
    ns.delete().await;
}

#[tokio::test]
async fn a_late_subscriber_starts_from_what_the_cache_holds() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "caches-late").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    for name in ["one", "two"] {
        api.create(&PostParams::default(), &config_map(name, "x"))
            .await
            .expect("create");
    }
    let caches = Caches::new(client.clone(), Some(ns.name.clone()));
    let mut first = Box::pin(caches.changes::<ConfigMap>());
    next_change_of(&mut first, "one").await;
    next_change_of(&mut first, "two").await;

    // The informer has listed everything; a second subscriber still hears of both objects.
    let mut second = Box::pin(caches.changes::<ConfigMap>());
    next_change_of(&mut second, "one").await;
    next_change_of(&mut second, "two").await;
    let listed = caches
        .lister::<ConfigMap>(&ns.name)
        .list(&[("app", "cache-test")])
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    ns.delete().await;
}
