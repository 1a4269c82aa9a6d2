//! `knative build run` as a real process: the build-hello example end to end (a local git
//! repository → a compiled HTTP function that answers), failures with the step and reason on
//! stderr, invalid Builds with field paths, timeouts, live logs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn knative(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knative"))
        .args(args)
        .output()
        .expect("knative runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../build-hello")
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> String {
    for _ in 0..100 {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            return response;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the function never listened on {port}");
}

#[test]
fn the_hello_example_builds_a_function_from_a_local_git_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("function")).unwrap();
    std::fs::copy(
        example().join("function/hello.rs"),
        repo.join("function/hello.rs"),
    )
    .unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "hello"]);
    let out = tmp.path().join("out");
    let build = std::fs::read_to_string(example().join("build.yaml"))
        .unwrap()
        .replace("/tmp/build-hello/repo", &repo.display().to_string())
        .replace("/tmp/build-hello/out", &out.display().to_string());
    let build = write(tmp.path(), "build.yaml", &build);
    let template = example().join("template.yaml").display().to_string();

    let o = knative(&["build", "run", "-f", &build, "-f", &template]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let progress = stdout(&o);
    for step in ["git-source-0", "compile", "check", "package"] {
        assert!(progress.contains(&format!("▶ {step}")), "{progress}");
        assert!(progress.contains(&format!("✓ {step}")), "{progress}");
    }
    assert!(progress.contains("result package/digest = "), "{progress}");

    let port = free_port();
    let mut function = Command::new(out.join("hello"))
        .env("PORT", port.to_string())
        .env("TARGET", "Build")
        .spawn()
        .unwrap();
    let response = get(port, "/");
    let _ = function.kill();
    let _ = function.wait();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("Hello Build!\n"), "{response}");
}

const FAILING: &str = r#"
apiVersion: build.knative.dev/v1alpha1
kind: Build
metadata: {name: broken}
spec:
  steps:
    - {name: prepare, image: busybox, command: [sh, -c, "echo ready"]}
    - {name: compile, image: busybox, command: [sh, -c, "echo 'main.c:3: syntax error' >&2; exit 4"]}
    - {name: never, image: busybox, command: ["true"]}
"#;

#[test]
fn a_failed_step_exits_1_naming_the_step_and_reason_with_its_log_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let o = knative(&["build", "run", "-f", &write(tmp.path(), "b.yaml", FAILING)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("│ main.c:3: syntax error"), "{err}");
    assert!(
        err.contains(
            "error: build \"broken\" failed at step \"compile\": exited with code 4 (BuildFailed)"
        ),
        "{err}"
    );
    assert!(stdout(&o).contains("✗ compile"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("▶ never"), "{}", stdout(&o));
}

#[test]
fn a_build_past_its_timeout_exits_1_with_build_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: slow}\nspec:\n  timeout: 500ms\n  steps:\n    - {name: wait, image: busybox, command: [sleep, '30']}\n";
    let o = knative(&["build", "run", "-f", &write(tmp.path(), "b.yaml", yaml)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("failed at step \"wait\": killed at the build's timeout (BuildTimeout)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_invalid_build_exits_2_with_field_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: bad}\nspec:\n  timeout: 48h\n  steps:\n    - {name: a, image: x, command: ['true']}\n    - {name: a, image: x, command: ['true']}\n";
    let o = knative(&["build", "run", "-f", &write(tmp.path(), "b.yaml", yaml)]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("spec.steps[1].name"), "{err}");
    assert!(err.contains("spec.timeout"), "{err}");
}

#[test]
fn a_missing_template_argument_names_the_parameter_and_its_use() {
    let tmp = tempfile::tempdir().unwrap();
    let build = "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: b}\nspec:\n  template: {name: greet}\n";
    let template = "apiVersion: build.knative.dev/v1alpha1\nkind: BuildTemplate\nmetadata: {name: greet}\nspec:\n  parameters: [{name: WHO}]\n  steps:\n    - {name: say, image: x, command: [echo, 'hello ${WHO}']}\n";
    let o = knative(&[
        "build",
        "run",
        "-f",
        &write(tmp.path(), "b.yaml", build),
        "-f",
        &write(tmp.path(), "t.yaml", template),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "missing argument for parameter WHO (no default), used in steps[0].command[1]: spec.template.arguments"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn template_arguments_reach_the_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let build = "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: b}\nspec:\n  template:\n    name: greet\n    arguments: [{name: WHO, value: Knative}]\n";
    let template = "apiVersion: build.knative.dev/v1alpha1\nkind: BuildTemplate\nmetadata: {name: greet}\nspec:\n  parameters: [{name: WHO}]\n  steps:\n    - {name: say, image: x, command: [echo, 'hello ${WHO}']}\n";
    let o = knative(&[
        "build",
        "run",
        "--logs",
        "-f",
        &write(tmp.path(), "b.yaml", build),
        "-f",
        &write(tmp.path(), "t.yaml", template),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("  [say] hello Knative\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn without_a_build_the_command_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: build.knative.dev/v1alpha1\nkind: BuildTemplate\nmetadata: {name: t}\nspec:\n  steps: [{image: x}]\n";
    let o = knative(&["build", "run", "-f", &write(tmp.path(), "t.yaml", yaml)]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "error: no Build in the given files\n");
}

#[test]
fn validate_checks_build_kinds_with_field_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: ok}\nspec:\n  steps: [{name: a, image: x}]\n---\napiVersion: build.knative.dev/v1alpha1\nkind: Build\nmetadata: {name: dup}\nspec:\n  steps: [{name: a, image: x}, {name: a, image: x}]\n---\napiVersion: build.knative.dev/v1alpha1\nkind: BuildTemplate\nmetadata: {name: t}\nspec:\n  steps: [{name: a}]\n";
    let o = knative(&["validate", "-f", &write(tmp.path(), "b.yaml", yaml)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "ok  build.knative.dev/v1alpha1 Build ok\n\
         invalid  build.knative.dev/v1alpha1 Build dup\n    invalid value: a: spec.steps[1].name\n    step names must be unique\n\
         invalid  build.knative.dev/v1alpha1 BuildTemplate t\n    missing field(s): spec.steps[0].image\n"
    );
}

#[test]
fn crds_include_the_build_kinds() {
    let o = knative(&["crds"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in [
        "builds.build.knative.dev",
        "buildtemplates.build.knative.dev",
        "clusterbuildtemplates.build.knative.dev",
    ] {
        assert!(out.contains(&format!("name: {name}")), "{name} missing");
    }
}
