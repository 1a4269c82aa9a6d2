//! `knative autoscaler`. (In progress.)

use std::process::ExitCode;

/// Arguments of `knative autoscaler`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative autoscaler`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("knative autoscaler is being written")
}
