//! BuildTemplate and ClusterBuildTemplate: parameterised steps that Builds instantiate.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Volume;
use knative_core::apis::FieldError;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Step, schema, validate_steps, validate_volumes};

/// The steps of a template and the parameters they use as `${NAME}`
/// (`build.knative.dev/v1alpha1` BuildTemplate).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "build.knative.dev",
    version = "v1alpha1",
    kind = "BuildTemplate",
    namespaced,
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    doc = "BuildTemplate is a template that can be used to easily create Builds."
)]
#[serde(rename_all = "camelCase")]
pub struct BuildTemplateSpec {
    /// The parameters the steps use as `${NAME}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterSpec>,

    /// The steps, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_list")]
    pub steps: Vec<Step>,

    /// Volumes the steps may mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::preserved_list")]
    pub volumes: Vec<Volume>,
}

/// The same as a [`BuildTemplate`], cluster-wide (`build.knative.dev/v1alpha1`
/// ClusterBuildTemplate).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "build.knative.dev",
    version = "v1alpha1",
    kind = "ClusterBuildTemplate",
    derive = "Default",
    derive = "PartialEq",
    category = "all",
    category = "knative",
    doc = "ClusterBuildTemplate is a template that can be used to easily create Builds, in any namespace."
)]
pub struct ClusterBuildTemplateSpec {
    /// The template: parameters, steps and volumes.
    #[serde(flatten)]
    pub template: BuildTemplateSpec,
}

/// A parameter of a template.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterSpec {
    /// The name used in `${NAME}`.
    pub name: String,
    /// What the parameter is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value used when a Build gives no argument (no default: the argument is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl BuildTemplateSpec {
    /// Knative Build's `BuildTemplateSpec.Validate` (paths relative to the spec): at least one
    /// step, unique step names, unique parameter names, volumes that are mounted.
    pub fn validate(&self) -> FieldError {
        let mut errs = FieldError::default();
        if self.steps.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["steps"]));
        }
        errs = errs.also(validate_steps(&self.steps).via_field("steps"));
        errs = errs.also(validate_volumes(&self.volumes, &self.steps));
        let mut names = BTreeSet::new();
        for (i, parameter) in self.parameters.iter().enumerate() {
            let e = if parameter.name.is_empty() {
                FieldError::err_missing_field(["name"])
            } else if !names.insert(parameter.name.as_str()) {
                FieldError::err_invalid_value(&parameter.name, "name")
                    .with_details("parameter names must be unique")
            } else {
                FieldError::default()
            };
            errs = errs.also(e.via_field_index("parameters", i));
        }
        errs
    }
}

impl BuildTemplate {
    /// Validates the template with paths from the object's root.
    ///
    /// # Errors
    /// Every problem found, each with the path of its field.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.spec.validate().via_field("spec").into_result()
    }
}

impl ClusterBuildTemplate {
    /// Validates the template with paths from the object's root.
    ///
    /// # Errors
    /// Every problem found, each with the path of its field.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.spec
            .template
            .validate()
            .via_field("spec")
            .into_result()
    }
}
