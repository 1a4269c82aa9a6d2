//! Build: a run of steps over sources, on a cluster or on one machine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration as StdDuration;

use k8s_openapi::api::core::v1::{Affinity, Container, ContainerState, EnvVar, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Step, schema, validate_steps, validate_volumes};

/// `spec.status` of a Build that its user cancelled.
pub const BUILD_SPEC_STATUS_CANCELLED: &str = "BuildCancelled";
/// The timeout of a Build that sets none: 10 minutes.
pub const DEFAULT_TIMEOUT: StdDuration = StdDuration::from_secs(10 * 60);
/// The longest timeout a Build may ask for: 24 hours.
pub const MAX_TIMEOUT: StdDuration = StdDuration::from_secs(24 * 60 * 60);

/// The desired state of a Build (`build.knative.dev/v1alpha1`, Knative Build v0.7): where the
/// source comes from and which steps run over it, given inline or by a template.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "build.knative.dev",
    version = "v1alpha1",
    kind = "Build",
    namespaced,
    status = "BuildStatus",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    doc = "Build represents a build of a container image. A Build is made up of a source, and a set of steps. Steps can mount volumes to share data between themselves. A build may be created by instantiating a BuildTemplate.",
    printcolumn = r#"{"name": "Succeeded", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Succeeded')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Succeeded')].reason"}"#,
    printcolumn = r#"{"name": "StartTime", "type": "date", "jsonPath": ".status.startTime"}"#,
    printcolumn = r#"{"name": "CompletionTime", "type": "date", "jsonPath": ".status.completionTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BuildSpec {
    /// The one source of the build, cloned into `/workspace` before the steps run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,

    /// Several sources, each with a `name` and optionally a `targetPath` under `/workspace`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceSpec>,

    /// The steps, in order (or use `template`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_list")]
    pub steps: Vec<Step>,

    /// Volumes the steps may mount, besides the workspace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_list")]
    pub volumes: Vec<Volume>,

    /// The service account the build's Pod runs as; its Secrets annotated
    /// `build.knative.dev/git-*` and `build.knative.dev/docker-*` become the build's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// A template to take the steps from, with arguments for its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateInstantiationSpec>,

    /// Node labels the build's Pod must be scheduled on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// The longest the build may take (default 10m, at most 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,

    /// The scheduling constraints of the build's Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub affinity: Option<Affinity>,

    /// `BuildCancelled` to cancel the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,

    /// How many times a failed build is run again from the start (beyond Knative Build, as
    /// Tekton's `retries`). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// A source of a build: a git repository, a GCS object, or a custom container that fetches it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// A git repository at a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSourceSpec>,

    /// An archive or manifest in Google Cloud Storage (runs on a cluster only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsSourceSpec>,

    /// A container that places the source in `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub custom: Option<Container>,

    /// The directory of the source that the steps see as `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,

    /// The source's name (required in `sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Where under `/workspace` the source goes (default: `/workspace` itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
}

/// A git repository at a revision.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceSpec {
    /// The repository's URL (or, on one machine, a local path).
    pub url: String,
    /// A branch, tag or commit.
    pub revision: String,
}

/// A source in Google Cloud Storage.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GcsSourceSpec {
    /// `Archive` or `Manifest`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `gs://bucket/path`.
    pub location: String,
}

/// Which template a Build takes its steps from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// A namespaced `BuildTemplate` in the Build's namespace (the default).
    #[default]
    BuildTemplate,
    /// A cluster-wide `ClusterBuildTemplate`.
    ClusterBuildTemplate,
}

impl std::fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BuildTemplate => "BuildTemplate",
            Self::ClusterBuildTemplate => "ClusterBuildTemplate",
        })
    }
}

/// A template instantiated with arguments.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateInstantiationSpec {
    /// The template's name.
    pub name: String,
    /// `BuildTemplate` (default) or `ClusterBuildTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TemplateKind>,
    /// Values of the template's parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<ArgumentSpec>,
    /// Environment variables added to every step of the template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_list")]
    pub env: Vec<EnvVar>,
}

/// The value of one template parameter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgumentSpec {
    /// The parameter's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// Where a Build ran.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildProvider {
    /// In a Pod of the cluster.
    Cluster,
    /// On Google Cloud Build.
    Google,
    /// As local processes (`knative build run`), beyond Knative Build.
    Local,
}

/// The Pod a Build runs in.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod's name.
    pub pod_name: String,
}

/// A result a step wrote (a small file under its results directory).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// The step that wrote it.
    pub step: String,
    /// The result's name (the file's name).
    pub name: String,
    /// The file's content.
    pub value: String,
}

/// The observed state of a Build.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildStatus {
    /// Conditions (`Succeeded`) and observed generation.
    #[serde(flatten)]
    pub status: Status,

    /// Where the build runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<BuildProvider>,

    /// The Pod of a build on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSpec>,

    /// When the build started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the build finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// The state of each step (init container), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_list")]
    pub step_states: Vec<ContainerState>,

    /// The names of the steps (init containers) that completed, in order.
    #[serde(default)]
    pub steps_completed: Vec<String>,

    /// The results the steps wrote (beyond Knative Build, as Tekton's step results).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_results: Vec<StepResult>,

    /// How many times the build was run again after failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
}

impl KnativeStatus for BuildStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Build {
    /// A batch set: `Succeeded` is Unknown while the build runs, then True or False.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| ConditionSet::batch(&[]));
        &SET
    }
}

impl BuildSpec {
    /// The timeout in force: the spec's, or [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> StdDuration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0)
    }

    /// Whether the user asked to cancel the build.
    pub fn is_cancelled(&self) -> bool {
        self.status.as_deref() == Some(BUILD_SPEC_STATUS_CANCELLED)
    }

    /// Every source of the build: `source`, then `sources`.
    pub fn all_sources(&self) -> impl Iterator<Item = &SourceSpec> {
        self.source.iter().chain(&self.sources)
    }

    /// Knative Build's defaults: the timeout (10m) and the template kind (`BuildTemplate`).
    /// Idempotent.
    pub fn set_defaults(&mut self) {
        if self.timeout.is_none_or(|t| t.0.is_zero()) {
            self.timeout = Some(Duration(DEFAULT_TIMEOUT));
        }
        if let Some(template) = &mut self.template
            && template.kind.is_none()
        {
            template.kind = Some(TemplateKind::BuildTemplate);
        }
    }

    /// Knative Build's `BuildSpec.Validate` (paths relative to the spec): steps or a template
    /// (not both), one way of giving sources, unique step names, a timeout under 24h.
    pub fn validate(&self) -> FieldError {
        let mut errs = FieldError::default();
        match (&self.template, self.steps.is_empty()) {
            (None, true) => errs = errs.also(FieldError::err_missing_one_of(["template", "steps"])),
            (Some(_), false) => {
                errs = errs.also(FieldError::err_multiple_one_of(["template", "steps"]));
            }
            (Some(template), true) => errs = errs.also(template.validate().via_field("template")),
            (None, false) => {}
        }
        errs = errs.also(validate_steps(&self.steps).via_field("steps"));
        errs = errs.also(validate_volumes(&self.volumes, &self.steps));
        if self.source.is_some() && !self.sources.is_empty() {
            errs = errs.also(FieldError::err_multiple_one_of(["source", "sources"]));
        }
        if let Some(source) = &self.source {
            errs = errs.also(source.validate().via_field("source"));
        }
        let mut names = BTreeSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let mut e = source.validate();
            match source.name.as_deref() {
                None | Some("") => e = e.also(FieldError::err_missing_field(["name"])),
                Some(name) if !names.insert(name) => {
                    e = e.also(
                        FieldError::err_invalid_value(name, "name")
                            .with_details("source names must be unique"),
                    );
                }
                Some(_) => {}
            }
            errs = errs.also(e.via_field_index("sources", i));
        }
        if let Some(timeout) = self.timeout
            && timeout.0 > MAX_TIMEOUT
        {
            errs = errs.also(FieldError::err_out_of_bounds_value(
                timeout,
                "0s",
                Duration(MAX_TIMEOUT),
                "timeout",
            ));
        }
        if let Some(status) = self.status.as_deref()
            && status != BUILD_SPEC_STATUS_CANCELLED
        {
            errs = errs.also(
                FieldError::err_invalid_value(status, "status")
                    .with_details("the only status a user may set is BuildCancelled"),
            );
        }
        errs
    }
}

impl SourceSpec {
    fn validate(&self) -> FieldError {
        let set: Vec<&str> = [
            self.git.is_some().then_some("git"),
            self.gcs.is_some().then_some("gcs"),
            self.custom.is_some().then_some("custom"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut errs = match set.len() {
            0 => FieldError::err_missing_one_of(["git", "gcs", "custom"]),
            1 => FieldError::default(),
            _ => FieldError::err_multiple_one_of(set),
        };
        if let Some(git) = &self.git {
            if git.url.is_empty() {
                errs = errs.also(FieldError::err_missing_field(["git.url"]));
            }
            if git.revision.is_empty() {
                errs = errs.also(FieldError::err_missing_field(["git.revision"]));
            }
        }
        if let Some(gcs) = &self.gcs
            && gcs.location.is_empty()
        {
            errs = errs.also(FieldError::err_missing_field(["gcs.location"]));
        }
        if let Some(custom) = &self.custom
            && custom.image.as_deref().unwrap_or("").is_empty()
        {
            errs = errs.also(FieldError::err_missing_field(["custom.image"]));
        }
        for (field, path) in [
            ("subPath", &self.sub_path),
            ("targetPath", &self.target_path),
        ] {
            if let Some(path) = path
                && (path.starts_with('/') || path.split('/').any(|part| part == ".."))
            {
                errs = errs.also(
                    FieldError::err_invalid_value(path, field)
                        .with_details("must be a relative path inside the workspace"),
                );
            }
        }
        errs
    }
}

impl TemplateInstantiationSpec {
    /// The kind in force (`BuildTemplate` when unset).
    pub fn kind(&self) -> TemplateKind {
        self.kind.unwrap_or_default()
    }

    fn validate(&self) -> FieldError {
        let mut errs = FieldError::default();
        if self.name.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["name"]));
        }
        let mut seen = BTreeSet::new();
        for (i, argument) in self.arguments.iter().enumerate() {
            if argument.name.is_empty() {
                errs = errs
                    .also(FieldError::err_missing_field(["name"]).via_field_index("arguments", i));
            } else if !seen.insert(argument.name.as_str()) {
                errs = errs.also(
                    FieldError::err_invalid_value(&argument.name, "name")
                        .with_details("each argument may be given once")
                        .via_field_index("arguments", i),
                );
            }
        }
        errs
    }
}

impl Build {
    /// Validates the Build as Knative Build's webhook does on create, with paths from the
    /// object's root (`spec.steps[1].name`). Checking the template's parameters needs the
    /// template: see [`crate::template::resolve`].
    ///
    /// # Errors
    /// Every problem found, each with the path of its field.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.spec.validate().via_field("spec").into_result()
    }

    /// Knative Build's defaults (see [`BuildSpec::set_defaults`]).
    pub fn set_defaults(&mut self) {
        self.spec.set_defaults();
    }

    /// Whether the build has finished (`Succeeded` is True or False).
    pub fn is_done(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| {
                s.status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == knative_core::apis::CONDITION_SUCCEEDED)
            })
            .is_some_and(|c| !c.is_unknown())
    }
}
