//! Feeds an [`Activator`] from the cluster: Revisions (for their `containerConcurrency`) and the
//! Endpoints of each Revision's private Service (its ready queue-proxies), as Knative's
//! activator watches them.
//!
//! Knative's ServerlessService gives every Revision a private Service named
//! `<revision>-private`, labelled `networking.knative.dev/serviceType: Private` and
//! `serving.knative.dev/revision: <revision>`; its Endpoints list the Revision's ready pods, with
//! the queue-proxy's serving port named `http` (`http2` for h2c Revisions).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Endpoints;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};

use super::{Activator, RevisionKey};
use crate::apis::Revision;

/// The label of a Revision's Services naming the Revision.
pub const REVISION_LABEL: &str = "serving.knative.dev/revision";
/// The label telling a Revision's private Service (`Private`) from its public one.
pub const SERVICE_TYPE_LABEL: &str = "networking.knative.dev/serviceType";
/// The suffix of a Revision's private Service: `<revision>-private`.
pub const PRIVATE_SERVICE_SUFFIX: &str = "-private";

/// Watches Revisions and private Endpoints in `namespace` (all namespaces when `None`) and
/// keeps `activator` in step, until the watches end (they retry with backoff on errors, so in
/// practice until the task is dropped).
pub async fn watch(activator: Arc<Activator>, client: Client, namespace: Option<String>) {
    let revisions = watch_revisions(Arc::clone(&activator), client.clone(), namespace.clone());
    let endpoints = watch_endpoints(activator, client, namespace);
    futures::join!(revisions, endpoints);
}

/// The ready backends an Endpoints object lists: its ready addresses on the port named `http`
/// (or `http2`).
pub fn backends_of(endpoints: &Endpoints) -> Vec<SocketAddr> {
    let mut backends = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let Some(port) =
            subset.ports.iter().flatten().find_map(|p| {
                matches!(p.name.as_deref(), Some("http" | "http2")).then_some(p.port)
            })
        else {
            continue;
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<IpAddr>() {
                backends.push(SocketAddr::new(ip, port));
            }
        }
    }
    backends
}

/// The Revision whose private Service `endpoints` belongs to, if it is one.
pub fn revision_of(endpoints: &Endpoints) -> Option<RevisionKey> {
    let namespace = endpoints.namespace()?;
    let labels = endpoints.labels();
    let name = labels.get(REVISION_LABEL).cloned().or_else(|| {
        endpoints
            .name_any()
            .strip_suffix(PRIVATE_SERVICE_SUFFIX)
            .map(str::to_owned)
    })?;
    Some(RevisionKey::new(namespace, name))
}

fn api<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

async fn watch_revisions(activator: Arc<Activator>, client: Client, namespace: Option<String>) {
    let api: Api<Revision> = api(client, namespace.as_deref());
    let mut listed: HashSet<RevisionKey> = HashSet::new();
    let mut known: HashSet<RevisionKey> = HashSet::new();
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%err, "revision watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::Apply(rev) | Event::InitApply(rev) => {
                let key = RevisionKey::new(rev.namespace().unwrap_or_default(), rev.name_any());
                let cc = u32::try_from(rev.spec.container_concurrency().max(0)).unwrap_or(u32::MAX);
                activator.upsert_revision(&key, cc);
                listed.insert(key.clone());
                known.insert(key);
            }
            Event::Delete(rev) => {
                let key = RevisionKey::new(rev.namespace().unwrap_or_default(), rev.name_any());
                activator.remove_revision(&key);
                known.remove(&key);
            }
            Event::Init => listed.clear(),
            Event::InitDone => {
                for gone in known.difference(&listed) {
                    activator.remove_revision(gone);
                }
                known = std::mem::take(&mut listed);
            }
        }
    }
}

async fn watch_endpoints(activator: Arc<Activator>, client: Client, namespace: Option<String>) {
    let api: Api<Endpoints> = api(client, namespace.as_deref());
    let config = watcher::Config::default().labels(&format!("{SERVICE_TYPE_LABEL}=Private"));
    let mut listed: HashMap<RevisionKey, Vec<SocketAddr>> = HashMap::new();
    let mut known: HashSet<RevisionKey> = HashSet::new();
    let stream = watcher::watcher(api, config)
        .default_backoff()
        .map_err(|err| {
            tracing::warn!(%err, "endpoints watch failed; retrying");
            err
        });
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        match event {
            Event::Apply(endpoints) => {
                if let Some(key) = revision_of(&endpoints) {
                    activator.set_backends(&key, backends_of(&endpoints));
                    known.insert(key);
                }
            }
            Event::InitApply(endpoints) => {
                if let Some(key) = revision_of(&endpoints) {
                    listed.insert(key, backends_of(&endpoints));
                }
            }
            Event::Delete(endpoints) => {
                if let Some(key) = revision_of(&endpoints) {
                    activator.set_backends(&key, []);
                    known.remove(&key);
                }
            }
            Event::Init => listed.clear(),
            Event::InitDone => {
                for gone in known.iter().filter(|k| !listed.contains_key(*k)) {
                    activator.set_backends(gone, []);
                }
                known = listed.keys().cloned().collect();
                for (key, backends) in listed.drain() {
                    activator.set_backends(&key, backends);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(json: serde_json::Value) -> Endpoints {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn backends_are_the_ready_addresses_on_the_http_port() {
        let ep = endpoints(serde_json::json!({
            "metadata": {"name": "hello-00001-private", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "notReadyAddresses": [{"ip": "10.0.0.3"}],
                "ports": [
                    {"name": "http-autometric", "port": 9090},
                    {"name": "http", "port": 8012},
                ],
            }],
        }));
        assert_eq!(
            backends_of(&ep),
            vec![
                "10.0.0.1:8012".parse().unwrap(),
                "10.0.0.2:8012".parse().unwrap()
            ]
        );
        assert_eq!(
            revision_of(&ep),
            Some(RevisionKey::new("default", "hello-00001"))
        );
    }

    #[test]
    fn the_revision_label_names_the_revision() {
        let ep = endpoints(serde_json::json!({
            "metadata": {
                "name": "whatever", "namespace": "ns",
                "labels": {"serving.knative.dev/revision": "hello-00002"},
            },
        }));
        assert_eq!(
            revision_of(&ep),
            Some(RevisionKey::new("ns", "hello-00002"))
        );
        assert!(backends_of(&ep).is_empty());
    }
}
