//! The children of a Route, built purely from the Route, its resolved traffic and the
//! configuration (Knative's `pkg/reconciler/route/resources`): the Ingress and the placeholder
//! Kubernetes Services.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service as K8sService, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use knative_core::config::{Config, HttpProtocol, VISIBILITY_CLUSTER_LOCAL, VISIBILITY_LABEL_KEY};
use kube::ResourceExt;

use crate::apis::networking::v1alpha1::{
    HTTPIngressPath, HTTPIngressRuleValue, HttpOption, IngressBackend, IngressBackendSplit,
    IngressRule, IngressSpec, IngressVisibility, LoadBalancerStatus,
};
use crate::apis::networking::{INGRESS_CLASS_ANNOTATION_KEY, ProtocolType};
use crate::apis::serving::ROUTE_LABEL_KEY;
use crate::apis::{Ingress, Route};
use crate::reconciler::children::controller_ref;
use crate::traffic::rollout::{ConfigurationRollout, ROLLOUT_ANNOTATION_KEY, Rollout};
use crate::traffic::{self, DomainError, RevisionTarget, Visibility};

/// Label on an Ingress: the namespace of the Route that owns it.
pub const ROUTE_NAMESPACE_LABEL_KEY: &str = "serving.knative.dev/routeNamespace";
/// The header naming the Revision a request is routed to, added by the Ingress.
pub const REVISION_HEADER_NAME: &str = "Knative-Serving-Revision";
/// The header naming the namespace of that Revision, added by the Ingress.
pub const REVISION_NAMESPACE_HEADER_NAME: &str = "Knative-Serving-Namespace";
/// The annotation `kubectl apply` keeps its input in; never copied to children.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The name of the HTTP/2 (cleartext) port of Knative's Kubernetes Services.
const PORT_NAME_H2C: &str = "http2";
/// The name of the HTTP/1 port of Knative's Kubernetes Services.
const PORT_NAME_HTTP1: &str = "http";
/// The port Knative's Kubernetes Services serve HTTP/1 on (and HTTP/2 on 81).
const SERVICE_HTTP_PORT: i32 = 80;
const SERVICE_H2C_PORT: i32 = 81;

/// The Ingress of a Route with no gradual rollout: [`make_ingress_with_rollout`] without a
/// rollout state.
///
/// # Errors
/// When a host name cannot be made.
pub fn make_ingress(
    config: &Config,
    route: &Route,
    traffic: &traffic::Config,
    visibility: &Visibility,
) -> Result<Ingress, DomainError> {
    make_ingress_with_rollout(config, route, traffic, visibility, None)
}

/// The Ingress of a Route (Knative's `MakeIngressWithRollout`): one rule per traffic group and
/// visibility, each splitting over the Revisions' Kubernetes Services.
///
/// Every group gets a cluster-local rule (hosts `name.ns`, `name.ns.svc`,
/// `name.ns.svc.cluster.local`); groups that are not cluster-local also get an external rule
/// under the Route's domain. Each split adds the headers `Knative-Serving-Revision` and
/// `Knative-Serving-Namespace`; targets with 0% get no split.
///
/// With a `rollout`, a target that follows a Configuration under rollout is split over the
/// rollout's Revisions at their shares instead, and the state is kept in the Ingress'
/// [`ROLLOUT_ANNOTATION_KEY`] annotation for the next pass.
///
/// # Errors
/// When a host name cannot be made.
pub fn make_ingress_with_rollout(
    config: &Config,
    route: &Route,
    traffic: &traffic::Config,
    visibility: &Visibility,
    rollout: Option<&Rollout>,
) -> Result<Ingress, DomainError> {
    let namespace = route.namespace().unwrap_or_default();
    let mut rules = Vec::new();
    for (tag, targets) in &traffic.targets {
        let mut visibilities = vec![IngressVisibility::ClusterLocal];
        if visibility.get(tag) != Some(&IngressVisibility::ClusterLocal) {
            visibilities.push(IngressVisibility::ExternalIP);
        }
        for v in visibilities {
            rules.push(IngressRule {
                hosts: traffic::rule_hosts(config, &route.metadata, tag, v)?,
                visibility: Some(v),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        splits: splits(
                            &namespace,
                            targets,
                            rollout.map_or(&[], |r| r.rollouts_by_tag(tag)),
                        ),
                        ..HTTPIngressPath::default()
                    }],
                }),
            });
        }
    }
    let http_option = match config.network.http_protocol {
        HttpProtocol::Enabled => Some(HttpOption::Enabled),
        HttpProtocol::Redirected => Some(HttpOption::Redirected),
        HttpProtocol::Disabled => None,
    };

    let mut labels = route.labels().clone();
    labels.insert(ROUTE_LABEL_KEY.to_owned(), route.name_any());
    labels.insert(ROUTE_NAMESPACE_LABEL_KEY.to_owned(), namespace.clone());
    let mut annotations = BTreeMap::from([(
        INGRESS_CLASS_ANNOTATION_KEY.to_owned(),
        ingress_class(config, route),
    )]);
    if let Some(rollout) = rollout {
        annotations.insert(ROLLOUT_ANNOTATION_KEY.to_owned(), rollout.to_annotation());
    }
    annotations.extend(route.annotations().clone());
    annotations.remove(LAST_APPLIED_CONFIG_ANNOTATION);

    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(route.name_any()),
            namespace: Some(namespace),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(route)]),
            ..ObjectMeta::default()
        },
        spec: IngressSpec {
            tls: Vec::new(),
            rules,
            http_option,
        },
        status: None,
    })
}

/// The ingress class of a Route: its `networking.knative.dev/ingress.class` annotation, else
/// `config-network`'s `ingress-class`.
pub fn ingress_class(config: &Config, route: &Route) -> String {
    route
        .annotations()
        .get(INGRESS_CLASS_ANNOTATION_KEY)
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| config.network.ingress_class.clone())
}

/// The placeholder Kubernetes Service of traffic group `tag` (Knative's
/// `MakeK8sPlaceholderService`): named like the group's host (`<route>`, `<tag>-<route>`), of
/// type `ExternalName` pointing at the group's own host name until the Ingress has a load
/// balancer. It reserves the name in the namespace and makes the Route resolvable inside the
/// cluster.
///
/// # Errors
/// When a host name cannot be made.
pub fn make_placeholder_service(
    config: &Config,
    route: &Route,
    tag: &str,
) -> Result<K8sService, DomainError> {
    let hostname = traffic::hostname(&config.network, &route.name_any(), tag)?;
    let external_name = traffic::domain_name(config, &route.metadata, &hostname)?;
    Ok(K8sService {
        metadata: service_metadata(route, hostname),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".to_owned()),
            external_name: Some(external_name),
            session_affinity: Some("None".to_owned()),
            ports: Some(vec![h2c_port()]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The spec of a Route's Kubernetes Service once the Ingress has a load balancer (Knative's
/// `makeServiceSpec`): `ExternalName` to its internal domain, else to its domain; a
/// `ClusterIP` Service for a mesh-only load balancer. The private load balancer is used when
/// there is one (or when the Service is private). `None` while no load balancer is known, or
/// when it only has an IP (which this SDK does not program).
pub fn load_balancer_service_spec(ingress: &Ingress, private: bool) -> Option<ServiceSpec> {
    let status = ingress.status.as_ref()?;
    let balancer: &LoadBalancerStatus = if private || status.private_load_balancer.is_some() {
        status.private_load_balancer.as_ref()?
    } else {
        status.public_load_balancer.as_ref()?
    };
    let [lb] = balancer.ingress.as_slice() else {
        return None;
    };
    let external = |name: &str, affinity: bool| ServiceSpec {
        type_: Some("ExternalName".to_owned()),
        external_name: Some(name.to_owned()),
        session_affinity: affinity.then(|| "None".to_owned()),
        ports: Some(vec![h2c_port()]),
        ..ServiceSpec::default()
    };
    if let Some(domain) = lb.domain_internal.as_deref().filter(|d| !d.is_empty()) {
        Some(external(domain, true))
    } else if let Some(domain) = lb.domain.as_deref().filter(|d| !d.is_empty()) {
        Some(external(domain, false))
    } else if lb.mesh_only {
        Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME_HTTP1.to_owned()),
                port: SERVICE_HTTP_PORT,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        })
    } else {
        None
    }
}

/// Whether `existing` already has everything `desired` sets (the API server adds defaults,
/// such as a port's protocol, that must not count as a difference).
pub fn service_spec_covers(existing: &ServiceSpec, desired: &ServiceSpec) -> bool {
    let same_ports = match (&existing.ports, &desired.ports) {
        (_, None) => true,
        (None, Some(want)) => want.is_empty(),
        (Some(have), Some(want)) => {
            have.len() == want.len()
                && have.iter().zip(want).all(|(h, w)| {
                    h.name == w.name
                        && h.port == w.port
                        && (w.target_port.is_none() || h.target_port == w.target_port)
                })
        }
    };
    let covers = |have: &Option<String>, want: &Option<String>| want.is_none() || have == want;
    same_ports
        && covers(&existing.type_, &desired.type_)
        && covers(&existing.external_name, &desired.external_name)
        && covers(&existing.session_affinity, &desired.session_affinity)
        && covers(&existing.cluster_ip, &desired.cluster_ip)
}

/// Whether a Kubernetes Service is labelled cluster-local.
pub fn is_cluster_local_service(service: &K8sService) -> bool {
    service
        .labels()
        .get(VISIBILITY_LABEL_KEY)
        .is_some_and(|v| v == VISIBILITY_CLUSTER_LOCAL)
}

/// The metadata of a Route's Kubernetes Services: the Route's labels but visibility (a tag's
/// Service may be made cluster-local on its own), the route label, the Route's annotations
/// and a controller reference to the Route.
fn service_metadata(route: &Route, name: String) -> ObjectMeta {
    let mut labels = route.labels().clone();
    labels.remove(VISIBILITY_LABEL_KEY);
    labels.insert(ROUTE_LABEL_KEY.to_owned(), route.name_any());
    let annotations = route.annotations().clone();
    ObjectMeta {
        name: Some(name),
        namespace: route.namespace(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![controller_ref(route)]),
        ..ObjectMeta::default()
    }
}

/// The splits of one traffic group; `rollouts` are the group's Configuration rollouts.
fn splits(
    namespace: &str,
    targets: &[RevisionTarget],
    rollouts: &[ConfigurationRollout],
) -> Vec<IngressBackendSplit> {
    let mut splits = Vec::with_capacity(targets.len());
    for t in targets.iter().filter(|t| t.percent() != 0) {
        let rolling = rollouts.iter().find(|c| {
            t.latest_revision == Some(true)
                && t.configuration_name.as_deref() == Some(c.configuration_name.as_str())
                && !c.done()
        });
        match rolling {
            Some(c) => splits.extend(
                c.revisions
                    .iter()
                    .map(|r| split(namespace, &r.revision_name, r.percent, t.protocol)),
            ),
            None => splits.push(split(namespace, &t.revision_name, t.percent(), t.protocol)),
        }
    }
    splits
}

fn split(
    namespace: &str,
    revision: &str,
    percent: i64,
    protocol: ProtocolType,
) -> IngressBackendSplit {
    IngressBackendSplit {
        backend: IngressBackend {
            service_namespace: namespace.to_owned(),
            service_name: revision.to_owned(),
            service_port: IntOrString::Int(match protocol {
                ProtocolType::H2c => SERVICE_H2C_PORT,
                ProtocolType::Http1 => SERVICE_HTTP_PORT,
            }),
        },
        percent: Some(i32::try_from(percent).unwrap_or(100)),
        append_headers: BTreeMap::from([
            (REVISION_HEADER_NAME.to_owned(), revision.to_owned()),
            (
                REVISION_NAMESPACE_HEADER_NAME.to_owned(),
                namespace.to_owned(),
            ),
        ]),
    }
}

fn h2c_port() -> ServicePort {
    ServicePort {
        name: Some(PORT_NAME_H2C.to_owned()),
        port: SERVICE_HTTP_PORT,
        target_port: Some(IntOrString::Int(SERVICE_HTTP_PORT)),
        ..ServicePort::default()
    }
}
