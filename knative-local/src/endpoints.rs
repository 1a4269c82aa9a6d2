//! An Endpoints controller for clusters without one (the embedded API server): every Service with a selector
//! gets Endpoints listing its Pods' addresses, ready ones under `addresses`, the others under
//! `notReadyAddresses`, with the Service's target ports resolved (by number or by the Pod's
//! port name), as Kubernetes' endpoints controller writes them.
//!
//! [`endpoints_for`] is the pure part; [`run`] watches Services, Pods and Endpoints and writes
//! the Endpoints that differ.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{reflector, watcher};
use kube::{Client, ResourceExt};

/// A Service port resolved for one Pod: name, target port, protocol.
type ResolvedPort = (String, i32, String);
/// Ready and not-ready addresses.
type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);

/// The Endpoints of `service` given the Pods of its namespace (owned, or shared as a cache
/// holds them); `None` for a Service without a selector (its Endpoints are someone else's to
/// write).
pub fn endpoints_for<P: Borrow<Pod>>(service: &Service, pods: &[P]) -> Option<Endpoints> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    // One subset per distinct set of resolved ports (Pods may name their ports differently).
    let mut subsets: BTreeMap<Vec<ResolvedPort>, Addresses> = BTreeMap::new();
    for pod in pods {
        let pod: &Pod = pod.borrow();
        let labels = pod.labels();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let ports: Vec<ResolvedPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let target = match &p.target_port {
                    None => p.port,
                    Some(IntOrString::Int(n)) => *n,
                    Some(IntOrString::String(name)) => {
                        pod.spec
                            .as_ref()?
                            .containers
                            .iter()
                            .flat_map(|c| c.ports.iter().flatten())
                            .find(|cp| cp.name.as_deref() == Some(name))?
                            .container_port
                    }
                };
                Some((
                    p.name.clone().unwrap_or_default(),
                    target,
                    p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                ))
            })
            .collect();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            ..EndpointAddress::default()
        };
        let entry = subsets.entry(ports).or_default();
        if ready {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let subsets: Vec<EndpointSubset> = subsets
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            ..EndpointPort::default()
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    Some(Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            labels: service.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// Keeps the Endpoints of the Services in `namespace` (or all namespaces) current until the
/// future is dropped. Services, Pods and Endpoints are cached by watches; a change to any of
/// them recomputes its namespace from the caches at once and writes the Endpoints that differ.
/// Changes that arrived meanwhile are handled in the same pass, without waiting for more: a Pod
/// turning Ready is in its Endpoints one write later, which is what a cold start waits for.
pub async fn run(client: Client, namespace: Option<String>) {
    let (services, services_writer) = kube::runtime::reflector::store::<Service>();
    let (pods, pods_writer) = kube::runtime::reflector::store::<Pod>();
    let (endpoints, endpoints_writer) = kube::runtime::reflector::store::<Endpoints>();
    let config = watcher::Config::default;
    let service_changes = reflector(
        services_writer,
        watcher(api::<Service>(&client, &namespace), config()),
    )
    .map(|e| Trigger::of(0, e));
    let pod_changes = reflector(
        pods_writer,
        watcher(api::<Pod>(&client, &namespace), config()),
    )
    .map(|e| Trigger::of(1, e));
    let endpoints_changes = reflector(
        endpoints_writer,
        watcher(api::<Endpoints>(&client, &namespace), config()),
    )
    .map(|e| Trigger::of(2, e));
    let mut changes = futures::stream::select(
        futures::stream::select(service_changes, pod_changes),
        endpoints_changes,
    )
    .boxed();
    let mut listed = [false; 3];
    let mut dirty = BTreeSet::new();
    while let Some(first) = changes.next().await {
        let mut trigger = Some(first);
        // Everything already waiting joins this pass; nothing waits for more.
        while let Some(t) = trigger {
            match t {
                Trigger::Namespace(ns) => {
                    dirty.insert(ns);
                }
                Trigger::Listed(source) => listed[source] = true,
                Trigger::Nothing => {}
            }
            trigger = changes.next().now_or_never().flatten();
        }
        // Until every cache holds a first full list, Endpoints computed from them could miss
        // Pods: keep the namespaces for the first pass after that.
        if !listed.iter().all(|l| *l) {
            continue;
        }
        let caches = Caches {
            services: &services,
            pods: &pods,
            endpoints: &endpoints,
        };
        for ns in std::mem::take(&mut dirty) {
            if let Err(e) = caches.sync_namespace(&client, &ns).await {
                tracing::warn!(namespace = %ns, error = %e, "cannot write endpoints");
            }
        }
    }
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What one watch event asks of the controller.
enum Trigger {
    /// Something in this namespace changed.
    Namespace(String),
    /// The watch with this index delivered its first (or a new) full list.
    Listed(usize),
    /// Nothing to do (an error the watch retries, or a list in progress).
    Nothing,
}

impl Trigger {
    fn of<K: kube::Resource>(
        source: usize,
        event: Result<watcher::Event<K>, watcher::Error>,
    ) -> Self {
        match event {
            Ok(
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o),
            ) => o
                .meta()
                .namespace
                .clone()
                .map_or(Trigger::Nothing, Trigger::Namespace),
            Ok(watcher::Event::InitDone) => Trigger::Listed(source),
            Ok(watcher::Event::Init) => Trigger::Nothing,
            Err(e) => {
                tracing::debug!(error = %e, "endpoints controller: watch failed, retrying");
                Trigger::Nothing
            }
        }
    }
}

/// The watched objects the controller computes from.
struct Caches<'a> {
    services: &'a Store<Service>,
    pods: &'a Store<Pod>,
    endpoints: &'a Store<Endpoints>,
}

impl Caches<'_> {
    async fn sync_namespace(&self, client: &Client, ns: &str) -> Result<(), kube::Error> {
        let in_ns = |meta: &ObjectMeta| meta.namespace.as_deref() == Some(ns);
        let pods: Vec<_> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| in_ns(&p.metadata))
            .collect();
        let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
        for service in self.services.state().iter().filter(|s| in_ns(&s.metadata)) {
            let Some(mut want) = endpoints_for(service, &pods) else {
                continue;
            };
            let name = service.name_any();
            match self.endpoints.get(&ObjectRef::new(&name).within(ns)) {
                None => match api.create(&PostParams::default(), &want).await {
                    Ok(_) => {}
                    // Written meanwhile, not yet in the cache: its watch event brings us back.
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                    Err(e) => return Err(e),
                },
                Some(have)
                    if have.subsets != want.subsets
                        || have.metadata.labels != want.metadata.labels =>
                {
                    want.metadata.resource_version = have.metadata.resource_version.clone();
                    match api.replace(&name, &PostParams::default(), &want).await {
                        Ok(_) => {}
                        // The cache was behind: the watch brings us back.
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": { "name": "hello", "namespace": "ns" },
            "spec": { "selector": { "app": "hello" }, "ports": [
                { "name": "http", "port": 80, "targetPort": "web" },
                { "name": "metrics", "port": 9090, "targetPort": 9091 },
            ] },
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, app: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "ns", "labels": { "app": app } },
            "spec": { "containers": [{ "name": "c", "ports": [{ "name": "web", "containerPort": 8080 }] }] },
            "status": { "podIP": ip, "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] },
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_unready_pods_of_the_selector_are_listed_with_resolved_ports() {
        let pods = [
            pod("b", "127.0.0.3", true, "hello"),
            pod("a", "127.0.0.2", true, "hello"),
            pod("c", "127.0.0.4", false, "hello"),
            pod("other", "127.0.0.5", true, "other"),
        ];
        let endpoints = endpoints_for(&service(), &pods).unwrap();
        let subsets = endpoints.subsets.unwrap();
        assert_eq!(subsets.len(), 1);
        let ips = |a: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            a.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        assert_eq!(ips(&subsets[0].addresses), ["127.0.0.2", "127.0.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["127.0.0.4"]);
        let ports: Vec<(Option<String>, i32)> = subsets[0]
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port))
            .collect();
        assert_eq!(
            ports,
            [(Some("http".into()), 8080), (Some("metrics".into()), 9091)]
        );
    }

    #[test]
    fn a_service_without_a_selector_is_left_to_its_owner() {
        let mut s = service();
        s.spec.as_mut().unwrap().selector = None;
        assert!(endpoints_for::<Pod>(&s, &[]).is_none());
    }

    #[test]
    fn no_matching_pods_means_no_subsets() {
        let endpoints = endpoints_for::<Pod>(&service(), &[]).unwrap();
        assert!(endpoints.subsets.is_none());
    }
}
