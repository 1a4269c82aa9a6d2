//! `knative autoscaler`: the autoscaler's tools.
//!
//! `knative autoscaler simulate --trace FILE [--tick N] [--container-concurrency N]
//! [--cm key=value]... [--annotation key=value]...` replays a metrics trace (CSV
//! `second,observed_concurrency,ready_pods`) through the KPA and prints its decisions as CSV, one
//! row per decision; see `knative_serving::autoscaler::simulate`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use knative_serving::autoscaler::simulate::{self, Settings};

/// Arguments of `knative autoscaler`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Replay a metrics trace through the KPA and print its decisions as CSV.
    Simulate(SimulateArgs),
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The trace: CSV with the header `second,observed_concurrency,ready_pods`.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// Decide every N seconds (Knative's autoscaler decides every 2).
    #[arg(long, value_name = "N", default_value_t = 1)]
    tick: u32,
    /// The revision's containerConcurrency (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 0)]
    container_concurrency: i64,
    /// A `config-autoscaler` key, e.g. `--cm stable-window=30s` (repeatable).
    #[arg(long = "cm", value_name = "KEY=VALUE")]
    cm: Vec<String>,
    /// A revision annotation, e.g. `--annotation autoscaling.knative.dev/target=50` (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
}

/// Runs `knative autoscaler`. Bad input (an unreadable or malformed trace, a bad flag) is
/// reported on stderr in one line, with a failing exit code.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let result = match args.command {
        Command::Simulate(args) => simulate(&args),
    };
    Ok(result.unwrap_or_else(|err| {
        eprintln!("knative autoscaler simulate: {err:#}");
        ExitCode::FAILURE
    }))
}

fn simulate(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_flags(
        args.tick,
        args.container_concurrency,
        &args.cm,
        &args.annotations,
    )?;
    let path = args.trace.display();
    let text =
        std::fs::read_to_string(&args.trace).with_context(|| format!("reading trace {path}"))?;
    let trace = simulate::parse_trace(&text).with_context(|| format!("trace {path}"))?;
    let rows = simulate::replay(&trace, &settings)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(simulate::format_rows(&rows).as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
