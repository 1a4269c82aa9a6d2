//! `knative validate -f` on Eventing kinds: the documented manifests pass, bad ones fail with
//! field paths, and a stream mixing Serving and Eventing kinds checks both.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn manifest(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/eventing")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn validate_files(files: &[String]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_knative"));
    command.arg("validate");
    for file in files {
        command.arg("-f").arg(file);
    }
    command.output().expect("run knative validate")
}

fn validate_stdin(yaml: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run knative validate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

#[test]
fn the_documented_eventing_manifests_are_valid() {
    let files = [
        "broker-default.yaml",
        "trigger-attributes.yaml",
        "sequence.yaml",
        "parallel.yaml",
        "ping-source.yaml",
        "sink-binding-selector.yaml",
    ];
    let output = validate_files(&files.map(manifest));
    assert_eq!(
        stdout(&output),
        "ok  eventing.knative.dev/v1 Broker default/default\n\
         ok  eventing.knative.dev/v1 Trigger my-service-trigger\n\
         ok  flows.knative.dev/v1 Sequence sequence\n\
         ok  flows.knative.dev/v1 Parallel odd-even-parallel\n\
         ok  sources.knative.dev/v1 PingSource test-ping-source\n\
         ok  sources.knative.dev/v1 SinkBinding bind-heartbeat\n"
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_trigger_with_a_bad_attribute_name_and_no_broker_is_invalid_with_field_paths() {
    let output = validate_stdin(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n  filter:\n    attributes:\n      Type: x\n  subscriber:\n    uri: http://example.com\n",
    );
    assert_eq!(
        stdout(&output),
        "invalid  eventing.knative.dev/v1 Trigger t\n    \
         invalid key name \"Type\": spec.filter.attributes[Type]\n    \
         Attribute name must start with a letter and can only contain lowercase alphanumeric\n    \
         missing field(s): spec.broker\n"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_ping_source_with_a_bad_schedule_and_both_data_fields_is_invalid() {
    let output = validate_stdin(
        "apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata:\n  name: p\nspec:\n  schedule: '* * * *'\n  data: x\n  dataBase64: eA==\n  sink:\n    uri: http://example.com\n",
    );
    assert_eq!(
        stdout(&output),
        "invalid  sources.knative.dev/v1 PingSource p\n    \
         expected exactly one, got both: spec.data, spec.dataBase64\n    \
         invalid value: expected exactly 5 fields, found 4: [* * * *]: spec.schedule\n"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_malformed_delivery_names_the_field_that_does_not_decode() {
    let output = validate_stdin(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\nspec:\n  delivery:\n    retry: many\n",
    );
    let out = stdout(&output);
    assert!(
        out.starts_with("invalid  eventing.knative.dev/v1 Broker b\n"),
        "{out}"
    );
    assert!(out.contains(": spec.delivery.retry\n"), "{out}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_stream_of_serving_and_eventing_kinds_checks_both() {
    let output = validate_stdin(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n  template:\n    spec:\n      containers:\n        - image: ghcr.io/knative/helloworld-go:latest\n\
---\napiVersion: sources.knative.dev/v1\nkind: SinkBinding\nmetadata:\n  name: bind\nspec:\n  subject:\n    apiVersion: apps/v1\n    kind: Deployment\n  sink:\n    ref:\n      apiVersion: serving.knative.dev/v1\n      kind: Service\n      name: hello\n\
---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
    );
    assert_eq!(
        stdout(&output),
        "ok  serving.knative.dev/v1 Service hello\n\
         invalid  sources.knative.dev/v1 SinkBinding bind\n    \
         expected exactly one, got neither: spec.subject.name, spec.subject.selector\n\
         skipped  v1 ConfigMap settings (not a Knative kind)\n"
    );
    assert_eq!(output.status.code(), Some(1));
}
