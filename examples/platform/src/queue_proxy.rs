//! `knative queue-proxy` (work in progress).

/// Arguments of `knative queue-proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative queue-proxy`.
pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
