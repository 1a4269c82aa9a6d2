//! Shared informers ([`Caches`]) against a real API server.
//!
//! Run with `KUBECONFIG=… cargo test -p knative-core --features testing --test envtest_caches`.

#![cfg(feature = "testing")]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use knative_core::reconciler::{Caches, Compact};
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
    changes: &mut (impl futures::Stream<Item = Arc<Compact<ConfigMap>>> + Unpin),
    name: &str,
) -> Arc<Compact<ConfigMap>> {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let object = changes.next().await.expect("the stream goes on");
            if object.name_any() == name {
                return object;
            }
        }
    })
    .await
    .expect("a change within the timeout")
}

/// Takes changes until every one of `names` was among them.
async fn hear_of_all(
    changes: &mut (impl futures::Stream<Item = Arc<Compact<ConfigMap>>> + Unpin),
    names: &[&str],
) {
    let mut missing: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    tokio::time::timeout(TIMEOUT, async {
        while !missing.is_empty() {
            let object = changes.next().await.expect("the stream goes on");
            missing.remove(object.name_any().as_str());
        }
    })
    .await
    .expect("every object heard of within the timeout");
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
    let lister = caches.lister::<ConfigMap>(&ns.name);
    let value_of = |o: &ConfigMap| -> u32 { o.data.as_ref().unwrap()["value"].parse().unwrap() };

    // Each change in turn (a change may be heard of twice: once in the cache a subscriber
    // starts from, once as it came): whenever the subscriber hears of one, the cache already
    // holds it or a newer one.
    let mut last = created;
    for value in 2..6 {
        loop {
            let heard = next_change_of(&mut changes, "watched").await;
            let cached = lister.get("watched").await.expect("read").expect("cached");
            assert!(lister.is_cached(), "the informer's cache is filled");
            assert!(
                value_of(&cached) >= value_of(&heard.decode().expect("a ConfigMap")),
                "the cache holds the change heard of"
            );
            assert!(
                cached.metadata.managed_fields.is_none(),
                "managedFields are not cached"
            );
            if heard.resource_version() == last.resource_version() {
                break;
            }
        }
        let patch = serde_json::json!({"data": {"value": value.to_string()}});
        last = api
            .patch("watched", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
    }

    // A deletion is heard of once the object has left the cache; the lister then asks the API
    // server, which has no such object either.
    api.delete("watched", &DeleteParams::default())
        .await
        .expect("delete");
    // (Earlier changes may still be queued: take changes until the cache has none.)
    loop {
        next_change_of(&mut changes, "watched").await;
        if lister.get("watched").await.expect("read").is_none() {
            break;
        }
    }
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
    hear_of_all(&mut first, &["one", "two"]).await;

    // The informer has listed everything; a second subscriber still hears of both objects.
    let mut second = Box::pin(caches.changes::<ConfigMap>());
    hear_of_all(&mut second, &["one", "two"]).await;
    let listed = caches
        .lister::<ConfigMap>(&ns.name)
        .list(&[("app", "cache-test")])
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    ns.delete().await;
}
