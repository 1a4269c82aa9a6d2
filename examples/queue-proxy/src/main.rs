//! `knative-queue-proxy`: the queue-proxy sidecar alone, the image a Revision Pod runs next to
//! the user container. The same arguments and behaviour as `knative queue-proxy`, in a binary
//! that holds nothing else, so that its resident memory is the proxy's own.

use clap::Parser;

/// Knative's queue-proxy: concurrency breaker, stats and probes in front of a user container.
#[derive(Debug, Parser)]
#[command(name = "knative-queue-proxy", version, about)]
struct Cli {
    #[command(flatten)]
    args: knative_queue_proxy::Args,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    knative_queue_proxy::run(cli.args)
}
