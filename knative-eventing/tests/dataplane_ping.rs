//! The PingSource adapter delivers its events to a real sink on loopback, on schedule.

use std::time::Duration;

use cloudevents::AttributesReader;
use knative_eventing::apis::sources::ping::PingSource;
use knative_eventing::delivery::Dispatcher;
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::sources::ping::{PING_EVENT_TYPE, PingAdapter};

#[tokio::test]
async fn a_ping_source_every_second_delivers_ping_events_to_its_sink() {
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let source: PingSource = serde_json::from_value(serde_json::json!({
        "apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
        "metadata": {"name": "heartbeat", "namespace": "demo"},
        "spec": {"schedule": "@every 1s", "data": "tick", "sink": {"uri": sink.uri.to_string()}}
    }))
    .unwrap();
    let adapter = PingAdapter::from_source(&source).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        adapter
            .run(&Dispatcher::new(), async move {
                let _ = stopped.await;
            })
            .await
    });

    assert_eq!(sink.wait_for(2, Duration::from_secs(5)).await, 2);
    let _ = stop.send(());
    running.await.unwrap();
    let events = sink.events().await;
    assert!(events.iter().all(|e| e.ty() == PING_EVENT_TYPE));
    assert_eq!(
        events[0].source(),
        "/apis/v1/namespaces/demo/pingsources/heartbeat"
    );
    assert_ne!(events[0].id(), events[1].id());
    assert!(events[0].time() < events[1].time());
}
