//! The LocalExecutor running real processes: steps in order in a shared workspace, logs with
//! the step's name, failures, `onError: continue`, per-step and whole-build timeouts and
//! cancellation killing the step's process group, results, retries, and a git source cloned
//! from a real local repository.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use knative_build::apis::Build;
use knative_build::executor::{
    BuildEvent, BuildOutcome, BuildPlan, BuildReport, CancellationToken, Events, LocalExecutor,
    StepExecutor, StepState, Termination,
};
use serde_json::{Value, json};

fn plan(spec: Value) -> BuildPlan {
    let build: Build = serde_json::from_value(json!({
        "apiVersion": "build.knative.dev/v1alpha1", "kind": "Build",
        "metadata": {"name": "test"}, "spec": spec,
    }))
    .expect("a Build");
    BuildPlan::new(&build, None).expect("a valid Build")
}

fn sh(name: &str, script: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c", script]})
}

async fn run(plan: &BuildPlan) -> (BuildReport, Vec<BuildEvent>) {
    let (events, mut rx) = Events::channel();
    let report = LocalExecutor::new()
        .execute(plan, &events, CancellationToken::new())
        .await
        .expect("the build runs");
    drop(events);
    let mut seen = Vec::new();
    while let Some(e) = rx.recv().await {
        seen.push(e);
    }
    (report, seen)
}

fn terminated(report: &BuildReport, step: &str) -> Termination {
    match &report
        .steps
        .iter()
        .find(|s| s.name == step)
        .expect("step")
        .state
    {
        StepState::Terminated(t) => t.clone(),
        other => panic!("{step} is {other:?}"),
    }
}

fn failed_reason(report: &BuildReport) -> (String, i32, String) {
    match &report.outcome {
        BuildOutcome::Failed {
            step,
            exit_code,
            reason,
            ..
        } => (step.clone(), *exit_code, reason.clone()),
        BuildOutcome::Succeeded => panic!("the build succeeded"),
    }
}

#[tokio::test]
async fn steps_run_in_order_sharing_the_workspace() {
    let p = plan(json!({"steps": [
        sh("write", "echo hello > greeting"),
        sh("read", "cat greeting"),
    ]}));
    let (report, events) = run(&p).await;
    assert_eq!(report.outcome, BuildOutcome::Succeeded);
    assert!(events.contains(&BuildEvent::Log {
        step: "read".into(),
        line: "hello".into()
    }));
}

#[tokio::test]
async fn logs_are_streamed_with_the_step_name_from_stdout_and_stderr() {
    let p = plan(json!({"steps": [sh("talk", "echo out; echo err >&2")]}));
    let (report, events) = run(&p).await;
    let lines: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Log { step, line } => Some(format!("{step}: {line}")),
            _ => None,
        })
        .collect();
    assert!(lines.contains(&"talk: out".to_owned()), "{lines:?}");
    assert!(lines.contains(&"talk: err".to_owned()), "{lines:?}");
    assert_eq!(report.steps[0].log_tail.len(), 2);
}

#[tokio::test]
async fn each_step_reports_start_and_finish_events_in_order() {
    let p = plan(json!({"steps": [sh("a", "true"), sh("b", "true")]}));
    let (_, events) = run(&p).await;
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::StepStarted { step } => Some(format!("start {step}")),
            BuildEvent::StepFinished { step, .. } => Some(format!("end {step}")),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["start a", "end a", "start b", "end b"]);
}

#[tokio::test]
async fn a_failed_step_stops_the_build_with_its_exit_code() {
    let p = plan(json!({"steps": [
        sh("ok", "true"),
        sh("broken", "echo compiling; echo 'error: bad' >&2; exit 3"),
        sh("never", "true"),
    ]}));
    let (report, _) = run(&p).await;
    assert_eq!(
        failed_reason(&report),
        ("broken".into(), 3, "BuildFailed".into())
    );
    assert_eq!(report.steps[2].state, StepState::Waiting);
    assert_eq!(report.steps[1].log_tail, ["compiling", "error: bad"]);
}

#[tokio::test]
async fn on_error_continue_records_the_failure_and_goes_on() {
    let mut lint = sh("lint", "exit 1");
    lint["onError"] = json!("continue");
    let p = plan(json!({"steps": [lint, sh("build", "true")]}));
    let (report, _) = run(&p).await;
    assert_eq!(report.outcome, BuildOutcome::Succeeded);
    assert_eq!(terminated(&report, "lint").exit_code, 1);
    assert_eq!(terminated(&report, "build").reason, "Completed");
}

fn process_is_gone(pid: i32) -> bool {
    // A process killed but not yet reaped by its new parent is a zombie: gone for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn eventually_gone(pid: i32) -> bool {
    for _ in 0..50 {
        if process_is_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_step_timeout_kills_the_steps_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut slow = sh(
        "slow",
        &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
    );
    slow["timeout"] = json!("300ms");
    let p = plan(json!({"steps": [slow, sh("after", "true")]}));
    let (report, _) = run(&p).await;
    assert_eq!(
        failed_reason(&report),
        ("slow".into(), 137, "StepTimeout".into())
    );
    let background: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        eventually_gone(background).await,
        "sleep {background} survived"
    );
}

#[tokio::test]
async fn processes_a_step_leaves_behind_are_killed_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = plan(json!({"steps": [sh(
        "daemonize",
        &format!("sleep 30 > /dev/null 2>&1 & echo $! > {}", pidfile.display()),
    )]}));
    let (report, _) = run(&p).await;
    assert_eq!(report.outcome, BuildOutcome::Succeeded);
    let background: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(eventually_gone(background).await);
}

#[tokio::test]
async fn the_build_timeout_stops_the_running_step() {
    let p = plan(json!({"timeout": "300ms", "steps": [sh("slow", "sleep 30")]}));
    let (report, _) = run(&p).await;
    assert_eq!(
        failed_reason(&report),
        ("slow".into(), 137, "BuildTimeout".into())
    );
    assert!(report.elapsed < Duration::from_secs(10));
}

#[tokio::test]
async fn on_error_continue_does_not_outlive_the_build_timeout() {
    let mut slow = sh("slow", "sleep 30");
    slow["onError"] = json!("continue");
    let p = plan(json!({"timeout": "300ms", "steps": [slow, sh("after", "true")]}));
    let (report, _) = run(&p).await;
    assert_eq!(failed_reason(&report).2, "BuildTimeout");
}

#[tokio::test]
async fn cancellation_kills_the_running_step() {
    let p = plan(json!({"steps": [sh("slow", "sleep 30")]}));
    let cancel = CancellationToken::new();
    let (events, mut rx) = Events::channel();
    let run = {
        let cancel = cancel.clone();
        let p = p.clone();
        tokio::spawn(async move { LocalExecutor::new().execute(&p, &events, cancel).await })
    };
    while let Some(e) = rx.recv().await {
        if matches!(e, BuildEvent::StepStarted { .. }) {
            break;
        }
    }
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("cancelled promptly")
        .unwrap()
        .unwrap();
    assert_eq!(
        failed_reason(&report),
        ("slow".into(), 137, "BuildCancelled".into())
    );
}

#[tokio::test]
async fn a_command_that_does_not_exist_fails_to_start() {
    let p = plan(json!({"steps": [{"name": "x", "image": "i", "command": ["/no/such/program"]}]}));
    let (report, _) = run(&p).await;
    assert_eq!(
        failed_reason(&report),
        ("x".into(), 127, "StartError".into())
    );
}

#[tokio::test]
async fn files_under_builder_results_become_the_steps_results() {
    let p = plan(json!({"steps": [sh(
        "digest",
        "printf sha256:abc > $BUILDER_RESULTS/digest; echo v1 > $BUILDER_RESULTS/version"
    )]}));
    let (report, _) = run(&p).await;
    let results: Vec<_> = report
        .results()
        .map(|r| format!("{}/{}={}", r.step, r.name, r.value))
        .collect();
    assert_eq!(results, ["digest/digest=sha256:abc", "digest/version=v1"]);
}

#[tokio::test]
async fn a_failed_build_is_retried_from_a_fresh_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("attempts");
    let script = format!(
        "test ! -e leftover || exit 9; touch leftover; echo x >> {0}; test $(wc -l < {0}) -ge 2",
        counter.display()
    );
    let p = plan(json!({"retries": 2, "steps": [sh("flaky", &script)]}));
    let (report, events) = run(&p).await;
    assert_eq!(report.outcome, BuildOutcome::Succeeded);
    assert_eq!(report.attempts, 2);
    assert!(events.contains(&BuildEvent::AttemptStarted { attempt: 2 }));
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let p = plan(json!({"retries": 1, "steps": [sh("broken", "exit 1")]}));
    let (report, _) = run(&p).await;
    assert_eq!(report.attempts, 2);
    assert_eq!(failed_reason(&report).1, 1);
}

#[tokio::test]
async fn the_workspace_is_the_working_directory_and_home_is_the_users() {
    let p = plan(json!({"steps": [sh(
        "where",
        "test \"$(pwd)\" = \"$WORKSPACE\" && echo \"$HOME\""
    )]}));
    let (report, _) = run(&p).await;
    assert_eq!(
        report.outcome,
        BuildOutcome::Succeeded,
        "{:?}",
        report.steps
    );
    assert_eq!(report.steps[0].log_tail, [std::env::var("HOME").unwrap()]);
}

#[tokio::test]
async fn an_isolated_home_is_a_fresh_directory_shared_by_the_steps() {
    let p = plan(json!({"steps": [
        sh("first", "test -z \"$(ls -A $HOME)\" && touch $HOME/.marker"),
        sh("second", "test -e $HOME/.marker && test \"$HOME\" != \"$WORKSPACE\""),
    ]}));
    let report = LocalExecutor::new()
        .isolated_home(true)
        .execute(&p, &Events::none(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        BuildOutcome::Succeeded,
        "{:?}",
        report.steps
    );
}

#[tokio::test]
async fn a_working_dir_under_workspace_is_mapped_into_the_local_workspace() {
    let mut inner = sh("inner", "pwd");
    inner["workingDir"] = json!("/workspace/sub");
    let p = plan(json!({"steps": [sh("mk", "mkdir sub"), inner]}));
    let (report, _) = run(&p).await;
    assert_eq!(
        report.outcome,
        BuildOutcome::Succeeded,
        "{:?}",
        report.steps
    );
    assert!(report.steps[1].log_tail[0].ends_with("/workspace/sub"));
}

#[tokio::test]
async fn step_env_is_passed_to_the_process() {
    let mut step = sh("env", "echo $TARGET");
    step["env"] = json!([{"name": "TARGET", "value": "World"}]);
    let (report, _) = run(&plan(json!({"steps": [step]}))).await;
    assert_eq!(report.steps[0].log_tail, ["World"]);
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// A repository with `hello.txt` = "v1" at tag `v1`, then "v2" on the default branch.
fn repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::create_dir(repo.path().join("app")).unwrap();
    std::fs::write(repo.path().join("app/hello.txt"), "v1\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "--quiet", "-m", "v1"]);
    git(repo.path(), &["tag", "v1"]);
    std::fs::write(repo.path().join("app/hello.txt"), "v2\n").unwrap();
    git(repo.path(), &["commit", "--quiet", "-am", "v2"]);
    repo
}

#[tokio::test]
async fn a_git_source_is_cloned_at_its_revision_before_the_steps() {
    let repo = repository();
    let p = plan(json!({
        "source": {"git": {"url": repo.path().display().to_string(), "revision": "v1"}},
        "steps": [sh("show", "cat app/hello.txt")],
    }));
    let (report, events) = run(&p).await;
    assert_eq!(
        report.outcome,
        BuildOutcome::Succeeded,
        "{:?}",
        report.steps
    );
    assert_eq!(report.steps[0].name, "git-source-0");
    assert_eq!(report.steps[1].log_tail, ["v1"]);
    assert_eq!(
        events.first(),
        Some(&BuildEvent::AttemptStarted { attempt: 1 })
    );
}

#[tokio::test]
async fn a_sub_path_makes_that_directory_the_steps_workspace() {
    let repo = repository();
    let p = plan(json!({
        "source": {"git": {"url": repo.path().display().to_string(), "revision": "main"}, "subPath": "app"},
        "steps": [sh("show", "cat hello.txt")],
    }));
    let (report, _) = run(&p).await;
    assert_eq!(report.steps[1].log_tail, ["v2"]);
}

#[tokio::test]
async fn named_sources_go_to_their_target_paths() {
    let repo = repository();
    let url = repo.path().display().to_string();
    let p = plan(json!({
        "sources": [
            {"name": "old", "git": {"url": url, "revision": "v1"}, "targetPath": "old"},
            {"name": "new", "git": {"url": url, "revision": "main"}, "targetPath": "new"},
        ],
        "steps": [sh("diff", "cat old/app/hello.txt new/app/hello.txt")],
    }));
    let (report, _) = run(&p).await;
    assert_eq!(report.steps[0].name, "git-source-old");
    assert_eq!(report.steps[2].log_tail, ["v1", "v2"]);
}

#[tokio::test]
async fn an_unknown_revision_fails_the_source_step() {
    let repo = repository();
    let p = plan(json!({
        "source": {"git": {"url": repo.path().display().to_string(), "revision": "no-such-tag"}},
        "steps": [sh("never", "true")],
    }));
    let (report, _) = run(&p).await;
    let (step, code, reason) = failed_reason(&report);
    assert_eq!(
        (step.as_str(), reason.as_str()),
        ("git-source-0", "BuildFailed")
    );
    assert_ne!(code, 0);
    assert!(
        report.steps[0]
            .log_tail
            .iter()
            .any(|l| l.contains("no-such-tag")),
        "{:?}",
        report.steps[0].log_tail
    );
}
