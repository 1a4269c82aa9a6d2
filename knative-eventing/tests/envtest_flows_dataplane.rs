//! Sequence and Parallel end to end: the reconcilers run against a real kube-apiserver (see
//! `scripts/envtest.sh`) and wire InMemoryChannels and Subscriptions; the in-memory channel
//! dispatcher on loopback learns the channels' subscribers from the API server; small HTTP
//! services on loopback transform (steps) or pass on (filters) the events; the reply sink sees
//! what came out of the flow.

use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, AttributesWriter, Event, EventBuilder, EventBuilderV10};
use knative_core::apis::{ConditionStatus, KnativeObject, KnativeStatus};
use knative_core::reconciler::{Compact, Driver, DriverOptions, Reconciler};
use knative_core::testing::envtest::{TestNamespace, client, install_crds};
use knative_eventing::apis::{InMemoryChannel, Parallel, Sequence, Subscription};
use knative_eventing::channel::imc_dispatcher::ImcDispatcher;
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::delivery::{DeliveryPolicy, Dispatcher, Outcome};
use knative_eventing::reconciler::channel::{ChannelDispatcher, InMemoryChannelReconciler};
use knative_eventing::reconciler::flows::{ParallelReconciler, SequenceReconciler};
use knative_eventing::reconciler::owns;
use knative_eventing::reconciler::subscription::SubscriptionReconciler;
use kube::api::{Api, PostParams};
use kube::runtime::Controller;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        install_crds(
            &client,
            "knative-eventing-envtest",
            &knative_eventing::crds(),
        )
        .await;
    })
    .await;
    client
}

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

/// The control plane and data plane of flows in `namespace`: the flow reconcilers, the
/// InMemoryChannel and Subscription reconcilers, and the channel dispatcher on loopback.
struct Platform {
    dispatcher: ImcDispatcher,
    tasks: Vec<JoinHandle<()>>,
}

impl Platform {
    async fn start(client: &Client, namespace: &str) -> Self {
        let dispatcher = ImcDispatcher::new(1_000);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let some = Some(namespace.to_owned());
        let tasks = vec![
            tokio::spawn({
                let dispatcher = dispatcher.clone();
                async move {
                    let _ = dispatcher.serve(listener, std::future::pending()).await;
                }
            }),
            tokio::spawn({
                let (dispatcher, client, some) = (dispatcher.clone(), client.clone(), some.clone());
                async move { dispatcher.watch(client, some).await }
            }),
            start::<Sequence, _>(client, namespace, SequenceReconciler, {
                let subs = owns::<Sequence, Subscription>(client.clone(), some.clone());
                let imcs = owns::<Sequence, InMemoryChannel>(client.clone(), some.clone());
                move |c| imcs(subs(c))
            }),
            start::<Parallel, _>(client, namespace, ParallelReconciler, {
                let subs = owns::<Parallel, Subscription>(client.clone(), some.clone());
                let imcs = owns::<Parallel, InMemoryChannel>(client.clone(), some.clone());
                move |c| imcs(subs(c))
            }),
            start::<InMemoryChannel, _>(
                client,
                namespace,
                InMemoryChannelReconciler::new(ChannelDispatcher::Url(base)),
                |c| c,
            ),
            start::<Subscription, _>(client, namespace, SubscriptionReconciler, |c| c),
        ];
        Platform { dispatcher, tasks }
    }

    /// Waits until the dispatcher serves each of `channels` with its number of subscribers.
    async fn wait_for_subscribers(&self, namespace: &str, channels: &[(&str, usize)]) {
        for _ in 0..400 {
            let wired = channels.iter().all(|(name, count)| {
                self.dispatcher
                    .channel(namespace, name)
                    .is_some_and(|c| c.subscriptions().len() == *count)
            });
            if wired {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the dispatcher never served {channels:?}");
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

async fn ready<K>(client: &Client, namespace: &str, name: &str) -> K
where
    K: KnativeObject + Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    for _ in 0..400 {
        if let Ok(obj) = api.get(name).await
            && obj
                .status()
                .and_then(|s| s.duck().get_condition("Ready"))
                .is_some_and(|c| c.status == ConditionStatus::True)
        {
            return obj;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} {name} never became Ready", K::kind(&()));
}

/// The JSON data of `event`, however the codec carried it.
fn data(event: &Event) -> Value {
    match event.data() {
        Some(cloudevents::Data::Json(json)) => json.clone(),
        Some(cloudevents::Data::Binary(bytes)) => serde_json::from_slice(bytes).unwrap(),
        Some(cloudevents::Data::String(text)) => serde_json::from_str(text).unwrap(),
        None => Value::Null,
    }
}

/// A step: replies with the event, `step` appended to its data's `trail` and its type set to
/// `type`.
async fn step(step: &'static str, ty: &'static str) -> Recorder {
    Recorder::start(Behaviour {
        reply: Some(Arc::new(move |event: &Event| {
            let mut reply = event.clone();
            let mut body = data(event);
            body["trail"].as_array_mut()?.push(step.into());
            reply.set_data("application/json", body);
            reply.set_type(ty);
            Some(reply)
        })),
        ..Behaviour::default()
    })
    .await
    .unwrap()
}

/// A filter: replies with the event unchanged when its type is `ty`, else with nothing.
async fn filter(ty: &'static str) -> Recorder {
    Recorder::start(Behaviour {
        reply: Some(Arc::new(move |event: &Event| {
            (event.ty() == ty).then(|| event.clone())
        })),
        ..Behaviour::default()
    })
    .await
    .unwrap()
}

fn order(id: &str, ty: &str) -> Event {
    EventBuilderV10::new()
        .id(id)
        .source("/shop")
        .ty(ty)
        .data("application/json", json!({"trail": ["start"]}))
        .build()
        .unwrap()
}

/// Sends `event` to the flow's address, which must accept it.
async fn send(address: &str, event: &Event) {
    let outcome = Dispatcher::new()
        .deliver(event, &address.parse().unwrap(), &DeliveryPolicy::default())
        .await;
    assert!(
        matches!(outcome, Outcome::Delivered { .. }),
        "the flow did not accept the event: {outcome:?}"
    );
}

fn uri(recorder: &Recorder) -> Value {
    json!({"uri": recorder.uri.to_string()})
}

#[tokio::test]
async fn a_sequence_of_two_steps_delivers_the_event_transformed_by_both_to_its_reply() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-seq-data").await;
    let n = ns.name.clone();
    let platform = Platform::start(&client, &n).await;
    let (first, second) = (
        step("first", "order.enriched").await,
        step("second", "order.priced").await,
    );
    let reply = Recorder::start(Behaviour::default()).await.unwrap();
    let sequence: Sequence = serde_json::from_value(json!({
        "apiVersion": "flows.knative.dev/v1", "kind": "Sequence",
        "metadata": {"name": "pipeline", "namespace": n},
        "spec": {"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"},
                 "steps": [uri(&first), uri(&second)],
                 "reply": uri(&reply)}
    }))
    .unwrap();
    Api::<Sequence>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &sequence)
        .await
        .unwrap();
    let sequence: Sequence = ready(&client, &n, "pipeline").await;
    platform
        .wait_for_subscribers(
            &n,
            &[("pipeline-kn-sequence-0", 1), ("pipeline-kn-sequence-1", 1)],
        )
        .await;
    let address = sequence
        .status
        .unwrap()
        .address
        .address
        .unwrap()
        .url
        .unwrap();

    send(&address, &order("o-1", "order.placed")).await;

    assert_eq!(reply.wait_for(1, Duration::from_secs(10)).await, 1);
    let out = &reply.events().await[0];
    assert_eq!(data(out)["trail"], json!(["start", "first", "second"]));
    assert_eq!(out.ty(), "order.priced");
    assert_eq!(out.id(), "o-1");
    assert_eq!(
        (first.events().await.len(), second.events().await.len()),
        (1, 1),
        "each step saw the event once"
    );
    drop(platform);
    ns.delete().await;
}

#[tokio::test]
async fn a_parallel_sends_each_event_only_down_the_branches_whose_filter_passes_it() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-par-data").await;
    let n = ns.name.clone();
    let platform = Platform::start(&client, &n).await;
    let (created, cancelled) = (
        filter("order.created").await,
        filter("order.cancelled").await,
    );
    let (confirm, refund) = (
        step("confirm", "order.confirmed").await,
        step("refund", "order.refunded").await,
    );
    let reply = Recorder::start(Behaviour::default()).await.unwrap();
    let parallel: Parallel = serde_json::from_value(json!({
        "apiVersion": "flows.knative.dev/v1", "kind": "Parallel",
        "metadata": {"name": "orders", "namespace": n},
        "spec": {"channelTemplate": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"},
                 "branches": [{"filter": uri(&created), "subscriber": uri(&confirm)},
                              {"filter": uri(&cancelled), "subscriber": uri(&refund)}],
                 "reply": uri(&reply)}
    }))
    .unwrap();
    Api::<Parallel>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &parallel)
        .await
        .unwrap();
    let parallel: Parallel = ready(&client, &n, "orders").await;
    platform
        .wait_for_subscribers(
            &n,
            &[
                ("orders-kn-parallel", 2),
                ("orders-kn-parallel-0", 1),
                ("orders-kn-parallel-1", 1),
            ],
        )
        .await;
    let address = parallel
        .status
        .unwrap()
        .address
        .address
        .unwrap()
        .url
        .unwrap();

    send(&address, &order("o-1", "order.created")).await;
    send(&address, &order("o-2", "order.cancelled")).await;

    assert_eq!(reply.wait_for(2, Duration::from_secs(10)).await, 2);
    // Nothing else is on its way: both filters have answered both events.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut out: Vec<(String, String, Value)> = reply
        .events()
        .await
        .iter()
        .map(|e| {
            (
                e.id().to_owned(),
                e.ty().to_owned(),
                data(e)["trail"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        out,
        [
            (
                "o-1".into(),
                "order.confirmed".into(),
                json!(["start", "confirm"])
            ),
            (
                "o-2".into(),
                "order.refunded".into(),
                json!(["start", "refund"])
            ),
        ]
    );
    assert_eq!(
        (created.events().await.len(), cancelled.events().await.len()),
        (2, 2),
        "every filter sees every event"
    );
    drop(platform);
    ns.delete().await;
}
