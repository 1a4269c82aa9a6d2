//! The reference platform binary `knative`: the SDK's crates composed into one command.
//!
//! ```text
//! knative crds                       print every CRD of the SDK as YAML (pipe into `kubectl apply -f -`)
//! knative validate -f FILE           validate Knative objects offline, with field-path errors
//! knative autoscaler simulate ...    replay a metrics trace through the KPA and print its decisions
//! knative controller                 run the Serving reconcilers against the cluster of $KUBECONFIG
//! knative webhook                    serve (and register) the validating and defaulting webhooks
//! ```

mod activator;
mod autoscaler;
mod build;
mod controller;
mod crds;
mod eventing;
mod gateway;
mod local;
mod validate;
mod webhook;

use clap::{Parser, Subcommand};

/// Serverless workloads on Kubernetes, from Rust.
#[derive(Debug, Parser)]
#[command(name = "knative", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as JSON objects (one per line, with every field, as Knative's zap logs) or as
    /// text.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How `knative` writes its logs (to stderr, filtered by `RUST_LOG`, `info` by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition of the SDK as a multi-document YAML stream.
    Crds,
    /// Validate the Knative objects of a YAML file offline.
    Validate(validate::Args),
    /// The autoscaler: simulate a trace through the KPA.
    Autoscaler(autoscaler::Args),
    /// Run the Serving reconcilers.
    Controller(controller::Args),
    /// The queue-proxy sidecar: concurrency breaker, stats and probes in front of a user container.
    QueueProxy(knative_queue_proxy::Args),
    /// The activator: buffers requests for revisions at zero, then throttles to capacity.
    Activator(activator::Args),
    /// The gateway: routes requests as the cluster's Ingresses say.
    Gateway(gateway::Args),
    /// Build: run a Build's steps.
    Build(build::Args),
    /// The validating and defaulting admission webhooks of the Serving kinds.
    Webhook(webhook::Args),
    /// The whole platform on this machine: API server, reconcilers, data plane, process runtime.
    Local(local::Args),
    /// Eventing data planes: broker, channel dispatchers and source adapters.
    Eventing(eventing::Args),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    local::exit_with_parent();
    if matches!(
        cli.command,
        Command::Controller(_)
            | Command::QueueProxy(_)
            | Command::Activator(_)
            | Command::Gateway(_)
            | Command::Webhook(_)
            | Command::Local(_)
    ) {
        init_logs(cli.log_format);
    }
    match cli.command {
        Command::Crds => {
            crds::run(&mut std::io::stdout().lock()).map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Validate(args) => validate::run(args),
        Command::Autoscaler(args) => autoscaler::run(args),
        Command::Controller(args) => controller::run(args),
        Command::QueueProxy(args) => knative_queue_proxy::run(args),
        Command::Activator(args) => activator::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Build(args) => build::run(args),
        Command::Eventing(args) => eventing::run(args),
        Command::Webhook(args) => webhook::run(args),
        Command::Local(args) => local::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_subcommand_has_well_formed_arguments() {
        // clap checks a subcommand's arguments only when it is parsed; this checks them all.
        super::Cli::command().debug_assert();
    }
}
