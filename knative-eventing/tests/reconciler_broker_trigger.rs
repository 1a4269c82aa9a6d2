//! Table tests of the Broker and Trigger reconcilers on the recording API double: objects in,
//! the status (address, subscriber URI, conditions) and Events out.

use std::sync::Arc;

use knative_core::apis::{Condition, ConditionStatus, KnativeObject};
use knative_core::reconciler::{Driver, Reconciler};
use knative_core::testing::RecordingApi;
use knative_eventing::apis::{Broker, Trigger};
use knative_eventing::reconciler::broker::{BrokerIngress, BrokerReconciler};
use knative_eventing::reconciler::trigger::TriggerReconciler;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const NS: &str = "ns";

/// A stand-in for an Addressable of another block (a Knative Service).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Service",
    namespaced,
    status = "Value"
)]
struct KsvcSpec {}

fn ksvc(name: &str, url: Option<&str>) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {},
        "status": url.map(|u| json!({"address": {"url": u}})).unwrap_or(json!({})),
    }))
    .unwrap()
}

fn broker(spec: Value) -> Broker {
    serde_json::from_value(json!({
        "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
        "metadata": {"name": "default", "namespace": NS, "uid": "uid-default", "generation": 1,
                     "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}},
        "spec": spec,
    }))
    .unwrap()
}

fn ready_broker(dead_letter_uri: Option<&str>) -> Broker {
    let mut b = broker(json!({}));
    let mut status = json!({
        "conditions": [{"type": "Ready", "status": "True"}],
        "address": {"url": "http://broker-ingress.knative-eventing.svc.cluster.local/ns/default"},
    });
    if let Some(uri) = dead_letter_uri {
        status["deadLetterSinkUri"] = json!(uri);
    }
    b.status = Some(serde_json::from_value(status).unwrap());
    b
}

fn trigger(subscriber: Value, extra: Value) -> Trigger {
    let mut t = json!({
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": "t", "namespace": NS, "uid": "uid-t", "generation": 1},
        "spec": {"broker": "default", "subscriber": subscriber},
    });
    if let Some(map) = extra.as_object() {
        for (k, v) in map {
            t["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(t).unwrap()
}

async fn reconcile<K, R>(api: &RecordingApi, reconciler: R, name: &str) -> (K, bool)
where
    K: KnativeObject + kube::Resource<DynamicType = ()>,
    R: Reconciler<K>,
{
    let driver = Driver::new(api.client(), reconciler);
    let obj = api.get::<K>(NS, name).expect("object");
    let ok = driver.reconcile(Arc::new(obj)).await.is_ok();
    (api.get::<K>(NS, name).expect("object"), ok)
}

fn condition<K: KnativeObject>(obj: &K, t: &str) -> Condition {
    use knative_core::apis::KnativeStatus;
    obj.status()
        .and_then(|s| s.duck().get_condition(t))
        .cloned()
        .unwrap_or_else(|| panic!("no condition {t}"))
}

fn state<K: KnativeObject>(obj: &K, t: &str) -> (ConditionStatus, Option<String>) {
    let c = condition(obj, t);
    (c.status, c.reason)
}

#[tokio::test]
async fn a_broker_is_addressed_under_the_configured_ingress_url_and_ready() {
    let api = RecordingApi::new();
    api.seed(&broker(json!({})));
    let reconciler = BrokerReconciler::new(BrokerIngress::Url("http://127.0.0.1:8080/".into()));
    let (b, ok) = reconcile::<Broker, _>(&api, reconciler, "default").await;
    assert!(ok);
    let status = b.status.clone().unwrap();
    assert_eq!(
        status.address.address.unwrap().url.as_deref(),
        Some("http://127.0.0.1:8080/ns/default")
    );
    assert_eq!(state(&b, "Ready").0, ConditionStatus::True);
    assert_eq!(
        state(&b, "DeadLetterSinkResolved").1.as_deref(),
        Some("DeadLetterSinkNotConfigured")
    );
}

#[tokio::test]
async fn an_in_cluster_broker_gets_knatives_mt_address_and_waits_for_ingress_endpoints() {
    let api = RecordingApi::new();
    api.seed(&broker(json!({})));
    let (b, _) = reconcile::<Broker, _>(&api, BrokerReconciler::default(), "default").await;
    assert_eq!(
        b.status
            .clone()
            .unwrap()
            .address
            .address
            .unwrap()
            .url
            .as_deref(),
        Some("http://broker-ingress.knative-eventing.svc.cluster.local/ns/default")
    );
    assert_eq!(
        state(&b, "IngressReady"),
        (ConditionStatus::False, Some("EndpointsUnavailable".into()))
    );
    assert_eq!(state(&b, "Ready").0, ConditionStatus::False);
}

#[tokio::test]
async fn a_brokers_dead_letter_sink_resolves_through_the_addressable_duck_type() {
    let api = RecordingApi::new();
    api.seed(&ksvc("dls", Some("http://dls.ns.svc.cluster.local")));
    api.seed(&broker(json!({"delivery": {"deadLetterSink": {"ref": {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dls"}}}})));
    let reconciler = BrokerReconciler::new(BrokerIngress::Url("http://ingress".into()));
    let (b, _) = reconcile::<Broker, _>(&api, reconciler, "default").await;
    assert_eq!(
        b.status.unwrap().delivery.dead_letter_sink_uri.as_deref(),
        Some("http://dls.ns.svc.cluster.local")
    );
}

#[tokio::test]
async fn a_missing_dead_letter_sink_fails_the_broker_and_is_retried() {
    let api = RecordingApi::new();
    api.seed(&broker(json!({"delivery": {"deadLetterSink": {"ref": {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "nope"}}}})));
    let reconciler = BrokerReconciler::new(BrokerIngress::Url("http://ingress".into()));
    let (b, ok) = reconcile::<Broker, _>(&api, reconciler, "default").await;
    assert!(!ok, "a transient error, retried with backoff");
    assert_eq!(
        state(&b, "DeadLetterSinkResolved"),
        (ConditionStatus::False, Some("NotFound".into()))
    );
    assert!(api.events().iter().any(|e| e.type_ == "Warning"));
}

#[tokio::test]
async fn a_trigger_resolves_its_subscriber_through_the_addressable_duck_type() {
    let api = RecordingApi::new();
    api.seed(&ready_broker(None));
    api.seed(&ksvc("display", Some("http://display.ns.example.com")));
    api.seed(&trigger(
        json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "display"}}),
        json!({}),
    ));
    let (t, ok) = reconcile::<Trigger, _>(&api, TriggerReconciler::new(), "t").await;
    assert!(ok);
    assert_eq!(
        t.status.clone().unwrap().subscriber_uri.as_deref(),
        Some("http://display.ns.example.com")
    );
    assert_eq!(state(&t, "Ready").0, ConditionStatus::True);
}

#[tokio::test]
async fn a_kubernetes_service_subscriber_with_a_relative_uri_resolves_to_its_cluster_local_url() {
    let api = RecordingApi::new();
    api.seed(&ready_broker(None));
    api.seed(&trigger(
        json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": "events"}, "uri": "/extra/path"}),
        json!({}),
    ));
    let (t, _) = reconcile::<Trigger, _>(&api, TriggerReconciler::new(), "t").await;
    assert_eq!(
        t.status.unwrap().subscriber_uri.as_deref(),
        Some("http://events.ns.svc.cluster.local/extra/path")
    );
}

#[tokio::test]
async fn a_trigger_without_its_broker_says_the_broker_does_not_exist() {
    let api = RecordingApi::new();
    api.seed(&trigger(json!({"uri": "http://example.com"}), json!({})));
    let (t, _) = reconcile::<Trigger, _>(&api, TriggerReconciler::new(), "t").await;
    assert_eq!(
        state(&t, "BrokerReady"),
        (ConditionStatus::False, Some("BrokerDoesNotExist".into()))
    );
    assert_eq!(state(&t, "Ready").0, ConditionStatus::False);
}

#[tokio::test]
async fn a_subscriber_without_an_address_is_not_addressable() {
    let api = RecordingApi::new();
    api.seed(&ready_broker(None));
    api.seed(&ksvc("display", None));
    api.seed(&trigger(
        json!({"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "display"}}),
        json!({}),
    ));
    let (t, ok) = reconcile::<Trigger, _>(&api, TriggerReconciler::new(), "t").await;
    assert!(!ok);
    let c = condition(&t, "SubscriberResolved");
    assert_eq!(
        (c.status, c.reason.as_deref()),
        (ConditionStatus::False, Some("NotAddressable"))
    );
    assert_eq!(
        c.message.as_deref(),
        Some("Unable to get the Subscriber's URI: address not set for Service ns/display")
    );
    assert_eq!(t.status.unwrap().subscriber_uri, None);
}

#[tokio::test]
async fn a_trigger_without_a_dead_letter_sink_uses_its_brokers() {
    let api = RecordingApi::new();
    api.seed(&ready_broker(Some(
        "http://broker-dls.ns.svc.cluster.local",
    )));
    api.seed(&trigger(json!({"uri": "http://example.com"}), json!({})));
    let (t, _) = reconcile::<Trigger, _>(&api, TriggerReconciler::new(), "t").await;
    assert_eq!(
        t.status.unwrap().delivery.dead_letter_sink_uri.as_deref(),
        Some("http://broker-dls.ns.svc.cluster.local")
    );
}

#[tokio::test]
async fn a_trigger_waits_for_the_object_of_its_dependency_annotation() {
    let api = RecordingApi::new();
    api.seed(&ready_broker(None));
    let mut t = trigger(json!({"uri": "http://example.com"}), json!({}));
    t.metadata.annotations = Some(
        [(
            "knative.dev/dependency".to_owned(),
            r#"{"kind": "Service", "name": "source", "apiVersion": "serving.knative.dev/v1"}"#
                .to_owned(),
        )]
        .into(),
    );
    api.seed(&t);
    let (t, _) = reconcile::<Trigger, _>(&api, TriggerReconciler::new(), "t").await;
    assert_eq!(
        state(&t, "DependencyReady"),
        (
            ConditionStatus::False,
            Some("DependencyDoesNotExist".into())
        )
    );
}
