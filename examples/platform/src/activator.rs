//! `knative activator` (work in progress).

/// Arguments of `knative activator`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative activator`.
pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
