//! Knative Build's object model: Knative's YAML reads and writes back unchanged, validation names
//! the offending field, defaults are Knative Build's, and the CRDs are structural.

use knative_build::apis::{Build, BuildTemplate, ClusterBuildTemplate, OnError};
use serde_json::{Value, json};

fn build(spec: Value) -> Build {
    serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1",
        "kind": "Build",
        "metadata": {"name": "b"},
        "spec": spec,
    }))
    .expect("a Build")
}

fn errors(b: &Build) -> String {
    b.validate()
        .map_or_else(|e| e.to_string(), |()| "ok".into())
}

const KNATIVE_BUILD: &str = r#"apiVersion: build.knative.dev/v1alpha1
kind: Build
metadata:
  name: kaniko-build
spec:
  serviceAccountName: build-bot
  source:
    git:
      url: https://github.com/my-user/my-repo
      revision: master
    subPath: app
  template:
    name: kaniko
    kind: ClusterBuildTemplate
    arguments:
    - name: IMAGE
      value: us.gcr.io/my-project/my-app
    env:
    - name: GOPROXY
      value: "off"
  nodeSelector:
    disktype: ssd
  timeout: 20m0s
"#;

#[test]
fn knative_build_yaml_reads_and_writes_back_unchanged() {
    let b: Build = serde_yaml::from_str(KNATIVE_BUILD).unwrap();
    assert_eq!(b.spec.timeout().as_secs(), 1200);
    let back: Value = serde_json::to_value(&b).unwrap();
    let original: Value = serde_yaml::from_str(KNATIVE_BUILD).unwrap();
    assert_eq!(back, original);
    assert_eq!(errors(&b), "ok");
}

#[test]
fn steps_keep_their_container_fields_and_tekton_extras() {
    let b = build(json!({"steps": [{
        "name": "test", "image": "golang", "command": ["go"], "args": ["test", "./..."],
        "workingDir": "/workspace/app", "onError": "continue", "timeout": "90s",
    }]}));
    let step = &b.spec.steps[0];
    assert_eq!(
        step.container.working_dir.as_deref(),
        Some("/workspace/app")
    );
    assert_eq!(step.on_error, Some(OnError::Continue));
    assert_eq!(step.timeout.unwrap().0.as_secs(), 90);
    assert_eq!(
        serde_json::to_value(step).unwrap()["timeout"],
        json!("1m30s")
    );
}

#[test]
fn the_default_timeout_is_ten_minutes() {
    let mut b = build(json!({"steps": [{"image": "busybox"}]}));
    b.set_defaults();
    assert_eq!(
        serde_json::to_value(&b.spec).unwrap()["timeout"],
        json!("10m0s")
    );
}

#[test]
fn defaulting_names_the_template_kind() {
    let mut b = build(json!({"template": {"name": "t"}}));
    b.set_defaults();
    assert_eq!(
        serde_json::to_value(&b.spec).unwrap()["template"]["kind"],
        json!("BuildTemplate")
    );
}

#[test]
fn a_build_needs_steps_or_a_template() {
    assert_eq!(
        errors(&build(json!({}))),
        "expected exactly one, got neither: spec.steps, spec.template"
    );
}

#[test]
fn a_build_cannot_have_both_steps_and_a_template() {
    assert_eq!(
        errors(&build(
            json!({"template": {"name": "t"}, "steps": [{"image": "x"}]})
        )),
        "expected exactly one, got both: spec.steps, spec.template"
    );
}

#[test]
fn duplicate_step_names_are_named_by_path() {
    let b = build(json!({"steps": [
        {"name": "a", "image": "x"}, {"name": "b", "image": "x"}, {"name": "a", "image": "x"}
    ]}));
    assert_eq!(
        errors(&b),
        "invalid value: a: spec.steps[2].name\nstep names must be unique"
    );
}

#[test]
fn a_step_needs_an_image() {
    assert_eq!(
        errors(&build(
            json!({"steps": [{"name": "a", "command": ["true"]}]})
        )),
        "missing field(s): spec.steps[0].image"
    );
}

#[test]
fn a_timeout_over_a_day_is_out_of_bounds() {
    assert_eq!(
        errors(&build(json!({"steps": [{"image": "x"}], "timeout": "25h"}))),
        "expected 0s <= 25h0m0s <= 24h0m0s: spec.timeout"
    );
}

#[test]
fn a_malformed_timeout_is_refused_when_read() {
    let err = serde_json::from_value::<Build>(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "Build",
        "metadata": {"name": "b"}, "spec": {"timeout": "ten minutes"},
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("invalid duration \"ten minutes\""),
        "{err}"
    );
}

#[test]
fn source_and_sources_are_exclusive() {
    let b = build(json!({
        "steps": [{"image": "x"}],
        "source": {"git": {"url": "u", "revision": "main"}},
        "sources": [{"name": "s", "git": {"url": "u", "revision": "main"}}],
    }));
    assert_eq!(
        errors(&b),
        "expected exactly one, got both: spec.source, spec.sources"
    );
}

#[test]
fn a_git_source_needs_a_url_and_revision() {
    let b =
        build(json!({"steps": [{"image": "x"}], "source": {"git": {"url": "", "revision": ""}}}));
    assert_eq!(
        errors(&b),
        "missing field(s): spec.source.git.revision, spec.source.git.url"
    );
}

#[test]
fn named_sources_must_be_named_uniquely() {
    let b = build(json!({"steps": [{"image": "x"}], "sources": [
        {"name": "s", "git": {"url": "u", "revision": "r"}},
        {"name": "s", "git": {"url": "u", "revision": "r"}, "targetPath": "other"},
        {"custom": {"image": "fetch"}},
    ]}));
    assert_eq!(
        errors(&b),
        "invalid value: s: spec.sources[1].name\nsource names must be unique\nmissing field(s): spec.sources[2].name"
    );
}

#[test]
fn a_target_path_must_stay_inside_the_workspace() {
    let b = build(json!({"steps": [{"image": "x"}], "sources": [
        {"name": "s", "git": {"url": "u", "revision": "r"}, "targetPath": "../etc"},
    ]}));
    assert_eq!(
        errors(&b),
        "invalid value: ../etc: spec.sources[0].targetPath\nmust be a relative path inside the workspace"
    );
}

#[test]
fn only_build_cancelled_may_be_set_as_status() {
    let b = build(json!({"steps": [{"image": "x"}], "status": "Paused"}));
    assert_eq!(
        errors(&b),
        "invalid value: Paused: spec.status\nthe only status a user may set is BuildCancelled"
    );
}

#[test]
fn mounts_must_name_a_declared_volume() {
    let b = build(
        json!({"steps": [{"image": "x", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]}),
    );
    assert_eq!(
        errors(&b),
        "invalid value: cache: spec.steps[0].volumeMounts[0].name\nno volume of this name in spec.volumes"
    );
}

#[test]
fn template_parameters_must_be_named_uniquely() {
    let t: BuildTemplate = serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "BuildTemplate",
        "metadata": {"name": "t"},
        "spec": {"parameters": [{"name": "IMAGE"}, {"name": "IMAGE"}], "steps": [{"image": "x"}]},
    }))
    .unwrap();
    assert_eq!(
        t.validate().unwrap_err().to_string(),
        "invalid value: IMAGE: spec.parameters[1].name\nparameter names must be unique"
    );
}

#[test]
fn a_cluster_build_template_reads_the_same_fields() {
    let t: ClusterBuildTemplate = serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "ClusterBuildTemplate",
        "metadata": {"name": "t"},
        "spec": {"parameters": [{"name": "IMAGE", "description": "where", "default": "x"}], "steps": []},
    }))
    .unwrap();
    assert_eq!(t.spec.template.parameters[0].default.as_deref(), Some("x"));
    assert_eq!(
        t.validate().unwrap_err().to_string(),
        "missing field(s): spec.steps"
    );
}

/// The problems that make a schema node non-structural, with their JSON paths.
fn structural_problems(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    for forbidden in [
        "$ref",
        "$defs",
        "definitions",
        "$schema",
        "anyOf",
        "oneOf",
        "allOf",
    ] {
        if obj.contains_key(forbidden) {
            problems.push(format!("{path}: has {forbidden}"));
        }
    }
    let preserved = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !obj.contains_key("type") && !preserved {
        problems.push(format!("{path}: no type"));
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
fn every_crd_is_structural() {
    let crds = knative_build::crds();
    let names: Vec<_> = crds
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "builds.build.knative.dev",
            "buildtemplates.build.knative.dev",
            "clusterbuildtemplates.build.knative.dev"
        ]
    );
    for crd in crds {
        let schema = crd.spec.versions[0].schema.as_ref().unwrap();
        let mut problems = Vec::new();
        structural_problems(
            &serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap(),
            "",
            &mut problems,
        );
        assert!(
            problems.is_empty(),
            "{:?}: {problems:#?}",
            crd.metadata.name
        );
    }
}

#[test]
fn the_cluster_template_crd_is_cluster_scoped_with_the_template_fields() {
    let crd = knative_build::crds().remove(2);
    assert_eq!(crd.spec.scope, "Cluster");
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["parameters"]["type"], "array");
    assert_eq!(spec["steps"]["type"], "array");
}
