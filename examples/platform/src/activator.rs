//! `knative activator`: buffers requests for revisions with no ready backend and throttles them
//! to capacity, with backends from the cluster's Endpoints or from `--revision` flags.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use knative_serving::autoscaler::wire::WireStatMessages;
use knative_serving::dataplane::activator::stats::{HttpStatSink, StatSink};
use knative_serving::dataplane::activator::{Activator, ActivatorConfig, StaticRevision, cluster};
use knative_serving::dataplane::proxy::{Forwarder, ForwarderOptions, UpstreamProtocol};

/// Arguments of `knative activator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kubeconfig of the cluster (default: `$KUBECONFIG`, `~/.kube/config`, or the Pod's
    /// service account).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Where to serve HTTP/1.1 and h2c.
    #[arg(long, default_value = "0.0.0.0:8012")]
    listen: SocketAddr,
    /// A revision with a static backend list, `namespace/name[@containerConcurrency]=host:port,...`
    /// (the list may be empty: requests wait). Repeatable. With any, the activator runs without
    /// a cluster; without, it watches Revisions and private Endpoints of `$KUBECONFIG`'s cluster.
    #[arg(long = "revision", value_name = "REVISION")]
    revisions: Vec<StaticRevision>,
    /// Watch only this namespace (cluster mode; default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// The autoscaler's base URL; stats are POSTed to its `/stats` path. Without it, stats are
    /// logged at debug level only.
    #[arg(long, env = "AUTOSCALER_URL")]
    autoscaler_url: Option<String>,
    /// The name stats are reported under.
    #[arg(long, env = "POD_NAME", default_value = "activator")]
    pod_name: String,
    /// Requests that may wait per revision; more get 503 at once.
    #[arg(long, default_value_t = 10_000)]
    queue_depth: usize,
    /// Seconds a request waits for a backend before it gets 503.
    #[arg(long, default_value_t = 60.0)]
    queue_timeout_seconds: f64,
    /// The protocol spoken to backends: `http1`, `h2c`, or `auto` (h2c for requests that
    /// arrived over HTTP/2).
    #[arg(long, default_value = "http1", value_parser = parse_protocol)]
    upstream_protocol: UpstreamProtocol,
    /// Worker threads: 1 runs everything on one thread; 0 uses one per CPU.
    #[arg(long, default_value_t = 0)]
    worker_threads: usize,
}

fn parse_protocol(value: &str) -> Result<UpstreamProtocol, String> {
    match value {
        "http1" => Ok(UpstreamProtocol::Http1),
        "h2c" => Ok(UpstreamProtocol::H2c),
        "auto" => Ok(UpstreamProtocol::Auto),
        other => Err(format!("{other:?} is not one of http1, h2c, auto")),
    }
}

fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    match worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

/// Runs `knative activator` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    runtime(args.worker_threads)?.block_on(activator(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Stats with nowhere to go, logged so they are not lost without a trace.
#[derive(Debug)]
struct LogSink;

impl StatSink for LogSink {
    fn push(&self, stats: WireStatMessages) {
        for message in stats.messages {
            tracing::debug!(namespace = %message.namespace, revision = %message.name, stat = ?message.stat, "activator stat");
        }
    }
}

async fn activator(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.queue_timeout_seconds.is_finite() && args.queue_timeout_seconds > 0.0,
        "--queue-timeout-seconds must be a positive number, not {}",
        args.queue_timeout_seconds
    );
    let sink: Arc<dyn StatSink> = match &args.autoscaler_url {
        Some(url) => Arc::new(
            HttpStatSink::spawn(url)
                .map_err(|e| anyhow::anyhow!("--autoscaler-url {url:?}: {e}"))?,
        ),
        None => {
            tracing::warn!("no --autoscaler-url: stats are only logged (RUST_LOG=debug)");
            Arc::new(LogSink)
        }
    };
    let config = ActivatorConfig {
        pod_name: args.pod_name,
        queue_depth: args.queue_depth,
        queue_timeout: Duration::from_secs_f64(args.queue_timeout_seconds),
        ..ActivatorConfig::default()
    };
    let forwarder = Forwarder::with_options(ForwarderOptions {
        protocol: args.upstream_protocol,
        ..ForwarderOptions::default()
    });
    let activator = Activator::with_forwarder(config, sink, forwarder);
    let watching = if args.revisions.is_empty() {
        let client = knative_core::client::connect(args.kubeconfig.as_deref()).await?;
        tracing::info!(namespace = ?args.namespace, "backends from the cluster's private Endpoints");
        Some(tokio::spawn(cluster::watch(
            Arc::clone(&activator),
            client,
            args.namespace,
        )))
    } else {
        for revision in &args.revisions {
            tracing::info!(revision = %revision.revision, backends = ?revision.backends, cc = revision.container_concurrency, "static revision");
            activator.add_static(revision);
        }
        None
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "activator serving");
    activator
        .serve(listener, knative_core::signal::shutdown())
        .await;
    if let Some(watching) = watching {
        watching.abort();
    }
    Ok(())
}
