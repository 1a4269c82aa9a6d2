//! Running a Build's steps: the [`StepExecutor`] trait and two executors.
//!
//! - [`LocalExecutor`]: the steps as local processes in a temporary workspace (development,
//!   tests, `knative build run`).
//! - [`PodExecutor`]: the steps as ordered init containers of one Pod sharing `/workspace`, as
//!   Knative Build runs them; the reconciler uses its Pod builder and status reader.
//!
//! Both run a [`BuildPlan`] (a Build validated, defaulted and with its template resolved),
//! report progress as [`BuildEvent`]s, and end with a [`BuildReport`]: every step's
//! [`StepState`] and the [`BuildOutcome`].

mod local;
pub(crate) mod pod;

pub use local::LocalExecutor;
pub use pod::{
    CREDS_INIT_IMAGE, GIT_INIT_IMAGE, NOP_IMAGE, PodExecutor, PodImages, STEP_PREFIX,
    credential_annotations, step_states,
};

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Affinity, Volume};
use knative_core::apis::FieldError;
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

use crate::apis::{Build, BuildTemplateSpec, SourceSpec, Step, StepResult};
use crate::template;

/// What an executor runs: a Build validated, defaulted, and with its template's steps resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildPlan {
    /// The Build's name (for logs and Pod names).
    pub name: String,
    /// The sources, fetched in order before the steps.
    pub sources: Vec<SourceSpec>,
    /// The steps, in order, with unique names (unnamed steps are named `unnamed-<index>`).
    pub steps: Vec<Step>,
    /// The volumes the steps may mount.
    pub volumes: Vec<Volume>,
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// How many times a failed build is run again.
    pub retries: u32,
    /// The service account whose Secrets hold the credentials (Pod only).
    pub service_account_name: Option<String>,
    /// Node labels the Pod must be scheduled on (Pod only).
    pub node_selector: Option<BTreeMap<String, String>>,
    /// The Pod's scheduling constraints (Pod only).
    pub affinity: Option<Affinity>,
}

impl BuildPlan {
    /// The plan of `build`, whose template (if it names one) is `template`.
    ///
    /// # Errors
    /// The Build's validation errors, or a template that is missing or lacks arguments, with
    /// paths from the Build's root.
    pub fn new(build: &Build, template: Option<&BuildTemplateSpec>) -> Result<Self, FieldError> {
        let mut build = build.clone();
        build.set_defaults();
        build.validate()?;
        let resolved = template::resolve(&build.spec, template)?;
        let mut steps = resolved.steps;
        for (i, step) in steps.iter_mut().enumerate() {
            if step.container.name.is_empty() {
                step.container.name = format!("unnamed-{i}");
            }
        }
        Ok(Self {
            name: build.metadata.name.clone().unwrap_or_default(),
            sources: build.spec.all_sources().cloned().collect(),
            steps,
            volumes: resolved.volumes,
            timeout: build.spec.timeout(),
            retries: build.spec.retries.unwrap_or(0),
            service_account_name: build.spec.service_account_name.clone(),
            node_selector: build.spec.node_selector.clone(),
            affinity: build.spec.affinity.clone(),
        })
    }

    /// The name of the step that fetches source `index`: `git-source-<name>` or
    /// `git-source-<index>` (`custom-source-...`, `gcs-source-...` for the other kinds).
    pub fn source_step_name(&self, index: usize) -> String {
        let source = &self.sources[index];
        let kind = if source.git.is_some() {
            "git"
        } else if source.gcs.is_some() {
            "gcs"
        } else {
            "custom"
        };
        match source.name.as_deref() {
            Some(name) if !name.is_empty() => format!("{kind}-source-{name}"),
            _ => format!("{kind}-source-{index}"),
        }
    }

    /// The directory under the workspace that the steps see as the workspace: the `subPath` of
    /// the first source that has one.
    pub fn sub_path(&self) -> Option<&str> {
        self.sources.iter().find_map(|s| s.sub_path.as_deref())
    }
}

/// Where a step is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepState {
    /// Not started yet (or never started: an earlier step failed).
    Waiting,
    /// Running now.
    Running,
    /// Finished.
    Terminated(Termination),
}

/// How a step finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// The exit code (128 + the signal for a process killed by a signal).
    pub exit_code: i32,
    /// `Completed`, `Error`, `StepTimeout`, `BuildTimeout`, `BuildCancelled` or `StartError`.
    pub reason: String,
    /// What happened, for a human (empty for a success).
    pub message: String,
    /// How long the step ran.
    pub elapsed: Duration,
}

impl Termination {
    /// Whether the step succeeded.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && self.reason == REASON_COMPLETED
    }
}

/// The reason of a step that exited 0.
pub const REASON_COMPLETED: &str = "Completed";
/// The reason of a step that exited non-zero.
pub const REASON_ERROR: &str = "Error";
/// The reason of a step killed at its own timeout.
pub const REASON_STEP_TIMEOUT: &str = "StepTimeout";
/// The reason of a step (and build) killed at the build's timeout.
pub const REASON_BUILD_TIMEOUT: &str = "BuildTimeout";
/// The reason of a step (and build) killed because the build was cancelled.
pub const REASON_BUILD_CANCELLED: &str = "BuildCancelled";
/// The reason of a step whose process could not be started.
pub const REASON_START_ERROR: &str = "StartError";
/// The reason of a build that failed because a step failed.
pub const REASON_BUILD_FAILED: &str = "BuildFailed";

/// One step's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Where it is.
    pub state: StepState,
    /// The last lines it wrote (stdout and stderr, in arrival order).
    pub log_tail: Vec<String>,
    /// The results it wrote.
    pub results: Vec<StepResult>,
}

/// How a build ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildOutcome {
    /// Every step succeeded (or failed with `onError: continue`).
    Succeeded,
    /// A step failed, timed out or was cancelled, and the build stopped there.
    Failed {
        /// The step.
        step: String,
        /// Its exit code.
        exit_code: i32,
        /// The build's reason: `BuildFailed`, `StepTimeout`, `BuildTimeout`, `BuildCancelled`
        /// or `StartError`.
        reason: String,
        /// What happened, for a human.
        message: String,
    },
}

/// The end of a build: its outcome and every step of its last attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildReport {
    /// How it ended.
    pub outcome: BuildOutcome,
    /// The steps of the last attempt (sources first), in order.
    pub steps: Vec<StepReport>,
    /// How many attempts ran (1 + the retries used).
    pub attempts: u32,
    /// How long the build took, all attempts together.
    pub elapsed: Duration,
}

impl BuildReport {
    /// Every result of every step, in step order.
    pub fn results(&self) -> impl Iterator<Item = &StepResult> {
        self.steps.iter().flat_map(|s| &s.results)
    }
}

/// Progress of a build, as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildEvent {
    /// An attempt begins (1-based; more than 1 when a failed build is retried).
    AttemptStarted {
        /// The attempt's number.
        attempt: u32,
    },
    /// A step starts.
    StepStarted {
        /// The step's name.
        step: String,
    },
    /// A line a step wrote (stdout or stderr).
    Log {
        /// The step's name.
        step: String,
        /// The line, without its newline.
        line: String,
    },
    /// A step finished.
    StepFinished {
        /// The step's name.
        step: String,
        /// How.
        termination: Termination,
    },
}

/// Where an executor sends [`BuildEvent`]s: nowhere, or a channel.
#[derive(Clone, Debug, Default)]
pub struct Events(Option<mpsc::UnboundedSender<BuildEvent>>);

impl Events {
    /// Events are dropped.
    pub fn none() -> Self {
        Self(None)
    }

    /// Events go to the returned receiver.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<BuildEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(Some(tx)), rx)
    }

    /// Sends `event` (dropped when nobody listens).
    pub fn send(&self, event: BuildEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}

/// Why an executor could not run a build at all (as opposed to a build that ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The plan asks for something this executor cannot do; the path names the field.
    #[error("{message}: {path}")]
    Unsupported {
        /// The field, e.g. `spec.sources[0].gcs`.
        path: String,
        /// Why.
        message: String,
    },
    /// The workspace could not be prepared.
    #[error("cannot prepare the workspace: {0}")]
    Workspace(#[source] std::io::Error),
    /// The Kubernetes API failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Runs a build's steps in order in a shared workspace, reporting each step's state; a timeout
/// or cancellation stops the running step.
#[async_trait]
pub trait StepExecutor: Send + Sync {
    /// Runs `plan` to its end (retrying a failed build `plan.retries` times), sending progress
    /// to `events`; `cancel` stops it (the outcome is then `BuildCancelled`).
    ///
    /// # Errors
    /// When the build cannot run at all; a build that runs and fails is an `Ok` report.
    async fn execute(
        &self,
        plan: &BuildPlan,
        events: &Events,
        cancel: CancellationToken,
    ) -> Result<BuildReport, ExecutorError>;
}
