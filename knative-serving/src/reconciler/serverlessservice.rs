//! The ServerlessService reconciler: a Revision's Kubernetes Services, pointed at its pods or at
//! the activator, as Knative's `pkg/reconciler/serverlessservice` does.
//!
//! For a ServerlessService `<sks>` (made by the PodAutoscaler reconciler, one per Revision):
//!
//! 1. the **private Service** `<sks>-private` selects the pods of the scale target (the
//!    Revision's Deployment, by its `spec.selector.matchLabels`) on the queue-proxy's ports:
//!    `http` 80 → 8012 (`http2` 81 → 8013 for h2c), `http-autometric` 9090, `http-usermetric`
//!    9091 and `http-queueadm` 8022; a Kubernetes endpoints controller fills its Endpoints;
//! 2. the **public Service** `<sks>` has only the serving port and no selector;
//! 3. the **public Endpoints** `<sks>` are written here: a copy of the private Endpoints in
//!    `Serve` mode once a pod is ready, else the activator's (`activator-service` in the system
//!    namespace, `numActivators` of them chosen by consistent hashing), so that a Revision at
//!    zero, or one the autoscaler puts behind the activator, has its requests buffered;
//! 4. **status**: `serviceName` `<sks>`, `privateServiceName` `<sks>-private`,
//!    `EndpointsPopulated` (and so `Ready`) True when the public Endpoints list a ready address,
//!    Unknown `NoHealthyBackends` otherwise; `ActivatorEndpointsPopulated` True while the
//!    activator is on the path.
//!
//! A Service or Endpoints of those names that the ServerlessService does not control is refused
//! (`NotOwned`).
//!
//! ```no_run
//! use knative_core::reconciler::{Caches, Driver};
//! use knative_serving::reconciler::serverlessservice::ServerlessServiceReconciler;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let reconciler = ServerlessServiceReconciler::new();
//! let caches = Caches::new(client.clone(), None);
//! let watches = reconciler.watches(&caches);
//! Driver::new(client, reconciler)
//!     .with_caches(caches)
//!     .run_with(watches)
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod resources;

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::jiff::Timestamp;
use knative_core::apis::KnativeObject;
use knative_core::reconciler::{Caches, Compact, Context, Lister, ReconcileError, Reconciler};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::apis::ServerlessService;
use crate::apis::networking::v1alpha1::{
    SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED,
    SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED, ServerlessServiceOperationMode,
};
pub use crate::reconciler::children::REASON_NOT_OWNED;
use crate::reconciler::children::{api_failure, is_controlled_by, refuse_not_owned};
use resources::{
    PRIVATE_SERVICE_SUFFIX, SERVICE_TYPE_LABEL_KEY, Source, choose_source, filter_subset_ports,
    make_private_service, make_public_endpoints, make_public_service, private_service_name,
    public_service_name, ready_address_count, service_is_current, subset_activators,
};

/// The namespace of the activator's Service unless told otherwise.
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "knative-serving";
/// The activator's Service (and Endpoints) unless told otherwise.
pub const DEFAULT_ACTIVATOR_SERVICE: &str = "activator-service";
/// The reason of public Endpoints without a ready address.
pub const REASON_NO_HEALTHY_BACKENDS: &str = "NoHealthyBackends";

/// Reconciles ServerlessServices into their private and public Services and public Endpoints.
#[derive(Clone, Debug)]
pub struct ServerlessServiceReconciler {
    activator_namespace: String,
    activator_service: String,
}

impl Default for ServerlessServiceReconciler {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerlessServiceReconciler {
    /// A reconciler taking the activator from `knative-serving/activator-service`.
    pub fn new() -> Self {
        Self {
            activator_namespace: DEFAULT_SYSTEM_NAMESPACE.to_owned(),
            activator_service: DEFAULT_ACTIVATOR_SERVICE.to_owned(),
        }
    }

    /// Takes the activator's addresses from the Endpoints `name` in `namespace`.
    pub fn with_activator(self, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            activator_namespace: namespace.into(),
            activator_service: name.into(),
        }
    }

    /// What makes a ServerlessService controller react: the Services and Endpoints it owns,
    /// the private Endpoints the endpoints controller writes (`<sks>-private`, labelled as the
    /// private Service is: `networking.knative.dev/serviceType`), and every change
    /// of the activator's Endpoints (which reconciles all ServerlessServices). Services and
    /// Endpoints come from the shared informers of `caches`; the activator's Endpoints are
    /// watched on their own, wherever they are.
    pub fn watches(
        &self,
        caches: &Caches,
    ) -> impl Fn(Controller<Compact<ServerlessService>>) -> Controller<Compact<ServerlessService>> + use<>
    {
        let activator: Api<Endpoints> =
            Api::namespaced(caches.client().clone(), &self.activator_namespace);
        let activator_name = self.activator_service.clone();
        let caches = caches.clone();
        move |controller| {
            let activator_changes = watcher::watcher(
                activator.clone(),
                watcher::Config::default().fields(&format!("metadata.name={activator_name}")),
            )
            .filter_map(|event| {
                futures::future::ready(match event {
                    Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => Some(()),
                    Ok(watcher::Event::InitDone) => Some(()),
                    _ => None,
                })
            });
            controller
                .owns_shared_stream(caches.changes::<Service>())
                .watches_shared_stream(
                    caches.changes::<Endpoints>(),
                    |e: std::sync::Arc<Compact<Endpoints>>| {
                        // Kubernetes' endpoints controller copies the Service's labels.
                        e.labels()
                            .contains_key(SERVICE_TYPE_LABEL_KEY)
                            .then(|| sks_of_endpoints(&*e))
                            .flatten()
                    },
                )
                .reconcile_all_on(activator_changes)
        }
    }
}

/// The ServerlessService an Endpoints object concerns: its controller (public Endpoints) or
/// the name before `-private` (private Endpoints, written by the endpoints controller).
fn sks_of_endpoints(endpoints: &impl ResourceExt) -> Option<ObjectRef<Compact<ServerlessService>>> {
    let namespace = endpoints.namespace()?;
    let owner = endpoints
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == ServerlessService::kind(&()))
        .map(|o| o.name.clone());
    let name = owner.or_else(|| {
        endpoints
            .name_any()
            .strip_suffix(PRIVATE_SERVICE_SUFFIX)
            .map(str::to_owned)
    })?;
    Some(ObjectRef::new(&name).within(&namespace))
}

#[async_trait]
impl Reconciler<ServerlessService> for ServerlessServiceReconciler {
    async fn reconcile_kind(
        &self,
        sks: &mut ServerlessService,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let now = ctx.now();
        let client = ctx.client();
        let namespace = sks.namespace().unwrap_or_default();

        let selector = scale_target_selector(ctx, sks).await?;
        let services = ctx.lister::<Service>(&namespace);
        let private = make_private_service(sks, selector);
        reconcile_service(&services, sks, private, now).await?;
        let public = make_public_service(sks);
        reconcile_service(&services, sks, public, now).await?;

        let endpoints = ctx.lister::<Endpoints>(&namespace);
        let private_endpoints = endpoints
            .get(&private_service_name(sks))
            .await
            .map_err(|e| api_failure("get", "Endpoints", &private_service_name(sks), e))?;
        let mode = sks
            .spec
            .mode
            .unwrap_or(ServerlessServiceOperationMode::Serve);
        let ready_pods = ready_address_count(private_endpoints.as_ref());
        let source = choose_source(mode, ready_pods);
        let subsets = match source {
            Source::Pods => private_endpoints
                .and_then(|e| e.subsets)
                .unwrap_or_default(),
            Source::Activator => {
                let activator =
                    Api::<Endpoints>::namespaced(client.clone(), &self.activator_namespace)
                        .get_opt(&self.activator_service)
                        .await
                        .map_err(|e| api_failure("get", "Endpoints", &self.activator_service, e))?;
                let n = usize::try_from(sks.spec.num_activators.unwrap_or(0)).unwrap_or(0);
                subset_activators(
                    &activator.and_then(|e| e.subsets).unwrap_or_default(),
                    &format!("{namespace}/{}", sks.name_any()),
                    n,
                )
            }
        };
        let want =
            make_public_endpoints(sks, filter_subset_ports(sks.spec.protocol_type, &subsets));
        let written = reconcile_endpoints(&endpoints, sks, want, now).await?;

        let (public_name, private_name) = (public_service_name(sks), private_service_name(sks));
        let status = sks.status.get_or_insert_with(Default::default);
        status.service_name = Some(public_name);
        status.private_service_name = Some(private_name);
        let ready = ready_address_count(Some(&written));
        let mut conditions = sks.manage_conditions(now);
        match source {
            Source::Activator => conditions.mark_true_with_reason(
                SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED,
                "ActivatorEndpointsPopulated",
                "Revision is backed by Activator",
            ),
            Source::Pods => conditions.mark_false(
                SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED,
                "ActivatorEndpointsPopulated",
                "Revision is backed by pods",
            ),
        }
        if ready > 0 {
            conditions.mark_true(SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED);
        } else {
            conditions.mark_unknown(
                SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED,
                REASON_NO_HEALTHY_BACKENDS,
                "K8s Service is not ready",
            );
        }
        tracing::debug!(sks = %sks.name_any(), ?mode, ?source, ready_pods, ready, "reconciled");
        Ok(())
    }
}

/// The pod selector of the ServerlessService's scale target (`spec.selector.matchLabels` of a
/// Deployment or any resource shaped like one).
async fn scale_target_selector(
    ctx: &Context,
    sks: &ServerlessService,
) -> Result<BTreeMap<String, String>, ReconcileError> {
    let client = ctx.client();
    let target = &sks.spec.object_ref;
    let name = target.name.clone().unwrap_or_default();
    let namespace = sks.namespace().unwrap_or_default();
    let api_version = target.api_version.as_deref().unwrap_or("apps/v1");
    let kind = target.kind.as_deref().unwrap_or("Deployment");
    let not_found = || ReconcileError::transient(format!("scale target {kind} {name:?} not found"));
    let selector = if api_version == "apps/v1" && kind == "Deployment" {
        let deployment = ctx
            .lister::<Deployment>(&namespace)
            .get(&name)
            .await
            .map_err(|e| api_failure("get", "scale target", &name, e))?
            .ok_or_else(not_found)?;
        deployment
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default()
    } else {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let object = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource)
            .get_opt(&name)
            .await
            .map_err(|e| api_failure("get", "scale target", &name, e))?
            .ok_or_else(not_found)?;
        serde_json::from_value(object.data["spec"]["selector"]["matchLabels"].clone())
            .unwrap_or_default()
    };
    if selector.is_empty() {
        return Err(ReconcileError::permanent(
            "InvalidScaleTarget",
            format!("scale target {kind} {name:?} has no spec.selector.matchLabels"),
        ));
    }
    Ok(selector)
}

/// Creates `want`, or puts the fields we own back when they differ.
async fn reconcile_service(
    services: &Lister<Service>,
    sks: &mut ServerlessService,
    want: Service,
    now: Timestamp,
) -> Result<Service, ReconcileError> {
    let name = want.name_any();
    let api = services.api();
    match services
        .get(&name)
        .await
        .map_err(|e| api_failure("get", "Service", &name, e))?
    {
        None => api
            .create(&PostParams::default(), &want)
            .await
            .map_err(|e| api_failure("create", "Service", &name, e)),
        Some(have) if !is_controlled_by(&have.metadata, sks) => Err(refuse_not_owned(
            sks,
            SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED,
            "Service",
            &name,
            now,
        )),
        Some(have) if service_is_current(&have, &want) => Ok(have),
        Some(mut have) => {
            let spec = have.spec.get_or_insert_with(Default::default);
            let want_spec = want.spec.unwrap_or_default();
            spec.ports = want_spec.ports;
            spec.selector = want_spec.selector;
            have.metadata
                .labels
                .get_or_insert_with(Default::default)
                .extend(want.metadata.labels.unwrap_or_default());
            api.replace(&name, &PostParams::default(), &have)
                .await
                .map_err(|e| api_failure("update", "Service", &name, e))
        }
    }
}

/// Creates the public Endpoints, or replaces their subsets when they differ.
async fn reconcile_endpoints(
    endpoints: &Lister<Endpoints>,
    sks: &mut ServerlessService,
    want: Endpoints,
    now: Timestamp,
) -> Result<Endpoints, ReconcileError> {
    let name = want.name_any();
    let api = endpoints.api();
    match endpoints
        .get(&name)
        .await
        .map_err(|e| api_failure("get", "Endpoints", &name, e))?
    {
        None => api
            .create(&PostParams::default(), &want)
            .await
            .map_err(|e| api_failure("create", "Endpoints", &name, e)),
        Some(have) if !is_controlled_by(&have.metadata, sks) => Err(refuse_not_owned(
            sks,
            SERVERLESS_SERVICE_CONDITION_ENDPOINTS_POPULATED,
            "Endpoints",
            &name,
            now,
        )),
        Some(have) if normalized(&have) == normalized(&want) => Ok(have),
        Some(mut have) => {
            have.subsets = want.subsets;
            api.replace(&name, &PostParams::default(), &have)
                .await
                .map_err(|e| api_failure("update", "Endpoints", &name, e))
        }
    }
}

/// Endpoints' subsets as a comparable value (empty and absent lists alike).
fn normalized(endpoints: &Endpoints) -> serde_json::Value {
    let subsets = endpoints.subsets.clone().unwrap_or_default();
    let mut value = serde_json::to_value(subsets).unwrap_or_default();
    strip_empty(&mut value);
    value
}

fn strip_empty(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
            map.values_mut().for_each(strip_empty);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_empty),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(json: serde_json::Value) -> Endpoints {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn private_endpoints_map_to_their_serverless_service() {
        let e = endpoints(serde_json::json!({
            "metadata": {"name": "hello-00001-private", "namespace": "default"}
        }));
        assert_eq!(
            sks_of_endpoints(&e),
            Some(ObjectRef::new("hello-00001").within("default"))
        );
    }

    #[test]
    fn public_endpoints_map_to_their_controller() {
        let e = endpoints(serde_json::json!({
            "metadata": {"name": "hello-00001", "namespace": "default", "ownerReferences": [{
                "apiVersion": "networking.internal.knative.dev/v1alpha1",
                "kind": "ServerlessService", "name": "hello-00001", "uid": "u", "controller": true
            }]}
        }));
        assert_eq!(
            sks_of_endpoints(&e),
            Some(ObjectRef::new("hello-00001").within("default"))
        );
    }

    #[test]
    fn unrelated_endpoints_map_to_nothing() {
        let e = endpoints(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default"}
        }));
        assert_eq!(sks_of_endpoints(&e), None);
    }

    #[test]
    fn endpoints_differing_only_in_empty_lists_are_equal() {
        let a = endpoints(
            serde_json::json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": []}]}),
        );
        let b = endpoints(serde_json::json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}));
        let c = endpoints(serde_json::json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}));
        assert_eq!(normalized(&a), normalized(&b));
        assert_ne!(normalized(&a), normalized(&c));
    }
}
