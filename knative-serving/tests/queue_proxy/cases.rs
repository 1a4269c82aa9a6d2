//! The queue-proxy in front of a real HTTP server on loopback: forwarding, breaker, timeouts,
//! probes, stats, drain and bad clients. Included by two test binaries: with the fast path for
//! plain HTTP/1.1 requests (the default) and without it (every request through hyper), as
//! `super::FAST_PATH` says.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use knative_serving::autoscaler::wire::{PROTOBUF_CONTENT_TYPE, WireStat};
use knative_serving::dataplane::probe::{ProbeAction, ReadinessProbe};
use knative_serving::dataplane::queue::{QueueConfig, QueueListeners, QueueProxy};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

/// The user container: a small HTTP server with a few behaviours picked by path.
#[derive(Clone, Default)]
struct Upstream {
    requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    release: Arc<Notify>,
    released: Arc<AtomicBool>,
}

impl Upstream {
    async fn start() -> (Self, SocketAddr) {
        let upstream = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = upstream.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (upstream, addr)
    }

    fn release_all(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.release.notify_waiters();
    }

    async fn handle(
        &self,
        mut req: Request<Incoming>,
    ) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let query = req.uri().query().unwrap_or("").to_owned();
        let param = |name: &str| -> u64 {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        let response = match req.uri().path() {
            "/sleep" => {
                tokio::time::sleep(Duration::from_millis(param("ms"))).await;
                text("slept")
            }
            "/hold" => {
                let notified = self.release.notified();
                if !self.released.load(Ordering::SeqCst) {
                    notified.await;
                }
                text("released")
            }
            "/upgrade" if req.headers().get("upgrade").is_some_and(|u| u == "echo") => {
                // An echo protocol over the upgraded connection.
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(upgraded) = upgrade.await else {
                        return;
                    };
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let mut response = text("");
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                response
                    .headers_mut()
                    .insert("connection", "upgrade".parse().unwrap());
                response
                    .headers_mut()
                    .insert("upgrade", "echo".parse().unwrap());
                response
            }
            "/echo" => {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Response::new(Full::new(body).boxed())
            }
            "/stream" => {
                let (chunks, gap) = (param("chunks"), Duration::from_millis(param("gap_ms")));
                let frames = futures::stream::unfold(0, move |n| async move {
                    if n == chunks {
                        return None;
                    }
                    if n > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    Some((
                        Ok::<_, Infallible>(Frame::data(Bytes::from("chunk\n"))),
                        n + 1,
                    ))
                });
                Response::new(StreamBody::new(frames).boxed())
            }
            _ => {
                let mut response = text("hello");
                let seen = |name: &str| {
                    req.headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap_or("").to_owned())
                        .unwrap_or_else(|| "<none>".into())
                };
                let headers = response.headers_mut();
                headers.insert("x-seen-host", seen("host").parse().unwrap());
                headers.insert("x-seen-secret", seen("x-secret").parse().unwrap());
                response
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        response
    }
}

fn text(body: &'static str) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    Response::new(Full::new(Bytes::from(body)).boxed())
}

/// A running queue-proxy in front of an [`Upstream`].
struct Running {
    main: SocketAddr,
    admin: SocketAddr,
    metrics: SocketAddr,
    user_metrics: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.main)
    }

    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.served).await.unwrap()
    }
}

fn config_for(user: SocketAddr) -> QueueConfig {
    let mut config = QueueConfig::new(user.port());
    config.namespace = "default".into();
    config.configuration = "hello".into();
    config.revision = "hello-00001".into();
    config.pod = "hello-00001-deployment-abc".into();
    config.drain_quiet_period = Duration::from_millis(200);
    config.stats_period = Duration::from_millis(200);
    config.http1_fast_path = super::FAST_PATH;
    config
}

async fn start(config: QueueConfig) -> Running {
    let bind = || TcpListener::bind("127.0.0.1:0");
    let listeners = QueueListeners {
        main: bind().await.unwrap(),
        admin: Some(bind().await.unwrap()),
        metrics: Some(bind().await.unwrap()),
        user_metrics: Some(bind().await.unwrap()),
    };
    let [main, admin, metrics, user_metrics] = listeners.local_addrs().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let proxy = QueueProxy::new(config);
    let served = tokio::spawn(proxy.serve(listeners, async move {
        let _ = rx.await;
    }));
    Running {
        main: main.unwrap(),
        admin: admin.unwrap(),
        metrics: metrics.unwrap(),
        user_metrics: user_metrics.unwrap(),
        shutdown: Some(tx),
        served,
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Sends raw bytes and returns what the server answered before closing (or within 3 s).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_user_container_with_their_host_and_without_hop_by_hop_headers() {
    let (_upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let (status, headers, body) = get(
        &client(),
        &queue.url("/"),
        &[
            ("host", "hello.default.example.com"),
            ("connection", "x-secret"),
            ("x-secret", "only for the next hop"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello");
    assert_eq!(headers["x-seen-host"], "hello.default.example.com");
    assert_eq!(headers["x-seen-secret"], "<none>");
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_through_both_ways() {
    let (_upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let response = client()
        .request(
            Request::post(queue.url("/echo"))
                .body(Full::new(Bytes::from(payload.clone())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_is_tunnelled_to_the_user_container() {
    let (_upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let mut stream = TcpStream::connect(queue.main).await.unwrap();
    stream
        .write_all(
            b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "the head ends");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for message in [&b"ping"[..], b"a longer message"] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
    }
    drop(stream);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_on_the_same_port() {
    let (_upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let response = h2
        .request(Request::get(queue.url("/")).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_slot_and_the_queue_are_taken_the_breaker_answers_503() {
    let (upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.container_concurrency = 1; // one slot and a queue of ten
    let queue = start(config).await;
    let client = client();
    let held: Vec<_> = (0..11)
        .map(|_| {
            let (client, url) = (client.clone(), queue.url("/hold"));
            tokio::spawn(async move { get(&client, &url, &[]).await.0 })
        })
        .collect();
    // Wait for one request at the user container and the ten others queued.
    while upstream.in_flight.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, body) = get(&client, &queue.url("/hold"), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "pending request queue full\n");

    upstream.release_all();
    for request in held {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(upstream.max_in_flight.load(Ordering::SeqCst), 1);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_concurrency_zero_lets_every_request_through_at_once() {
    let (upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let client = client();
    let held: Vec<_> = (0..40)
        .map(|_| {
            let (client, url) = (client.clone(), queue.url("/hold"));
            tokio::spawn(async move { get(&client, &url, &[]).await.0 })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while upstream.in_flight.load(Ordering::SeqCst) < 40 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("all 40 requests reach the user container together");
    upstream.release_all();
    for request in held {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_does_not_start_within_the_response_start_timeout_is_a_504() {
    let (_upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.timeouts.response_start = Some(Duration::from_millis(200));
    let queue = start(config).await;
    let (status, _, body) = get(&client(), &queue.url("/sleep?ms=2000"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "request timeout\n");
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_revision_timeout_is_a_504() {
    let (_upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.timeouts.total = Some(Duration::from_millis(300));
    let queue = start(config).await;
    let client = client();
    let (status, _, _) = get(&client, &queue.url("/sleep?ms=2000"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _, _) = get(&client, &queue.url("/sleep?ms=10"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_idle_for_longer_than_the_idle_timeout_is_cut_off() {
    let (_upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.timeouts.idle = Some(Duration::from_millis(300));
    let queue = start(config).await;
    let client = client();

    let steady = client
        .request(
            Request::get(queue.url("/stream?chunks=5&gap_ms=50"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = steady.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 5 * "chunk\n".len());

    let stalling = client
        .request(
            Request::get(queue.url("/stream?chunks=3&gap_ms=1500"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stalling.status(), StatusCode::OK);
    assert!(
        stalling.into_body().collect().await.is_err(),
        "the stalled response is cut off"
    );
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_probe_is_answered_by_the_proxy_not_the_user_container() {
    let (upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let client = client();
    let (status, _, body) = get(&client, &queue.url("/"), &[("k-network-probe", "queue")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "queue"));
    let (status, _, _) = get(
        &client,
        &queue.url("/healthz"),
        &[("user-agent", "kube-probe/1.20")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_meant_for_another_component_is_a_400() {
    let (_upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let (status, _, body) = get(
        &client(),
        &queue.url("/"),
        &[("k-network-probe", "activator")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "unexpected probe header value: activator\n");
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_fail_while_the_user_container_is_not_ready() {
    let (_upstream, user) = Upstream::start().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = config_for(user);
    config.readiness_probes = ReadinessProbe::parse(
        &format!(r#"{{"httpGet":{{"port":{closed_port},"path":"/ready"}},"periodSeconds":1}}"#),
        user.port(),
    )
    .unwrap();
    assert!(matches!(
        config.readiness_probes[0].action,
        ProbeAction::Http { .. }
    ));
    let queue = start(config).await;
    let (status, _, body) = get(&client(), &queue.url("/"), &[("k-network-probe", "queue")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "container not ready\n");
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_container_that_is_down_gives_a_502_that_says_so() {
    let closed: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let queue = start(config_for(closed)).await;
    let (status, _, body) = get(&client(), &queue.url("/"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("cannot connect to the backend"), "{body}");
    queue.stop().await.unwrap();
}

/// Polls the stats port until a report says `average` requests were in flight all period.
async fn scrape_until_steady(
    queue: &Running,
    accept: &str,
    steady: impl Fn(&Bytes) -> bool,
) -> Bytes {
    let client = client();
    for _ in 0..100 {
        let response = client
            .request(
                Request::get(format!("http://{}/metrics", queue.metrics))
                    .header("accept", accept)
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if steady(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stats never showed the requests in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_average_concurrency_in_knatives_protobuf() {
    let (upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let client = client();
    let held: Vec<_> = [true, false, false]
        .into_iter()
        .map(|proxied| {
            let (client, url) = (client.clone(), queue.url("/hold"));
            tokio::spawn(async move {
                let headers: &[(&str, &str)] = if proxied {
                    &[("k-proxy-request", "activator")]
                } else {
                    &[]
                };
                get(&client, &url, headers).await.0
            })
        })
        .collect();
    let body = scrape_until_steady(&queue, PROTOBUF_CONTENT_TYPE, |body| {
        WireStat::decode(body.as_ref()).is_ok_and(|stat| {
            (stat.average_concurrent_requests - 3.0).abs() < 1e-6 && stat.request_count == 0.0
        })
    })
    .await;
    let stat = WireStat::decode(body.as_ref()).unwrap();
    assert_eq!(stat.pod_name, "hello-00001-deployment-abc");
    assert!((stat.average_proxied_concurrent_requests - 1.0).abs() < 1e-6);
    assert!(stat.process_uptime > 0.0);
    upstream.release_all();
    for request in held {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_prometheus_text_when_protobuf_is_not_asked_for() {
    let (upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let client = client();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (client.clone(), queue.url("/hold"));
            tokio::spawn(async move { get(&client, &url, &[]).await.0 })
        })
        .collect();
    let labels = "destination_configuration=\"hello\",destination_namespace=\"default\",destination_pod=\"hello-00001-deployment-abc\",destination_revision=\"hello-00001\"";
    let want = format!("queue_average_concurrent_requests{{{labels}}} 2\n");
    let body = scrape_until_steady(&queue, "text/plain", |body| {
        String::from_utf8_lossy(body).contains(&want)
    })
    .await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("# TYPE queue_requests_per_second gauge"),
        "{text}"
    );
    assert!(text.contains("process_uptime{"), "{text}");
    upstream.release_all();
    for request in held {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_metrics_count_responses_by_code() {
    let (_upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.container_concurrency = 1;
    let queue = start(config).await;
    let client = client();
    for _ in 0..3 {
        assert_eq!(get(&client, &queue.url("/"), &[]).await.0, StatusCode::OK);
    }
    let url = format!("http://{}/metrics", queue.user_metrics);
    let mut text = String::new();
    for _ in 0..50 {
        text = get(&client, &url, &[]).await.2;
        if text.contains("response_code=\"200\"") && text.contains("} 3\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("revision_request_count_total{"))
        .unwrap_or_else(|| panic!("no request count in\n{text}"));
    assert!(line.contains("revision_name=\"hello-00001\""), "{line}");
    assert!(line.contains("response_code=\"200\""), "{line}");
    assert!(line.contains("response_code_class=\"2xx\""), "{line}");
    assert!(line.ends_with(" 3"), "{line}");
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_under_load_fails_no_request() {
    let (_upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.drain_quiet_period = Duration::from_millis(500);
    let queue = start(config).await;
    let client = client();
    let not_ready = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    // A load balancer: sends while the readiness probe passes, as Kubernetes Endpoints would.
    let prober = {
        let (client, url, not_ready) = (client.clone(), queue.url("/"), Arc::clone(&not_ready));
        tokio::spawn(async move {
            while !not_ready.load(Ordering::SeqCst) {
                let status = client
                    .request(
                        Request::get(&url)
                            .header("k-network-probe", "queue")
                            .body(Full::default())
                            .unwrap(),
                    )
                    .await
                    .map(|r| r.status());
                if status.is_ok_and(|s| s == StatusCode::SERVICE_UNAVAILABLE) {
                    not_ready.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), queue.url("/sleep?ms=5"));
            let (not_ready, ok, failed) =
                (Arc::clone(&not_ready), Arc::clone(&ok), Arc::clone(&failed));
            tokio::spawn(async move {
                while !not_ready.load(Ordering::SeqCst) {
                    match client
                        .request(Request::get(&url).body(Full::default()).unwrap())
                        .await
                    {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let _ = r.into_body().collect().await;
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Long requests in flight when the drain starts must finish too.
    let long: Vec<_> = (0..3)
        .map(|_| {
            let (client, url) = (client.clone(), queue.url("/sleep?ms=1500"));
            tokio::spawn(async move { get(&client, &url, &[]).await.0 })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let Running {
        shutdown, served, ..
    } = queue;
    shutdown.unwrap().send(()).unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    prober.await.unwrap();
    for request in long {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the proxy stops once drained")
        .unwrap()
        .unwrap();
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) > 10, "load was applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_starts_a_drain_that_fails_probes() {
    let (_upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let client = client();
    let (status, _, body) = get(&client, &format!("http://{}/drain", queue.admin), &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "draining\n"));
    let (status, _, body) = get(&client, &queue.url("/"), &[("k-network-probe", "queue")]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    );
    // Traffic is still served while draining.
    assert_eq!(get(&client, &queue.url("/"), &[]).await.0, StatusCode::OK);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_is_a_400() {
    let (upstream, user) = Upstream::start().await;
    let queue = start(config_for(user)).await;
    let answer = raw_exchange(queue.main, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let answer = raw_exchange(
        queue.main,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
    assert_eq!(get(&client(), &queue.url("/"), &[]).await.0, StatusCode::OK);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_a_431() {
    let (upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.max_header_bytes = 16 * 1024;
    let queue = start(config).await;
    let huge = "a".repeat(100 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Huge: {huge}\r\n\r\n");
    let answer = raw_exchange(queue.main, request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{:?}",
        &answer[..answer.len().min(80)]
    );
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
    assert_eq!(get(&client(), &queue.url("/"), &[]).await.0, StatusCode::OK);
    queue.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (upstream, user) = Upstream::start().await;
    let mut config = config_for(user);
    config.header_read_timeout = Duration::from_millis(300);
    let queue = start(config).await;
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(queue.main).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Partial: ")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is closed");
    assert!(started.elapsed() < Duration::from_secs(3));
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0);
    assert_eq!(get(&client(), &queue.url("/"), &[]).await.0, StatusCode::OK);
    queue.stop().await.unwrap();
}
