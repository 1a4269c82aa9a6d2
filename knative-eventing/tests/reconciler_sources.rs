//! Table tests of the source reconcilers on the recording API double: sources in, adapter
//! Deployments (with `K_SINK`) and bound subjects out.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use knative_core::apis::{ConditionStatus, KnativeObject, KnativeStatus};
use knative_core::reconciler::{Driver, Reconciler};
use knative_core::testing::RecordingApi;
use knative_eventing::apis::{ApiServerSource, ContainerSource, PingSource, SinkBinding};
use knative_eventing::reconciler::sources::{
    AdapterImages, ApiServerSourceReconciler, ContainerSourceReconciler, PingSourceReconciler,
    SinkBindingReconciler,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NS: &str = "ns";

fn object<K: DeserializeOwned>(api_version: &str, kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn sink() -> Value {
    json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}})
}

const SINK_URL: &str = "http://event-display.ns.svc.cluster.local";

async fn reconcile<K, R>(api: &RecordingApi, reconciler: R, name: &str) -> K
where
    K: KnativeObject + kube::Resource<DynamicType = ()>,
    R: Reconciler<K>,
{
    let driver = Driver::new(api.client(), reconciler);
    let obj = api.get::<K>(NS, name).expect("object");
    let _ = driver.reconcile(Arc::new(obj)).await;
    api.get::<K>(NS, name).expect("object")
}

fn state<K: KnativeObject>(obj: &K, t: &str) -> (ConditionStatus, Option<String>) {
    let c = obj
        .status()
        .and_then(|s| s.duck().get_condition(t))
        .cloned()
        .unwrap_or_else(|| panic!("no condition {t}"));
    (c.status, c.reason)
}

fn env_of(deployment: &Deployment, container: usize) -> Vec<(String, String)> {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[container]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

fn set_available(api: &RecordingApi, name: &str) {
    let mut d = api.get::<Deployment>(NS, name).expect("deployment");
    let mut value = serde_json::to_value(&d).unwrap();
    value["status"] = json!({"conditions": [{"type": "Available", "status": "True"}]});
    d = serde_json::from_value(value).unwrap();
    api.seed(&d);
}

#[tokio::test]
async fn a_container_source_runs_its_template_with_k_sink() {
    let api = RecordingApi::new();
    api.seed(&object::<ContainerSource>(
        "sources.knative.dev/v1",
        "ContainerSource",
        "heartbeats",
        json!({"sink": sink(), "template": {"spec": {"containers": [{"name": "hb", "image": "heartbeats", "env": [{"name": "POD_NAME", "value": "p"}]}]}}}),
    ));
    let source: ContainerSource = reconcile(&api, ContainerSourceReconciler, "heartbeats").await;
    assert_eq!(
        source.status.as_ref().unwrap().sink_uri.as_deref(),
        Some(SINK_URL)
    );
    let deployment = api
        .get::<Deployment>(NS, "heartbeats-deployment")
        .expect("adapter");
    let env = env_of(&deployment, 0);
    assert_eq!(env_value(&env, "POD_NAME").as_deref(), Some("p"));
    assert_eq!(env_value(&env, "K_SINK").as_deref(), Some(SINK_URL));
    let owner = &deployment.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("ContainerSource", Some(true))
    );
    assert_eq!(state(&source, "SinkProvided").0, ConditionStatus::True);
    assert_eq!(state(&source, "Deployed").0, ConditionStatus::Unknown);
}

#[tokio::test]
async fn a_source_is_ready_once_its_adapter_is_available() {
    let api = RecordingApi::new();
    api.seed(&object::<ContainerSource>(
        "sources.knative.dev/v1",
        "ContainerSource",
        "heartbeats",
        json!({"sink": sink(), "template": {"spec": {"containers": [{"name": "hb", "image": "heartbeats"}]}}}),
    ));
    let _: ContainerSource = reconcile(&api, ContainerSourceReconciler, "heartbeats").await;
    set_available(&api, "heartbeats-deployment");
    let source: ContainerSource = reconcile(&api, ContainerSourceReconciler, "heartbeats").await;
    assert_eq!(state(&source, "Ready").0, ConditionStatus::True);
}

#[tokio::test]
async fn a_source_whose_sink_does_not_resolve_deploys_nothing() {
    let api = RecordingApi::new();
    api.seed(&object::<PingSource>(
        "sources.knative.dev/v1",
        "PingSource",
        "ping",
        json!({"schedule": "* * * * *", "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "missing"}}}),
    ));
    let source: PingSource = reconcile(
        &api,
        PingSourceReconciler::new(AdapterImages::default()),
        "ping",
    )
    .await;
    assert_eq!(
        state(&source, "SinkProvided"),
        (ConditionStatus::False, Some("NotFound".into()))
    );
    assert!(api.creates().is_empty());
}

#[tokio::test]
async fn a_ping_source_adapter_carries_schedule_data_sink_and_overrides() {
    let api = RecordingApi::new();
    api.seed(&object::<PingSource>(
        "sources.knative.dev/v1",
        "PingSource",
        "ping",
        json!({"schedule": "*/2 * * * *", "timezone": "Europe/Rome", "contentType": "application/json",
               "data": "{\"message\": \"Hello world!\"}", "sink": sink(),
               "ceOverrides": {"extensions": {"extra": "x"}}}),
    ));
    let images = AdapterImages {
        ping: "ping-adapter:1".into(),
        ..AdapterImages::default()
    };
    let _: PingSource = reconcile(&api, PingSourceReconciler::new(images), "ping").await;
    let deployment = api
        .get::<Deployment>(NS, "pingsource-ping")
        .expect("adapter");
    let container = &deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(container.image.as_deref(), Some("ping-adapter:1"));
    assert_eq!(
        container.args.as_deref(),
        Some(&["eventing".to_owned(), "ping".to_owned()][..]),
        "the adapter runs `knative eventing ping`"
    );
    let env = env_of(&deployment, 0);
    assert_eq!(
        env_value(&env, "PING_SCHEDULE").as_deref(),
        Some("*/2 * * * *")
    );
    assert_eq!(
        env_value(&env, "PING_TIMEZONE").as_deref(),
        Some("Europe/Rome")
    );
    assert_eq!(
        env_value(&env, "PING_DATA").as_deref(),
        Some("{\"message\": \"Hello world!\"}")
    );
    assert_eq!(env_value(&env, "K_SINK").as_deref(), Some(SINK_URL));
    assert_eq!(
        env_value(&env, "K_CE_OVERRIDES").as_deref(),
        Some(r#"{"extensions":{"extra":"x"}}"#)
    );
    assert_eq!(
        env_value(&env, "K_SOURCE").as_deref(),
        Some("/apis/v1/namespaces/ns/pingsources/ping")
    );
}

#[tokio::test]
async fn an_api_server_source_adapter_is_configured_with_its_resources_and_mode() {
    let api = RecordingApi::new();
    api.seed(&object::<ApiServerSource>(
        "sources.knative.dev/v1",
        "ApiServerSource",
        "events",
        json!({"mode": "Resource", "serviceAccountName": "events-sa",
               "resources": [{"apiVersion": "v1", "kind": "Event"}], "sink": sink()}),
    ));
    let _: ApiServerSource = reconcile(
        &api,
        ApiServerSourceReconciler::new(AdapterImages::default()),
        "events",
    )
    .await;
    let deployment = api
        .get::<Deployment>(NS, "apiserversource-events")
        .expect("adapter");
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("events-sa"));
    let config: Value =
        serde_json::from_str(&env_value(&env_of(&deployment, 0), "K_SOURCE_CONFIG").unwrap())
            .unwrap();
    assert_eq!(config["mode"], "Resource");
    assert_eq!(config["namespaces"], json!(["ns"]));
    assert_eq!(
        config["resources"],
        json!([{"gvr": {"Group": "", "Version": "v1", "Resource": "events"}}]),
        "resources as Knative's adapter reads them"
    );
    assert_eq!(
        pod.containers[0].args.as_deref(),
        Some(&["eventing".to_owned(), "apiserver".to_owned()][..]),
        "the adapter runs `knative eventing apiserver`"
    );
}

fn subject_deployment(name: &str, labels: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "img", "env": [{"name": "KEEP", "value": "1"}]}]}}},
    }))
    .unwrap()
}

fn sink_binding(subject: Value, overrides: Option<Value>) -> SinkBinding {
    let mut spec = json!({"subject": subject, "sink": sink()});
    if let Some(o) = overrides {
        spec["ceOverrides"] = o;
    }
    object("sources.knative.dev/v1", "SinkBinding", "bind", spec)
}

#[tokio::test]
async fn a_sink_binding_injects_k_sink_and_overrides_into_its_named_subject() {
    let api = RecordingApi::new();
    api.seed(&subject_deployment("heartbeat", json!({})));
    api.seed(&sink_binding(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "heartbeat"}),
        Some(json!({"extensions": {"extra": "this is an extra attribute"}})),
    ));
    let binding: SinkBinding = reconcile(&api, SinkBindingReconciler, "bind").await;
    let env = env_of(&api.get::<Deployment>(NS, "heartbeat").unwrap(), 0);
    assert_eq!(env_value(&env, "KEEP").as_deref(), Some("1"));
    assert_eq!(env_value(&env, "K_SINK").as_deref(), Some(SINK_URL));
    assert_eq!(
        env_value(&env, "K_CE_OVERRIDES").as_deref(),
        Some(r#"{"extensions":{"extra":"this is an extra attribute"}}"#)
    );
    assert_eq!(state(&binding, "Ready").0, ConditionStatus::True);
}

#[tokio::test]
async fn a_sink_binding_binds_every_subject_its_selector_matches_and_no_other() {
    let api = RecordingApi::new();
    api.seed(&subject_deployment("a", json!({"app": "heartbeat-cron"})));
    api.seed(&subject_deployment("b", json!({"app": "heartbeat-cron"})));
    api.seed(&subject_deployment("other", json!({"app": "other"})));
    api.seed(&sink_binding(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "selector": {"matchLabels": {"app": "heartbeat-cron"}}}),
        None,
    ));
    let _: SinkBinding = reconcile(&api, SinkBindingReconciler, "bind").await;
    for name in ["a", "b"] {
        let env = env_of(&api.get::<Deployment>(NS, name).unwrap(), 0);
        assert_eq!(
            env_value(&env, "K_SINK").as_deref(),
            Some(SINK_URL),
            "{name}"
        );
    }
    let other = env_of(&api.get::<Deployment>(NS, "other").unwrap(), 0);
    assert_eq!(env_value(&other, "K_SINK"), None);
}

#[tokio::test]
async fn a_sink_binding_without_a_subject_is_not_available() {
    let api = RecordingApi::new();
    api.seed(&sink_binding(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "missing"}),
        None,
    ));
    let binding: SinkBinding = reconcile(&api, SinkBindingReconciler, "bind").await;
    assert_eq!(
        state(&binding, "BindingAvailable"),
        (ConditionStatus::False, Some("SubjectMissing".into()))
    );
}

#[tokio::test]
async fn a_second_pass_of_a_bound_sink_binding_writes_nothing() {
    let api = RecordingApi::new();
    api.seed(&subject_deployment("heartbeat", json!({})));
    api.seed(&sink_binding(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "heartbeat"}),
        None,
    ));
    let _: SinkBinding = reconcile(&api, SinkBindingReconciler, "bind").await;
    api.clear_actions();
    let _: SinkBinding = reconcile(&api, SinkBindingReconciler, "bind").await;
    assert_eq!(api.writes(), vec![]);
}
