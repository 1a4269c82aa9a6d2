//! Table tests of the Build reconciler against the recording API double: a Build (and the Pod,
//! templates and Secrets of the row) in; the exact Pod, deletes and Build status out.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use knative_build::apis::{Build, BuildTemplate, ClusterBuildTemplate};
use knative_build::reconciler::BuildReconciler;
use knative_core::apis::{Condition, ConditionStatus};
use knative_core::reconciler::Driver;
use knative_core::testing::{RecordingApi, Verb};
use serde_json::{Value, json};

const NS: &str = "default";

fn build_json(spec: Value) -> Value {
    json!({
        "apiVersion": "build.knative.dev/v1alpha1",
        "kind": "Build",
        "metadata": {"name": "hello", "namespace": NS, "generation": 1},
        "spec": spec,
    })
}

fn source_and_steps() -> Value {
    json!({
        "source": {"git": {"url": "https://github.com/knative/docs", "revision": "main"}},
        "steps": [
            {"name": "compile", "image": "golang", "command": ["go", "build", "./..."]},
            {"name": "test", "image": "golang", "command": ["go", "test", "./..."], "timeout": "1m"},
        ],
    })
}

/// A Build with `status` merged in (as if reconciled before).
fn build_with_status(spec: Value, status: Value) -> Build {
    let mut value = build_json(spec);
    value["status"] = status;
    serde_json::from_value(value).unwrap()
}

fn started(at: &str) -> Value {
    json!({
        "observedGeneration": 1,
        "builder": "Cluster",
        "cluster": {"namespace": NS, "podName": "hello-pod"},
        "startTime": at,
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Pending"}],
        "stepsCompleted": [],
    })
}

fn recent() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

struct Row {
    api: RecordingApi,
    driver: Driver<Build, BuildReconciler>,
}

impl Row {
    fn new(build: &Build) -> Self {
        let api = RecordingApi::new();
        api.seed(build);
        let driver = Driver::new(api.client(), BuildReconciler::default());
        Self { api, driver }
    }

    async fn reconcile(&self) {
        let build: Build = self.api.get(NS, "hello").unwrap();
        self.driver
            .reconcile(Arc::new(build))
            .await
            .expect("reconcile");
    }

    fn build(&self) -> Build {
        self.api.get(NS, "hello").unwrap()
    }

    fn succeeded(&self) -> Condition {
        self.build()
            .status
            .unwrap()
            .status
            .get_condition("Succeeded")
            .cloned()
            .expect("a Succeeded condition")
    }

    fn created_pod(&self) -> Pod {
        let creates = self.api.creates();
        assert_eq!(creates.len(), 1, "{creates:?}");
        creates[0].object()
    }

    /// Seeds the Pod the first pass made, with `status`.
    fn seed_pod_with(&self, pod: &Pod, status: Value) {
        let mut value = serde_json::to_value(pod).unwrap();
        value["status"] = status;
        self.api
            .seed(&serde_json::from_value::<Pod>(value).unwrap());
    }
}

fn init_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

async fn first_pod(spec: Value) -> (Row, Pod) {
    let row = Row::new(&serde_json::from_value(build_json(spec)).unwrap());
    row.reconcile().await;
    let pod = row.created_pod();
    (row, pod)
}

#[tokio::test]
async fn a_new_build_gets_a_pod_whose_init_containers_are_its_steps() {
    let (row, pod) = first_pod(source_and_steps()).await;
    assert_eq!(pod.metadata.name.as_deref(), Some("hello-pod"));
    assert_eq!(
        init_names(&pod),
        [
            "build-step-credential-initializer",
            "build-step-git-source-0",
            "build-step-compile",
            "build-step-test"
        ]
    );
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(spec.containers[0].name, "nop");
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Build", Some(true))
    );
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["build.knative.dev/buildName"],
        "hello"
    );
    let status = row.build().status.unwrap();
    assert_eq!(status.cluster.unwrap().pod_name, "hello-pod");
    assert!(status.start_time.is_some());
    assert_eq!(row.succeeded().status, ConditionStatus::Unknown);
    assert_eq!(row.succeeded().reason.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn every_step_shares_the_workspace_and_home() {
    let (_, pod) = first_pod(source_and_steps()).await;
    for c in pod.spec.unwrap().init_containers.unwrap() {
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| format!("{}:{}", m.name, m.mount_path))
            .collect();
        assert!(
            mounts.contains(&"workspace:/workspace".to_owned()),
            "{}: {mounts:?}",
            c.name
        );
        assert!(
            mounts.contains(&"home:/builder/home".to_owned()),
            "{}",
            c.name
        );
        let home = c.env.iter().flatten().find(|e| e.name == "HOME").unwrap();
        assert_eq!(home.value.as_deref(), Some("/builder/home"));
        assert_eq!(c.working_dir.as_deref(), Some("/workspace"));
    }
}

#[tokio::test]
async fn the_git_source_step_fetches_the_revision() {
    let (_, pod) = first_pod(source_and_steps()).await;
    let git = &pod.spec.unwrap().init_containers.unwrap()[1];
    assert_eq!(
        git.args.as_deref().unwrap(),
        [
            "-url",
            "https://github.com/knative/docs",
            "-revision",
            "main",
            "-path",
            "/workspace"
        ]
    );
}

#[tokio::test]
async fn credentials_come_from_the_service_accounts_annotated_secrets() {
    let api_row = Row::new(
        &serde_json::from_value(build_json(json!({
            "serviceAccountName": "builder",
            "steps": [{"name": "s", "image": "x"}],
        })))
        .unwrap(),
    );
    let account: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "builder", "namespace": NS},
        "secrets": [{"name": "github"}, {"name": "registry"}, {"name": "unrelated"}],
    }))
    .unwrap();
    let secret = |name: &str, type_: &str, annotations: Value| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS, "annotations": annotations},
            "type": type_,
        }))
        .unwrap()
    };
    api_row.api.seed(&account);
    api_row.api.seed(&secret(
        "github",
        "kubernetes.io/ssh-auth",
        json!({"build.knative.dev/git-0": "github.com"}),
    ));
    api_row.api.seed(&secret(
        "registry",
        "kubernetes.io/basic-auth",
        json!({"build.knative.dev/docker-0": "https://gcr.io"}),
    ));
    api_row.api.seed(&secret("unrelated", "Opaque", json!({})));
    api_row.reconcile().await;
    let pod = api_row.created_pod();
    let spec = pod.spec.unwrap();
    let creds = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        creds.args.as_deref().unwrap(),
        [
            "-ssh-git=github=github.com",
            "-basic-docker=registry=https://gcr.io"
        ]
    );
    let mounts: Vec<_> = creds
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(mounts.contains(&"/var/build-secrets/github"));
    assert!(mounts.contains(&"/var/build-secrets/registry"));
    assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
}

#[tokio::test]
async fn step_states_follow_the_init_container_statuses() {
    let (row, pod) = first_pod(source_and_steps()).await;
    row.seed_pod_with(
        &pod,
        json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "build-step-credential-initializer", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "build-step-git-source-0", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "build-step-compile", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {"startedAt": recent()}}},
            ],
        }),
    );
    row.reconcile().await;
    let status = row.build().status.unwrap();
    assert_eq!(
        status.steps_completed,
        [
            "build-step-credential-initializer",
            "build-step-git-source-0"
        ]
    );
    assert_eq!(status.step_states.len(), 4);
    assert!(status.step_states[2].running.is_some());
    assert!(status.step_states[3].waiting.is_some());
    let c = row.succeeded();
    assert_eq!(
        (c.status, c.reason.as_deref(), c.message.as_deref()),
        (
            ConditionStatus::Unknown,
            Some("Building"),
            Some("running step \"compile\"")
        )
    );
}

#[tokio::test]
async fn a_succeeded_pod_makes_a_succeeded_build() {
    let (row, pod) = first_pod(source_and_steps()).await;
    row.seed_pod_with(&pod, json!({"phase": "Succeeded"}));
    row.reconcile().await;
    assert_eq!(row.succeeded().status, ConditionStatus::True);
    assert!(row.build().status.unwrap().completion_time.is_some());
}

#[tokio::test]
async fn a_failed_step_fails_the_build_naming_the_step_and_exit_code() {
    let (row, pod) = first_pod(source_and_steps()).await;
    row.seed_pod_with(
        &pod,
        json!({
            "phase": "Failed",
            "initContainerStatuses": [
                {"name": "build-step-compile", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 2, "reason": "Error"}}},
            ],
        }),
    );
    row.reconcile().await;
    let c = row.succeeded();
    assert_eq!(
        (c.status, c.reason.as_deref(), c.message.as_deref()),
        (
            ConditionStatus::False,
            Some("BuildFailed"),
            Some("build step \"compile\" exited with code 2")
        )
    );
}

#[tokio::test]
async fn a_waiting_step_says_why() {
    let (row, pod) = first_pod(source_and_steps()).await;
    row.seed_pod_with(
        &pod,
        json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "build-step-credential-initializer", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}},
            ],
        }),
    );
    row.reconcile().await;
    assert_eq!(
        row.succeeded().message.as_deref(),
        Some("build step \"credential-initializer\" is waiting: ImagePullBackOff: no such image")
    );
}

#[tokio::test]
async fn cancelling_deletes_the_pod_and_fails_the_build() {
    let mut spec = source_and_steps();
    spec["status"] = json!("BuildCancelled");
    let build = build_with_status(spec, started(&recent()));
    let row = Row::new(&build);
    let (_, pod) = first_pod(source_and_steps()).await;
    row.api.seed(&pod);
    row.reconcile().await;
    let deletes = row.api.deletes();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        (deletes[0].resource.as_str(), deletes[0].name.as_deref()),
        ("pods", Some("hello-pod"))
    );
    let c = row.succeeded();
    assert_eq!(
        (c.status, c.reason.as_deref(), c.message.as_deref()),
        (
            ConditionStatus::False,
            Some("BuildCancelled"),
            Some("Build \"hello\" was cancelled")
        )
    );
    assert!(row.build().status.unwrap().completion_time.is_some());
}

#[tokio::test]
async fn a_build_past_its_timeout_is_failed_and_its_pod_deleted() {
    let mut spec = source_and_steps();
    spec["timeout"] = json!("10m");
    let build = build_with_status(spec, started("2020-01-01T00:00:00Z"));
    let row = Row::new(&build);
    let (_, pod) = first_pod(source_and_steps()).await;
    row.api.seed(&pod);
    row.reconcile().await;
    assert_eq!(row.api.deletes().len(), 1);
    let c = row.succeeded();
    assert_eq!(
        (c.status, c.reason.as_deref(), c.message.as_deref()),
        (
            ConditionStatus::False,
            Some("BuildTimeout"),
            Some("Build \"hello\" failed to finish within \"10m0s\"")
        )
    );
}

#[tokio::test]
async fn a_step_past_its_own_timeout_fails_the_build() {
    let (row, pod) = first_pod(source_and_steps()).await;
    row.seed_pod_with(
        &pod,
        json!({
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "build-step-test", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {"startedAt": "2020-01-01T00:00:00Z"}}},
            ],
        }),
    );
    row.reconcile().await;
    let c = row.succeeded();
    assert_eq!(
        (c.reason.as_deref(), c.message.as_deref()),
        (
            Some("StepTimeout"),
            Some("build step \"test\" did not finish within \"1m0s\"")
        )
    );
    assert_eq!(row.api.deletes().len(), 1);
}

#[tokio::test]
async fn a_failed_build_with_retries_gets_a_new_pod() {
    let mut spec = source_and_steps();
    spec["retries"] = json!(1);
    let (row, pod) = first_pod(spec).await;
    row.seed_pod_with(
        &pod,
        json!({"phase": "Failed", "initContainerStatuses": [
            {"name": "build-step-compile", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
        ]}),
    );
    row.api.clear_actions();
    row.reconcile().await;
    assert_eq!(row.api.deletes()[0].name.as_deref(), Some("hello-pod"));
    assert_eq!(row.build().status.unwrap().retry_count, Some(1));
    assert_eq!(row.succeeded().status, ConditionStatus::Unknown);
    row.api.clear_actions();
    row.reconcile().await;
    assert_eq!(
        row.created_pod().metadata.name.as_deref(),
        Some("hello-pod-retry1")
    );
}

#[tokio::test]
async fn a_template_build_runs_the_templates_steps_with_its_arguments() {
    let row = Row::new(
        &serde_json::from_value(build_json(json!({
            "template": {"name": "echo", "arguments": [{"name": "WHO", "value": "World"}]},
        })))
        .unwrap(),
    );
    let template: BuildTemplate = serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "BuildTemplate",
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {
            "parameters": [{"name": "WHO"}],
            "steps": [{"name": "say", "image": "busybox", "args": ["echo", "Hello ${WHO}"]}],
        },
    }))
    .unwrap();
    row.api.seed(&template);
    row.reconcile().await;
    let pod = row.created_pod();
    let say = &pod.spec.unwrap().init_containers.unwrap()[1];
    assert_eq!(say.name, "build-step-say");
    assert_eq!(say.args.as_deref().unwrap(), ["echo", "Hello World"]);
}

#[tokio::test]
async fn a_cluster_template_is_found_cluster_wide() {
    let row = Row::new(
        &serde_json::from_value(build_json(json!({
            "template": {"name": "echo", "kind": "ClusterBuildTemplate"},
        })))
        .unwrap(),
    );
    let template: ClusterBuildTemplate = serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "ClusterBuildTemplate",
        "metadata": {"name": "echo"},
        "spec": {"steps": [{"name": "say", "image": "busybox"}]},
    }))
    .unwrap();
    row.api.seed(&template);
    row.reconcile().await;
    assert_eq!(init_names(&row.created_pod())[1], "build-step-say");
}

#[tokio::test]
async fn a_missing_template_fails_the_build_without_a_pod() {
    let row = Row::new(
        &serde_json::from_value(build_json(json!({"template": {"name": "nope"}}))).unwrap(),
    );
    row.reconcile().await;
    assert!(row.api.creates().is_empty());
    let c = row.succeeded();
    assert_eq!(
        (c.status, c.reason.as_deref(), c.message.as_deref()),
        (
            ConditionStatus::False,
            Some("BuildValidationFailed"),
            Some("BuildTemplate \"nope\" not found: spec.template.name")
        )
    );
}

#[tokio::test]
async fn a_missing_argument_names_the_parameter() {
    let row = Row::new(
        &serde_json::from_value(build_json(json!({"template": {"name": "echo"}}))).unwrap(),
    );
    let template: BuildTemplate = serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "BuildTemplate",
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {"parameters": [{"name": "WHO"}], "steps": [{"name": "say", "image": "busybox", "args": ["${WHO}"]}]},
    }))
    .unwrap();
    row.api.seed(&template);
    row.reconcile().await;
    assert!(
        row.succeeded().message.unwrap().starts_with(
            "missing argument for parameter WHO (no default), used in steps[0].args[0]"
        )
    );
}

#[tokio::test]
async fn on_error_continue_is_refused_on_a_cluster() {
    let row = Row::new(
        &serde_json::from_value(build_json(json!({"steps": [
            {"name": "lint", "image": "x", "onError": "continue"},
        ]})))
        .unwrap(),
    );
    row.reconcile().await;
    assert!(row.api.creates().is_empty());
    assert!(
        row.succeeded()
            .message
            .unwrap()
            .ends_with(": spec.steps[0].onError")
    );
}

#[tokio::test]
async fn a_finished_build_is_left_alone() {
    let mut status = started(&recent());
    status["completionTime"] = json!(recent());
    status["conditions"] = json!([{"type": "Succeeded", "status": "True"}]);
    let row = Row::new(&build_with_status(source_and_steps(), status));
    row.reconcile().await;
    assert!(row.api.writes().is_empty(), "{:?}", row.api.writes());
}

#[tokio::test]
async fn cancelling_a_finished_build_keeps_its_outcome() {
    let mut status = started(&recent());
    status["completionTime"] = json!(recent());
    status["conditions"] = json!([{"type": "Succeeded", "status": "True"}]);
    let mut spec = source_and_steps();
    spec["status"] = json!("BuildCancelled");
    let mut value = build_json(spec);
    value["metadata"]["generation"] = json!(2);
    value["status"] = status;
    let row = Row::new(&serde_json::from_value(value).unwrap());
    row.reconcile().await;
    assert_eq!(row.succeeded().status, ConditionStatus::True);
    assert!(row.api.deletes().is_empty());
    assert!(
        !row.api
            .writes()
            .iter()
            .any(|a| a.verb == Verb::Create || a.verb == Verb::Delete)
    );
}

#[tokio::test]
async fn results_in_a_steps_termination_message_are_surfaced() {
    let (row, pod) = first_pod(source_and_steps()).await;
    row.seed_pod_with(
        &pod,
        json!({"phase": "Succeeded", "initContainerStatuses": [
            {"name": "build-step-compile", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                "message": "[{\"name\": \"digest\", \"value\": \"sha256:abc\"}]"}}},
            {"name": "build-step-test", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": "plain text, not results"}}},
        ]}),
    );
    row.reconcile().await;
    let results = row.build().status.unwrap().step_results;
    assert_eq!(results.len(), 1);
    assert_eq!(
        (
            results[0].step.as_str(),
            results[0].name.as_str(),
            results[0].value.as_str()
        ),
        ("compile", "digest", "sha256:abc")
    );
}
