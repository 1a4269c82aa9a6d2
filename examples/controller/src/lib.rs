//! Knative Serving's controller, as run by the lean binary `knative-controller` of this crate
//! and, with the Eventing and Build reconcilers besides, by `knative controller`.
//!
//! [`run`] starts the Service, Configuration, Route, Revision, PodAutoscaler and
//! ServerlessService reconcilers on shared informers, with live configuration from Knative's
//! ConfigMaps, Prometheus metrics, optional leader election, and the autoscaler (revisions' pods
//! scraped each second, activator stats taken on `--autoscaler-addr`, decisions every 2 s);
//! [`run_with`] runs more reconcilers next to them on the same [`Drivers`].

use std::future::Future;
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

/// Arguments of `knative-controller` (and of the Serving part of `knative controller`).
#[derive(Clone, Debug, clap::Args)]
// `knative controller` flattens these into arguments of its own, also named `Args`.
#[group(id = "serving_controller")]
pub struct Args {
    /// The kubeconfig of the cluster (default: `$KUBECONFIG`, `~/.kube/config`, or the Pod's
    /// service account).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Reconcile only this namespace (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Where Knative's ConfigMaps (config-autoscaler, config-network, ...) live.
    #[arg(long, default_value = "knative-serving")]
    pub system_namespace: String,
    /// Address of the Prometheus endpoint (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader among replicas through Leases in the system namespace; this replica's
    /// identity is `$POD_NAME` (or the host name).
    #[arg(long)]
    pub leader_elect: bool,
    /// Objects each reconciler works on at once (0 = unbounded).
    #[arg(long, default_value_t = knative_core::reconciler::DEFAULT_CONCURRENCY)]
    pub concurrency: u16,
    /// The queue-proxy sidecar image of Revision Deployments.
    #[arg(long)]
    pub queue_sidecar_image: Option<String>,
    /// Where the autoscaler takes the stats activators push (`POST /stats`; point the
    /// activator's `--autoscaler-url` here).
    #[arg(long, default_value = "0.0.0.0:8085")]
    pub autoscaler_addr: SocketAddr,
    /// The activator's Service in the system namespace: its Endpoints are put in front of
    /// Revisions at zero or behind the activator.
    #[arg(long, default_value = "activator-service")]
    pub activator_service: String,
}

/// Runs the Serving controller until SIGTERM or Ctrl-C.
///
/// # Errors
/// When the cluster cannot be reached, a port cannot be bound, or a reconciler stops with an
/// error (e.g. its leader election failed).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(run_with(args, |_| async { anyhow::Ok(()) }))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the Serving controller and, next to it, what `more` makes of the same [`Drivers`] (more
/// reconcilers, sharing the informers, configuration, metrics and leader election), until
/// SIGTERM or Ctrl-C; then waits for `more` to end too.
///
/// # Errors
/// As [`run`], and when `more` fails.
pub async fn run_with<F, Fut>(args: Args, more: F) -> anyhow::Result<()>
where
    F: FnOnce(Drivers) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let client = knative_core::client::connect(args.kubeconfig.as_deref()).await?;
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
        store,
        metrics,
        identity,
    };
    let others = tokio::spawn(more(drivers.clone()));
    // The autoscaler: deciders shared by the PodAutoscaler reconciler, the collector, the
    // activator's pushes and the 2-second tick.
    let deciders = Deciders::new(AutoscalerRegistry::default());
    let stat_listener = tokio::net::TcpListener::bind(args.autoscaler_addr).await?;
    tracing::info!(addr = %args.autoscaler_addr, "autoscaler takes activator stats on POST /stats");
    let autoscaler = tokio::spawn(run_autoscaler(
        client.clone(),
        caches.api(),
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
    let others = others.await;
    let _ = stop_metrics.send(());
    let _ = metrics_server.await;
    results.0?;
    results.1?;
    results.2?;
    results.3?;
    results.4?;
    networking.await??;
    others??;
    Ok(())
}

/// The autoscaler's loops: the revisions' pods (a reflector of the `pods` labelled with their
/// revision) scraped every second, the activator's stat pushes on `listener`, the deciders ticked
/// every 2 s, and the deciders of deleted PodAutoscalers forgotten. Runs until aborted.
async fn run_autoscaler(
    client: kube::Client,
    pods: kube::Api<k8s_openapi::api::core::v1::Pod>,
    namespace: Option<String>,
    listener: tokio::net::TcpListener,
    deciders: Deciders,
) {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, reflector, watcher};

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

/// What every driver of the controller is built with: the client, the shared informers, the
/// live configuration, the metrics and the command's options.
#[derive(Clone)]
pub struct Drivers {
    client: kube::Client,
    /// The reconcilers read each other's kinds from the shared informers.
    caches: Caches,
    args: Args,
    store: ConfigStore,
    metrics: Metrics,
    identity: String,
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drivers")
            .field("args", &self.args)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Drivers {
    /// The client of the cluster.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The namespace reconciled (`None`: all namespaces).
    pub fn namespace(&self) -> Option<&str> {
        self.args.namespace.as_deref()
    }

    /// The shared informers every prepared driver reads from: watch children through them
    /// (`Caches::changes`) rather than with watches of their own.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// A driver of `reconciler` with the command's options, caches, configuration, metrics and
    /// (when asked) leader election.
    pub fn prepare<K: KnativeObject, R: Reconciler<K>>(&self, reconciler: R) -> Driver<K, R> {
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
