//! The activator against a real kube-apiserver (see `scripts/envtest.sh`): it learns a
//! Revision's containerConcurrency from the Revision and its backends from the Endpoints of the
//! Revision's private Service, buffering requests until those list a ready address.
//!
//! Endpoints may not hold loopback addresses, so the upstream listens on this machine's first
//! non-loopback address (from `hostname -I`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::Revision;
use knative_serving::dataplane::activator::{Activator, ActivatorConfig, RevisionKey, cluster};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use tokio::net::TcpListener;

async fn install_crds() -> Client {
    static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-activator-envtest").force();
        for crd in knative_serving::crds() {
            let name = crd.name_any();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install {name}: {e}"));
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .expect("CRD established in 30 s")
                .unwrap();
        }
    })
    .await;
    client
}

fn host_ip() -> IpAddr {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("a non-loopback IPv4 address for the upstream")
}

/// A backend that takes 20 ms per request and records the most it served at once.
async fn upstream(ip: IpAddr, peak: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let current = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (current, peak) = (current.clone(), peak.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let (current, peak) = (current.clone(), peak.clone());
                    async move {
                        peak.fetch_max(
                            current.fetch_add(1, Ordering::SeqCst) + 1,
                            Ordering::SeqCst,
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        current.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn create<K>(client: &Client, ns: &str, value: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_the_private_endpoints_and_respect_the_revisions_concurrency() {
    let client = install_crds().await;
    let ns = TestNamespace::create(&client, "activator").await;
    let peak = Arc::new(AtomicUsize::new(0));
    let upstream = upstream(host_ip(), peak.clone()).await;
    let labels = serde_json::json!({
        "serving.knative.dev/revision": "hello-00001",
        "networking.knative.dev/serviceType": "Private",
    });
    let _: Revision = create(&client, &ns.name, serde_json::json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": "hello-00001"},
        "spec": {"containerConcurrency": 1, "containers": [{"image": "ghcr.io/knative/helloworld-go"}]},
    }))
    .await;
    let _: Service = create(
        &client,
        &ns.name,
        serde_json::json!({
            "metadata": {"name": "hello-00001-private", "labels": labels},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8012}]},
        }),
    )
    .await;
    let _: Endpoints = create(
        &client,
        &ns.name,
        serde_json::json!({
            "metadata": {"name": "hello-00001-private", "labels": labels},
        }),
    )
    .await;

    let (stats, mut pushed) = tokio::sync::mpsc::unbounded_channel();
    let activator = Activator::new(ActivatorConfig::default(), Arc::new(stats));
    let watching = tokio::spawn(cluster::watch(
        activator.clone(),
        client.clone(),
        Some(ns.name.clone()),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(activator.clone().serve(listener, std::future::pending()));
    let hello = RevisionKey::new(ns.name.clone(), "hello-00001");
    eventually("the Revision to be known", || {
        activator.throttler(&hello).is_some()
    })
    .await;

    let http: HttpClient<_, Empty<Bytes>> = HttpClient::builder(TokioExecutor::new()).build_http();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let req = Request::get(format!("http://{addr}/"))
                .header("knative-serving-namespace", &ns.name)
                .header("knative-serving-revision", "hello-00001")
                .body(Empty::new())
                .unwrap();
            let http = http.clone();
            tokio::spawn(async move {
                let response = http.request(req).await.unwrap();
                let status = response.status();
                let _ = response.into_body().collect().await;
                status
            })
        })
        .collect();
    let throttler = activator.throttler(&hello).unwrap();
    eventually("20 requests to wait", || throttler.waiting() == 20).await;
    let first = pushed.recv().await.unwrap();
    assert_eq!(
        first.messages[0].namespace, ns.name,
        "the first request was reported at once"
    );

    // The revision's pod becomes ready: its address appears in the private Endpoints.
    let ready = serde_json::json!({
        "subsets": [{
            "addresses": [{"ip": upstream.ip().to_string()}],
            "ports": [{"name": "http", "port": upstream.port()}],
        }],
    });
    Api::<Endpoints>::namespaced(client.clone(), &ns.name)
        .patch(
            "hello-00001-private",
            &PatchParams::default(),
            &Patch::Merge(&ready),
        )
        .await
        .unwrap();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "containerConcurrency 1 holds"
    );

    serving.abort();
    watching.abort();
    ns.delete().await;
}
