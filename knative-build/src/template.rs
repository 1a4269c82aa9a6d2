//! Template substitution: a Build's steps from a template, its `${NAME}` parameters replaced by
//! the Build's arguments or the parameters' defaults.
//!
//! Pure: no I/O. Only declared parameters are replaced, so a shell's own `${HOME}` in a step's
//! script is left alone; a declared parameter with neither argument nor default is an error
//! naming it and every place it is used.
//!
//! ```
//! use knative_build::apis::{ArgumentSpec, BuildTemplateSpec};
//! use knative_build::template::substitute;
//!
//! let template: BuildTemplateSpec = serde_yaml::from_str(r#"
//! parameters:
//!   - name: IMAGE
//!   - name: DOCKERFILE
//!     default: Dockerfile
//! steps:
//!   - name: build
//!     image: gcr.io/kaniko-project/executor
//!     args: ["--dockerfile=${DOCKERFILE}", "--destination=${IMAGE}"]
//! "#).unwrap();
//! let steps = substitute(&template, &[ArgumentSpec { name: "IMAGE".into(), value: "registry/app".into() }]).unwrap();
//! assert_eq!(
//!     steps.steps[0].container.args.as_deref().unwrap(),
//!     ["--dockerfile=Dockerfile", "--destination=registry/app"]
//! );
//!
//! let err = substitute(&template, &[]).unwrap_err();
//! assert_eq!(err.to_string(), "missing argument for parameter IMAGE (no default), used in steps[0].args[1]");
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, Volume};
use knative_core::apis::FieldError;
use serde_json::Value;

use crate::apis::{ArgumentSpec, BuildSpec, BuildTemplateSpec, Step, TemplateKind};

/// Why a template could not be instantiated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A parameter without default was given no argument.
    #[error("missing argument for parameter {name} (no default), {}", describe_uses(.used_in))]
    MissingArgument {
        /// The parameter's name.
        name: String,
        /// Where the template uses it (paths relative to the template's spec).
        used_in: Vec<String>,
    },
    /// An argument names no parameter of the template.
    #[error("argument {name} is not a parameter of the template (its parameters: {})", .parameters.join(", "))]
    UnknownArgument {
        /// The argument's name.
        name: String,
        /// The template's parameters.
        parameters: Vec<String>,
    },
    /// The Build names a template that does not exist.
    #[error("{kind} {name:?} not found")]
    UnknownTemplate {
        /// `BuildTemplate` or `ClusterBuildTemplate`.
        kind: TemplateKind,
        /// The name the Build gives.
        name: String,
    },
    /// A step's or volume's substituted form is not a valid step or volume any more.
    #[error("after substitution, {path} is invalid: {message}")]
    Invalid {
        /// Where.
        path: String,
        /// What serde said.
        message: String,
    },
}

fn describe_uses(paths: &[String]) -> String {
    if paths.is_empty() {
        "not used by any step".to_owned()
    } else {
        format!("used in {}", paths.join(", "))
    }
}

impl TemplateError {
    /// The error as a [`FieldError`] on a Build (paths from the Build's root).
    pub fn to_field_error(&self) -> FieldError {
        match self {
            Self::MissingArgument { name, .. } => {
                FieldError::new(self.to_string(), ["spec.template.arguments"])
                    .with_details(format!("add an argument named {name}"))
            }
            Self::UnknownArgument { .. } => {
                FieldError::new(self.to_string(), ["spec.template.arguments"])
            }
            Self::UnknownTemplate { .. } => {
                FieldError::new(self.to_string(), ["spec.template.name"])
            }
            Self::Invalid { .. } => FieldError::new(self.to_string(), ["spec.template"]),
        }
    }
}

/// The steps and volumes of a template instantiated with `arguments`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instantiated {
    /// The steps, every `${NAME}` of a declared parameter replaced.
    pub steps: Vec<Step>,
    /// The volumes, likewise.
    pub volumes: Vec<Volume>,
}

/// Instantiates `template` with `arguments`: each declared parameter's `${NAME}` in the steps and
/// volumes (every string field: image, command, args, env values, workingDir, mounts, ...) is
/// replaced by its argument, else its default.
///
/// # Errors
/// A parameter with neither argument nor default ([`TemplateError::MissingArgument`], naming
/// where it is used), an argument for no parameter, or a substitution that breaks a field.
pub fn substitute(
    template: &BuildTemplateSpec,
    arguments: &[ArgumentSpec],
) -> Result<Instantiated, TemplateError> {
    let parameters: Vec<String> = template.parameters.iter().map(|p| p.name.clone()).collect();
    if let Some(unknown) = arguments.iter().find(|a| !parameters.contains(&a.name)) {
        return Err(TemplateError::UnknownArgument {
            name: unknown.name.clone(),
            parameters,
        });
    }
    let mut tree = serde_json::json!({
        "steps": serde_json::to_value(&template.steps).expect("steps serialise"),
        "volumes": serde_json::to_value(&template.volumes).expect("volumes serialise"),
    });
    let mut values = BTreeMap::new();
    for parameter in &template.parameters {
        let value = arguments
            .iter()
            .rev()
            .find(|a| a.name == parameter.name)
            .map(|a| a.value.clone())
            .or_else(|| parameter.default.clone());
        match value {
            Some(value) => {
                values.insert(format!("${{{}}}", parameter.name), value);
            }
            None => {
                let mut used_in = Vec::new();
                find_uses(&tree, &format!("${{{}}}", parameter.name), "", &mut used_in);
                return Err(TemplateError::MissingArgument {
                    name: parameter.name.clone(),
                    used_in,
                });
            }
        }
    }
    replace(&mut tree, &values);
    let invalid = |path: &'static str| {
        move |e: serde_json::Error| TemplateError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        }
    };
    Ok(Instantiated {
        steps: serde_json::from_value(tree["steps"].take()).map_err(invalid("steps"))?,
        volumes: serde_json::from_value(tree["volumes"].take()).map_err(invalid("volumes"))?,
    })
}

/// The steps and volumes a Build runs: its own, or its template's instantiated with its
/// arguments and `template.env` added to every step. `template` is the spec of the template the
/// Build names (`None` when it was not found).
///
/// # Errors
/// A [`FieldError`] with paths from the Build's root: the template not found, a missing
/// argument, an argument for no parameter.
pub fn resolve(
    build: &BuildSpec,
    template: Option<&BuildTemplateSpec>,
) -> Result<Instantiated, FieldError> {
    let Some(instance) = &build.template else {
        return Ok(Instantiated {
            steps: build.steps.clone(),
            volumes: build.volumes.clone(),
        });
    };
    let template = template.ok_or_else(|| {
        TemplateError::UnknownTemplate {
            kind: instance.kind(),
            name: instance.name.clone(),
        }
        .to_field_error()
    })?;
    let mut instantiated =
        substitute(template, &instance.arguments).map_err(|e| e.to_field_error())?;
    for step in &mut instantiated.steps {
        let env = step.container.env.get_or_insert_with(Vec::new);
        env.extend(instance.env.iter().cloned());
    }
    instantiated.volumes.extend(build.volumes.iter().cloned());
    Ok(instantiated)
}

fn find_uses(value: &Value, needle: &str, path: &str, found: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains(needle) => found.push(path.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_uses(item, needle, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                find_uses(item, needle, &path, found);
            }
        }
        _ => {}
    }
}

fn replace(value: &mut Value, values: &BTreeMap<String, String>) {
    match value {
        Value::String(s) => {
            for (placeholder, replacement) in values {
                if s.contains(placeholder.as_str()) {
                    *s = s.replace(placeholder.as_str(), replacement);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace(v, values)),
        Value::Object(map) => map.values_mut().for_each(|v| replace(v, values)),
        _ => {}
    }
}

/// An environment variable with a literal value.
pub(crate) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str) -> BuildTemplateSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn arg(name: &str, value: &str) -> ArgumentSpec {
        ArgumentSpec {
            name: name.into(),
            value: value.into(),
        }
    }

    const KANIKO: &str = r#"
parameters:
  - name: IMAGE
  - name: DIR
    default: /workspace
steps:
  - name: build-and-push
    image: gcr.io/kaniko-project/executor
    workingDir: ${DIR}
    args: ["--destination=${IMAGE}", "--context=${DIR}"]
    env:
      - name: TARGET
        value: ${IMAGE}
"#;

    #[test]
    fn arguments_replace_every_use_of_their_parameter() {
        let out = substitute(&template(KANIKO), &[arg("IMAGE", "reg/app")]).unwrap();
        let step = &out.steps[0].container;
        assert_eq!(
            step.args.as_deref().unwrap(),
            ["--destination=reg/app", "--context=/workspace"]
        );
        assert_eq!(
            step.env.as_ref().unwrap()[0].value.as_deref(),
            Some("reg/app")
        );
        assert_eq!(step.working_dir.as_deref(), Some("/workspace"));
    }

    #[test]
    fn an_argument_overrides_the_default() {
        let out = substitute(&template(KANIKO), &[arg("IMAGE", "x"), arg("DIR", "/src")]).unwrap();
        assert_eq!(out.steps[0].container.working_dir.as_deref(), Some("/src"));
    }

    #[test]
    fn a_missing_argument_names_the_parameter_and_every_use() {
        let err = substitute(&template(KANIKO), &[]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingArgument {
                name: "IMAGE".into(),
                used_in: vec!["steps[0].args[0]".into(), "steps[0].env[0].value".into()],
            }
        );
    }

    #[test]
    fn undeclared_placeholders_are_left_for_the_shell() {
        let out = substitute(
            &template("steps:\n  - image: sh\n    args: ['echo ${HOME}']\n"),
            &[],
        )
        .unwrap();
        assert_eq!(
            out.steps[0].container.args.as_deref().unwrap(),
            ["echo ${HOME}"]
        );
    }

    #[test]
    fn an_argument_for_no_parameter_is_an_error() {
        let err =
            substitute(&template(KANIKO), &[arg("IMAGE", "x"), arg("IMGAE", "y")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument IMGAE is not a parameter of the template (its parameters: IMAGE, DIR)"
        );
    }

    #[test]
    fn resolving_an_unknown_template_points_at_its_name() {
        let build: BuildSpec =
            serde_yaml::from_str("template:\n  name: kaniko\n  kind: ClusterBuildTemplate\n")
                .unwrap();
        let err = resolve(&build, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ClusterBuildTemplate \"kaniko\" not found: spec.template.name"
        );
    }

    #[test]
    fn resolving_adds_the_template_env_to_every_step() {
        let build: BuildSpec = serde_yaml::from_str(
            "template:\n  name: kaniko\n  arguments: [{name: IMAGE, value: x}]\n  env: [{name: GOPROXY, value: off}]\n",
        )
        .unwrap();
        let out = resolve(&build, Some(&template(KANIKO))).unwrap();
        let env = out.steps[0].container.env.as_ref().unwrap();
        assert_eq!(env.last().unwrap(), &env_var("GOPROXY", "off"));
    }

    #[test]
    fn a_build_without_template_runs_its_own_steps() {
        let build: BuildSpec =
            serde_yaml::from_str("steps:\n  - image: busybox\n    args: ['${X}']\n").unwrap();
        let out = resolve(&build, None).unwrap();
        assert_eq!(out.steps, build.steps);
    }

    fn env_var(name: &str, value: &str) -> EnvVar {
        env(name, value)
    }
}
