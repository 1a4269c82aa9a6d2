//! The source adapters run from the environment the source reconcilers give their Deployments,
//! against a real kube-apiserver (see `scripts/envtest.sh`): the PingSource and ApiServerSource
//! reconcilers create the adapter Deployments, and the adapters, configured by nothing but the
//! environment of those Deployments' containers (`K_SINK`, `K_CE_OVERRIDES`, `PING_*`,
//! `K_SOURCE_CONFIG`), deliver events to a sink on loopback with the overrides applied.

use std::time::Duration;

use cloudevents::AttributesReader;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use knative_core::reconciler::{Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client, install_crds};
use knative_eventing::apis::{ApiServerSource, PingSource};
use knative_eventing::delivery::Dispatcher;
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use knative_eventing::reconciler::sources::{
    AdapterImages, ApiServerSourceReconciler, PingSourceReconciler,
};
use knative_eventing::sources::apiserver::ApiServerAdapter;
use knative_eventing::sources::ping::{PING_EVENT_TYPE, PingAdapter};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::OnceCell;

async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        install_crds(
            &client,
            "knative-eventing-envtest",
            &knative_eventing::crds(),
        )
        .await;
    })
    .await;
    client
}

/// The environment of the first container of Deployment `name`, once the reconciler made it.
async fn adapter_env(client: &Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    for _ in 0..300 {
        if let Some(deployment) = api.get_opt(name).await.unwrap() {
            let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
            return container
                .env
                .iter()
                .flatten()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the reconciler made no Deployment {name}");
}

fn lookup(env: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn run_driver<K, R>(client: &Client, namespace: &str, reconciler: R) -> tokio::task::JoinHandle<()>
where
    K: knative_core::apis::KnativeObject + kube::Resource<DynamicType = ()>,
    R: knative_core::reconciler::Reconciler<K>,
{
    let driver = Driver::with_options(
        client.clone(),
        reconciler,
        DriverOptions {
            namespace: Some(namespace.to_owned()),
            ..DriverOptions::for_kind::<K>()
        },
    );
    tokio::spawn(async move {
        let _ = driver.run().await;
    })
}

#[tokio::test]
async fn a_ping_source_deployment_environment_runs_an_adapter_that_applies_the_overrides() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-ping-env").await;
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let reconciling = run_driver::<PingSource, _>(
        &client,
        &ns.name,
        PingSourceReconciler::new(AdapterImages::default()),
    );
    let source: PingSource = serde_json::from_value(json!({
        "apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
        "metadata": {"name": "heartbeat", "namespace": ns.name},
        "spec": {"schedule": "@every 1s", "contentType": "application/json",
                 "data": "{\"beat\": 1}",
                 "ceOverrides": {"extensions": {"team": "blue"}},
                 "sink": {"uri": sink.uri.to_string()}}
    }))
    .unwrap();
    Api::<PingSource>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let env = adapter_env(&client, &ns.name, "pingsource-heartbeat").await;
    reconciling.abort();

    let adapter = PingAdapter::from_env(lookup(env)).expect("the Deployment's env configures ping");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        adapter
            .run(&Dispatcher::new(), async move {
                let _ = stopped.await;
            })
            .await;
    });
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1);
    let _ = stop.send(());
    running.await.unwrap();

    let event = &sink.events().await[0];
    assert_eq!(event.ty(), PING_EVENT_TYPE);
    assert_eq!(
        event.source().as_str(),
        format!("/apis/v1/namespaces/{}/pingsources/heartbeat", ns.name)
    );
    assert_eq!(event.extension("team").unwrap().to_string(), "blue");
    assert_eq!(event.datacontenttype(), Some("application/json"));
    let data = match event.data() {
        Some(cloudevents::Data::Json(json)) => json.clone(),
        Some(cloudevents::Data::Binary(bytes)) => serde_json::from_slice(bytes).unwrap(),
        other => panic!("JSON data expected, got {other:?}"),
    };
    assert_eq!(data, json!({"beat": 1}));
    ns.delete().await;
}

#[tokio::test]
async fn an_api_server_source_deployment_environment_runs_an_adapter_that_applies_the_overrides() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-apiserver-env").await;
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let reconciling = run_driver::<ApiServerSource, _>(
        &client,
        &ns.name,
        ApiServerSourceReconciler::new(AdapterImages::default()),
    );
    let source: ApiServerSource = serde_json::from_value(json!({
        "apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource",
        "metadata": {"name": "config-watch", "namespace": ns.name},
        "spec": {"mode": "Resource", "serviceAccountName": "default",
                 "resources": [{"apiVersion": "v1", "kind": "ConfigMap",
                                "selector": {"matchLabels": {"watched": "yes"}}}],
                 "ceOverrides": {"extensions": {"cluster": "envtest"}},
                 "sink": {"uri": sink.uri.to_string()}}
    }))
    .unwrap();
    Api::<ApiServerSource>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let env = adapter_env(&client, &ns.name, "apiserversource-config-watch").await;
    reconciling.abort();

    let adapter = ApiServerAdapter::from_env(lookup(env), "https://127.0.0.1")
        .expect("the Deployment's env configures the adapter");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let client = client.clone();
        tokio::spawn(async move {
            adapter
                .run(client, &Dispatcher::new(), async move {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    for (name, watched) in [("ignored", "no"), ("settings", "yes")] {
        let map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"watched": watched}}, "data": {"v": "1"}
        }))
        .unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
    }
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();

    let events = sink.events().await;
    assert_eq!(events.len(), 1, "only the labelled ConfigMap: {events:?}");
    assert_eq!(events[0].ty(), "dev.knative.apiserver.resource.add");
    assert_eq!(
        events[0].subject(),
        Some(format!("/api/v1/namespaces/{}/configmaps/settings", ns.name).as_str())
    );
    assert_eq!(
        events[0].extension("cluster").unwrap().to_string(),
        "envtest"
    );
    ns.delete().await;
}

#[tokio::test]
async fn the_multi_tenant_ping_adapter_runs_each_ping_source_it_reads_from_the_api_server() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "ev-mt-ping").await;
    let (blue, green) = (
        Recorder::start(Behaviour::default()).await.unwrap(),
        Recorder::start(Behaviour::default()).await.unwrap(),
    );
    let api = Api::<PingSource>::namespaced(client.clone(), &ns.name);
    for (name, sink) in [("blue", &blue), ("green", &green)] {
        let source: PingSource = serde_json::from_value(json!({
            "apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": name, "namespace": ns.name},
            "spec": {"schedule": "@every 1s", "data": name,
                     "ceOverrides": {"extensions": {"team": name}},
                     "sink": {"uri": sink.uri.to_string()}}
        }))
        .unwrap();
        api.create(&PostParams::default(), &source).await.unwrap();
    }
    let adapter = tokio::spawn(knative_eventing::sources::ping::run_from_api_server(
        client.clone(),
        Some(ns.name.clone()),
        Dispatcher::new(),
    ));

    for (name, sink) in [("blue", &blue), ("green", &green)] {
        assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1, "{name}");
        let event = &sink.events().await[0];
        assert_eq!(
            event.source().as_str(),
            format!("/apis/v1/namespaces/{}/pingsources/{name}", ns.name)
        );
        assert_eq!(event.extension("team").unwrap().to_string(), name);
    }
    adapter.abort();
    ns.delete().await;
}
