//! The [`LocalExecutor`]: a build's steps as local processes in a temporary workspace.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    BuildEvent, BuildOutcome, BuildPlan, BuildReport, Events, ExecutorError,
    REASON_BUILD_CANCELLED, REASON_BUILD_FAILED, REASON_BUILD_TIMEOUT, REASON_COMPLETED,
    REASON_ERROR, REASON_START_ERROR, REASON_STEP_TIMEOUT, StepExecutor, StepReport, StepState,
    Termination,
};
use crate::apis::StepResult;

/// Where steps see the workspace in a Pod; a `workingDir` under it is mapped to the local one.
const POD_WORKSPACE: &str = "/workspace";

/// Runs a build's steps as local processes, in order, in a fresh temporary workspace:
///
/// - the workspace (`<tmp>/workspace`) is every step's default working directory, as
///   `/workspace` is in a Pod; a `workingDir` under `/workspace` maps into it, a relative one is
///   taken from it;
/// - a git source is cloned with the `git` CLI as the first step (`git-source-<i>`);
/// - each step runs `command` + `args` with the environment of this process plus the step's
///   `env`, `WORKSPACE` and `BUILDER_RESULTS` (a directory whose files become the step's
///   results), and optionally a fresh `HOME` ([`LocalExecutor::isolated_home`]);
/// - each line a step writes is sent as a [`BuildEvent::Log`] with the step's name;
/// - a step runs in its own process group: at its timeout, the build's timeout or on
///   cancellation the whole group is killed (as a container's processes die with it), and so
///   are processes it left behind when it exits;
/// - a failed step stops the build with its exit code, unless it says `onError: continue`;
///   a failed build is run again from a fresh workspace up to `retries` times.
///
/// Steps are commands, not images: a step without `command`, a volume mount, an environment
/// variable from a Secret or a GCS source is refused with [`ExecutorError::Unsupported`].
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    parent: Option<PathBuf>,
    keep_workspace: bool,
    isolated_home: bool,
    log_tail: usize,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self {
            parent: None,
            keep_workspace: false,
            isolated_home: false,
            log_tail: 20,
        }
    }
}

impl LocalExecutor {
    /// An executor making its workspaces in the system's temporary directory and removing them
    /// afterwards, keeping the last 20 log lines of each step.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes workspaces under `dir` instead.
    #[must_use]
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.parent = Some(dir.into());
        self
    }

    /// Leaves the workspaces in place after the build (for inspection).
    #[must_use]
    pub fn keep_workspace(mut self, keep: bool) -> Self {
        self.keep_workspace = keep;
        self
    }

    /// Gives every step a fresh, empty `HOME` (`<tmp>/home`, shared by the steps of an
    /// attempt), as `/builder/home` is in a Pod. Off by default: local tools (rustup, git's
    /// configuration) usually live in the user's home.
    #[must_use]
    pub fn isolated_home(mut self, isolated: bool) -> Self {
        self.isolated_home = isolated;
        self
    }

    /// Keeps the last `lines` lines of each step's output in its report.
    #[must_use]
    pub fn log_tail(mut self, lines: usize) -> Self {
        self.log_tail = lines;
        self
    }
}

/// One local process-running step.
#[derive(Clone, Debug, PartialEq)]
struct LocalStep {
    name: String,
    /// Run in order; the step fails at the first that fails.
    commands: Vec<Vec<String>>,
    env: Vec<(String, String)>,
    /// Relative to the attempt's root when relative.
    working_dir: PathBuf,
    timeout: Option<Duration>,
    continue_on_error: bool,
}

/// The directories of one attempt.
struct Layout {
    workspace: PathBuf,
    home: PathBuf,
    results: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Self {
        Self {
            workspace: root.join("workspace"),
            home: root.join("home"),
            results: root.join("results"),
        }
    }
}

#[async_trait]
impl StepExecutor for LocalExecutor {
    async fn execute(
        &self,
        plan: &BuildPlan,
        events: &Events,
        cancel: CancellationToken,
    ) -> Result<BuildReport, ExecutorError> {
        let steps = local_steps(plan)?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            events.send(BuildEvent::AttemptStarted { attempt });
            let dir = match &self.parent {
                Some(parent) => tempfile::Builder::new()
                    .prefix("knative-build-")
                    .tempdir_in(parent),
                None => tempfile::Builder::new().prefix("knative-build-").tempdir(),
            }
            .map_err(ExecutorError::Workspace)?;
            let layout = Layout::new(dir.path());
            for d in [&layout.workspace, &layout.home, &layout.results] {
                tokio::fs::create_dir_all(d)
                    .await
                    .map_err(ExecutorError::Workspace)?;
            }
            let deadline = Instant::now() + plan.timeout;
            let (outcome, reports) = self
                .run_attempt(plan, &steps, &layout, events, &cancel, deadline)
                .await;
            if self.keep_workspace {
                let _ = dir.keep();
            }
            let retry = matches!(&outcome, BuildOutcome::Failed { reason, .. } if reason != REASON_BUILD_CANCELLED)
                && attempt <= plan.retries;
            if !retry {
                return Ok(BuildReport {
                    outcome,
                    steps: reports,
                    attempts: attempt,
                    elapsed: started.elapsed(),
                });
            }
        }
    }
}

impl LocalExecutor {
    async fn run_attempt(
        &self,
        plan: &BuildPlan,
        steps: &[LocalStep],
        layout: &Layout,
        events: &Events,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> (BuildOutcome, Vec<StepReport>) {
        let mut reports: Vec<StepReport> = steps
            .iter()
            .map(|s| StepReport {
                name: s.name.clone(),
                state: StepState::Waiting,
                log_tail: Vec::new(),
                results: Vec::new(),
            })
            .collect();
        let base = match plan.sub_path() {
            Some(sub) => layout.workspace.join(sub),
            None => layout.workspace.clone(),
        };
        for (i, step) in steps.iter().enumerate() {
            events.send(BuildEvent::StepStarted {
                step: step.name.clone(),
            });
            reports[i].state = StepState::Running;
            let results_dir = layout.results.join(&step.name);
            let _ = tokio::fs::create_dir_all(&results_dir).await;
            let step_deadline = step
                .timeout
                .map_or(deadline, |t| deadline.min(Instant::now() + t));
            let working_dir = if step.working_dir.is_absolute() {
                step.working_dir.clone()
            } else if step.name.starts_with("git-source-")
                || step.name.starts_with("custom-source-")
            {
                layout.workspace.join(&step.working_dir)
            } else {
                base.join(&step.working_dir)
            };
            let mut env = vec![
                (
                    "WORKSPACE".to_owned(),
                    layout.workspace.display().to_string(),
                ),
                (
                    "BUILDER_RESULTS".to_owned(),
                    results_dir.display().to_string(),
                ),
            ];
            if self.isolated_home {
                env.push(("HOME".to_owned(), layout.home.display().to_string()));
            }
            env.extend(step.env.iter().cloned());
            let started = Instant::now();
            let mut tail = VecDeque::new();
            let mut end = ProcessEnd::Exited(0);
            for command in &step.commands {
                end = run_process(
                    command,
                    &env,
                    &working_dir,
                    &step.name,
                    events,
                    &mut tail,
                    self.log_tail,
                    step_deadline,
                    cancel,
                )
                .await;
                if !matches!(end, ProcessEnd::Exited(0)) {
                    break;
                }
            }
            let termination = termination(&end, step_deadline < deadline, started.elapsed());
            reports[i].results = read_results(&step.name, &results_dir).await;
            reports[i].log_tail = tail.into_iter().collect();
            reports[i].state = StepState::Terminated(termination.clone());
            events.send(BuildEvent::StepFinished {
                step: step.name.clone(),
                termination: termination.clone(),
            });
            if termination.succeeded() || (step.continue_on_error && is_plain_failure(&termination))
            {
                continue;
            }
            let reason = match termination.reason.as_str() {
                REASON_ERROR => REASON_BUILD_FAILED.to_owned(),
                other => other.to_owned(),
            };
            let outcome = BuildOutcome::Failed {
                step: step.name.clone(),
                exit_code: termination.exit_code,
                reason,
                message: termination.message,
            };
            return (outcome, reports);
        }
        (BuildOutcome::Succeeded, reports)
    }
}

/// A failure `onError: continue` lets pass: the step's own error or its own timeout, not the
/// build's timeout or a cancellation.
fn is_plain_failure(t: &Termination) -> bool {
    matches!(
        t.reason.as_str(),
        REASON_ERROR | REASON_STEP_TIMEOUT | REASON_START_ERROR
    )
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ProcessEnd {
    Exited(i32),
    TimedOut,
    Cancelled,
    StartError(String),
}

fn termination(end: &ProcessEnd, own_deadline: bool, elapsed: Duration) -> Termination {
    let (exit_code, reason, message) = match end {
        ProcessEnd::Exited(0) => (0, REASON_COMPLETED, String::new()),
        ProcessEnd::Exited(code) => (*code, REASON_ERROR, format!("exited with code {code}")),
        ProcessEnd::TimedOut if own_deadline => (
            137,
            REASON_STEP_TIMEOUT,
            format!("killed at the step's timeout after {elapsed:.1?}"),
        ),
        ProcessEnd::TimedOut => (
            137,
            REASON_BUILD_TIMEOUT,
            "killed at the build's timeout".to_owned(),
        ),
        ProcessEnd::Cancelled => (
            137,
            REASON_BUILD_CANCELLED,
            "the build was cancelled".to_owned(),
        ),
        ProcessEnd::StartError(e) => (127, REASON_START_ERROR, e.clone()),
    };
    Termination {
        exit_code,
        reason: reason.to_owned(),
        message,
        elapsed,
    }
}

/// Runs one process in its own process group until it exits, `deadline` passes or `cancel`
/// fires; streams its lines as events and keeps the last `keep` of them in `tail`.
#[allow(clippy::too_many_arguments)]
async fn run_process(
    command: &[String],
    env: &[(String, String)],
    working_dir: &Path,
    step: &str,
    events: &Events,
    tail: &mut VecDeque<String>,
    keep: usize,
    deadline: Instant,
    cancel: &CancellationToken,
) -> ProcessEnd {
    let Some((program, args)) = command.split_first() else {
        return ProcessEnd::StartError("no command".to_owned());
    };
    let mut child = match Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let message = format!("cannot start {program:?} in {}: {e}", working_dir.display());
            push_line(tail, keep, message.clone());
            events.send(BuildEvent::Log {
                step: step.to_owned(),
                line: message.clone(),
            });
            return ProcessEnd::StartError(message);
        }
    };
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel();
    let readers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(forward_lines(out, lines_tx.clone()))),
        child
            .stderr
            .take()
            .map(|err| tokio::spawn(forward_lines(err, lines_tx.clone()))),
    ];
    drop(lines_tx);
    let mut line_stream_open = true;
    let end = loop {
        tokio::select! {
            status = child.wait() => {
                break match status {
                    Ok(status) => ProcessEnd::Exited(exit_code(status)),
                    Err(e) => ProcessEnd::StartError(format!("cannot wait for {program:?}: {e}")),
                };
            }
            line = lines_rx.recv(), if line_stream_open => match line {
                Some(line) => {
                    events.send(BuildEvent::Log { step: step.to_owned(), line: line.clone() });
                    push_line(tail, keep, line);
                }
                None => line_stream_open = false,
            },
            () = tokio::time::sleep_until(deadline) => {
                kill_group(group);
                let _ = child.wait().await;
                break ProcessEnd::TimedOut;
            }
            () = cancel.cancelled() => {
                kill_group(group);
                let _ = child.wait().await;
                break ProcessEnd::Cancelled;
            }
        }
    };
    // Like a container's, the step's processes end with it: nothing it left running holds the
    // workspace or the output pipes.
    kill_group(group);
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    while let Some(line) = lines_rx.recv().await {
        events.send(BuildEvent::Log {
            step: step.to_owned(),
            line: line.clone(),
        });
        push_line(tail, keep, line);
    }
    end
}

fn kill_group(group: Option<Pid>) {
    if let Some(group) = group {
        // ESRCH: the group is already gone.
        let _ = killpg(group, Signal::SIGKILL);
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn push_line(tail: &mut VecDeque<String>, keep: usize, line: String) {
    if keep == 0 {
        return;
    }
    if tail.len() == keep {
        tail.pop_front();
    }
    tail.push_back(line);
}

async fn forward_lines(stream: impl AsyncRead + Unpin, lines: mpsc::UnboundedSender<String>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).to_owned();
                if lines.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

/// The files a step wrote into its results directory, by name (a trailing newline dropped).
async fn read_results(step: &str, dir: &Path) -> Vec<StepResult> {
    let mut results = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return results;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if !entry.file_type().await.is_ok_and(|t| t.is_file()) {
            continue;
        }
        let value = match tokio::fs::read(entry.path()).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => continue,
        };
        results.push(StepResult {
            step: step.to_owned(),
            name: entry.file_name().to_string_lossy().into_owned(),
            value: value.strip_suffix('\n').unwrap_or(&value).to_owned(),
        });
    }
    results.sort_by(|a, b| a.name.cmp(&b.name));
    results
}

/// The plan as local steps: sources first, then the build's steps.
fn local_steps(plan: &BuildPlan) -> Result<Vec<LocalStep>, ExecutorError> {
    let unsupported = |path: String, message: &str| ExecutorError::Unsupported {
        path,
        message: message.to_owned(),
    };
    let mut steps = Vec::new();
    for (i, source) in plan.sources.iter().enumerate() {
        let name = plan.source_step_name(i);
        let target = source.target_path.clone().unwrap_or_default();
        if let Some(git) = &source.git {
            let dest = if target.is_empty() {
                ".".to_owned()
            } else {
                target
            };
            steps.push(LocalStep {
                name,
                commands: vec![
                    vec![
                        "git".into(),
                        "clone".into(),
                        "--quiet".into(),
                        git.url.clone(),
                        dest.clone(),
                    ],
                    vec![
                        "git".into(),
                        "-C".into(),
                        dest,
                        "-c".into(),
                        "advice.detachedHead=false".into(),
                        "checkout".into(),
                        "--quiet".into(),
                        git.revision.clone(),
                    ],
                ],
                env: Vec::new(),
                working_dir: PathBuf::new(),
                timeout: None,
                continue_on_error: false,
            });
        } else if let Some(custom) = &source.custom {
            let step = crate::apis::Step::from(custom.clone());
            let mut local = local_step(&name, &step, &format!("spec.sources[{i}].custom"))?;
            local.working_dir = PathBuf::from(target).join(local.working_dir);
            steps.push(local);
        } else {
            return Err(unsupported(
                format!("spec.sources[{i}].gcs"),
                "the LocalExecutor fetches git and custom sources only",
            ));
        }
    }
    for (i, step) in plan.steps.iter().enumerate() {
        steps.push(local_step(step.name(), step, &format!("spec.steps[{i}]"))?);
    }
    Ok(steps)
}

fn local_step(
    name: &str,
    step: &crate::apis::Step,
    path: &str,
) -> Result<LocalStep, ExecutorError> {
    let container = &step.container;
    let command: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect();
    if container.command.as_ref().is_none_or(Vec::is_empty) {
        return Err(ExecutorError::Unsupported {
            path: format!("{path}.command"),
            message: "the LocalExecutor runs a step's command; it cannot run an image's entrypoint"
                .to_owned(),
        });
    }
    if container
        .volume_mounts
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        return Err(ExecutorError::Unsupported {
            path: format!("{path}.volumeMounts"),
            message: "the LocalExecutor cannot mount volumes".to_owned(),
        });
    }
    let mut env = Vec::new();
    for (j, var) in container.env.iter().flatten().enumerate() {
        if var.value_from.is_some() {
            return Err(ExecutorError::Unsupported {
                path: format!("{path}.env[{j}].valueFrom"),
                message: "the LocalExecutor takes environment values only, not references"
                    .to_owned(),
            });
        }
        env.push((var.name.clone(), var.value.clone().unwrap_or_default()));
    }
    let working_dir = match container.working_dir.as_deref() {
        None | Some("") => PathBuf::new(),
        Some(dir) => match dir.strip_prefix(POD_WORKSPACE) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                PathBuf::from(rest.trim_start_matches('/'))
            }
            _ => PathBuf::from(dir),
        },
    };
    Ok(LocalStep {
        name: name.to_owned(),
        commands: vec![command],
        env,
        working_dir,
        timeout: step.timeout.map(|t| t.0),
        continue_on_error: step.continues_on_error(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::Build;

    fn plan(spec: serde_json::Value) -> BuildPlan {
        let build: Build = serde_json::from_value(serde_json::json!({
            "apiVersion": "build.knative.dev/v1alpha1", "kind": "Build",
            "metadata": {"name": "b"}, "spec": spec,
        }))
        .unwrap();
        BuildPlan::new(&build, None).unwrap()
    }

    #[test]
    fn a_working_dir_under_the_pod_workspace_maps_into_the_local_one() {
        let p = plan(serde_json::json!({"steps": [
            {"image": "x", "command": ["true"], "workingDir": "/workspace/app"},
            {"image": "x", "command": ["true"], "workingDir": "/workspaces"},
            {"image": "x", "command": ["true"], "workingDir": "sub"},
        ]}));
        let dirs: Vec<_> = local_steps(&p)
            .unwrap()
            .into_iter()
            .map(|s| s.working_dir)
            .collect();
        assert_eq!(
            dirs,
            [
                PathBuf::from("app"),
                PathBuf::from("/workspaces"),
                PathBuf::from("sub")
            ]
        );
    }

    #[test]
    fn a_git_source_becomes_a_clone_and_checkout_step_first() {
        let p = plan(serde_json::json!({
            "source": {"git": {"url": "/srv/repo", "revision": "v1"}},
            "steps": [{"name": "build", "image": "x", "command": ["make"]}],
        }));
        let steps = local_steps(&p).unwrap();
        assert_eq!(steps[0].name, "git-source-0");
        assert_eq!(
            steps[0].commands[0],
            ["git", "clone", "--quiet", "/srv/repo", "."]
        );
        assert_eq!(steps[0].commands[1].last().unwrap(), "v1");
        assert_eq!(steps[1].name, "build");
    }

    #[test]
    fn a_step_without_a_command_is_refused_with_its_path() {
        let p = plan(serde_json::json!({"steps": [{"image": "x"}]}));
        assert_eq!(
            local_steps(&p).unwrap_err().to_string(),
            "the LocalExecutor runs a step's command; it cannot run an image's entrypoint: spec.steps[0].command"
        );
    }

    #[test]
    fn a_gcs_source_is_refused() {
        let p = plan(serde_json::json!({
            "source": {"gcs": {"location": "gs://b/o"}},
            "steps": [{"image": "x", "command": ["true"]}],
        }));
        assert!(
            matches!(local_steps(&p), Err(ExecutorError::Unsupported { path, .. }) if path == "spec.sources[0].gcs")
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let mut tail = VecDeque::new();
        for i in 0..5 {
            push_line(&mut tail, 3, i.to_string());
        }
        assert_eq!(tail, ["2", "3", "4"]);
    }
}
