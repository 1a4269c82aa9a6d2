//! `knative controller` as a process against the real API server: Knative's helloworld Service
//! is reconciled to a Configuration, a Revision and its Deployment; a ContainerSource whose
//! adapter Deployment is deleted creates it again (the Eventing reconcilers of the same process
//! watch their children through the shared informers); SIGTERM stops it cleanly.

use std::process::{Command, Stdio};

#[path = "../../controller/tests/common/helloworld.rs"]
mod helloworld;

use k8s_openapi::api::apps::v1::Deployment;
use knative_core::testing::KillOnDrop;
use knative_core::testing::envtest::{TestNamespace, client, eventually, install_crds};
use knative_eventing::apis::ContainerSource;
use knative_serving::apis::Revision;
use kube::api::{Api, DeleteParams, PostParams};

#[tokio::test]
async fn the_controller_reconciles_helloworld_from_its_kubeconfig_flag_logs_json_and_stops_on_sigterm()
 {
    let client = client().await;
    install_crds(&client, "knative-controller-test", &knative_serving::crds()).await;
    install_crds(
        &client,
        "knative-controller-test",
        &knative_eventing::crds(),
    )
    .await;
    let ns = TestNamespace::create(&client, "controller").await;
    let kubeconfig = std::env::var("KNATIVE_TEST_KUBECONFIG")
        .or_else(|_| std::env::var("KUBECONFIG"))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("controller.log");
    let child = Command::new(env!("CARGO_BIN_EXE_knative"))
        .args([
            "controller",
            "--namespace",
            &ns.name,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--autoscaler-addr",
            "127.0.0.1:0",
        ])
        .args(["--kubeconfig", &kubeconfig, "--log-format", "json"])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start knative controller");
    let mut child = KillOnDrop::new(child);

    helloworld::apply_and_await_its_deployment(&client, &ns.name, "knative-controller-test").await;
    let revisions = Api::<Revision>::namespaced(client.clone(), &ns.name);
    eventually("Revision hello-00001", async || {
        revisions.get_opt("hello-00001").await.ok()?
    })
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);

    // The Eventing reconcilers of the same process watch their children through the shared
    // informers: a ContainerSource whose adapter Deployment is deleted hears of it (no pass
    // would come otherwise) and creates it again.
    let mut source: serde_json::Value = serde_yaml::from_str(include_str!(
        "../../manifests/eventing/container-source.yaml"
    ))
    .unwrap();
    source["spec"]["sink"] = serde_json::json!({"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}});
    let source: ContainerSource = serde_json::from_value(source).unwrap();
    Api::<ContainerSource>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &source)
        .await
        .expect("create the ContainerSource");
    let adapter = eventually("the adapter Deployment", async || {
        deployments
            .get_opt("test-heartbeats-deployment")
            .await
            .ok()?
    })
    .await;
    deployments
        .delete("test-heartbeats-deployment", &DeleteParams::foreground())
        .await
        .expect("delete the adapter Deployment");
    eventually("the adapter Deployment created again", async || {
        let again = deployments
            .get_opt("test-heartbeats-deployment")
            .await
            .ok()??;
        (again.metadata.uid != adapter.metadata.uid).then_some(())
    })
    .await;

    // A pass is counted when it returns, just after its writes.
    eventually("reconcile_count_total on /metrics", async || {
        reqwest_metrics(port)
            .await
            .contains("reconcile_count_total")
            .then_some(())
    })
    .await;

    let pid = child.child().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = eventually("the controller to exit", async || {
        child.child().try_wait().ok()?
    })
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "controller exited with {status}\n{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "starting the Serving reconcilers" && l["level"] == "INFO"),
        "{log}"
    );
    ns.delete().await;
}

/// GET /metrics over a plain TCP stream (no HTTP client dependency needed).
async fn reqwest_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}
