//! `knative eventing ping` and `knative eventing apiserver` as the source reconcilers'
//! Deployments run them: no arguments, configured by Knative's adapter environment only
//! (`K_SINK`, `K_CE_OVERRIDES`, `PING_*`, `K_SOURCE_CONFIG`), sending to a sink on loopback.
//! The apiserver adapter watches the real kube-apiserver of `$KUBECONFIG`
//! (`scripts/envtest.sh up`).

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use knative_core::testing::KillOnDrop;
use knative_core::testing::envtest::{TestNamespace, client};
use knative_eventing::delivery::recorder::{Behaviour, Recorder};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// The adapter process; killed when dropped.
type Adapter = KillOnDrop;

fn adapter(kind: &str, env: &[(&str, String)]) -> Adapter {
    let mut command = Command::new(env!("CARGO_BIN_EXE_knative"));
    command
        .args(["eventing", kind])
        .env_remove("K_SINK")
        .env_remove("K_CE_OVERRIDES")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    KillOnDrop::new(command.spawn().expect("running knative"))
}

async fn received(sink: &Recorder) -> Vec<Value> {
    sink.events()
        .await
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[tokio::test]
async fn ping_reads_its_schedule_and_sink_from_the_environment_and_applies_the_overrides() {
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let _adapter = adapter(
        "ping",
        &[
            ("K_SINK", sink.uri.to_string()),
            ("K_CE_OVERRIDES", r#"{"extensions":{"team":"blue"}}"#.into()),
            ("PING_SCHEDULE", "@every 1s".into()),
            ("PING_DATA", "tick".into()),
            (
                "K_SOURCE",
                "/apis/v1/namespaces/demo/pingsources/tick".into(),
            ),
        ],
    );
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1);
    let event = &received(&sink).await[0];
    assert_eq!(event["type"], "dev.knative.sources.ping");
    assert_eq!(event["source"], "/apis/v1/namespaces/demo/pingsources/tick");
    assert_eq!(
        event["team"], "blue",
        "the override is on the event: {event}"
    );
}

#[test]
fn ping_without_k_sink_exits_with_an_error_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(["eventing", "ping"])
        .env_remove("K_SINK")
        .env("PING_SCHEDULE", "@every 1s")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("K_SINK"), "{stderr}");
}

#[tokio::test]
async fn apiserver_reads_knatives_source_config_from_the_environment_and_applies_the_overrides() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "ev-apiserver-cli").await;
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let config = json!({
        "namespaces": [ns.name], "allNamespaces": false,
        "resources": [{"gvr": {"Group": "", "Version": "v1", "Resource": "configmaps"}}],
        "mode": "Reference"
    });
    let _adapter = adapter(
        "apiserver",
        &[
            ("K_SINK", sink.uri.to_string()),
            (
                "K_CE_OVERRIDES",
                r#"{"extensions":{"cluster":"envtest"}}"#.into(),
            ),
            ("K_SOURCE_CONFIG", config.to_string()),
        ],
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"v": "1"}}))
            .unwrap();
    // The adapter may still be starting its watch: an existing object is an add as well.
    maps.create(&PostParams::default(), &map).await.unwrap();
    let subject = format!("/api/v1/namespaces/{}/configmaps/settings", ns.name);
    let mut event = None;
    for _ in 0..200 {
        event = received(&sink)
            .await
            .into_iter()
            .find(|e| e["subject"] == subject.as_str());
        if event.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event = event.expect("an event for the ConfigMap within 20 s");
    assert_eq!(event["type"], "dev.knative.apiserver.ref.add");
    assert_eq!(
        event["cluster"], "envtest",
        "the override is on the event: {event}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn channel_without_a_file_serves_the_in_memory_channels_of_the_api_server() {
    let client = client().await;
    let crds = Api::<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    >::all(client.clone());
    for crd in knative_eventing::crds() {
        let name = kube::ResourceExt::name_any(&crd);
        crds.patch(
            &name,
            &kube::api::PatchParams::apply("knative-eventing-cli-test").force(),
            &kube::api::Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    let ns = TestNamespace::create(&client, "ev-imc-cli").await;
    let sink = Recorder::start(Behaviour::default()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _dispatcher = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_knative"));
        command
            .args([
                "eventing",
                "channel",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--namespace", &ns.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        KillOnDrop::new(command.spawn().unwrap())
    };
    let imc: knative_eventing::apis::InMemoryChannel = serde_json::from_value(json!({
        "apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
        "metadata": {"name": "orders", "namespace": ns.name},
        "spec": {"subscribers": [{"uid": "s1", "subscriberUri": sink.uri.to_string()}]}
    }))
    .unwrap();
    Api::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &imc)
        .await
        .unwrap();
    let event = knative_eventing::delivery::codec::from_json(
        json!({"specversion": "1.0", "id": "o-1", "source": "/shop", "type": "order.placed"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let channel: http::Uri = format!("http://127.0.0.1:{port}/{}/orders", ns.name)
        .parse()
        .unwrap();
    // Until the dispatcher has read the channel, it answers 404, which delivery retries.
    let policy = knative_eventing::delivery::DeliveryPolicy {
        retry: knative_eventing::delivery::RetryPolicy {
            retry: 50,
            backoff: knative_eventing::delivery::Backoff::Linear,
            delay: Duration::from_millis(20),
            ..Default::default()
        },
        ..Default::default()
    };
    let outcome = knative_eventing::delivery::Dispatcher::new()
        .deliver(&event, &channel, &policy)
        .await;
    assert!(
        matches!(
            outcome,
            knative_eventing::delivery::Outcome::Delivered { .. }
        ),
        "{outcome:?}"
    );
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await, 1);
    assert_eq!(received(&sink).await[0]["id"], "o-1");
    ns.delete().await;
}
