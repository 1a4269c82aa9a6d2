//! The Build reconciler: Build → Pod on the API server, the Build's status from the Pod.
//!
//! On knative-core's [`Driver`](knative_core::reconciler::Driver):
//!
//! - a new Build gets one Pod ([`PodExecutor::pod`]), named `<build>-pod`, owned by the Build;
//!   its status says `builder: Cluster`, `cluster: {namespace, podName}` and `startTime`;
//! - `stepStates` and `stepsCompleted` follow the Pod's init-container statuses (and
//!   `stepResults` the JSON results a step writes to its termination message,
//!   `[{"name": ..., "value": ...}]`, as on a cluster result files cannot be read back), and
//!   `Succeeded` follows the Pod: Unknown while it runs, True when it succeeded, False with
//!   the failed step when it failed (after `retries` new Pods, `<build>-pod-retry<n>`);
//! - past the Build's timeout (or a step's), or once `spec.status: BuildCancelled`, the Pod is
//!   deleted and the Build fails with reason `BuildTimeout`, `StepTimeout` or `BuildCancelled`;
//! - a finished Build is left alone.
//!
//! ```no_run
//! use knative_build::reconciler::{BuildReconciler, watch_pods};
//! use knative_core::reconciler::Driver;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let watches = client.clone();
//! Driver::new(client, BuildReconciler::default())
//!     .run_with(move |c| watch_pods(c, &watches, None))
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use knative_core::apis::{CONDITION_SUCCEEDED, KnativeObject};
use knative_core::reconciler::{Compact, Context, ReconcileError, Reconciler};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::apis::{
    Build, BuildProvider, BuildStatus, BuildTemplate, BuildTemplateSpec, ClusterBuildTemplate,
    ClusterSpec, Duration as GoDuration, StepResult, TemplateKind,
};
use crate::executor::pod::{BUILD_NAME_LABEL, outcome_of, service_account_secrets};
use crate::executor::{
    BuildOutcome, BuildPlan, PodExecutor, PodImages, REASON_BUILD_CANCELLED, REASON_BUILD_TIMEOUT,
    REASON_STEP_TIMEOUT, STEP_PREFIX, StepState, step_states,
};

/// The reason of a Build whose spec is invalid or whose template cannot be instantiated.
pub const REASON_VALIDATION_FAILED: &str = "BuildValidationFailed";
/// The reason of a Build whose Pod is not running yet.
pub const REASON_PENDING: &str = "Pending";
/// The reason of a Build whose Pod runs.
pub const REASON_BUILDING: &str = "Building";

/// Reconciles Builds into Pods (see the [module](self) documentation).
#[derive(Clone, Debug, Default)]
pub struct BuildReconciler {
    images: PodImages,
}

impl BuildReconciler {
    /// A reconciler whose Pods use `images` for the helper containers.
    pub fn new(images: PodImages) -> Self {
        Self { images }
    }
}

/// Configures the Build controller to watch the Pods of Builds (in `namespace`, or all).
pub fn watch_pods(
    controller: Controller<Compact<Build>>,
    client: &Client,
    namespace: Option<&str>,
) -> Controller<Compact<Build>> {
    let pods = match namespace {
        Some(ns) => Api::<Pod>::namespaced(client.clone(), ns),
        None => Api::<Pod>::all(client.clone()),
    };
    controller.owns(pods, watcher::Config::default().labels(BUILD_NAME_LABEL))
}

#[async_trait]
impl Reconciler<Build> for BuildReconciler {
    async fn reconcile_kind(&self, build: &mut Build, ctx: &Context) -> Result<(), ReconcileError> {
        let now = ctx.now();
        let namespace = build.namespace().unwrap_or_default();
        let name = build.name_any();
        if build
            .status
            .as_ref()
            .is_some_and(|s| s.completion_time.is_some())
        {
            return keep_final_condition(build, ctx, &namespace).await;
        }
        let pods = Api::<Pod>::namespaced(ctx.client().clone(), &namespace);
        let status = build.status.get_or_insert_with(BuildStatus::default);
        status.builder = Some(BuildProvider::Cluster);
        let start = status.start_time.get_or_insert(Time(now)).0;
        let retry = status.retry_count.unwrap_or(0);
        let pod_name = pod_name(&name, retry);
        status.cluster = Some(ClusterSpec {
            namespace: namespace.clone(),
            pod_name: pod_name.clone(),
        });
        let pod = pods.get_opt(&pod_name).await?;
        if let Some(pod) = &pod {
            record_steps(build, pod);
        }

        if build.spec.is_cancelled() {
            let message = format!("Build {name:?} was cancelled");
            return finish_failed(
                build,
                &pods,
                pod.as_ref(),
                REASON_BUILD_CANCELLED,
                &message,
                now,
            )
            .await;
        }
        let timeout = build.spec.timeout();
        let elapsed = Duration::try_from(now.duration_since(start)).unwrap_or_default();
        if elapsed >= timeout {
            let message = format!(
                "Build {name:?} failed to finish within {:?}",
                GoDuration(timeout).to_string()
            );
            return finish_failed(
                build,
                &pods,
                pod.as_ref(),
                REASON_BUILD_TIMEOUT,
                &message,
                now,
            )
            .await;
        }

        let template = template_of(build, ctx.client(), &namespace).await?;
        let plan = BuildPlan::new(build, template.as_ref())
            .map_err(|e| ReconcileError::permanent(REASON_VALIDATION_FAILED, e.to_string()))?;
        PodExecutor::check(&plan)
            .map_err(|e| ReconcileError::permanent(REASON_VALIDATION_FAILED, e.to_string()))?;

        let Some(pod) = pod else {
            let secrets = service_account_secrets(
                ctx.client(),
                &namespace,
                plan.service_account_name.as_deref(),
            )
            .await?;
            let executor = PodExecutor::offline(&namespace).with_images(self.images.clone());
            let owner = build.controller_owner_ref(&());
            let pod = executor.pod(&plan, &pod_name, owner, &secrets);
            pods.create(&PostParams::default(), &pod).await?;
            build.manage_conditions(now).mark_unknown(
                CONDITION_SUCCEEDED,
                REASON_PENDING,
                &format!("Pod {pod_name:?} created"),
            );
            return Err(ReconcileError::RequeueAfter(timeout - elapsed));
        };

        if let Some((step, limit)) = step_over_time(&plan, &pod, now) {
            let message = format!(
                "build step {step:?} did not finish within {limit:?}",
                limit = GoDuration(limit).to_string()
            );
            return finish_failed(build, &pods, Some(&pod), REASON_STEP_TIMEOUT, &message, now)
                .await;
        }

        let steps = step_states(&pod);
        match outcome_of(&pod, &steps) {
            Some(BuildOutcome::Succeeded) => {
                build.manage_conditions(now).mark_true(CONDITION_SUCCEEDED);
                set_completion(build, now);
                Ok(())
            }
            Some(BuildOutcome::Failed {
                reason, message, ..
            }) => {
                if retry < build.spec.retries.unwrap_or(0) {
                    pods.delete(&pod_name, &DeleteParams::background()).await?;
                    let status = build.status.get_or_insert_with(BuildStatus::default);
                    status.retry_count = Some(retry + 1);
                    status.step_states.clear();
                    status.steps_completed.clear();
                    build.manage_conditions(now).mark_unknown(
                        CONDITION_SUCCEEDED,
                        REASON_PENDING,
                        &format!("retrying after: {message}"),
                    );
                    return Err(ReconcileError::RequeueAfter(Duration::ZERO));
                }
                build
                    .manage_conditions(now)
                    .mark_false(CONDITION_SUCCEEDED, &reason, &message);
                set_completion(build, now);
                Ok(())
            }
            None => {
                let (reason, message) = progress(&pod, &steps);
                build
                    .manage_conditions(now)
                    .mark_unknown(CONDITION_SUCCEEDED, reason, &message);
                Err(ReconcileError::RequeueAfter(next_check(
                    &plan,
                    &pod,
                    now,
                    timeout - elapsed,
                )))
            }
        }
    }
}

/// The Pod of attempt `retry` of Build `name`.
fn pod_name(name: &str, retry: u32) -> String {
    if retry == 0 {
        format!("{name}-pod")
    } else {
        format!("{name}-pod-retry{retry}")
    }
}

/// A finished Build whose spec changed: the driver set `Succeeded` Unknown for the new
/// generation; the outcome stands, so the stored condition is put back.
async fn keep_final_condition(
    build: &mut Build,
    ctx: &Context,
    namespace: &str,
) -> Result<(), ReconcileError> {
    let unchanged = build
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition(CONDITION_SUCCEEDED))
        .is_some_and(|c| !c.is_unknown());
    if unchanged {
        return Ok(());
    }
    let stored = Api::<Build>::namespaced(ctx.client().clone(), namespace)
        .get(&build.name_any())
        .await?;
    if let Some(condition) = stored
        .status
        .and_then(|s| s.status.get_condition(CONDITION_SUCCEEDED).cloned())
        && let Some(status) = &mut build.status
    {
        status
            .status
            .conditions
            .retain(|c| c.type_ != CONDITION_SUCCEEDED);
        status.status.conditions.push(condition);
    }
    Ok(())
}

/// Deletes the Pod (if any) and fails the Build with `reason`.
async fn finish_failed(
    build: &mut Build,
    pods: &Api<Pod>,
    pod: Option<&Pod>,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Result<(), ReconcileError> {
    if let Some(pod) = pod {
        match pods
            .delete(&pod.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    build
        .manage_conditions(now)
        .mark_false(CONDITION_SUCCEEDED, reason, message);
    set_completion(build, now);
    Ok(())
}

fn set_completion(build: &mut Build, now: Timestamp) {
    build
        .status
        .get_or_insert_with(BuildStatus::default)
        .completion_time = Some(Time(now));
}

/// `stepStates` (one per init container, Waiting until it has a status) and `stepsCompleted`
/// (the init containers that terminated), as Knative Build reports them.
fn record_steps(build: &mut Build, pod: &Pod) {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    let status = build.status.get_or_insert_with(BuildStatus::default);
    status.step_states = containers
        .iter()
        .map(|c| {
            statuses
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.state.clone())
                .unwrap_or_else(|| ContainerState {
                    waiting: Some(ContainerStateWaiting::default()),
                    ..ContainerState::default()
                })
        })
        .collect();
    status.steps_completed = containers
        .iter()
        .filter(|c| {
            statuses.iter().any(|s| {
                s.name == c.name && s.state.as_ref().is_some_and(|st| st.terminated.is_some())
            })
        })
        .map(|c| c.name.clone())
        .collect();
    status.step_results = containers
        .iter()
        .filter_map(|c| {
            let status = statuses.iter().find(|s| s.name == c.name)?;
            let message = status
                .state
                .as_ref()?
                .terminated
                .as_ref()?
                .message
                .as_deref()?;
            let results: Vec<NamedValue> = serde_json::from_str(message).ok()?;
            let step = c
                .name
                .strip_prefix(STEP_PREFIX)
                .unwrap_or(&c.name)
                .to_owned();
            Some(results.into_iter().map(move |r| StepResult {
                step: step.clone(),
                name: r.name,
                value: r.value,
            }))
        })
        .flatten()
        .collect();
}

/// A result as a step writes it in its termination message (`/dev/termination-log`), as
/// Tekton's steps report theirs: `[{"name": "digest", "value": "sha256:..."}]`.
#[derive(serde::Deserialize)]
struct NamedValue {
    name: String,
    value: String,
}

/// The template the Build names, if it names one and it exists.
async fn template_of(
    build: &Build,
    client: &Client,
    namespace: &str,
) -> Result<Option<BuildTemplateSpec>, kube::Error> {
    let Some(instance) = &build.spec.template else {
        return Ok(None);
    };
    Ok(match instance.kind() {
        TemplateKind::BuildTemplate => Api::<BuildTemplate>::namespaced(client.clone(), namespace)
            .get_opt(&instance.name)
            .await?
            .map(|t| t.spec),
        TemplateKind::ClusterBuildTemplate => Api::<ClusterBuildTemplate>::all(client.clone())
            .get_opt(&instance.name)
            .await?
            .map(|t| t.spec.template),
    })
}

/// A running step that has been running longer than its own timeout.
fn step_over_time(plan: &BuildPlan, pod: &Pod, now: Timestamp) -> Option<(String, Duration)> {
    running_steps(plan, pod).find_map(|(name, started, limit)| {
        let ran = Duration::try_from(now.duration_since(started)).unwrap_or_default();
        (ran >= limit).then_some((name, limit))
    })
}

/// When to look again: at the build's timeout, or earlier at a running step's.
fn next_check(plan: &BuildPlan, pod: &Pod, now: Timestamp, remaining: Duration) -> Duration {
    running_steps(plan, pod)
        .map(|(_, started, limit)| {
            let ran = Duration::try_from(now.duration_since(started)).unwrap_or_default();
            limit.saturating_sub(ran)
        })
        .fold(remaining, Duration::min)
}

/// The plan's steps that run now and have a timeout: (name, started, timeout).
fn running_steps<'a>(
    plan: &'a BuildPlan,
    pod: &'a Pod,
) -> impl Iterator<Item = (String, Timestamp, Duration)> + 'a {
    pod.status
        .iter()
        .flat_map(|s| s.init_container_statuses.iter().flatten())
        .filter_map(move |status| {
            let step = status.name.strip_prefix(STEP_PREFIX)?;
            let limit = plan.steps.iter().find(|s| s.name() == step)?.timeout?.0;
            let started = status
                .state
                .as_ref()?
                .running
                .as_ref()?
                .started_at
                .as_ref()?
                .0;
            Some((step.to_owned(), started, limit))
        })
}

/// The reason and message of a Build whose Pod has not finished.
fn progress(pod: &Pod, steps: &[crate::executor::StepReport]) -> (&'static str, String) {
    if let Some(step) = steps.iter().find(|s| s.state == StepState::Running) {
        return (REASON_BUILDING, format!("running step {:?}", step.name));
    }
    let waiting = pod
        .status
        .iter()
        .flat_map(|s| s.init_container_statuses.iter().flatten())
        .find_map(|s| {
            let waiting = s.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            Some(format!(
                "build step {:?} is waiting: {reason}{}",
                s.name.strip_prefix(STEP_PREFIX).unwrap_or(&s.name),
                waiting
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ))
        });
    (
        REASON_PENDING,
        waiting.unwrap_or_else(|| format!("Pod {:?} is pending", pod.name_any())),
    )
}
