//! The gateway on a cluster: Ingresses programmed into the [`Gateway`] with their status
//! written back ([`IngressReconciler`], on knative-core's driver), and backends resolved
//! through Services and Endpoints ([`ClusterResolver`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use knative_core::apis::KnativeObject;
use knative_core::reconciler::{Context, ReconcileError, Reconciler};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::{CompiledIngress, Gateway, Resolver, RouteTable, pick};
use crate::apis::networking::INGRESS_CLASS_ANNOTATION_KEY;
use crate::apis::networking::v1alpha1::{
    INGRESS_CONDITION_LOAD_BALANCER_READY, INGRESS_CONDITION_NETWORK_CONFIGURED, Ingress,
    IngressBackend, LoadBalancerIngressStatus, LoadBalancerStatus,
};

/// The condition reason when an Ingress cannot be programmed.
pub const INGRESS_INVALID_REASON: &str = "IngressInvalid";

/// Programs the [`Gateway`] with the cluster's Ingresses of one ingress class and reports, as
/// Knative's ingress implementations do, `NetworkConfigured` and `LoadBalancerReady` (with the
/// gateway's address as the public and private load balancer) once an Ingress is served.
///
/// Run it with knative-core's `Driver`; it uses Knative's finalizer
/// (`ingresses.networking.internal.knative.dev`) so that a deleted Ingress stops being served.
#[derive(Debug)]
pub struct IngressReconciler {
    gateway: Arc<Gateway>,
    class: String,
    public_domain: String,
    private_domain: String,
    ingresses: Mutex<BTreeMap<String, CompiledIngress>>,
}

impl IngressReconciler {
    /// A reconciler for Ingresses of `class` (and those with no class annotation), reporting
    /// `public_domain` and `private_domain` as where the gateway is reached.
    pub fn new(
        gateway: Arc<Gateway>,
        class: impl Into<String>,
        public_domain: impl Into<String>,
        private_domain: impl Into<String>,
    ) -> Self {
        Self {
            gateway,
            class: class.into(),
            public_domain: public_domain.into(),
            private_domain: private_domain.into(),
            ingresses: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether `ingress` is this gateway's to serve.
    pub fn owns(&self, ingress: &Ingress) -> bool {
        ingress
            .annotations()
            .get(INGRESS_CLASS_ANNOTATION_KEY)
            .is_none_or(|class| *class == self.class)
    }

    /// Updates the set of Ingresses served and swaps the gateway's table.
    fn program(&self, key: String, compiled: Option<CompiledIngress>) {
        let mut ingresses = self.ingresses.lock().unwrap_or_else(|p| p.into_inner());
        match compiled {
            Some(compiled) => ingresses.insert(key, compiled),
            None => ingresses.remove(&key),
        };
        self.gateway.set_routes(RouteTable::new(ingresses.values()));
    }
}

fn key_of(ingress: &Ingress) -> String {
    format!(
        "{}/{}",
        ingress.namespace().unwrap_or_default(),
        ingress.name_any()
    )
}

fn load_balancer(domain: &str) -> Option<LoadBalancerStatus> {
    Some(LoadBalancerStatus {
        ingress: vec![LoadBalancerIngressStatus {
            domain_internal: Some(domain.to_owned()),
            ..LoadBalancerIngressStatus::default()
        }],
    })
}

#[async_trait]
impl Reconciler<Ingress> for IngressReconciler {
    async fn reconcile_kind(
        &self,
        ingress: &mut Ingress,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        if !self.owns(ingress) {
            return Ok(());
        }
        let key = key_of(ingress);
        match CompiledIngress::compile(ingress) {
            Ok(compiled) => {
                self.program(key, Some(compiled));
                let status = ingress.status.get_or_insert_with(Default::default);
                status.public_load_balancer = load_balancer(&self.public_domain);
                status.private_load_balancer = load_balancer(&self.private_domain);
                let mut conditions = ingress.manage_conditions(ctx.now());
                conditions.mark_true(INGRESS_CONDITION_NETWORK_CONFIGURED);
                conditions.mark_true(INGRESS_CONDITION_LOAD_BALANCER_READY);
            }
            Err(message) => {
                self.program(key, None);
                ingress.manage_conditions(ctx.now()).mark_false(
                    INGRESS_CONDITION_NETWORK_CONFIGURED,
                    INGRESS_INVALID_REASON,
                    &message,
                );
            }
        }
        Ok(())
    }

    async fn finalize_kind(
        &self,
        ingress: &mut Ingress,
        _ctx: &Context,
    ) -> Result<(), ReconcileError> {
        self.program(key_of(ingress), None);
        Ok(())
    }

    fn uses_finalizer(&self) -> bool {
        true
    }
}

/// Resolves a split's Service port to the ready addresses in the Service's Endpoints, from
/// caches of the cluster's Services and Endpoints.
#[derive(Debug)]
pub struct ClusterResolver {
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    next: AtomicUsize,
}

impl ClusterResolver {
    /// Starts watching Services and Endpoints (all namespaces, or `namespace`); the returned
    /// future drives the watches and must be polled (spawn it).
    pub fn start(
        client: Client,
        namespace: Option<&str>,
    ) -> (
        Arc<Self>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (services, services_writer) = reflector::store::<Service>();
        let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
        let (service_api, endpoints_api): (Api<Service>, Api<Endpoints>) = match namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
            None => (Api::all(client.clone()), Api::all(client)),
        };
        let watch_services = reflector::reflector(
            services_writer,
            watcher::watcher(service_api, watcher::Config::default()).default_backoff(),
        )
        .for_each(|_| futures::future::ready(()));
        let watch_endpoints = reflector::reflector(
            endpoints_writer,
            watcher::watcher(endpoints_api, watcher::Config::default()).default_backoff(),
        )
        .for_each(|_| futures::future::ready(()));
        let resolver = Arc::new(Self {
            services,
            endpoints,
            next: AtomicUsize::new(0),
        });
        (resolver, async move {
            futures::join!(watch_services, watch_endpoints);
        })
    }

    /// Waits until both caches have listed once.
    pub async fn wait_until_ready(&self) {
        let _ = self.services.wait_until_ready().await;
        let _ = self.endpoints.wait_until_ready().await;
    }

    /// Every ready endpoint of `backend`.
    pub fn endpoints_of(&self, backend: &IngressBackend) -> Vec<SocketAddr> {
        let (name, namespace) = (&backend.service_name, &backend.service_namespace);
        let Some(service) = self.services.get(&ObjectRef::new(name).within(namespace)) else {
            return Vec::new();
        };
        let Some(endpoints) = self.endpoints.get(&ObjectRef::new(name).within(namespace)) else {
            return Vec::new();
        };
        endpoints_for_port(&service, &endpoints, &backend.service_port)
    }
}

impl Resolver for ClusterResolver {
    fn resolve(&self, backend: &IngressBackend) -> Option<SocketAddr> {
        pick(&self.endpoints_of(backend), &self.next)
    }
}

/// The ready addresses of `endpoints` on the target of `service`'s port `port` (by number or
/// name), matched as kube-proxy does: by the port's name.
pub fn endpoints_for_port(
    service: &Service,
    endpoints: &Endpoints,
    port: &IntOrString,
) -> Vec<SocketAddr> {
    let ports = service.spec.iter().flat_map(|s| s.ports.iter().flatten());
    let service_port = ports.clone().find(|p| match port {
        IntOrString::Int(n) => p.port == *n,
        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
    });
    let Some(service_port) = service_port else {
        return Vec::new();
    };
    let wanted = service_port.name.clone().unwrap_or_default();
    let mut found = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let Some(target) = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == wanted)
            .and_then(|p| u16::try_from(p.port).ok())
        else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<IpAddr>() {
                found.push(SocketAddr::new(ip, target));
            }
        }
    }
    found
}
