//! `hello` as a Deployment on the real API server, run by knative-local's process runtime
//! (the test environment's kube-controller-manager creates the Pods; there is no kubelet, the
//! runtime is it): both replicas run as processes on their own loopback addresses, answer and
//! are Ready; a killed process is restarted; scaling to zero stops them; a Pod with a registry
//! image is left alone. (A real API server refuses loopback addresses in Endpoints, so Services
//! over these Pods get no Endpoints there; the embedded API server accepts them.)

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use knative_core::testing::envtest::{TestNamespace, client};
use knative_local::runtime::{ProcessRuntime, RuntimeConfig};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const HELLO: &str = env!("CARGO_BIN_EXE_hello");

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn get(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The pids of `hello` processes whose environment says `TARGET=<target>`.
fn hello_pids(target: &str) -> Vec<i32> {
    let want = format!("TARGET={target}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let exe = std::fs::read_link(entry.path().join("exe")).ok();
        if exe.as_deref() != Some(std::path::Path::new(HELLO)) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

fn ready_ips(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect()
}

// Multi-threaded: the test's blocking HTTP calls must not stall the runtime's port forwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_deployment_runs_as_processes_that_answer_restart_and_stop() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let client = client().await;
    let ns = TestNamespace::create(&client, "local-runtime").await;
    let target = ns.name.clone();
    let node = format!("local-{}", ns.name);
    let logs = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig::new(node.clone(), logs.path());
    config.namespace = Some(ns.name.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::spawn(ProcessRuntime::new(client.clone(), config).run(async {
        let _ = stopped.await;
    }));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "hello" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "hello" } },
            "template": {
                "metadata": { "labels": { "app": "hello" } },
                "spec": { "containers": [{
                    "name": "hello",
                    "image": format!("local://{HELLO}"),
                    "env": [{ "name": "TARGET", "value": target }],
                    "ports": [{ "containerPort": 8080 }],
                    "readinessProbe": { "httpGet": { "path": "/", "port": 8080 }, "periodSeconds": 1 },
                }] },
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "hello" },
        "spec": { "selector": { "app": "hello" }, "ports": [{ "port": 80, "targetPort": 8080 }] },
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let ips = eventually("two ready pods", async || {
        let ips = ready_ips(&pods.list(&ListParams::default()).await.ok()?.items);
        (ips.len() == 2).then_some(ips)
    })
    .await;
    for ip in &ips {
        assert!(ip.starts_with("127."), "a loopback address: {ip}");
        let response = get(&format!("{ip}:8080")).expect("the pod answers on its address");
        assert!(
            response.ends_with(&format!("Hello {target}!\n")),
            "{response}"
        );
    }
    // A process killed is restarted, and its pod answers again.
    let pids = hello_pids(&target);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pids[0].to_string()])
            .status()
            .unwrap()
            .success()
    );
    eventually("a restart counted and two ready pods again", async || {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        let restarted = list.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.restart_count >= 1))
        });
        (restarted && ready_ips(&list).len() == 2).then_some(())
    })
    .await;
    for ip in &ips {
        assert!(get(&format!("{ip}:8080")).is_some_and(|r| r.contains("200 OK")));
    }

    // A pod with a registry image is not ours: it stays unbound.
    let foreign: Pod = serde_json::from_value(json!({
        "metadata": { "name": "foreign" },
        "spec": { "containers": [{ "name": "c", "image": "nginx" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &foreign).await.unwrap();

    // Scaling to zero stops the processes.
    deployments
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    eventually("no hello process left", async || {
        hello_pids(&target).is_empty().then_some(())
    })
    .await;
    let foreign = pods.get("foreign").await.unwrap();
    assert_eq!(
        foreign.spec.unwrap().node_name,
        None,
        "a registry image is left alone"
    );

    let _ = stop.send(());
    runtime.await.unwrap().unwrap();
    let _ = Api::<Node>::all(client.clone())
        .delete(&node, &DeleteParams::default())
        .await;
    ns.delete().await;
}
