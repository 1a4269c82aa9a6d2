//! # knative-build
//!
//! Knative Build in Rust: from source to something runnable, on a cluster or on one machine.
//!
//! - [`apis`]: `build.knative.dev/v1alpha1` Build, BuildTemplate and ClusterBuildTemplate, with
//!   Knative Build's validation and defaults.
//! - [`crds()`]: their CustomResourceDefinitions.

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
