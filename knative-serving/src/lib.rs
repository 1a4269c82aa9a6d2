//! # knative-serving
//!
//! Knative Serving in Rust: request-driven, scale-to-zero workloads on Kubernetes.
//!
//! - [`apis`]: the object model, wire-compatible with Knative's YAML — `serving.knative.dev/v1`
//!   [`Service`](apis::Service), [`Configuration`](apis::Configuration),
//!   [`Revision`](apis::Revision), [`Route`](apis::Route), and the internal
//!   [`PodAutoscaler`](apis::PodAutoscaler), [`Ingress`](apis::Ingress) and
//!   [`ServerlessService`](apis::ServerlessService) — with Knative's validation and defaulting.
//! - [`crds()`]: the CustomResourceDefinitions of all of them, to install on a cluster.
//! - [`traffic`]: traffic targets to weighted revision splits and tag routes (pure).
//! - [`reconciler`]: Service, Configuration, Revision and Route reconcilers on knative-core's driver.
//! - [`autoscaler`]: the pluggable `Autoscaler` trait and Knative's KPA, decision for decision.
//! - [`webhook`]: validation and defaulting, as a library call and an admission webhook.
//!
//! ```
//! use knative_serving::apis::{Defaults, Service, SetDefaults, Validate};
//!
//! let mut ksvc: Service = serde_yaml::from_str(r#"
//! apiVersion: serving.knative.dev/v1
//! kind: Service
//! metadata:
//!   name: helloworld-go
//! spec:
//!   template:
//!     spec:
//!       containers:
//!         - image: ghcr.io/knative/helloworld-go:latest
//!           env:
//!             - name: TARGET
//!               value: World
//! "#).unwrap();
//! ksvc.validate().unwrap();
//!
//! ksvc.set_defaults(&Defaults::default());
//! let revision = &ksvc.spec.configuration.template.spec;
//! assert_eq!(revision.pod_spec.containers[0].name, "user-container");
//! assert_eq!(revision.timeout_seconds, Some(300));
//! assert_eq!(ksvc.spec.route.traffic[0].percent, Some(100));
//!
//! let names: Vec<String> = knative_serving::crds().into_iter().filter_map(|crd| crd.metadata.name).collect();
//! assert!(names.contains(&"services.serving.knative.dev".to_owned()));
//! ```

pub mod apis;
pub mod autoscaler;
pub mod dataplane;
pub mod reconciler;
pub mod traffic;
pub mod webhook;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The CustomResourceDefinitions of every resource of this crate, labelled as Knative labels
/// its own: Services, Configurations, Revisions and Routes of `serving.knative.dev`,
/// PodAutoscalers of `autoscaling.internal.knative.dev`, and Ingresses and ServerlessServices of
/// `networking.internal.knative.dev`.
///
/// Service and Route carry `duck.knative.dev/addressable: "true"` (so Knative Eventing can
/// resolve them as sinks), Service and Configuration `duck.knative.dev/podspecable: "true"`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let addressable = ("duck.knative.dev/addressable", "true");
    let podspecable = ("duck.knative.dev/podspecable", "true");
    vec![
        labelled(apis::Service::crd(), &[addressable, podspecable]),
        labelled(apis::Configuration::crd(), &[podspecable]),
        labelled(apis::Revision::crd(), &[]),
        labelled(apis::Route::crd(), &[addressable]),
        labelled(apis::PodAutoscaler::crd(), &[]),
        labelled(apis::Ingress::crd(), &[]),
        labelled(apis::ServerlessService::crd(), &[]),
    ]
}

fn labelled(
    mut crd: CustomResourceDefinition,
    duck_labels: &[(&str, &str)],
) -> CustomResourceDefinition {
    let labels = crd.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        "app.kubernetes.io/name".to_owned(),
        "knative-serving".to_owned(),
    );
    labels.insert("knative.dev/crd-install".to_owned(), "true".to_owned());
    for (key, value) in duck_labels {
        labels.insert((*key).to_owned(), (*value).to_owned());
    }
    crd
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use serde_json::Value;

    use super::crds;

    fn crd(name: &str) -> CustomResourceDefinition {
        crds()
            .into_iter()
            .find(|crd| crd.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no CRD {name}"))
    }

    /// The problems that make a schema node non-structural, with their JSON paths.
    fn structural_problems(node: &Value, path: &str, problems: &mut Vec<String>) {
        let Some(obj) = node.as_object() else {
            problems.push(format!("{path}: not an object"));
            return;
        };
        for forbidden in ["$ref", "$defs", "definitions", "$schema"] {
            if obj.contains_key(forbidden) {
                problems.push(format!("{path}: has {forbidden}"));
            }
        }
        let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let preserved = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !obj.contains_key("type") && !int_or_string && !preserved {
            problems.push(format!("{path}: no type"));
        }
        for combinator in ["anyOf", "oneOf", "allOf", "not"] {
            if obj.contains_key(combinator) && !int_or_string {
                problems.push(format!("{path}: {combinator} outside an int-or-string"));
            }
        }
        if obj.contains_key("properties")
            && obj
                .get("additionalProperties")
                .is_some_and(|a| a != &Value::Bool(false))
        {
            problems.push(format!("{path}: both properties and additionalProperties"));
        }
        for (key, sub) in obj
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            structural_problems(sub, &format!("{path}.{key}"), problems);
        }
        if let Some(items) = obj.get("items") {
            structural_problems(items, &format!("{path}[*]"), problems);
        }
        if let Some(additional) = obj.get("additionalProperties").filter(|a| a.is_object()) {
            structural_problems(additional, &format!("{path}{{*}}"), problems);
        }
    }

    #[test]
    fn the_structural_check_catches_untyped_nodes_refs_and_unions() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "untyped": {},
                "referenced": { "$ref": "#/definitions/Foo" },
                "union": { "anyOf": [{ "type": "string" }, { "type": "object" }] },
                "list": { "type": "array", "items": { "properties": {} } },
                "open": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                "port": { "x-kubernetes-int-or-string": true },
            },
        });
        let mut problems = Vec::new();
        structural_problems(&schema, "x", &mut problems);
        problems.sort();
        assert_eq!(
            problems,
            [
                "x.list[*]: no type",
                "x.referenced: has $ref",
                "x.referenced: no type",
                "x.union: anyOf outside an int-or-string",
                "x.union: no type",
                "x.untyped: no type",
            ]
        );
    }

    #[test]
    fn every_crd_schema_is_structural() {
        for crd in crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            for version in &crd.spec.versions {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("a schema");
                let mut problems = Vec::new();
                structural_problems(&serde_json::to_value(schema).unwrap(), &name, &mut problems);
                assert!(
                    problems.is_empty(),
                    "{name} is not structural:\n{}",
                    problems.join("\n")
                );
            }
        }
    }

    #[test]
    fn the_revision_pod_spec_is_preserved_not_described() {
        let schema = serde_json::to_value(
            crd("services.serving.knative.dev").spec.versions[0]
                .schema
                .clone(),
        )
        .unwrap();
        let revision_spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["template"]
            ["properties"]["spec"];
        assert_eq!(
            revision_spec["x-kubernetes-preserve-unknown-fields"],
            Value::Bool(true)
        );
        assert_eq!(revision_spec["type"], "object");
        assert!(revision_spec["properties"].get("containers").is_none());
        assert_eq!(
            revision_spec["properties"]["timeoutSeconds"]["type"],
            "integer"
        );
    }

    #[test]
    fn names_short_names_and_categories_are_knatives() {
        let want: [(&str, &str, &[&str], &[&str]); 7] = [
            (
                "services.serving.knative.dev",
                "Service",
                &["kservice", "ksvc"],
                &["all", "knative", "serving"],
            ),
            (
                "configurations.serving.knative.dev",
                "Configuration",
                &["config", "cfg"],
                &["all", "knative", "serving"],
            ),
            (
                "revisions.serving.knative.dev",
                "Revision",
                &["rev"],
                &["all", "knative", "serving"],
            ),
            (
                "routes.serving.knative.dev",
                "Route",
                &["rt"],
                &["all", "knative", "serving"],
            ),
            (
                "podautoscalers.autoscaling.internal.knative.dev",
                "PodAutoscaler",
                &["kpa", "pa"],
                &["knative-internal", "autoscaling"],
            ),
            (
                "ingresses.networking.internal.knative.dev",
                "Ingress",
                &["kingress", "king"],
                &["knative-internal", "networking"],
            ),
            (
                "serverlessservices.networking.internal.knative.dev",
                "ServerlessService",
                &["sks"],
                &["knative-internal", "networking"],
            ),
        ];
        assert_eq!(crds().len(), want.len());
        for (name, kind, short_names, categories) in want {
            let crd = crd(name);
            assert_eq!(crd.spec.names.kind, kind);
            assert_eq!(
                crd.spec.names.short_names.as_deref(),
                Some(
                    &short_names
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()[..]
                ),
                "{name}"
            );
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&categories.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
                "{name}"
            );
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert!(version.served && version.storage);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{name} has a status subresource"
            );
        }
    }

    #[test]
    fn printer_columns_are_knatives() {
        let want: [(&str, &[&str]); 7] = [
            (
                "services.serving.knative.dev",
                &["URL", "LatestCreated", "LatestReady", "Ready", "Reason"],
            ),
            (
                "configurations.serving.knative.dev",
                &["LatestCreated", "LatestReady", "Ready", "Reason"],
            ),
            (
                "revisions.serving.knative.dev",
                &[
                    "Config Name",
                    "Generation",
                    "Ready",
                    "Reason",
                    "Actual Replicas",
                    "Desired Replicas",
                ],
            ),
            ("routes.serving.knative.dev", &["URL", "Ready", "Reason"]),
            (
                "podautoscalers.autoscaling.internal.knative.dev",
                &["DesiredScale", "ActualScale", "Ready", "Reason"],
            ),
            (
                "ingresses.networking.internal.knative.dev",
                &["Ready", "Reason"],
            ),
            (
                "serverlessservices.networking.internal.knative.dev",
                &[
                    "Mode",
                    "Activators",
                    "ServiceName",
                    "PrivateServiceName",
                    "Ready",
                    "Reason",
                ],
            ),
        ];
        for (name, columns) in want {
            let crd = crd(name);
            let got: Vec<_> = crd.spec.versions[0]
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(got, columns, "{name}");
        }
        let revision = crd("revisions.serving.knative.dev");
        let config_name = &revision.spec.versions[0]
            .additional_printer_columns
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            config_name.json_path,
            r".metadata.labels['serving\.knative\.dev/configuration']"
        );
    }

    #[test]
    fn addressable_and_podspecable_kinds_carry_knatives_duck_labels() {
        let label = |name: &str, key: &str| {
            crd(name)
                .metadata
                .labels
                .unwrap_or_default()
                .get(key)
                .cloned()
        };
        assert_eq!(
            label(
                "services.serving.knative.dev",
                "duck.knative.dev/addressable"
            )
            .as_deref(),
            Some("true")
        );
        assert_eq!(
            label(
                "services.serving.knative.dev",
                "duck.knative.dev/podspecable"
            )
            .as_deref(),
            Some("true")
        );
        assert_eq!(
            label("routes.serving.knative.dev", "duck.knative.dev/addressable").as_deref(),
            Some("true")
        );
        assert_eq!(
            label(
                "configurations.serving.knative.dev",
                "duck.knative.dev/podspecable"
            )
            .as_deref(),
            Some("true")
        );
        assert_eq!(
            label(
                "revisions.serving.knative.dev",
                "duck.knative.dev/addressable"
            ),
            None
        );
        assert_eq!(
            label("revisions.serving.knative.dev", "knative.dev/crd-install").as_deref(),
            Some("true")
        );
    }
}
