//! `knative local --kubeconfig`: the process runtime, the reconcilers and the data plane of the
//! local platform against a real kube-apiserver (the test environment's, see
//! `scripts/envtest.sh`), whose kube-controller-manager makes the Revision's Pods.
//!
//! Needs the `hello` example built next to `knative` (`cargo build -p hello`).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, get, hello_binary};
use k8s_openapi::api::core::v1::Pod;
use knative_core::testing::envtest::{TestNamespace, client, eventually_within};
use knative_serving::apis::Service;
use kube::api::{Api, ListParams, Patch, PatchParams};

#[tokio::test(flavor = "multi_thread")]
async fn a_local_service_runs_as_a_process_against_a_real_api_server() {
    let client = client().await;
    let kubeconfig = std::env::var("KNATIVE_TEST_KUBECONFIG")
        .or_else(|_| std::env::var("KUBECONFIG"))
        .unwrap();
    let ns = TestNamespace::create(&client, "local-kubeconfig").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut platform = Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(["local", "--kubeconfig", &kubeconfig, "--data-dir"])
        .arg(dir.path())
        .arg(format!("--gateway-addr=127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stop = |platform: &mut std::process::Child| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(platform.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = platform.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = platform.kill();
                return platform.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"containers": [{
            "image": format!("local://{}", hello_binary().display()),
            "env": [{"name": "TARGET", "value": "envtest"}],
        }]}}},
    }))
    .unwrap();
    // The CRDs are installed by knative local: retry until it did.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let params = PatchParams::apply("envtest-local").force();
    let applied = eventually_within(Duration::from_secs(60), async || {
        services
            .patch("hello", &params, &Patch::Apply(&service))
            .await
            .ok()
    })
    .await;
    if applied.is_none() {
        let status = stop(&mut platform);
        panic!(
            "cannot apply the Service in 60 s ({status})\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let ready_ip = eventually_within(Duration::from_secs(90), async || {
        pods.list(&ListParams::default().labels("serving.knative.dev/revision=hello-00001"))
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|p| p.status)
            .find(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
            .and_then(|s| s.pod_ip)
    })
    .await;
    let Some(ip) = ready_ip else {
        let status = stop(&mut platform);
        panic!(
            "no ready Pod after 90 s ({status})\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    assert_eq!(
        get(&format!("{ip}:8012"), "hello.example.com"),
        (200, "Hello envtest!\n".to_owned()),
        "the Pod's queue-proxy forwards to the hello process"
    );
    let status = stop(&mut platform);
    assert!(
        status.success(),
        "{status}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    ns.delete().await;
}
