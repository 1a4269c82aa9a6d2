//! The reference platform binary `knative`: the SDK's crates composed into one command.
//!
//! ```text
//! knative crds            print every CRD of the SDK as YAML (pipe into `kubectl apply -f -`)
//! ```

use std::io::Write;

use clap::{Parser, Subcommand};

/// Serverless workloads on Kubernetes, from Rust.
#[derive(Debug, Parser)]
#[command(name = "knative", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition of the SDK as a multi-document YAML stream.
    Crds,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print_crds(&mut std::io::stdout().lock()),
    }
}

fn print_crds(out: &mut impl Write) -> anyhow::Result<()> {
    for crd in knative_serving::crds() {
        writeln!(out, "---")?;
        out.write_all(serde_yaml::to_string(&crd)?.as_bytes())?;
    }
    Ok(())
}
