//! Runs the embedded API server until Ctrl-C, for kubectl or any client:
//!
//! ```text
//! cargo run -p knative-apiserver --example serve -- /tmp/apiserver-data 127.0.0.1:6443
//! kubectl --kubeconfig /tmp/apiserver-data/kubeconfig get namespaces
//! ```
//!
//! Without a directory it runs in memory and writes the kubeconfig to `./kubeconfig`.

use knative_apiserver::ApiServer;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(PathBuf::from);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let builder = ApiServer::builder().bind(addr);
    let (builder, kubeconfig) = match &dir {
        Some(dir) => (builder.data_dir(dir), dir.join("kubeconfig")),
        None => (builder.in_memory(), PathBuf::from("kubeconfig")),
    };
    let started = std::time::Instant::now();
    let server = builder.write_kubeconfig(&kubeconfig).start().await?;
    eprintln!(
        "listening on {} (ready in {:?}); kubeconfig: {}",
        server.url(),
        started.elapsed(),
        kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
