//! Table tests of the Route reconciler on the recording API double: Routes, Configurations,
//! Revisions, Ingresses and Kubernetes Services in; the exact writes, status and Events out.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service as K8sService;
use knative_core::apis::{Condition, ConditionStatus};
use knative_core::config::{Config, ConfigMapConfig, ConfigStore, DomainConfig, NetworkConfig};
use knative_core::reconciler::Driver;
use knative_core::testing::{RecordedEvent, RecordingApi, Verb};
use knative_serving::apis::{Configuration, Ingress, Revision, Route};
use knative_serving::reconciler::route::RouteReconciler;
use knative_serving::traffic::TargetKind;
use serde_json::{Value, json};

const NS: &str = "ns";

fn route(traffic: Value) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Route",
        "metadata": {"name": "r", "namespace": NS, "uid": "uid-r", "generation": 1},
        "spec": {"traffic": traffic},
    })
}

fn to_config(percent: i64) -> Value {
    json!({"configurationName": "c", "latestRevision": true, "percent": percent})
}

fn configuration(latest_ready: Option<&str>, ready: &str) -> Configuration {
    let mut status = json!({"conditions": [{"type": "Ready", "status": ready}]});
    if let Some(lrr) = latest_ready {
        status["latestReadyRevisionName"] = json!(lrr);
        status["latestCreatedRevisionName"] = json!(lrr);
    }
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": "c", "namespace": NS, "uid": "uid-c"},
        "spec": {},
        "status": status,
    }))
    .unwrap()
}

fn revision(name: &str, ready: &str) -> Revision {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"serving.knative.dev/configuration": "c"}},
        "spec": {"containers": [{"image": "img"}]},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }))
    .unwrap()
}

/// Configuration `c` whose latest ready Revision `c-00002` is ready, and `c-00001` ready too.
fn seed_ready_configuration(api: &RecordingApi) {
    api.seed(&configuration(Some("c-00002"), "True"));
    api.seed(&revision("c-00001", "True"));
    api.seed(&revision("c-00002", "True"));
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn example_com() -> Config {
    Config {
        domain: DomainConfig::from_data(&data(&[("example.com", "")])).unwrap(),
        ..Config::default()
    }
}

fn driver(api: &RecordingApi, config: Config) -> Driver<Route, RouteReconciler> {
    Driver::new(api.client(), RouteReconciler::new()).with_config(ConfigStore::from_static(config))
}

fn setup(route: Value, config: Config) -> (RecordingApi, Driver<Route, RouteReconciler>) {
    let api = RecordingApi::new();
    api.seed(&serde_json::from_value::<Route>(route).unwrap());
    let driver = driver(&api, config);
    (api, driver)
}

async fn reconcile(
    api: &RecordingApi,
    driver: &Driver<Route, RouteReconciler>,
) -> Result<(), knative_core::reconciler::DriverError> {
    let obj = api.get::<Route>(NS, "r").expect("route");
    driver.reconcile(Arc::new(obj)).await.map(|_| ())
}

fn stored(api: &RecordingApi) -> Route {
    api.get::<Route>(NS, "r").expect("route")
}

fn condition(route: &Route, t: &str) -> Condition {
    route
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition(t))
        .cloned()
        .unwrap_or_else(|| panic!("no condition {t}"))
}

fn reason_of(route: &Route, t: &str) -> (ConditionStatus, Option<String>) {
    let c = condition(route, t);
    (c.status, c.reason)
}

fn ingress(api: &RecordingApi) -> Ingress {
    api.get::<Ingress>(NS, "r").expect("ingress")
}

fn ingress_spec(api: &RecordingApi) -> Value {
    serde_json::to_value(ingress(api).spec).unwrap()
}

fn split(revision: &str, percent: i64) -> Value {
    json!({
        "serviceNamespace": NS, "serviceName": revision, "servicePort": 80, "percent": percent,
        "appendHeaders": {"Knative-Serving-Namespace": NS, "Knative-Serving-Revision": revision},
    })
}

fn rule(hosts: &[&str], visibility: &str, splits: Value) -> Value {
    json!({"hosts": hosts, "visibility": visibility, "http": {"paths": [{"splits": splits}]}})
}

const LOCAL_HOSTS: [&str; 3] = ["r.ns", "r.ns.svc", "r.ns.svc.cluster.local"];

/// Marks the stored Ingress as observed at its generation with `Ready` = `ready`, and gives it
/// a private load balancer when `domain_internal` is set.
fn ingress_status(api: &RecordingApi, ready: &str, domain_internal: Option<&str>) {
    let mut ing = ingress(api);
    let mut status = json!({
        "observedGeneration": ing.metadata.generation,
        "conditions": [{"type": "Ready", "status": ready, "reason": if ready == "True" { Value::Null } else { json!("Unprogrammed") },
                        "message": if ready == "True" { Value::Null } else { json!("not yet") }}],
    });
    if let Some(domain) = domain_internal {
        status["privateLoadBalancer"] = json!({"ingress": [{"domainInternal": domain}]});
    }
    ing.status = Some(serde_json::from_value(status).unwrap());
    api.seed(&ing);
}

fn event(type_: &str, reason: &str, note: &str) -> RecordedEvent {
    RecordedEvent {
        type_: type_.into(),
        reason: reason.into(),
        note: note.into(),
        regarding: "r".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Programming traffic

#[tokio::test]
async fn a_route_to_a_ready_configuration_creates_its_ingress() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    let ing = ingress(&api);
    assert_eq!(
        serde_json::to_value(&ing.spec).unwrap(),
        json!({
            "rules": [rule(&LOCAL_HOSTS, "ClusterLocal", json!([split("c-00002", 100)]))],
            "httpOption": "Enabled",
        })
    );
    assert_eq!(
        serde_json::to_value(&ing.metadata.labels).unwrap(),
        json!({"serving.knative.dev/route": "r", "serving.knative.dev/routeNamespace": NS})
    );
    assert_eq!(
        serde_json::to_value(&ing.metadata.annotations).unwrap(),
        json!({"networking.knative.dev/ingress.class": "istio.ingress.networking.knative.dev"})
    );
    assert_eq!(
        serde_json::to_value(&ing.metadata.owner_references).unwrap(),
        json!([{"apiVersion": "serving.knative.dev/v1", "kind": "Route", "name": "r",
                "uid": "uid-r", "controller": true, "blockOwnerDeletion": true}])
    );
}

#[tokio::test]
async fn a_route_creates_its_placeholder_kubernetes_service() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    let creates: Vec<(String, Option<String>)> = api
        .creates()
        .into_iter()
        .map(|a| (a.resource, a.name))
        .collect();
    assert_eq!(
        creates,
        [
            ("services".to_owned(), Some("r".to_owned())),
            ("ingresses".to_owned(), Some("r".to_owned()))
        ]
    );
    let svc = api.get::<K8sService>(NS, "r").unwrap();
    assert_eq!(
        serde_json::to_value(&svc.spec).unwrap(),
        json!({"type": "ExternalName", "externalName": "r.ns.svc.cluster.local",
               "sessionAffinity": "None",
               "ports": [{"name": "http2", "port": 80, "targetPort": 80}]})
    );
    assert_eq!(
        svc.metadata.labels.unwrap()["serving.knative.dev/route"],
        "r"
    );
    // kube's event recorder folds Events that differ only in their note into one series, so
    // the second "Created" is recorded as a repeat of the first.
    let events = api.events();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Created", "Created"]);
    assert_eq!(
        events[0],
        event("Normal", "Created", r#"Created placeholder service "r""#)
    );
}

#[tokio::test]
async fn a_programmed_route_reports_url_address_traffic_and_waits_for_its_ingress() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    let r = stored(&api);
    let status = r.status.as_ref().unwrap();
    assert_eq!(
        status.route.url.as_deref(),
        Some("http://r.ns.svc.cluster.local")
    );
    assert_eq!(
        status.route.address.as_ref().unwrap().url.as_deref(),
        Some("http://r.ns.svc.cluster.local")
    );
    assert_eq!(
        serde_json::to_value(&status.route.traffic).unwrap(),
        json!([{"revisionName": "c-00002", "latestRevision": true, "percent": 100}])
    );
    assert_eq!(
        reason_of(&r, "AllTrafficAssigned"),
        (ConditionStatus::True, None)
    );
    let cert = condition(&r, "CertificateProvisioned");
    assert_eq!(
        (cert.status, cert.reason.as_deref(), cert.message.as_deref()),
        (
            ConditionStatus::True,
            Some("TLSNotEnabled"),
            Some("external-domain-tls is not enabled")
        )
    );
    assert_eq!(
        reason_of(&r, "IngressReady"),
        (
            ConditionStatus::Unknown,
            Some("IngressNotConfigured".into())
        )
    );
    assert_eq!(
        reason_of(&r, "Ready"),
        (
            ConditionStatus::Unknown,
            Some("IngressNotConfigured".into())
        )
    );
}

#[tokio::test]
async fn an_external_route_gets_a_cluster_local_and_an_external_rule() {
    let (api, driver) = setup(route(json!([to_config(100)])), example_com());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        ingress_spec(&api)["rules"],
        json!([
            rule(&LOCAL_HOSTS, "ClusterLocal", json!([split("c-00002", 100)])),
            rule(
                &["r.ns.example.com"],
                "ExternalIP",
                json!([split("c-00002", 100)])
            ),
        ])
    );
    assert_eq!(
        stored(&api).status.unwrap().route.url.as_deref(),
        Some("http://r.ns.example.com")
    );
    let svc = api.get::<K8sService>(NS, "r").unwrap();
    assert_eq!(
        svc.spec.unwrap().external_name.as_deref(),
        Some("r.ns.example.com")
    );
}

#[tokio::test]
async fn a_cluster_local_route_gets_only_cluster_local_rules() {
    let mut r = route(json!([to_config(100)]));
    r["metadata"]["labels"] = json!({"networking.knative.dev/visibility": "cluster-local"});
    let (api, driver) = setup(r, example_com());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    let rules = ingress_spec(&api)["rules"].clone();
    assert_eq!(rules.as_array().unwrap().len(), 1);
    assert_eq!(rules[0]["visibility"], "ClusterLocal");
    assert_eq!(
        stored(&api).status.unwrap().route.url.as_deref(),
        Some("http://r.ns.svc.cluster.local")
    );
}

#[tokio::test]
async fn a_split_programs_weighted_backends() {
    let traffic = json!([
        to_config(80),
        {"revisionName": "c-00001", "latestRevision": false, "percent": 20},
    ]);
    let (api, driver) = setup(route(traffic), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        ingress_spec(&api)["rules"][0]["http"]["paths"][0]["splits"],
        json!([split("c-00002", 80), split("c-00001", 20)])
    );
}

#[tokio::test]
async fn a_tag_gets_its_own_host_rule_service_and_url() {
    let traffic = json!([
        to_config(100),
        {"tag": "old", "revisionName": "c-00001", "latestRevision": false, "percent": 0},
    ]);
    let (api, driver) = setup(route(traffic), example_com());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        ingress_spec(&api)["rules"],
        json!([
            rule(&LOCAL_HOSTS, "ClusterLocal", json!([split("c-00002", 100)])),
            rule(
                &["r.ns.example.com"],
                "ExternalIP",
                json!([split("c-00002", 100)])
            ),
            rule(
                &["old-r.ns", "old-r.ns.svc", "old-r.ns.svc.cluster.local"],
                "ClusterLocal",
                json!([split("c-00001", 100)])
            ),
            rule(
                &["old-r.ns.example.com"],
                "ExternalIP",
                json!([split("c-00001", 100)])
            ),
        ])
    );
    assert!(api.get::<K8sService>(NS, "old-r").is_some());
    let traffic = stored(&api).status.unwrap().route.traffic;
    assert_eq!(
        traffic[1].url.as_deref(),
        Some("http://old-r.ns.example.com")
    );
}

#[tokio::test]
async fn a_tag_whose_service_is_labelled_cluster_local_stays_inside_the_cluster() {
    let traffic = json!([
        to_config(100),
        {"tag": "old", "revisionName": "c-00001", "latestRevision": false, "percent": 0},
    ]);
    let (api, driver) = setup(route(traffic), example_com());
    seed_ready_configuration(&api);
    let private: K8sService = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "old-r", "namespace": NS,
                     "labels": {"serving.knative.dev/route": "r",
                                "networking.knative.dev/visibility": "cluster-local"},
                     "ownerReferences": [{"apiVersion": "serving.knative.dev/v1", "kind": "Route",
                                          "name": "r", "uid": "uid-r", "controller": true}]},
        "spec": {"type": "ExternalName", "externalName": "old-r.ns.example.com"},
    }))
    .unwrap();
    api.seed(&private);
    reconcile(&api, &driver).await.unwrap();

    let visibilities: Vec<Value> = ingress_spec(&api)["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["hosts"][0], r["visibility"]]))
        .collect();
    assert_eq!(
        visibilities,
        [
            json!(["r.ns", "ClusterLocal"]),
            json!(["r.ns.example.com", "ExternalIP"]),
            json!(["old-r.ns", "ClusterLocal"]),
        ]
    );
    let traffic = stored(&api).status.unwrap().route.traffic;
    assert_eq!(
        traffic[1].url.as_deref(),
        Some("http://old-r.ns.svc.cluster.local")
    );
}

#[tokio::test]
async fn an_h2c_revision_is_reached_on_port_81() {
    let (api, driver) = setup(
        route(json!([{"revisionName": "h", "latestRevision": false, "percent": 100}])),
        Config::default(),
    );
    api.seed(&configuration(Some("c-00002"), "True"));
    let mut rev = revision("h", "True");
    rev.spec.pod_spec.containers[0].ports = Some(vec![
        serde_json::from_value(json!({"name": "h2c", "containerPort": 8080})).unwrap(),
    ]);
    api.seed(&rev);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        ingress_spec(&api)["rules"][0]["http"]["paths"][0]["splits"][0]["servicePort"],
        81
    );
}

#[tokio::test]
async fn the_ingress_class_annotation_of_the_route_wins() {
    let mut r = route(json!([to_config(100)]));
    r["metadata"]["annotations"] = json!({
        "networking.knative.dev/ingress.class": "kourier.ingress.networking.knative.dev",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    });
    let (api, driver) = setup(r, Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        serde_json::to_value(ingress(&api).metadata.annotations).unwrap(),
        json!({"networking.knative.dev/ingress.class": "kourier.ingress.networking.knative.dev"})
    );
}

#[tokio::test]
async fn http_redirected_is_passed_to_the_ingress() {
    let config = Config {
        network: NetworkConfig::from_data(&data(&[("http-protocol", "Redirected")])).unwrap(),
        ..Config::default()
    };
    let (api, driver) = setup(route(json!([to_config(100)])), config);
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    assert_eq!(ingress_spec(&api)["httpOption"], "Redirected");
}

// ---------------------------------------------------------------------------------------------
// Targets that cannot be resolved

#[tokio::test]
async fn a_configuration_without_a_ready_revision_leaves_traffic_unassigned() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    api.seed(&configuration(None, "Unknown"));
    reconcile(&api, &driver).await.unwrap();

    let r = stored(&api);
    let ata = condition(&r, "AllTrafficAssigned");
    assert_eq!(ata.status, ConditionStatus::Unknown);
    assert_eq!(ata.reason.as_deref(), Some("RevisionMissing"));
    assert_eq!(
        ata.message.as_deref(),
        Some(r#"Configuration "c" is waiting for a Revision to become ready."#)
    );
    assert_eq!(
        r.status.as_ref().unwrap().route.url.as_deref(),
        Some("http://r.ns.svc.cluster.local"),
        "the URL is known before the traffic"
    );
    assert_eq!(api.creates(), vec![], "nothing is programmed");
}

#[tokio::test]
async fn a_missing_configuration_fails_all_traffic_assigned() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    reconcile(&api, &driver).await.unwrap();

    let r = stored(&api);
    let ata = condition(&r, "AllTrafficAssigned");
    assert_eq!(
        (ata.status, ata.reason.as_deref(), ata.message.as_deref()),
        (
            ConditionStatus::False,
            Some("ConfigurationMissing"),
            Some(r#"Configuration "c" referenced in traffic not found."#)
        )
    );
    assert_eq!(
        reason_of(&r, "Ready"),
        (ConditionStatus::False, Some("ConfigurationMissing".into()))
    );
}

#[tokio::test]
async fn a_missing_revision_fails_all_traffic_assigned() {
    let (api, driver) = setup(
        route(json!([{"revisionName": "gone", "percent": 100}])),
        Config::default(),
    );
    reconcile(&api, &driver).await.unwrap();
    assert_eq!(
        reason_of(&stored(&api), "AllTrafficAssigned"),
        (ConditionStatus::False, Some("RevisionMissing".into()))
    );
}

#[tokio::test]
async fn a_failed_revision_fails_all_traffic_assigned() {
    let (api, driver) = setup(
        route(json!([{"revisionName": "c-00003", "percent": 100}])),
        Config::default(),
    );
    seed_ready_configuration(&api);
    api.seed(&revision("c-00003", "False"));
    reconcile(&api, &driver).await.unwrap();
    let ata = condition(&stored(&api), "AllTrafficAssigned");
    assert_eq!(ata.status, ConditionStatus::False);
    assert_eq!(
        ata.message.as_deref(),
        Some(r#"Revision "c-00003" failed to become ready."#)
    );
}

// ---------------------------------------------------------------------------------------------
// The Ingress' status

#[tokio::test]
async fn a_ready_ingress_makes_the_route_ready() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    ingress_status(&api, "True", None);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    let r = stored(&api);
    assert_eq!(reason_of(&r, "IngressReady"), (ConditionStatus::True, None));
    assert_eq!(reason_of(&r, "Ready"), (ConditionStatus::True, None));
    assert_eq!(api.updates(), vec![], "the Ingress is left alone");
}

#[tokio::test]
async fn an_ingress_not_yet_programmed_keeps_the_route_waiting_with_its_reason() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    ingress_status(&api, "Unknown", None);

    reconcile(&api, &driver).await.unwrap();

    let ready = condition(&stored(&api), "IngressReady");
    assert_eq!(
        (
            ready.status,
            ready.reason.as_deref(),
            ready.message.as_deref()
        ),
        (
            ConditionStatus::Unknown,
            Some("Unprogrammed"),
            Some("not yet")
        )
    );
}

#[tokio::test]
async fn a_failed_ingress_fails_the_route() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    ingress_status(&api, "False", None);

    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        reason_of(&stored(&api), "Ready"),
        (ConditionStatus::False, Some("Unprogrammed".into()))
    );
}

#[tokio::test]
async fn the_kubernetes_service_follows_the_ingress_load_balancer() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    ingress_status(
        &api,
        "True",
        Some("kourier-internal.kourier-system.svc.cluster.local"),
    );
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    let updates = api.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].resource, "services");
    let svc = api.get::<K8sService>(NS, "r").unwrap();
    assert_eq!(
        serde_json::to_value(&svc.spec).unwrap(),
        json!({"type": "ExternalName",
               "externalName": "kourier-internal.kourier-system.svc.cluster.local",
               "sessionAffinity": "None",
               "ports": [{"name": "http2", "port": 80, "targetPort": 80}]})
    );

    api.clear_actions();
    reconcile(&api, &driver).await.unwrap();
    assert_eq!(api.writes(), vec![], "the Service is already right");
}

#[tokio::test]
async fn an_ingress_that_drifted_is_updated() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    let mut drifted = ingress(&api);
    drifted.spec.rules.clear();
    api.seed(&drifted);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    let updates = api.updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].resource, "ingresses");
    assert_eq!(ingress(&api).spec.rules.len(), 1);
}

#[tokio::test]
async fn new_traffic_reprograms_the_ingress() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    let mut r = stored(&api);
    r.spec.traffic[0].percent = Some(50);
    r.spec
        .traffic
        .push(serde_json::from_value(json!({"revisionName": "c-00001", "percent": 50})).unwrap());
    r.metadata.generation = Some(2);
    api.seed(&r);
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();

    assert_eq!(api.updates().len(), 1);
    assert_eq!(
        ingress_spec(&api)["rules"][0]["http"]["paths"][0]["splits"],
        json!([split("c-00002", 50), split("c-00001", 50)])
    );
}

// ---------------------------------------------------------------------------------------------
// Placeholder Services

#[tokio::test]
async fn a_placeholder_service_the_route_does_not_own_is_refused() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    let foreign: K8sService = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "r", "namespace": NS},
        "spec": {"type": "ClusterIP"},
    }))
    .unwrap();
    api.seed(&foreign);

    reconcile(&api, &driver).await.unwrap();

    let message = r#"There is an existing placeholder Service "r" that we do not own."#;
    let ready = condition(&stored(&api), "IngressReady");
    assert_eq!(
        (
            ready.status,
            ready.reason.as_deref(),
            ready.message.as_deref()
        ),
        (ConditionStatus::False, Some("NotOwned"), Some(message))
    );
    assert_eq!(api.creates(), vec![], "no Ingress without its Service");
    assert_eq!(api.events(), [event("Warning", "NotOwned", message)]);
}

#[tokio::test]
async fn the_service_of_a_removed_tag_is_deleted() {
    let traffic = json!([
        to_config(100),
        {"tag": "old", "revisionName": "c-00001", "percent": 0},
    ]);
    let (api, driver) = setup(route(traffic), Config::default());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    assert!(api.get::<K8sService>(NS, "old-r").is_some());

    let mut r = stored(&api);
    r.spec.traffic.truncate(1);
    r.metadata.generation = Some(2);
    api.seed(&r);
    api.clear_actions();
    reconcile(&api, &driver).await.unwrap();

    let deletes: Vec<_> = api.deletes().into_iter().map(|a| a.name).collect();
    assert_eq!(deletes, [Some("old-r".to_owned())]);
    assert!(api.get::<K8sService>(NS, "old-r").is_none());
}

// ---------------------------------------------------------------------------------------------
// Certificates, tracking, idempotence

#[tokio::test]
async fn external_domain_tls_cannot_be_satisfied_without_certificates() {
    let config = Config {
        network: NetworkConfig::from_data(&data(&[("external-domain-tls", "Enabled")])).unwrap(),
        ..example_com()
    };
    let (api, driver) = setup(route(json!([to_config(100)])), config);
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    assert_eq!(
        reason_of(&stored(&api), "CertificateProvisioned"),
        (
            ConditionStatus::False,
            Some("CertificateNotSupported".into())
        )
    );
}

#[tokio::test]
async fn a_cluster_local_route_needs_no_certificate_even_with_external_domain_tls() {
    let config = Config {
        network: NetworkConfig::from_data(&data(&[("external-domain-tls", "Enabled")])).unwrap(),
        ..Config::default()
    };
    let (api, driver) = setup(route(json!([to_config(100)])), config);
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    let cert = condition(&stored(&api), "CertificateProvisioned");
    assert_eq!(cert.status, ConditionStatus::True);
    assert_eq!(
        cert.message.as_deref(),
        Some("TLS is not enabled for cluster-local")
    );
}

#[tokio::test]
async fn the_tracker_knows_what_each_route_refers_to() {
    let (api, _) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    let reconciler = RouteReconciler::new();
    let tracker = reconciler.tracker().clone();
    let driver = Driver::new(api.client(), reconciler);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        tracker.routes_referring_to(NS, TargetKind::Configuration, "c"),
        ["r"]
    );
    assert_eq!(
        tracker.routes_referring_to(NS, TargetKind::Revision, "c-00002"),
        ["r"]
    );
    assert!(
        tracker
            .routes_referring_to(NS, TargetKind::Revision, "c-00001")
            .is_empty()
    );
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_writes_nothing() {
    let (api, driver) = setup(route(json!([to_config(100)])), example_com());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    ingress_status(&api, "True", None);
    reconcile(&api, &driver).await.unwrap();
    api.clear_actions();

    reconcile(&api, &driver).await.unwrap();
    assert_eq!(api.writes(), vec![]);
    assert_eq!(api.events(), vec![]);
}

#[tokio::test]
async fn a_failure_to_create_the_ingress_is_reported_and_retried() {
    let (api, driver) = setup(route(json!([to_config(100)])), Config::default());
    seed_ready_configuration(&api);
    api.fail_next(Verb::Create, "ingresses", 500);

    let err = reconcile(&api, &driver).await.unwrap_err();
    assert!(
        err.to_string().contains("failed to create Ingress"),
        "{err}"
    );
    let reasons: Vec<String> = api.events().into_iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Created", "CreationFailed", "InternalError"]);
}

fn routes_and_state(api: &RecordingApi, revision: &str) -> (Option<String>, Option<String>) {
    let rev = api.get::<Revision>(NS, revision).expect("revision");
    (
        rev.metadata
            .annotations
            .unwrap_or_default()
            .get("serving.knative.dev/routes")
            .cloned(),
        rev.metadata
            .labels
            .unwrap_or_default()
            .get("serving.knative.dev/routingState")
            .cloned(),
    )
}

#[tokio::test]
async fn the_labeler_marks_the_revisions_and_configuration_a_route_uses_as_active() {
    let (api, driver) = setup(route(json!([to_config(100)])), example_com());
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        routes_and_state(&api, "c-00002"),
        (Some("r".to_owned()), Some("active".to_owned()))
    );
    // c-00001 is neither routed nor was it ever: the labeler leaves it alone.
    assert_eq!(routes_and_state(&api, "c-00001"), (None, None));
    let config = api.get::<Configuration>(NS, "c").unwrap();
    assert_eq!(
        config.metadata.annotations.unwrap_or_default()["serving.knative.dev/routes"],
        "r"
    );
}

#[tokio::test]
async fn a_revision_an_earlier_controller_labelled_is_reserved_on_the_first_pass() {
    let (api, driver) = setup(
        route(json!([{"revisionName": "c-00002", "percent": 100}])),
        example_com(),
    );
    seed_ready_configuration(&api);
    // Labelled for this Route before this controller started: only a scan can find it.
    let mut labelled = revision("c-00001", "True");
    labelled.metadata.annotations = Some(data(&[("serving.knative.dev/routes", "r")]));
    labelled.metadata.labels = Some(data(&[
        ("serving.knative.dev/configuration", "c"),
        ("serving.knative.dev/routingState", "active"),
    ]));
    api.seed(&labelled);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        routes_and_state(&api, "c-00001"),
        (None, Some("reserve".to_owned()))
    );
}

#[tokio::test]
async fn the_labeler_scans_a_namespace_on_its_first_pass_there_only() {
    let (api, driver) = setup(route(json!([to_config(100)])), example_com());
    seed_ready_configuration(&api);
    let scans = |api: &RecordingApi| {
        api.actions()
            .iter()
            .filter(|a| {
                a.verb == Verb::List
                    && (a.resource == "revisions" || a.resource == "configurations")
            })
            .count()
    };
    reconcile(&api, &driver).await.unwrap();
    let first = scans(&api);
    assert!(
        first >= 2,
        "the first pass scans revisions and configurations"
    );
    api.clear_actions();
    reconcile(&api, &driver).await.unwrap();
    assert_eq!(scans(&api), 0, "{:#?}", api.actions());
}

#[tokio::test]
async fn a_revision_the_route_no_longer_uses_is_reserved() {
    let (api, driver) = setup(
        route(json!([{"revisionName": "c-00001", "percent": 100}])),
        example_com(),
    );
    seed_ready_configuration(&api);
    reconcile(&api, &driver).await.unwrap();
    assert_eq!(
        routes_and_state(&api, "c-00001"),
        (Some("r".to_owned()), Some("active".to_owned()))
    );

    let mut moved = stored(&api);
    moved.spec.traffic =
        serde_json::from_value(json!([{"revisionName": "c-00002", "percent": 100}])).unwrap();
    api.seed(&moved);
    reconcile(&api, &driver).await.unwrap();

    assert_eq!(
        routes_and_state(&api, "c-00001"),
        (None, Some("reserve".to_owned()))
    );
    assert_eq!(
        routes_and_state(&api, "c-00002"),
        (Some("r".to_owned()), Some("active".to_owned()))
    );
}
