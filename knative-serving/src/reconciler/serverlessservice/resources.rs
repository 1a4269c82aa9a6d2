//! The pure part of the ServerlessService reconciler: the private and public Kubernetes
//! Services of a ServerlessService and the public Endpoints, as Knative's
//! `pkg/reconciler/serverlessservice/resources` makes them.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::apis::ServerlessService;
use crate::apis::networking::ProtocolType;
use crate::apis::networking::v1alpha1::ServerlessServiceOperationMode;
use crate::reconciler::children::controller_ref;
use crate::reconciler::revision::resources::{
    AUTOSCALING_QUEUE_METRICS_PORT, QUEUE_ADMIN_PORT, QUEUE_HTTP_PORT, QUEUE_HTTP2_PORT,
    USER_QUEUE_METRICS_PORT,
};

/// The label telling a Revision's public Service (`Public`) from its private one (`Private`).
pub const SERVICE_TYPE_LABEL_KEY: &str = "networking.knative.dev/serviceType";
/// The suffix of a ServerlessService's private Service: `<sks>-private`.
pub const PRIVATE_SERVICE_SUFFIX: &str = "-private";
/// The name of the serving port of a Revision's Services for HTTP/1.
pub const PORT_NAME_HTTP1: &str = "http";
/// The name of the serving port of a Revision's Services for h2c.
pub const PORT_NAME_H2C: &str = "http2";
/// The port of a Revision's Services for HTTP/1 (and of the activator's Service).
pub const SERVICE_HTTP_PORT: i32 = 80;
/// The port of a Revision's Services for h2c.
pub const SERVICE_H2C_PORT: i32 = 81;
/// The name of the queue-proxy's autoscaling metrics port on the private Service.
pub const AUTOSCALING_METRICS_PORT_NAME: &str = "http-autometric";
/// The name of the queue-proxy's user metrics port on the private Service.
pub const USER_METRICS_PORT_NAME: &str = "http-usermetric";
/// The name of the queue-proxy's admin port on the private Service.
pub const QUEUE_ADMIN_PORT_NAME: &str = "http-queueadm";

/// `<sks>-private`: the Service balancing over the Revision's own pods.
pub fn private_service_name(sks: &ServerlessService) -> String {
    format!("{}{PRIVATE_SERVICE_SUFFIX}", sks.name_any())
}

/// `<sks>`: the Service (and Endpoints) on the request path, the pods' or the activator's.
pub fn public_service_name(sks: &ServerlessService) -> String {
    sks.name_any()
}

/// The serving port's name for the ServerlessService's protocol.
pub fn serving_port_name(protocol: ProtocolType) -> &'static str {
    match protocol {
        ProtocolType::Http1 => PORT_NAME_HTTP1,
        ProtocolType::H2c => PORT_NAME_H2C,
    }
}

fn serving_port(protocol: ProtocolType) -> ServicePort {
    let (port, target) = match protocol {
        ProtocolType::Http1 => (SERVICE_HTTP_PORT, QUEUE_HTTP_PORT),
        ProtocolType::H2c => (SERVICE_H2C_PORT, QUEUE_HTTP2_PORT),
    };
    ServicePort {
        name: Some(serving_port_name(protocol).to_owned()),
        protocol: Some("TCP".to_owned()),
        port,
        target_port: Some(IntOrString::Int(target)),
        ..ServicePort::default()
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        protocol: Some("TCP".to_owned()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        ..ServicePort::default()
    }
}

fn child_meta(sks: &ServerlessService, name: String, service_type: &str) -> ObjectMeta {
    let mut labels: BTreeMap<String, String> = sks.labels().clone();
    labels.insert(SERVICE_TYPE_LABEL_KEY.to_owned(), service_type.to_owned());
    ObjectMeta {
        name: Some(name),
        namespace: sks.namespace(),
        labels: Some(labels),
        annotations: (!sks.annotations().is_empty()).then(|| sks.annotations().clone()),
        owner_references: Some(vec![controller_ref(sks)]),
        ..ObjectMeta::default()
    }
}

/// The private Service: selects the pods of the scale target (`selector`) on the queue-proxy's
/// serving, metrics and admin ports.
pub fn make_private_service(
    sks: &ServerlessService,
    selector: BTreeMap<String, String>,
) -> Service {
    Service {
        metadata: child_meta(sks, private_service_name(sks), "Private"),
        spec: Some(ServiceSpec {
            ports: Some(vec![
                serving_port(sks.spec.protocol_type),
                port(
                    AUTOSCALING_METRICS_PORT_NAME,
                    AUTOSCALING_QUEUE_METRICS_PORT,
                ),
                port(USER_METRICS_PORT_NAME, USER_QUEUE_METRICS_PORT),
                port(QUEUE_ADMIN_PORT_NAME, QUEUE_ADMIN_PORT),
            ]),
            selector: Some(selector),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The public Service: no selector; its Endpoints are written by the reconciler.
pub fn make_public_service(sks: &ServerlessService) -> Service {
    Service {
        metadata: child_meta(sks, public_service_name(sks), "Public"),
        spec: Some(ServiceSpec {
            ports: Some(vec![serving_port(sks.spec.protocol_type)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Whether the fields the reconciler owns in `have` already say what `want` says (the server
/// fills in the rest: cluster IP, session affinity, defaults).
pub fn service_is_current(have: &Service, want: &Service) -> bool {
    let (Some(have_spec), Some(want_spec)) = (&have.spec, &want.spec) else {
        return false;
    };
    let ports = |s: &ServiceSpec| {
        s.ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone(),
                    p.port,
                    p.target_port.clone().map(|t| match t {
                        IntOrString::Int(n) => n.to_string(),
                        IntOrString::String(s) => s,
                    }),
                )
            })
            .collect::<Vec<_>>()
    };
    let selector = |s: &ServiceSpec| s.selector.clone().unwrap_or_default();
    ports(have_spec) == ports(want_spec)
        && selector(have_spec) == selector(want_spec)
        && contains_all(have.metadata.labels.as_ref(), want.metadata.labels.as_ref())
}

fn contains_all(
    have: Option<&BTreeMap<String, String>>,
    want: Option<&BTreeMap<String, String>>,
) -> bool {
    want.into_iter()
        .flatten()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// How many ready addresses `endpoints` lists.
pub fn ready_address_count(endpoints: Option<&Endpoints>) -> usize {
    endpoints
        .into_iter()
        .flat_map(|e| e.subsets.iter().flatten())
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum()
}

/// Where the public Endpoints take their addresses from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The Revision's ready pods (the private Endpoints).
    Pods,
    /// The activators.
    Activator,
}

/// Knative's choice: the pods in `Serve` mode once at least one is ready; the activator in
/// `Proxy` mode and while no pod is ready (so requests are buffered, not refused).
pub fn choose_source(mode: ServerlessServiceOperationMode, ready_pods: usize) -> Source {
    match mode {
        ServerlessServiceOperationMode::Serve if ready_pods > 0 => Source::Pods,
        _ => Source::Activator,
    }
}

/// Keeps only the serving port (by name) of each subset, dropping subsets without it, as
/// Knative's `filterSubsetPorts` does: the public Service has only that port.
pub fn filter_subset_ports(
    protocol: ProtocolType,
    subsets: &[EndpointSubset],
) -> Vec<EndpointSubset> {
    let name = serving_port_name(protocol);
    subsets
        .iter()
        .filter_map(|subset| {
            let ports: Vec<_> = subset
                .ports
                .iter()
                .flatten()
                .filter(|p| p.name.as_deref() == Some(name))
                .cloned()
                .collect();
            (!ports.is_empty()).then(|| EndpointSubset {
                ports: Some(ports),
                ..subset.clone()
            })
        })
        .collect()
}

/// `n` of the activators' ready addresses for `target`, chosen by rendezvous hashing so each
/// revision keeps the same activators while the set is stable, and revisions spread over all
/// of them; every address when `n` is 0 or at least their number.
pub fn subset_activators(
    subsets: &[EndpointSubset],
    target: &str,
    n: usize,
) -> Vec<EndpointSubset> {
    let total: usize = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    if n == 0 || n >= total {
        return subsets.to_vec();
    }
    let score = |ip: &str| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (target, ip).hash(&mut hasher);
        hasher.finish()
    };
    let mut ips: Vec<&str> = subsets
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| a.ip.as_str())
        .collect();
    ips.sort_by_key(|ip| std::cmp::Reverse(score(ip)));
    ips.truncate(n);
    subsets
        .iter()
        .filter_map(|s| {
            let kept: Vec<EndpointAddress> = s
                .addresses
                .iter()
                .flatten()
                .filter(|a| ips.contains(&a.ip.as_str()))
                .cloned()
                .collect();
            (!kept.is_empty()).then(|| EndpointSubset {
                addresses: Some(kept),
                not_ready_addresses: None,
                ..s.clone()
            })
        })
        .collect()
}

/// The public Endpoints `<sks>`: the chosen subsets under the public Service's name.
pub fn make_public_endpoints(sks: &ServerlessService, subsets: Vec<EndpointSubset>) -> Endpoints {
    Endpoints {
        metadata: child_meta(sks, public_service_name(sks), "Public"),
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::EndpointPort;

    use super::*;
    use crate::apis::ServerlessServiceSpec;

    fn sks(protocol: ProtocolType) -> ServerlessService {
        let mut sks = ServerlessService::new(
            "hello-00001",
            ServerlessServiceSpec {
                protocol_type: protocol,
                ..ServerlessServiceSpec::default()
            },
        );
        sks.metadata.namespace = Some("default".to_owned());
        sks.metadata.uid = Some("uid-1".to_owned());
        sks.metadata.labels = Some(BTreeMap::from([(
            "serving.knative.dev/revision".to_owned(),
            "hello-00001".to_owned(),
        )]));
        sks
    }

    fn subset(ips: &[&str], ports: &[(&str, i32)]) -> EndpointSubset {
        EndpointSubset {
            addresses: Some(
                ips.iter()
                    .map(|ip| EndpointAddress {
                        ip: (*ip).to_owned(),
                        ..EndpointAddress::default()
                    })
                    .collect(),
            ),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: Some((*name).to_owned()),
                        port: *port,
                        ..EndpointPort::default()
                    })
                    .collect(),
            ),
            ..EndpointSubset::default()
        }
    }

    #[test]
    fn the_private_service_selects_the_pods_on_the_queue_proxy_ports() {
        let selector = BTreeMap::from([("app".to_owned(), "hello".to_owned())]);
        let service = make_private_service(&sks(ProtocolType::Http1), selector.clone());
        assert_eq!(
            service.metadata.name.as_deref(),
            Some("hello-00001-private")
        );
        assert_eq!(service.labels()[SERVICE_TYPE_LABEL_KEY], "Private");
        assert_eq!(
            service.labels()["serving.knative.dev/revision"],
            "hello-00001"
        );
        let spec = service.spec.unwrap();
        assert_eq!(spec.selector, Some(selector));
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port, p.target_port.unwrap()))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("http".to_owned(), 80, IntOrString::Int(8012)),
                ("http-autometric".to_owned(), 9090, IntOrString::Int(9090)),
                ("http-usermetric".to_owned(), 9091, IntOrString::Int(9091)),
                ("http-queueadm".to_owned(), 8022, IntOrString::Int(8022)),
            ]
        );
    }

    #[test]
    fn an_h2c_revision_is_served_on_port_81_to_the_queue_proxy_8013() {
        let service = make_public_service(&sks(ProtocolType::H2c));
        let port = &service.spec.unwrap().ports.unwrap()[0];
        assert_eq!(port.name.as_deref(), Some("http2"));
        assert_eq!(port.port, 81);
        assert_eq!(port.target_port, Some(IntOrString::Int(8013)));
    }

    #[test]
    fn the_public_service_has_no_selector_and_is_controlled_by_the_sks() {
        let service = make_public_service(&sks(ProtocolType::Http1));
        assert_eq!(service.metadata.name.as_deref(), Some("hello-00001"));
        assert_eq!(service.labels()[SERVICE_TYPE_LABEL_KEY], "Public");
        assert!(service.spec.as_ref().unwrap().selector.is_none());
        assert!(crate::reconciler::children::is_controlled_by(
            &service.metadata,
            &sks(ProtocolType::Http1)
        ));
    }

    #[test]
    fn a_service_with_server_defaults_is_current_but_one_with_other_ports_is_not() {
        let want = make_private_service(&sks(ProtocolType::Http1), BTreeMap::new());
        let mut have = want.clone();
        have.spec.as_mut().unwrap().cluster_ip = Some("10.0.0.1".to_owned());
        have.spec.as_mut().unwrap().session_affinity = Some("None".to_owned());
        assert!(service_is_current(&have, &want));
        have.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 8080;
        assert!(!service_is_current(&have, &want));
    }

    #[test]
    fn serve_mode_uses_the_pods_only_once_one_is_ready() {
        assert_eq!(
            choose_source(ServerlessServiceOperationMode::Serve, 0),
            Source::Activator
        );
        assert_eq!(
            choose_source(ServerlessServiceOperationMode::Serve, 2),
            Source::Pods
        );
        assert_eq!(
            choose_source(ServerlessServiceOperationMode::Proxy, 2),
            Source::Activator
        );
    }

    #[test]
    fn only_the_serving_port_goes_to_the_public_endpoints() {
        let subsets = vec![
            subset(&["10.0.0.1"], &[("http", 8012), ("http-autometric", 9090)]),
            subset(&["10.0.0.2"], &[("http-queueadm", 8022)]),
        ];
        let filtered = filter_subset_ports(ProtocolType::Http1, &subsets);
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].ports.as_ref().unwrap().len(), 1);
        assert_eq!(filtered[0].ports.as_ref().unwrap()[0].port, 8012);
        assert_eq!(
            ready_address_count(Some(&Endpoints {
                subsets: Some(filtered),
                ..Endpoints::default()
            })),
            1
        );
    }

    #[test]
    fn a_subset_of_activators_is_stable_per_revision_and_of_the_asked_size() {
        let activators = vec![subset(
            &["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"],
            &[("http", 8012)],
        )];
        let two = subset_activators(&activators, "default/hello-00001", 2);
        assert_eq!(two[0].addresses.as_ref().unwrap().len(), 2);
        assert_eq!(
            two,
            subset_activators(&activators, "default/hello-00001", 2)
        );
        assert_eq!(subset_activators(&activators, "x", 0), activators);
        assert_eq!(subset_activators(&activators, "x", 9), activators);
        // Over many revisions, every activator gets some.
        let mut used = std::collections::BTreeSet::new();
        for i in 0..50 {
            for s in subset_activators(&activators, &format!("rev-{i}"), 1) {
                for a in s.addresses.unwrap() {
                    used.insert(a.ip);
                }
            }
        }
        assert_eq!(used.len(), 5);
    }
}
