//! The Build reconciler against a real kube-apiserver (see `scripts/envtest.sh`; no kubelet, so
//! the tests play the kubelet by patching the Pod's status): a Build gets its Pod with the
//! right init containers, the Build's status follows the Pod's, and cancelling deletes the Pod
//! and fails the Build; the PodExecutor, used directly, follows its Pod to the end and deletes
//! it when cancelled.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_build::apis::Build;
use knative_build::reconciler::{BuildReconciler, watch_pods};
use knative_core::apis::{Condition, ConditionStatus};
use knative_core::reconciler::{Driver, DriverOptions};
use knative_core::testing::envtest::{TestNamespace, client};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

async fn setup() -> Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = client().await;
    CRDS.get_or_init(|| async {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let params = PatchParams::apply("knative-build-envtest").force();
        for crd in knative_build::crds() {
            let name = crd.name_any();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install {name}: {e}"));
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| panic!("{name} not established in 30 s"))
            .unwrap();
        }
    })
    .await;
    client
}

fn run_driver(client: &Client, namespace: &str) -> JoinHandle<()> {
    let options = DriverOptions {
        namespace: Some(namespace.to_owned()),
        ..DriverOptions::for_kind::<Build>()
    };
    let driver = Driver::with_options(client.clone(), BuildReconciler::default(), options);
    let watches = client.clone();
    let namespace = namespace.to_owned();
    tokio::spawn(async move {
        driver
            .run_with(move |c| watch_pods(c, &watches, Some(&namespace)))
            .await
            .expect("driver");
    })
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let timeout = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn succeeded(build: &Build) -> Option<Condition> {
    build
        .status
        .as_ref()?
        .status
        .get_condition("Succeeded")
        .cloned()
}

fn build(name: &str) -> Build {
    serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1",
        "kind": "Build",
        "metadata": {"name": name},
        "spec": {
            "source": {"git": {"url": "https://github.com/knative/docs", "revision": "main"}},
            "steps": [
                {"name": "compile", "image": "golang:1.22", "command": ["go", "build", "./..."]},
                {"name": "test", "image": "golang:1.22", "command": ["go", "test", "./..."]},
            ],
        },
    }))
    .unwrap()
}

fn init_status(name: &str, state: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "golang:1.22", "imageID": "", "state": state})
}

#[tokio::test]
async fn a_build_runs_as_a_pod_and_its_status_follows_the_pods() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "build-pod").await;
    let driver = run_driver(&client, &ns.name);
    let builds = Api::<Build>::namespaced(client.clone(), &ns.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    builds
        .create(&PostParams::default(), &build("hello"))
        .await
        .unwrap();

    let pod = eventually("the build's Pod", async || {
        pods.get_opt("hello-pod").await.unwrap()
    })
    .await;
    let names: Vec<_> = pod
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "build-step-credential-initializer",
            "build-step-git-source-0",
            "build-step-compile",
            "build-step-test"
        ]
    );
    assert_eq!(pod.owner_references()[0].name, "hello");

    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let done = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
    pods.patch_status(
        "hello-pod",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Pending", "initContainerStatuses": [
                init_status("build-step-credential-initializer", done.clone()),
                init_status("build-step-git-source-0", done.clone()),
                init_status("build-step-compile", json!({"running": {"startedAt": now}})),
                init_status("build-step-test", json!({"waiting": {"reason": "PodInitializing"}})),
            ]}}),
        ),
    )
    .await
    .unwrap();
    let status = eventually("steps completed", async || {
        let status = builds.get("hello").await.unwrap().status?;
        (status.steps_completed.len() == 2).then_some(status)
    })
    .await;
    assert_eq!(
        status.steps_completed,
        [
            "build-step-credential-initializer",
            "build-step-git-source-0"
        ]
    );
    assert!(status.step_states[2].running.is_some());
    assert_eq!(status.cluster.unwrap().pod_name, "hello-pod");

    pods.patch_status(
        "hello-pod",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Succeeded", "initContainerStatuses": [
                init_status("build-step-credential-initializer", done.clone()),
                init_status("build-step-git-source-0", done.clone()),
                init_status("build-step-compile", done.clone()),
                init_status("build-step-test", done.clone()),
            ]}}),
        ),
    )
    .await
    .unwrap();
    let built = eventually("the build to succeed", async || {
        let b = builds.get("hello").await.unwrap();
        succeeded(&b)
            .filter(|c| c.status == ConditionStatus::True)
            .map(|_| b)
    })
    .await;
    let status = built.status.unwrap();
    assert_eq!(status.steps_completed.len(), 4);
    assert!(status.completion_time.is_some());

    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn a_failed_step_fails_the_build() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "build-fail").await;
    let driver = run_driver(&client, &ns.name);
    let builds = Api::<Build>::namespaced(client.clone(), &ns.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    builds
        .create(&PostParams::default(), &build("broken"))
        .await
        .unwrap();
    eventually("the build's Pod", async || {
        pods.get_opt("broken-pod").await.unwrap()
    })
    .await;
    pods.patch_status(
        "broken-pod",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed", "initContainerStatuses": [
            init_status("build-step-compile", json!({"terminated": {"exitCode": 2, "reason": "Error"}})),
        ]}})),
    )
    .await
    .unwrap();
    let c = eventually("the build to fail", async || {
        succeeded(&builds.get("broken").await.unwrap())
            .filter(|c| c.status == ConditionStatus::False)
    })
    .await;
    assert_eq!(c.reason.as_deref(), Some("BuildFailed"));
    assert_eq!(
        c.message.as_deref(),
        Some("build step \"compile\" exited with code 2")
    );
    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn cancelling_deletes_the_pod_and_fails_the_build() {
    let client = setup().await;
    let ns = TestNamespace::create(&client, "build-cancel").await;
    let driver = run_driver(&client, &ns.name);
    let builds = Api::<Build>::namespaced(client.clone(), &ns.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    builds
        .create(&PostParams::default(), &build("stop"))
        .await
        .unwrap();
    eventually("the build's Pod", async || {
        pods.get_opt("stop-pod").await.unwrap()
    })
    .await;

    builds
        .patch(
            "stop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"status": "BuildCancelled"}})),
        )
        .await
        .unwrap();
    let c = eventually("the build to be cancelled", async || {
        succeeded(&builds.get("stop").await.unwrap()).filter(|c| c.status == ConditionStatus::False)
    })
    .await;
    assert_eq!(c.reason.as_deref(), Some("BuildCancelled"));
    eventually("the Pod to be deleted", async || {
        match pods.get_opt("stop-pod").await.unwrap() {
            None => Some(()),
            // Deleted with a grace period: it goes once marked for deletion.
            Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;
    driver.abort();
    ns.delete().await;
}

#[tokio::test]
async fn the_pod_executor_follows_its_pod_to_the_end() {
    use knative_build::executor::{
        BuildEvent, BuildOutcome, BuildPlan, CancellationToken, Events, PodExecutor, StepExecutor,
    };
    let client = setup().await;
    let ns = TestNamespace::create(&client, "build-exec").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let plan = BuildPlan::new(&build("direct"), None).unwrap();
    let executor = PodExecutor::new(client.clone(), ns.name.clone());
    let (events, mut rx) = Events::channel();
    let run = tokio::spawn(async move {
        executor
            .execute(&plan, &events, CancellationToken::new())
            .await
    });
    eventually("the executor's Pod", async || {
        pods.get_opt("direct-pod-1").await.unwrap()
    })
    .await;
    let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    pods.patch_status(
        "direct-pod-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed", "initContainerStatuses": [
            init_status("build-step-credential-initializer", done.clone()),
            init_status("build-step-git-source-0", done.clone()),
            init_status("build-step-compile", json!({"terminated": {"exitCode": 1, "reason": "Error"}})),
        ]}})),
    )
    .await
    .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the executor returns")
        .unwrap()
        .unwrap();
    match report.outcome {
        BuildOutcome::Failed {
            step, exit_code, ..
        } => {
            assert_eq!((step.as_str(), exit_code), ("compile", 1));
        }
        BuildOutcome::Succeeded => panic!("the build succeeded"),
    }
    let mut finished = Vec::new();
    while let Ok(event) = rx.try_recv() {
        if let BuildEvent::StepFinished { step, .. } = event {
            finished.push(step);
        }
    }
    assert_eq!(
        finished,
        ["credential-initializer", "git-source-0", "compile"]
    );
    ns.delete().await;
}

#[tokio::test]
async fn the_pod_executor_deletes_its_pod_when_cancelled() {
    use knative_build::executor::{
        BuildOutcome, BuildPlan, CancellationToken, Events, PodExecutor, StepExecutor,
    };
    let client = setup().await;
    let ns = TestNamespace::create(&client, "build-exec-cancel").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let plan = BuildPlan::new(&build("stopped"), None).unwrap();
    let executor = PodExecutor::new(client.clone(), ns.name.clone());
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let run = tokio::spawn(async move { executor.execute(&plan, &Events::none(), token).await });
    eventually("the executor's Pod", async || {
        pods.get_opt("stopped-pod-1").await.unwrap()
    })
    .await;
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the executor returns")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&report.outcome, BuildOutcome::Failed { reason, .. } if reason == "BuildCancelled"),
        "{:?}",
        report.outcome
    );
    let pod = pods.get_opt("stopped-pod-1").await.unwrap();
    assert!(pod.is_none_or(|p| p.metadata.deletion_timestamp.is_some()));
    ns.delete().await;
}
