//! `knative local` (work in progress).

/// Arguments of `knative local`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative local`.
pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
