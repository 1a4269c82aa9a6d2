//! Table tests of the Revision reconciler against the recording API double: a Revision (and
//! the children, pods and statuses of the row) in; the exact Deployment, PodAutoscaler, status
//! and Events out.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use knative_core::apis::{Condition, ConditionSeverity, ConditionStatus, KnativeObject};
use knative_core::config::{Config, ConfigStore};
use knative_core::reconciler::Driver;
use knative_core::testing::{Action, RecordingApi, Verb};
use knative_serving::apis::{PodAutoscaler, PodAutoscalerStatus, Revision};
use knative_serving::reconciler::revision::RevisionReconciler;
use serde_json::{Value, json};

const NS: &str = "default";
const NAME: &str = "hello-00001";
const DEPLOYMENT: &str = "hello-00001-deployment";
const UID: &str = "uid-hello-00001";
const IMAGE: &str = "ghcr.io/knative/helloworld-go:latest";

/// A Revision as a Configuration stamps it out: labelled, annotated, owned, not defaulted.
fn revision_json() -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "labels": {
                "serving.knative.dev/configuration": "hello",
                "serving.knative.dev/configurationGeneration": "1",
                "serving.knative.dev/service": "hello",
                "serving.knative.dev/routingState": "active",
            },
            "annotations": {
                "example.com/team": "web",
                "autoscaling.knative.dev/min-scale": "1",
                "serving.knative.dev/routes": "hello",
            },
            "ownerReferences": [{
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Configuration",
                "name": "hello",
                "uid": "uid-hello",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "containers": [{
                "image": IMAGE,
                "env": [{"name": "TARGET", "value": "World"}],
            }],
        },
    })
}

fn revision() -> Revision {
    serde_json::from_value(revision_json()).expect("a Revision")
}

/// The revision fixture with `patch` merged into it (RFC 7386: `null` removes).
fn revision_with(patch: Value) -> Revision {
    let mut value = revision_json();
    merge(&mut value, &patch);
    serde_json::from_value(value).expect("a Revision")
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(target.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

struct Row {
    api: RecordingApi,
    driver: Driver<Revision, RevisionReconciler>,
}

impl Row {
    fn new(rev: &Revision) -> Self {
        let api = RecordingApi::new();
        api.seed(rev);
        let driver = Driver::new(api.client(), RevisionReconciler::default());
        Self { api, driver }
    }

    fn with_config(rev: &Revision, config: Config) -> Self {
        let row = Self::new(rev);
        let driver = Driver::new(row.api.client(), RevisionReconciler::default())
            .with_config(ConfigStore::from_static(config));
        Self { driver, ..row }
    }

    /// One pass of the driver over the stored Revision.
    async fn reconcile(&self) {
        self.driver
            .reconcile(Arc::new(self.revision()))
            .await
            .expect("reconcile");
    }

    /// A first pass, then forget what it did: the children exist, as Knative would have made
    /// them.
    async fn reconciled_once(rev: &Revision) -> Self {
        let row = Self::new(rev);
        row.reconcile().await;
        row.api.clear_actions();
        row
    }

    fn revision(&self) -> Revision {
        self.api.get(NS, NAME).expect("stored revision")
    }

    fn deployment(&self) -> Deployment {
        self.api.get(NS, DEPLOYMENT).expect("stored deployment")
    }

    fn pod_autoscaler(&self) -> PodAutoscaler {
        self.api.get(NS, NAME).expect("stored PodAutoscaler")
    }

    fn created(&self, resource: &str) -> Value {
        let creates: Vec<Action> = self
            .api
            .creates()
            .into_iter()
            .filter(|a| a.resource == resource)
            .collect();
        assert_eq!(creates.len(), 1, "one {resource} created: {creates:?}");
        creates[0].body.clone().expect("a body")
    }

    fn created_container(&self, name: &str) -> Value {
        self.created("deployments")["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
            .clone()
    }

    fn queue_env(&self, name: &str) -> Value {
        self.created_container("queue-proxy")["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    }

    fn condition(&self, t: &str) -> Condition {
        self.revision()
            .status
            .and_then(|s| s.status.conditions.into_iter().find(|c| c.type_ == t))
            .unwrap_or_else(|| panic!("no condition {t}"))
    }

    /// Sets the stored Deployment's status.
    fn set_deployment_status(&self, status: DeploymentStatus) {
        let mut deployment = self.deployment();
        deployment.status = Some(status);
        self.api.seed(&deployment);
    }

    /// Sets the stored PodAutoscaler's status.
    fn set_pod_autoscaler_status(&self, status: PodAutoscalerStatus) {
        let mut pa = self.pod_autoscaler();
        pa.status = Some(status);
        self.api.seed(&pa);
    }

    /// Stores a pod of the Revision with `status`.
    fn seed_pod(&self, status: Value) {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "hello-00001-deployment-5d4f8-x7k2p",
                "namespace": NS,
                "labels": {
                    "serving.knative.dev/revision": NAME,
                    "serving.knative.dev/revisionUID": UID,
                    "app": NAME,
                },
            },
            "spec": {"containers": [{"name": "user-container", "image": IMAGE}]},
            "status": status,
        }))
        .expect("a Pod");
        self.api.seed(&pod);
    }
}

fn deployment_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..DeploymentCondition::default()
    }
}

/// A Deployment that wants one pod and has none available, with `conditions`.
fn unavailable(conditions: Vec<DeploymentCondition>) -> DeploymentStatus {
    DeploymentStatus {
        replicas: Some(1),
        unavailable_replicas: Some(1),
        conditions: Some(conditions),
        ..DeploymentStatus::default()
    }
}

fn timed_out() -> DeploymentStatus {
    unavailable(vec![deployment_condition(
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        "ReplicaSet \"hello-00001-deployment-5d4f8\" has timed out progressing.",
    )])
}

fn progressing() -> DeploymentStatus {
    unavailable(vec![deployment_condition(
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        "ReplicaSet \"hello-00001-deployment-5d4f8\" is progressing.",
    )])
}

fn waiting_pod(reason: &str, message: &str) -> Value {
    json!({
        "phase": "Pending",
        "containerStatuses": [{
            "name": "user-container",
            "image": IMAGE,
            "imageID": "",
            "ready": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}},
        }],
    })
}

fn assert_condition(
    c: &Condition,
    status: ConditionStatus,
    reason: Option<&str>,
    message: Option<&str>,
) {
    assert_eq!(
        (c.status, c.reason.as_deref(), c.message.as_deref()),
        (status, reason, message),
        "{}",
        c.type_
    );
}

fn labels() -> Value {
    json!({
        "serving.knative.dev/configuration": "hello",
        "serving.knative.dev/configurationGeneration": "1",
        "serving.knative.dev/service": "hello",
        "serving.knative.dev/revision": NAME,
        "serving.knative.dev/revisionUID": UID,
        "app": NAME,
    })
}

fn owner() -> Value {
    json!([{
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "name": NAME,
        "uid": UID,
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

// ---------------------------------------------------------------------------------------------
// The Deployment.

#[tokio::test]
async fn the_deployment_runs_the_user_container_then_the_queue_proxy() {
    let row = Row::new(&revision());
    row.reconcile().await;
    let deployment = row.created("deployments");
    let containers: Vec<(&str, &str)> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
        .collect();
    assert_eq!(
        containers,
        [
            ("user-container", IMAGE),
            ("queue-proxy", "ghcr.io/knative-rs/queue-proxy:latest"),
        ]
    );
}

#[tokio::test]
async fn the_deployment_is_named_owned_labelled_and_selected_by_the_revision() {
    let row = Row::new(&revision());
    row.reconcile().await;
    let deployment = row.created("deployments");
    assert_eq!(
        deployment["metadata"],
        json!({
            "name": DEPLOYMENT,
            "namespace": NS,
            "labels": labels(),
            // Autoscaling annotations stay on the PodAutoscaler; routing ones on the Revision.
            "annotations": {"example.com/team": "web"},
            "ownerReferences": owner(),
        })
    );
    assert_eq!(
        deployment["spec"]["selector"],
        json!({"matchLabels": {"serving.knative.dev/revisionUID": UID}})
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"],
        json!({
            "labels": labels(),
            "annotations": {
                "example.com/team": "web",
                "kubectl.kubernetes.io/default-container": "user-container",
            },
        })
    );
}

#[tokio::test]
async fn the_deployment_starts_at_the_initial_scale_and_rolls_out_without_unavailability() {
    let row = Row::new(&revision());
    row.reconcile().await;
    let spec = row.created("deployments")["spec"].clone();
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["terminationGracePeriodSeconds"], 300,
        "the request timeout"
    );
    assert_eq!(pod["enableServiceLinks"], false);
}

#[tokio::test]
async fn the_user_container_gets_its_port_knatives_environment_and_the_drain_hook() {
    let row = Row::new(&revision());
    row.reconcile().await;
    // Its default TCP readiness probe moved to the queue-proxy.
    assert_eq!(
        row.created_container("user-container"),
        json!({
            "name": "user-container",
            "image": IMAGE,
            "ports": [{"name": "user-port", "containerPort": 8080}],
            "env": [
                {"name": "TARGET", "value": "World"},
                {"name": "PORT", "value": "8080"},
                {"name": "K_REVISION", "value": NAME},
                {"name": "K_CONFIGURATION", "value": "hello"},
                {"name": "K_SERVICE", "value": "hello"},
            ],
            "lifecycle": {"preStop": {"httpGet": {"path": "/wait-for-drain", "port": 8022}}},
            "terminationMessagePolicy": "FallbackToLogsOnError",
        })
    );
}

#[tokio::test]
async fn the_queue_proxy_gets_knatives_ports_environment_probe_and_security_context() {
    let row = Row::new(&revision());
    row.reconcile().await;
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    assert_eq!(
        row.created_container("queue-proxy"),
        json!({
            "name": "queue-proxy",
            "image": "ghcr.io/knative-rs/queue-proxy:latest",
            "resources": {"requests": {"cpu": "25m"}},
            "ports": [
                {"name": "http-queueadm", "containerPort": 8022},
                {"name": "http-autometric", "containerPort": 9090},
                {"name": "http-usermetric", "containerPort": 9091},
                {"name": "queue-port", "containerPort": 8012},
                {"name": "https-port", "containerPort": 8112},
            ],
            "readinessProbe": {
                "httpGet": {
                    "port": 8012,
                    "httpHeaders": [{"name": "K-Network-Probe", "value": "queue"}],
                },
                "successThreshold": 1,
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "env": [
                {"name": "SERVING_NAMESPACE", "value": NS},
                {"name": "SERVING_SERVICE", "value": "hello"},
                {"name": "SERVING_CONFIGURATION", "value": "hello"},
                {"name": "SERVING_REVISION", "value": NAME},
                {"name": "QUEUE_SERVING_PORT", "value": "8012"},
                {"name": "QUEUE_SERVING_TLS_PORT", "value": "8112"},
                {"name": "CONTAINER_CONCURRENCY", "value": "0"},
                {"name": "REVISION_TIMEOUT_SECONDS", "value": "300"},
                {"name": "REVISION_RESPONSE_START_TIMEOUT_SECONDS", "value": "0"},
                {"name": "REVISION_IDLE_TIMEOUT_SECONDS", "value": "0"},
                {"name": "SERVING_POD", "valueFrom": field("metadata.name")},
                {"name": "SERVING_POD_IP", "valueFrom": field("status.podIP")},
                {"name": "SERVING_LOGGING_CONFIG"},
                {"name": "SERVING_LOGGING_LEVEL"},
                {"name": "SERVING_REQUEST_LOG_TEMPLATE"},
                {"name": "SERVING_ENABLE_REQUEST_LOG", "value": "false"},
                {"name": "SERVING_REQUEST_METRICS_BACKEND", "value": "prometheus"},
                {"name": "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS", "value": "5"},
                {"name": "TRACING_CONFIG_BACKEND", "value": "none"},
                {"name": "TRACING_CONFIG_ZIPKIN_ENDPOINT"},
                {"name": "TRACING_CONFIG_DEBUG", "value": "false"},
                {"name": "TRACING_CONFIG_SAMPLE_RATE", "value": "0.1"},
                {"name": "USER_PORT", "value": "8080"},
                {"name": "SYSTEM_NAMESPACE", "value": "knative-serving"},
                {"name": "METRICS_DOMAIN", "value": "knative.dev/internal/serving"},
                {
                    "name": "SERVING_READINESS_PROBE",
                    "value": r#"{"successThreshold":1,"tcpSocket":{"host":"127.0.0.1","port":8080}}"#,
                },
                {"name": "ENABLE_PROFILING", "value": "false"},
                {"name": "SERVING_ENABLE_PROBE_REQUEST_LOG", "value": "false"},
                {"name": "METRICS_COLLECTOR_ADDRESS"},
                {
                    "name": "HOST_IP",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}},
                },
                {"name": "ENABLE_HTTP2_AUTO_DETECTION", "value": "false"},
                {"name": "ROOT_CA"},
            ],
        })
    );
}

#[tokio::test]
async fn an_http_readiness_probe_moves_to_the_queue_proxy_aimed_at_the_user_port_over_loopback() {
    let rev = revision_with(json!({"spec": {"containers": [{
        "image": IMAGE,
        "readinessProbe": {"httpGet": {"path": "/healthz"}, "periodSeconds": 5},
    }]}}));
    let row = Row::new(&rev);
    row.reconcile().await;
    assert_eq!(
        row.created_container("user-container")
            .get("readinessProbe"),
        None
    );
    let encoded = row.queue_env("SERVING_READINESS_PROBE")["value"].clone();
    let decoded: Value = serde_json::from_str(encoded.as_str().unwrap()).unwrap();
    assert_eq!(
        decoded,
        json!({
            "httpGet": {
                "host": "127.0.0.1",
                "path": "/healthz",
                "port": 8080,
                "scheme": "HTTP",
                "httpHeaders": [{"name": "K-Kubelet-Probe", "value": "queue"}],
            },
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        })
    );
    // The queue-proxy is probed on its own port, with the user's timing.
    assert_eq!(
        row.created_container("queue-proxy")["readinessProbe"],
        json!({
            "httpGet": {
                "port": 8012,
                "httpHeaders": [{"name": "K-Network-Probe", "value": "queue"}],
            },
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        })
    );
}

#[tokio::test]
async fn a_liveness_probe_stays_on_the_user_container_aimed_at_its_port() {
    let rev = revision_with(json!({"spec": {"containers": [{
        "image": IMAGE,
        "ports": [{"containerPort": 9000}],
        "livenessProbe": {"httpGet": {"path": "/live"}},
    }]}}));
    let row = Row::new(&rev);
    row.reconcile().await;
    assert_eq!(
        row.created_container("user-container")["livenessProbe"],
        json!({"httpGet": {
            "path": "/live",
            "port": 9000,
            "httpHeaders": [{"name": "K-Kubelet-Probe", "value": "queue"}],
        }})
    );
}

#[tokio::test]
async fn an_h2c_port_makes_the_queue_proxy_serve_h2c_on_8013() {
    let rev = revision_with(json!({"spec": {"containers": [{
        "image": IMAGE,
        "ports": [{"name": "h2c", "containerPort": 9000}],
    }]}}));
    let row = Row::new(&rev);
    row.reconcile().await;
    assert_eq!(
        row.created_container("user-container")["ports"],
        json!([{"name": "user-port", "containerPort": 9000}])
    );
    let queue = row.created_container("queue-proxy");
    assert!(
        queue["ports"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "queue-port", "containerPort": 8013}))
    );
    assert_eq!(row.queue_env("QUEUE_SERVING_PORT")["value"], "8013");
    assert_eq!(row.queue_env("USER_PORT")["value"], "9000");
    assert_eq!(row.created("podautoscalers")["spec"]["protocolType"], "h2c");
}

#[tokio::test]
async fn annotations_set_the_initial_scale_and_progress_deadline() {
    let rev = revision_with(json!({"metadata": {"annotations": {
        "autoscaling.knative.dev/initial-scale": "3",
        "serving.knative.dev/progress-deadline": "90s",
    }}}));
    let row = Row::new(&rev);
    row.reconcile().await;
    let spec = row.created("deployments")["spec"].clone();
    assert_eq!(
        (
            spec["replicas"].clone(),
            spec["progressDeadlineSeconds"].clone()
        ),
        (json!(3), json!(90))
    );
}

#[tokio::test]
async fn config_autoscaler_sets_the_initial_scale_and_the_autoscaler_class() {
    let mut config = Config::default();
    config.autoscaler.initial_scale = 2;
    config.autoscaler.pod_autoscaler_class = "hpa.autoscaling.knative.dev".to_owned();
    let row = Row::with_config(&revision(), config);
    row.reconcile().await;
    assert_eq!(row.created("deployments")["spec"]["replicas"], 2);
    let annotations = row.created("podautoscalers")["metadata"]["annotations"].clone();
    assert_eq!(
        annotations["autoscaling.knative.dev/class"],
        "hpa.autoscaling.knative.dev"
    );
    assert_eq!(annotations["autoscaling.knative.dev/metric"], "cpu");
}

// ---------------------------------------------------------------------------------------------
// The PodAutoscaler.

#[tokio::test]
async fn the_pod_autoscaler_scales_the_deployment_with_knatives_class_and_metric() {
    let row = Row::new(&revision());
    row.reconcile().await;
    assert_eq!(
        row.created("podautoscalers"),
        json!({
            "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
            "kind": "PodAutoscaler",
            "metadata": {
                "name": NAME,
                "namespace": NS,
                "labels": labels(),
                "annotations": {
                    "example.com/team": "web",
                    "autoscaling.knative.dev/min-scale": "1",
                    "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                    "autoscaling.knative.dev/metric": "concurrency",
                },
                "ownerReferences": owner(),
            },
            "spec": {
                "containerConcurrency": 0,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
                // The Revision's routing state is active.
                "reachability": "Reachable",
                "protocolType": "http1",
            },
        })
    );
}

#[tokio::test]
async fn an_unrouted_revision_leaves_its_reachability_unknown() {
    let rev =
        revision_with(json!({"metadata": {"labels": {"serving.knative.dev/routingState": null}}}));
    let row = Row::new(&rev);
    row.reconcile().await;
    assert_eq!(
        row.created("podautoscalers")["spec"].get("reachability"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Writing only what changed.

#[tokio::test]
async fn a_second_pass_over_an_unchanged_world_writes_nothing() {
    let row = Row::reconciled_once(&revision()).await;
    row.reconcile().await;
    assert_eq!(row.api.writes(), vec![]);
    assert_eq!(row.api.events(), vec![]);
}

#[tokio::test]
async fn defaults_the_api_server_fills_in_are_not_drift() {
    let row = Row::reconciled_once(&revision()).await;
    let mut deployment = serde_json::to_value(row.deployment()).unwrap();
    let spec = &mut deployment["spec"];
    spec["revisionHistoryLimit"] = json!(10);
    spec["strategy"]["rollingUpdate"]["maxSurge"] = json!("25%");
    let pod = &mut spec["template"]["spec"];
    pod["restartPolicy"] = json!("Always");
    pod["dnsPolicy"] = json!("ClusterFirst");
    pod["securityContext"] = json!({});
    for container in pod["containers"].as_array_mut().unwrap() {
        container["imagePullPolicy"] = json!("Always");
        container["terminationMessagePath"] = json!("/dev/termination-log");
        for port in container["ports"].as_array_mut().unwrap() {
            port["protocol"] = json!("TCP");
        }
        for env in container["env"].as_array_mut().unwrap() {
            if let Some(field) = env.pointer_mut("/valueFrom/fieldRef") {
                field["apiVersion"] = json!("v1");
            }
        }
    }
    row.api
        .seed(&serde_json::from_value::<Deployment>(deployment).unwrap());
    row.reconcile().await;
    assert_eq!(row.api.writes(), vec![]);
}

#[tokio::test]
async fn a_deployment_scaled_by_the_autoscaler_keeps_its_scale() {
    let row = Row::reconciled_once(&revision()).await;
    let mut deployment = row.deployment();
    deployment.spec.as_mut().unwrap().replicas = Some(5);
    row.api.seed(&deployment);
    row.reconcile().await;
    assert_eq!(row.api.writes(), vec![]);
}

#[tokio::test]
async fn an_edited_deployment_image_is_put_back() {
    let row = Row::reconciled_once(&revision()).await;
    let mut deployment = row.deployment();
    let pod = deployment
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap();
    pod.containers[0].image = Some("example.com/someone-else:latest".to_owned());
    row.api.seed(&deployment);
    row.reconcile().await;
    let updates = row.api.updates();
    let resources: Vec<&str> = updates.iter().map(|a| a.resource.as_str()).collect();
    assert_eq!(resources, ["deployments"]);
    let written: Deployment = updates[0].object();
    let pod = written.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some(IMAGE));
    assert_eq!(row.api.creates(), vec![]);
}

#[tokio::test]
async fn an_edited_pod_autoscaler_spec_is_put_back() {
    let row = Row::reconciled_once(&revision()).await;
    let mut pa = row.pod_autoscaler();
    pa.spec.container_concurrency = Some(7);
    row.api.seed(&pa);
    row.reconcile().await;
    let updates = row.api.updates();
    let resources: Vec<&str> = updates.iter().map(|a| a.resource.as_str()).collect();
    assert_eq!(resources, ["podautoscalers"]);
    let written: PodAutoscaler = updates[0].object();
    assert_eq!(written.spec.container_concurrency, Some(0));
}

// ---------------------------------------------------------------------------------------------
// Status.

#[tokio::test]
async fn a_new_revision_is_deploying() {
    let row = Row::new(&revision());
    row.reconcile().await;
    let rev = row.revision();
    assert_eq!(
        rev.status.as_ref().unwrap().status.observed_generation,
        Some(1)
    );
    for t in ["Ready", "ResourcesAvailable", "ContainerHealthy", "Active"] {
        assert_condition(
            &row.condition(t),
            ConditionStatus::Unknown,
            Some("Deploying"),
            None,
        );
    }
    assert_eq!(row.condition("Active").severity, ConditionSeverity::Info);
}

#[tokio::test]
async fn a_deployment_past_its_progress_deadline_fails_the_revision() {
    let row = Row::reconciled_once(&revision()).await;
    row.set_deployment_status(timed_out());
    row.reconcile().await;
    let message = "ReplicaSet \"hello-00001-deployment-5d4f8\" has timed out progressing.";
    for t in ["ResourcesAvailable", "Ready"] {
        assert_condition(
            &row.condition(t),
            ConditionStatus::False,
            Some("ProgressDeadlineExceeded"),
            Some(message),
        );
    }
}

#[tokio::test]
async fn a_replica_set_that_cannot_create_pods_fails_the_revision() {
    let row = Row::reconciled_once(&revision()).await;
    let message =
        "pods \"hello-00001-deployment-5d4f8-x7k2p\" is forbidden: exceeded quota: compute";
    row.set_deployment_status(unavailable(vec![
        deployment_condition("Progressing", "True", "ReplicaSetUpdated", "progressing"),
        deployment_condition("ReplicaFailure", "True", "FailedCreate", message),
    ]));
    row.reconcile().await;
    assert_condition(
        &row.condition("ResourcesAvailable"),
        ConditionStatus::False,
        Some("FailedCreate"),
        Some(message),
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_revision_once_the_deadline_passed() {
    let row = Row::reconciled_once(&revision()).await;
    row.set_deployment_status(timed_out());
    let message = "Back-off pulling image \"ghcr.io/knative/helloworld-go:latest\"";
    row.seed_pod(waiting_pod("ImagePullBackOff", message));
    row.reconcile().await;
    for t in ["ResourcesAvailable", "Ready"] {
        assert_condition(
            &row.condition(t),
            ConditionStatus::False,
            Some("ImagePullBackOff"),
            Some(message),
        );
    }
}

#[tokio::test]
async fn a_waiting_container_is_no_failure_before_the_deadline() {
    let row = Row::reconciled_once(&revision()).await;
    row.set_deployment_status(progressing());
    row.seed_pod(waiting_pod("ErrImagePull", "rpc error: not found"));
    row.reconcile().await;
    assert_condition(
        &row.condition("ResourcesAvailable"),
        ConditionStatus::Unknown,
        Some("Deploying"),
        None,
    );
}

#[tokio::test]
async fn a_crash_looping_container_makes_the_revision_unhealthy_with_its_exit_code() {
    let row = Row::reconciled_once(&revision()).await;
    row.set_deployment_status(progressing());
    row.seed_pod(json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "user-container",
            "image": IMAGE,
            "imageID": "",
            "ready": false,
            "restartCount": 4,
            "state": {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off 1m20s restarting failed container",
            }},
            "lastState": {"terminated": {
                "exitCode": 2,
                "reason": "Error",
                "message": "panic: cannot bind :8080",
            }},
        }],
    }));
    row.reconcile().await;
    for t in ["ContainerHealthy", "Ready"] {
        assert_condition(
            &row.condition(t),
            ConditionStatus::False,
            Some("ExitCode2"),
            Some("Container failed with: panic: cannot bind :8080"),
        );
    }
}

#[tokio::test]
async fn an_unschedulable_pod_makes_the_resources_unavailable() {
    let row = Row::reconciled_once(&revision()).await;
    row.set_deployment_status(progressing());
    let message = "0/3 nodes are available: 3 Insufficient cpu.";
    row.seed_pod(json!({
        "phase": "Pending",
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
        }],
    }));
    row.reconcile().await;
    assert_condition(
        &row.condition("ResourcesAvailable"),
        ConditionStatus::False,
        Some("Unschedulable"),
        Some(message),
    );
}

#[tokio::test]
async fn a_ready_pod_autoscaler_makes_the_revision_ready_and_announces_it() {
    let row = Row::reconciled_once(&revision()).await;
    row.set_deployment_status(DeploymentStatus {
        replicas: Some(1),
        ready_replicas: Some(1),
        available_replicas: Some(1),
        conditions: Some(vec![deployment_condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            "ReplicaSet has successfully progressed.",
        )]),
        ..DeploymentStatus::default()
    });
    let mut status = PodAutoscalerStatus {
        service_name: NAME.to_owned(),
        desired_scale: Some(1),
        actual_scale: Some(1),
        ..PodAutoscalerStatus::default()
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut conditions = PodAutoscaler::condition_set().manage(&mut status.status, now);
    for t in ["Active", "ScaleTargetInitialized", "SKSReady"] {
        conditions.mark_true(t);
    }
    row.set_pod_autoscaler_status(status);
    row.reconcile().await;
    for t in ["Ready", "ResourcesAvailable", "ContainerHealthy", "Active"] {
        assert_condition(&row.condition(t), ConditionStatus::True, None, None);
    }
    let rev = row.revision();
    let status = rev.status.as_ref().unwrap();
    assert_eq!(
        (status.actual_replicas, status.desired_replicas),
        (Some(1), Some(1))
    );
    let events: Vec<(String, String, String)> = row
        .api
        .events()
        .into_iter()
        .map(|e| (e.type_, e.reason, e.note))
        .collect();
    assert_eq!(
        events,
        [(
            "Normal".to_owned(),
            "RevisionReady".to_owned(),
            "Revision becomes ready upon all resources being ready".to_owned()
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[tokio::test]
async fn a_deployment_the_revision_does_not_own_is_refused() {
    let rev = revision();
    let row = Row::new(&rev);
    let stranger: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "stranger"}},
            "template": {
                "metadata": {"labels": {"app": "stranger"}},
                "spec": {"containers": [{"name": "stranger", "image": "stranger"}]},
            },
        },
    }))
    .unwrap();
    row.api.seed(&stranger);
    row.reconcile().await;
    let message = "There is an existing Deployment \"hello-00001-deployment\" that we do not own.";
    for t in ["ResourcesAvailable", "Ready"] {
        assert_condition(
            &row.condition(t),
            ConditionStatus::False,
            Some("NotOwned"),
            Some(message),
        );
    }
    assert_eq!(row.api.creates(), vec![], "nothing created");
    assert_eq!(row.api.updates(), vec![], "the stranger is left alone");
    let events: Vec<(String, String)> = row
        .api
        .events()
        .into_iter()
        .map(|e| (e.type_, e.reason))
        .collect();
    assert_eq!(events, [("Warning".to_owned(), "NotOwned".to_owned())]);
}

#[tokio::test]
async fn a_pod_autoscaler_the_revision_does_not_own_is_refused() {
    let row = Row::new(&revision());
    let stranger: PodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
        "kind": "PodAutoscaler",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stranger"},
            "protocolType": "http1",
        },
    }))
    .unwrap();
    row.api.seed(&stranger);
    row.reconcile().await;
    assert_condition(
        &row.condition("ResourcesAvailable"),
        ConditionStatus::False,
        Some("NotOwned"),
        Some("There is an existing PodAutoscaler \"hello-00001\" that we do not own."),
    );
    assert_eq!(
        row.pod_autoscaler().spec.scale_target_ref.name.as_deref(),
        Some("stranger")
    );
}

#[tokio::test]
async fn a_failed_deployment_create_is_retried_and_reported() {
    let row = Row::new(&revision());
    row.api.fail_next(Verb::Create, "deployments", 500);
    let result = row.driver.reconcile(Arc::new(row.revision())).await;
    assert!(result.is_err(), "the driver retries with backoff");
    let events = row.api.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].type_.as_str(), events[0].reason.as_str()),
        ("Warning", "InternalError")
    );
    assert!(
        events[0]
            .note
            .starts_with("failed to create deployment \"hello-00001-deployment\": "),
        "{}",
        events[0].note
    );
}
