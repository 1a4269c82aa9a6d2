//! API scenarios written against any `kube::Client`: `tests/embedded.rs` runs them against
//! the embedded server, `tests/conformance.rs` against a real kube-apiserver, and both must
//! pass. Each scenario gets a fresh namespace and asserts one behaviour.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;

/// How long a scenario waits for something asynchronous (a watch event, garbage collection).
const PATIENCE: Duration = Duration::from_secs(20);

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid object literal")
}

fn config_map(name: &str, data: Value) -> ConfigMap {
    from_json(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
    )
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "example.com/app:1", "ports": [{"containerPort": 8080}]},
                    {"name": "sidecar", "image": "example.com/sidecar:1"},
                ]},
            },
        },
    }))
}

fn api_code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `check` until it yields a value or PATIENCE runs out.
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(PATIENCE, what, check).await
}

/// Polls `check` until it yields a value or `patience` runs out.
async fn eventually_within<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next watch event that is not a bookmark (servers send those at their discretion).
async fn next_change<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(PATIENCE, stream.try_next())
            .await
            .expect("a watch event in time")
            .expect("no watch error")
            .expect("the watch goes on");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

pub async fn crud_round_trip_of_a_config_map(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let created = api
        .create(
            &PostParams::default(),
            &config_map("settings", json!({"a": "1"})),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());
    let mut fetched = api.get("settings").await.unwrap();
    assert_eq!(fetched.data.as_ref().unwrap()["a"], "1");
    fetched
        .data
        .as_mut()
        .unwrap()
        .insert("b".into(), "2".into());
    let updated = api
        .replace("settings", &PostParams::default(), &fetched)
        .await
        .unwrap();
    assert_eq!(updated.data.as_ref().unwrap()["b"], "2");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    api.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_code(api.get("settings").await).0, 404);
}

pub async fn resource_versions_increase_with_every_write(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let rv = |cm: &ConfigMap| -> u64 { cm.resource_version().unwrap().parse().unwrap() };
    let first = api
        .create(&PostParams::default(), &config_map("one", json!({})))
        .await
        .unwrap();
    let second = api
        .create(&PostParams::default(), &config_map("two", json!({})))
        .await
        .unwrap();
    assert!(rv(&second) > rv(&first));
    let patched = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "y"}})),
        )
        .await
        .unwrap();
    assert!(rv(&patched) > rv(&second));
}

pub async fn generate_name_makes_a_unique_name(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let template: ConfigMap = from_json(json!({"metadata": {"generateName": "gen-"}}));
    let a = api.create(&PostParams::default(), &template).await.unwrap();
    let b = api.create(&PostParams::default(), &template).await.unwrap();
    assert!(a.name_any().starts_with("gen-") && a.name_any().len() > 4);
    assert_ne!(a.name_any(), b.name_any());
}

pub async fn creating_an_existing_name_is_409_already_exists(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    api.create(&PostParams::default(), &config_map("dup", json!({})))
        .await
        .unwrap();
    let second = api
        .create(&PostParams::default(), &config_map("dup", json!({})))
        .await;
    assert_eq!(api_code(second), (409, "AlreadyExists".to_string()));
}

pub async fn an_update_with_a_stale_resource_version_is_409_conflict(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let created = api
        .create(&PostParams::default(), &config_map("c", json!({})))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "first".to_string())].into());
    api.replace("c", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    let result = api.replace("c", &PostParams::default(), &stale).await;
    assert_eq!(api_code(result), (409, "Conflict".to_string()));
}

pub async fn of_concurrent_updates_from_one_version_exactly_one_wins(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let created = api
        .create(&PostParams::default(), &config_map("race", json!({})))
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let (api, mut cm) = (api.clone(), created.clone());
        cm.data = Some([("writer".to_string(), i.to_string())].into());
        async move { api.replace("race", &PostParams::default(), &cm).await }
    });
    let results = futures::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(kube::Error::Api(s)) if s.code == 409))
        .count();
    assert_eq!((wins, conflicts), (1, 7));
}

pub async fn delete_collection_deletes_only_the_selected_objects(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    for (name, tier) in [("a", "temp"), ("b", "keep"), ("c", "temp")] {
        let mut cm = config_map(name, json!({}));
        cm.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=temp"),
    )
    .await
    .unwrap();
    let left = api
        .list(&ListParams::default().labels("tier"))
        .await
        .unwrap();
    let names: Vec<String> = left.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["b"]);
}

pub async fn getting_a_missing_object_is_404_not_found(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    assert_eq!(
        api_code(api.get("absent").await),
        (404, "NotFound".to_string())
    );
}

pub async fn creating_in_a_missing_namespace_is_404(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, &format!("{ns}-absent"));
    let result = api
        .create(&PostParams::default(), &config_map("x", json!({})))
        .await;
    assert_eq!(api_code(result), (404, "NotFound".to_string()));
}

pub async fn an_invalid_name_is_422_invalid(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let result = api
        .create(&PostParams::default(), &config_map("Not_Valid", json!({})))
        .await;
    assert_eq!(api_code(result), (422, "Invalid".to_string()));
}

pub async fn generation_starts_at_one_and_counts_spec_changes_only(client: Client, ns: &str) {
    let api: Api<Deployment> = Api::namespaced(client, ns);
    let created = api
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let scaled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    let with_status = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.metadata.generation, Some(2));
}

pub async fn the_status_subresource_is_the_only_way_to_change_status(client: Client, ns: &str) {
    let api: Api<Deployment> = Api::namespaced(client, ns);
    api.create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let through_main = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 7}})),
        )
        .await
        .unwrap();
    assert_ne!(
        through_main.status.and_then(|s| s.observed_generation),
        Some(7)
    );
    let mut current = api.get("web").await.unwrap();
    current.status = Some(from_json(json!({"observedGeneration": 1, "replicas": 1})));
    current.spec.as_mut().unwrap().replicas = Some(5);
    // Unconditional: a real cluster's deployment controller writes status concurrently.
    current.metadata.resource_version = None;
    let through_status = api
        .replace_status("web", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(through_status.status.unwrap().observed_generation, Some(1));
    assert_eq!(
        through_status.spec.unwrap().replicas,
        Some(1),
        "/status ignores spec changes"
    );
}

pub async fn lists_filter_by_label_and_field_selectors(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    for (name, tier) in [("a", "front"), ("b", "back"), ("c", "front")] {
        let mut cm = config_map(name, json!({}));
        cm.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        let mut names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
        names.sort();
        names
    };
    let front = api
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(names(front), ["a", "c"]);
    let not_front = api
        .list(&ListParams::default().labels("tier notin (front)"))
        .await
        .unwrap();
    assert_eq!(names(not_front), ["b"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["c"]);
}

pub async fn a_watcher_sees_objects_added_modified_and_deleted(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let next_event = async |events: &mut futures::stream::BoxStream<
        'static,
        Result<watcher::Event<ConfigMap>, watcher::Error>,
    >| {
        tokio::time::timeout(PATIENCE, events.try_next())
            .await
            .expect("a watch event in time")
            .expect("no watch error")
            .expect("the watch goes on")
    };
    assert!(matches!(
        next_event(&mut events).await,
        watcher::Event::Init
    ));
    assert!(matches!(
        next_event(&mut events).await,
        watcher::Event::InitDone
    ));
    api.create(&PostParams::default(), &config_map("w", json!({"v": "1"})))
        .await
        .unwrap();
    match next_event(&mut events).await {
        watcher::Event::Apply(cm) => assert_eq!(cm.data.unwrap()["v"], "1"),
        other => panic!("expected the creation, got {other:?}"),
    }
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    match next_event(&mut events).await {
        watcher::Event::Apply(cm) => assert_eq!(cm.data.unwrap()["v"], "2"),
        other => panic!("expected the change, got {other:?}"),
    }
    api.delete("w", &DeleteParams::default()).await.unwrap();
    match next_event(&mut events).await {
        watcher::Event::Delete(cm) => assert_eq!(cm.name_any(), "w"),
        other => panic!("expected the deletion, got {other:?}"),
    }
}

pub async fn a_watch_resumed_from_a_resource_version_sees_only_later_changes(
    client: Client,
    ns: &str,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    api.create(&PostParams::default(), &config_map("before", json!({})))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &config_map("after", json!({})))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    match next_change(&mut stream).await {
        WatchEvent::Added(cm) => assert_eq!(cm.name_any(), "after"),
        other => panic!("expected the later creation only, got {other:?}"),
    }
}

pub async fn a_selector_watch_reports_objects_leaving_the_selection_as_deleted(
    client: Client,
    ns: &str,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let mut cm = config_map("sel", json!({}));
    cm.metadata.labels = Some([("watch".to_string(), "me".to_string())].into());
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let params = WatchParams::default().labels("watch=me").timeout(10);
    let mut stream = api
        .watch(&params, &created.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    api.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watch": null}}})),
    )
    .await
    .unwrap();
    let event = next_change(&mut stream).await;
    assert!(
        matches!(event, WatchEvent::Deleted(ref cm) if cm.name_any() == "sel"),
        "{event:?}"
    );
}

pub async fn deleting_an_object_with_a_finalizer_waits_for_the_finalizer(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let mut cm = config_map("fin", json!({}));
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = api.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_code(api.get("fin").await).0, 404);
}

pub async fn deleting_an_owner_deletes_its_dependents(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let owner = api
        .create(&PostParams::default(), &config_map("owner", json!({})))
        .await
        .unwrap();
    let mut dependent = config_map("dependent", json!({}));
    dependent.metadata.owner_references = Some(vec![from_json(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap(),
    }))]);
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the dependent to be garbage-collected", || {
        let api = api.clone();
        async move {
            api.get_opt("dependent")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
}

pub async fn a_dependent_with_another_owner_outlives_one_owner(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let mut refs = Vec::new();
    for name in ["first", "second"] {
        let owner = api
            .create(&PostParams::default(), &config_map(name, json!({})))
            .await
            .unwrap();
        refs.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": owner.uid().unwrap()}));
    }
    let mut dependent = config_map("shared", json!({}));
    dependent.metadata.owner_references = Some(from_json(json!(refs)));
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    api.delete("first", &DeleteParams::background())
        .await
        .unwrap();
    let survivor = eventually("the reference to the deleted owner to be dropped", || {
        let api = api.clone();
        async move {
            let dependent = api.get("shared").await.unwrap();
            (dependent.owner_references().len() == 1).then_some(dependent)
        }
    })
    .await;
    assert_eq!(survivor.owner_references()[0].name, "second");
}

pub async fn an_orphaning_delete_keeps_dependents(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let owner = api
        .create(&PostParams::default(), &config_map("owner", json!({})))
        .await
        .unwrap();
    let mut dependent = config_map("dependent", json!({}));
    dependent.metadata.owner_references = Some(vec![from_json(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap(),
    }))]);
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let orphan = eventually("the owner to go and the reference to be dropped", || {
        let api = api.clone();
        async move {
            let owner_gone = api.get_opt("owner").await.unwrap().is_none();
            let dependent = api.get("dependent").await.unwrap();
            (owner_gone && dependent.owner_references().is_empty()).then_some(dependent)
        }
    })
    .await;
    assert_eq!(orphan.name_any(), "dependent");
}

pub async fn patches_of_each_type_apply(client: Client, ns: &str) {
    let api: Api<Deployment> = Api::namespaced(client, ns);
    api.create(&PostParams::default(), &deployment("p", 1))
        .await
        .unwrap();
    let merged = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.annotations()["a"], "1");
    let json_patched = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::<()>::Json(from_json(
                json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]),
            )),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.spec.unwrap().replicas, Some(2));
    let strategic = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "example.com/app:2"}
            ]}}}})),
        )
        .await
        .unwrap();
    let containers = strategic.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2, "containers are merged by name");
    assert_eq!(containers[0].image.as_deref(), Some("example.com/app:2"));
    assert_eq!(
        containers[0].ports.as_ref().unwrap()[0].container_port,
        8080
    );
}

pub async fn server_side_apply_creates_then_merges(client: Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let params = PatchParams::apply("scenario");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let created = api
        .patch("ssa", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(created.data.unwrap()["a"], "1");
    api.patch(
        "ssa",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"other": "x"}})),
    )
    .await
    .unwrap();
    let again = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}});
    let merged = api
        .patch("ssa", &params, &Patch::Apply(&again))
        .await
        .unwrap();
    let data = merged.data.unwrap();
    assert_eq!(data["a"], "2");
    assert_eq!(data["other"], "x", "fields of other managers stay");
}

pub async fn secret_string_data_is_stored_as_data(client: Client, ns: &str) {
    let api: Api<Secret> = Api::namespaced(client, ns);
    let secret: Secret =
        from_json(json!({"metadata": {"name": "s"}, "stringData": {"token": "abc"}}));
    api.create(&PostParams::default(), &secret).await.unwrap();
    let stored = api.get("s").await.unwrap();
    assert_eq!(stored.data.unwrap()["token"].0, b"abc");
    assert!(stored.string_data.is_none());
}

pub async fn a_service_gets_a_cluster_ip_and_port_defaults(client: Client, ns: &str) {
    let api: Api<Service> = Api::namespaced(client, ns);
    let service: Service = from_json(json!({
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]},
    }));
    let created = api.create(&PostParams::default(), &service).await.unwrap();
    let spec = created.spec.unwrap();
    assert!(spec.cluster_ip.is_some_and(|ip| !ip.is_empty()));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(port.target_port, Some(IntOrString::Int(80)));
}

pub async fn a_recorder_publishes_events_k8s_io_events(client: Client, ns: &str) {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let subject = configs
        .create(&PostParams::default(), &config_map("subject", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(client.clone(), Reporter::from("scenario"));
    let event = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("published by a scenario".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &subject.object_ref(&()))
        .await
        .unwrap();
    let events: Api<K8sEvent> = Api::namespaced(client, ns);
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert!(
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Tested"))
    );
}

pub async fn a_malformed_body_is_400_bad_request(client: Client, ns: &str) {
    let request = http::Request::post(format!("/api/v1/namespaces/{ns}/configmaps"))
        .header("Content-Type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    let result = client.request::<ConfigMap>(request).await;
    assert_eq!(api_code(result), (400, "BadRequest".to_string()));
}

/// A CRD named for the test namespace, so runs never share one.
fn widget_crd(ns: &str, scope: &str) -> (CustomResourceDefinition, ApiResource) {
    let group = format!("{ns}.example.com");
    let crd = from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group, "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }));
    let resource = ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    (crd, resource)
}

async fn install_crd(client: &Client, crd: &CustomResourceDefinition, resource: &ApiResource) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), crd).await.unwrap();
    let discovery_client = client.clone();
    let group_version = resource.api_version.clone();
    eventually("the CRD's kind to be served", || {
        let client = discovery_client.clone();
        let gv = group_version.clone();
        async move {
            client
                .list_api_group_resources(&gv)
                .await
                .ok()
                .filter(|list| list.resources.iter().any(|r| r.name == "widgets"))
        }
    })
    .await;
}

async fn remove_crd(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete(&crd.name_any(), &DeleteParams::default())
        .await
        .unwrap();
}

pub async fn a_crd_serves_its_kind_with_generation_and_status(client: Client, ns: &str) {
    let (crd, resource) = widget_crd(ns, "Namespaced");
    install_crd(&client, &crd, &resource).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let widget: DynamicObject = from_json(json!({
        "apiVersion": resource.api_version, "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"ignored": true},
    }));
    let created = api.create(&PostParams::default(), &widget).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let resized = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(resized.metadata.generation, Some(2));
    let with_status = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["ready"], true);
    assert_eq!(with_status.metadata.generation, Some(2));
    let strategic = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 3}})),
        )
        .await;
    assert_eq!(
        api_code(strategic).0,
        415,
        "custom resources refuse strategic merge patch"
    );
    remove_crd(&client, &crd).await;
}

pub async fn a_cluster_scoped_crd_serves_objects_without_namespace(client: Client, ns: &str) {
    let (crd, resource) = widget_crd(ns, "Cluster");
    install_crd(&client, &crd, &resource).await;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let widget: DynamicObject = from_json(json!({
        "apiVersion": resource.api_version, "kind": "Widget", "metadata": {"name": format!("{ns}-w")},
    }));
    let created = api.create(&PostParams::default(), &widget).await.unwrap();
    assert!(created.metadata.namespace.is_none());
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    remove_crd(&client, &crd).await;
}

pub async fn discovery_finds_built_in_kinds(client: Client, _ns: &str) {
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(resource, _)| resource.kind)
        .collect();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Pod",
        "Deployment",
        "Lease",
        "CustomResourceDefinition",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} is not discovered: {kinds:?}"
        );
    }
}

pub async fn deleting_a_namespace_deletes_its_content(client: Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let doomed = format!("{ns}-doomed");
    namespaces
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": doomed}})),
        )
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, &doomed);
    api.create(&PostParams::default(), &config_map("inside", json!({})))
        .await
        .unwrap();
    namespaces
        .delete(&doomed, &DeleteParams::default())
        .await
        .unwrap();
    // kube-controller-manager's namespace controller takes its time on a busy test cluster.
    eventually_within(
        Duration::from_secs(120),
        "the namespace and its content to go",
        || {
            let (namespaces, api, doomed) = (namespaces.clone(), api.clone(), doomed.clone());
            async move {
                let gone = namespaces.get_opt(&doomed).await.unwrap().is_none();
                let empty = api.get_opt("inside").await.unwrap().is_none();
                (gone && empty).then_some(())
            }
        },
    )
    .await;
}

/// Expands to a test per scenario; `$fixture` is an async fn returning `(Client, namespace,
/// guard)`, the guard kept alive for the test.
macro_rules! scenario_tests {
    ($fixture:path) => {
        scenario_tests!(@each $fixture;
            crud_round_trip_of_a_config_map,
            resource_versions_increase_with_every_write,
            generate_name_makes_a_unique_name,
            creating_an_existing_name_is_409_already_exists,
            an_update_with_a_stale_resource_version_is_409_conflict,
            getting_a_missing_object_is_404_not_found,
            creating_in_a_missing_namespace_is_404,
            an_invalid_name_is_422_invalid,
            generation_starts_at_one_and_counts_spec_changes_only,
            the_status_subresource_is_the_only_way_to_change_status,
            lists_filter_by_label_and_field_selectors,
            a_watcher_sees_objects_added_modified_and_deleted,
            a_watch_resumed_from_a_resource_version_sees_only_later_changes,
            a_selector_watch_reports_objects_leaving_the_selection_as_deleted,
            deleting_an_object_with_a_finalizer_waits_for_the_finalizer,
            deleting_an_owner_deletes_its_dependents,
            an_orphaning_delete_keeps_dependents,
            patches_of_each_type_apply,
            server_side_apply_creates_then_merges,
            secret_string_data_is_stored_as_data,
            a_crd_serves_its_kind_with_generation_and_status,
            a_cluster_scoped_crd_serves_objects_without_namespace,
            discovery_finds_built_in_kinds,
            deleting_a_namespace_deletes_its_content,
            a_service_gets_a_cluster_ip_and_port_defaults,
            a_recorder_publishes_events_k8s_io_events,
            a_malformed_body_is_400_bad_request,
            a_dependent_with_another_owner_outlives_one_owner,
            of_concurrent_updates_from_one_version_exactly_one_wins,
            delete_collection_deletes_only_the_selected_objects
        );
    };
    (@each $fixture:path; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (client, namespace, _guard) = $fixture().await;
                scenarios::$name(client, &namespace).await;
            }
        )*
    };
}
