//! # knative-build
//!
//! Knative Build in Rust: from source to something runnable, on a cluster or on one machine.
//!
//! - [`apis`]: `build.knative.dev/v1alpha1` Build, BuildTemplate and ClusterBuildTemplate, with
//!   Knative Build's validation (field paths) and defaults (a 10-minute timeout).
//! - [`crds()`]: their CustomResourceDefinitions.
//! - [`template`]: `${NAME}` substitution from a Build's arguments and the parameters' defaults.
//! - [`executor`]: the [`StepExecutor`](executor::StepExecutor) trait; the
//!   [`LocalExecutor`](executor::LocalExecutor) (local processes in a temporary workspace) and
//!   the [`PodExecutor`](executor::PodExecutor) (one Pod of ordered init containers).
//! - [`reconciler`]: Build → Pod on knative-core's driver, status from the Pod.
//!
//! ```
//! use knative_build::apis::Build;
//! use knative_build::executor::{BuildOutcome, BuildPlan, CancellationToken, Events, LocalExecutor, StepExecutor};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let build: Build = serde_yaml::from_str(r#"
//! apiVersion: build.knative.dev/v1alpha1
//! kind: Build
//! metadata:
//!   name: hello
//! spec:
//!   steps:
//!     - name: write
//!       image: busybox
//!       command: ["sh", "-c", "echo hello > greeting"]
//!     - name: read
//!       image: busybox
//!       command: ["cat", "greeting"]
//! "#).unwrap();
//! let plan = BuildPlan::new(&build, None).unwrap();
//! let report = LocalExecutor::new()
//!     .execute(&plan, &Events::none(), CancellationToken::new())
//!     .await
//!     .unwrap();
//! assert_eq!(report.outcome, BuildOutcome::Succeeded);
//! assert_eq!(report.steps[1].log_tail, ["hello"]);
//! # });
//! ```

pub mod apis;
pub mod executor;
pub mod reconciler;
pub mod template;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The CustomResourceDefinitions of Build, BuildTemplate and ClusterBuildTemplate, labelled as
/// Knative labels its own.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        apis::Build::crd(),
        apis::BuildTemplate::crd(),
        apis::ClusterBuildTemplate::crd(),
    ]
    .into_iter()
    .map(|mut crd| {
        let labels = crd.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(
            "app.kubernetes.io/name".to_owned(),
            "knative-build".to_owned(),
        );
        labels.insert("knative.dev/crd-install".to_owned(), "true".to_owned());
        crd
    })
    .collect()
}
