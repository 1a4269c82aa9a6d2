//! Table tests of the Channel, InMemoryChannel, Subscription, Sequence and Parallel
//! reconcilers on the recording API double.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use knative_core::apis::{ConditionStatus, KnativeObject, KnativeStatus};
use knative_core::reconciler::{Driver, Reconciler};
use knative_core::testing::RecordingApi;
use knative_eventing::apis::{Channel, InMemoryChannel, Parallel, Sequence, Subscription};
use knative_eventing::reconciler::channel::{
    ChannelDispatcher, ChannelReconciler, InMemoryChannelReconciler,
};
use knative_eventing::reconciler::flows::{ParallelReconciler, SequenceReconciler};
use knative_eventing::reconciler::subscription::SubscriptionReconciler;
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

fn imc_reconciler() -> InMemoryChannelReconciler {
    InMemoryChannelReconciler::new(ChannelDispatcher::default())
}

fn channel() -> Channel {
    object(
        "messaging.knative.dev/v1",
        "Channel",
        "my-channel",
        json!({"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}}),
    )
}

#[tokio::test]
async fn a_channel_creates_its_backing_in_memory_channel() {
    let api = RecordingApi::new();
    api.seed(&channel());
    let ch: Channel = reconcile(&api, ChannelReconciler, "my-channel").await;
    let imc = api
        .get::<InMemoryChannel>(NS, "my-channel")
        .expect("backing channel");
    let owner = &imc.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Channel", "uid-my-channel")
    );
    let status = ch.status.clone().unwrap();
    assert_eq!(status.channel.unwrap().kind, "InMemoryChannel");
    assert_eq!(
        state(&ch, "BackingChannelReady"),
        (
            ConditionStatus::Unknown,
            Some("BackingChannelNotConfigured".into())
        )
    );
}

#[tokio::test]
async fn a_channel_takes_the_address_and_readiness_of_its_backing_channel() {
    let api = RecordingApi::new();
    api.seed(&channel());
    let _: Channel = reconcile(&api, ChannelReconciler, "my-channel").await;
    let _: InMemoryChannel = reconcile(&api, imc_reconciler(), "my-channel").await;
    let ch: Channel = reconcile(&api, ChannelReconciler, "my-channel").await;
    let url = ch
        .status
        .clone()
        .unwrap()
        .channelable
        .address
        .address
        .unwrap()
        .url;
    assert_eq!(
        url.as_deref(),
        Some("http://my-channel-kn-channel.ns.svc.cluster.local")
    );
    assert_eq!(state(&ch, "Ready").0, ConditionStatus::True);
}

#[tokio::test]
async fn an_in_memory_channel_is_addressed_through_an_external_name_service() {
    let api = RecordingApi::new();
    api.seed(&object::<InMemoryChannel>(
        "messaging.knative.dev/v1",
        "InMemoryChannel",
        "imc",
        json!({}),
    ));
    let imc: InMemoryChannel = reconcile(&api, imc_reconciler(), "imc").await;
    let service = api.get::<Service>(NS, "imc-kn-channel").expect("service");
    let spec = service.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
    assert_eq!(
        spec.external_name.as_deref(),
        Some("imc-dispatcher.knative-eventing.svc.cluster.local")
    );
    assert_eq!(state(&imc, "Ready").0, ConditionStatus::True);
}

fn subscription() -> Subscription {
    object(
        "messaging.knative.dev/v1",
        "Subscription",
        "sub",
        json!({
            "channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "Channel", "name": "my-channel"},
            "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "subscriber"}},
            "reply": {"uri": "http://reply.example.com"},
            "delivery": {"retry": 3, "deadLetterSink": {"uri": "http://dls.example.com"}},
        }),
    )
}

/// A Channel with its backing InMemoryChannel reconciled.
async fn wired_channel(api: &RecordingApi) {
    api.seed(&channel());
    let _: Channel = reconcile(api, ChannelReconciler, "my-channel").await;
    let _: InMemoryChannel = reconcile(api, imc_reconciler(), "my-channel").await;
    let _: Channel = reconcile(api, ChannelReconciler, "my-channel").await;
}

#[tokio::test]
async fn a_subscription_adds_its_resolved_subscriber_to_the_backing_channel() {
    let api = RecordingApi::new();
    wired_channel(&api).await;
    api.seed(&subscription());
    let sub: Subscription = reconcile(&api, SubscriptionReconciler, "sub").await;
    let imc = api.get::<InMemoryChannel>(NS, "my-channel").unwrap();
    let entry = &imc.spec.channelable.subscribers[0];
    assert_eq!(entry.uid.as_deref(), Some("uid-sub"));
    assert_eq!(
        entry.subscriber_uri.as_deref(),
        Some("http://subscriber.ns.svc.cluster.local")
    );
    assert_eq!(entry.reply_uri.as_deref(), Some("http://reply.example.com"));
    let delivery = entry.delivery.clone().unwrap();
    assert_eq!(delivery.retry, Some(3));
    assert_eq!(
        delivery.dead_letter_sink.unwrap().uri.as_deref(),
        Some("http://dls.example.com")
    );
    assert_eq!(state(&sub, "AddedToChannel").0, ConditionStatus::True);
    assert_eq!(state(&sub, "ChannelReady").0, ConditionStatus::Unknown);
}

#[tokio::test]
async fn a_subscription_is_ready_once_the_channel_marks_its_subscriber_ready() {
    let api = RecordingApi::new();
    wired_channel(&api).await;
    api.seed(&subscription());
    let _: Subscription = reconcile(&api, SubscriptionReconciler, "sub").await;
    let _: InMemoryChannel = reconcile(&api, imc_reconciler(), "my-channel").await;
    let sub: Subscription = reconcile(&api, SubscriptionReconciler, "sub").await;
    assert_eq!(state(&sub, "Ready").0, ConditionStatus::True);
    let physical = sub.status.unwrap().physical_subscription;
    assert_eq!(
        physical.subscriber_uri.as_deref(),
        Some("http://subscriber.ns.svc.cluster.local")
    );
}

#[tokio::test]
async fn a_subscription_to_a_missing_channel_does_not_resolve() {
    let api = RecordingApi::new();
    api.seed(&subscription());
    let sub: Subscription = reconcile(&api, SubscriptionReconciler, "sub").await;
    assert_eq!(
        state(&sub, "ReferencesResolved"),
        (ConditionStatus::False, Some("ChannelNotFound".into()))
    );
}

#[tokio::test]
async fn deleting_a_subscription_takes_it_out_of_the_channel() {
    let api = RecordingApi::new();
    wired_channel(&api).await;
    api.seed(&subscription());
    let _: Subscription = reconcile(&api, SubscriptionReconciler, "sub").await;
    let subs: kube::Api<Subscription> = kube::Api::namespaced(api.client(), NS);
    subs.delete("sub", &Default::default()).await.unwrap();
    let driver = Driver::new(api.client(), SubscriptionReconciler);
    let deleting = api
        .get::<Subscription>(NS, "sub")
        .expect("held by the finalizer");
    driver.reconcile(Arc::new(deleting)).await.unwrap();
    let imc = api.get::<InMemoryChannel>(NS, "my-channel").unwrap();
    assert!(imc.spec.channelable.subscribers.is_empty());
    assert!(api.get::<Subscription>(NS, "sub").is_none());
}

fn svc(name: &str) -> Value {
    json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": name}})
}

#[tokio::test]
async fn a_sequence_chains_its_steps_through_channels_and_subscriptions() {
    let api = RecordingApi::new();
    api.seed(&object::<Sequence>(
        "flows.knative.dev/v1",
        "Sequence",
        "seq",
        json!({"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"},
               "steps": [svc("first"), svc("second"), svc("third")], "reply": svc("display")}),
    ));
    let seq: Sequence = reconcile(&api, SequenceReconciler, "seq").await;
    for i in 0..3 {
        assert!(
            api.get::<InMemoryChannel>(NS, &format!("seq-kn-sequence-{i}"))
                .is_some(),
            "channel {i}"
        );
    }
    let wiring: Vec<(String, String, String)> = (0..3)
        .map(|i| {
            let sub = api
                .get::<Subscription>(NS, &format!("seq-kn-sequence-{i}"))
                .unwrap();
            let subscriber = sub.spec.subscriber.unwrap().ref_.unwrap().name;
            let reply = sub.spec.reply.unwrap().ref_.unwrap();
            (
                sub.spec.channel.name,
                subscriber,
                format!("{}/{}", reply.kind, reply.name),
            )
        })
        .collect();
    assert_eq!(
        wiring,
        [
            (
                "seq-kn-sequence-0".into(),
                "first".into(),
                "InMemoryChannel/seq-kn-sequence-1".into()
            ),
            (
                "seq-kn-sequence-1".into(),
                "second".into(),
                "InMemoryChannel/seq-kn-sequence-2".into()
            ),
            (
                "seq-kn-sequence-2".into(),
                "third".into(),
                "Service/display".into()
            ),
        ]
    );
    let status = seq.status.clone().unwrap();
    assert_eq!(status.channel_statuses.len(), 3);
    assert_eq!(status.subscription_statuses.len(), 3);
    assert_eq!(state(&seq, "ChannelsReady").0, ConditionStatus::Unknown);
}

#[tokio::test]
async fn a_sequence_is_addressed_by_its_first_channel_and_ready_with_its_children() {
    let api = RecordingApi::new();
    api.seed(&object::<Sequence>(
        "flows.knative.dev/v1",
        "Sequence",
        "seq",
        json!({"steps": [svc("first"), svc("second")]}),
    ));
    let _: Sequence = reconcile(&api, SequenceReconciler, "seq").await;
    for i in 0..2 {
        let _: InMemoryChannel =
            reconcile(&api, imc_reconciler(), &format!("seq-kn-sequence-{i}")).await;
    }
    for i in 0..2 {
        let name = format!("seq-kn-sequence-{i}");
        let _: Subscription = reconcile(&api, SubscriptionReconciler, &name).await;
        let _: InMemoryChannel = reconcile(&api, imc_reconciler(), &name).await;
        let _: Subscription = reconcile(&api, SubscriptionReconciler, &name).await;
    }
    let seq: Sequence = reconcile(&api, SequenceReconciler, "seq").await;
    assert_eq!(
        seq.status
            .clone()
            .unwrap()
            .address
            .address
            .unwrap()
            .url
            .as_deref(),
        Some("http://seq-kn-sequence-0-kn-channel.ns.svc.cluster.local")
    );
    assert_eq!(state(&seq, "Ready").0, ConditionStatus::True);
}

#[tokio::test]
async fn a_parallel_fans_out_through_filter_and_subscriber_subscriptions() {
    let api = RecordingApi::new();
    api.seed(&object::<Parallel>(
        "flows.knative.dev/v1",
        "Parallel",
        "par",
        json!({"branches": [
                  {"filter": svc("even-filter"), "subscriber": svc("even-transformer")},
                  {"filter": svc("odd-filter"), "subscriber": svc("odd-transformer"), "reply": svc("odd-reply")}],
               "reply": svc("display")}),
    ));
    let par: Parallel = reconcile(&api, ParallelReconciler, "par").await;
    for name in ["par-kn-parallel", "par-kn-parallel-0", "par-kn-parallel-1"] {
        assert!(api.get::<InMemoryChannel>(NS, name).is_some(), "{name}");
    }
    let describe = |name: &str| {
        let sub = api.get::<Subscription>(NS, name).unwrap();
        let target =
            |d: Option<knative_core::apis::Destination>| d.and_then(|d| d.ref_).map(|r| r.name);
        (
            sub.spec.channel.name,
            target(sub.spec.subscriber),
            target(sub.spec.reply),
        )
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        describe("par-kn-parallel-filter-0"),
        (
            "par-kn-parallel".into(),
            some("even-filter"),
            some("par-kn-parallel-0")
        )
    );
    assert_eq!(
        describe("par-kn-parallel-0"),
        (
            "par-kn-parallel-0".into(),
            some("even-transformer"),
            some("display")
        )
    );
    assert_eq!(
        describe("par-kn-parallel-1"),
        (
            "par-kn-parallel-1".into(),
            some("odd-transformer"),
            some("odd-reply")
        )
    );
    assert_eq!(par.status.unwrap().branch_statuses.len(), 2);
}

#[tokio::test]
async fn removing_a_step_deletes_its_channel_and_subscription() {
    let api = RecordingApi::new();
    api.seed(&object::<Sequence>(
        "flows.knative.dev/v1",
        "Sequence",
        "seq",
        json!({"steps": [svc("first"), svc("second")]}),
    ));
    let _: Sequence = reconcile(&api, SequenceReconciler, "seq").await;
    let mut seq = api.get::<Sequence>(NS, "seq").unwrap();
    seq.spec.steps.truncate(1);
    api.seed(&seq);
    let _: Sequence = reconcile(&api, SequenceReconciler, "seq").await;
    assert!(
        api.get::<InMemoryChannel>(NS, "seq-kn-sequence-1")
            .is_none()
    );
    assert!(api.get::<Subscription>(NS, "seq-kn-sequence-1").is_none());
    assert!(api.get::<Subscription>(NS, "seq-kn-sequence-0").is_some());
    let last = api.get::<Subscription>(NS, "seq-kn-sequence-0").unwrap();
    assert_eq!(
        last.spec.reply, None,
        "the last step now replies to the Sequence's reply"
    );
}
