//! Knative's queue-proxy sidecar in front of a user container, as run by `knative queue-proxy`
//! and by the lean binary `knative-queue-proxy` of this crate (the same [`Args`] and [`run`]).
//!
//! Configured as Knative configures its own, through `SERVING_*`, `CONTAINER_CONCURRENCY`,
//! `QUEUE_SERVING_PORT`, `USER_PORT`, `REVISION_*_SECONDS` and `SERVING_READINESS_PROBE`; every
//! variable has a flag of the same name for local use (`--user-port 8080`), which wins over the
//! environment. Stops on SIGTERM or Ctrl-C after draining.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use knative_serving::dataplane::proxy::UpstreamProtocol;
use knative_serving::dataplane::queue::{QueueConfig, QueueProxy};

/// Arguments of `knative queue-proxy` and `knative-queue-proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Revision's namespace.
    #[arg(long, env = "SERVING_NAMESPACE")]
    serving_namespace: Option<String>,
    /// The Revision's Configuration.
    #[arg(long, env = "SERVING_CONFIGURATION")]
    serving_configuration: Option<String>,
    /// The Revision.
    #[arg(long, env = "SERVING_REVISION")]
    serving_revision: Option<String>,
    /// This pod's name (reported to the autoscaler).
    #[arg(long, env = "SERVING_POD")]
    serving_pod: Option<String>,
    /// This pod's IP.
    #[arg(long, env = "SERVING_POD_IP")]
    serving_pod_ip: Option<String>,
    /// Requests the user container takes at once; 0 is unlimited.
    #[arg(long, env = "CONTAINER_CONCURRENCY")]
    container_concurrency: Option<String>,
    /// The port for user traffic (HTTP/1 and h2c).
    #[arg(long, env = "QUEUE_SERVING_PORT")]
    queue_serving_port: Option<String>,
    /// The user container's port (required).
    #[arg(long, env = "USER_PORT")]
    user_port: Option<String>,
    /// The longest a request may take; 0 disables.
    #[arg(long, env = "REVISION_TIMEOUT_SECONDS")]
    revision_timeout_seconds: Option<String>,
    /// The longest the response may take to start; 0 disables.
    #[arg(long, env = "REVISION_RESPONSE_START_TIMEOUT_SECONDS")]
    revision_response_start_timeout_seconds: Option<String>,
    /// The longest a response may stay silent; 0 disables.
    #[arg(long, env = "REVISION_IDLE_TIMEOUT_SECONDS")]
    revision_idle_timeout_seconds: Option<String>,
    /// The user container's readiness probe: a Kubernetes Probe (or a list) in JSON.
    #[arg(long, env = "SERVING_READINESS_PROBE")]
    serving_readiness_probe: Option<String>,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: IpAddr,
    /// The admin port (`/drain`, `/wait-for-drain`).
    #[arg(long, default_value_t = 8022)]
    admin_port: u16,
    /// The autoscaler-stats port.
    #[arg(long, default_value_t = 9090)]
    metrics_port: u16,
    /// The user-metrics port.
    #[arg(long, default_value_t = 9091)]
    user_metrics_port: u16,
    /// Seconds without requests after SIGTERM before the proxy stops.
    #[arg(long, default_value_t = 30.0)]
    drain_quiet_period_seconds: f64,
    /// The protocol spoken to the user container: `auto` (h2c for HTTP/2 clients), `http1`,
    /// `h2c`.
    #[arg(long, default_value = "auto", value_parser = parse_protocol)]
    upstream_protocol: UpstreamProtocol,
    /// Serve every request through hyper, without the fast path for plain HTTP/1.1 requests.
    #[arg(long)]
    no_fast_path: bool,
    /// Worker threads (1 runs everything on one thread, the lightest on a small pod).
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
}

fn parse_protocol(value: &str) -> Result<UpstreamProtocol, String> {
    match value {
        "auto" => Ok(UpstreamProtocol::Auto),
        "http1" => Ok(UpstreamProtocol::Http1),
        "h2c" => Ok(UpstreamProtocol::H2c),
        other => Err(format!("{other:?}: expected auto, http1 or h2c")),
    }
}

impl Args {
    /// The configuration the flags and environment describe.
    fn config(&self) -> anyhow::Result<QueueConfig> {
        let mut config = QueueConfig::from_lookup(|name| {
            match name {
                "SERVING_NAMESPACE" => &self.serving_namespace,
                "SERVING_CONFIGURATION" => &self.serving_configuration,
                "SERVING_REVISION" => &self.serving_revision,
                "SERVING_POD" => &self.serving_pod,
                "SERVING_POD_IP" => &self.serving_pod_ip,
                "CONTAINER_CONCURRENCY" => &self.container_concurrency,
                "QUEUE_SERVING_PORT" => &self.queue_serving_port,
                "USER_PORT" => &self.user_port,
                "REVISION_TIMEOUT_SECONDS" => &self.revision_timeout_seconds,
                "REVISION_RESPONSE_START_TIMEOUT_SECONDS" => {
                    &self.revision_response_start_timeout_seconds
                }
                "REVISION_IDLE_TIMEOUT_SECONDS" => &self.revision_idle_timeout_seconds,
                "SERVING_READINESS_PROBE" => &self.serving_readiness_probe,
                _ => &None,
            }
            .clone()
        })?;
        config.listen_address = self.listen_address;
        config.admin_port = self.admin_port;
        config.metrics_port = self.metrics_port;
        config.user_metrics_port = self.user_metrics_port;
        config.upstream_protocol = self.upstream_protocol;
        config.http1_fast_path = !self.no_fast_path;
        config.drain_quiet_period = Duration::try_from_secs_f64(self.drain_quiet_period_seconds)
            .map_err(|e| {
                anyhow::anyhow!(
                    "--drain-quiet-period-seconds {}: {e}",
                    self.drain_quiet_period_seconds
                )
            })?;
        Ok(config)
    }
}

/// Runs the queue-proxy until SIGTERM or Ctrl-C, then drains.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let runtime = if args.worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.worker_threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let proxy = QueueProxy::new(config);
        let listeners = proxy.bind().await?;
        let [main, admin, metrics, user_metrics] = listeners.local_addrs()?;
        tracing::info!(
            ?main,
            ?admin,
            ?metrics,
            ?user_metrics,
            user_port = proxy.config().user_port,
            container_concurrency = proxy.config().container_concurrency,
            "queue-proxy serving"
        );
        proxy
            .serve(listeners, knative_core::signal::shutdown())
            .await?;
        tracing::info!("queue-proxy drained and stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
