//! `knative build` (work in progress).

/// Arguments of `knative build`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative build`.
pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
