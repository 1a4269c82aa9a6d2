//! The JetStream channel against a real `nats-server -js` started by each test on a free port
//! with a temporary store: senders get 202 only for stored events, redelivery follows the
//! DeliverySpec, and nothing is lost when the dispatcher dies or nats-server restarts.
//!
//! The dispatcher runs in its own tokio runtime; "killing" it shuts that runtime down, which drops
//! every task and connection at once, as a process exit would.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use http::{StatusCode, Uri};
use knative_eventing::channel::SubscriptionRoute;
use knative_eventing::channel::jetstream::{
    JetStreamChannel, JetStreamConfig, run_dispatcher_with_stats,
};
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::delivery::{
    Backoff, ContentMode, DeliveryPolicy, DeliveryStats, Dispatcher, RetryPolicy,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    async fn start(store: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, store).await
    }

    async fn start_on(port: u16, store: &Path) -> Self {
        let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| {
            if Path::new("/usr/sbin/nats-server").exists() {
                "/usr/sbin/nats-server".into()
            } else {
                "nats-server".into()
            }
        });
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server runs (scripts/test.sh installs it)");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        NatsServer {
            child,
            port,
            store: store.to_owned(),
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then start again on the same port and store.
    async fn restart(&mut self, down_for: Duration) {
        self.child.kill().await.unwrap();
        tokio::time::sleep(down_for).await;
        *self = NatsServer::start_on(self.port, &self.store.clone()).await;
    }
}

fn start_dispatcher(
    config: &JetStreamConfig,
    route: &SubscriptionRoute,
    stats: &Arc<DeliveryStats>,
) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(run_dispatcher_with_stats(
        config.clone(),
        route.clone(),
        stats.clone(),
        std::future::pending(),
    ));
    runtime
}

async fn serve(channel: &JetStreamChannel) -> Uri {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let serving = channel.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    uri
}

fn event(id: usize) -> Event {
    EventBuilderV10::new()
        .id(id.to_string())
        .source("/tests/jetstream")
        .ty("test.durable")
        .data("application/json", serde_json::json!({ "n": id }))
        .build()
        .unwrap()
}

/// Sends each event until the channel answers 202 (a 503 means "not stored, try again").
async fn send_all(uri: Uri, ids: std::ops::Range<usize>) {
    let sender = Dispatcher::new();
    for id in ids {
        loop {
            match sender
                .send_once(
                    &event(id),
                    &uri,
                    ContentMode::Binary,
                    Some(Duration::from_secs(10)),
                )
                .await
            {
                Ok(StatusCode::ACCEPTED) => break,
                Ok(status) => assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn received(recorders: &[&Recorder]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for recorder in recorders {
        ids.extend(recorder.counts_by_id().await.into_keys());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_when_the_dispatcher_is_killed_and_nats_server_restarts() {
    const EVENTS: usize = 1_500;
    let store = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(store.path()).await;
    let config = JetStreamConfig {
        ack_wait: Duration::from_secs(2),
        // Few deliveries at once to a slowish subscriber: a backlog builds, so the kill and the
        // restart happen with events stored but not yet delivered, or delivered but not acked.
        max_in_flight: 16,
        ..JetStreamConfig::new(nats.url(), "durable")
    };
    let channel = JetStreamChannel::connect(&config).await.unwrap();
    let uri = serve(&channel).await;
    let subscriber = Recorder::start(Behaviour {
        fail_ratio: 0.2,
        delay: Some(Duration::from_millis(10)),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let dead_letters = Recorder::start(Behaviour::default()).await.unwrap();
    let route = SubscriptionRoute {
        name: "audit".into(),
        subscriber: Some(subscriber.uri.clone()),
        reply: None,
        delivery: DeliveryPolicy {
            retry: RetryPolicy {
                retry: 8,
                backoff: Backoff::Linear,
                delay: Duration::from_millis(20),
                timeout: Some(Duration::from_secs(1)),
                retry_after_max: None,
            },
            dead_letter_sink: Some(dead_letters.uri.clone()),
            mode: ContentMode::Binary,
        },
    };
    let stats = Arc::new(DeliveryStats::default());

    let first = start_dispatcher(&config, &route, &stats);
    send_all(uri.clone(), 0..500).await;
    // Killed mid-stream: deliveries in flight and NAKed retries are never acknowledged.
    first.shutdown_background();
    send_all(uri.clone(), 500..1_000).await;
    let second = start_dispatcher(&config, &route, &stats);
    let sending = tokio::spawn(send_all(uri.clone(), 1_000..EVENTS));
    tokio::time::sleep(Duration::from_millis(100)).await;
    nats.restart(Duration::from_millis(500)).await;
    sending.await.unwrap();

    let all: HashSet<String> = (0..EVENTS).map(|i| i.to_string()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while received(&[&subscriber, &dead_letters]).await != all
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received(&[&subscriber, &dead_letters]).await;
    let missing: Vec<&String> = all.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "lost {} events: {missing:?}",
        missing.len()
    );
    assert_eq!(stats.snapshot().failed, 0);
    let duplicates: usize = subscriber
        .counts_by_id()
        .await
        .values()
        .map(|n| n - 1)
        .sum();
    eprintln!(
        "{EVENTS} events: {:?}, {} subscriber requests, {duplicates} duplicate deliveries",
        stats.snapshot(),
        subscriber.requests()
    );
    second.shutdown_background();
}

#[tokio::test]
async fn a_sender_gets_503_while_jetstream_cannot_store_and_202_once_it_can() {
    let store = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(store.path()).await;
    let config = JetStreamConfig::new(nats.url(), "acked");
    let channel = JetStreamChannel::connect(&config).await.unwrap();
    let uri = serve(&channel).await;
    let sender = Dispatcher::new();

    nats.child.kill().await.unwrap();
    let status = sender
        .send_once(
            &event(1),
            &uri,
            ContentMode::Binary,
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    nats.restart(Duration::ZERO).await;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = sender
            .send_once(
                &event(2),
                &uri,
                ContentMode::Binary,
                Some(Duration::from_secs(30)),
            )
            .await
            .unwrap();
        if status == StatusCode::ACCEPTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn exhausted_retries_go_to_the_dead_letter_sink_with_the_error() {
    let store = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(store.path()).await;
    let config = JetStreamConfig::new(nats.url(), "dlq");
    let channel = JetStreamChannel::connect(&config).await.unwrap();
    let failing = Recorder::start(Behaviour {
        fail_ratio: 1.0,
        fail_status: Some(StatusCode::BAD_GATEWAY),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let dead_letters = Recorder::start(Behaviour::default()).await.unwrap();
    let route = SubscriptionRoute {
        name: "failing".into(),
        subscriber: Some(failing.uri.clone()),
        reply: None,
        delivery: DeliveryPolicy {
            retry: RetryPolicy {
                retry: 2,
                delay: Duration::from_millis(10),
                ..RetryPolicy::none()
            },
            dead_letter_sink: Some(dead_letters.uri.clone()),
            mode: ContentMode::Structured,
        },
    };
    let stats = Arc::new(DeliveryStats::default());
    let dispatcher = start_dispatcher(&config, &route, &stats);
    channel.publish(&event(9)).await.unwrap();

    assert_eq!(dead_letters.wait_for(1, Duration::from_secs(10)).await, 1);
    let dead = &dead_letters.events().await[0];
    assert_eq!(dead.id(), "9");
    assert_eq!(
        dead.extension("knativeerrorcode").unwrap().to_string(),
        "502"
    );
    assert_eq!(
        dead.extension("knativeerrordest").unwrap().to_string(),
        failing.uri.to_string()
    );
    // One attempt and two retries, each a JetStream redelivery.
    assert_eq!(failing.requests(), 3);
    // The outcome is counted once the dead-letter sink has answered.
    for _ in 0..100 {
        if stats.snapshot().dead_lettered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.snapshot().dead_lettered, 1);
    dispatcher.shutdown_background();
}
