//! The metric collector against real HTTP stat servers on loopback: queue-proxy stand-ins on
//! 127.0.0.x serving Knative's protobuf `Stat` (or Prometheus text, or errors), scraped by the
//! collector into real KPA deciders; and the activator's stat push endpoint, served and called
//! over HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use knative_core::config::AutoscalerConfig;
use knative_serving::autoscaler::collector::{
    Collector, HttpScraper, PodSource, ScrapeError, ScrapeTargets, serve_stat_push,
};
use knative_serving::autoscaler::deciders::{Deciders, RevisionKey};
use knative_serving::autoscaler::wire::{WireStat, WireStatMessage, WireStatMessages};
use knative_serving::autoscaler::{AutoscalerParams, AutoscalerRegistry};
use prost::Message;
use serde_json::json;
use tokio::net::TcpListener;

/// What a stand-in queue-proxy answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// A protobuf stat of this concurrency.
    Protobuf(f64),
    /// Prometheus text with this concurrency.
    Text(f64),
    /// HTTP 500.
    Fail,
}

/// A stand-in queue-proxy and how often it was scraped.
struct StatServer {
    ip: String,
    hits: Arc<AtomicUsize>,
}

/// Stat servers on 127.0.0.1, 127.0.0.2, ... all on one port, each answering as told.
async fn stat_servers(answers: &[Answer]) -> (u16, Vec<StatServer>) {
    'attempt: for _ in 0..10 {
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for i in 2..=answers.len() {
            match TcpListener::bind(format!("127.0.0.{i}:{port}")).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'attempt,
            }
        }
        let mut servers = Vec::new();
        for (i, (listener, answer)) in listeners.into_iter().zip(answers).enumerate() {
            let hits = Arc::new(AtomicUsize::new(0));
            tokio::spawn(serve(listener, *answer, Arc::clone(&hits)));
            servers.push(StatServer {
                ip: format!("127.0.0.{}", i + 1),
                hits,
            });
        }
        return (port, servers);
    }
    panic!("no free port on 127.0.0.x");
}

async fn serve(listener: TcpListener, answer: Answer, hits: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let hits = Arc::clone(&hits);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                hits.fetch_add(1, Ordering::SeqCst);
                let accept = req
                    .headers()
                    .get("accept")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                async move { Ok::<_, Infallible>(respond(answer, accept.as_deref())) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(answer: Answer, accept: Option<&str>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match answer {
        Answer::Protobuf(concurrency) => {
            assert_eq!(
                accept,
                Some("application/protobuf"),
                "the scraper asks for protobuf"
            );
            let stat = WireStat {
                pod_name: "pod".into(),
                average_concurrent_requests: concurrency,
                request_count: concurrency * 10.0,
                process_uptime: 100.0,
                ..WireStat::default()
            };
            (StatusCode::OK, "application/protobuf", stat.encode_to_vec())
        }
        Answer::Text(concurrency) => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            format!(
                "# TYPE queue_average_concurrent_requests gauge\n\
                 queue_average_concurrent_requests{{destination_pod=\"pod\"}} {concurrency}\n\
                 queue_requests_per_second{{destination_pod=\"pod\"}} 4\n"
            )
            .into_bytes(),
        ),
        Answer::Fail => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            b"boom".to_vec(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn targets(servers: &[StatServer]) -> ScrapeTargets {
    ScrapeTargets {
        ready_pods: servers.len() as i32,
        ips: servers.iter().map(|s| s.ip.clone()).collect(),
    }
}

fn hits(servers: &[StatServer]) -> Vec<usize> {
    servers
        .iter()
        .map(|s| s.hits.load(Ordering::SeqCst))
        .collect()
}

#[tokio::test]
async fn a_pod_is_scraped_for_its_protobuf_stat() {
    let (port, servers) = stat_servers(&[Answer::Protobuf(2.5)]).await;
    let stat = HttpScraper::new(port)
        .scrape_pod(&servers[0].ip)
        .await
        .unwrap();
    assert_eq!(stat.average_concurrent_requests, 2.5);
    assert_eq!(stat.request_count, 25.0);
    assert_eq!(stat.process_uptime, 100.0);
}

#[tokio::test]
async fn a_pod_speaking_prometheus_text_is_scraped_too() {
    let (port, servers) = stat_servers(&[Answer::Text(1.5)]).await;
    let stat = HttpScraper::new(port)
        .scrape_pod(&servers[0].ip)
        .await
        .unwrap();
    assert_eq!(stat.average_concurrent_requests, 1.5);
    assert_eq!(stat.request_count, 4.0);
}

#[tokio::test]
async fn a_failing_pod_is_an_error_naming_its_url() {
    let (port, servers) = stat_servers(&[Answer::Fail]).await;
    let err = HttpScraper::new(port)
        .scrape_pod(&servers[0].ip)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("GET http://127.0.0.1:{port}/metrics: status 500")
    );
}

#[tokio::test]
async fn a_small_revision_is_scraped_whole() {
    let (port, servers) = stat_servers(&[
        Answer::Protobuf(1.0),
        Answer::Protobuf(2.0),
        Answer::Protobuf(6.0),
    ])
    .await;
    let stat = HttpScraper::new(port)
        .scrape_revision(&targets(&servers))
        .await
        .unwrap()
        .expect("a stat");
    assert_eq!(stat.average_concurrent_requests, 9.0);
    assert_eq!(hits(&servers), [1, 1, 1]);
}

#[tokio::test]
async fn a_large_revision_is_sampled_and_scaled_to_all_its_pods() {
    let (port, servers) = stat_servers(&[Answer::Protobuf(3.0); 10]).await;
    let stat = HttpScraper::new(port)
        .scrape_revision(&targets(&servers))
        .await
        .unwrap()
        .expect("a stat");
    // 3 per pod over 10 ready pods, from a sample of Knative's size for 10: 7 pods.
    assert_eq!(stat.average_concurrent_requests, 30.0);
    assert_eq!(hits(&servers).iter().sum::<usize>(), 7);
    assert_eq!(
        hits(&servers)[..7],
        [1; 7],
        "the oldest pods (first) are the sample"
    );
}

#[tokio::test]
async fn a_failing_pod_is_replaced_by_the_next() {
    let (port, servers) = stat_servers(&[
        Answer::Fail,
        Answer::Protobuf(2.0),
        Answer::Protobuf(2.0),
        Answer::Protobuf(2.0),
        Answer::Protobuf(2.0),
    ])
    .await;
    // 5 pods: a sample of 4, the failed one replaced by the fifth.
    let stat = HttpScraper::new(port)
        .scrape_revision(&targets(&servers))
        .await
        .unwrap()
        .expect("a stat");
    assert_eq!(stat.average_concurrent_requests, 10.0);
    assert_eq!(hits(&servers), [1, 1, 1, 1, 1]);
}

#[tokio::test]
async fn too_few_answers_record_nothing() {
    let (port, servers) = stat_servers(&[Answer::Fail, Answer::Protobuf(2.0)]).await;
    let err = HttpScraper::new(port)
        .scrape_revision(&targets(&servers))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ScrapeError::PodsExhausted {
                scraped: 1,
                wanted: 2
            }
        ),
        "{err}"
    );
    let (port, servers) = stat_servers(&[Answer::Fail, Answer::Fail]).await;
    let err = HttpScraper::new(port)
        .scrape_revision(&targets(&servers))
        .await
        .unwrap_err();
    assert!(matches!(err, ScrapeError::NoPodsScraped(_)), "{err}");
}

#[tokio::test]
async fn a_revision_without_ready_pods_is_not_scraped() {
    let scraped = HttpScraper::new(1)
        .scrape_revision(&ScrapeTargets::default())
        .await
        .unwrap();
    assert_eq!(scraped, None);
}

/// Pods known to the collector, as a reflector would hold them.
struct Pods(Vec<Arc<Pod>>);

impl PodSource for Pods {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.0.clone()
    }
}

fn pod(name: &str, revision: &str, ip: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": {"serving.knative.dev/revision": revision},
            },
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap(),
    )
}

async fn deciders_of(keys: &[&RevisionKey]) -> Deciders {
    let deciders = Deciders::new(AutoscalerRegistry::default());
    let config = AutoscalerConfig::default();
    let annotations = Default::default();
    for key in keys {
        deciders
            .reconcile(
                key,
                &AutoscalerParams::new(&annotations, &config, Timestamp::now()),
            )
            .await
            .unwrap();
    }
    deciders
}

#[tokio::test]
async fn collection_feeds_each_revisions_decider_from_its_own_pods() {
    let (port, servers) = stat_servers(&[
        Answer::Protobuf(100.0),
        Answer::Protobuf(40.0),
        Answer::Fail,
    ])
    .await;
    let busy = RevisionKey::new("default", "busy-00001");
    let calm = RevisionKey::new("default", "calm-00001");
    let broken = RevisionKey::new("default", "broken-00001");
    let idle = RevisionKey::new("default", "idle-00001");
    let deciders = deciders_of(&[&busy, &calm, &broken, &idle]).await;
    let pods = Pods(vec![
        pod("busy-a", "busy-00001", &servers[0].ip),
        pod("calm-a", "calm-00001", &servers[1].ip),
        pod("broken-a", "broken-00001", &servers[2].ip),
    ]);
    let collector = Collector::new(deciders.clone(), HttpScraper::new(port), pods);

    let now = Timestamp::now();
    let report = collector.collect_once(now).await;
    let mut recorded = report.recorded.clone();
    recorded.sort();
    assert_eq!(recorded, [busy.clone(), calm.clone()]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, broken);

    deciders.tick(now).await;
    // One ready pod each: 100 in flight needs 2 pods at 70, 40 needs 1.
    assert_eq!(deciders.status(&busy).await.unwrap().desired_scale, 2);
    assert_eq!(deciders.status(&calm).await.unwrap().desired_scale, 1);
    assert_eq!(deciders.status(&idle).await.unwrap().desired_scale, -1);
}

async fn post(
    addr: SocketAddr,
    method: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}/stats"))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.expect("a response");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn push(key: &RevisionKey, concurrency: Option<f64>) -> Vec<u8> {
    WireStatMessages {
        messages: vec![WireStatMessage {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            stat: concurrency.map(|c| WireStat {
                pod_name: "activator-0".into(),
                average_concurrent_requests: c,
                ..WireStat::default()
            }),
        }],
    }
    .encode_to_vec()
}

#[tokio::test]
async fn a_pushed_request_to_a_revision_at_zero_scales_it_at_once() {
    let key = RevisionKey::new("default", "cold-00001");
    let deciders = deciders_of(&[&key]).await;
    // The revision went to zero: idle, no pods.
    let now = Timestamp::now();
    deciders
        .record(
            &key,
            now,
            &knative_serving::autoscaler::metrics::Stat::concurrency(0.0),
        )
        .await;
    deciders.tick(now).await;
    assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 0);
    let mut changes = deciders.subscribe();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_stat_push(listener, deciders.clone(), async {
        let _ = stopped.await;
    }));

    let (status, _) = post(addr, "POST", "application/protobuf", push(&key, Some(1.0))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        changes.try_recv().unwrap(),
        key,
        "decided without waiting for a tick"
    );
    assert_eq!(deciders.status(&key).await.unwrap().desired_scale, 1);

    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn bad_pushes_get_clear_client_errors() {
    let key = RevisionKey::new("default", "hello-00001");
    let deciders = deciders_of(&[&key]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_stat_push(listener, deciders, std::future::pending()));

    let (status, body) = post(addr, "POST", "application/protobuf", vec![0xff, 0xff]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("malformed stat messages"), "{body}");

    let (status, body) = post(addr, "POST", "application/protobuf", push(&key, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "messages[0]: stat is missing\n");

    let (status, _) = post(addr, "POST", "application/json", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, _) = post(addr, "GET", "application/protobuf", Vec::new()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let (status, _) = post(addr, "POST", "application/protobuf", vec![0; 2 << 20]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn stats_of_unknown_revisions_are_counted_as_dropped() {
    let deciders = deciders_of(&[]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_stat_push(listener, deciders, std::future::pending()));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{addr}/stats"))
        .header("content-type", "application/protobuf")
        .body(Full::new(Bytes::from(push(
            &RevisionKey::new("default", "gone-00001"),
            Some(1.0),
        ))))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["x-dropped"], "1");
}
