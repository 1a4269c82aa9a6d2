//! `knative gateway`: serves the cluster's Knative Ingresses (or Ingresses and routes given on
//! the command line) on HTTP/1.1 and h2c.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use knative_core::config::ISTIO_INGRESS_CLASS;
use knative_core::reconciler::{Driver, DriverOptions};
use knative_serving::apis::Ingress;
use knative_serving::dataplane::gateway::cluster::{ClusterResolver, IngressReconciler};
use knative_serving::dataplane::gateway::{CompiledIngress, Gateway, RouteTable, StaticResolver};
use knative_serving::dataplane::proxy::{Forwarder, ForwarderOptions, UpstreamProtocol};

/// Arguments of `knative gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kubeconfig of the cluster (default: `$KUBECONFIG`, `~/.kube/config`, or the Pod's
    /// service account).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Where to serve HTTP/1.1 and h2c.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// A YAML file of Ingresses (`networking.internal.knative.dev/v1alpha1`, multi-document)
    /// to serve without a cluster; their backends come from `--endpoints`. Repeatable.
    #[arg(long = "ingress", value_name = "FILE")]
    ingresses: Vec<std::path::PathBuf>,
    /// Static endpoints of a Service port named by the Ingresses:
    /// `namespace/name:port=host:port,...`. Repeatable.
    #[arg(long = "endpoints", alias = "service", value_name = "ENDPOINTS")]
    services: Vec<String>,
    /// A shorthand route without a file: `HOST=host:port,...` sends every request for HOST to
    /// those endpoints. Repeatable.
    #[arg(long = "route", value_name = "ROUTE")]
    routes: Vec<String>,
    /// Cluster mode: serve Ingresses of this class (and those without a class annotation).
    #[arg(long, default_value = ISTIO_INGRESS_CLASS)]
    ingress_class: String,
    /// Cluster mode: watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Cluster mode: the address reported as the Ingresses' public load balancer.
    #[arg(
        long,
        default_value = "knative-gateway.knative-serving.svc.cluster.local"
    )]
    public_load_balancer: String,
    /// Cluster mode: the address reported as the Ingresses' private load balancer.
    #[arg(
        long,
        default_value = "knative-gateway.knative-serving.svc.cluster.local"
    )]
    private_load_balancer: String,
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

/// Runs `knative gateway` until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    runtime(args.worker_threads)?.block_on(gateway(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn gateway(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    if args.ingresses.is_empty() && args.routes.is_empty() {
        anyhow::ensure!(
            args.services.is_empty(),
            "--endpoints needs --ingress files to route to it"
        );
        return cluster(args, listener).await;
    }
    let resolver = StaticResolver::default();
    for service in &args.services {
        let (namespace, name, port, endpoints) = parse_service(service)?;
        resolver.insert(&namespace, &name, &port, endpoints);
    }
    let mut compiled = Vec::new();
    for path in &args.ingresses {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let ingress: Ingress = serde::Deserialize::deserialize(document)
                .map_err(|e| anyhow::anyhow!("{}: not an Ingress: {e}", path.display()))?;
            compiled.push(CompiledIngress::compile(&ingress).map_err(|e| {
                anyhow::anyhow!(
                    "{}: Ingress {}: {e}",
                    path.display(),
                    ingress_name(&ingress)
                )
            })?);
        }
    }
    for route in &args.routes {
        let (host, endpoints) = route
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--route {route:?}: expected HOST=host:port,..."))?;
        let endpoints =
            parse_endpoints(endpoints).map_err(|e| anyhow::anyhow!("--route {route:?}: {e}"))?;
        resolver.insert("static", host, "80", endpoints);
        compiled.push(
            CompiledIngress::compile(&shorthand_ingress(host)?)
                .map_err(|e| anyhow::anyhow!("--route {route:?}: {e}"))?,
        );
    }
    let gateway = Gateway::with_forwarder(Arc::new(resolver), forwarder(&args));
    let table = RouteTable::new(&compiled);
    tracing::info!(listen = %args.listen, hosts = ?table.hosts().collect::<Vec<_>>(), "gateway serving static routes");
    gateway.set_routes(table);
    gateway
        .serve(listener, knative_core::signal::shutdown())
        .await;
    Ok(())
}

async fn cluster(args: Args, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let client = knative_core::client::connect(args.kubeconfig.as_deref()).await?;
    let (resolver, watching) = ClusterResolver::start(client.clone(), args.namespace.as_deref());
    let watching = tokio::spawn(watching);
    let gateway = Gateway::with_forwarder(resolver, forwarder(&args));
    let reconciler = IngressReconciler::new(
        Arc::clone(&gateway),
        args.ingress_class.clone(),
        args.public_load_balancer,
        args.private_load_balancer,
    );
    let options = DriverOptions {
        name: "gateway-ingress-controller".to_owned(),
        namespace: args.namespace,
        ..DriverOptions::for_kind::<Ingress>()
    };
    // The driver stops on SIGTERM by itself.
    let driver = tokio::spawn(Driver::with_options(client, reconciler, options).run());
    tracing::info!(listen = %args.listen, class = %args.ingress_class, "gateway serving the cluster's Ingresses");
    gateway
        .serve(listener, knative_core::signal::shutdown())
        .await;
    let _ = driver.await;
    watching.abort();
    Ok(())
}

fn forwarder(args: &Args) -> Forwarder {
    Forwarder::with_options(ForwarderOptions {
        protocol: args.upstream_protocol,
        ..ForwarderOptions::default()
    })
}

fn ingress_name(ingress: &Ingress) -> String {
    ingress.metadata.name.clone().unwrap_or_default()
}

/// An Ingress sending every request for `host` to the static Service `static/<host>:80`.
fn shorthand_ingress(host: &str) -> anyhow::Result<Ingress> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.internal.knative.dev/v1alpha1",
        "kind": "Ingress",
        "metadata": {"name": host, "namespace": "static"},
        "spec": {"rules": [{
            "hosts": [host],
            "http": {"paths": [{"splits": [{
                "serviceNamespace": "static", "serviceName": host, "servicePort": 80,
            }]}]},
        }]},
    }))?)
}

/// `namespace/name:port=host:port,...`.
fn parse_service(spec: &str) -> anyhow::Result<(String, String, String, Vec<SocketAddr>)> {
    let usage = "expected namespace/name:port=host:port,...";
    let (service, endpoints) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--endpoints {spec:?}: {usage}"))?;
    let (service, port) = service
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--endpoints {spec:?}: no port: {usage}"))?;
    let (namespace, name) = service
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("--endpoints {spec:?}: no namespace: {usage}"))?;
    let endpoints =
        parse_endpoints(endpoints).map_err(|e| anyhow::anyhow!("--endpoints {spec:?}: {e}"))?;
    Ok((
        namespace.to_owned(),
        name.to_owned(),
        port.to_owned(),
        endpoints,
    ))
}

fn parse_endpoints(list: &str) -> anyhow::Result<Vec<SocketAddr>> {
    list.split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse()
                .map_err(|err| anyhow::anyhow!("endpoint {e:?} is not host:port: {err}"))
        })
        .collect()
}
