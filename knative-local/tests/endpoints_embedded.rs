//! The Endpoints controller against the embedded API server (a real API server in the test's
//! process): what it writes as Pods come, turn ready and go.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use knative_core::testing::embedded::{ApiServer, RunningApiServer};
use knative_core::testing::envtest::eventually_within;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const NS: &str = "default";

async fn start() -> (RunningApiServer, kube::Client) {
    let server = ApiServer::builder().in_memory().start().await.unwrap();
    let client = server.client();
    (server, client)
}

async fn create_service(client: &kube::Client) {
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "hello", "namespace": NS },
        "spec": { "selector": { "app": "hello" }, "ports": [{ "name": "http", "port": 80, "targetPort": 8012 }] },
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

/// Creates a Pod of the Service with `ip` and the given readiness, as a kubelet reports it.
async fn create_pod(client: &kube::Client, name: &str, ip: &str, ready: bool) {
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": NS, "labels": { "app": "hello" } },
        "spec": { "containers": [{ "name": "user", "image": "local:///bin/true" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    set_ready(client, name, ip, ready).await;
}

async fn set_ready(client: &kube::Client, name: &str, ip: &str, ready: bool) {
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let mut pod = pods.get(name).await.unwrap();
    pod.status = Some(
        serde_json::from_value(json!({
            "podIP": ip,
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
        }))
        .unwrap(),
    );
    pods.replace_status(name, &PostParams::default(), &pod)
        .await
        .unwrap();
}

/// The (ready, not ready) IPs of the Service's Endpoints, once they satisfy `want`.
async fn endpoints_when(
    client: &kube::Client,
    want: impl Fn(&[String], &[String]) -> bool,
) -> Option<(Vec<String>, Vec<String>)> {
    let api = Api::<Endpoints>::namespaced(client.clone(), NS);
    eventually_within(Duration::from_secs(10), async || {
        let endpoints = api.get_opt("hello").await.ok()??;
        let ips = |ready: bool| -> Vec<String> {
            endpoints
                .subsets
                .iter()
                .flatten()
                .flat_map(|s| {
                    if ready {
                        s.addresses.iter().flatten()
                    } else {
                        s.not_ready_addresses.iter().flatten()
                    }
                })
                .map(|a| a.ip.clone())
                .collect()
        };
        let (ready, not_ready) = (ips(true), ips(false));
        want(&ready, &not_ready).then_some((ready, not_ready))
    })
    .await
}

#[tokio::test]
async fn pods_that_existed_before_the_controller_started_are_in_its_first_endpoints() {
    let (server, client) = start().await;
    create_service(&client).await;
    create_pod(&client, "a", "127.0.0.2", true).await;
    create_pod(&client, "b", "127.0.0.3", false).await;
    let controller = tokio::spawn(knative_local::endpoints::run(client.clone(), None));
    let seen = endpoints_when(&client, |ready, not_ready| {
        !ready.is_empty() || !not_ready.is_empty()
    })
    .await;
    assert_eq!(
        seen,
        Some((vec!["127.0.0.2".to_owned()], vec!["127.0.0.3".to_owned()]))
    );
    controller.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_pod_turning_ready_moves_to_the_ready_addresses_and_a_deleted_one_leaves() {
    let (server, client) = start().await;
    let controller = tokio::spawn(knative_local::endpoints::run(client.clone(), None));
    create_service(&client).await;
    create_pod(&client, "a", "127.0.0.2", false).await;
    let not_ready = endpoints_when(&client, |_, not_ready| !not_ready.is_empty()).await;
    assert_eq!(not_ready, Some((vec![], vec!["127.0.0.2".to_owned()])));

    set_ready(&client, "a", "127.0.0.2", true).await;
    let ready = endpoints_when(&client, |ready, _| !ready.is_empty()).await;
    assert_eq!(ready, Some((vec!["127.0.0.2".to_owned()], vec![])));

    Api::<Pod>::namespaced(client.clone(), NS)
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let gone = endpoints_when(&client, |ready, not_ready| {
        ready.is_empty() && not_ready.is_empty()
    })
    .await;
    assert_eq!(gone, Some((vec![], vec![])));
    controller.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn endpoints_someone_else_overwrote_are_written_back() {
    let (server, client) = start().await;
    let controller = tokio::spawn(knative_local::endpoints::run(client.clone(), None));
    create_service(&client).await;
    create_pod(&client, "a", "127.0.0.2", true).await;
    endpoints_when(&client, |ready, _| !ready.is_empty())
        .await
        .expect("the ready pod listed");

    let api = Api::<Endpoints>::namespaced(client.clone(), NS);
    let mut endpoints = api.get("hello").await.unwrap();
    endpoints.subsets = None;
    api.replace("hello", &PostParams::default(), &endpoints)
        .await
        .unwrap();
    let restored = endpoints_when(&client, |ready, _| !ready.is_empty()).await;
    assert_eq!(restored, Some((vec!["127.0.0.2".to_owned()], vec![])));
    controller.abort();
    server.shutdown().await;
}
