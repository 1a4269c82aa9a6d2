//! `knative controller`. (In progress.)

use std::process::ExitCode;

/// Arguments of `knative controller`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative controller`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("knative controller is being written")
}
