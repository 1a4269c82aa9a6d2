//! Malformed requests to the broker and channel ingresses get a 4xx with a clear reason, never a
//! panic: the ingress keeps serving afterwards.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use knative_eventing::broker::{Broker, BrokerConfig, TriggerRoute};
use knative_eventing::channel::InMemoryChannel;
use knative_eventing::delivery::DeliveryPolicy;
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::filter::Filter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Fixture {
    uri: Uri,
    client: HttpClient,
    subscriber: Recorder,
    broker: Broker,
}

async fn broker() -> Fixture {
    let subscriber = Recorder::start(Behaviour::default()).await.unwrap();
    let broker = Broker::new(BrokerConfig::default());
    broker.set_triggers(vec![TriggerRoute {
        name: "all".into(),
        filter: Filter::pass(),
        subscriber: subscriber.uri.clone(),
        delivery: DeliveryPolicy::default(),
    }]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let serving = broker.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    Fixture {
        uri,
        client: Client::builder(TokioExecutor::new()).build_http(),
        subscriber,
        broker,
    }
}

async fn post(f: &Fixture, headers: &[(&str, &str)], body: &'static [u8]) -> (StatusCode, String) {
    send(f, Method::POST, headers, body).await
}

async fn send(
    f: &Fixture,
    method: Method,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(f.uri.clone());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = f
        .client
        .request(request.body(Full::new(Bytes::from_static(body))).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const VALID: &[(&str, &str)] = &[
    ("ce-specversion", "1.0"),
    ("ce-id", "1"),
    ("ce-source", "/s"),
    ("ce-type", "t"),
];

async fn still_serves(f: &Fixture) {
    assert_eq!(post(f, VALID, b"").await.0, StatusCode::ACCEPTED);
    assert_eq!(f.subscriber.wait_for(1, Duration::from_secs(5)).await, 1);
}

#[tokio::test]
async fn a_request_without_cloudevent_headers_is_a_400_saying_so() {
    let f = broker().await;
    let (status, reason) = post(&f, &[("content-type", "application/json")], b"{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("not a CloudEvent"), "{reason}");
    still_serves(&f).await;
}

#[tokio::test]
async fn a_missing_required_attribute_is_a_400_naming_it() {
    let f = broker().await;
    let (status, reason) = post(
        &f,
        &[("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-type", "t")],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("source"), "{reason}");
    still_serves(&f).await;
}

#[tokio::test]
async fn an_empty_type_is_a_400() {
    let f = broker().await;
    let (status, reason) = post(
        &f,
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", ""),
        ],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("type is empty"), "{reason}");
}

#[tokio::test]
async fn an_unknown_spec_version_is_a_400() {
    let f = broker().await;
    let (status, _) = post(
        &f,
        &[
            ("ce-specversion", "2.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn broken_structured_json_is_a_400() {
    let f = broker().await;
    for body in [
        &b"{\"specversion\":\"1.0\",\"id\":"[..],
        b"[1,2]",
        b"\xff\xfe",
        b"",
    ] {
        let body: &'static [u8] = body;
        let (status, reason) = post(
            &f,
            &[("content-type", "application/cloudevents+json")],
            body,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
        assert!(reason.starts_with("malformed CloudEvent"), "{reason}");
    }
    still_serves(&f).await;
}

#[tokio::test]
async fn a_malformed_ttl_is_a_400() {
    let f = broker().await;
    let mut headers = VALID.to_vec();
    headers.push(("ce-knativebrokerttl", "lots"));
    let (status, reason) = post(&f, &headers, b"").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("knativebrokerttl"), "{reason}");
}

#[tokio::test]
async fn a_get_is_a_405() {
    let f = broker().await;
    let (status, _) = send(&f, Method::GET, &[], b"").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_stop_the_ingress() {
    let f = broker().await;
    let addr = format!("{}:{}", f.uri.host().unwrap(), f.uri.port_u16().unwrap());
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"\x00\x01NOT HTTP\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"));
    still_serves(&f).await;
    assert_eq!(f.broker.stats().snapshot().rejected, 0);
}

#[tokio::test]
async fn the_in_memory_channel_rejects_malformed_events_too() {
    let channel = InMemoryChannel::new(16);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri: Uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let serving = channel.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(uri)
        .header("ce-specversion", "1.0")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(channel.stats().snapshot().rejected, 1);
}
