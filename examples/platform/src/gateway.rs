//! `knative gateway` (work in progress).

/// Arguments of `knative gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative gateway`.
pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
