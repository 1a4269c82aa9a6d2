//! `knative validate`. (In progress.)

use std::process::ExitCode;

/// Arguments of `knative validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative validate`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("knative validate is being written")
}
