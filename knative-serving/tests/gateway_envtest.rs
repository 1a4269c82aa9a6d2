//! The gateway against a real kube-apiserver (see `scripts/envtest.sh`): an Ingress applied to
//! the cluster is served through its Kubernetes Service's Endpoints, and its status becomes
//! Ready with the gateway as load balancer; a deleted Ingress stops being served.
//!
//! Endpoints may not hold loopback addresses, so the upstream listens on this machine's first
//! non-loopback address (from `hostname -I`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_core::reconciler::{Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client};
use knative_serving::apis::Ingress;
use knative_serving::dataplane::gateway::Gateway;
use knative_serving::dataplane::gateway::cluster::{ClusterResolver, IngressReconciler};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use tokio::net::TcpListener;

const HOST: &str = "hello.envtest.example.com";
const LOAD_BALANCER: &str = "knative-gateway.knative-serving.svc.cluster.local";

async fn install_crds() -> Client {
    static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-gateway-envtest").force();
        for crd in knative_serving::crds() {
            let name = crd.name_any();
            api.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install {}: {e}", crd.name_any()));
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

async fn upstream(ip: IpAddr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let revision = req
                        .headers()
                        .get("knative-serving-revision")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        format!("served revision={revision}"),
                    ))))
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

async fn get(gateway: SocketAddr) -> (StatusCode, String) {
    let client: HttpClient<_, Empty<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let req = Request::get(format!("http://{gateway}/"))
        .header("host", HOST)
        .body(Empty::new())
        .unwrap();
    let response = client.request(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_on_the_cluster_is_served_and_becomes_ready() {
    let client = install_crds().await;
    let ns = TestNamespace::create(&client, "gateway").await;
    let upstream = upstream(host_ip()).await;

    // The revision's Service, without selector so the endpoints controller leaves its
    // Endpoints to us (no kubelet runs pods here).
    let _: Service = create(
        &client,
        &ns.name,
        serde_json::json!({
            "metadata": {"name": "hello-00001"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8012}]},
        }),
    )
    .await;
    let _: Endpoints = create(
        &client,
        &ns.name,
        serde_json::json!({
            "metadata": {"name": "hello-00001"},
            "subsets": [{
                "addresses": [{"ip": upstream.ip().to_string()}],
                "ports": [{"name": "http", "port": upstream.port()}],
            }],
        }),
    )
    .await;

    let (resolver, watching) = ClusterResolver::start(client.clone(), Some(&ns.name));
    let watching = tokio::spawn(watching);
    let gateway = Gateway::new(resolver);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(gateway.clone().serve(listener, std::future::pending()));
    let reconciler = IngressReconciler::new(
        gateway,
        "gateway.knative-rs.dev",
        LOAD_BALANCER,
        LOAD_BALANCER,
    );
    let options = DriverOptions {
        namespace: Some(ns.name.clone()),
        ..DriverOptions::for_kind::<Ingress>()
    };
    let driver_client = client.clone();
    let driver = tokio::spawn(async move {
        let _ = Driver::with_options(driver_client, reconciler, options)
            .run()
            .await;
    });

    let ingresses = Api::<Ingress>::namespaced(client.clone(), &ns.name);
    let _: Ingress = create(
        &client,
        &ns.name,
        serde_json::json!({
            "apiVersion": "networking.internal.knative.dev/v1alpha1",
            "kind": "Ingress",
            "metadata": {
                "name": "hello",
                "annotations": {"networking.knative.dev/ingress.class": "gateway.knative-rs.dev"},
            },
            "spec": {"rules": [{
                "hosts": [HOST],
                "visibility": "ExternalIP",
                "http": {"paths": [{"splits": [{
                    "serviceNamespace": ns.name, "serviceName": "hello-00001", "servicePort": 80,
                    "percent": 100,
                    "appendHeaders": {"Knative-Serving-Revision": "hello-00001"},
                }]}]},
            }]},
        }),
    )
    .await;

    let ready = eventually("the Ingress to become Ready", async || {
        let ingress = ingresses.get("hello").await.ok()?;
        let ready =
            ingress.status.as_ref()?.status.conditions.iter().any(|c| {
                c.type_ == "Ready" && c.status == knative_core::apis::ConditionStatus::True
            });
        ready.then_some(ingress)
    })
    .await;
    let status = ready.status.unwrap();
    assert_eq!(
        status.public_load_balancer.unwrap().ingress[0]
            .domain_internal
            .as_deref(),
        Some(LOAD_BALANCER)
    );
    assert_eq!(status.status.observed_generation, ready.metadata.generation);

    let (code, body) = eventually("the Ingress to be served", async || {
        let (code, body) = get(gateway_addr).await;
        (code == StatusCode::OK).then_some((code, body))
    })
    .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::OK, "served revision=hello-00001")
    );

    ingresses
        .delete("hello", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted Ingress to stop being served", async || {
        (get(gateway_addr).await.0 == StatusCode::NOT_FOUND).then_some(())
    })
    .await;

    driver.abort();
    serving.abort();
    watching.abort();
    ns.delete().await;
}
