//! Revision: an immutable snapshot of code and configuration.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{ConditionSet, FieldError, KnativeObject, KnativeStatus, Status};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

use crate::apis::serving::{self, metadata, pod_spec};
use crate::apis::{Defaults, SetDefaults, Validate, autoscaling, schema};

/// Condition: the Revision's Kubernetes resources (Deployment, PodAutoscaler, ...) are
/// provisioned.
pub const REVISION_CONDITION_RESOURCES_AVAILABLE: &str = "ResourcesAvailable";
/// Condition: the Revision's containers passed their readiness checks.
pub const REVISION_CONDITION_CONTAINER_HEALTHY: &str = "ContainerHealthy";
/// Condition: the Revision is receiving traffic (has pods, or the activator in front). It is
/// informational: it never gates `Ready`, so a Revision scaled to zero stays Ready.
pub const REVISION_CONDITION_ACTIVE: &str = "Active";

/// The desired state of a Revision: a Kubernetes pod spec plus Knative's request settings
/// (`serving.knative.dev/v1` Revision).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serving.knative.dev",
    version = "v1",
    kind = "Revision",
    namespaced,
    status = "RevisionStatus",
    derive = "Default",
    derive = "PartialEq",
    shortname = "rev",
    category = "all",
    category = "knative",
    category = "serving",
    doc = "Revision is an immutable snapshot of code and configuration. A revision references a container image. Revisions are created by updates to a Configuration.",
    printcolumn = r#"{"name": "Config Name", "type": "string", "jsonPath": ".metadata.labels['serving\\.knative\\.dev/configuration']"}"#,
    printcolumn = r#"{"name": "Generation", "type": "string", "jsonPath": ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"}"#,
    printcolumn = r#"{"name": "Actual Replicas", "type": "integer", "jsonPath": ".status.actualReplicas"}"#,
    printcolumn = r#"{"name": "Desired Replicas", "type": "integer", "jsonPath": ".status.desiredReplicas"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// The pod to run: Knative inlines a Kubernetes `PodSpec` (`containers`, `volumes`,
    /// `serviceAccountName`, ...).
    ///
    /// Its CRD schema is left open (`x-kubernetes-preserve-unknown-fields`), as the pod spec is
    /// checked by [`Validate`]. An empty container `name` is not written out, so a manifest
    /// without names reads back unchanged.
    #[serde(flatten, serialize_with = "serialize_pod_spec")]
    #[schemars(schema_with = "schema::preserve_unknown_fields")]
    pub pod_spec: PodSpec,

    /// The maximum number of concurrent requests per container of the Revision; `0` means
    /// unlimited, and lets the autoscaler choose a target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,

    /// The longest a request may take to be answered, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,

    /// The longest the first byte of a response may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Option<i64>,

    /// The longest a request may stay open without the application sending data, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i64>,
}

/// The data a Revision is stamped out from: the `template` of a Configuration or Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct RevisionTemplateSpec {
    /// The Revision's metadata: its name (optional, `<parent>-<suffix>`), labels and
    /// annotations (`autoscaling.knative.dev/*` among them).
    #[serde(default, skip_serializing_if = "is_empty_meta")]
    #[schemars(schema_with = "schema::template_metadata")]
    pub metadata: ObjectMeta,

    /// The Revision's spec.
    #[serde(default, skip_serializing_if = "is_default_spec")]
    pub spec: RevisionSpec,
}

/// The observed state of a Revision.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Conditions, observed generation and status annotations.
    #[serde(flatten)]
    pub status: Status,

    /// The logging URL of this Revision, from the `config-observability` URL template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,

    /// The resolved digest of the serving container's image (deprecated in Knative in favour
    /// of `containerStatuses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,

    /// The resolved image digests of the containers, by container name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,

    /// The resolved image digests of the init containers, by container name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,

    /// The number of ready pods of the Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,

    /// The number of pods the autoscaler wants for the Revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

/// The image digest a container of a Revision resolved to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The digest of its image, e.g. `ghcr.io/knative/helloworld-go@sha256:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

impl KnativeStatus for RevisionStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

impl KnativeObject for Revision {
    /// `Ready` from `ResourcesAvailable` and `ContainerHealthy`; `Active` is informational.
    fn condition_set() -> &'static ConditionSet {
        static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
            ConditionSet::living(&[
                REVISION_CONDITION_RESOURCES_AVAILABLE,
                REVISION_CONDITION_CONTAINER_HEALTHY,
            ])
        });
        &SET
    }
}

impl RevisionSpec {
    /// The container concurrency in force: the spec's, or Knative's original default `0`
    /// (unlimited) when unset, whatever `config-defaults` says now, so that old Revisions keep
    /// their behaviour.
    pub fn container_concurrency(&self) -> i64 {
        self.container_concurrency.unwrap_or(0)
    }
}

impl Validate for Revision {
    /// Knative's `Revision.Validate` on create: metadata (name, autoscaling and
    /// `serving.knative.dev/*` annotations, labels) and spec.
    fn validate_with(&self, defaults: &Defaults) -> Result<(), FieldError> {
        let meta = metadata::validate_object_metadata(&self.metadata, true, defaults)
            .also(validate_labels(&self.metadata).via_field("labels"))
            .via_field("metadata");
        meta.also(self.spec.validate_spec(defaults).via_field("spec"))
            .into_result()
    }
}

impl SetDefaults for Revision {
    fn set_defaults(&mut self, defaults: &Defaults) {
        self.spec.set_defaults(defaults);
    }
}

impl RevisionTemplateSpec {
    /// Knative's `RevisionTemplateSpec.Validate` inside the resource whose metadata is
    /// `parent` (paths relative to the template).
    pub(crate) fn validate_in(&self, parent: &ObjectMeta, defaults: &Defaults) -> FieldError {
        let annotations = self.metadata.annotations.clone().unwrap_or_default();
        self.spec
            .validate_spec(defaults)
            .via_field("spec")
            .also(
                autoscaling::validate_annotations(&annotations, defaults)
                    .also(metadata::validate_queue_sidecar_annotation(&annotations))
                    .via_field("metadata.annotations"),
            )
            .also(metadata::validate_revision_name(&self.metadata, parent))
    }
}

impl SetDefaults for RevisionTemplateSpec {
    fn set_defaults(&mut self, defaults: &Defaults) {
        self.spec.set_defaults(defaults);
    }
}

impl RevisionSpec {
    /// Knative's `RevisionSpec.Validate` (paths relative to the spec).
    fn validate_spec(&self, defaults: &Defaults) -> FieldError {
        let mut errs = pod_spec::validate_pod_spec(&self.pod_spec, defaults);
        let max = defaults.max_revision_timeout_seconds;
        if let Some(timeout) = self.timeout_seconds {
            errs = errs.also(validate_timeout(timeout, max, "timeoutSeconds"));
        }
        if let Some(timeout) = self.response_start_timeout_seconds {
            let max = self
                .timeout_seconds
                .filter(|t| *t > 0)
                .unwrap_or(defaults.revision_timeout_seconds)
                .min(max);
            errs = errs.also(validate_timeout(
                timeout,
                max,
                "responseStartTimeoutSeconds",
            ));
        }
        if let Some(timeout) = self.idle_timeout_seconds {
            errs = errs.also(validate_timeout(timeout, max, "idleTimeoutSeconds"));
        }
        if let Some(cc) = self.container_concurrency {
            let min = if defaults.allow_container_concurrency_zero {
                0
            } else {
                1
            };
            if cc < min || cc > defaults.container_concurrency_max_limit {
                errs = errs.also(FieldError::err_out_of_bounds_value(
                    cc,
                    min,
                    defaults.container_concurrency_max_limit,
                    "containerConcurrency",
                ));
            }
        }
        errs
    }
}

impl SetDefaults for RevisionSpec {
    /// Knative's `RevisionSpec.SetDefaults`: timeout and container concurrency from
    /// `config-defaults`, container names, the default readiness probe, read-only mounts of
    /// configuration volumes, and `enableServiceLinks`.
    fn set_defaults(&mut self, defaults: &Defaults) {
        if self.timeout_seconds.unwrap_or(0) == 0 {
            self.timeout_seconds = Some(defaults.revision_timeout_seconds);
        }
        if self.container_concurrency.is_none() {
            self.container_concurrency = Some(defaults.container_concurrency);
        }
        pod_spec::set_pod_spec_defaults(&mut self.pod_spec, defaults);
    }
}

/// `serving.ValidateTimeoutSeconds`: a timeout of 0 means "the default"; otherwise it must be
/// within `0..=max`.
fn validate_timeout(timeout: i64, max: i64, field: &str) -> FieldError {
    if timeout != 0 && !(0..=max).contains(&timeout) {
        FieldError::err_out_of_bounds_value(timeout, 0, max, field)
    } else {
        FieldError::default()
    }
}

/// Knative's `Revision.ValidateLabels`: known `serving.knative.dev/*` labels only, and the
/// configuration label must name an owner.
fn validate_labels(meta: &ObjectMeta) -> FieldError {
    let mut errs = FieldError::default();
    for (key, value) in meta.labels.iter().flatten() {
        match key.as_str() {
            serving::ROUTING_STATE_LABEL_KEY
            | serving::ROUTE_LABEL_KEY
            | serving::SERVICE_LABEL_KEY
            | serving::CONFIGURATION_GENERATION_LABEL_KEY
            // Set by the Configuration reconciler, as Knative's does.
            | "serving.knative.dev/configurationUID"
            | "serving.knative.dev/serviceUID" => {}
            serving::CONFIGURATION_LABEL_KEY => {
                errs = errs.also(metadata::verify_label_owner_ref(
                    meta,
                    value,
                    key,
                    "Configuration",
                ));
            }
            _ if key.starts_with(metadata::GROUP_NAME_PREFIX) => {
                errs = errs.also(FieldError::err_invalid_key_name(key, ""));
            }
            _ => {}
        }
    }
    errs
}

fn is_empty_meta(meta: &ObjectMeta) -> bool {
    *meta == ObjectMeta::default()
}

fn is_default_spec(spec: &RevisionSpec) -> bool {
    *spec == RevisionSpec::default()
}

/// Serialises the inlined pod spec without empty container names (which Knative treats as
/// unset), so that a manifest without names reads back unchanged.
fn serialize_pod_spec<S: Serializer>(pod_spec: &PodSpec, serializer: S) -> Result<S::Ok, S::Error> {
    let mut value = serde_json::to_value(pod_spec).map_err(serde::ser::Error::custom)?;
    for list in ["containers", "initContainers"] {
        if let Some(containers) = value
            .get_mut(list)
            .and_then(serde_json::Value::as_array_mut)
        {
            for container in containers
                .iter_mut()
                .filter_map(serde_json::Value::as_object_mut)
            {
                if container.get("name").and_then(serde_json::Value::as_str) == Some("") {
                    container.remove("name");
                }
            }
        }
    }
    value.serialize(serializer)
}
