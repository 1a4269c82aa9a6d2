//! `knative local`: the whole platform on this machine, no cluster needed.
//!
//! One process tree on loopback:
//! - in this process: the embedded API server (`knative-apiserver`, persistent in the data
//!   directory), the Deployment and Endpoints controllers (it has no kube-controller-manager),
//!   and the process runtime (the kubelet of `image: local:///path` containers) with Knative's
//!   queue-proxy running in-process for each Revision Pod;
//! - as child processes of this binary, against `DIR/kubeconfig`: `knative controller` (the
//!   reconcilers and the autoscaler), `knative activator` and `knative gateway` (on
//!   `--gateway-addr`, routing by `Host` as the Ingresses say).
//!
//! The data directory defaults to `$XDG_DATA_HOME/knative` (`~/.local/share/knative`); it holds
//! the store, `kubeconfig` (written once the API server is ready) and `logs/` (one file per
//! container). SIGTERM or Ctrl-C stops everything: the children get SIGTERM, the Pods'
//! processes are stopped, the store is closed.
//!
//! `knative local apply -f FILE` creates or updates the objects of a YAML file through the
//! kubeconfig of a running `knative local`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use knative_local::queue_proxy::QueueProxySidecar;
use knative_local::runtime::{ProcessRuntime, RuntimeConfig};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;

/// Arguments of `knative local`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<LocalCommand>,
    /// Where the platform keeps its state, kubeconfig and logs (default
    /// `$XDG_DATA_HOME/knative`, i.e. `~/.local/share/knative`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway_addr: SocketAddr,
    /// Where the API server listens (port 0: any free port; the kubeconfig says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    api_addr: SocketAddr,
    /// Run against the API server of this kubeconfig (e.g. the test environment's
    /// kube-apiserver, whose kube-controller-manager makes the Pods) instead of the embedded
    /// one; the process runtime, the reconcilers and the data plane run as usual.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum LocalCommand {
    /// Create or update the objects of a YAML file on the running `knative local`.
    Apply {
        /// The multi-document YAML file (`-` for stdin).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("knative"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow::anyhow!("neither --data-dir, $XDG_DATA_HOME nor $HOME is set"))?;
    Ok(PathBuf::from(home).join(".local/share/knative"))
}

/// Runs `knative local` (or `knative local apply`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match &args.command {
        Some(LocalCommand::Apply { file }) => runtime.block_on(apply(&data_dir, file))?,
        None => runtime.block_on(platform(&args, &data_dir))?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn platform(args: &Args, data_dir: &Path) -> anyhow::Result<()> {
    let store_dir = data_dir.join("store");
    let log_dir = data_dir.join("logs");
    std::fs::create_dir_all(&store_dir)
        .and_then(|()| std::fs::create_dir_all(&log_dir))
        .map_err(|e| anyhow::anyhow!("{}: {e}", data_dir.display()))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Either the embedded API server with the controllers it lacks (Deployments, Endpoints),
    // or a real API server whose kube-controller-manager has them.
    let (client, kubeconfig, server, controllers) = match &args.kubeconfig {
        Some(path) => {
            let client = knative_core::client::connect(Some(path)).await?;
            tracing::info!(kubeconfig = %path.display(), "using the API server of this kubeconfig");
            (client, path.clone(), None, None)
        }
        None => {
            let server = knative_apiserver::ApiServer::builder()
                .data_dir(&store_dir)
                .bind(args.api_addr)
                .start()
                .await?;
            let client = server.client();
            let kubeconfig = data_dir.join("kubeconfig");
            let deployments = tokio::spawn(knative_local::deployments::run(
                client.clone(),
                None,
                until_stopped(stopped.clone()),
            ));
            let endpoints = tokio::spawn(knative_local::endpoints::run(client.clone(), None));
            (
                client,
                kubeconfig,
                Some(server),
                Some((deployments, endpoints)),
            )
        }
    };
    install_crds(&client).await?;
    ensure_namespace(&client, "knative-serving").await?;
    ensure_namespace(&client, "default").await?;
    if let Some(server) = &server {
        server.write_kubeconfig(&kubeconfig)?;
        tracing::info!(kubeconfig = %kubeconfig.display(), api = %server.url(), "API server ready");
    }

    let runtime = ProcessRuntime::new(
        client.clone(),
        RuntimeConfig::new("knative-local", &log_dir),
    )
    .with_sidecar(Arc::new(QueueProxySidecar::default()));
    let kubelet = tokio::spawn(runtime.run(until_stopped(stopped.clone())));

    let autoscaler_addr = free_port()?;
    let activator_addr = free_port()?;
    if let Err(error) = register_activator(&client, activator_addr).await {
        // kube-apiserver refuses loopback addresses in Endpoints.
        anyhow::ensure!(
            args.kubeconfig.is_some(),
            "cannot register the activator: {error}"
        );
        tracing::warn!(%error, "the activator cannot be put in front of revisions on this API server; revisions stay behind their pods only");
    }
    default_domain(&client).await?;
    let mut children = Vec::new();
    let spawn = |name: &'static str,
                 extra: Vec<String>|
     -> anyhow::Result<(&'static str, tokio::process::Child)> {
        let exe = std::env::current_exe()?;
        let child = tokio::process::Command::new(exe)
            .arg(name)
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env(PARENT_ENV, std::process::id().to_string())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start knative {name}: {e}"))?;
        tracing::info!(pid = child.id(), "started knative {name}");
        Ok((name, child))
    };
    children.push(spawn(
        "controller",
        vec![
            format!("--metrics-addr={}", free_port()?),
            format!("--autoscaler-addr={autoscaler_addr}"),
        ],
    )?);
    children.push(spawn(
        "activator",
        vec![
            format!("--listen={activator_addr}"),
            format!("--autoscaler-url=http://{autoscaler_addr}"),
        ],
    )?);
    children.push(spawn(
        "gateway",
        vec![format!("--listen={}", args.gateway_addr)],
    )?);
    tracing::info!(gateway = %args.gateway_addr, "knative local is running; Ctrl-C or SIGTERM stops it");

    // A child that dies (a port already taken, a crash) leaves the platform half-working:
    // stop everything and say which one failed.
    let failed = tokio::select! {
        () = knative_core::signal::shutdown() => None,
        (name, status) = first_exit(&mut children) => {
            tracing::error!(%status, "knative {name} exited; stopping knative local");
            Some(name)
        }
    };
    tracing::info!("stopping");
    for (_, child) in &mut children {
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for (_, child) in &mut children {
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    let _ = stop.send(true);
    if let Err(e) = kubelet.await? {
        tracing::warn!(error = %e, "the process runtime failed");
    }
    if let Some((deployments, endpoints)) = controllers {
        let _ = tokio::time::timeout(Duration::from_secs(5), deployments).await;
        endpoints.abort();
    }
    if let Some(server) = server {
        server.shutdown().await;
    }
    tracing::info!("stopped");
    match failed {
        Some(name) => Err(anyhow::anyhow!(
            "knative {name} exited unexpectedly (see its error above)"
        )),
        None => Ok(()),
    }
}

/// Waits for the first child to exit: its name and exit status.
async fn first_exit(
    children: &mut [(&'static str, tokio::process::Child)],
) -> (&'static str, std::process::ExitStatus) {
    let waits = children.iter_mut().map(|(name, child)| {
        Box::pin(async move {
            let status = child.wait().await;
            (*name, status)
        })
    });
    let ((name, status), _, _) = futures::future::select_all(waits).await;
    match status {
        Ok(status) => (name, status),
        Err(e) => {
            tracing::error!(error = %e, "cannot wait for knative {name}");
            (name, std::process::ExitStatus::default())
        }
    }
}

/// The activator's Service and Endpoints (`knative-serving/activator-service`), which the
/// ServerlessService reconciler puts in front of Revisions at zero: as in a cluster, port `http`
/// 80, here leading to the activator child process on `addr`.
async fn register_activator(client: &kube::Client, addr: SocketAddr) -> anyhow::Result<()> {
    let params = PatchParams::apply("knative-local").force();
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "activator-service", "namespace": "knative-serving",
                     "labels": {"app": "activator"}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": addr.port(), "protocol": "TCP"}]},
    });
    let endpoints = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "activator-service", "namespace": "knative-serving",
                     "labels": {"app": "activator"}},
        "subsets": [{
            "addresses": [{"ip": addr.ip().to_string()}],
            "ports": [{"name": "http", "port": addr.port(), "protocol": "TCP"}],
        }],
    });
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), "knative-serving")
        .patch("activator-service", &params, &Patch::Apply(&service))
        .await
        .map_err(|e| anyhow::anyhow!("cannot register the activator's Service: {e}"))?;
    Api::<k8s_openapi::api::core::v1::Endpoints>::namespaced(client.clone(), "knative-serving")
        .patch("activator-service", &params, &Patch::Apply(&endpoints))
        .await
        .map_err(|e| anyhow::anyhow!("cannot register the activator's Endpoints: {e}"))?;
    Ok(())
}

/// Gives Routes the domain `example.com` (so a Service is `http://<name>.<namespace>.example.com`
/// through the gateway) unless `config-domain` exists already: Knative without a configured
/// domain would make every Route cluster-local (`svc.cluster.local`).
async fn default_domain(client: &kube::Client) -> anyhow::Result<()> {
    let config_map: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "config-domain", "namespace": "knative-serving"},
            "data": {"example.com": ""},
        }))?;
    match Api::namespaced(client.clone(), "knative-serving")
        .create(&PostParams::default(), &config_map)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create config-domain: {e}")),
    }
}

/// Set by `knative local` on its children: its process id.
const PARENT_ENV: &str = "KNATIVE_LOCAL_PARENT";

/// In a child of `knative local` ([`PARENT_ENV`] set): exits as soon as that parent is gone,
/// even when it was killed without a chance to stop its children (SIGKILL).
pub fn exit_with_parent() {
    let Some(parent) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    std::thread::spawn(move || {
        loop {
            if nix::unistd::getppid().as_raw() != parent {
                eprintln!("knative local (pid {parent}) is gone; exiting");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let mut yaml = Vec::new();
    crate::crds::run(&mut yaml)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for document in serde_yaml::Deserializer::from_slice(&yaml) {
        let crd: CustomResourceDefinition = serde::Deserialize::deserialize(document)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("knative-local").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot install the CRD {name}: {e}"))?;
    }
    Ok(())
}

async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create namespace {name}: {e}")),
    }
}

async fn apply(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    let kubeconfig = data_dir.join("kubeconfig");
    let config = kube::config::Kubeconfig::read_from(&kubeconfig).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is `knative local` running with this --data-dir?)",
            kubeconfig.display()
        )
    })?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await?;
    let client = kube::Client::try_from(config)?;
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
    };
    let discovery = Discovery::new(client.clone()).run().await?;
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value)
            .map_err(|e| anyhow::anyhow!("{}: not a Kubernetes object: {e}", file.display()))?;
        let types = object.types.clone().ok_or_else(|| {
            anyhow::anyhow!("{}: an object without apiVersion/kind", file.display())
        })?;
        let gvk = kube::api::GroupVersionKind::try_from(&types)?;
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: unknown kind {}/{}",
                file.display(),
                types.api_version,
                types.kind
            )
        })?;
        let name = object.metadata.name.clone().ok_or_else(|| {
            anyhow::anyhow!("{}: a {} without metadata.name", file.display(), types.kind)
        })?;
        let api: Api<DynamicObject> = if capabilities.scope == kube::discovery::Scope::Namespaced {
            let ns = object.metadata.namespace.as_deref().unwrap_or("default");
            Api::namespaced_with(client.clone(), ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply("knative-local-apply").force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{} {name}: {e}", types.kind))?;
        println!("{}/{name} applied", resource.plural);
    }
    Ok(())
}
