//! `knative build run`: a Build run on this machine with the LocalExecutor, with live progress.
//!
//! ```text
//! $ knative build run -f build.yaml -f template.yaml
//! build hello: 3 steps, timeout 10m0s
//! ▶ git-source-0
//! ✓ git-source-0  0.02s
//! ▶ compile
//! ✗ compile  1.20s  exit 2 (BuildFailed)
//!     │ main.rs:3: error: ...
//! error: build "hello" failed at step "compile": exited with code 2 (BuildFailed)
//! ```
//!
//! Exit code: 0 when the Build succeeded; 1 when it failed, timed out or was cancelled (Ctrl-C);
//! 2 when the files are unreadable or the Build is invalid (with field paths).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use knative_build::apis::{
    Build, BuildTemplate, BuildTemplateSpec, ClusterBuildTemplate, TemplateKind,
};
use knative_build::executor::{
    BuildEvent, BuildOutcome, BuildPlan, BuildReport, CancellationToken, Events, LocalExecutor,
    StepExecutor, StepState,
};

/// Arguments of `knative build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BuildCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BuildCommand {
    /// Run a Build's steps as local processes in a temporary workspace.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// YAML files holding the Build (exactly one) and the BuildTemplates or
    /// ClusterBuildTemplates it uses. May be given several times.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Print every line the steps write, prefixed with the step's name.
    #[arg(long)]
    logs: bool,
    /// Make the workspace under this directory (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    workspace_dir: Option<PathBuf>,
    /// Keep the workspace after the build.
    #[arg(long)]
    keep_workspace: bool,
    /// Give the steps a fresh, empty HOME, as /builder/home is in a Pod.
    #[arg(long)]
    isolated_home: bool,
    /// How many of a failed step's last lines to show.
    #[arg(long, default_value_t = 20)]
    tail: usize,
}

/// The Build succeeded.
const SUCCEEDED: u8 = 0;
/// The Build failed, timed out or was cancelled.
const FAILED: u8 = 1;
/// The input is unreadable or invalid.
const INVALID: u8 = 2;

/// Runs `knative build`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        BuildCommand::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            Ok(ExitCode::from(runtime.block_on(run_build(args))))
        }
    }
}

async fn run_build(args: RunArgs) -> u8 {
    let plan = match load(&args.files) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            return INVALID;
        }
    };
    let mut executor = LocalExecutor::new()
        .keep_workspace(args.keep_workspace)
        .isolated_home(args.isolated_home)
        .log_tail(args.tail);
    if let Some(dir) = &args.workspace_dir {
        executor = executor.in_dir(dir);
    }
    println!(
        "build {}: {} step(s), {} source(s), timeout {}",
        plan.name,
        plan.steps.len(),
        plan.sources.len(),
        knative_build::apis::Duration(plan.timeout)
    );

    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: cancelling the build");
            on_interrupt.cancel();
        }
    });
    let (events, mut rx) = Events::channel();
    let printer = tokio::spawn(async move {
        let mut started: HashMap<String, Instant> = HashMap::new();
        let mut out = std::io::stdout();
        while let Some(event) = rx.recv().await {
            let _ = print_event(&mut out, &event, args.logs, &mut started);
        }
    });
    let result = executor.execute(&plan, &events, cancel).await;
    drop(events);
    let _ = printer.await;
    match result {
        Ok(report) => summarise(&plan, &report),
        Err(e) => {
            eprintln!("error: build {:?} cannot run here: {e}", plan.name);
            INVALID
        }
    }
}

fn print_event(
    out: &mut impl Write,
    event: &BuildEvent,
    logs: bool,
    started: &mut HashMap<String, Instant>,
) -> std::io::Result<()> {
    match event {
        BuildEvent::AttemptStarted { attempt } if *attempt > 1 => {
            writeln!(out, "retrying: attempt {attempt}")
        }
        BuildEvent::AttemptStarted { .. } => Ok(()),
        BuildEvent::StepStarted { step } => {
            started.insert(step.clone(), Instant::now());
            writeln!(out, "▶ {step}")
        }
        BuildEvent::Log { step, line } if logs => writeln!(out, "  [{step}] {line}"),
        BuildEvent::Log { .. } => Ok(()),
        BuildEvent::StepFinished { step, termination } => {
            let elapsed = termination.elapsed.as_secs_f64();
            if termination.succeeded() {
                writeln!(out, "✓ {step}  {elapsed:.2}s")
            } else {
                writeln!(
                    out,
                    "✗ {step}  {elapsed:.2}s  exit {} ({})",
                    termination.exit_code, termination.reason
                )
            }
        }
    }
    .and_then(|()| out.flush())
}

fn summarise(plan: &BuildPlan, report: &BuildReport) -> u8 {
    match &report.outcome {
        BuildOutcome::Succeeded => {
            for result in report.results() {
                println!("result {}/{} = {}", result.step, result.name, result.value);
            }
            println!(
                "build {:?} succeeded in {:.2}s",
                plan.name,
                report.elapsed.as_secs_f64()
            );
            SUCCEEDED
        }
        BuildOutcome::Failed {
            step,
            exit_code,
            reason,
            message,
        } => {
            if let Some(failed) = report.steps.iter().find(|s| &s.name == step)
                && matches!(failed.state, StepState::Terminated(_))
                && !failed.log_tail.is_empty()
            {
                eprintln!("last lines of {step}:");
                for line in &failed.log_tail {
                    eprintln!("    │ {line}");
                }
            }
            let attempts = if report.attempts > 1 {
                format!(" after {} attempts", report.attempts)
            } else {
                String::new()
            };
            let message = if message.is_empty() {
                format!("exited with code {exit_code}")
            } else {
                message.clone()
            };
            eprintln!(
                "error: build {:?} failed at step {step:?}{attempts}: {message} ({reason})",
                plan.name
            );
            FAILED
        }
    }
}

/// The plan of the one Build in `files`, with the template it names from the same files.
fn load(files: &[PathBuf]) -> Result<BuildPlan, String> {
    let mut builds = Vec::new();
    let mut templates: HashMap<(TemplateKind, String), BuildTemplateSpec> = HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (i, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let where_ = format!("{}: document {}", file.display(), i + 1);
            let value: serde_json::Value =
                serde::Deserialize::deserialize(document).map_err(|e| format!("{where_}: {e}"))?;
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default();
            match kind {
                "Build" => builds.push((
                    where_.clone(),
                    serde_json::from_value::<Build>(value).map_err(|e| format!("{where_}: {e}"))?,
                )),
                "BuildTemplate" => {
                    let t: BuildTemplate =
                        serde_json::from_value(value).map_err(|e| format!("{where_}: {e}"))?;
                    t.validate()
                        .map_err(|e| format!("{where_}: invalid BuildTemplate:\n{e}"))?;
                    templates.insert(
                        (
                            TemplateKind::BuildTemplate,
                            t.metadata.name.unwrap_or_default(),
                        ),
                        t.spec,
                    );
                }
                "ClusterBuildTemplate" => {
                    let t: ClusterBuildTemplate =
                        serde_json::from_value(value).map_err(|e| format!("{where_}: {e}"))?;
                    t.validate()
                        .map_err(|e| format!("{where_}: invalid ClusterBuildTemplate:\n{e}"))?;
                    templates.insert(
                        (
                            TemplateKind::ClusterBuildTemplate,
                            t.metadata.name.unwrap_or_default(),
                        ),
                        t.spec.template,
                    );
                }
                "" if value.is_null() => {}
                other => {
                    return Err(format!(
                        "{where_}: expected a Build, BuildTemplate or ClusterBuildTemplate, found kind {other:?}"
                    ));
                }
            }
        }
    }
    let (where_, build) = match builds.len() {
        1 => builds.remove(0),
        0 => return Err("no Build in the given files".to_owned()),
        n => return Err(format!("{n} Builds in the given files; give one")),
    };
    let template = build
        .spec
        .template
        .as_ref()
        .and_then(|t| templates.get(&(t.kind(), t.name.clone())));
    BuildPlan::new(&build, template).map_err(|e| format!("{where_}: invalid Build:\n{e}"))
}
