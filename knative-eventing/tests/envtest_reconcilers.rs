//! The Eventing reconcilers against a real kube-apiserver (see `scripts/envtest.sh`), each
//! run by knative-core's driver and watching one test namespace: a Broker and its Trigger
//! become Ready with their URLs, a Sequence is wired from InMemoryChannels and Subscriptions
//! and becomes Ready at its first channel's address, a SinkBinding injects `K_SINK` into a real
//! Deployment (and takes it out when deleted), and a ContainerSource's adapter Deployment gets
//! `K_SINK` and its source reports it unavailable (there is no kubelet: no pod ever runs).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::apis::{ConditionStatus, KnativeObject, KnativeStatus};
use knative_core::reconciler::{Compact, Driver, DriverOptions, Reconciler};
use knative_core::testing::envtest::{TestNamespace, client};
use knative_eventing::apis::{
    Broker, ContainerSource, InMemoryChannel, Sequence, SinkBinding, Subscription, Trigger,
};
use knative_eventing::reconciler::broker::{BrokerIngress, BrokerReconciler};
use knative_eventing::reconciler::channel::{ChannelDispatcher, InMemoryChannelReconciler};
use knative_eventing::reconciler::flows::SequenceReconciler;
use knative_eventing::reconciler::owns;
use knative_eventing::reconciler::sources::{ContainerSourceReconciler, SinkBindingReconciler};
use knative_eventing::reconciler::subscription::SubscriptionReconciler;
use knative_eventing::reconciler::trigger::TriggerReconciler;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-eventing-envtest").force();
        for crd in knative_eventing::crds() {
            api.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install {}: {e}", crd.name_any()));
        }
        for crd in knative_eventing::crds() {
            let name = crd.name_any();
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
                .unwrap();
        }
    })
    .await;
    client
}

/// Runs `reconciler` for kind `K` in `namespace`, with `watches`.
fn start<K, R>(
    client: &Client,
    namespace: &str,
    reconciler: R,
    watches: impl Fn(Controller<Compact<K>>) -> Controller<Compact<K>> + Send + Sync + 'static,
) -> JoinHandle<()>
where
    K: KnativeObject + Resource<DynamicType = ()>,
    R: Reconciler<K>,
{
    let driver = Driver::with_options(
        client.clone(),
        reconciler,
        DriverOptions {
            namespace: Some(namespace.to_owned()),
            ..DriverOptions::for_kind::<K>()
        },
    );
    tokio::spawn(async move {
        let _ = driver.run_with(watches).await;
    })
}

async fn create<K>(client: &Client, namespace: &str, value: Value) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create: {e}"))
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn ready<K>(client: &Client, namespace: &str, name: &str) -> K
where
    K: KnativeObject + Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    eventually(&format!("{} {name} Ready", K::kind(&())), async || {
        let obj = api.get(name).await.ok()?;
        let ready = obj.status()?.duck().get_condition("Ready")?.status;
        (ready == ConditionStatus::True).then_some(obj)
    })
    .await
}

fn no_watches<K: KnativeObject>(c: Controller<Compact<K>>) -> Controller<Compact<K>> {
    c
}

#[tokio::test]
async fn a_broker_and_its_trigger_become_ready_with_their_urls() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-broker").await;
    let n = ns.name.clone();
    let handles = [
        start::<Broker, _>(
            &client,
            &n,
            BrokerReconciler::new(BrokerIngress::Url("http://127.0.0.1:8080".into())),
            no_watches,
        ),
        start::<Trigger, _>(
            &client,
            &n,
            TriggerReconciler::new(),
            TriggerReconciler::watches(client.clone(), Some(n.clone())),
        ),
    ];
    // The Trigger first: it waits for its Broker, which the Broker watch delivers.
    let _: Trigger = create(
        &client,
        &n,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "display", "namespace": n},
               "spec": {"broker": "default", "filter": {"attributes": {"type": "dev.knative.foo.bar"}},
                        "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}}}}),
    )
    .await;
    let _: Broker = create(
        &client,
        &n,
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
               "metadata": {"name": "default", "namespace": n,
                            "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}},
               "spec": {}}),
    )
    .await;
    let broker: Broker = ready(&client, &n, "default").await;
    assert_eq!(
        broker.status.unwrap().address.address.unwrap().url,
        Some(format!("http://127.0.0.1:8080/{n}/default"))
    );
    let trigger: Trigger = ready(&client, &n, "display").await;
    assert_eq!(
        trigger.status.unwrap().subscriber_uri,
        Some(format!("http://event-display.{n}.svc.cluster.local"))
    );
    handles.iter().for_each(JoinHandle::abort);
    ns.delete().await;
}

#[tokio::test]
async fn a_sequence_is_wired_from_channels_and_subscriptions_and_becomes_ready() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-sequence").await;
    let n = ns.name.clone();
    let some = Some(n.clone());
    let handles = [
        start::<Sequence, _>(&client, &n, SequenceReconciler, {
            let (subs, imcs) = (
                owns::<Sequence, Subscription>(client.clone(), some.clone()),
                owns::<Sequence, InMemoryChannel>(client.clone(), some.clone()),
            );
            move |c| imcs(subs(c))
        }),
        start::<InMemoryChannel, _>(
            &client,
            &n,
            InMemoryChannelReconciler::new(ChannelDispatcher::default()),
            no_watches,
        ),
        start::<Subscription, _>(&client, &n, SubscriptionReconciler, no_watches),
    ];
    let step = |name: &str| json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": name}});
    let _: Sequence = create(
        &client,
        &n,
        json!({"apiVersion": "flows.knative.dev/v1", "kind": "Sequence",
               "metadata": {"name": "sequence", "namespace": n},
               "spec": {"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"},
                        "steps": [step("first"), step("second"), step("third")],
                        "reply": step("event-display")}}),
    )
    .await;
    let sequence: Sequence = ready(&client, &n, "sequence").await;
    assert_eq!(
        sequence.status.unwrap().address.address.unwrap().url,
        Some(format!(
            "http://sequence-kn-sequence-0-kn-channel.{n}.svc.cluster.local"
        ))
    );
    let last: Subscription = ready(&client, &n, "sequence-kn-sequence-2").await;
    let physical = last.status.unwrap().physical_subscription;
    assert_eq!(
        (physical.subscriber_uri, physical.reply_uri),
        (
            Some(format!("http://third.{n}.svc.cluster.local")),
            Some(format!("http://event-display.{n}.svc.cluster.local"))
        )
    );
    let imc = Api::<InMemoryChannel>::namespaced(client.clone(), &n)
        .get("sequence-kn-sequence-1")
        .await
        .unwrap();
    let entry = &imc.spec.channelable.subscribers[0];
    assert_eq!(
        entry.reply_uri,
        Some(format!(
            "http://sequence-kn-sequence-2-kn-channel.{n}.svc.cluster.local"
        )),
        "step 1 replies into the channel of step 2"
    );
    handles.iter().for_each(JoinHandle::abort);
    ns.delete().await;
}

fn subject(n: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "heartbeat", "namespace": n},
           "spec": {"selector": {"matchLabels": {"app": "heartbeat"}},
                    "template": {"metadata": {"labels": {"app": "heartbeat"}},
                                 "spec": {"containers": [{"name": "main", "image": "heartbeats"}]}}}})
}

fn env_names(deployment: &Deployment) -> Vec<(String, String)> {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_sink_binding_injects_k_sink_into_a_deployment_and_takes_it_out_when_deleted() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-binding").await;
    let n = ns.name.clone();
    let handle = start::<SinkBinding, _>(&client, &n, SinkBindingReconciler, no_watches);
    let _: Deployment = create(&client, &n, subject(&n)).await;
    let _: SinkBinding = create(
        &client,
        &n,
        json!({"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
               "metadata": {"name": "bind-heartbeat", "namespace": n},
               "spec": {"subject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "heartbeat"},
                        "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}},
                        "ceOverrides": {"extensions": {"extra": "x"}}}}),
    )
    .await;
    let _: SinkBinding = ready(&client, &n, "bind-heartbeat").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &n);
    let env = env_names(&deployments.get("heartbeat").await.unwrap());
    assert!(env.contains(&(
        "K_SINK".to_owned(),
        format!("http://event-display.{n}.svc.cluster.local")
    )));
    assert!(env.contains(&(
        "K_CE_OVERRIDES".to_owned(),
        r#"{"extensions":{"extra":"x"}}"#.to_owned()
    )));

    Api::<SinkBinding>::namespaced(client.clone(), &n)
        .delete("bind-heartbeat", &DeleteParams::default())
        .await
        .unwrap();
    eventually("K_SINK removed", async || {
        let env = env_names(&deployments.get("heartbeat").await.ok()?);
        (!env
            .iter()
            .any(|(name, _)| name == "K_SINK" || name == "K_CE_OVERRIDES"))
        .then_some(())
    })
    .await;
    handle.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_container_source_reports_its_adapter_unavailable_while_no_pod_runs() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-container").await;
    let n = ns.name.clone();
    let handle = start::<ContainerSource, _>(
        &client,
        &n,
        ContainerSourceReconciler,
        owns::<ContainerSource, Deployment>(client.clone(), Some(n.clone())),
    );
    let manifest: Value = serde_yaml::from_str(include_str!(
        "../../examples/manifests/eventing/container-source.yaml"
    ))
    .unwrap();
    let mut manifest = manifest;
    // The documented sink is a Knative Service; here a Kubernetes Service stands in for it.
    manifest["spec"]["sink"] =
        json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}});
    let _: ContainerSource = create(&client, &n, manifest).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &n);
    let adapter = eventually("the adapter Deployment", async || {
        deployments.get("test-heartbeats-deployment").await.ok()
    })
    .await;
    assert!(env_names(&adapter).contains(&(
        "K_SINK".to_owned(),
        format!("http://event-display.{n}.svc.cluster.local")
    )));
    // kube-controller-manager runs the Deployment controller but there is no kubelet: the
    // adapter's pod never runs, and the source reports what the controller says.
    let source = eventually("Deployed from the Deployment controller", async || {
        let source = Api::<ContainerSource>::namespaced(client.clone(), &n)
            .get("test-heartbeats")
            .await
            .ok()?;
        let deployed = source
            .status
            .as_ref()?
            .status
            .get_condition("Deployed")?
            .clone();
        (deployed.status == ConditionStatus::False).then_some(source)
    })
    .await;
    let status = source.status.unwrap();
    assert_eq!(
        status.sink_uri,
        Some(format!("http://event-display.{n}.svc.cluster.local"))
    );
    let deployed = status.status.get_condition("Deployed").unwrap();
    assert_eq!(deployed.reason.as_deref(), Some("DeploymentUnavailable"));
    assert_eq!(
        status.status.get_condition("Ready").unwrap().status,
        ConditionStatus::False
    );
    handle.abort();
    ns.delete().await;
}
