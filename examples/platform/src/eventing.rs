//! `knative eventing`: the eventing data planes as processes.
//!
//! ```text
//! knative eventing broker    --listen ADDR --triggers FILE            ingress + filter of one Broker
//! knative eventing channel   --listen ADDR --channel FILE             an InMemoryChannel dispatcher
//! knative eventing channel   --listen ADDR [--namespace NS]           every InMemoryChannel of the API server
//! knative eventing jetstream --listen ADDR --channel FILE --nats URL  a durable channel on JetStream
//! knative eventing ping      [--source FILE]                          a PingSource adapter
//! knative eventing ping      --from-api-server [--namespace NS]       every PingSource (mt-ping)
//! knative eventing apiserver [--source FILE]                          an ApiServerSource adapter
//! ```
//!
//! The files hold Knative manifests (YAML, multi-document): Triggers with a resolved subscriber
//! (`status.subscriberUri` or `spec.subscriber.uri`), a channel whose `spec.subscribers` the
//! Subscription reconciler filled (or written by hand), a PingSource with a sink URI.
//!
//! Without `--source`, the adapters read Knative's adapter environment, as the Deployments the
//! source reconcilers create set it: `K_SINK`, `K_CE_OVERRIDES` (`{"extensions": {...}}`, set
//! on every event), and `PING_SCHEDULE`, `PING_TIMEZONE`, `PING_CONTENT_TYPE`, `PING_DATA`,
//! `PING_DATA_BASE64`, `K_SOURCE` for ping, `K_SOURCE_CONFIG` (Knative's JSON) for apiserver,
//! which watches the API server of `$KUBECONFIG` or of its Pod's service account.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use knative_eventing::apis::eventing::trigger::Trigger;
use knative_eventing::apis::messaging::channelable::ChannelableSpec;
use knative_eventing::apis::sources::api_server::ApiServerSource;
use knative_eventing::apis::sources::ping::PingSource;
use knative_eventing::broker::{Broker, BrokerConfig, DEFAULT_TTL, TriggerRoute};
use knative_eventing::channel::imc_dispatcher::ImcDispatcher;
use knative_eventing::channel::jetstream::{JetStreamChannel, JetStreamConfig, run_dispatcher};
use knative_eventing::channel::{InMemoryChannel, SubscriptionRoute};
use knative_eventing::delivery::Dispatcher;
use knative_eventing::sources::apiserver::ApiServerAdapter;
use knative_eventing::sources::ping::{PingAdapter, run_from_api_server};
use serde::Deserialize;

/// Arguments of `knative eventing`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A Broker's ingress and filter: accepts events, delivers them to matching Triggers.
    Broker {
        /// Where the ingress listens.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// A YAML file of Triggers (multi-document).
        #[arg(long, value_name = "FILE")]
        triggers: PathBuf,
        /// The TTL of events that arrive without `knativebrokerttl`.
        #[arg(long, default_value_t = DEFAULT_TTL)]
        default_ttl: i64,
        /// The most deliveries in flight before ingress pushes back.
        #[arg(long, default_value_t = 10_000)]
        max_in_flight: usize,
    },
    /// An InMemoryChannel dispatcher: fan-out to the channel's subscribers, replies forwarded.
    /// With `--channel`, one channel from a file; without, every InMemoryChannel of the API
    /// server (`$KUBECONFIG` or in-cluster), reached at `/<namespace>/<name>` or by the host
    /// `<name>-kn-channel.<namespace>.svc.cluster.local`, subscribers followed live.
    Channel {
        /// Where the ingress listens.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// A YAML file with the channel (InMemoryChannel or Channel with `spec.subscribers`).
        #[arg(long, value_name = "FILE")]
        channel: Option<PathBuf>,
        /// Without `--channel`: only the InMemoryChannels of this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// The most deliveries in flight before ingress pushes back.
        #[arg(long, default_value_t = 10_000)]
        max_in_flight: usize,
    },
    /// A durable channel on NATS JetStream: ingress plus one dispatcher per subscriber.
    Jetstream {
        /// Where the ingress listens.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// A YAML file with the channel (`metadata.name` names the stream; `spec.subscribers`).
        #[arg(long, value_name = "FILE")]
        channel: PathBuf,
        /// The NATS server.
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Seconds JetStream waits for an acknowledgement before redelivering.
        #[arg(long, default_value_t = 30)]
        ack_wait_seconds: u64,
    },
    /// A PingSource adapter: from a file, from its environment (`K_SINK`, `PING_*`), or for
    /// every PingSource of the API server as Knative's `mt-ping`.
    Ping {
        /// A YAML file of PingSources (each sink as `status.sinkUri` or `spec.sink.uri`);
        /// without it, the adapter's environment.
        #[arg(long, value_name = "FILE", conflicts_with = "from_api_server")]
        source: Option<PathBuf>,
        /// Run every PingSource of the API server (`$KUBECONFIG` or in-cluster), following
        /// changes, as Knative's multi-tenant `mt-ping` does.
        #[arg(long)]
        from_api_server: bool,
        /// With `--from-api-server`: only the PingSources of this namespace.
        #[arg(long, requires = "from_api_server")]
        namespace: Option<String>,
    },
    /// An ApiServerSource adapter: from a file, or from its environment (`K_SINK`,
    /// `K_SOURCE_CONFIG`).
    Apiserver {
        /// A YAML file of ApiServerSources (each sink as `status.sinkUri` or `spec.sink.uri`);
        /// without it, the adapter's environment.
        #[arg(long, value_name = "FILE")]
        source: Option<PathBuf>,
    },
}

/// A channel manifest of any channel kind: only its name and subscribers matter here.
#[derive(Debug, Deserialize)]
struct ChannelManifest {
    metadata: kube::api::ObjectMeta,
    #[serde(default)]
    spec: ChannelableSpec,
}

/// Runs `knative eventing`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match args.command {
            Command::Broker {
                listen,
                triggers,
                default_ttl,
                max_in_flight,
            } => {
                let routes = read_documents::<Trigger>(&triggers)?
                    .iter()
                    .map(TriggerRoute::from_trigger)
                    .collect::<Result<Vec<_>, _>>()?;
                let broker = Broker::new(BrokerConfig {
                    default_ttl,
                    max_in_flight,
                });
                tracing::info!(%listen, triggers = routes.len(), "broker ingress and filter");
                broker.set_triggers(routes);
                let listener = tokio::net::TcpListener::bind(listen).await?;
                broker.serve(listener, knative_core::signal::shutdown()).await?;
            }
            Command::Channel {
                listen,
                channel: None,
                namespace,
                max_in_flight,
            } => {
                let client = kube::Client::try_default()
                    .await
                    .context("no API server to read InMemoryChannels from (KUBECONFIG or in-cluster)")?;
                let dispatcher = ImcDispatcher::new(max_in_flight);
                tracing::info!(%listen, namespace = ?namespace, "in-memory channel dispatcher");
                let watching = dispatcher.clone();
                tokio::spawn(async move { watching.watch(client, namespace).await });
                let listener = tokio::net::TcpListener::bind(listen).await?;
                dispatcher.serve(listener, knative_core::signal::shutdown()).await?;
            }
            Command::Channel {
                listen,
                channel: Some(channel),
                namespace: _,
                max_in_flight,
            } => {
                let (_, routes) = read_channel(&channel)?;
                let dispatcher = InMemoryChannel::new(max_in_flight);
                tracing::info!(%listen, subscribers = routes.len(), "in-memory channel");
                dispatcher.set_subscriptions(routes);
                let listener = tokio::net::TcpListener::bind(listen).await?;
                dispatcher.serve(listener, knative_core::signal::shutdown()).await?;
            }
            Command::Jetstream {
                listen,
                channel,
                nats,
                ack_wait_seconds,
            } => {
                let (name, routes) = read_channel(&channel)?;
                let config = JetStreamConfig {
                    ack_wait: std::time::Duration::from_secs(ack_wait_seconds),
                    ..JetStreamConfig::new(nats, name)
                };
                let ingress = JetStreamChannel::connect(&config).await?;
                for route in routes {
                    let config = config.clone();
                    tokio::spawn(async move {
                        let name = route.name.clone();
                        if let Err(e) = run_dispatcher(config, route, knative_core::signal::shutdown()).await {
                            tracing::error!(subscription = %name, error = %e, "dispatcher stopped");
                        }
                    });
                }
                tracing::info!(%listen, stream = %config.stream_name(), "JetStream channel");
                let listener = tokio::net::TcpListener::bind(listen).await?;
                ingress.serve(listener, knative_core::signal::shutdown()).await?;
            }
            Command::Ping {
                from_api_server: true,
                namespace,
                ..
            } => {
                let client = kube::Client::try_default()
                    .await
                    .context("no API server to read PingSources from (KUBECONFIG or in-cluster)")?;
                tracing::info!(namespace = ?namespace, "ping sources of the API server");
                tokio::select! {
                    () = run_from_api_server(client, namespace, Dispatcher::new()) => {}
                    () = knative_core::signal::shutdown() => {}
                }
            }
            Command::Ping { source, .. } => {
                let adapters = match source {
                    Some(path) => read_documents::<PingSource>(&path)?
                        .iter()
                        .map(PingAdapter::from_source)
                        .collect::<Result<Vec<_>, _>>()?,
                    None => vec![
                        PingAdapter::from_env(|name| std::env::var(name).ok())
                            .context("the PingSource adapter's environment")?,
                    ],
                };
                let mut running = tokio::task::JoinSet::new();
                for adapter in adapters {
                    tracing::info!(source = %adapter.source, sink = %adapter.sink, "ping source");
                    running.spawn(async move { adapter.run(&Dispatcher::new(), knative_core::signal::shutdown()).await });
                }
                while running.join_next().await.is_some() {}
            }
            Command::Apiserver { source } => {
                let config = kube::Config::infer()
                    .await
                    .context("no API server to watch (KUBECONFIG or in-cluster)")?;
                let server_url = config.cluster_url.to_string();
                let server_url = server_url.trim_end_matches('/').to_owned();
                let client = kube::Client::try_from(config)?;
                let adapters = match source {
                    Some(path) => read_documents::<ApiServerSource>(&path)?
                        .iter()
                        .map(|s| ApiServerAdapter::from_source(s, &server_url))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => vec![
                        ApiServerAdapter::from_env(|name| std::env::var(name).ok(), &server_url)
                            .context("the ApiServerSource adapter's environment")?,
                    ],
                };
                let mut running = tokio::task::JoinSet::new();
                for adapter in adapters {
                    tracing::info!(sink = %adapter.sink, resources = adapter.resources.len(), "apiserver source");
                    let client = client.clone();
                    running.spawn(async move {
                        adapter.run(client, &Dispatcher::new(), knative_core::signal::shutdown()).await
                    });
                }
                while let Some(done) = running.join_next().await {
                    done??;
                }
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn read_documents<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, document)| {
            T::deserialize(document)
                .with_context(|| format!("{}: document {}", path.display(), i + 1))
        })
        .collect()
}

fn read_channel(path: &Path) -> anyhow::Result<(String, Vec<SubscriptionRoute>)> {
    let manifest = read_documents::<ChannelManifest>(path)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no channel", path.display()))?;
    let routes = manifest
        .spec
        .subscribers
        .iter()
        .map(SubscriptionRoute::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((manifest.metadata.name.unwrap_or_default(), routes))
}
