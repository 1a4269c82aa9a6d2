//! The Dispatcher against real HTTP servers on loopback: what is retried, timeouts, Retry-After,
//! dead letters, replies and the `Prefer: reply` header.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use http::{StatusCode, Uri};
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::delivery::{
    Backoff, ContentMode, DeliveryPolicy, Dispatcher, Failure, Outcome, RetryPolicy, server,
};
use tokio::net::TcpListener;

fn event() -> Event {
    EventBuilderV10::new()
        .id("e-1")
        .source("/tests/delivery")
        .ty("test.delivery")
        .build()
        .unwrap()
}

fn policy(retry: u32) -> DeliveryPolicy {
    DeliveryPolicy {
        retry: RetryPolicy {
            retry,
            backoff: Backoff::Linear,
            delay: Duration::from_millis(5),
            ..RetryPolicy::none()
        },
        ..DeliveryPolicy::default()
    }
}

#[tokio::test]
async fn an_attempt_that_exceeds_the_timeout_fails_and_is_retried() {
    let slow = Recorder::start(Behaviour {
        delay: Some(Duration::from_millis(500)),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let mut p = policy(2);
    p.retry.timeout = Some(Duration::from_millis(50));
    let outcome = Dispatcher::new().deliver(&event(), &slow.uri, &p).await;
    assert!(
        matches!(
            outcome,
            Outcome::Failed {
                failure: Failure::Timeout,
                attempts: 3,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(slow.requests(), 3);
}

#[tokio::test]
async fn a_400_is_not_retried_and_goes_to_the_dead_letter_sink_with_its_code() {
    let rejecting = Recorder::start(Behaviour {
        fail_ratio: 1.0,
        fail_status: Some(StatusCode::BAD_REQUEST),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let dead_letters = Recorder::start(Behaviour::default()).await.unwrap();
    let mut p = policy(5);
    p.dead_letter_sink = Some(dead_letters.uri.clone());
    let outcome = Dispatcher::new()
        .deliver(&event(), &rejecting.uri, &p)
        .await;
    assert!(
        matches!(outcome, Outcome::DeadLettered { attempts: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(rejecting.requests(), 1);
    let dead = &dead_letters.events().await[0];
    assert_eq!(dead.id(), "e-1");
    assert_eq!(
        dead.extension("knativeerrorcode").unwrap().to_string(),
        "400"
    );
    // The failing answer's body, base64: "failing on purpose".
    assert_eq!(
        dead.extension("knativeerrordata").unwrap().to_string(),
        "ZmFpbGluZyBvbiBwdXJwb3Nl"
    );
}

#[tokio::test]
async fn each_retryable_status_is_retried_as_many_times_as_the_policy_says() {
    for code in [404, 408, 409, 429, 500, 503] {
        let failing = Recorder::start(Behaviour {
            fail_ratio: 1.0,
            fail_status: Some(StatusCode::from_u16(code).unwrap()),
            ..Behaviour::default()
        })
        .await
        .unwrap();
        let outcome = Dispatcher::new()
            .deliver(&event(), &failing.uri, &policy(3))
            .await;
        assert!(
            matches!(outcome, Outcome::Failed { attempts: 4, .. }),
            "{code}: {outcome:?}"
        );
        assert_eq!(failing.requests(), 4, "{code}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri: Uri = format!("http://{}/", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let outcome = Dispatcher::new().deliver(&event(), &uri, &policy(2)).await;
    assert!(
        matches!(
            outcome,
            Outcome::Failed {
                failure: Failure::Network(_),
                attempts: 3,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_reply_event_in_the_response_is_returned() {
    let replier = Recorder::start(Behaviour {
        reply: Some(Arc::new(|e: &Event| {
            let mut reply = e.clone();
            cloudevents::AttributesWriter::set_id(&mut reply, "reply-1");
            Some(reply)
        })),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let outcome = Dispatcher::new()
        .deliver(&event(), &replier.uri, &policy(0))
        .await;
    let Outcome::Delivered {
        reply: Some(reply), ..
    } = outcome
    else {
        panic!("expected a reply: {outcome:?}");
    };
    assert_eq!(reply.id(), "reply-1");
}

/// A subscriber that answers the first request with 429 and `Retry-After: 1`, then 202, and
/// remembers the `Prefer` header it saw.
async fn rate_limited() -> (Uri, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let prefer = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, seen) = (requests.clone(), prefer.clone());
    tokio::spawn(server::serve(
        listener,
        move |request| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            if let Some(value) = request.headers().get("prefer") {
                seen.lock()
                    .unwrap()
                    .push(value.to_str().unwrap_or_default().to_owned());
            }
            async move {
                if n == 0 {
                    let mut response = server::text(StatusCode::TOO_MANY_REQUESTS, "slow down");
                    response
                        .headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("1"));
                    response
                } else {
                    server::text(StatusCode::ACCEPTED, "")
                }
            }
        },
        std::future::pending(),
    ));
    (uri, requests, prefer)
}

#[tokio::test]
async fn retry_after_is_honoured_when_retry_after_max_allows_it() {
    let (uri, requests, prefer) = rate_limited().await;
    let mut p = policy(1);
    p.retry.retry_after_max = Some(Duration::from_secs(5));
    let started = Instant::now();
    let outcome = Dispatcher::new().deliver(&event(), &uri, &p).await;
    assert!(
        matches!(outcome, Outcome::Delivered { attempts: 2, .. }),
        "{outcome:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(*prefer.lock().unwrap(), ["reply", "reply"]);
}

#[tokio::test]
async fn structured_mode_sends_application_cloudevents_json() {
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let mut p = policy(0);
    p.mode = ContentMode::Structured;
    let outcome = Dispatcher::new().deliver(&event(), &sink.uri, &p).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }));
    assert_eq!(sink.events().await[0].id(), "e-1");
}
