//! The Revision reconciler: a Revision becomes a Deployment — its containers plus the
//! queue-proxy sidecar — and a PodAutoscaler, and its conditions follow theirs, as Knative's
//! `pkg/reconciler/revision` does.
//!
//! - **Deployment** `<revision>-deployment` ([`make_deployment`]): the serving container keeps
//!   one port, `user-port` (8080 unless the Revision sets one), announced in `PORT`; every user
//!   container gets `K_REVISION`, `K_CONFIGURATION`, `K_SERVICE` and a preStop hook that waits
//!   for the queue-proxy to drain. The serving container's HTTP, TCP and gRPC readiness probes
//!   move to the queue-proxy (`SERVING_READINESS_PROBE`, rewritten to reach the container over
//!   loopback), whose own readiness probe is an HTTP GET of its serving port with
//!   `K-Network-Probe: queue`. Replicas start at the initial scale, the termination grace
//!   period is the request timeout, and labels carry the Revision's name and UID.
//! - **PodAutoscaler** `<revision>` ([`make_pod_autoscaler`]): the autoscaler class and metric,
//!   the container concurrency, the Deployment as scale target, the protocol and reachability.
//! - **Conditions**: `ResourcesAvailable` from the Deployment (its progress and replica
//!   failures) and from its pods when none is available (unschedulable, an image that cannot
//!   be pulled once the progress deadline passed); `ContainerHealthy` False `ExitCode<N>` when
//!   the serving container terminated; `Active`, `actualReplicas` and `desiredReplicas` from
//!   the PodAutoscaler, which also marks resources available and containers healthy once it
//!   reached the initial scale.
//!
//! Children are written only when they differ from what the Revision asks for: a Deployment
//! that still holds every value we set (whatever the API server defaulted around them) is left
//! alone; one someone edited is put back. A Deployment or PodAutoscaler of the same name that the
//! Revision does not control is refused (`NotOwned`).
//!
//! ```no_run
//! use knative_core::reconciler::{Caches, Driver};
//! use knative_serving::reconciler::revision::{DeploymentConfig, RevisionReconciler, watch_children};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let reconciler = RevisionReconciler::new(DeploymentConfig {
//!     queue_sidecar_image: "registry.example.com/queue-proxy:v1".to_owned(),
//!     ..DeploymentConfig::default()
//! });
//! let caches = Caches::new(client.clone(), None);
//! Driver::new(client, reconciler)
//!     .with_caches(caches.clone())
//!     .run_with(move |controller| watch_children(controller, &caches))
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod lifecycle;
pub(crate) mod resources;
mod semantic;

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use knative_core::apis::{CONDITION_READY, KnativeObject};
use knative_core::config::{
    Config, DEFAULT_INIT_CONTAINER_NAME, DEFAULT_USER_CONTAINER_NAME, SERVING_NAMESPACE,
};
use knative_core::reconciler::{Caches, Compact, Context, ReconcileError, Reconciler};
use kube::api::{ListParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::apis::serving::v1::{
    REVISION_CONDITION_CONTAINER_HEALTHY, REVISION_CONDITION_RESOURCES_AVAILABLE,
};
use crate::apis::{Defaults, PodAutoscaler, Revision, SetDefaults};
use crate::reconciler::children::{api_failure, refuse_not_owned};

pub use lifecycle::{
    REASON_DEPLOYING, REASON_NOT_OWNED, REASON_PROGRESS_DEADLINE_EXCEEDED, REASON_REVISION_READY,
};
pub use resources::{
    AUTOSCALING_QUEUE_METRICS_PORT, DEFAULT_USER_PORT, KUBELET_PROBE_HEADER, NETWORK_PROBE_HEADER,
    PROFILING_PORT, QUEUE_ADMIN_PORT, QUEUE_CONTAINER_NAME, QUEUE_DRAIN_PATH, QUEUE_HTTP_PORT,
    QUEUE_HTTP2_PORT, QUEUE_HTTPS_PORT, USER_PORT_NAME, USER_QUEUE_METRICS_PORT, deployment_name,
    make_deployment, make_pod_autoscaler, pod_autoscaler_name,
};

/// The queue-proxy image used when none is configured.
pub const DEFAULT_QUEUE_SIDECAR_IMAGE: &str = "ghcr.io/knative-rs/queue-proxy:latest";
/// Knative's default progress deadline of a Revision's Deployment.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// Knative's default metrics domain of the queue-proxy (`METRICS_DOMAIN`).
pub const DEFAULT_METRICS_DOMAIN: &str = "knative.dev/internal/serving";

/// How Revisions become Deployments: the settings of Knative's `config-deployment` (and the
/// few others the queue-proxy receives) that the Revision reconciler uses.
///
/// [`DeploymentConfig::default()`] holds Knative's defaults, with this project's queue-proxy
/// image.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentConfig {
    /// `queue-sidecar-image`: the image of the queue-proxy sidecar.
    pub queue_sidecar_image: String,
    /// `progress-deadline`: how long a Deployment may go without progress before its Revision
    /// fails (600 s); the Revision's `serving.knative.dev/progress-deadline` annotation
    /// overrides it.
    pub progress_deadline: Duration,
    /// `queue-sidecar-cpu-request` (`25m`).
    pub queue_sidecar_cpu_request: Option<Quantity>,
    /// `queue-sidecar-cpu-limit` (none).
    pub queue_sidecar_cpu_limit: Option<Quantity>,
    /// `queue-sidecar-memory-request` (none).
    pub queue_sidecar_memory_request: Option<Quantity>,
    /// `queue-sidecar-memory-limit` (none).
    pub queue_sidecar_memory_limit: Option<Quantity>,
    /// `queue-sidecar-ephemeral-storage-request` (none).
    pub queue_sidecar_ephemeral_storage_request: Option<Quantity>,
    /// `queue-sidecar-ephemeral-storage-limit` (none).
    pub queue_sidecar_ephemeral_storage_limit: Option<Quantity>,
    /// The namespace of Knative's own components (`SYSTEM_NAMESPACE`, `knative-serving`).
    pub system_namespace: String,
    /// The domain of the queue-proxy's metrics (`METRICS_DOMAIN`).
    pub metrics_domain: String,
    /// `config-observability`'s `profiling.enable`: the queue-proxy serves profiles on port
    /// 8008 (false).
    pub enable_profiling: bool,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self {
            queue_sidecar_image: DEFAULT_QUEUE_SIDECAR_IMAGE.to_owned(),
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
            queue_sidecar_cpu_request: Some(Quantity("25m".to_owned())),
            queue_sidecar_cpu_limit: None,
            queue_sidecar_memory_request: None,
            queue_sidecar_memory_limit: None,
            queue_sidecar_ephemeral_storage_request: None,
            queue_sidecar_ephemeral_storage_limit: None,
            system_namespace: SERVING_NAMESPACE.to_owned(),
            metrics_domain: DEFAULT_METRICS_DOMAIN.to_owned(),
            enable_profiling: false,
        }
    }
}

/// Reconciles Revisions into Deployments and PodAutoscalers (Knative's revision reconciler).
///
/// Run it with knative-core's [`Driver`](knative_core::reconciler::Driver), adding the watches
/// of [`watch_children`] so that changes of the children reach the Revision.
#[derive(Clone, Debug, Default)]
pub struct RevisionReconciler {
    config: DeploymentConfig,
}

impl RevisionReconciler {
    /// A reconciler that builds Deployments as `config` says.
    pub fn new(config: DeploymentConfig) -> Self {
        Self { config }
    }

    /// How this reconciler builds Deployments.
    pub fn config(&self) -> &DeploymentConfig {
        &self.config
    }
}

#[async_trait]
impl Reconciler<Revision> for RevisionReconciler {
    async fn reconcile_kind(
        &self,
        rev: &mut Revision,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let ready_before = lifecycle::is_ready(rev);
        // Knative's webhook defaults every Revision before its reconciler sees it; Revisions
        // created without the webhook get the same children. (The spec is not written back.)
        rev.set_defaults(&webhook_defaults(ctx.config(), rev));

        let deployment = self.reconcile_deployment(rev, ctx).await?;
        self.reconcile_pod_autoscaler(rev, ctx, &deployment).await?;

        let ready_after = lifecycle::is_true(rev, CONDITION_READY);
        if !ready_before && ready_after {
            ctx.publish(
                kube::runtime::events::EventType::Normal,
                REASON_REVISION_READY,
                "Revision becomes ready upon all resources being ready",
            )
            .await;
        }
        Ok(())
    }
}

impl RevisionReconciler {
    /// `reconcileDeployment`: create the Deployment, or put it back in shape, and report on it
    /// and, when it wants pods but has none available, on its first pod.
    async fn reconcile_deployment(
        &self,
        rev: &mut Revision,
        ctx: &Context,
    ) -> Result<Deployment, ReconcileError> {
        let namespace = rev.namespace().unwrap_or_default();
        let name = deployment_name(rev);
        let deployments = ctx.lister::<Deployment>(&namespace);
        let api = &Api::<Deployment>::namespaced(ctx.client().clone(), &namespace);
        let now = ctx.now();

        let Some(have) = deployments
            .get(&name)
            .await
            .map_err(|e| api_failure("get", "deployment", &name, e))?
        else {
            let mut conditions = rev.manage_conditions(now);
            conditions.mark_unknown(REVISION_CONDITION_RESOURCES_AVAILABLE, REASON_DEPLOYING, "");
            conditions.mark_unknown(REVISION_CONDITION_CONTAINER_HEALTHY, REASON_DEPLOYING, "");
            let want = make_deployment(rev, ctx.config(), &self.config);
            let created = api
                .create(&PostParams::default(), &want)
                .await
                .map_err(|e| api_failure("create", "deployment", &name, e))?;
            tracing::info!(revision = %rev.name_any(), deployment = %name, "created deployment");
            return Ok(created);
        };
        if !resources::is_controlled_by(&have.metadata, rev) {
            return Err(refuse_not_owned(
                rev,
                REVISION_CONDITION_RESOURCES_AVAILABLE,
                "Deployment",
                &name,
                now,
            ));
        }

        let deployment = self
            .check_and_update_deployment(rev, ctx, api, have)
            .await?;
        lifecycle::propagate_deployment_status(rev, deployment.status.as_ref(), now);

        // A container that keeps crashing, or cannot start: pods wanted, none available.
        let wanted = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let available = deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if wanted > 0 && available == 0 {
            self.propagate_first_pod(rev, ctx, &namespace, &deployment)
                .await;
        }
        Ok(deployment)
    }

    /// `checkAndUpdateDeployment`: the spec we want, with the current scale (the autoscaler's)
    /// and selector (immutable); written only when the stored spec does not hold it.
    async fn check_and_update_deployment(
        &self,
        rev: &Revision,
        ctx: &Context,
        api: &Api<Deployment>,
        have: Deployment,
    ) -> Result<Deployment, ReconcileError> {
        let name = have.name_any();
        let want = make_deployment(rev, ctx.config(), &self.config);
        let mut spec = want.spec.unwrap_or_default();
        if let Some(have_spec) = have.spec.as_ref() {
            spec.replicas = have_spec.replicas;
            spec.selector = have_spec.selector.clone();
        }
        let have_json = serde_json::to_value(&have.spec).unwrap_or_default();
        let want_json = serde_json::to_value(&spec).unwrap_or_default();
        if semantic::contains(&have_json, &want_json) {
            return Ok(have);
        }

        let mut desired = have;
        desired.spec = Some(spec);
        // New labels are carried over; existing ones are left to whoever set them.
        let labels = desired.metadata.labels.get_or_insert_with(Default::default);
        for (key, value) in want.metadata.labels.into_iter().flatten() {
            labels.entry(key).or_insert(value);
        }
        let updated = api
            .replace(&name, &PostParams::default(), &desired)
            .await
            .map_err(|e| api_failure("update", "deployment", &name, e))?;
        tracing::info!(revision = %rev.name_any(), deployment = %name, "updated deployment to match its revision");
        Ok(updated)
    }

    /// Reports why the first of the Deployment's pods is not available. Listing pods is best
    /// effort: a failure is logged, as in Knative.
    async fn propagate_first_pod(
        &self,
        rev: &mut Revision,
        ctx: &Context,
        namespace: &str,
        deployment: &Deployment,
    ) {
        let selector = deployment
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods = Api::<Pod>::namespaced(ctx.client().clone(), namespace);
        let list = match pods
            .list(&ListParams::default().match_any().labels(&selector))
            .await
        {
            Ok(list) => list,
            Err(err) => {
                tracing::error!(revision = %rev.name_any(), %err, "failed to list the revision's pods");
                return;
            }
        };
        // Arbitrarily the first pod: they should all be failing alike.
        let Some(pod) = list.items.first() else {
            return;
        };
        let serving = resources::serving_container(rev)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let timed_out = lifecycle::has_deployment_timed_out(deployment);
        lifecycle::propagate_pod_status(rev, pod, &serving, timed_out, ctx.now());
    }

    /// `reconcilePA`: create the PodAutoscaler, or put its spec back, and report on it.
    async fn reconcile_pod_autoscaler(
        &self,
        rev: &mut Revision,
        ctx: &Context,
        deployment: &Deployment,
    ) -> Result<(), ReconcileError> {
        let namespace = rev.namespace().unwrap_or_default();
        let name = pod_autoscaler_name(rev);
        let autoscalers = ctx.lister::<PodAutoscaler>(&namespace);
        let api = autoscalers.api();
        let want = make_pod_autoscaler(rev, ctx.config(), Some(deployment));

        let pa = match autoscalers
            .get(&name)
            .await
            .map_err(|e| api_failure("get", "PodAutoscaler", &name, e))?
        {
            None => {
                let created = api
                    .create(&PostParams::default(), &want)
                    .await
                    .map_err(|e| api_failure("create", "PodAutoscaler", &name, e))?;
                tracing::info!(revision = %rev.name_any(), "created PodAutoscaler");
                created
            }
            Some(pa) if !resources::is_controlled_by(&pa.metadata, rev) => {
                return Err(refuse_not_owned(
                    rev,
                    REVISION_CONDITION_RESOURCES_AVAILABLE,
                    "PodAutoscaler",
                    &name,
                    ctx.now(),
                ));
            }
            Some(pa) if pa.spec == want.spec => pa,
            Some(mut pa) => {
                pa.spec = want.spec;
                let updated = api
                    .replace(&name, &PostParams::default(), &pa)
                    .await
                    .map_err(|e| api_failure("update", "PodAutoscaler", &name, e))?;
                tracing::info!(revision = %rev.name_any(), "updated PodAutoscaler to match its revision");
                updated
            }
        };
        lifecycle::propagate_autoscaler_status(rev, &pa.status.unwrap_or_default(), ctx.now());
        Ok(())
    }
}

/// Adds to a Revision controller what makes it react to its children: the Deployments and
/// PodAutoscalers Revisions own (from the shared informers of `caches`), and the pods of
/// Revisions (by their `serving.knative.dev/revision` label, with a watch of their own: no
/// reconciler reads pods from a cache), whose failures the Revision reports.
///
/// Knative reacts to pods only through their Deployment and PodAutoscaler; watching the
/// (labelled) pods too makes a crash loop or an image pull failure show at once.
pub fn watch_children(
    controller: Controller<Compact<Revision>>,
    caches: &Caches,
) -> Controller<Compact<Revision>> {
    let pods = caches.api::<Pod>();
    let labelled = watcher::Config::default().labels(resources::REVISION_UID_LABEL_KEY);
    controller
        .owns_shared_stream(caches.changes::<Deployment>())
        .owns_shared_stream(caches.changes::<PodAutoscaler>())
        .watches(pods, labelled, |pod: Pod| {
            let revision = pod.labels().get(resources::REVISION_LABEL_KEY).cloned();
            let namespace = pod.namespace();
            revision
                .zip(namespace)
                .map(|(name, ns)| ObjectRef::<Compact<Revision>>::new(&name).within(&ns))
        })
}

/// The values of Knative's `config-defaults` (and `config-autoscaler`) that defaulting uses.
fn webhook_defaults(config: &Config, rev: &Revision) -> Defaults {
    let defaults = &config.defaults;
    Defaults {
        revision_timeout_seconds: defaults.revision_timeout_seconds,
        max_revision_timeout_seconds: defaults.max_revision_timeout_seconds,
        container_concurrency: defaults.container_concurrency,
        container_concurrency_max_limit: defaults.container_concurrency_max_limit,
        allow_container_concurrency_zero: defaults.allow_container_concurrency_zero,
        user_container_name: defaults
            .user_container_name(&rev.metadata)
            .unwrap_or_else(|_| DEFAULT_USER_CONTAINER_NAME.to_owned()),
        init_container_name: defaults
            .init_container_name(&rev.metadata)
            .unwrap_or_else(|_| DEFAULT_INIT_CONTAINER_NAME.to_owned()),
        enable_service_links: defaults.enable_service_links,
        allow_zero_initial_scale: config.autoscaler.allow_zero_initial_scale,
        max_scale_limit: config.autoscaler.max_scale_limit,
        ..Defaults::default()
    }
}
