//! The activator over real HTTP on loopback: buffering at zero, throttling, reporting, errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use knative_serving::autoscaler::wire::WireStatMessages;
use knative_serving::dataplane::activator::{Activator, ActivatorConfig, RevisionKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A backend answering 200 with the `K-Proxy-Request` and `Host` it saw, after `delay`, and
/// counting the most requests it served at once.
struct Upstream {
    addr: SocketAddr,
    peak: Arc<AtomicUsize>,
}

async fn upstream(delay: Duration) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (cur, pk) = (current.clone(), peak.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (cur, pk) = (cur.clone(), pk.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (cur, pk) = (cur.clone(), pk.clone());
                    async move {
                        let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
                        pk.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        cur.fetch_sub(1, Ordering::SeqCst);
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default()
                        };
                        let body = format!(
                            "proxy={} host={}",
                            header("k-proxy-request"),
                            header("host")
                        );
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(body)),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream { addr, peak }
}

struct Running {
    addr: SocketAddr,
    activator: Arc<Activator>,
    stats: mpsc::UnboundedReceiver<WireStatMessages>,
}

async fn activator(config: ActivatorConfig) -> Running {
    let (tx, stats) = mpsc::unbounded_channel();
    let activator = Activator::new(config, Arc::new(tx));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(activator.clone().serve(listener, std::future::pending()));
    Running {
        addr,
        activator,
        stats,
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn hello() -> RevisionKey {
    RevisionKey::new("default", "hello-00001")
}

fn request(addr: SocketAddr, revision: &RevisionKey) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .header("host", "hello.default.example.com")
        .header("knative-serving-namespace", &revision.namespace)
        .header("knative-serving-revision", &revision.name)
        .body(Empty::new())
        .unwrap()
}

async fn send(
    client: &Client<HttpConnector, Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> (StatusCode, String) {
    let response = client.request(req).await.expect("an HTTP response");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_to_a_revision_at_zero_all_succeed_once_a_backend_appears() {
    let running = activator(ActivatorConfig::default()).await;
    running.activator.upsert_revision(&hello(), 0);
    let client = client();
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (client, req) = (client.clone(), request(running.addr, &hello()));
            tokio::spawn(async move { send(&client, req).await })
        })
        .collect();
    let throttler = running.activator.throttler(&hello()).unwrap();
    while throttler.waiting() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The revision scales from zero: its first pod becomes ready a moment later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backend = upstream(Duration::from_millis(5)).await;
    running.activator.set_backends(&hello(), [backend.addr]);
    let mut failures = Vec::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        if status != StatusCode::OK {
            failures.push(format!("{status}: {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test]
async fn the_first_request_to_a_revision_is_reported_to_the_autoscaler_at_once() {
    let mut running = activator(ActivatorConfig::default()).await;
    running.activator.upsert_revision(&hello(), 0);
    let (client, req) = (client(), request(running.addr, &hello()));
    let pending = tokio::spawn(async move { send(&client, req).await });
    let pushed = tokio::time::timeout(Duration::from_millis(500), running.stats.recv())
        .await
        .expect("a stat before the first report tick")
        .unwrap();
    assert_eq!(pushed.messages[0].namespace, "default");
    assert_eq!(pushed.messages[0].name, "hello-00001");
    assert_eq!(
        pushed.messages[0]
            .stat
            .as_ref()
            .unwrap()
            .average_concurrent_requests,
        1.0
    );
    pending.abort();
}

#[tokio::test]
async fn concurrency_is_reported_every_interval_while_requests_wait() {
    let mut running = activator(ActivatorConfig {
        report_interval: Duration::from_millis(100),
        ..ActivatorConfig::default()
    })
    .await;
    running.activator.upsert_revision(&hello(), 0);
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let (client, req) = (client(), request(running.addr, &hello()));
            tokio::spawn(async move { send(&client, req).await })
        })
        .collect();
    let throttler = running.activator.throttler(&hello()).unwrap();
    while throttler.waiting() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first report may cover the requests' arrival; a later one covers a whole interval
    // in which all three waited.
    let mut reported = Vec::new();
    for _ in 0..5 {
        let batch = running.stats.recv().await.unwrap();
        reported.push(
            batch.messages[0]
                .stat
                .as_ref()
                .unwrap()
                .average_concurrent_requests,
        );
    }
    assert!(
        reported.iter().any(|c| (c - 3.0).abs() < 1e-6),
        "three requests waited for a whole interval: {reported:?}"
    );
    pending.iter().for_each(|p| p.abort());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_throttled_to_container_concurrency_per_backend() {
    let running = activator(ActivatorConfig::default()).await;
    let backend = upstream(Duration::from_millis(20)).await;
    running.activator.upsert_revision(&hello(), 2);
    running.activator.set_backends(&hello(), [backend.addr]);
    let client = client();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (client, req) = (client.clone(), request(running.addr, &hello()));
            tokio::spawn(async move { send(&client, req).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(backend.peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn forwarded_requests_are_marked_as_proxied_and_keep_their_host() {
    let running = activator(ActivatorConfig::default()).await;
    let backend = upstream(Duration::ZERO).await;
    running.activator.set_backends(&hello(), [backend.addr]);
    let (status, body) = send(&client(), request(running.addr, &hello())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "proxy=activator host=hello.default.example.com");
}

#[tokio::test]
async fn a_request_that_finds_no_backend_in_time_gets_503_saying_why() {
    let running = activator(ActivatorConfig {
        queue_timeout: Duration::from_millis(100),
        ..ActivatorConfig::default()
    })
    .await;
    running.activator.upsert_revision(&hello(), 0);
    let (status, body) = send(&client(), request(running.addr, &hello())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("revision default/hello-00001 had no backend"),
        "{body}"
    );
}

#[tokio::test]
async fn a_full_queue_gets_503_at_once() {
    let running = activator(ActivatorConfig {
        queue_depth: 1,
        ..ActivatorConfig::default()
    })
    .await;
    running.activator.upsert_revision(&hello(), 0);
    let (client, req) = (client(), request(running.addr, &hello()));
    let waiting = tokio::spawn(async move { send(&client, req).await });
    let throttler = running.activator.throttler(&hello()).unwrap();
    while throttler.waiting() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = send(&self::client(), request(running.addr, &hello())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("overloaded"), "{body}");
    waiting.abort();
}

#[tokio::test]
async fn a_request_without_revision_headers_is_a_bad_request() {
    let running = activator(ActivatorConfig::default()).await;
    let req = Request::get(format!("http://{}/", running.addr))
        .body(Empty::new())
        .unwrap();
    let (status, body) = send(&client(), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Knative-Serving-Revision"), "{body}");
}

#[tokio::test]
async fn a_request_for_an_unknown_revision_is_not_found() {
    let running = activator(ActivatorConfig::default()).await;
    let (status, _) = send(
        &client(),
        request(running.addr, &RevisionKey::new("default", "nope")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn activator_probes_are_answered_by_the_activator() {
    let running = activator(ActivatorConfig::default()).await;
    let req = Request::get(format!("http://{}/", running.addr))
        .header("k-network-probe", "activator")
        .body(Empty::new())
        .unwrap();
    assert_eq!(
        send(&client(), req).await,
        (StatusCode::OK, "activator\n".to_owned())
    );
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_and_the_activator_keeps_serving() {
    let running = activator(ActivatorConfig::default()).await;
    let oversized = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(1 << 20)
    );
    for raw in [
        "GARBAGE\r\n\r\n".to_owned(),
        "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n".to_owned(),
        oversized,
    ] {
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        let _ = stream.write_all(raw.as_bytes()).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let head = String::from_utf8_lossy(&response[..response.len().min(12)]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 4"),
            "{:?} got {head:?}",
            &raw[..raw.len().min(30)]
        );
    }
    let backend = upstream(Duration::ZERO).await;
    running.activator.set_backends(&hello(), [backend.addr]);
    assert_eq!(
        send(&client(), request(running.addr, &hello())).await.0,
        StatusCode::OK
    );
}
