//! A build step: a container, plus the per-step settings Tekton users expect.

use k8s_openapi::api::core::v1::Container;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// One step of a Build or template: a Kubernetes container (`name`, `image`, `command`, `args`,
/// `env`, `workingDir`, `volumeMounts`, ...) that runs to completion, in order, sharing
/// `/workspace` with the other steps.
///
/// Beyond Knative Build, as in Tekton: `onError: continue` lets the build go on past a failure
/// of this step, and `timeout` bounds this step alone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The container the step runs.
    #[serde(flatten)]
    pub container: Container,

    /// What a failure of this step does to the build (default: stop it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,

    /// The longest this step may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// What a failed step does to its build.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// The build stops and fails with the step's exit code (the default).
    #[default]
    StopAndFail,
    /// The failure is recorded and the next step runs.
    Continue,
}

impl Step {
    /// The step's name (empty when unnamed).
    pub fn name(&self) -> &str {
        &self.container.name
    }

    /// Whether a failure of this step lets the build go on.
    pub fn continues_on_error(&self) -> bool {
        self.on_error == Some(OnError::Continue)
    }
}

impl From<Container> for Step {
    fn from(container: Container) -> Self {
        Self {
            container,
            ..Self::default()
        }
    }
}
