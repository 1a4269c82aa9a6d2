//! Knative Build's object model (`build.knative.dev/v1alpha1`, Knative Build v0.7's fields),
//! wire-compatible with its YAML: [`Build`], [`BuildTemplate`], [`ClusterBuildTemplate`].
//!
//! Each validates with [`FieldError`]s whose paths name the field (`spec.steps[1].name`), and
//! [`Build::set_defaults`] applies Knative Build's defaults (a 10-minute timeout).
//!
//! ```
//! use knative_build::apis::Build;
//!
//! let mut build: Build = serde_yaml::from_str(r#"
//! apiVersion: build.knative.dev/v1alpha1
//! kind: Build
//! metadata:
//!   name: hello
//! spec:
//!   steps:
//!     - name: greet
//!       image: busybox
//!       command: ["echo", "hello"]
//!     - name: greet
//!       image: busybox
//!       command: ["echo", "again"]
//! "#).unwrap();
//! assert_eq!(
//!     build.validate().unwrap_err().to_string(),
//!     "invalid value: greet: spec.steps[1].name\nstep names must be unique"
//! );
//! build.spec.steps[1].container.name = "greet-again".into();
//! build.set_defaults();
//! assert!(build.validate().is_ok());
//! assert_eq!(build.spec.timeout.unwrap().to_string(), "10m0s");
//! ```

mod build;
mod build_template;
pub mod check;
mod duration;
mod schema;
mod step;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Volume;
pub use knative_core::apis::FieldError;

pub use build::{
    ArgumentSpec, BUILD_SPEC_STATUS_CANCELLED, Build, BuildProvider, BuildSpec, BuildStatus,
    ClusterSpec, DEFAULT_TIMEOUT, GcsSourceSpec, GitSourceSpec, MAX_TIMEOUT, SourceSpec,
    StepResult, TemplateInstantiationSpec, TemplateKind,
};
pub use build_template::{
    BuildTemplate, BuildTemplateSpec, ClusterBuildTemplate, ClusterBuildTemplateSpec, ParameterSpec,
};
pub use duration::{Duration, ParseDurationError};
pub use step::{OnError, Step};

/// Steps (paths relative to the list): each has an image, names are unique, and a per-step
/// timeout is under 24h.
fn validate_steps(steps: &[Step]) -> FieldError {
    let mut errs = FieldError::default();
    let mut names = BTreeSet::new();
    for (i, step) in steps.iter().enumerate() {
        let mut e = FieldError::default();
        if step.container.image.as_deref().unwrap_or("").is_empty() {
            e = e.also(FieldError::err_missing_field(["image"]));
        }
        let name = step.name();
        if !name.is_empty() && !names.insert(name) {
            e = e.also(
                FieldError::err_invalid_value(name, "name")
                    .with_details("step names must be unique"),
            );
        }
        if let Some(timeout) = step.timeout
            && timeout.0 > MAX_TIMEOUT
        {
            e = e.also(FieldError::err_out_of_bounds_value(
                timeout,
                "0s",
                Duration(MAX_TIMEOUT),
                "timeout",
            ));
        }
        errs = errs.also(e.via_index(i));
    }
    errs
}

/// Volumes (paths from the spec): names are unique and steps mount only declared volumes or
/// the workspace's.
fn validate_volumes(volumes: &[Volume], steps: &[Step]) -> FieldError {
    let mut errs = FieldError::default();
    let mut names = BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        if !names.insert(volume.name.as_str()) {
            errs = errs.also(
                FieldError::err_invalid_value(&volume.name, "name")
                    .with_details("volume names must be unique")
                    .via_field_index("volumes", i),
            );
        }
    }
    for (i, step) in steps.iter().enumerate() {
        for (j, mount) in step.container.volume_mounts.iter().flatten().enumerate() {
            // Template parameters may name volumes; they are checked once substituted.
            if !names.contains(mount.name.as_str()) && !mount.name.contains("${") {
                errs = errs.also(
                    FieldError::err_invalid_value(&mount.name, "name")
                        .with_details("no volume of this name in spec.volumes")
                        .via_field_index("volumeMounts", j)
                        .via_field_index("steps", i),
                );
            }
        }
    }
    errs
}
