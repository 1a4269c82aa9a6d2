//! An Endpoints controller for clusters without one (the embedded API server): every Service with a selector
//! gets Endpoints listing its Pods' addresses, ready ones under `addresses`, the others under
//! `notReadyAddresses`, with the Service's target ports resolved (by number or by the Pod's
//! port name), as Kubernetes' endpoints controller writes them.
//!
//! [`endpoints_for`] is the pure part; [`run`] watches Services and Pods and writes the
//! Endpoints that differ.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

/// A Service port resolved for one Pod: name, target port, protocol.
type ResolvedPort = (String, i32, String);
/// Ready and not-ready addresses.
type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);

/// The Endpoints of `service` given the Pods of its namespace; `None` for a Service without a
/// selector (its Endpoints are someone else's to write).
pub fn endpoints_for(service: &Service, pods: &[Pod]) -> Option<Endpoints> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    // One subset per distinct set of resolved ports (Pods may name their ports differently).
    let mut subsets: BTreeMap<Vec<ResolvedPort>, Addresses> = BTreeMap::new();
    for pod in pods {
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
/// future is dropped. Recomputes a namespace whenever a Service or Pod in it changes.
pub async fn run(client: Client, namespace: Option<String>) {
    let (services, pods): (Api<Service>, Api<Pod>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let changed_services = watcher(services, watcher::Config::default())
        .filter_map(|e| async move { e.ok().and_then(namespace_of_service) });
    let changed_pods = watcher(pods, watcher::Config::default())
        .filter_map(|e| async move { e.ok().and_then(namespace_of_pod) });
    let mut changes = futures::stream::select(changed_services, changed_pods).boxed();
    while let Some(ns) = changes.next().await {
        // Coalesce a burst of changes into one pass per namespace.
        let mut dirty = std::collections::BTreeSet::from([ns]);
        while let Ok(Some(more)) =
            tokio::time::timeout(Duration::from_millis(20), changes.next()).await
        {
            dirty.insert(more);
        }
        for ns in dirty {
            if let Err(e) = sync_namespace(&client, &ns).await {
                tracing::warn!(namespace = %ns, error = %e, "cannot write endpoints");
            }
        }
    }
}

fn namespace_of_service(event: watcher::Event<Service>) -> Option<String> {
    match event {
        watcher::Event::Apply(s) | watcher::Event::InitApply(s) | watcher::Event::Delete(s) => {
            s.namespace()
        }
        _ => None,
    }
}

fn namespace_of_pod(event: watcher::Event<Pod>) -> Option<String> {
    match event {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) | watcher::Event::Delete(p) => {
            p.namespace()
        }
        _ => None,
    }
}

async fn sync_namespace(client: &Client, ns: &str) -> Result<(), kube::Error> {
    let services = Api::<Service>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    for service in &services {
        let Some(mut want) = endpoints_for(service, &pods) else {
            continue;
        };
        let name = service.name_any();
        match api.get_opt(&name).await? {
            None => match api.create(&PostParams::default(), &want).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(e) => return Err(e),
            },
            Some(have)
                if have.subsets != want.subsets || have.metadata.labels != want.metadata.labels =>
            {
                want.metadata.resource_version = have.metadata.resource_version;
                match api.replace(&name, &PostParams::default(), &want).await {
                    Ok(_) => {}
                    // Someone else wrote meanwhile: the watch brings us back.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
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
        assert!(endpoints_for(&s, &[]).is_none());
    }

    #[test]
    fn no_matching_pods_means_no_subsets() {
        let endpoints = endpoints_for(&service(), &[]).unwrap();
        assert!(endpoints.subsets.is_none());
    }
}
