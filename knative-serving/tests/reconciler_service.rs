//! Table tests of the Service reconciler on the recording API double: a Service and its
//! children in; the exact creates, updates, status and Events out.

use std::sync::Arc;

use knative_core::apis::{Condition, ConditionStatus};
use knative_core::reconciler::Driver;
use knative_core::testing::{RecordedEvent, RecordingApi, Verb};
use knative_serving::apis::{Configuration, Revision, Route, Service};
use knative_serving::reconciler::service::{ServiceReconciler, make_configuration, make_route};
use serde_json::{Value, json};

const NS: &str = "ns";

fn service(traffic: Option<Value>) -> Value {
    let mut svc = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "hello", "namespace": NS, "uid": "uid-hello", "generation": 1},
        "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go"}]}}},
    });
    if let Some(traffic) = traffic {
        svc["spec"]["traffic"] = traffic;
    }
    svc
}

fn svc_from(value: Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn setup(svc: Value) -> (RecordingApi, Driver<Service, ServiceReconciler>) {
    let api = RecordingApi::new();
    api.seed(&svc_from(svc));
    let driver = Driver::new(api.client(), ServiceReconciler::new());
    (api, driver)
}

async fn reconcile(
    api: &RecordingApi,
    driver: &Driver<Service, ServiceReconciler>,
) -> Result<(), knative_core::reconciler::DriverError> {
    let obj = api.get::<Service>(NS, "hello").expect("service");
    driver.reconcile(Arc::new(obj)).await.map(|_| ())
}

fn stored(api: &RecordingApi) -> Service {
    api.get::<Service>(NS, "hello").expect("service")
}

fn condition(svc: &Service, t: &str) -> Condition {
    svc.status
        .as_ref()
        .and_then(|s| s.status.get_condition(t))
        .cloned()
        .unwrap_or_else(|| panic!("no condition {t}"))
}

fn state(svc: &Service, t: &str) -> (ConditionStatus, Option<String>) {
    let c = condition(svc, t);
    (c.status, c.reason)
}

fn event(type_: &str, reason: &str, note: &str) -> RecordedEvent {
    RecordedEvent {
        type_: type_.into(),
        reason: reason.into(),
        note: note.into(),
        regarding: "hello".into(),
    }
}

/// Gives the stored child `K` named `hello` the status `status`, observed at its generation.
fn set_child_status<K>(api: &RecordingApi, mut status: Value)
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
{
    let child = api.get::<K>(NS, "hello").expect("child");
    let mut value = serde_json::to_value(&child).unwrap();
    status["observedGeneration"] = value["metadata"]["generation"].clone();
    value["status"] = status;
    api.seed(&serde_json::from_value::<K>(value).unwrap());
}

fn ready_configuration_status() -> Value {
    json!({
        "latestCreatedRevisionName": "hello-00001",
        "latestReadyRevisionName": "hello-00001",
        "conditions": [{"type": "Ready", "status": "True"}],
    })
}

fn ready_route_status(revision: &str) -> Value {
    json!({
        "url": "http://hello.ns.svc.cluster.local",
        "address": {"url": "http://hello.ns.svc.cluster.local"},
        "traffic": [{"revisionName": revision, "latestRevision": true, "percent": 100}],
        "conditions": [{"type": "Ready", "status": "True"}],
    })
}

fn owner() -> Value {
    json!([{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello",
            "uid": "uid-hello", "controller": true, "blockOwnerDeletion": true}])
}

// ---------------------------------------------------------------------------------------------
// Children

#[tokio::test]
async fn a_new_service_creates_its_configuration_and_route() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();

    let creates = api.creates();
    let kinds: Vec<&str> = creates.iter().map(|a| a.resource.as_str()).collect();
    assert_eq!(kinds, ["configurations", "routes"]);

    let config: Configuration = creates[0].object();
    assert_eq!(
        serde_json::to_value(&config.metadata).unwrap(),
        json!({"name": "hello", "namespace": NS,
               "labels": {"serving.knative.dev/service": "hello"},
               "annotations": {"serving.knative.dev/routes": "hello"},
               "ownerReferences": owner()})
    );
    assert_eq!(
        serde_json::to_value(&config.spec).unwrap(),
        json!({"template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go"}]}}})
    );

    let route: Route = creates[1].object();
    assert_eq!(
        serde_json::to_value(&route.metadata.labels).unwrap(),
        json!({"serving.knative.dev/service": "hello"})
    );
    assert_eq!(
        serde_json::to_value(&route.metadata.owner_references).unwrap(),
        owner()
    );
    assert_eq!(
        serde_json::to_value(&route.spec).unwrap(),
        json!({"traffic": [{"configurationName": "hello", "latestRevision": true, "percent": 100}]})
    );
    // kube's event recorder folds Events that differ only in their note into one series, so
    // the second "Created" is recorded as a repeat of the first.
    let events = api.events();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Created", "Created"]);
    assert_eq!(
        events[0],
        event("Normal", "Created", r#"Created Configuration "hello""#)
    );
}

#[tokio::test]
async fn children_that_have_not_reconciled_yet_are_out_of_date() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();

    let svc = stored(&api);
    assert_eq!(
        state(&svc, "ConfigurationsReady"),
        (ConditionStatus::Unknown, Some("OutOfDate".into()))
    );
    let routes = condition(&svc, "RoutesReady");
    assert_eq!(routes.status, ConditionStatus::Unknown);
    assert_eq!(
        routes.message.as_deref(),
        Some("The Route is still working to reflect the latest desired specification.")
    );
    assert_eq!(state(&svc, "Ready").0, ConditionStatus::Unknown);
    assert_eq!(svc.status.unwrap().status.observed_generation, Some(1));
}

#[tokio::test]
async fn explicit_traffic_pins_revisions_and_follows_the_configuration_for_the_rest() {
    let traffic = json!([
        {"tag": "current", "revisionName": "hello-00001", "percent": 50},
        {"tag": "latest", "percent": 50},
    ]);
    let route = make_route(&svc_from(service(Some(traffic))));
    assert_eq!(
        serde_json::to_value(&route.spec.traffic).unwrap(),
        json!([
            {"tag": "current", "revisionName": "hello-00001", "latestRevision": false, "percent": 50},
            {"tag": "latest", "configurationName": "hello", "latestRevision": true, "percent": 50},
        ])
    );
}

#[tokio::test]
async fn the_services_labels_and_annotations_reach_its_children_but_kubectls() {
    let mut svc = service(None);
    svc["metadata"]["labels"] = json!({"app": "hello"});
    svc["metadata"]["annotations"] = json!({
        "team": "a",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    });
    let svc = svc_from(svc);
    for (meta, routes) in [
        (make_configuration(&svc).metadata, Some("hello")),
        (make_route(&svc).metadata, None),
    ] {
        assert_eq!(
            serde_json::to_value(&meta.labels).unwrap(),
            json!({"app": "hello", "serving.knative.dev/service": "hello"})
        );
        let mut want = json!({"team": "a"});
        if let Some(routes) = routes {
            want["serving.knative.dev/routes"] = routes.into();
        }
        assert_eq!(serde_json::to_value(&meta.annotations).unwrap(), want);
    }
}

#[tokio::test]
async fn the_labelers_routes_on_the_configuration_are_kept_not_fought_over() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    // The labeler adds another Route that uses this Configuration.
    let mut config = api.get::<Configuration>(NS, "hello").unwrap();
    config
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            "serving.knative.dev/routes".into(),
            "elsewhere,hello".into(),
        );
    api.seed(&config);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();
    assert!(api.updates().is_empty(), "{:?}", api.updates());
    assert_eq!(
        api.get::<Configuration>(NS, "hello")
            .unwrap()
            .metadata
            .annotations
            .unwrap()["serving.knative.dev/routes"],
        "elsewhere,hello"
    );
}

#[tokio::test]
async fn a_changed_template_updates_the_configuration() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    let mut svc = stored(&api);
    svc.spec.configuration.template.spec.pod_spec.containers[0].image = Some("v2".into());
    svc.metadata.generation = Some(2);
    api.seed(&svc);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    let updates = api.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].resource, "configurations");
    let config = api.get::<Configuration>(NS, "hello").unwrap();
    assert_eq!(
        config.spec.template.spec.pod_spec.containers[0]
            .image
            .as_deref(),
        Some("v2")
    );
    assert_eq!(config.metadata.generation, Some(2));
}

#[tokio::test]
async fn changed_traffic_updates_the_route() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    let mut svc = svc_from(service(Some(json!([
        {"revisionName": "hello-00001", "percent": 100},
    ]))));
    svc.metadata.generation = Some(2);
    api.seed(&svc);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    let updated: Vec<String> = api.updates().into_iter().map(|a| a.resource).collect();
    assert_eq!(updated, ["routes"]);
    let route = api.get::<Route>(NS, "hello").unwrap();
    assert_eq!(
        route.spec.traffic[0].revision_name.as_deref(),
        Some("hello-00001")
    );
}

#[tokio::test]
async fn a_configuration_the_service_does_not_own_is_refused() {
    let (api, driver) = setup(service(None));
    let foreign: Configuration = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": "hello", "namespace": NS},
        "spec": {},
    }))
    .unwrap();
    api.seed(&foreign);

    reconcile(&api, &driver).await.unwrap();

    let message = r#"There is an existing Configuration "hello" that we do not own."#;
    let svc = stored(&api);
    let configs = condition(&svc, "ConfigurationsReady");
    assert_eq!(
        (
            configs.status,
            configs.reason.as_deref(),
            configs.message.as_deref()
        ),
        (ConditionStatus::False, Some("NotOwned"), Some(message))
    );
    assert_eq!(
        state(&svc, "Ready"),
        (ConditionStatus::False, Some("NotOwned".into()))
    );
    assert_eq!(api.creates(), vec![]);
    assert_eq!(api.updates(), vec![]);
    assert_eq!(api.events(), [event("Warning", "NotOwned", message)]);
}

#[tokio::test]
async fn a_route_the_service_does_not_own_is_refused() {
    let (api, driver) = setup(service(None));
    let foreign: Route = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Route",
        "metadata": {"name": "hello", "namespace": NS,
                     "ownerReferences": [{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                          "name": "hello", "uid": "uid-of-an-older-hello",
                                          "controller": true}]},
        "spec": {},
    }))
    .unwrap();
    api.seed(&foreign);

    reconcile(&api, &driver).await.unwrap();

    let routes = condition(&stored(&api), "RoutesReady");
    assert_eq!(routes.status, ConditionStatus::False);
    assert_eq!(routes.reason.as_deref(), Some("NotOwned"));
    assert_eq!(
        routes.message.as_deref(),
        Some(r#"There is an existing Route "hello" that we do not own."#)
    );
    assert_eq!(api.updates(), vec![], "the foreign Route is left alone");
}

#[tokio::test]
async fn a_failure_to_create_the_route_is_reported_and_retried() {
    let (api, driver) = setup(service(None));
    api.fail_next(Verb::Create, "routes", 500);
    let err = reconcile(&api, &driver).await.unwrap_err();
    assert!(err.to_string().contains("failed to create Route"), "{err}");
    let reasons: Vec<String> = api.events().into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Created", "CreationFailed", "InternalError"]);
}

// ---------------------------------------------------------------------------------------------
// Status

#[tokio::test]
async fn ready_children_make_the_service_ready_with_their_status() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    set_child_status::<Configuration>(&api, ready_configuration_status());
    set_child_status::<Route>(&api, ready_route_status("hello-00001"));

    reconcile(&api, &driver).await.unwrap();

    let svc = stored(&api);
    assert_eq!(
        state(&svc, "ConfigurationsReady"),
        (ConditionStatus::True, None)
    );
    assert_eq!(state(&svc, "RoutesReady"), (ConditionStatus::True, None));
    assert_eq!(state(&svc, "Ready"), (ConditionStatus::True, None));
    let status = serde_json::to_value(svc.status.unwrap()).unwrap();
    assert_eq!(status["url"], "http://hello.ns.svc.cluster.local");
    assert_eq!(
        status["address"]["url"],
        "http://hello.ns.svc.cluster.local"
    );
    assert_eq!(status["latestCreatedRevisionName"], "hello-00001");
    assert_eq!(status["latestReadyRevisionName"], "hello-00001");
    assert_eq!(
        status["traffic"],
        json!([{"revisionName": "hello-00001", "latestRevision": true, "percent": 100}])
    );
}

#[tokio::test]
async fn a_ready_route_still_on_the_previous_revision_has_not_migrated_traffic() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    let mut config_status = ready_configuration_status();
    config_status["latestCreatedRevisionName"] = json!("hello-00002");
    config_status["latestReadyRevisionName"] = json!("hello-00002");
    set_child_status::<Configuration>(&api, config_status);
    set_child_status::<Route>(&api, ready_route_status("hello-00001"));

    reconcile(&api, &driver).await.unwrap();

    let routes = condition(&stored(&api), "RoutesReady");
    assert_eq!(
        (
            routes.status,
            routes.reason.as_deref(),
            routes.message.as_deref()
        ),
        (
            ConditionStatus::Unknown,
            Some("TrafficNotMigrated"),
            Some("Traffic is not yet migrated to the latest revision.")
        )
    );
}

#[tokio::test]
async fn a_failed_configuration_fails_the_service_with_its_reason() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    set_child_status::<Configuration>(
        &api,
        json!({
            "latestCreatedRevisionName": "hello-00001",
            "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed",
                            "message": "Revision \"hello-00001\" failed with message: boom."}],
        }),
    );

    reconcile(&api, &driver).await.unwrap();

    let svc = stored(&api);
    let configs = condition(&svc, "ConfigurationsReady");
    assert_eq!(configs.status, ConditionStatus::False);
    assert_eq!(configs.reason.as_deref(), Some("RevisionFailed"));
    assert_eq!(
        state(&svc, "Ready"),
        (ConditionStatus::False, Some("RevisionFailed".into()))
    );
    assert_eq!(
        svc.status
            .unwrap()
            .configuration
            .latest_created_revision_name
            .as_deref(),
        Some("hello-00001")
    );
}

#[tokio::test]
async fn a_route_without_conditions_is_unknown() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    set_child_status::<Route>(&api, json!({}));

    reconcile(&api, &driver).await.unwrap();

    let routes = condition(&stored(&api), "RoutesReady");
    assert_eq!(
        (routes.status, routes.reason),
        (ConditionStatus::Unknown, None)
    );
}

#[tokio::test]
async fn a_chosen_revision_name_taken_by_another_configuration_holds_the_route_back() {
    let mut svc = service(None);
    svc["spec"]["template"]["metadata"] = json!({"name": "hello-blue"});
    let (api, driver) = setup(svc);
    reconcile(&api, &driver).await.unwrap();
    set_child_status::<Configuration>(
        &api,
        json!({"conditions": [{"type": "Ready", "status": "Unknown"}]}),
    );
    let foreign: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "hello-blue", "namespace": NS},
        "spec": {"containers": [{"image": "someone-elses"}]},
    }))
    .unwrap();
    api.seed(&foreign);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    let routes = condition(&stored(&api), "RoutesReady");
    assert_eq!(routes.status, ConditionStatus::False);
    assert_eq!(routes.reason.as_deref(), Some("RevisionNameTaken"));
    assert_eq!(
        routes.message.as_deref(),
        Some(
            r#"The revision name "hello-blue" is taken by a conflicting Revision, so traffic will not be migrated"#
        )
    );
    assert_eq!(api.creates(), vec![], "no Route while the name is taken");
}

#[tokio::test]
async fn with_a_chosen_revision_name_the_route_waits_for_the_configuration() {
    let mut svc = service(None);
    svc["spec"]["template"]["metadata"] = json!({"name": "hello-blue"});
    let (api, driver) = setup(svc);
    reconcile(&api, &driver).await.unwrap();

    let kinds: Vec<String> = api.creates().into_iter().map(|a| a.resource).collect();
    assert_eq!(
        kinds,
        ["configurations"],
        "no Route before the Configuration caught up"
    );
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_writes_nothing() {
    let (api, driver) = setup(service(None));
    reconcile(&api, &driver).await.unwrap();
    set_child_status::<Configuration>(&api, ready_configuration_status());
    set_child_status::<Route>(&api, ready_route_status("hello-00001"));
    reconcile(&api, &driver).await.unwrap();
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();
    assert_eq!(api.writes(), vec![]);
    assert_eq!(api.events(), vec![]);
}
