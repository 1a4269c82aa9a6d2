//! The process runtime: the kubelet of Pods whose containers are local executables.
//!
//! [`ProcessRuntime::run`] registers a Node (so that the cluster's controllers treat the Pods
//! as placed), watches Pods, and runs those it *claims*: not yet bound to another node, no init
//! containers, and every container either a `local:///absolute/path` image or one a registered
//! [`Sidecar`] runs in-process (the platform runs Knative's queue-proxy that way). It binds
//! them to its Node, gives each its own loopback address, and then, per Pod:
//!
//! - starts each local container as a process (see [`spec::process_spec`]) in its own process
//!   group, with stdout and stderr appended to `<log_dir>/<namespace>_<pod>_<container>.log`,
//!   and `PORT` set to a free port; the container's declared ports on the Pod's address are
//!   forwarded to it;
//! - restarts a process that exits (back-off from 0.5 s, doubling, to 30 s) and reports
//!   `restartCount`, `lastState` and `CrashLoopBackOff` as the kubelet does;
//! - probes readiness with the containers' `httpGet`, `tcpSocket` or `exec` probes, every 25 ms
//!   until ready and then every `periodSeconds`; a container without a probe is ready while it
//!   runs;
//! - writes the Pod's status (phase, IPs, conditions, container statuses) when it changes;
//! - on deletion, sends SIGTERM to each process group, SIGKILL after the grace period, and
//!   removes the Pod.
//!
//! A real kube-apiserver accepts loopback Pod IPs but refuses them in Endpoints (and
//! EndpointSlices): there, Services over these Pods get no Endpoints, and the data plane must
//! find the Pods by their labels. The embedded API server accepts them.
//!
//! Differences from a kubelet, on purpose: no images, volumes, resource limits or network
//! namespaces (processes share the host's network, which is why each gets its own `PORT`);
//! env vars from ConfigMaps and Secrets are refused with a clear container status.

mod ips;
mod pod;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Container, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use self::ips::IpPool;

/// How the runtime presents itself and where it keeps things.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The Node it registers and binds Pods to.
    pub node_name: String,
    /// Only Pods of this namespace (default: all).
    pub namespace: Option<String>,
    /// Where containers' logs go.
    pub log_dir: PathBuf,
    /// The first Pod address (default 127.0.0.2).
    pub first_ip: Ipv4Addr,
}

impl RuntimeConfig {
    /// A runtime registering as `node_name`, logging under `log_dir`.
    pub fn new(node_name: impl Into<String>, log_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_name: node_name.into(),
            namespace: None,
            log_dir: log_dir.into(),
            first_ip: Ipv4Addr::new(127, 0, 0, 2),
        }
    }
}

/// A container the runtime runs in-process instead of as an executable (for example Knative's
/// queue-proxy, which the platform embeds).
#[async_trait::async_trait]
pub trait Sidecar: Send + Sync + 'static {
    /// Whether this sidecar runs `container`.
    fn handles(&self, container: &Container) -> bool;

    /// Runs the container of `ctx` until `stopped` turns true.
    ///
    /// # Errors
    /// A message saying why it could not run.
    async fn run(&self, ctx: SidecarContext, stopped: watch::Receiver<bool>) -> Result<(), String>;
}

/// What an in-process container is given.
#[derive(Clone, Debug)]
pub struct SidecarContext {
    /// Its Pod.
    pub pod: Pod,
    /// The container it runs.
    pub container: Container,
    /// The Pod's address: bind the container's ports here.
    pub pod_ip: Ipv4Addr,
    /// The port of the Pod's first local container (where a proxy sidecar forwards to), 0 when
    /// there is none.
    pub user_port: u16,
}

/// Errors of the runtime itself (a Pod's failures go to its status).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The API server refused the Node registration.
    #[error("cannot register node {node}: {source}")]
    Register {
        /// The Node.
        node: String,
        /// Why.
        source: kube::Error,
    },
}

type PodKey = (String, String, String);

struct PodHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ip: Ipv4Addr,
}

/// The process runtime; see the [module docs](self).
pub struct ProcessRuntime {
    client: Client,
    config: RuntimeConfig,
    sidecars: Arc<Vec<Arc<dyn Sidecar>>>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ProcessRuntime {
    /// A runtime on the cluster of `client`.
    pub fn new(client: Client, config: RuntimeConfig) -> Self {
        Self {
            client,
            config,
            sidecars: Arc::new(Vec::new()),
        }
    }

    /// Runs containers `sidecar` handles in-process.
    pub fn with_sidecar(mut self, sidecar: Arc<dyn Sidecar>) -> Self {
        Arc::make_mut(&mut self.sidecars).push(sidecar);
        self
    }

    /// Whether this runtime would run `pod` (see the [module docs](self)).
    pub fn claims(&self, pod: &Pod) -> bool {
        let Some(spec) = &pod.spec else {
            return false;
        };
        let bound_elsewhere = spec
            .node_name
            .as_deref()
            .is_some_and(|n| !n.is_empty() && n != self.config.node_name);
        let terminal = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        let local =
            |c: &Container| spec::local_path(c.image.as_deref().unwrap_or_default()).is_some();
        !bound_elsewhere
            && !terminal
            && spec.init_containers.as_ref().is_none_or(Vec::is_empty)
            && spec.containers.iter().any(local)
            && spec
                .containers
                .iter()
                .all(|c| local(c) || self.sidecars.iter().any(|s| s.handles(c)))
    }

    /// Registers the Node and runs claimed Pods until `shutdown` completes; then stops every
    /// Pod's processes (the Pods stay bound, and a runtime started again runs them again).
    ///
    /// # Errors
    /// When the Node cannot be registered.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        // An API server without Nodes (the embedded one) gets none: Pods are still bound by
        // name.
        let heartbeat = match register_node(&self.client, &self.config.node_name).await {
            Ok(()) => tokio::spawn(heartbeat(
                self.client.clone(),
                self.config.node_name.clone(),
            )),
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                tracing::info!("the API server serves no Nodes; running without one");
                tokio::spawn(std::future::pending())
            }
            Err(source) => {
                return Err(RuntimeError::Register {
                    node: self.config.node_name.clone(),
                    source,
                });
            }
        };
        let pods: Api<Pod> = match &self.config.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let ips = Arc::new(Mutex::new(IpPool::new(self.config.first_ip)));
        let mut running: HashMap<PodKey, PodHandle> = HashMap::new();
        // Pods whose processes are being stopped (each within its grace period, drains
        // included), in tasks of their own: one Pod's drain must not hold up the start of
        // another, e.g. the new Pod of a revision woken right after it scaled to zero.
        let mut stopping: JoinSet<PodKey> = JoinSet::new();
        let mut terminating: HashSet<PodKey> = HashSet::new();
        let mut events = watcher(pods, watcher::Config::default()).boxed();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let event = tokio::select! {
                () = &mut shutdown => break,
                Some(stopped) = stopping.join_next(), if !stopping.is_empty() => {
                    if let Ok(k) = stopped {
                        terminating.remove(&k);
                    }
                    continue;
                }
                event = events.next() => event,
            };
            let Some(event) = event else { break };
            let pod = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
                Ok(watcher::Event::Delete(pod)) => {
                    let k = key(&pod);
                    if let Some(handle) = running.remove(&k) {
                        terminating.insert(k.clone());
                        stopping.spawn(stop_pod(k, handle, ips.clone(), None));
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let k = key(&pod);
            if pod.metadata.deletion_timestamp.is_some() {
                if terminating.contains(&k) {
                    continue;
                }
                // The kubelet's last word, once the processes are gone: the Pod may go.
                let finish = self
                    .is_ours(&pod)
                    .then(|| Api::<Pod>::namespaced(self.client.clone(), &k.0));
                if let Some(handle) = running.remove(&k) {
                    terminating.insert(k.clone());
                    stopping.spawn(stop_pod(k, handle, ips.clone(), finish));
                } else if let Some(api) = finish {
                    let _ = api
                        .delete(&k.1, &DeleteParams::default().grace_period(0))
                        .await;
                }
                continue;
            }
            if running.contains_key(&k) || !self.claims(&pod) {
                continue;
            }
            if !self.is_ours(&pod) && !self.bind(&pod).await {
                continue;
            }
            let ip = {
                let mut pool = ips.lock().unwrap_or_else(|p| p.into_inner());
                allocate_free(&mut pool, &declared_ports(&pod))
            };
            let Some(ip) = ip else {
                tracing::error!(pod = %k.1, "no loopback address left for the pod");
                continue;
            };
            tracing::info!(namespace = %k.0, pod = %k.1, %ip, "starting pod");
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(pod::run_pod(
                self.client.clone(),
                pod,
                ip,
                self.config.node_name.clone(),
                self.config.log_dir.clone(),
                self.sidecars.clone(),
                stopped,
            ));
            running.insert(k, PodHandle { stop, task, ip });
        }
        for (k, handle) in running.drain() {
            stopping.spawn(stop_pod(k, handle, ips.clone(), None));
        }
        while stopping.join_next().await.is_some() {}
        heartbeat.abort();
        Ok(())
    }

    fn is_ours(&self, pod: &Pod) -> bool {
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            == Some(self.config.node_name.as_str())
    }

    /// Binds `pod` to this runtime's Node, as a scheduler would. False when another binding won.
    async fn bind(&self, pod: &Pod) -> bool {
        let namespace = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let binding = Binding {
            metadata: ObjectMeta {
                name: pod.metadata.name.clone(),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Node".to_owned()),
                name: Some(self.config.node_name.clone()),
                ..ObjectReference::default()
            },
        };
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &pod.name_any(),
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => true,
            // No `pods/binding` (the embedded API server): set the node name directly.
            Err(kube::Error::Api(status)) if status.is_not_found() => api
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"nodeName": self.config.node_name}})),
                )
                .await
                .is_ok(),
            Err(e) => {
                tracing::debug!(pod = %pod.name_any(), error = %e, "binding failed");
                false
            }
        }
    }
}

/// Stops a Pod's processes (within its grace period), releases its address and, with `finish`,
/// deletes the Pod for good, as the kubelet does once its containers are gone.
async fn stop_pod(
    k: PodKey,
    handle: PodHandle,
    ips: Arc<Mutex<IpPool>>,
    finish: Option<Api<Pod>>,
) -> PodKey {
    let _ = handle.stop.send(true);
    let _ = handle.task.await;
    ips.lock()
        .unwrap_or_else(|p| p.into_inner())
        .release(handle.ip);
    if let Some(api) = finish {
        let _ = api
            .delete(&k.1, &DeleteParams::default().grace_period(0))
            .await;
    }
    k
}

fn key(pod: &Pod) -> PodKey {
    (
        pod.namespace().unwrap_or_default(),
        pod.name_any(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

fn node_status() -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now();
    let now = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now))
        .unwrap_or_default();
    json!({ "status": {
        "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }, { "type": "Hostname", "address": "localhost" }],
        "capacity": { "cpu": "64", "memory": "256Gi", "pods": "1000" },
        "allocatable": { "cpu": "64", "memory": "256Gi", "pods": "1000" },
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "knative-local process runtime is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
    }})
}

async fn register_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(name).await?.is_none() {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "labels": {
                "kubernetes.io/hostname": name, "knative.dev/local-runtime": "true",
            } },
        }))
        .map_err(kube::Error::SerdeError)?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&node_status()))
        .await?;
    Ok(())
}

/// Keeps the Node's Ready condition fresh, as the kubelet's status updates do.
async fn heartbeat(client: Client, name: String) {
    let nodes: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if let Err(e) = nodes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&node_status()),
            )
            .await
        {
            tracing::warn!(error = %e, "node heartbeat failed");
        }
    }
}

/// The ports a Pod's containers declare: they listen on the Pod's address.
fn declared_ports(pod: &Pod) -> Vec<u16> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect()
}

/// The lowest address of `pool` on which every one of `ports` is free: an address another
/// process holds (another `knative local`, a leftover process) is skipped and stays taken, so
/// two platforms on one machine never share a Pod address.
fn allocate_free(pool: &mut ips::IpPool, ports: &[u16]) -> Option<Ipv4Addr> {
    loop {
        let ip = pool.allocate()?;
        let taken = ports
            .iter()
            .find(|port| std::net::TcpListener::bind((ip, **port)).is_err());
        match taken {
            None => return Some(ip),
            Some(port) => {
                tracing::warn!(%ip, port, "address in use by another process; skipping it");
            }
        }
    }
}

#[cfg(test)]
mod allocation_tests {
    use super::*;

    #[test]
    fn an_address_whose_declared_port_another_process_holds_is_skipped() {
        let holder = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let mut pool = ips::IpPool::new(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            allocate_free(&mut pool, &[port]),
            Some(Ipv4Addr::new(127, 0, 0, 3))
        );
        assert_eq!(
            allocate_free(&mut pool, &[port]),
            Some(Ipv4Addr::new(127, 0, 0, 4)),
            "the held address stays taken"
        );
    }

    #[test]
    fn a_pod_without_ports_takes_the_lowest_address() {
        let mut pool = ips::IpPool::new(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            allocate_free(&mut pool, &[]),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
    }
}
