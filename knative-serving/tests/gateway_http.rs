//! The gateway over real HTTP on loopback: routing, weighted splits, switching under load,
//! h2c and malformed requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use knative_serving::apis::Ingress;
use knative_serving::dataplane::gateway::{CompiledIngress, Gateway, RouteTable, StaticResolver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering `name` plus the headers the test looks at.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default()
                        };
                        let body = format!(
                            "{name} host={} revision={}",
                            header("host"),
                            header("knative-serving-revision")
                        );
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

const HOST: &str = "hello.default.example.com";

/// An Ingress sending `HOST` to services `a` and `b` with the given percents.
fn split_ingress(a: i32, b: i32) -> Ingress {
    let split = |name: &str, percent: i32| {
        serde_json::json!({
            "serviceNamespace": "default", "serviceName": name, "servicePort": 80,
            "percent": percent,
            "appendHeaders": {"Knative-Serving-Revision": name},
        })
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.internal.knative.dev/v1alpha1",
        "kind": "Ingress",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"rules": [{
            "hosts": [HOST],
            "http": {"paths": [{"splits": [split("a", a), split("b", b)]}]},
        }]},
    }))
    .unwrap()
}

fn routes(ingress: &Ingress) -> RouteTable {
    RouteTable::new([&CompiledIngress::compile(ingress).unwrap()])
}

/// A gateway routing `HOST` a/b by `ingress`, with both services backed by live upstreams.
async fn gateway(ingress: &Ingress) -> (SocketAddr, Arc<Gateway>) {
    let resolver = StaticResolver::default();
    resolver.insert("default", "a", "80", vec![upstream("a").await]);
    resolver.insert("default", "b", "80", vec![upstream("b").await]);
    let gateway = Gateway::new(Arc::new(resolver));
    gateway.set_routes(routes(ingress));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway.clone().serve(listener, std::future::pending()));
    (addr, gateway)
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn get(addr: SocketAddr, host: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/"))
        .header("host", host)
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

#[tokio::test]
async fn a_request_is_routed_by_host_with_the_split_headers_and_its_host_kept() {
    let (addr, _) = gateway(&split_ingress(100, 0)).await;
    let (status, body) = send(&client(), get(addr, HOST)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("a host={HOST} revision=a"));
}

#[tokio::test]
async fn an_unknown_host_is_not_found() {
    let (addr, _) = gateway(&split_ingress(100, 0)).await;
    let (status, body) = send(&client(), get(addr, "nope.example.com")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no route for host"), "{body}");
}

#[tokio::test]
async fn a_service_without_endpoints_is_unavailable() {
    let gateway = Gateway::new(Arc::new(StaticResolver::default()));
    gateway.set_routes(routes(&split_ingress(100, 0)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    let (status, body) = send(&client(), get(addr, HOST)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("service default/a port 80 has no ready endpoint"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_is_honoured_within_tolerance() {
    let (addr, _) = gateway(&split_ingress(20, 80)).await;
    let client = client();
    let mut to_a = 0;
    let total = 2000;
    for _ in 0..total {
        let (status, body) = send(&client, get(addr, HOST)).await;
        assert_eq!(status, StatusCode::OK);
        if body.starts_with("a ") {
            to_a += 1;
        }
    }
    // 20% of 2000 is 400; a binomial standard deviation is about 18, so ±90 is 5 sigma.
    assert!((310..=490).contains(&to_a), "{to_a} of {total} went to a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_traffic_from_100_0_to_0_100_under_load_fails_no_request() {
    let (addr, gateway) = gateway(&split_ingress(100, 0)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let served_by_b = Arc::new(AtomicUsize::new(0));
    let loaders: Vec<_> = (0..16)
        .map(|_| {
            let (stop, failures, served_by_b, client) = (
                stop.clone(),
                failures.clone(),
                served_by_b.clone(),
                client(),
            );
            tokio::spawn(async move {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    match client.request(get(addr, HOST)).await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            let body = response.into_body().collect().await.unwrap().to_bytes();
                            if body.starts_with(b"b ") {
                                served_by_b.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        served_by_b.load(Ordering::Relaxed),
        0,
        "all traffic goes to a before the switch"
    );
    gateway.set_routes(routes(&split_ingress(0, 100)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_after_switch = served_by_b.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for loader in loaders {
        sent += loader.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {sent} requests");
    assert!(b_after_switch > 0, "traffic reached b after the switch");
    let (_, body) = send(&client(), get(addr, HOST)).await;
    assert!(body.starts_with("b "), "{body}");
}

#[tokio::test]
async fn h2c_requests_are_served() {
    let (addr, _) = gateway(&split_ingress(100, 0)).await;
    let h2c: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = Request::get(format!("http://{HOST}/"))
        .version(http::Version::HTTP_2)
        .body(Empty::new())
        .unwrap();
    // Connect to the gateway while the :authority names the routed host.
    let mut parts = req.into_parts();
    parts.0.uri = format!("http://{addr}/").parse().unwrap();
    parts.0.headers.insert("host", HOST.parse().unwrap());
    let (status, body) = send(&h2c, Request::from_parts(parts.0, parts.1)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("a "), "{body}");
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_and_the_gateway_keeps_serving() {
    let (addr, _) = gateway(&split_ingress(100, 0)).await;
    let oversized = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\n\r\n",
        "x".repeat(1 << 20)
    );
    for raw in [
        "NOT HTTP AT ALL\r\n\r\n".to_owned(),
        format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nBad Header\r\n\r\n"),
        "GET / HTTP/1.1\r\n\r\n".to_owned(),
        oversized,
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(raw.as_bytes()).await;
        let mut response = vec![0; 12];
        let _ = stream.read_exact(&mut response).await;
        let head = String::from_utf8_lossy(&response).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 4"),
            "{:?} got {head:?}",
            &raw[..raw.len().min(30)]
        );
    }
    assert_eq!(send(&client(), get(addr, HOST)).await.0, StatusCode::OK);
}
