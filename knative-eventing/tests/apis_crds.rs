//! `knative_eventing::crds()`: structural schemas, Knative's names, short names, categories and
//! labels.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

fn crd(name: &str) -> CustomResourceDefinition {
    knative_eventing::crds()
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
fn every_crd_schema_is_structural() {
    for crd in knative_eventing::crds() {
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
fn names_short_names_and_categories_are_knatives() {
    let want: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "brokers.eventing.knative.dev",
            "v1",
            &[],
            &["all", "knative", "eventing"],
        ),
        (
            "triggers.eventing.knative.dev",
            "v1",
            &[],
            &["all", "knative", "eventing"],
        ),
        (
            "eventtypes.eventing.knative.dev",
            "v1beta3",
            &[],
            &["all", "knative", "eventing"],
        ),
        (
            "channels.messaging.knative.dev",
            "v1",
            &["ch"],
            &["all", "knative", "messaging", "channel"],
        ),
        (
            "inmemorychannels.messaging.knative.dev",
            "v1",
            &["imc"],
            &["all", "knative", "messaging", "channel"],
        ),
        (
            "subscriptions.messaging.knative.dev",
            "v1",
            &["sub"],
            &["all", "knative", "messaging"],
        ),
        (
            "sequences.flows.knative.dev",
            "v1",
            &[],
            &["all", "knative", "flows"],
        ),
        (
            "parallels.flows.knative.dev",
            "v1",
            &[],
            &["all", "knative", "flows"],
        ),
        (
            "pingsources.sources.knative.dev",
            "v1",
            &[],
            &["all", "knative", "sources"],
        ),
        (
            "apiserversources.sources.knative.dev",
            "v1",
            &[],
            &["all", "knative", "sources"],
        ),
        (
            "containersources.sources.knative.dev",
            "v1",
            &[],
            &["all", "knative", "sources"],
        ),
        (
            "sinkbindings.sources.knative.dev",
            "v1",
            &[],
            &["all", "knative", "sources", "bindings"],
        ),
    ];
    assert_eq!(knative_eventing::crds().len(), want.len());
    for (name, version, short_names, categories) in want {
        let crd = crd(name);
        assert_eq!(crd.spec.scope, "Namespaced", "{name}");
        assert_eq!(crd.spec.versions[0].name, *version, "{name}");
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap_or_default(),
            *short_names,
            "{name}"
        );
        assert_eq!(
            crd.spec.names.categories.clone().unwrap_or_default(),
            *categories,
            "{name}"
        );
    }
}

#[test]
fn duck_labels_are_knatives() {
    let label = |name: &str, key: &str| {
        crd(name)
            .metadata
            .labels
            .unwrap_or_default()
            .get(key)
            .cloned()
    };
    let yes = Some("true".to_owned());
    for addressable in [
        "brokers.eventing.knative.dev",
        "channels.messaging.knative.dev",
        "inmemorychannels.messaging.knative.dev",
        "sequences.flows.knative.dev",
        "parallels.flows.knative.dev",
    ] {
        assert_eq!(
            label(addressable, "duck.knative.dev/addressable"),
            yes,
            "{addressable}"
        );
    }
    assert_eq!(
        label(
            "triggers.eventing.knative.dev",
            "duck.knative.dev/addressable"
        ),
        None
    );
    assert_eq!(
        label(
            "inmemorychannels.messaging.knative.dev",
            "messaging.knative.dev/subscribable"
        ),
        yes
    );
    assert_eq!(
        label("pingsources.sources.knative.dev", "duck.knative.dev/source"),
        yes
    );
    assert_eq!(
        label(
            "sinkbindings.sources.knative.dev",
            "duck.knative.dev/binding"
        ),
        yes
    );
    assert_eq!(
        label("brokers.eventing.knative.dev", "app.kubernetes.io/name"),
        Some("knative-eventing".to_owned())
    );
}

#[test]
fn every_kind_has_a_status_subresource_and_ready_column() {
    for crd in knative_eventing::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has no status subresource"
        );
        let columns = version
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert!(
            columns.iter().any(|c| c.name == "Ready"),
            "{name} has no Ready column"
        );
    }
}
