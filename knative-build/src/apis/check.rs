//! Offline checks of Build objects in YAML, as `knative validate -f` runs them.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Build, BuildTemplate, ClusterBuildTemplate, FieldError};

const API_VERSION: &str = "build.knative.dev/v1alpha1";

/// Decodes, defaults and validates `object` when it is a Build, BuildTemplate or
/// ClusterBuildTemplate of `build.knative.dev/v1alpha1`: the defaulted object, or every problem
/// with its field path. `None` for any other kind.
///
/// A Build's template is not looked up here (it may live on the cluster): its arguments are
/// checked when the Build runs.
pub fn check(object: &Value) -> Option<Result<Value, FieldError>> {
    if object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        return None;
    }
    match object.get("kind").and_then(Value::as_str)? {
        "Build" => Some(checked::<Build>(object, |b| {
            b.set_defaults();
            b.validate()
        })),
        "BuildTemplate" => Some(checked::<BuildTemplate>(object, |t| t.validate())),
        "ClusterBuildTemplate" => Some(checked::<ClusterBuildTemplate>(object, |t| t.validate())),
        _ => None,
    }
}

/// [`check`] on every document of a YAML stream, by position (empty documents count): `None`
/// where a document is not a Build kind or not YAML (the caller reports that).
pub fn check_yaml(yaml: &str) -> Vec<Option<Result<Value, FieldError>>> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| {
            Value::deserialize(document)
                .ok()
                .and_then(|object| check(&object))
        })
        .collect()
}

fn checked<T: DeserializeOwned + Serialize>(
    object: &Value,
    default_and_validate: impl FnOnce(&mut T) -> Result<(), FieldError>,
) -> Result<Value, FieldError> {
    let mut typed: T = serde_path_to_error::deserialize(object).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(
            format!("cannot decode: {}", e.into_inner()),
            [if path == "." { String::new() } else { path }],
        )
    })?;
    default_and_validate(&mut typed)?;
    serde_json::to_value(&typed).map_err(|e| FieldError::new(e.to_string(), [""]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_build_comes_back_defaulted() {
        let out = check_yaml(
            "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: b}\nspec:\n  steps: [{image: x}]\n",
        );
        let build = out[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(build["spec"]["timeout"], "10m0s");
    }

    #[test]
    fn a_malformed_field_is_named_by_path() {
        let out = check_yaml(
            "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: b}\nspec:\n  timeout: soon\n",
        );
        let err = out[0].clone().unwrap().unwrap_err().to_string();
        assert!(err.ends_with(": spec.timeout"), "{err}");
    }

    #[test]
    fn other_kinds_are_not_ours() {
        let out = check_yaml(
            "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: build.knative.dev/v1alpha1\nkind: Other\n",
        );
        assert_eq!(out, [None, None]);
    }

    #[test]
    fn template_errors_have_paths() {
        let out = check_yaml(
            "apiVersion: build.knative.dev/v1alpha1\nkind: ClusterBuildTemplate\nmetadata: {name: t}\nspec:\n  steps: [{name: a}]\n",
        );
        assert_eq!(
            out[0].clone().unwrap().unwrap_err().to_string(),
            "missing field(s): spec.steps[0].image"
        );
    }
}
