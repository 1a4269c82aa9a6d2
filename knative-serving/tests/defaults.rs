//! Knative's defaulting, and the condition sets of every kind.

use k8s_openapi::jiff::Timestamp;
use knative_core::apis::{ConditionSeverity, ConditionStatus, KnativeObject};
use knative_serving::apis::serving::v1::REVISION_CONDITION_ACTIVE;
use knative_serving::apis::{
    Configuration, Defaults, Ingress, PodAutoscaler, Revision, Route, ServerlessService, Service,
    SetDefaults, Validate,
};
use serde_json::{Value, json};

fn service(spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": { "name": "hello" },
        "spec": spec,
    }))
    .expect("a Service")
}

fn defaulted(spec: Value) -> Service {
    let mut s = service(spec);
    s.set_defaults(&Defaults::default());
    s
}

const IMAGE: &str = "ghcr.io/knative/helloworld-go:latest";

#[test]
fn a_defaulted_helloworld_is_what_knatives_webhook_writes() {
    let s = defaulted(json!({ "template": { "spec": { "containers": [{
        "image": IMAGE,
        "ports": [{ "containerPort": 8080 }],
        "env": [{ "name": "TARGET", "value": "World" }],
    }] } } }));
    assert_eq!(
        serde_json::to_value(&s).unwrap()["spec"],
        json!({
            "template": { "spec": {
                "containerConcurrency": 0,
                "timeoutSeconds": 300,
                "enableServiceLinks": false,
                "containers": [{
                    "name": "user-container",
                    "image": IMAGE,
                    "ports": [{ "containerPort": 8080 }],
                    "env": [{ "name": "TARGET", "value": "World" }],
                    "readinessProbe": { "tcpSocket": { "port": 0 }, "successThreshold": 1 },
                }],
            } },
            "traffic": [{ "latestRevision": true, "percent": 100 }],
        })
    );
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn defaulting_is_idempotent() {
    let once = defaulted(json!({
        "template": { "spec": { "containers": [{ "image": IMAGE }, { "image": "sidecar" }] } },
        "traffic": [{ "revisionName": "hello-00001", "percent": 100 }],
    }));
    let mut twice = once.clone();
    twice.set_defaults(&Defaults::default());
    assert_eq!(once, twice);
}

#[test]
fn a_service_without_traffic_sends_all_of_it_to_the_latest_revision() {
    let s = defaulted(json!({ "template": { "spec": { "containers": [{ "image": IMAGE }] } } }));
    let traffic = serde_json::to_value(&s.spec.route.traffic).unwrap();
    assert_eq!(traffic, json!([{ "latestRevision": true, "percent": 100 }]));
}

#[test]
fn a_route_without_traffic_gets_none() {
    let mut r: Route = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Route", "metadata": { "name": "hello" }, "spec": {},
    }))
    .unwrap();
    r.set_defaults(&Defaults::default());
    assert!(r.spec.traffic.is_empty());
}

#[test]
fn latest_revision_defaults_to_whether_no_revision_is_named_and_percent_to_zero() {
    let mut r: Route = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Route", "metadata": { "name": "hello" },
        "spec": { "traffic": [
            { "configurationName": "hello", "percent": 100 },
            { "revisionName": "hello-00001", "tag": "old" },
            { "revisionName": "hello-00002", "latestRevision": false, "percent": 0 },
        ] },
    }))
    .unwrap();
    r.set_defaults(&Defaults::default());
    assert_eq!(
        serde_json::to_value(&r.spec.traffic).unwrap(),
        json!([
            { "configurationName": "hello", "latestRevision": true, "percent": 100 },
            { "revisionName": "hello-00001", "tag": "old", "latestRevision": false, "percent": 0 },
            { "revisionName": "hello-00002", "latestRevision": false, "percent": 0 },
        ])
    );
    assert_eq!(r.validate(), Ok(()));
}

#[test]
fn the_timeout_defaults_from_config_defaults_and_zero_means_unset() {
    let defaults = Defaults {
        revision_timeout_seconds: 120,
        ..Defaults::default()
    };
    for timeout in [json!(null), json!(0)] {
        let mut s = service(
            json!({ "template": { "spec": { "timeoutSeconds": timeout, "containers": [{ "image": IMAGE }] } } }),
        );
        s.set_defaults(&defaults);
        assert_eq!(
            s.spec.configuration.template.spec.timeout_seconds,
            Some(120)
        );
    }
    let s = defaulted(
        json!({ "template": { "spec": { "timeoutSeconds": 30, "containers": [{ "image": IMAGE }] } } }),
    );
    assert_eq!(s.spec.configuration.template.spec.timeout_seconds, Some(30));
}

#[test]
fn container_concurrency_defaults_from_config_defaults() {
    let mut s = service(json!({ "template": { "spec": { "containers": [{ "image": IMAGE }] } } }));
    s.set_defaults(&Defaults {
        container_concurrency: 10,
        ..Defaults::default()
    });
    assert_eq!(
        s.spec.configuration.template.spec.container_concurrency,
        Some(10)
    );
}

#[test]
fn unnamed_containers_are_named_user_container_and_numbered_when_several() {
    let s = defaulted(json!({ "template": { "spec": {
        "initContainers": [{ "image": "setup" }],
        "containers": [{ "image": IMAGE, "ports": [{ "containerPort": 8080 }] }, { "name": "proxy", "image": "proxy" }, { "image": "log" }],
    } } }));
    let pod = &s.spec.configuration.template.spec.pod_spec;
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["user-container-0", "proxy", "user-container-1"]);
    assert_eq!(
        pod.init_containers.as_ref().unwrap()[0].name,
        "init-container"
    );
}

#[test]
fn only_the_serving_container_gets_the_default_readiness_probe() {
    let s = defaulted(json!({ "template": { "spec": {
        "containers": [{ "image": IMAGE, "ports": [{ "containerPort": 8080 }] }, { "name": "sidecar", "image": "sidecar" }],
    } } }));
    let containers = &s.spec.configuration.template.spec.pod_spec.containers;
    assert_eq!(
        serde_json::to_value(&containers[0].readiness_probe).unwrap(),
        json!({ "tcpSocket": { "port": 0 }, "successThreshold": 1 })
    );
    assert_eq!(containers[1].readiness_probe, None);
}

#[test]
fn a_periodic_readiness_probe_gets_kubernetes_thresholds() {
    let s = defaulted(json!({ "template": { "spec": { "containers": [{
        "image": IMAGE,
        "readinessProbe": { "httpGet": { "path": "/ready", "port": 0 }, "periodSeconds": 5 },
    }] } } }));
    let probe = s.spec.configuration.template.spec.pod_spec.containers[0]
        .readiness_probe
        .clone()
        .unwrap();
    assert_eq!(
        serde_json::to_value(probe).unwrap(),
        json!({ "httpGet": { "path": "/ready", "port": 0 }, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3, "timeoutSeconds": 1 })
    );
}

#[test]
fn mounts_of_configuration_volumes_become_read_only() {
    let s = defaulted(json!({ "template": { "spec": {
        "containers": [{ "image": IMAGE, "volumeMounts": [
            { "name": "config", "mountPath": "/etc/config" },
            { "name": "scratch", "mountPath": "/tmp" },
        ] }],
        "volumes": [{ "name": "config", "configMap": { "name": "config" } }, { "name": "scratch", "emptyDir": {} }],
    } } }));
    let mounts = s.spec.configuration.template.spec.pod_spec.containers[0]
        .volume_mounts
        .clone()
        .unwrap();
    assert_eq!(mounts[0].read_only, Some(true));
    assert_eq!(mounts[1].read_only, None);
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn service_links_default_to_off() {
    let s = defaulted(json!({ "template": { "spec": { "containers": [{ "image": IMAGE }] } } }));
    assert_eq!(
        s.spec
            .configuration
            .template
            .spec
            .pod_spec
            .enable_service_links,
        Some(false)
    );
    let s = defaulted(
        json!({ "template": { "spec": { "enableServiceLinks": true, "containers": [{ "image": IMAGE }] } } }),
    );
    assert_eq!(
        s.spec
            .configuration
            .template
            .spec
            .pod_spec
            .enable_service_links,
        Some(true)
    );
}

#[test]
fn configurations_and_revisions_default_their_templates_and_specs() {
    let mut config: Configuration = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration", "metadata": { "name": "hello" },
        "spec": { "template": { "spec": { "containers": [{ "image": IMAGE }] } } },
    }))
    .unwrap();
    config.set_defaults(&Defaults::default());
    assert_eq!(
        config.spec.template.spec.pod_spec.containers[0].name,
        "user-container"
    );

    let mut rev: Revision = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision", "metadata": { "name": "hello-00001" },
        "spec": { "containers": [{ "image": IMAGE }] },
    }))
    .unwrap();
    rev.set_defaults(&Defaults::default());
    assert_eq!(rev.spec.timeout_seconds, Some(300));
    assert_eq!(rev.spec.pod_spec.containers[0].name, "user-container");
}

// Condition sets.

fn dependents<K: KnativeObject>() -> Vec<String> {
    assert_eq!(K::condition_set().happy(), "Ready");
    K::condition_set().dependents().to_vec()
}

#[test]
fn every_kind_has_knatives_condition_set() {
    assert_eq!(
        dependents::<Service>(),
        ["ConfigurationsReady", "RoutesReady"]
    );
    assert!(dependents::<Configuration>().is_empty());
    assert_eq!(
        dependents::<Revision>(),
        ["ResourcesAvailable", "ContainerHealthy"]
    );
    assert_eq!(
        dependents::<Route>(),
        [
            "AllTrafficAssigned",
            "IngressReady",
            "CertificateProvisioned"
        ]
    );
    assert_eq!(
        dependents::<PodAutoscaler>(),
        ["Active", "ScaleTargetInitialized", "SKSReady"]
    );
    assert_eq!(
        dependents::<Ingress>(),
        ["NetworkConfigured", "LoadBalancerReady"]
    );
    assert_eq!(dependents::<ServerlessService>(), ["EndpointsPopulated"]);
}

#[test]
fn a_revisions_active_condition_is_informational_and_never_gates_ready() {
    let now: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
    let mut rev = Revision::default();
    let mut conditions = rev.manage_conditions(now);
    conditions.initialize_conditions();
    conditions.mark_true("ResourcesAvailable");
    conditions.mark_true("ContainerHealthy");
    conditions.mark_false(
        REVISION_CONDITION_ACTIVE,
        "NoTraffic",
        "The target is not receiving traffic.",
    );
    assert!(conditions.is_happy());
    let active = conditions.get_condition(REVISION_CONDITION_ACTIVE).unwrap();
    assert_eq!(active.status, ConditionStatus::False);
    assert_eq!(active.severity, ConditionSeverity::Info);
}
