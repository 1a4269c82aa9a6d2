//! The [`PodExecutor`]: a build as one Pod whose init containers are the steps.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, EmptyDirVolumeSource, Pod, PodSpec, Secret,
    SecretVolumeSource, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    BuildEvent, BuildOutcome, BuildPlan, BuildReport, Events, ExecutorError,
    REASON_BUILD_CANCELLED, REASON_BUILD_FAILED, REASON_BUILD_TIMEOUT, REASON_COMPLETED,
    REASON_ERROR, StepExecutor, StepReport, StepState, Termination,
};
use crate::apis::OnError;
use crate::template::env;

/// The prefix of every init container that runs a step: `build-step-<step>`, as Knative Build
/// names them.
pub const STEP_PREFIX: &str = "build-step-";
/// Knative Build's credential initialiser.
pub const CREDS_INIT_IMAGE: &str =
    "gcr.io/knative-releases/github.com/knative/build/cmd/creds-init";
/// Knative Build's git fetcher.
pub const GIT_INIT_IMAGE: &str = "gcr.io/knative-releases/github.com/knative/build/cmd/git-init";
/// Knative Build's no-op main container.
pub const NOP_IMAGE: &str = "gcr.io/knative-releases/github.com/knative/build/cmd/nop";
/// Knative Build's GCS fetcher.
pub const GCS_FETCHER_IMAGE: &str = "gcr.io/cloud-builders/gcs-fetcher";

/// The label carrying the Build's name on its Pod.
pub const BUILD_NAME_LABEL: &str = "build.knative.dev/buildName";

const WORKSPACE_DIR: &str = "/workspace";
const HOME_DIR: &str = "/builder/home";
const SECRETS_DIR: &str = "/var/build-secrets";
const CREDS_INIT: &str = "credential-initializer";

/// The images of the helper containers of a build Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodImages {
    /// Writes `~/.gitconfig`, `~/.git-credentials`, `~/.ssh` and `~/.docker/config.json` from
    /// the service account's Secrets.
    pub creds_init: String,
    /// Fetches a git source into the workspace.
    pub git_init: String,
    /// Fetches a GCS source.
    pub gcs_fetcher: String,
    /// The main container, which does nothing: a Pod needs one.
    pub nop: String,
}

impl Default for PodImages {
    fn default() -> Self {
        Self {
            creds_init: CREDS_INIT_IMAGE.to_owned(),
            git_init: GIT_INIT_IMAGE.to_owned(),
            gcs_fetcher: GCS_FETCHER_IMAGE.to_owned(),
            nop: NOP_IMAGE.to_owned(),
        }
    }
}

/// Runs a build as one Pod, as Knative Build does: the steps are ordered init containers
/// sharing `/workspace` (an emptyDir), with `HOME=/builder/home`; a credential initialiser and
/// the source fetchers come first; a no-op container is the Pod's main container. Step states
/// are read back from the Pod's init-container statuses.
///
/// Results: a step in a Pod reports them as JSON in its termination message
/// (`/dev/termination-log`: `[{"name": "digest", "value": "..."}]`), which the Build reconciler
/// surfaces as `stepResults`; `onError: continue` is refused ([`PodExecutor::check`]).
///
/// [`PodExecutor::pod`] and [`step_states`] are pure and are what the Build reconciler uses;
/// [`StepExecutor::execute`] creates the Pod and follows it through the API (logs are the
/// kubelet's, not streamed here).
#[derive(Clone)]
pub struct PodExecutor {
    client: Option<Client>,
    namespace: String,
    images: PodImages,
}

impl std::fmt::Debug for PodExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodExecutor")
            .field("namespace", &self.namespace)
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

impl PodExecutor {
    /// An executor running Pods in `namespace` through `client`, with Knative Build's images.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client: Some(client),
            namespace: namespace.into(),
            images: PodImages::default(),
        }
    }

    /// An executor that only builds Pods (no client): for the reconciler and tests.
    pub fn offline(namespace: impl Into<String>) -> Self {
        Self {
            client: None,
            namespace: namespace.into(),
            images: PodImages::default(),
        }
    }

    /// Uses these helper images.
    #[must_use]
    pub fn with_images(mut self, images: PodImages) -> Self {
        self.images = images;
        self
    }

    /// Checks that a Pod can run `plan`: `onError: continue` needs a wrapper around the step's
    /// process that a plain init container does not have.
    ///
    /// # Errors
    /// [`ExecutorError::Unsupported`] naming the step.
    pub fn check(plan: &BuildPlan) -> Result<(), ExecutorError> {
        match plan
            .steps
            .iter()
            .position(|s| s.on_error == Some(OnError::Continue))
        {
            Some(i) => Err(ExecutorError::Unsupported {
                path: format!("spec.steps[{i}].onError"),
                message: "onError: continue runs on the LocalExecutor only; an init container \
                          that fails stops its Pod"
                    .to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The Pod that runs `plan`, named `pod_name`, owned by `owner`, with credentials from
    /// `secrets` (the service account's Secrets; only those annotated `build.knative.dev/git-*`
    /// or `build.knative.dev/docker-*` are used).
    pub fn pod(
        &self,
        plan: &BuildPlan,
        pod_name: &str,
        owner: Option<OwnerReference>,
        secrets: &[Secret],
    ) -> Pod {
        let sub_path = plan.sub_path().map(str::to_owned);
        let mounts = |sub_path: Option<String>| {
            vec![
                mount("workspace", WORKSPACE_DIR, sub_path),
                mount("home", HOME_DIR, None),
            ]
        };
        let builder_env = || vec![env("HOME", HOME_DIR)];

        let mut volumes = plan.volumes.clone();
        volumes.extend(["workspace", "home"].map(empty_dir));
        let mut init = Vec::new();

        let (creds_args, secret_names) = credential_annotations(secrets);
        let mut creds_mounts = mounts(None);
        for secret in &secret_names {
            let volume = format!("secret-volume-{secret}");
            creds_mounts.push(mount(&volume, &format!("{SECRETS_DIR}/{secret}"), None));
            volumes.push(Volume {
                name: volume,
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.clone()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
        init.push(Container {
            name: format!("{STEP_PREFIX}{CREDS_INIT}"),
            image: Some(self.images.creds_init.clone()),
            args: Some(creds_args),
            env: Some(builder_env()),
            volume_mounts: Some(creds_mounts),
            working_dir: Some(WORKSPACE_DIR.to_owned()),
            ..Container::default()
        });

        for (i, source) in plan.sources.iter().enumerate() {
            let name = format!("{STEP_PREFIX}{}", plan.source_step_name(i));
            let dest = match source.target_path.as_deref() {
                Some(target) if !target.is_empty() => format!("{WORKSPACE_DIR}/{target}"),
                _ => WORKSPACE_DIR.to_owned(),
            };
            let mut container = if let Some(git) = &source.git {
                Container {
                    image: Some(self.images.git_init.clone()),
                    args: Some(vec![
                        "-url".into(),
                        git.url.clone(),
                        "-revision".into(),
                        git.revision.clone(),
                        "-path".into(),
                        dest,
                    ]),
                    ..Container::default()
                }
            } else if let Some(gcs) = &source.gcs {
                Container {
                    image: Some(self.images.gcs_fetcher.clone()),
                    args: Some(vec![
                        "--type".into(),
                        gcs.type_.clone().unwrap_or_else(|| "Archive".into()),
                        "--location".into(),
                        gcs.location.clone(),
                        "--dest_dir".into(),
                        dest,
                    ]),
                    ..Container::default()
                }
            } else {
                source.custom.clone().unwrap_or_default()
            };
            container.name = name;
            complete(&mut container, mounts(None), builder_env());
            init.push(container);
        }

        for step in &plan.steps {
            let mut container = step.container.clone();
            container.name = format!("{STEP_PREFIX}{}", step.name());
            complete(&mut container, mounts(sub_path.clone()), builder_env());
            init.push(container);
        }

        let mut labels = BTreeMap::new();
        labels.insert(BUILD_NAME_LABEL.to_owned(), plan.name.clone());
        Pod {
            metadata: ObjectMeta {
                name: Some(pod_name.to_owned()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                owner_references: owner.map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".to_owned()),
                init_containers: Some(init),
                containers: vec![Container {
                    name: "nop".to_owned(),
                    image: Some(self.images.nop.clone()),
                    ..Container::default()
                }],
                volumes: Some(volumes),
                service_account_name: plan.service_account_name.clone(),
                node_selector: plan.node_selector.clone(),
                affinity: plan.affinity.clone(),
                ..PodSpec::default()
            }),
            status: None,
        }
    }
}

/// Adds the workspace mounts (before the step's own), the builder environment and the default
/// working directory to a step's container.
fn complete(
    container: &mut Container,
    mut mounts: Vec<VolumeMount>,
    mut env: Vec<k8s_openapi::api::core::v1::EnvVar>,
) {
    mounts.extend(container.volume_mounts.take().unwrap_or_default());
    container.volume_mounts = Some(mounts);
    env.extend(container.env.take().unwrap_or_default());
    container.env = Some(env);
    if container.working_dir.as_deref().is_none_or(str::is_empty) {
        container.working_dir = Some(WORKSPACE_DIR.to_owned());
    }
}

fn mount(name: &str, path: &str, sub_path: Option<String>) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        sub_path,
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// The credential initialiser's arguments for `secrets` (Knative Build's creds-init flags:
/// `-basic-git=<secret>=<url>`, `-ssh-git=<secret>=<url>`, `-basic-docker=<secret>=<url>`) and
/// the names of the Secrets to mount, from each Secret's `build.knative.dev/git-*` and
/// `build.knative.dev/docker-*` annotations and its type. Secrets without such annotations, or
/// of another type, are not used.
pub fn credential_annotations(secrets: &[Secret]) -> (Vec<String>, Vec<String>) {
    let mut args = Vec::new();
    let mut names = Vec::new();
    for secret in secrets {
        let Some(name) = secret.metadata.name.clone() else {
            continue;
        };
        let kind = match secret.type_.as_deref() {
            Some("kubernetes.io/basic-auth") => "basic",
            Some("kubernetes.io/ssh-auth") => "ssh",
            _ => continue,
        };
        let mut used = false;
        for (key, url) in secret.metadata.annotations.iter().flatten() {
            let Some(suffix) = key.strip_prefix("build.knative.dev/") else {
                continue;
            };
            let target = if suffix.starts_with("git-") {
                "git"
            } else if suffix.starts_with("docker-") && kind == "basic" {
                "docker"
            } else {
                continue;
            };
            args.push(format!("-{kind}-{target}={name}={url}"));
            used = true;
        }
        if used {
            names.push(name);
        }
    }
    (args, names)
}

/// The state of every step of a build Pod (credential initialiser and sources included), in
/// order, from its init-container statuses; steps without a status yet are Waiting.
pub fn step_states(pod: &Pod) -> Vec<StepReport> {
    let statuses: Vec<ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default();
    containers
        .iter()
        .map(|c| {
            let status = statuses.iter().find(|s| s.name == c.name);
            StepReport {
                name: c
                    .name
                    .strip_prefix(STEP_PREFIX)
                    .unwrap_or(&c.name)
                    .to_owned(),
                state: status
                    .and_then(|s| s.state.as_ref())
                    .map_or(StepState::Waiting, state_of),
                log_tail: Vec::new(),
                results: Vec::new(),
            }
        })
        .collect()
}

/// A container's state as a step's.
pub(crate) fn state_of(state: &ContainerState) -> StepState {
    if let Some(t) = &state.terminated {
        let elapsed = match (&t.started_at, &t.finished_at) {
            (Some(start), Some(end)) => {
                Duration::try_from(end.0.duration_since(start.0)).unwrap_or_default()
            }
            _ => Duration::ZERO,
        };
        let reason = t.reason.clone().unwrap_or_else(|| {
            if t.exit_code == 0 {
                REASON_COMPLETED.to_owned()
            } else {
                REASON_ERROR.to_owned()
            }
        });
        StepState::Terminated(Termination {
            exit_code: t.exit_code,
            reason,
            message: t.message.clone().unwrap_or_default(),
            elapsed,
        })
    } else if state.running.is_some() {
        StepState::Running
    } else {
        StepState::Waiting
    }
}

/// The outcome of a finished build Pod (`None` while it runs): the first step that failed, or
/// success when the Pod succeeded.
pub(crate) fn outcome_of(pod: &Pod, steps: &[StepReport]) -> Option<BuildOutcome> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let failed = steps.iter().find_map(|s| match &s.state {
        StepState::Terminated(t) if t.exit_code != 0 => Some((s, t)),
        _ => None,
    });
    match (phase, failed) {
        (Some("Succeeded"), _) => Some(BuildOutcome::Succeeded),
        (_, Some((step, t))) => Some(BuildOutcome::Failed {
            step: step.name.clone(),
            exit_code: t.exit_code,
            reason: REASON_BUILD_FAILED.to_owned(),
            message: format!(
                "build step {:?} exited with code {}{}",
                step.name,
                t.exit_code,
                if t.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", t.message)
                }
            ),
        }),
        (Some("Failed"), None) => {
            let message = pod
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_else(|| "the build's Pod failed".to_owned());
            Some(BuildOutcome::Failed {
                step: String::new(),
                exit_code: -1,
                reason: REASON_BUILD_FAILED.to_owned(),
                message,
            })
        }
        _ => None,
    }
}

/// The Secrets of service account `name` (default: `default`) in `namespace`.
///
/// # Errors
/// When the API fails; a missing service account or Secret is skipped.
pub(crate) async fn service_account_secrets(
    client: &Client,
    namespace: &str,
    name: Option<&str>,
) -> Result<Vec<Secret>, kube::Error> {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    let Some(account) = accounts.get_opt(name.unwrap_or("default")).await? else {
        return Ok(Vec::new());
    };
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut found = Vec::new();
    for reference in account.secrets.iter().flatten() {
        if let Some(name) = &reference.name
            && let Some(secret) = secrets.get_opt(name).await?
        {
            found.push(secret);
        }
    }
    Ok(found)
}

#[async_trait]
impl StepExecutor for PodExecutor {
    async fn execute(
        &self,
        plan: &BuildPlan,
        events: &Events,
        cancel: CancellationToken,
    ) -> Result<BuildReport, ExecutorError> {
        Self::check(plan)?;
        let client = self
            .client
            .clone()
            .ok_or_else(|| ExecutorError::Unsupported {
                path: String::new(),
                message: "an offline PodExecutor only builds Pods".to_owned(),
            })?;
        let pods = Api::<Pod>::namespaced(client.clone(), &self.namespace);
        let secrets = service_account_secrets(
            &client,
            &self.namespace,
            plan.service_account_name.as_deref(),
        )
        .await?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            events.send(BuildEvent::AttemptStarted { attempt });
            let name = format!("{}-pod-{attempt}", plan.name);
            pods.create(
                &PostParams::default(),
                &self.pod(plan, &name, None, &secrets),
            )
            .await?;
            let deadline = Instant::now() + plan.timeout;
            let mut seen: Vec<StepState> = Vec::new();
            let (outcome, steps) = loop {
                let pod = pods.get(&name).await?;
                let steps = step_states(&pod);
                for (i, step) in steps.iter().enumerate() {
                    let before = seen.get(i).cloned().unwrap_or(StepState::Waiting);
                    if before == step.state {
                        continue;
                    }
                    if before == StepState::Waiting {
                        events.send(BuildEvent::StepStarted {
                            step: step.name.clone(),
                        });
                    }
                    if let StepState::Terminated(t) = &step.state {
                        events.send(BuildEvent::StepFinished {
                            step: step.name.clone(),
                            termination: t.clone(),
                        });
                    }
                }
                seen = steps.iter().map(|s| s.state.clone()).collect();
                if let Some(outcome) = outcome_of(&pod, &steps) {
                    break (outcome, steps);
                }
                let stop = tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => None,
                    () = tokio::time::sleep_until(deadline) => Some(REASON_BUILD_TIMEOUT),
                    () = cancel.cancelled() => Some(REASON_BUILD_CANCELLED),
                };
                if let Some(reason) = stop {
                    pods.delete(&name, &DeleteParams::default()).await?;
                    let step = steps
                        .iter()
                        .find(|s| s.state == StepState::Running)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    let message = if reason == REASON_BUILD_TIMEOUT {
                        format!(
                            "Build {:?} failed to finish within {:?}",
                            plan.name, plan.timeout
                        )
                    } else {
                        format!("Build {:?} was cancelled", plan.name)
                    };
                    break (
                        BuildOutcome::Failed {
                            step,
                            exit_code: 137,
                            reason: reason.to_owned(),
                            message,
                        },
                        steps,
                    );
                }
            };
            let retry = matches!(&outcome, BuildOutcome::Failed { reason, .. } if reason != REASON_BUILD_CANCELLED)
                && attempt <= plan.retries;
            if !retry {
                return Ok(BuildReport {
                    outcome,
                    steps,
                    attempts: attempt,
                    elapsed: started.elapsed(),
                });
            }
        }
    }
}
