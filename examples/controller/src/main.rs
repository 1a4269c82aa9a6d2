//! `knative-controller`: Knative Serving's controller alone (the Service, Configuration, Route,
//! Revision, PodAutoscaler and ServerlessService reconcilers and the autoscaler), the binary
//! Knative's `controller` Deployment runs. The same arguments and behaviour as the Serving part
//! of `knative controller`, in a binary that holds nothing else, so that its resident memory is
//! the controller's own.

use clap::Parser;

/// Knative Serving's controller.
#[derive(Debug, Parser)]
#[command(name = "knative-controller", version, about)]
struct Cli {
    #[command(flatten)]
    args: knative_controller::Args,
    /// Log lines as JSON objects (`json`: one per line, with every field, as Knative's zap logs)
    /// or as text (`text`), as `knative --log-format`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().flatten_event(true).init();
    } else {
        logs.init();
    }
    knative_controller::run(cli.args)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_arguments_are_well_formed() {
        super::Cli::command().debug_assert();
    }
}
