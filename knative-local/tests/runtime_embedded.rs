//! The process runtime against the embedded API server: Pods whose images name local
//! executables run as processes.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use knative_core::testing::embedded::ApiServer;
use knative_local::runtime::{ProcessRuntime, RuntimeConfig};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

/// A Pod running `/bin/sh -c script` with `grace` seconds to stop.
fn shell_pod(name: &str, script: &str, grace: i64) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [{ "name": "c", "image": "local:///bin/sh", "args": ["-c", script] }],
        },
    }))
    .unwrap()
}

fn running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Running")
}

async fn wait_running(pods: &Api<Pod>, name: &str, patience: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < patience {
        if pods
            .get_opt(name)
            .await
            .unwrap()
            .is_some_and(|p| running(&p))
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_pod_that_takes_its_grace_period_to_stop_does_not_hold_up_a_new_pod() {
    let server = ApiServer::builder().in_memory().start().await.unwrap();
    let client = server.client();
    let logs = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::spawn(
        ProcessRuntime::new(client.clone(), RuntimeConfig::new("test-node", logs.path())).run(
            async move {
                let _ = stopped.await;
            },
        ),
    );
    let pods: Api<Pod> = Api::namespaced(client, "default");

    // SIGTERM ignored (and inherited by sleep): stopping it takes the whole grace period.
    pods.create(
        &PostParams::default(),
        &shell_pod("stubborn", "trap '' TERM; sleep 60", 4),
    )
    .await
    .unwrap();
    wait_running(&pods, "stubborn", Duration::from_secs(10))
        .await
        .expect("the first pod runs");
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    // Let the runtime begin stopping it before the next Pod comes.
    tokio::time::sleep(Duration::from_millis(200)).await;

    pods.create(&PostParams::default(), &shell_pod("next", "sleep 60", 0))
        .await
        .unwrap();
    let took = wait_running(&pods, "next", Duration::from_secs(3)).await;
    assert!(
        took.is_some(),
        "the new pod waited for the old one's grace period"
    );

    let _ = stop.send(());
    runtime.await.unwrap().unwrap();
    server.shutdown().await;
}
