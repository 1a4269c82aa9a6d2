//! The API scenarios against the embedded server (one in-memory server per test), and the
//! behaviours only the embedded server can be asked for: restarts on the same data
//! directory, a short watch history, frequent bookmarks, its kubeconfig.

#[macro_use]
mod scenarios;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use knative_apiserver::{ApiServer, RunningApiServer};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::time::Duration;

async fn embedded() -> (Client, String, RunningApiServer) {
    let server = ApiServer::builder()
        .in_memory()
        .start()
        .await
        .expect("the server starts");
    let client = server.client();
    let namespace = "scenario".to_string();
    create_namespace(&client, &namespace).await;
    (client, namespace, server)
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("the namespace is created");
}

scenario_tests!(embedded);

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// A ConfigMap `name` in `ns` owned by the object with `uid` (which may be gone).
fn dependent_of(name: &str, owner: &str, uid: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid},
        ]},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_dependent_written_after_its_owner_was_deleted_is_collected() {
    let (client, ns, _server) = embedded().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner = api
        .create(&PostParams::default(), &config_map("owner"))
        .await
        .unwrap();
    api.delete("owner", &Default::default()).await.unwrap();
    // A controller acting on a stale cache writes a child of the deleted owner.
    api.create(
        &PostParams::default(),
        &dependent_of("late", "owner", &owner.uid().unwrap()),
    )
    .await
    .unwrap();
    assert!(api.get_opt("late").await.unwrap().is_none());
}

#[tokio::test]
async fn a_dependent_with_a_living_owner_stays() {
    let (client, ns, _server) = embedded().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner = api
        .create(&PostParams::default(), &config_map("owner"))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &dependent_of("child", "owner", &owner.uid().unwrap()),
    )
    .await
    .unwrap();
    assert!(api.get_opt("child").await.unwrap().is_some());
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_keeps_objects_and_continues_resource_versions() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let kept = api
        .create(&PostParams::default(), &config_map("kept"))
        .await
        .unwrap();
    server.shutdown().await;

    let server = ApiServer::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let found = api.get("kept").await.unwrap();
    assert_eq!(found.uid(), kept.uid());
    assert_eq!(found.resource_version(), kept.resource_version());
    let later = api
        .create(&PostParams::default(), &config_map("later"))
        .await
        .unwrap();
    let rv = |cm: &ConfigMap| cm.resource_version().unwrap().parse::<u64>().unwrap();
    assert!(rv(&later) > rv(&kept));
    server.shutdown().await;
}

#[tokio::test]
async fn custom_kinds_are_served_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]},
    });
    let server = ApiServer::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(server.client());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    server.shutdown().await;

    let server = ApiServer::builder()
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let resources = server
        .client()
        .list_api_group_resources("example.com/v1")
        .await
        .unwrap();
    assert_eq!(resources.resources[0].kind, "Gadget");
    server.shutdown().await;
}

#[tokio::test]
async fn a_watch_from_a_resource_version_older_than_the_history_gets_410_gone() {
    let server = ApiServer::builder()
        .history_capacity(2)
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let first = api
        .create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    for name in ["b", "c", "d"] {
        api.create(&PostParams::default(), &config_map(name))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_that_allows_bookmarks_gets_them_with_the_latest_resource_version() {
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default(),
            &list.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    match event {
        Some(WatchEvent::Bookmark(bookmark)) => {
            assert_eq!(
                Some(bookmark.metadata.resource_version),
                created.resource_version()
            );
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn a_streaming_list_watcher_gets_the_initial_objects_then_changes() {
    use kube::runtime::watcher;
    let server = ApiServer::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher::watcher(api.clone(), config).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("an event in time")
            .expect("no error")
            .expect("the watch goes on")
    };
    assert!(matches!(next().await, watcher::Event::Init));
    assert!(matches!(next().await, watcher::Event::InitApply(cm) if cm.name_any() == "before"));
    assert!(matches!(next().await, watcher::Event::InitDone));
    api.create(&PostParams::default(), &config_map("after"))
        .await
        .unwrap();
    assert!(matches!(next().await, watcher::Event::Apply(cm) if cm.name_any() == "after"));
}

#[tokio::test]
async fn a_terminating_namespace_refuses_new_content_until_its_finalizers_are_done() {
    use kube::api::{DeleteParams, Patch, PatchParams};
    let server = ApiServer::builder().start().await.unwrap();
    let client = server.client();
    create_namespace(&client, "closing").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "closing");
    let mut held = config_map("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces
        .delete("closing", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("closing").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let refused = api
        .create(&PostParams::default(), &config_map("late"))
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{refused:?}"
    );
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(namespaces.get_opt("closing").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_stops_serving_the_kind() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DeleteParams, DynamicObject};
    let server = ApiServer::builder().start().await.unwrap();
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = json!({
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]},
    });
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let resource = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    };
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let gadget = serde_json::from_value(
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}),
    )
    .unwrap();
    gadgets
        .create(&PostParams::default(), &gadget)
        .await
        .unwrap();
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let listed = gadgets.list(&ListParams::default()).await;
    assert!(
        matches!(listed, Err(kube::Error::Api(ref s)) if s.code == 404),
        "{listed:?}"
    );
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "gadgets", "kind": "Gadget"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]},
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(
        gadgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn the_kubeconfig_written_at_start_reaches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    let server = ApiServer::builder()
        .write_kubeconfig(&path)
        .start()
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let namespaces = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: Vec<String> = namespaces.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["default", "kube-system"]);
    server.shutdown().await;
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let server = ApiServer::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &config_map(name))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rest = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let names: Vec<String> = rest.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["c"]);
    assert!(rest.metadata.continue_.is_none_or(|c| c.is_empty()));
}

mod controller {
    //! A kube-runtime Controller, as the SDK's Driver runs one, against the embedded server:
    //! it reconciles a Deployment into an owned ConfigMap and reports observedGeneration
    //! through `/status`; deleting the Deployment garbage-collects the ConfigMap.

    use super::*;
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::Resource;
    use kube::api::{DeleteParams, Patch, PatchParams};
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::watcher;
    use std::sync::Arc;

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct Failed(#[from] kube::Error);

    async fn reconcile(deployment: Arc<Deployment>, client: Arc<Client>) -> Result<Action, Failed> {
        let ns = deployment.namespace().unwrap();
        let owner = deployment.controller_owner_ref(&()).unwrap();
        let replicas = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let summary: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("{}-summary", deployment.name_any()), "ownerReferences": [owner]},
            "data": {"replicas": replicas.to_string()},
        }))
        .unwrap();
        let configs: Api<ConfigMap> = Api::namespaced((*client).clone(), &ns);
        configs
            .patch(
                &summary.name_any(),
                &PatchParams::apply("summarizer"),
                &Patch::Apply(&summary),
            )
            .await?;
        let deployments: Api<Deployment> = Api::namespaced((*client).clone(), &ns);
        let status = json!({"status": {"observedGeneration": deployment.metadata.generation}});
        deployments
            .patch_status(
                &deployment.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await?;
        Ok(Action::await_change())
    }

    fn deployment(replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            },
        }))
        .unwrap()
    }

    async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_controller_reconciles_owned_objects_and_status() {
        let server = ApiServer::builder().start().await.unwrap();
        let client = server.client();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let configs: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let controller = Controller::new(deployments.clone(), watcher::Config::default())
            .owns(configs.clone(), watcher::Config::default())
            .run(
                reconcile,
                |_, _, _| Action::requeue(Duration::from_secs(1)),
                Arc::new(client),
            )
            .for_each(|_| async {});
        let controller = tokio::spawn(controller);

        deployments
            .create(&PostParams::default(), &deployment(1))
            .await
            .unwrap();
        wait_for("the first reconcile", async || {
            let observed = deployments
                .get("web")
                .await
                .ok()?
                .status?
                .observed_generation;
            let summary = configs.get_opt("web-summary").await.unwrap()?;
            (observed == Some(1) && summary.data?["replicas"] == "1").then_some(())
        })
        .await;

        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 3}})),
            )
            .await
            .unwrap();
        wait_for("the reconcile of the new generation", async || {
            let observed = deployments
                .get("web")
                .await
                .ok()?
                .status?
                .observed_generation;
            let summary = configs.get_opt("web-summary").await.unwrap()?;
            (observed == Some(2) && summary.data?["replicas"] == "3").then_some(())
        })
        .await;

        deployments
            .delete("web", &DeleteParams::default())
            .await
            .unwrap();
        wait_for("the owned ConfigMap to be collected", async || {
            configs
                .get_opt("web-summary")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        controller.abort();
    }
}

#[tokio::test]
async fn an_apply_patch_that_is_not_an_object_is_a_bad_request() {
    let server = ApiServer::builder().start().await.unwrap();
    let request = http::Request::patch("/api/v1/namespaces/default/configmaps/x?fieldManager=t")
        .header("Content-Type", "application/apply-patch+yaml")
        .body(b"just a string".to_vec())
        .unwrap();
    let result = server.client().request::<ConfigMap>(request).await;
    assert!(
        matches!(result, Err(kube::Error::Api(ref s)) if s.code == 400),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_namespace_whose_spec_is_not_an_object_is_a_bad_request() {
    let server = ApiServer::builder().start().await.unwrap();
    let request = http::Request::post("/api/v1/namespaces")
        .header("Content-Type", "application/json")
        .body(br#"{"metadata": {"name": "n"}, "spec": "x"}"#.to_vec())
        .unwrap();
    let result = server.client().request::<Namespace>(request).await;
    assert!(
        matches!(result, Err(kube::Error::Api(ref s)) if s.code == 400),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_huge_watch_timeout_is_capped_not_an_error() {
    let server = ApiServer::builder().start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let request = http::Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds={}",
        u64::MAX
    ))
    .body(Vec::new())
    .unwrap();
    let mut events = server
        .client()
        .request_events::<ConfigMap>(request)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &config_map("seen"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(event, Some(WatchEvent::Added(cm)) if cm.name_any() == "seen"));
}
