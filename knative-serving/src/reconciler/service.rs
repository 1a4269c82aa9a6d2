//! The Service reconciler: a Service is a Configuration and a Route of its name, managed as one
//! (Knative's `pkg/reconciler/service`).
//!
//! Each pass creates or updates the Configuration (the Service's template) and the Route (the
//! Service's traffic, 100% to the latest ready Revision by default), both controlled by the
//! Service and labelled `serving.knative.dev/service`, and reflects their status:
//! `latestCreatedRevisionName`, `latestReadyRevisionName`, `url`, `address`, `traffic`, and
//! the conditions `ConfigurationsReady` and `RoutesReady` from their `Ready`; the Service is
//! `Ready` when both are. A child's status only counts once it has observed the child's latest
//! generation (`OutOfDate` until then), and `RoutesReady` waits until the Route's traffic is
//! what the Service asks for (`TrafficNotMigrated`).
//!
//! A Configuration or Route of the Service's name that the Service does not control is never
//! taken over: the matching condition turns False with reason `NotOwned` and the Service is
//! not retried until it changes.
//!
//! ```no_run
//! use knative_core::reconciler::{Caches, Driver};
//! use knative_serving::reconciler::service::ServiceReconciler;
//!
//! # async fn run(client: kube::Client) {
//! // The process's shared informers, in all namespaces.
//! let caches = Caches::new(client.clone(), None);
//! let watches = ServiceReconciler::watches(&caches);
//! Driver::new(client, ServiceReconciler::new())
//!     .with_caches(caches)
//!     .run_with(watches)
//!     .await
//!     .unwrap();
//! # }
//! ```

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use knative_core::apis::{
    CONDITION_READY, ConditionManager, ConditionStatus, KnativeObject, Status,
};
use knative_core::reconciler::cache::Cacheable;
use knative_core::reconciler::{Caches, Compact, Context, Lister, ReconcileError, Reconciler};
use kube::ResourceExt;
use kube::api::PostParams;
use kube::runtime::Controller;
use kube::runtime::events::EventType;
use serde::Serialize;

use crate::apis::serving::v1::{
    SERVICE_CONDITION_CONFIGURATIONS_READY, SERVICE_CONDITION_ROUTES_READY,
};
use crate::apis::serving::{
    CONFIGURATION_GENERATION_LABEL_KEY, ROUTES_ANNOTATION_KEY, SERVICE_LABEL_KEY,
};
use crate::apis::{Configuration, Revision, Route, RouteSpec, Service, TrafficTarget};
use crate::reconciler::children::{controller_ref, is_controlled_by};
use crate::reconciler::labeler;
use crate::reconciler::route::resources::LAST_APPLIED_CONFIG_ANNOTATION;

/// `RoutesReady`'s message while the Route's traffic is not yet what the Service asks for.
pub const TRAFFIC_NOT_MIGRATED_MESSAGE: &str =
    "Traffic is not yet migrated to the latest revision.";

/// Reconciles Services into a Configuration and a Route. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceReconciler;

impl ServiceReconciler {
    /// A Service reconciler.
    pub fn new() -> Self {
        Self
    }

    /// What the controller should watch besides Services: the Configurations and Routes they
    /// control, from the shared informers of `caches`, so that their status reaches the
    /// Service at once. Pass it to `Driver::run_with`.
    pub fn watches(
        caches: &Caches,
    ) -> impl Fn(Controller<Compact<Service>>) -> Controller<Compact<Service>> + use<> {
        let caches = caches.clone();
        move |controller| {
            controller
                .owns_shared_stream(caches.changes::<Configuration>())
                .owns_shared_stream(caches.changes::<Route>())
        }
    }
}

#[async_trait]
impl Reconciler<Service> for ServiceReconciler {
    async fn reconcile_kind(
        &self,
        service: &mut Service,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = service.namespace().unwrap_or_default();
        let desired = make_configuration(service);
        let configs = ctx.lister::<Configuration>(&namespace);
        let config = reconcile_child(
            service,
            ctx,
            &configs,
            desired,
            SERVICE_CONDITION_CONFIGURATIONS_READY,
            |c| &c.spec,
            keep_routes_annotation,
        )
        .await?;

        if config.metadata.generation
            != observed_generation(config.status.as_ref().map(|s| &s.status))
        {
            // The Configuration's conditions describe an older spec.
            service.manage_conditions(ctx.now()).mark_unknown(
                SERVICE_CONDITION_CONFIGURATIONS_READY,
                "OutOfDate",
                "The Configuration is still working to reflect the latest desired specification.",
            );
            // With a chosen Revision name, the Route must wait for that Revision.
            if template_name(&config).is_some() {
                return Ok(());
            }
        } else {
            propagate_configuration_status(service, ctx, &config);
        }

        if let Some(name) = template_name(&config)
            && let Some(rev) = ctx.lister::<Revision>(&namespace).get(name).await?
            && name_taken(&config, &rev)
        {
            service.manage_conditions(ctx.now()).mark_false(
                SERVICE_CONDITION_ROUTES_READY,
                "RevisionNameTaken",
                &format!(
                    "The revision name {name:?} is taken by a conflicting Revision, so traffic will not be migrated"
                ),
            );
            return Ok(());
        }

        let desired = make_route(service);
        let routes = ctx.lister::<Route>(&namespace);
        let route = reconcile_child(
            service,
            ctx,
            &routes,
            desired,
            SERVICE_CONDITION_ROUTES_READY,
            |r| &r.spec,
            |_, _| {},
        )
        .await?;

        if route.metadata.generation
            != observed_generation(route.status.as_ref().map(|s| &s.status))
        {
            service.manage_conditions(ctx.now()).mark_unknown(
                SERVICE_CONDITION_ROUTES_READY,
                "OutOfDate",
                "The Route is still working to reflect the latest desired specification.",
            );
        } else {
            propagate_route_status(service, ctx, &route);
        }
        check_routes_not_ready(service, ctx, &config, &route);
        Ok(())
    }
}

/// The Configuration a Service controls (Knative's `MakeConfiguration`): the Service's name,
/// labels (plus `serving.knative.dev/service`) and annotations (but kubectl's
/// last-applied-configuration), and its template.
pub fn make_configuration(service: &Service) -> Configuration {
    let mut config = Configuration {
        metadata: child_metadata(service),
        spec: service.spec.configuration.clone(),
        status: None,
    };
    // The Service's Route uses it from the start (Knative's `MakeConfigurationFromExisting`).
    config
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ROUTES_ANNOTATION_KEY.to_owned(), service.name_any());
    config
}

/// Knative's `MakeConfigurationFromExisting`: the labeler's `serving.knative.dev/routes` on the
/// existing Configuration is kept (with the Service's own Route in it), so that the Service and
/// the labeler do not undo each other's writes forever.
fn keep_routes_annotation(existing: &Configuration, desired: &mut Configuration) {
    let mut routes = labeler::routes_of(&existing.metadata);
    routes.extend(labeler::routes_of(&desired.metadata));
    desired
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            ROUTES_ANNOTATION_KEY.to_owned(),
            routes.into_iter().collect::<Vec<_>>().join(","),
        );
}

/// The Route a Service controls (Knative's `MakeRoute`): as [`make_configuration`]'s metadata,
/// and the Service's traffic — 100% to the latest Revision when it has none, every target
/// defaulted, and targets that name no Revision following the Service's Configuration.
pub fn make_route(service: &Service) -> Route {
    let mut traffic = service.spec.route.traffic.clone();
    if traffic.is_empty() {
        traffic.push(TrafficTarget {
            percent: Some(100),
            latest_revision: Some(true),
            ..TrafficTarget::default()
        });
    }
    for target in &mut traffic {
        target.set_defaults();
        if non_empty(&target.revision_name).is_none() {
            target.configuration_name = Some(service.name_any());
        }
    }
    Route {
        metadata: child_metadata(service),
        spec: RouteSpec { traffic },
        status: None,
    }
}

/// Gets the child of the Service's name and creates it when missing, refuses it when the
/// Service does not control it (`condition` False, `NotOwned`), and updates its spec, labels
/// and annotations when they differ from `desired`.
async fn reconcile_child<K, S>(
    service: &mut Service,
    ctx: &Context,
    children: &Lister<K>,
    desired: K,
    condition: &str,
    spec: impl Fn(&K) -> &S,
    from_existing: impl Fn(&K, &mut K),
) -> Result<K, ReconcileError>
where
    K: Cacheable + Serialize,
    S: PartialEq,
{
    let kind = K::kind(&());
    let name = desired.name_any();
    let api = children.api();
    let Some(existing) = children.get(&name).await? else {
        return match api.create(&PostParams::default(), &desired).await {
            Ok(created) => {
                ctx.publish(
                    EventType::Normal,
                    "Created",
                    format!("Created {kind} {name:?}"),
                )
                .await;
                Ok(created)
            }
            Err(err) => {
                ctx.publish(
                    EventType::Warning,
                    "CreationFailed",
                    format!("Failed to create {kind} {name:?}: {err}"),
                )
                .await;
                Err(ReconcileError::transient(format!(
                    "failed to create {kind}: {err}"
                )))
            }
        };
    };
    let mut desired = desired;
    from_existing(&existing, &mut desired);
    if !is_controlled_by(existing.meta(), &*service) {
        let message = crate::reconciler::children::not_owned_message(&kind, &name);
        service
            .manage_conditions(ctx.now())
            .mark_false(condition, "NotOwned", &message);
        return Err(ReconcileError::permanent("NotOwned", message));
    }
    if spec(&existing) == spec(&desired)
        && existing.meta().labels == desired.meta().labels
        && existing.meta().annotations == desired.meta().annotations
    {
        return Ok(existing);
    }
    // Only what the Service decides is overwritten; the rest of the object is kept.
    let mut updated = desired;
    let meta = updated.meta_mut();
    meta.resource_version = existing.meta().resource_version.clone();
    meta.uid = existing.meta().uid.clone();
    meta.owner_references = existing.meta().owner_references.clone();
    meta.finalizers = existing.meta().finalizers.clone();
    // The status is the child's own: the API server keeps it on an update of the main resource.
    api.replace(&name, &PostParams::default(), &updated)
        .await
        .map_err(|err| ReconcileError::transient(format!("failed to update {kind}: {err}")))
}

/// Knative's `PropagateConfigurationStatus`.
fn propagate_configuration_status(service: &mut Service, ctx: &Context, config: &Configuration) {
    let Some(status) = &config.status else {
        return;
    };
    service
        .status
        .get_or_insert_with(Default::default)
        .configuration = status.configuration.clone();
    if let Some(ready) = status.status.get_condition(CONDITION_READY) {
        let mut conditions = service.manage_conditions(ctx.now());
        mirror(
            &mut conditions,
            SERVICE_CONDITION_CONFIGURATIONS_READY,
            ready,
        );
    }
}

/// Knative's `PropagateRouteStatus`.
fn propagate_route_status(service: &mut Service, ctx: &Context, route: &Route) {
    let status = route.status.clone().unwrap_or_default();
    service.status.get_or_insert_with(Default::default).route = status.route;
    let mut conditions = service.manage_conditions(ctx.now());
    match status.status.get_condition(CONDITION_READY) {
        Some(ready) => mirror(&mut conditions, SERVICE_CONDITION_ROUTES_READY, ready),
        None => conditions.mark_unknown(SERVICE_CONDITION_ROUTES_READY, "", ""),
    }
}

/// Knative's `checkRoutesNotReady`: a ready Route whose traffic is not yet what its spec asks
/// (with the Configuration's latest ready Revision for configuration targets) is not ready for
/// the Service.
fn check_routes_not_ready(
    service: &mut Service,
    ctx: &Context,
    config: &Configuration,
    route: &Route,
) {
    let routes_ready = service
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition(SERVICE_CONDITION_ROUTES_READY))
        .is_some_and(|c| c.is_true());
    if !routes_ready {
        return;
    }
    let got = route
        .status
        .as_ref()
        .map(|s| s.route.traffic.as_slice())
        .unwrap_or_default();
    let latest_ready = config
        .status
        .as_ref()
        .and_then(|s| s.configuration.latest_ready_revision_name.clone());
    let want: Vec<TrafficTarget> = route
        .spec
        .traffic
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.configuration_name.as_deref() == config.metadata.name.as_deref() {
                t.revision_name.clone_from(&latest_ready);
                t.configuration_name = None;
            }
            t
        })
        .collect();
    let comparable = |t: &TrafficTarget| {
        (
            non_empty(&t.tag).map(str::to_owned),
            non_empty(&t.revision_name).map(str::to_owned),
            non_empty(&t.configuration_name).map(str::to_owned),
            t.percent,
        )
    };
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(&want)
            .all(|(g, w)| comparable(g) == comparable(w));
    if !same {
        service.manage_conditions(ctx.now()).mark_unknown(
            SERVICE_CONDITION_ROUTES_READY,
            "TrafficNotMigrated",
            TRAFFIC_NOT_MIGRATED_MESSAGE,
        );
    }
}

/// Knative's `CheckNameAvailability`: Revision `rev`, of the name the Configuration's template
/// chooses, belongs to another Configuration, or to another generation with another spec.
fn name_taken(config: &Configuration, rev: &Revision) -> bool {
    if !is_controlled_by(&rev.metadata, config) {
        return true;
    }
    let generation = config.metadata.generation.unwrap_or(0).to_string();
    rev.labels().get(CONFIGURATION_GENERATION_LABEL_KEY) != Some(&generation)
        && rev.spec != config.spec.template.spec
}

fn mirror(
    conditions: &mut ConditionManager<'_>,
    target: &str,
    source: &knative_core::apis::Condition,
) {
    let reason = source.reason.as_deref().unwrap_or_default();
    let message = source.message.as_deref().unwrap_or_default();
    match source.status {
        ConditionStatus::True => conditions.mark_true(target),
        ConditionStatus::False => conditions.mark_false(target, reason, message),
        ConditionStatus::Unknown => conditions.mark_unknown(target, reason, message),
    }
}

fn child_metadata(service: &Service) -> ObjectMeta {
    let mut labels = service.labels().clone();
    labels.insert(SERVICE_LABEL_KEY.to_owned(), service.name_any());
    let mut annotations: BTreeMap<String, String> = service.annotations().clone();
    annotations.remove(LAST_APPLIED_CONFIG_ANNOTATION);
    ObjectMeta {
        name: Some(service.name_any()),
        namespace: service.namespace(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![controller_ref(service)]),
        ..ObjectMeta::default()
    }
}

fn observed_generation(status: Option<&Status>) -> Option<i64> {
    status.and_then(|s| s.observed_generation)
}

fn template_name(config: &Configuration) -> Option<&str> {
    config
        .spec
        .template
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}
