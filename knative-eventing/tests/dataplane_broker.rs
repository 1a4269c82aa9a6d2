//! The Broker data plane over real HTTP on loopback: ingress → filter → subscribers, retries,
//! dead letters, replies and the TTL loop guard.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, AttributesWriter, Event, EventBuilder, EventBuilderV10};
use http::{StatusCode, Uri};
use knative_eventing::broker::{Broker, BrokerConfig, TriggerRoute};
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::delivery::{Backoff, ContentMode, DeliveryPolicy, Dispatcher, RetryPolicy};
use knative_eventing::filter::Filter;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct RunningBroker {
    broker: Broker,
    uri: Uri,
    _stop: oneshot::Sender<()>,
}

async fn start(config: BrokerConfig, triggers: Vec<TriggerRoute>) -> RunningBroker {
    let broker = Broker::new(config);
    broker.set_triggers(triggers);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = broker.clone();
    tokio::spawn(async move {
        serving
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
    });
    RunningBroker {
        broker,
        uri,
        _stop: stop,
    }
}

fn event(id: usize, ty: &str) -> Event {
    EventBuilderV10::new()
        .id(id.to_string())
        .source("/tests/dataplane")
        .ty(ty)
        .data("application/json", serde_json::json!({ "n": id }))
        .build()
        .unwrap()
}

fn route(
    name: &str,
    filter: Filter,
    subscriber: &Recorder,
    delivery: DeliveryPolicy,
) -> TriggerRoute {
    TriggerRoute {
        name: name.into(),
        filter,
        subscriber: subscriber.uri.clone(),
        delivery,
    }
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_to_a_half_failing_subscriber_are_all_delivered_or_dead_lettered() {
    const EVENTS: usize = 10_000;
    let subscriber = Recorder::start(Behaviour {
        fail_ratio: 0.5,
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let dead_letters = Recorder::start(Behaviour::default()).await.unwrap();
    let delivery = DeliveryPolicy {
        retry: RetryPolicy {
            retry: 5,
            backoff: Backoff::Linear,
            delay: Duration::from_millis(1),
            timeout: Some(Duration::from_secs(5)),
            retry_after_max: None,
        },
        dead_letter_sink: Some(dead_letters.uri.clone()),
        mode: ContentMode::Binary,
    };
    let broker = start(
        BrokerConfig::default(),
        vec![route(
            "all",
            Filter::exact("type", "test.load"),
            &subscriber,
            delivery,
        )],
    )
    .await;

    let sender = Dispatcher::new();
    let mut senders = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let sender = sender.clone();
        let uri = broker.uri.clone();
        senders.spawn(async move {
            let mut statuses = Vec::new();
            for id in (worker..EVENTS).step_by(32) {
                let status = sender
                    .send_once(&event(id, "test.load"), &uri, ContentMode::Binary, None)
                    .await
                    .unwrap();
                statuses.push(status);
            }
            statuses
        });
    }
    while let Some(statuses) = senders.join_next().await {
        assert!(statuses.unwrap().iter().all(|s| *s == StatusCode::ACCEPTED));
    }

    let stats = broker.broker.stats();
    assert!(
        wait_until(Duration::from_secs(120), || stats.snapshot().finished()
            == EVENTS as u64)
        .await,
        "deliveries did not finish: {:?}",
        stats.snapshot()
    );
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.failed, 0, "{snapshot:?}");
    let delivered: HashSet<String> = subscriber.counts_by_id().await.into_keys().collect();
    let dead: HashSet<String> = dead_letters.counts_by_id().await.into_keys().collect();
    assert_eq!(delivered.len() as u64, snapshot.delivered);
    assert_eq!(dead.len() as u64, snapshot.dead_lettered);
    assert!(delivered.is_disjoint(&dead));
    let all: HashSet<String> = (0..EVENTS).map(|i| i.to_string()).collect();
    assert_eq!(&delivered | &dead, all);
    // With six attempts at 50% each, about 1/64 of the events end in the dead-letter sink.
    assert!(!dead.is_empty());
}

#[tokio::test]
async fn only_the_matching_trigger_receives_an_event() {
    let orders = Recorder::start(Behaviour::default()).await.unwrap();
    let payments = Recorder::start(Behaviour::default()).await.unwrap();
    let broker = start(
        BrokerConfig::default(),
        vec![
            route(
                "orders",
                Filter::prefix("type", "order."),
                &orders,
                DeliveryPolicy::default(),
            ),
            route(
                "payments",
                Filter::prefix("type", "payment."),
                &payments,
                DeliveryPolicy::default(),
            ),
        ],
    )
    .await;
    let sender = Dispatcher::new();
    let status = sender
        .send_once(
            &event(1, "order.created"),
            &broker.uri,
            ContentMode::Structured,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(orders.wait_for(1, Duration::from_secs(5)).await, 1);
    assert_eq!(payments.requests(), 0);
}

#[tokio::test]
async fn subscribers_do_not_see_the_broker_ttl() {
    let subscriber = Recorder::start(Behaviour::default()).await.unwrap();
    let broker = start(
        BrokerConfig::default(),
        vec![route(
            "all",
            Filter::pass(),
            &subscriber,
            DeliveryPolicy::default(),
        )],
    )
    .await;
    broker.broker.publish(event(1, "t")).await.unwrap();
    subscriber.wait_for(1, Duration::from_secs(5)).await;
    let received = subscriber.events().await;
    assert!(received[0].extension("knativebrokerttl").is_none());
    assert_eq!(received[0].id(), "1");
}

#[tokio::test]
async fn a_reply_goes_back_to_the_broker_and_reaches_its_trigger() {
    let replier = Recorder::start(Behaviour {
        reply: Some(Arc::new(|e: &Event| {
            let mut reply = e.clone();
            reply.set_type("order.shipped");
            Some(reply)
        })),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let shipping = Recorder::start(Behaviour::default()).await.unwrap();
    let broker = start(
        BrokerConfig::default(),
        vec![
            route(
                "created",
                Filter::exact("type", "order.created"),
                &replier,
                DeliveryPolicy::default(),
            ),
            route(
                "shipped",
                Filter::exact("type", "order.shipped"),
                &shipping,
                DeliveryPolicy::default(),
            ),
        ],
    )
    .await;
    broker
        .broker
        .publish(event(7, "order.created"))
        .await
        .unwrap();
    assert_eq!(shipping.wait_for(1, Duration::from_secs(5)).await, 1);
    assert_eq!(shipping.events().await[0].id(), "7");
}

#[tokio::test]
async fn a_reply_loop_ends_when_the_ttl_runs_out() {
    let echo = Recorder::start(Behaviour {
        reply: Some(Arc::new(|e: &Event| Some(e.clone()))),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let broker = start(
        BrokerConfig {
            default_ttl: 5,
            ..BrokerConfig::default()
        },
        vec![route(
            "echo",
            Filter::pass(),
            &echo,
            DeliveryPolicy::default(),
        )],
    )
    .await;
    broker.broker.publish(event(1, "loop")).await.unwrap();
    let stats = broker.broker.stats();
    assert!(wait_until(Duration::from_secs(5), || stats.snapshot().dropped == 1).await);
    // TTL 5: the original and four replies reach the subscriber, the fifth reply is dropped.
    assert_eq!(echo.events().await.len(), 5);
    assert_eq!(stats.snapshot().accepted, 6);
}

#[tokio::test]
async fn an_event_arriving_with_ttl_zero_is_dropped() {
    let subscriber = Recorder::start(Behaviour::default()).await.unwrap();
    let broker = start(
        BrokerConfig::default(),
        vec![route(
            "all",
            Filter::pass(),
            &subscriber,
            DeliveryPolicy::default(),
        )],
    )
    .await;
    let mut e = event(1, "t");
    e.set_extension("knativebrokerttl", "0");
    let status = Dispatcher::new()
        .send_once(&e, &broker.uri, ContentMode::Binary, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(broker.broker.stats().snapshot().dropped, 1);
    assert_eq!(subscriber.requests(), 0);
}
