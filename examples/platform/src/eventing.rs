//! `knative eventing` (work in progress).

/// Arguments of `knative eventing`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `knative eventing`.
pub fn run(_args: Args) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not implemented yet")
}
