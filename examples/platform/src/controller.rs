//! `knative controller`: the Serving controller (`knative_controller`: Service, Configuration,
//! Route, Revision, PodAutoscaler and ServerlessService reconcilers, the autoscaler, live
//! configuration, metrics, optional leader election) on the cluster of `$KUBECONFIG`, and next to
//! it on the same informers the Build reconciler and the Eventing reconcilers. The lean binary
//! `knative-controller` runs the Serving part alone.

use std::process::ExitCode;

use knative_controller::Drivers;

/// Arguments of `knative controller`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    serving: knative_controller::Args,
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
    let Args {
        serving,
        broker_ingress_url,
        imc_dispatcher_url,
    } = args;
    tokio::runtime::Runtime::new()?.block_on(knative_controller::run_with(
        serving,
        move |drivers| async move {
            // Build (knative-build): Build → one Pod of init-container steps, status from the Pod.
            let build_client = drivers.client().clone();
            let build_ns = drivers.namespace().map(str::to_owned);
            let build = drivers
                .prepare(knative_build::reconciler::BuildReconciler::default())
                .run_with(move |c| {
                    knative_build::reconciler::watch_pods(c, &build_client, build_ns.as_deref())
                });
            let eventing = run_eventing(&drivers, broker_ingress_url, imc_dispatcher_url);
            let (build, eventing) = futures::future::join(build, eventing).await;
            build?;
            eventing?;
            anyhow::Ok(())
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The Eventing reconcilers (Broker, Trigger, Channel, InMemoryChannel, Subscription,
/// Sequence, Parallel, the sources and SinkBinding), each with the watches of its children.
async fn run_eventing(
    drivers: &Drivers,
    broker_ingress_url: Option<String>,
    imc_dispatcher_url: Option<String>,
) -> Result<(), knative_core::leader::Error> {
    let client = drivers.client();
    use knative_eventing::apis::{
        ApiServerSource, ContainerSource, InMemoryChannel, Parallel, Sequence, Subscription,
    };
    use knative_eventing::reconciler::broker::{BrokerIngress, BrokerReconciler};
    use knative_eventing::reconciler::channel::{
        ChannelDispatcher, ChannelReconciler, InMemoryChannelReconciler,
    };
    use knative_eventing::reconciler::flows::{ParallelReconciler, SequenceReconciler};
    use knative_eventing::reconciler::owns_shared;
    use knative_eventing::reconciler::sources::{
        AdapterImages, ApiServerSourceReconciler, ContainerSourceReconciler, PingSourceReconciler,
        SinkBindingReconciler,
    };
    use knative_eventing::reconciler::subscription::SubscriptionReconciler;
    use knative_eventing::reconciler::trigger::TriggerReconciler;
    type Run = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), knative_core::leader::Error>> + Send>,
    >;

    use k8s_openapi::api::apps::v1::Deployment;
    // Children are watched through the shared informers (one watch of Deployments for the
    // Revision, PingSource, ApiServerSource and ContainerSource controllers).
    let caches = drivers.caches();
    let ns = drivers.namespace().map(str::to_owned);
    let c = client.clone();
    let ingress = broker_ingress_url.map_or_else(BrokerIngress::default, BrokerIngress::Url);
    let dispatcher =
        imc_dispatcher_url.map_or_else(ChannelDispatcher::default, ChannelDispatcher::Url);
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
                .run_with(owns_shared::<_, InMemoryChannel>(caches)),
        ),
        Box::pin(
            drivers
                .prepare(InMemoryChannelReconciler::new(dispatcher))
                .run(),
        ),
        Box::pin(drivers.prepare(SubscriptionReconciler).run()),
        Box::pin(drivers.prepare(SequenceReconciler).run_with({
            let (subs, imcs) = (
                owns_shared::<Sequence, Subscription>(caches),
                owns_shared::<Sequence, InMemoryChannel>(caches),
            );
            move |x| imcs(subs(x))
        })),
        Box::pin(drivers.prepare(ParallelReconciler).run_with({
            let (subs, imcs) = (
                owns_shared::<Parallel, Subscription>(caches),
                owns_shared::<Parallel, InMemoryChannel>(caches),
            );
            move |x| imcs(subs(x))
        })),
        Box::pin(
            drivers
                .prepare(PingSourceReconciler::new(images.clone()))
                .run_with(owns_shared::<_, Deployment>(caches)),
        ),
        Box::pin(
            drivers
                .prepare(ApiServerSourceReconciler::new(images))
                .run_with(owns_shared::<ApiServerSource, Deployment>(caches)),
        ),
        Box::pin(
            drivers
                .prepare(ContainerSourceReconciler)
                .run_with(owns_shared::<ContainerSource, Deployment>(caches)),
        ),
        Box::pin(drivers.prepare(SinkBindingReconciler).run()),
    ];
    for result in futures::future::join_all(runs).await {
        result?;
    }
    Ok(())
}
