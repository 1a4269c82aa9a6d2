//! What a Revision's children look like: Knative's `pkg/reconciler/revision/resources`
//! (`deploy.go`, `queue.go`, `pa.go`, `meta.go`), as pure functions of the Revision and the
//! configuration.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, HTTPHeader,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, ObjectReference, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecurityContext, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use knative_core::config::{Config, parse_go_duration};
use kube::{Resource, ResourceExt};

use super::DeploymentConfig;
use crate::apis::autoscaling::v1alpha1::{PodAutoscalerSpec, Reachability};
use crate::apis::networking::ProtocolType;
use crate::apis::serving::v1::{
    REVISION_CONDITION_CONTAINER_HEALTHY, REVISION_CONDITION_RESOURCES_AVAILABLE,
};
use crate::apis::{PodAutoscaler, Revision, autoscaling, serving};
use crate::reconciler::configuration::names::child_name;

/// The name of the queue-proxy sidecar container.
pub const QUEUE_CONTAINER_NAME: &str = "queue-proxy";
/// The name of the serving container's port in the Deployment, whatever the Revision calls it.
pub const USER_PORT_NAME: &str = "user-port";
/// The serving container's port when the Revision sets none.
pub const DEFAULT_USER_PORT: i32 = 8080;
/// The queue-proxy's port for HTTP/1 requests (`queue-port`).
pub const QUEUE_HTTP_PORT: i32 = 8012;
/// The queue-proxy's port for HTTP/2 (h2c) requests (`queue-port` of an h2c Revision).
pub const QUEUE_HTTP2_PORT: i32 = 8013;
/// The queue-proxy's port for TLS requests (`https-port`).
pub const QUEUE_HTTPS_PORT: i32 = 8112;
/// The queue-proxy's port for health checks and the drain hook (`http-queueadm`).
pub const QUEUE_ADMIN_PORT: i32 = 8022;
/// The queue-proxy's port for the metrics the autoscaler scrapes (`http-autometric`).
pub const AUTOSCALING_QUEUE_METRICS_PORT: i32 = 9090;
/// The queue-proxy's port for the user-facing request metrics (`http-usermetric`).
pub const USER_QUEUE_METRICS_PORT: i32 = 9091;
/// The queue-proxy's profiling port, when profiling is on (`profiling-port`).
pub const PROFILING_PORT: i32 = 8008;
/// The path of the queue-proxy's drain endpoint, which the user containers' preStop hook calls.
pub const QUEUE_DRAIN_PATH: &str = "/wait-for-drain";
/// The header with which the queue-proxy's own readiness probe (and the activator's) marks a
/// probe request (`K-Network-Probe: queue`).
pub const NETWORK_PROBE_HEADER: &str = "K-Network-Probe";
/// The header with which probes of the user container are marked (`K-Kubelet-Probe: queue`).
pub const KUBELET_PROBE_HEADER: &str = "K-Kubelet-Probe";

/// Label on a Revision's children: the Revision's name.
pub(crate) const REVISION_LABEL_KEY: &str = "serving.knative.dev/revision";
/// Label on a Revision's children: the Revision's UID (the Deployment's selector).
pub(crate) const REVISION_UID_LABEL_KEY: &str = "serving.knative.dev/revisionUID";
/// Annotation on a Revision: how long its Deployment may take to make progress (a Go duration).
pub(crate) const PROGRESS_DEADLINE_ANNOTATION_KEY: &str = "serving.knative.dev/progress-deadline";
/// The label that names the application, for tracing; defaulted to the Revision's name.
const APP_LABEL_KEY: &str = "app";
/// Annotation on the pod: the container `kubectl logs` and `exec` pick by default.
const DEFAULT_CONTAINER_ANNOTATION_KEY: &str = "kubectl.kubernetes.io/default-container";
/// The queue-proxy's sidecar resource annotations on a Revision.
const QUEUE_SIDECAR_ANNOTATION_PREFIX: &str = "queue.sidecar.serving.knative.dev/";
/// The value of the probe headers.
const QUEUE_PROBE_VALUE: &str = "queue";
const LOCAL_ADDRESS: &str = "127.0.0.1";

/// Revision labels that change with routing and so are kept off the children.
const EXCLUDED_LABELS: [&str; 2] = [serving::ROUTE_LABEL_KEY, serving::ROUTING_STATE_LABEL_KEY];
/// Revision annotations that change over the Revision's life and so are kept off the children.
const EXCLUDED_ANNOTATIONS: [&str; 4] = [
    serving::REVISION_LAST_PINNED_ANNOTATION_KEY,
    serving::REVISION_PRESERVED_ANNOTATION_KEY,
    serving::ROUTING_STATE_MODIFIED_ANNOTATION_KEY,
    serving::ROUTES_ANNOTATION_KEY,
];

/// Knative's defaults for the settings of `config-logging`, `config-observability` and
/// `config-tracing` that the queue-proxy receives, which this SDK does not read.
const REQUEST_METRICS_BACKEND: &str = "prometheus";
const REQUEST_METRICS_REPORTING_PERIOD_SECONDS: &str = "5";
const TRACING_BACKEND: &str = "none";
const TRACING_SAMPLE_RATE: &str = "0.1";

/// The name of a Revision's Deployment: `<revision>-deployment` (hashed to 63 characters when
/// longer, as Knative's `kmeta.ChildName`).
pub fn deployment_name(rev: &Revision) -> String {
    child_name(&rev.name_any(), "-deployment")
}

/// The name of a Revision's PodAutoscaler: the Revision's own.
pub fn pod_autoscaler_name(rev: &Revision) -> String {
    rev.name_any()
}

/// Knative's `MakeDeployment`: the Deployment that runs `rev`, its containers followed by the
/// queue-proxy sidecar, owned (as controller) by the Revision.
///
/// `rev` is taken as Knative's webhook leaves it (defaulted: containers named, timeout and
/// readiness probe set); the reconciler defaults it before calling this.
pub fn make_deployment(
    rev: &Revision,
    config: &Config,
    deployment: &DeploymentConfig,
) -> Deployment {
    let labels = make_labels(rev);
    Deployment {
        metadata: ObjectMeta {
            name: Some(deployment_name(rev)),
            namespace: rev.namespace(),
            labels: Some(labels.clone()),
            annotations: non_empty(filtered_annotations(rev, true)),
            owner_references: Some(vec![controller_ref(rev)]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(initial_scale(rev, config)),
            selector: make_selector(rev),
            progress_deadline_seconds: Some(progress_deadline_seconds(rev, deployment)),
            // Slowly but steadily roll the deployment out, to have the least possible impact.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: None,
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: non_empty(pod_annotations(rev)),
                    ..ObjectMeta::default()
                }),
                spec: Some(make_pod_spec(rev, config, deployment)),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Knative's `MakePA`: the PodAutoscaler that sizes `rev`'s Deployment, owned (as controller)
/// by the Revision, with the class and metric annotations Knative's PodAutoscaler defaulting
/// gives (`autoscaling.knative.dev/class` from `config-autoscaler`'s `pod-autoscaler-class`,
/// `autoscaling.knative.dev/metric` per class).
///
/// `deployment` is the Revision's Deployment as last seen, if any: a Revision whose resources
/// failed and that has no ready pods is unreachable.
pub fn make_pod_autoscaler(
    rev: &Revision,
    config: &Config,
    deployment: Option<&Deployment>,
) -> PodAutoscaler {
    let mut annotations = filtered_annotations(rev, false);
    let class = annotations
        .entry(autoscaling::CLASS_ANNOTATION_KEY.to_owned())
        .or_insert_with(|| config.autoscaler.pod_autoscaler_class.clone())
        .clone();
    let metric = match class.as_str() {
        autoscaling::KPA => autoscaling::CONCURRENCY,
        autoscaling::HPA => autoscaling::CPU,
        // Other classes choose their own metric; Knative leaves it empty, we leave it out.
        _ => "",
    };
    if !metric.is_empty() {
        annotations
            .entry(autoscaling::METRIC_ANNOTATION_KEY.to_owned())
            .or_insert_with(|| metric.to_owned());
    }
    PodAutoscaler {
        metadata: ObjectMeta {
            name: Some(pod_autoscaler_name(rev)),
            namespace: rev.namespace(),
            labels: Some(make_labels(rev)),
            annotations: non_empty(annotations),
            owner_references: Some(vec![controller_ref(rev)]),
            ..ObjectMeta::default()
        },
        spec: PodAutoscalerSpec {
            container_concurrency: Some(rev.spec.container_concurrency()),
            scale_target_ref: ObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: Some("Deployment".to_owned()),
                name: Some(deployment_name(rev)),
                ..ObjectReference::default()
            },
            reachability: reachability(rev, deployment),
            protocol_type: protocol(rev),
        },
        status: None,
    }
}

/// The container that receives requests: the only one, or the one with a port.
pub(crate) fn serving_container(rev: &Revision) -> Option<&Container> {
    let containers = &rev.spec.pod_spec.containers;
    match containers.as_slice() {
        [only] => Some(only),
        _ => containers
            .iter()
            .find(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty())),
    }
}

/// Whether `owner` is the controller of the object with `meta` (`metav1.IsControlledBy`).
pub(crate) fn is_controlled_by(meta: &ObjectMeta, owner: &Revision) -> bool {
    let uid = owner.uid();
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| Some(&r.uid) == uid.as_ref())
}

fn controller_ref(rev: &Revision) -> OwnerReference {
    OwnerReference {
        api_version: Revision::api_version(&()).into_owned(),
        kind: Revision::kind(&()).into_owned(),
        name: rev.name_any(),
        uid: rev.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Revision's labels (but the routing ones), its name and UID, and `app`.
fn make_labels(rev: &Revision) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = rev
        .labels()
        .iter()
        .filter(|(k, _)| !EXCLUDED_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(REVISION_LABEL_KEY.to_owned(), rev.name_any());
    labels.insert(
        REVISION_UID_LABEL_KEY.to_owned(),
        rev.uid().unwrap_or_default(),
    );
    labels
        .entry(APP_LABEL_KEY.to_owned())
        .or_insert_with(|| rev.name_any());
    labels
}

/// The Revision's annotations but the volatile ones, and (`without_autoscaling`) but the
/// `autoscaling.knative.dev/*` ones, which only the PodAutoscaler needs.
fn filtered_annotations(rev: &Revision, without_autoscaling: bool) -> BTreeMap<String, String> {
    rev.annotations()
        .iter()
        .filter(|(k, _)| !EXCLUDED_ANNOTATIONS.contains(&k.as_str()))
        .filter(|(k, _)| !(without_autoscaling && k.starts_with(autoscaling::GROUP_NAME)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn pod_annotations(rev: &Revision) -> BTreeMap<String, String> {
    let mut annotations = filtered_annotations(rev, true);
    if let Some(name) = serving_container(rev)
        .map(|c| c.name.clone())
        .filter(|n| !n.is_empty())
    {
        annotations.insert(DEFAULT_CONTAINER_ANNOTATION_KEY.to_owned(), name);
    }
    annotations
}

fn make_selector(rev: &Revision) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            REVISION_UID_LABEL_KEY.to_owned(),
            rev.uid().unwrap_or_default(),
        )])),
        match_expressions: None,
    }
}

/// `autoscaling.knative.dev/initial-scale`, else `config-autoscaler`'s `initial-scale`.
fn initial_scale(rev: &Revision, config: &Config) -> i32 {
    autoscaling::INITIAL_SCALE_ANNOTATION
        .get(rev.annotations())
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(config.autoscaler.initial_scale)
}

/// `serving.knative.dev/progress-deadline`, else the configured progress deadline, in seconds.
fn progress_deadline_seconds(rev: &Revision, deployment: &DeploymentConfig) -> i32 {
    let deadline = rev
        .annotations()
        .get(PROGRESS_DEADLINE_ANNOTATION_KEY)
        .and_then(|v| parse_go_duration(v).ok())
        .unwrap_or(deployment.progress_deadline);
    i32::try_from(deadline.as_secs()).unwrap_or(i32::MAX)
}

/// `GetProtocol`: h2c when the serving port is named `h2c`.
fn protocol(rev: &Revision) -> ProtocolType {
    let name = serving_container(rev)
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.name.as_deref());
    if name == Some("h2c") {
        ProtocolType::H2c
    } else {
        ProtocolType::Http1
    }
}

/// The serving container's port, or 8080.
fn user_port(rev: &Revision) -> i32 {
    serving_container(rev)
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .map(|p| p.container_port)
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_USER_PORT)
}

/// Knative's `reachability`: an infrastructure failure with no ready pods makes a Revision
/// unreachable; otherwise the routing state decides (`active` reachable, `reserve` not).
fn reachability(rev: &Revision, deployment: Option<&Deployment>) -> Reachability {
    let status = rev.status.as_ref().map(|s| &s.status);
    let infra_failure = [
        REVISION_CONDITION_RESOURCES_AVAILABLE,
        REVISION_CONDITION_CONTAINER_HEALTHY,
    ]
    .iter()
    .any(|t| {
        status
            .and_then(|s| s.get_condition(t))
            .is_some_and(|c| c.is_false())
    });
    if infra_failure && let Some(deployment) = deployment {
        let wanted = deployment.spec.as_ref().and_then(|s| s.replicas);
        let ready = deployment
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if wanted.is_some_and(|w| w > 0) && ready == 0 {
            return Reachability::Unreachable;
        }
    }
    match rev
        .labels()
        .get(serving::ROUTING_STATE_LABEL_KEY)
        .map(String::as_str)
    {
        Some("active") => Reachability::Reachable,
        Some("reserve") => Reachability::Unreachable,
        _ => Reachability::Unknown,
    }
}

/// `makePodSpec` and `BuildPodSpec`: the Revision's pod spec with its containers rewritten and
/// the queue-proxy appended, the termination grace period set to the request timeout.
fn make_pod_spec(rev: &Revision, config: &Config, deployment: &DeploymentConfig) -> PodSpec {
    let mut pod = rev.spec.pod_spec.clone();
    let serving_name = serving_container(rev).map(|c| c.name.clone());
    let mut containers: Vec<Container> = pod
        .containers
        .iter()
        .map(|c| {
            if Some(&c.name) == serving_name.as_ref() {
                make_serving_container(c.clone(), rev)
            } else {
                make_container(c.clone(), rev)
            }
        })
        .collect();
    containers.push(make_queue_container(rev, deployment));
    pod.containers = containers;
    pod.termination_grace_period_seconds = rev.spec.timeout_seconds;
    if pod.enable_service_links.is_none() {
        pod.enable_service_links = config.defaults.enable_service_links;
    }
    pod
}

/// `makeContainer`: the drain hook, Knative's environment, no stdin or TTY, termination
/// messages from the logs on error, and readiness probes the queue-proxy runs instead.
fn make_container(mut container: Container, rev: &Revision) -> Container {
    container.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(QUEUE_ADMIN_PORT),
                path: Some(QUEUE_DRAIN_PATH.to_owned()),
                ..HTTPGetAction::default()
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    });
    let env = container.env.get_or_insert_with(Vec::new);
    env.push(env_var("K_REVISION", rev.name_any()));
    env.push(env_var(
        "K_CONFIGURATION",
        label(rev, serving::CONFIGURATION_LABEL_KEY),
    ));
    env.push(env_var("K_SERVICE", label(rev, serving::SERVICE_LABEL_KEY)));
    // Explicitly no stdin or TTY: false is what the API server stores as absent.
    container.stdin = None;
    container.tty = None;
    if container
        .termination_message_policy
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        container.termination_message_policy = Some("FallbackToLogsOnError".to_owned());
    }
    if container
        .readiness_probe
        .as_ref()
        .is_some_and(|p| p.http_get.is_some() || p.tcp_socket.is_some() || p.grpc.is_some())
    {
        // The queue-proxy runs HTTP, TCP and gRPC readiness probes against the container.
        container.readiness_probe = None;
    }
    if let Some(http) = container
        .liveness_probe
        .as_mut()
        .and_then(|p| p.http_get.as_mut())
    {
        http.http_headers
            .get_or_insert_with(Vec::new)
            .push(probe_header(KUBELET_PROBE_HEADER));
    }
    container
}

/// `makeServingContainer`: one port named `user-port`, `PORT`, and a liveness probe aimed at
/// that port.
fn make_serving_container(mut container: Container, rev: &Revision) -> Container {
    let port = user_port(rev);
    container.ports = Some(vec![ContainerPort {
        name: Some(USER_PORT_NAME.to_owned()),
        container_port: port,
        ..ContainerPort::default()
    }]);
    container
        .env
        .get_or_insert_with(Vec::new)
        .push(env_var("PORT", port.to_string()));
    let mut container = make_container(container, rev);
    if let Some(probe) = container.liveness_probe.as_mut() {
        if let Some(http) = probe.http_get.as_mut() {
            http.port = IntOrString::Int(port);
        } else if let Some(tcp) = probe.tcp_socket.as_mut() {
            tcp.port = IntOrString::Int(port);
        }
    }
    container
}

/// `makeQueueContainer`: the queue-proxy sidecar, with the serving container's readiness probe
/// (rewritten to reach it over loopback) in `SERVING_READINESS_PROBE`, and a readiness probe of
/// its own on its serving port.
fn make_queue_container(rev: &Revision, deployment: &DeploymentConfig) -> Container {
    let user_port = user_port(rev);
    let serving_port = match protocol(rev) {
        ProtocolType::H2c => QUEUE_HTTP2_PORT,
        ProtocolType::Http1 => QUEUE_HTTP_PORT,
    };
    let mut ports = vec![
        port("http-queueadm", QUEUE_ADMIN_PORT),
        port("http-autometric", AUTOSCALING_QUEUE_METRICS_PORT),
        port("http-usermetric", USER_QUEUE_METRICS_PORT),
    ];
    if deployment.enable_profiling {
        ports.push(port("profiling-port", PROFILING_PORT));
    }
    ports.push(port("queue-port", serving_port));
    ports.push(port("https-port", QUEUE_HTTPS_PORT));

    let user_probe = serving_container(rev).and_then(|c| c.readiness_probe.as_ref());
    let probe_json = user_probe
        .map(|p| encode_probe(&exec_probe_defaults(p, probe_port(p, user_port))))
        .unwrap_or_default();
    let readiness_probe = user_probe.map(|p| Probe {
        exec: None,
        grpc: None,
        tcp_socket: None,
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(serving_port),
            http_headers: Some(vec![probe_header(NETWORK_PROBE_HEADER)]),
            ..HTTPGetAction::default()
        }),
        ..p.clone()
    });

    let configuration = rev
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == "Configuration")
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let spec = &rev.spec;
    let env = vec![
        env_var("SERVING_NAMESPACE", rev.namespace().unwrap_or_default()),
        env_var("SERVING_SERVICE", label(rev, serving::SERVICE_LABEL_KEY)),
        env_var("SERVING_CONFIGURATION", configuration),
        env_var("SERVING_REVISION", rev.name_any()),
        env_var("QUEUE_SERVING_PORT", serving_port.to_string()),
        env_var("QUEUE_SERVING_TLS_PORT", QUEUE_HTTPS_PORT.to_string()),
        env_var(
            "CONTAINER_CONCURRENCY",
            spec.container_concurrency().to_string(),
        ),
        env_var(
            "REVISION_TIMEOUT_SECONDS",
            spec.timeout_seconds.unwrap_or(0).to_string(),
        ),
        env_var(
            "REVISION_RESPONSE_START_TIMEOUT_SECONDS",
            spec.response_start_timeout_seconds.unwrap_or(0).to_string(),
        ),
        env_var(
            "REVISION_IDLE_TIMEOUT_SECONDS",
            spec.idle_timeout_seconds.unwrap_or(0).to_string(),
        ),
        field_env_var("SERVING_POD", "metadata.name", None),
        field_env_var("SERVING_POD_IP", "status.podIP", None),
        env_var("SERVING_LOGGING_CONFIG", ""),
        env_var("SERVING_LOGGING_LEVEL", ""),
        env_var("SERVING_REQUEST_LOG_TEMPLATE", ""),
        env_var("SERVING_ENABLE_REQUEST_LOG", "false"),
        env_var("SERVING_REQUEST_METRICS_BACKEND", REQUEST_METRICS_BACKEND),
        env_var(
            "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS",
            REQUEST_METRICS_REPORTING_PERIOD_SECONDS,
        ),
        env_var("TRACING_CONFIG_BACKEND", TRACING_BACKEND),
        env_var("TRACING_CONFIG_ZIPKIN_ENDPOINT", ""),
        env_var("TRACING_CONFIG_DEBUG", "false"),
        env_var("TRACING_CONFIG_SAMPLE_RATE", TRACING_SAMPLE_RATE),
        env_var("USER_PORT", user_port.to_string()),
        env_var("SYSTEM_NAMESPACE", deployment.system_namespace.clone()),
        env_var("METRICS_DOMAIN", deployment.metrics_domain.clone()),
        env_var("SERVING_READINESS_PROBE", probe_json),
        env_var("ENABLE_PROFILING", deployment.enable_profiling.to_string()),
        env_var("SERVING_ENABLE_PROBE_REQUEST_LOG", "false"),
        env_var("METRICS_COLLECTOR_ADDRESS", ""),
        field_env_var("HOST_IP", "status.hostIP", Some("v1")),
        env_var("ENABLE_HTTP2_AUTO_DETECTION", "false"),
        env_var("ROOT_CA", ""),
    ];

    Container {
        name: QUEUE_CONTAINER_NAME.to_owned(),
        image: Some(deployment.queue_sidecar_image.clone()),
        resources: Some(queue_resources(rev, deployment)),
        ports: Some(ports),
        readiness_probe,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        env: Some(env),
        ..Container::default()
    }
}

/// The port the queue-proxy probes the user container on: the probe's own, else the user port.
fn probe_port(probe: &Probe, user_port: i32) -> i32 {
    let explicit = probe
        .http_get
        .as_ref()
        .map(|h| &h.port)
        .or(probe.tcp_socket.as_ref().map(|t| &t.port));
    match explicit {
        Some(IntOrString::Int(port)) if *port != 0 => *port,
        _ => user_port,
    }
}

/// `applyReadinessProbeDefaultsForExec`: the user's readiness probe as the queue-proxy runs it,
/// over loopback; an exec probe (which the kubelet keeps running) becomes a TCP probe.
fn exec_probe_defaults(probe: &Probe, port: i32) -> Probe {
    let mut p = probe.clone();
    if let Some(http) = p.http_get.as_mut() {
        http.host = Some(LOCAL_ADDRESS.to_owned());
        http.port = IntOrString::Int(port);
        if http.scheme.as_deref().unwrap_or_default().is_empty() {
            http.scheme = Some("HTTP".to_owned());
        }
        http.http_headers
            .get_or_insert_with(Vec::new)
            .push(probe_header(KUBELET_PROBE_HEADER));
    } else if let Some(tcp) = p.tcp_socket.as_mut() {
        tcp.host = Some(LOCAL_ADDRESS.to_owned());
        tcp.port = IntOrString::Int(port);
    } else if p.exec.is_some() {
        p.exec = None;
        p.tcp_socket = Some(TCPSocketAction {
            host: Some(LOCAL_ADDRESS.to_owned()),
            port: IntOrString::Int(port),
        });
    }
    if p.period_seconds.unwrap_or(0) > 0 && p.timeout_seconds.unwrap_or(0) < 1 {
        p.timeout_seconds = Some(1);
    }
    p
}

fn encode_probe(probe: &Probe) -> String {
    // A Probe is plain data: it always serialises.
    serde_json::to_string(probe).unwrap_or_default()
}

/// The queue-proxy's resources: the configured requests and limits, overridden by the
/// Revision's `queue.sidecar.serving.knative.dev/<resource>-resource-{request,limit}`
/// annotations.
fn queue_resources(rev: &Revision, deployment: &DeploymentConfig) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for (resource, request, limit) in [
        (
            "cpu",
            &deployment.queue_sidecar_cpu_request,
            &deployment.queue_sidecar_cpu_limit,
        ),
        (
            "memory",
            &deployment.queue_sidecar_memory_request,
            &deployment.queue_sidecar_memory_limit,
        ),
        (
            "ephemeral-storage",
            &deployment.queue_sidecar_ephemeral_storage_request,
            &deployment.queue_sidecar_ephemeral_storage_limit,
        ),
    ] {
        let annotated = |kind: &str| {
            rev.annotations()
                .get(&format!(
                    "{QUEUE_SIDECAR_ANNOTATION_PREFIX}{resource}-resource-{kind}"
                ))
                .filter(|v| is_quantity(v))
                .map(|v| Quantity(v.clone()))
        };
        if let Some(q) = annotated("request").or_else(|| request.clone()) {
            requests.insert(resource.to_owned(), q);
        }
        if let Some(q) = annotated("limit").or_else(|| limit.clone()) {
            limits.insert(resource.to_owned(), q);
        }
    }
    ResourceRequirements {
        requests: Some(requests).filter(|r| !r.is_empty()),
        limits: Some(limits).filter(|l| !l.is_empty()),
        ..ResourceRequirements::default()
    }
}

/// Whether `s` reads as a Kubernetes quantity (`25m`, `1.5Gi`, `1e3`), so that a malformed
/// annotation is ignored rather than making every Deployment write fail.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let valid_number = digits > 0 && number.matches('.').count() <= 1;
    let valid_suffix = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    valid_number && valid_suffix
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        ..ContainerPort::default()
    }
}

fn probe_header(name: &str) -> HTTPHeader {
    HTTPHeader {
        name: name.to_owned(),
        value: QUEUE_PROBE_VALUE.to_owned(),
    }
}

/// An environment variable; an empty value is left out, as the API server stores it.
fn env_var(name: &str, value: impl Into<String>) -> EnvVar {
    let value = value.into();
    EnvVar {
        name: name.to_owned(),
        value: Some(value).filter(|v| !v.is_empty()),
        value_from: None,
    }
}

fn field_env_var(name: &str, path: &str, api_version: Option<&str>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: api_version.map(str::to_owned),
                field_path: path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn label(rev: &Revision, key: &str) -> String {
    rev.labels().get(key).cloned().unwrap_or_default()
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    Some(map).filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_recognised() {
        for ok in ["25m", "1", "0.5", "1.5Gi", "100Mi", "1e3", "+1k", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "abc", "1.2.3", "10mb", "1e", "--1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn an_exec_readiness_probe_becomes_a_loopback_tcp_probe_for_the_queue_proxy() {
        let probe = Probe {
            exec: Some(k8s_openapi::api::core::v1::ExecAction {
                command: Some(vec!["true".to_owned()]),
            }),
            period_seconds: Some(5),
            ..Probe::default()
        };
        let rewritten = exec_probe_defaults(&probe, 8080);
        assert_eq!(rewritten.exec, None);
        assert_eq!(
            rewritten.tcp_socket,
            Some(TCPSocketAction {
                host: Some("127.0.0.1".to_owned()),
                port: IntOrString::Int(8080)
            })
        );
        assert_eq!(rewritten.timeout_seconds, Some(1));
    }

    #[test]
    fn an_explicit_probe_port_wins_over_the_user_port() {
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(9000),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        };
        assert_eq!(probe_port(&probe, 8080), 9000);
        assert_eq!(probe_port(&Probe::default(), 8080), 8080);
    }
}
