//! `knative controller`: the Serving reconcilers (Service, Configuration, Route, Revision,
//! PodAutoscaler) on the cluster of `$KUBECONFIG`, with live configuration, metrics and optional
//! leader election, and the autoscaler: revisions' pods scraped each second, activator stats
//! taken on `--autoscaler-addr`, decisions every 2 s written to Deployments; and the Eventing
//! reconcilers.

use std::net::SocketAddr;
use std::process::ExitCode;

use knative_core::apis::KnativeObject;
use knative_core::config::ConfigStore;
use knative_core::leader::LeaseConfig;
use knative_core::metrics::{self, Metrics};
use knative_core::reconciler::{Caches, Driver, DriverOptions, Reconciler};
use knative_serving::autoscaler::AutoscalerRegistry;
use knative_serving::autoscaler::collector::{self, Collector, HttpScraper};
use knative_serving::autoscaler::deciders::Deciders;
use knative_serving::reconciler::autoscaling::{self, PodAutoscalerReconciler};
use knative_serving::reconciler::configuration::ConfigurationReconciler;
use knative_serving::reconciler::revision::{self, DeploymentConfig, RevisionReconciler};
use knative_serving::reconciler::route::RouteReconciler;
use knative_serving::reconciler::serverlessservice::ServerlessServiceReconciler;
use knative_serving::reconciler::service::ServiceReconciler;

/// Arguments of `knative controller`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The kubeconfig of the cluster (default: `$KUBECONFIG`, `~/.kube/config`, or the Pod's
    /// service account).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Reconcile only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Where Knative's ConfigMaps (config-autoscaler, config-network, ...) live.
    #[arg(long, default_value = "knative-serving")]
    system_namespace: String,
    /// Address of the Prometheus endpoint (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:9090")]
    metrics_addr: SocketAddr,
    /// Elect a leader among replicas through Leases in the system namespace; this replica's
    /// identity is `$POD_NAME` (or the host name).
    #[arg(long)]
    leader_elect: bool,
    /// Objects each reconciler works on at once (0 = unbounded).
    #[arg(long, default_value_t = knative_core::reconciler::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// The queue-proxy sidecar image of Revision Deployments.
    #[arg(long)]
    queue_sidecar_image: Option<String>,
    /// Where the autoscaler takes the stats activators push (`POST /stats`; point the
    /// activator's `--autoscaler-url` here).
    #[arg(long, default_value = "0.0.0.0:8085")]
    autoscaler_addr: SocketAddr,
    /// The activator's Service in the system namespace: its Endpoints are put in front of
    /// Revisions at zero or behind the activator.
    #[arg(long, default_value = "activator-service")]
    activator_service: String,
    /// Eventing: the base URL of the broker ingress (Brokers are addressed
    /// `<url>/<namespace>/<name>`); default: Knative's in-cluster `broker-ingress` Service.
    #[arg(long)]
    broker_ingress_url: Option<String>,
    /// Eventing: the base URL of the in-memory channel dispatcher; default: Knative's
    /// in-cluster `imc-dispatcher` Service.
    #[arg(long)]
    imc_dispatcher_url: Option<String>,
}

/// Runs `knative controller` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(controller(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn controller(args: Args) -> anyhow::Result<()> {
    let client = crate::kube_client(args.kubeconfig.as_deref()).await?;
    let store = ConfigStore::start(client.clone(), args.system_namespace.clone());
    let metrics = Metrics::new();
    let (stop_metrics, stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = tokio::spawn(metrics::serve(metrics.clone(), args.metrics_addr, async {
        let _ = stopped.await;
    }));
    tracing::info!(metrics = %args.metrics_addr, namespace = ?args.namespace, "starting the Serving reconcilers");

    let mut deployment = DeploymentConfig::default();
    if let Some(image) = &args.queue_sidecar_image {
        deployment.queue_sidecar_image.clone_from(image);
    }
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("knative-controller-{}", std::process::id()));

    let ns = args.namespace.clone();
    let caches = Caches::new(client.clone(), ns.clone());
    let drivers = Drivers {
        client: client.clone(),
        caches: caches.clone(),
        args: args.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        identity,
    };
    // The autoscaler: deciders shared by the PodAutoscaler reconciler, the collector, the
    // activator's pushes and the 2-second tick.
    let deciders = Deciders::new(AutoscalerRegistry::default());
    let stat_listener = tokio::net::TcpListener::bind(args.autoscaler_addr).await?;
    tracing::info!(addr = %args.autoscaler_addr, "autoscaler takes activator stats on POST /stats");
    let autoscaler = tokio::spawn(run_autoscaler(
        client.clone(),
        ns.clone(),
        stat_listener,
        deciders.clone(),
    ));
    let pa_caches = caches.clone();
    let pa_deciders = deciders.clone();
    let route = RouteReconciler::new();
    let route_watches = route.watches(&caches);
    let revision_caches = caches.clone();
    // Networking: each Revision's private and public Services, the public Endpoints pointing at
    // its pods or at the activator.
    let sks = ServerlessServiceReconciler::new().with_activator(
        args.system_namespace.clone(),
        args.activator_service.clone(),
    );
    let sks_watches = sks.watches(&caches);
    let networking = tokio::spawn(drivers.prepare(sks).run_with(sks_watches));
    let eventing = tokio::spawn(run_eventing(drivers.clone()));
    // Build (knative-build): Build → one Pod of init-container steps, status from the Pod.
    let build_client = client.clone();
    let build_ns = ns.clone();
    let build = tokio::spawn(
        drivers
            .prepare(knative_build::reconciler::BuildReconciler::default())
            .run_with(move |c| {
                knative_build::reconciler::watch_pods(c, &build_client, build_ns.as_deref())
            }),
    );
    let results = futures::future::join5(
        drivers
            .prepare(ServiceReconciler::new())
            .run_with(ServiceReconciler::watches(&caches)),
        drivers
            .prepare(ConfigurationReconciler::new())
            .run_with(ConfigurationReconciler::watches(&caches)),
        drivers.prepare(route).run_with(route_watches),
        drivers
            .prepare(RevisionReconciler::new(deployment))
            .run_with(move |c| revision::watch_children(c, &revision_caches)),
        drivers
            .prepare(PodAutoscalerReconciler::new(deciders))
            .run_with(move |c| autoscaling::watch_children(c, &pa_caches, &pa_deciders)),
    )
    .await;
    autoscaler.abort();
    let _ = stop_metrics.send(());
    let _ = metrics_server.await;
    results.0?;
    results.1?;
    results.2?;
    results.3?;
    results.4?;
    eventing.await??;
    build.await??;
    networking.await??;
    Ok(())
}

/// The Eventing reconcilers (Broker, Trigger, Channel, InMemoryChannel, Subscription,
/// Sequence, Parallel, the sources and SinkBinding), each with the watches of its children.
async fn run_eventing(drivers: Drivers) -> Result<(), knative_core::leader::Error> {
    let (client, args, drivers) = (&drivers.client, &drivers.args, &drivers);
    use knative_eventing::apis::{
        ApiServerSource, ContainerSource, InMemoryChannel, Parallel, Sequence, Subscription,
    };
    use knative_eventing::reconciler::broker::{BrokerIngress, BrokerReconciler};
    use knative_eventing::reconciler::channel::{
        ChannelDispatcher, ChannelReconciler, InMemoryChannelReconciler,
    };
    use knative_eventing::reconciler::flows::{ParallelReconciler, SequenceReconciler};
    use knative_eventing::reconciler::owns;
    use knative_eventing::reconciler::sources::{
        AdapterImages, ApiServerSourceReconciler, ContainerSourceReconciler, PingSourceReconciler,
        SinkBindingReconciler,
    };
    use knative_eventing::reconciler::subscription::SubscriptionReconciler;
    use knative_eventing::reconciler::trigger::TriggerReconciler;
    type Run = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), knative_core::leader::Error>> + Send>,
    >;

    let ns = args.namespace.clone();
    let c = client.clone();
    let ingress = args
        .broker_ingress_url
        .clone()
        .map_or_else(BrokerIngress::default, BrokerIngress::Url);
    let dispatcher = args
        .imc_dispatcher_url
        .clone()
        .map_or_else(ChannelDispatcher::default, ChannelDispatcher::Url);
    let images = AdapterImages::default();
    let runs: Vec<Run> = vec![
        Box::pin(drivers.prepare(BrokerReconciler::new(ingress)).run()),
        Box::pin(
            drivers
                .prepare(TriggerReconciler::new())
                .run_with(TriggerReconciler::watches(c.clone(), ns.clone())),
        ),
        Box::pin(
            drivers
                .prepare(ChannelReconciler)
                .run_with(owns::<_, InMemoryChannel>(c.clone(), ns.clone())),
        ),
        Box::pin(
            drivers
                .prepare(InMemoryChannelReconciler::new(dispatcher))
                .run(),
        ),
        Box::pin(drivers.prepare(SubscriptionReconciler).run()),
        Box::pin(drivers.prepare(SequenceReconciler).run_with({
            let (subs, imcs) = (
                owns::<Sequence, Subscription>(c.clone(), ns.clone()),
                owns::<Sequence, InMemoryChannel>(c.clone(), ns.clone()),
            );
            move |x| imcs(subs(x))
        })),
        Box::pin(drivers.prepare(ParallelReconciler).run_with({
            let (subs, imcs) = (
                owns::<Parallel, Subscription>(c.clone(), ns.clone()),
                owns::<Parallel, InMemoryChannel>(c.clone(), ns.clone()),
            );
            move |x| imcs(subs(x))
        })),
        Box::pin(
            drivers
                .prepare(PingSourceReconciler::new(images.clone()))
                .run_with(owns::<_, k8s_openapi::api::apps::v1::Deployment>(
                    c.clone(),
                    ns.clone(),
                )),
        ),
        Box::pin(
            drivers
                .prepare(ApiServerSourceReconciler::new(images))
                .run_with(owns::<
                    ApiServerSource,
                    k8s_openapi::api::apps::v1::Deployment,
                >(c.clone(), ns.clone())),
        ),
        Box::pin(drivers.prepare(ContainerSourceReconciler).run_with(owns::<
            ContainerSource,
            k8s_openapi::api::apps::v1::Deployment,
        >(
            c.clone(), ns.clone()
        ))),
        Box::pin(drivers.prepare(SinkBindingReconciler).run()),
    ];
    for result in futures::future::join_all(runs).await {
        result?;
    }
    Ok(())
}

/// The autoscaler's loops: the revisions' pods (a reflector of the pods labelled with their
/// revision) scraped every second, the activator's stat pushes on `listener`, the deciders ticked
/// every 2 s, and the deciders of deleted PodAutoscalers forgotten. Runs until aborted.
async fn run_autoscaler(
    client: kube::Client,
    namespace: Option<String>,
    listener: tokio::net::TcpListener,
    deciders: Deciders,
) {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, reflector, watcher};

    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = match &namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let pod_watch = reflector(
        writer,
        watcher(
            pods,
            watcher::Config::default().labels(collector::REVISION_LABEL_KEY),
        ),
    )
    .default_backoff()
    .for_each(|_| futures::future::ready(()));
    let never = std::future::pending::<()>;
    tokio::join!(
        pod_watch,
        Collector::new(deciders.clone(), HttpScraper::default(), store).run(never()),
        collector::serve_stat_push(listener, deciders.clone(), never()),
        deciders.clone().run(never()),
        autoscaling::forget_deleted(client, namespace, deciders),
    );
}

/// What every driver of `knative controller` is built with.
#[derive(Clone)]
struct Drivers {
    client: kube::Client,
    /// The reconcilers read each other's kinds from the shared informers.
    caches: Caches,
    args: Args,
    store: ConfigStore,
    metrics: Metrics,
    identity: String,
}

impl Drivers {
    /// A driver of `reconciler` with the command's options, caches, configuration, metrics and
    /// (when asked) leader election.
    fn prepare<K: KnativeObject, R: Reconciler<K>>(&self, reconciler: R) -> Driver<K, R> {
        let args = &self.args;
        let mut options = DriverOptions::for_kind::<K>();
        options.namespace.clone_from(&args.namespace);
        options.concurrency = args.concurrency;
        let lease_name = options.name.clone();
        let mut driver = Driver::with_options(self.client.clone(), reconciler, options)
            .with_caches(self.caches.clone())
            .with_config(self.store.clone())
            .with_metrics(self.metrics.clone());
        if args.leader_elect {
            let lease = LeaseConfig::new(args.system_namespace.clone(), lease_name, &self.identity)
                .with_knative_timings();
            driver = driver.with_leader_election(lease);
        }
        driver
    }
}
