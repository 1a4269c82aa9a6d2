//! `knative validate -f FILE`: the binary run on the manifests in `tests/data/validate/`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/validate")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn validate(files: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_knative"));
    command.arg("validate");
    for file in files {
        command.arg("-f").arg(if *file == "-" {
            "-".to_owned()
        } else {
            data(file)
        });
    }
    command.output().expect("run knative validate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8")
}

#[test]
fn knatives_helloworld_is_valid() {
    let output = validate(&["helloworld.yaml"]);
    assert_eq!(
        stdout(&output),
        "ok  serving.knative.dev/v1 Service default/helloworld-go\n"
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_traffic_split_summing_to_90_is_invalid() {
    let output = validate(&["traffic-90.yaml"]);
    assert_eq!(
        stdout(&output),
        "invalid  serving.knative.dev/v1 Service default/split\n    \
         Traffic targets sum to 90, want 100: spec.traffic\n"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_target_naming_both_a_revision_and_a_configuration_is_invalid() {
    let output = validate(&["both-names.yaml"]);
    let out = stdout(&output);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("invalid  serving.knative.dev/v1 Route both")
    );
    assert_eq!(
        lines.next().map(str::trim_start),
        Some(
            "expected exactly one, got both: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
        )
    );
    assert_eq!(lines.next(), None);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn other_kinds_are_skipped_and_do_not_count() {
    let output = validate(&["mixed.yaml"]);
    assert_eq!(
        stdout(&output),
        "skipped  v1 ConfigMap foo (not a Knative kind)\n\
         ok  serving.knative.dev/v1 Service default/hello\n"
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_yaml_syntax_error_is_reported_with_the_file_and_line() {
    let output = validate(&["syntax-error.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("syntax-error.yaml: document 1: "), "{err}");
    assert!(err.trim_end().ends_with("at line 6 column 14"), "{err}");
}

#[test]
fn an_unreadable_file_is_exit_code_2_and_the_others_are_still_checked() {
    let output = validate(&["no-such-file.yaml", "traffic-90.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no-such-file.yaml"));
    assert!(stdout(&output).starts_with("invalid  serving.knative.dev/v1 Service default/split"));
}

#[test]
fn several_files_and_stdin_are_checked_in_order() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(["validate", "-f", &data("helloworld.yaml"), "-f", "-", "-f"])
        .arg(data("both-names.yaml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run knative validate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(std::fs::read(data("mixed.yaml")).unwrap().as_slice())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = stdout(&output);
    let firsts: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        firsts,
        [
            "ok  serving.knative.dev/v1 Service default/helloworld-go",
            "skipped  v1 ConfigMap foo (not a Knative kind)",
            "ok  serving.knative.dev/v1 Service default/hello",
            "invalid  serving.knative.dev/v1 Route both",
        ]
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_file_is_required() {
    let output = Command::new(env!("CARGO_BIN_EXE_knative"))
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
}
