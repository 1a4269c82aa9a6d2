//! The Route reconciler: resolves a Route's traffic to Revisions and programs it as an
//! Ingress and Kubernetes Services (Knative's `pkg/reconciler/route`).
//!
//! Each pass:
//!
//! 1. reads the Configurations and Revisions the traffic names, and records them in the
//!    [`Tracker`] so that their changes reconcile the Route again;
//! 2. resolves the traffic ([`crate::traffic::build`]) and sets the status URL from the
//!    domain template; a target that is missing or not ready marks `AllTrafficAssigned`
//!    (`RevisionMissing`, `ConfigurationMissing`) and stops there;
//! 3. sets the status traffic (tagged targets with their URLs), `AllTrafficAssigned` True, the
//!    cluster-local address `http://<route>.<namespace>.svc.cluster.local`, and
//!    `CertificateProvisioned` True (`TLSNotEnabled`) as Knative does without external-domain
//!    TLS;
//! 4. creates the placeholder Kubernetes Service of each traffic group (refusing one it does
//!    not control: `IngressReady` False, `NotOwned`) and deletes those of removed tags;
//! 5. creates or updates the Ingress ([`resources::make_ingress`]) and mirrors its `Ready`
//!    into `IngressReady` once the Ingress has observed its generation;
//! 6. points the Kubernetes Services at the Ingress' load balancer once it has one;
//! 7. when a rollout duration is set (`config-network`'s `rollout-duration`, or the Route's
//!    `serving.knative.dev/rollout-duration` annotation), moves the traffic of a
//!    Configuration's new Revision gradually ([`crate::traffic::rollout`]): the state lives in
//!    the Ingress' `networking.internal.knative.dev/rollout` annotation, the Ingress splits
//!    and the status traffic follow it, `IngressReady` reads `RolloutInProgress`, and the Route
//!    is reconciled again when the next step is due;
//! 8. labels the Revisions and Configurations it uses ([`crate::reconciler::labeler`]); its
//!    finalizer takes those labels off again when the Route is deleted.
//!
//! Children are written only when they differ from what is wanted.
//!
//! ```no_run
//! use knative_core::reconciler::{Caches, Driver};
//! use knative_serving::reconciler::route::RouteReconciler;
//!
//! # async fn run(client: kube::Client) {
//! let caches = Caches::new(client.clone(), None);
//! let reconciler = RouteReconciler::new();
//! let watches = reconciler.watches(&caches);
//! Driver::new(client, reconciler)
//!     .with_caches(caches)
//!     .run_with(watches)
//!     .await
//!     .unwrap();
//! # }
//! ```

pub mod resources;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::jiff::Timestamp;
use knative_core::apis::duck::Addressable;
use knative_core::apis::{CONDITION_READY, ConditionManager, ConditionStatus, KnativeObject};
use knative_core::config::{CLUSTER_LOCAL_DOMAIN, Config, NetworkConfig, parse_go_duration};
use knative_core::reconciler::cache::Cacheable;
use knative_core::reconciler::{Caches, Compact, Context, Lister, ReconcileError, Reconciler};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use self::resources::{is_cluster_local_service, service_spec_covers};
use crate::apis::networking::v1alpha1::IngressVisibility;
use crate::apis::serving::v1::{
    ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED, ROUTE_CONDITION_CERTIFICATE_PROVISIONED,
    ROUTE_CONDITION_INGRESS_READY,
};
use crate::apis::serving::{ROLLOUT_DURATION_KEY, ROUTE_LABEL_KEY};
use crate::apis::{Configuration, Ingress, Revision, Route, TrafficTarget};
use crate::reconciler::children::is_controlled_by;
use crate::reconciler::labeler;
use crate::traffic::rollout::{ROLLOUT_ANNOTATION_KEY, Rollout};
use crate::traffic::{self, DomainError, Snapshot, TargetKind, Visibility};

/// `CertificateProvisioned`'s message when external-domain TLS is off.
pub const EXTERNAL_DOMAIN_TLS_NOT_ENABLED_MESSAGE: &str = "external-domain-tls is not enabled";
/// `CertificateProvisioned`'s message for a cluster-local Route.
pub const TLS_NOT_ENABLED_FOR_CLUSTER_LOCAL_MESSAGE: &str = "TLS is not enabled for cluster-local";
/// `IngressReady`'s message while a gradual rollout runs.
pub const ROLLOUT_IN_PROGRESS_MESSAGE: &str =
    "A gradual rollout of the latest revision(s) is in progress.";
/// The older spelling of [`ROLLOUT_DURATION_KEY`], still honoured after it.
const ROLLOUT_DURATION_KEY_CAMEL: &str = "serving.knative.dev/rolloutDuration";

/// Reconciles Routes into Ingresses and Kubernetes Services.
#[derive(Clone, Debug, Default)]
pub struct RouteReconciler {
    tracker: Tracker,
    labeler: labeler::Labeler,
    clock: RolloutClock,
}

/// Where gradual rollouts read the time: the pass's time, unless a clock was given.
#[derive(Clone, Default)]
struct RolloutClock(Option<Arc<dyn Fn() -> Timestamp + Send + Sync>>);

impl RolloutClock {
    fn now(&self, ctx: &Context) -> Timestamp {
        self.0.as_ref().map_or_else(|| ctx.now(), |clock| clock())
    }
}

impl fmt::Debug for RolloutClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Custom"
        } else {
            "PassTime"
        })
    }
}

/// Which Routes refer to which Configurations and Revisions (Knative's tracker): the Route
/// reconciler records them on every pass, and the controller's watches ask it which Routes to
/// reconcile when a Configuration or Revision changes. Cheap to clone; clones share state.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    refs: Arc<Mutex<BTreeMap<RouteKey, BTreeSet<Reference>>>>,
}

/// A Route, as (namespace, name).
type RouteKey = (String, String);
/// What a Route refers to, as (kind, name) in its namespace.
type Reference = (TargetKind, String);

impl Tracker {
    /// Records that Route `namespace/route` refers to `refs` (replacing what it referred to
    /// before).
    pub fn track(
        &self,
        namespace: &str,
        route: &str,
        refs: impl IntoIterator<Item = (TargetKind, String)>,
    ) {
        let refs: BTreeSet<_> = refs.into_iter().collect();
        let mut map = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        let key = (namespace.to_owned(), route.to_owned());
        if refs.is_empty() {
            map.remove(&key);
        } else {
            map.insert(key, refs);
        }
    }

    /// Forgets Route `namespace/route`.
    pub fn forget(&self, namespace: &str, route: &str) {
        self.track(namespace, route, []);
    }

    /// The Routes of `namespace` that refer to the `kind` named `name`.
    pub fn routes_referring_to(
        &self,
        namespace: &str,
        kind: TargetKind,
        name: &str,
    ) -> Vec<String> {
        let map = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = (kind, name.to_owned());
        map.iter()
            .filter(|((ns, _), refs)| ns == namespace && refs.contains(&wanted))
            .map(|((_, route), _)| route.clone())
            .collect()
    }
}

impl RouteReconciler {
    /// A Route reconciler with an empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracker this reconciler records the Routes' references in.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Reads the time of gradual rollout steps from `clock` rather than the pass's start, as
    /// Knative's Route reconciler takes a clock: tests use it to step a rollout through time.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.clock = RolloutClock(Some(Arc::new(clock)));
        self
    }

    /// What the controller should watch besides Routes, from the shared informers of
    /// `caches`: the Ingresses and Kubernetes Services the Routes own, and the Configurations
    /// and Revisions their traffic refers to (through the [`Tracker`]). Pass it to
    /// `Driver::run_with`.
    pub fn watches(
        &self,
        caches: &Caches,
    ) -> impl Fn(Controller<Compact<Route>>) -> Controller<Compact<Route>> + use<> {
        let tracker = self.tracker.clone();
        let caches = caches.clone();
        move |controller| {
            let configs = tracker.clone();
            let revisions = tracker.clone();
            controller
                .owns_shared_stream(caches.changes::<Ingress>())
                .owns_shared_stream(caches.changes::<K8sService>())
                .watches_shared_stream(caches.changes::<Configuration>(), move |c| {
                    referring(&configs, TargetKind::Configuration, &*c)
                })
                .watches_shared_stream(caches.changes::<Revision>(), move |r| {
                    referring(&revisions, TargetKind::Revision, &*r)
                })
        }
    }
}

#[async_trait]
impl Reconciler<Route> for RouteReconciler {
    async fn reconcile_kind(&self, route: &mut Route, ctx: &Context) -> Result<(), ReconcileError> {
        let next_step = self.reconcile_route(route, ctx).await?;
        // Knative's labeler: mark what this Route uses (after the status traffic is known).
        self.labeler.sync(ctx, route).await?;
        match next_step {
            Some(after) => Err(ReconcileError::RequeueAfter(after)),
            None => Ok(()),
        }
    }

    async fn finalize_kind(&self, route: &mut Route, ctx: &Context) -> Result<(), ReconcileError> {
        let namespace = route.namespace().unwrap_or_default();
        self.tracker.forget(&namespace, &route.name_any());
        self.labeler
            .clear(ctx.client(), &namespace, &route.name_any(), ctx.now())
            .await?;
        Ok(())
    }

    /// The finalizer lets the labeler take the Route's name off its Revisions and
    /// Configurations when it is deleted, so that they can be garbage-collected.
    fn uses_finalizer(&self) -> bool {
        true
    }
}

impl RouteReconciler {
    /// One pass; returns how long until the next gradual rollout step is due, if one is.
    async fn reconcile_route(
        &self,
        route: &mut Route,
        ctx: &Context,
    ) -> Result<Option<Duration>, ReconcileError> {
        let config = ctx.config();
        let namespace = route.namespace().unwrap_or_default();
        let (snapshot, refs) = load_snapshot(ctx, &namespace, &route.spec.traffic).await?;
        self.tracker.track(&namespace, &route.name_any(), refs);
        let resolved = traffic::build(&route.spec.traffic, &snapshot);

        let service_lister = ctx.lister::<K8sService>(&namespace);
        let services = service_lister.api();
        let existing_services = service_lister
            .list(&[(ROUTE_LABEL_KEY, &route.name_any())])
            .await?;
        let cluster_local_services: BTreeSet<String> = existing_services
            .iter()
            .filter(|s| is_cluster_local_service(s))
            .map(ResourceExt::name_any)
            .collect();
        let visibility = traffic::visibility(
            config,
            &route.metadata,
            &route.spec.traffic,
            &cluster_local_services,
        )
        .map_err(domain_error)?;
        let url = traffic::route_url(config, &route.metadata, &visibility).map_err(domain_error)?;
        route.status.get_or_insert_with(Default::default).route.url = Some(url);

        let resolved = match resolved {
            Ok(resolved) => resolved,
            Err(err) => {
                // Nothing is programmed until every target resolves.
                err.mark(&mut route.manage_conditions(ctx.now()));
                return Ok(None);
            }
        };
        let status_traffic = resolved
            .status_traffic(config, &route.metadata, &visibility)
            .map_err(domain_error)?;
        let address = format!(
            "http://{}.{namespace}.{CLUSTER_LOCAL_DOMAIN}",
            route.name_any()
        );
        let status = route.status.get_or_insert_with(Default::default);
        status.route.traffic = status_traffic;
        status.route.address = Some(Addressable {
            url: Some(address),
            ..Addressable::default()
        });
        let now = ctx.now();
        let mut conditions = route.manage_conditions(now);
        conditions.mark_true(ROUTE_CONDITION_ALL_TRAFFIC_ASSIGNED);
        mark_certificate(&mut conditions, config, &visibility);

        let placeholders =
            reconcile_placeholder_services(route, ctx, services, &existing_services, &resolved)
                .await?;
        let rollout_now = self.clock.now(ctx);
        let IngressOutcome {
            ingress,
            rollout,
            next_step,
        } = reconcile_ingress(route, ctx, &resolved, &visibility, rollout_now).await?;
        let rolling = rollout.filter(|r| !r.done());

        let mut conditions = route.manage_conditions(now);
        let generation = ingress.metadata.generation;
        let ingress_status = ingress.status.as_ref();
        if ingress_status.and_then(|s| s.status.observed_generation) != generation {
            mark_ingress_not_configured(&mut conditions);
        } else if rolling.is_none() {
            propagate_ingress_ready(&mut conditions, &ingress);
        }

        update_placeholder_services(services, &placeholders, &ingress).await?;

        if let Some(rollout) = rolling {
            route.manage_conditions(now).mark_unknown(
                ROUTE_CONDITION_INGRESS_READY,
                "RolloutInProgress",
                ROLLOUT_IN_PROGRESS_MESSAGE,
            );
            let status = route.status.get_or_insert_with(Default::default);
            let traffic = std::mem::take(&mut status.route.traffic);
            status.route.traffic = rollout.status_traffic(&resolved, traffic);
        }
        Ok(next_step.map(|at| nanos_between(rollout_now, at)))
    }
}

/// The time from `from` to `to`, none when `to` is not later.
fn nanos_between(from: Timestamp, to: Timestamp) -> Duration {
    let ns = to.as_nanosecond().saturating_sub(from.as_nanosecond());
    Duration::from_nanos(u64::try_from(ns).unwrap_or(if ns < 0 { 0 } else { u64::MAX }))
}

/// How long a gradual rollout takes for `route` (Knative's `RolloutDuration` over
/// `rollout-duration`): its annotation in whole seconds, else `config-network`'s; `None` when
/// rollouts are off.
pub fn rollout_duration(route: &Route, network: &NetworkConfig) -> Option<Duration> {
    let annotations = route.annotations();
    let from_route = [ROLLOUT_DURATION_KEY, ROLLOUT_DURATION_KEY_CAMEL]
        .iter()
        .find_map(|key| annotations.get(*key))
        .and_then(|value| parse_go_duration(value).ok())
        .map_or(0, |d| d.as_secs());
    let secs = if from_route == 0 {
        network.rollout_duration.as_secs()
    } else {
        from_route
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// What reconciling the Ingress decided.
struct IngressOutcome {
    ingress: Ingress,
    /// The rollout state programmed, when rollouts are on.
    rollout: Option<Rollout>,
    /// When the next rollout step is due.
    next_step: Option<Timestamp>,
}

/// The rollout state to program (Knative's `reconcileRollout`): the traffic's goal stepped
/// from the state the Ingress keeps, once the Ingress has programmed it.
fn step_rollout(
    route: &Route,
    ingress: &Ingress,
    resolved: &traffic::Config,
    now: Timestamp,
    duration: Duration,
) -> (Rollout, Option<Timestamp>) {
    let prev = ingress
        .annotations()
        .get(ROLLOUT_ANNOTATION_KEY)
        .filter(|a| !a.is_empty())
        .and_then(|a| match Rollout::parse(a) {
            Ok(rollout) => Some(rollout),
            Err(err) => {
                // Rollouts are not critical: start from the goal rather than fail the Route.
                tracing::warn!(route = %route.name_any(), %err, "ignoring the Ingress' rollout state");
                None
            }
        })
        .map(|mut prev| {
            // The Ingress has just programmed what it was given: the first step's time is known.
            if ingress_is_ready(ingress) && !route_ingress_ready(route) {
                prev.observe_ready(now, duration);
            }
            prev
        });
    Rollout::build(resolved).step(prev, now)
}

/// Knative's `Ingress.IsReady`: its generation observed, and `Ready` True.
fn ingress_is_ready(ingress: &Ingress) -> bool {
    ingress.status.as_ref().is_some_and(|s| {
        s.status.observed_generation == ingress.metadata.generation
            && s.status
                .get_condition(CONDITION_READY)
                .is_some_and(|c| c.status.is_true())
    })
}

/// Whether the Route's `IngressReady` is True (as of the previous pass).
fn route_ingress_ready(route: &Route) -> bool {
    route.status.as_ref().is_some_and(|s| {
        s.status
            .get_condition(ROUTE_CONDITION_INGRESS_READY)
            .is_some_and(|c| c.status.is_true())
    })
}

/// The Configurations and Revisions `traffic` refers to, directly or through a
/// Configuration's latest ready Revision or a Revision's Configuration, and the references
/// followed (including those that do not exist).
async fn load_snapshot(
    ctx: &Context,
    namespace: &str,
    traffic: &[TrafficTarget],
) -> Result<(Snapshot, BTreeSet<(TargetKind, String)>), kube::Error> {
    let configs = ctx.lister::<Configuration>(namespace);
    let revisions = ctx.lister::<Revision>(namespace);
    let mut snapshot = Snapshot::default();
    let mut refs = BTreeSet::new();
    let mut seen_configs = BTreeMap::new();
    let mut seen_revisions = BTreeMap::new();
    for target in traffic {
        if let Some(name) = non_empty(&target.revision_name) {
            refs.insert((TargetKind::Revision, name.to_owned()));
            let Some(revision) = cached(&revisions, &mut seen_revisions, name).await? else {
                continue;
            };
            snapshot.insert_revision(&revision);
            if let Some(config) = snapshot.revisions[name].configuration_name.clone() {
                refs.insert((TargetKind::Configuration, config.clone()));
                if let Some(c) = cached(&configs, &mut seen_configs, &config).await? {
                    snapshot.insert_configuration(&c);
                }
            }
        } else if let Some(name) = non_empty(&target.configuration_name) {
            refs.insert((TargetKind::Configuration, name.to_owned()));
            let Some(config) = cached(&configs, &mut seen_configs, name).await? else {
                continue;
            };
            snapshot.insert_configuration(&config);
            if let Some(latest) = snapshot.configurations[name]
                .latest_ready_revision_name
                .clone()
            {
                refs.insert((TargetKind::Revision, latest.clone()));
                if let Some(r) = cached(&revisions, &mut seen_revisions, &latest).await? {
                    snapshot.insert_revision(&r);
                }
            }
        }
    }
    Ok((snapshot, refs))
}

async fn cached<K: Cacheable>(
    lister: &Lister<K>,
    seen: &mut BTreeMap<String, Option<K>>,
    name: &str,
) -> Result<Option<K>, kube::Error> {
    if let Some(found) = seen.get(name) {
        return Ok(found.clone());
    }
    let found = lister.get(name).await?;
    seen.insert(name.to_owned(), found.clone());
    Ok(found)
}

/// Knative's `MarkTLSNotEnabled` when no certificate is wanted. This SDK provisions no
/// certificates, so external-domain TLS on an external Route cannot be satisfied.
fn mark_certificate(conditions: &mut ConditionManager<'_>, config: &Config, v: &Visibility) {
    let cluster_local = v.get(traffic::DEFAULT_TARGET) == Some(&IngressVisibility::ClusterLocal);
    if !config.network.external_domain_tls {
        conditions.mark_true_with_reason(
            ROUTE_CONDITION_CERTIFICATE_PROVISIONED,
            "TLSNotEnabled",
            EXTERNAL_DOMAIN_TLS_NOT_ENABLED_MESSAGE,
        );
    } else if cluster_local {
        conditions.mark_true_with_reason(
            ROUTE_CONDITION_CERTIFICATE_PROVISIONED,
            "TLSNotEnabled",
            TLS_NOT_ENABLED_FOR_CLUSTER_LOCAL_MESSAGE,
        );
    } else {
        conditions.mark_false(
            ROUTE_CONDITION_CERTIFICATE_PROVISIONED,
            "CertificateNotSupported",
            "external-domain-tls is enabled, but this controller provisions no certificates",
        );
    }
}

/// Creates the placeholder Service of every traffic group that has none, refuses those the
/// Route does not control, and deletes the Route's Services of groups that are gone. Returns
/// the Services in force.
async fn reconcile_placeholder_services(
    route: &mut Route,
    ctx: &Context,
    services: &Api<K8sService>,
    existing: &[K8sService],
    resolved: &traffic::Config,
) -> Result<Vec<K8sService>, ReconcileError> {
    let config = ctx.config();
    let mut wanted = Vec::with_capacity(resolved.targets.len());
    for tag in resolved.targets.keys() {
        let desired =
            resources::make_placeholder_service(config, route, tag).map_err(domain_error)?;
        let name = desired.name_any();
        let found = match existing.iter().find(|s| s.name_any() == name) {
            Some(s) => Some(s.clone()),
            None => services.get_opt(&name).await?,
        };
        let service = match found {
            Some(s) if !is_controlled_by(&s.metadata, &*route) => {
                let message = format!(
                    "There is an existing placeholder Service {name:?} that we do not own."
                );
                route.manage_conditions(ctx.now()).mark_false(
                    ROUTE_CONDITION_INGRESS_READY,
                    "NotOwned",
                    &message,
                );
                return Err(ReconcileError::permanent("NotOwned", message));
            }
            Some(s) => s,
            None => match services.create(&PostParams::default(), &desired).await {
                Ok(created) => {
                    ctx.publish(
                        EventType::Normal,
                        "Created",
                        format!("Created placeholder service {name:?}"),
                    )
                    .await;
                    created
                }
                Err(err) => {
                    ctx.publish(
                        EventType::Warning,
                        "CreationFailed",
                        format!("Failed to create placeholder service {name:?}: {err}"),
                    )
                    .await;
                    return Err(ReconcileError::transient(format!(
                        "failed to create placeholder service: {err}"
                    )));
                }
            },
        };
        wanted.push(service);
    }
    for stale in existing {
        let name = stale.name_any();
        if !wanted.iter().any(|s| s.name_any() == name)
            && is_controlled_by(&stale.metadata, &*route)
        {
            match services.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(wanted)
}

/// Creates the Ingress, or updates it when its spec, labels or annotations differ from the
/// wanted ones; with rollouts on, steps the rollout it keeps (a new Ingress starts from the
/// traffic's goal).
async fn reconcile_ingress(
    route: &Route,
    ctx: &Context,
    resolved: &traffic::Config,
    visibility: &Visibility,
    now: Timestamp,
) -> Result<IngressOutcome, ReconcileError> {
    let namespace = route.namespace().unwrap_or_default();
    let ingress_lister = ctx.lister::<Ingress>(&namespace);
    let ingresses = ingress_lister.api();
    let name = route.name_any();
    let existing = ingress_lister.get(&name).await?;
    let (rollout, next_step) = match (&existing, rollout_duration(route, &ctx.config().network)) {
        (_, None) => (None, None),
        (None, Some(_)) => (Some(Rollout::build(resolved)), None),
        (Some(ingress), Some(duration)) => {
            let (rollout, next) = step_rollout(route, ingress, resolved, now, duration);
            (Some(rollout), next)
        }
    };
    let desired = resources::make_ingress_with_rollout(
        ctx.config(),
        route,
        resolved,
        visibility,
        rollout.as_ref(),
    )
    .map_err(domain_error)?;
    let ingress = write_ingress(ctx, ingresses, existing, desired).await?;
    Ok(IngressOutcome {
        ingress,
        rollout,
        next_step,
    })
}

async fn write_ingress(
    ctx: &Context,
    ingresses: &Api<Ingress>,
    existing: Option<Ingress>,
    desired: Ingress,
) -> Result<Ingress, ReconcileError> {
    let name = desired.name_any();
    match existing {
        None => match ingresses.create(&PostParams::default(), &desired).await {
            Ok(created) => {
                ctx.publish(
                    EventType::Normal,
                    "Created",
                    format!("Created Ingress {name:?}"),
                )
                .await;
                Ok(created)
            }
            Err(err) => {
                ctx.publish(
                    EventType::Warning,
                    "CreationFailed",
                    format!("Failed to create Ingress: {err}"),
                )
                .await;
                Err(ReconcileError::transient(format!(
                    "failed to create Ingress: {err}"
                )))
            }
        },
        Some(existing) => {
            if existing.spec == desired.spec
                && existing.metadata.labels == desired.metadata.labels
                && existing.metadata.annotations == desired.metadata.annotations
            {
                return Ok(existing);
            }
            let mut updated = existing;
            updated.spec = desired.spec;
            updated.metadata.labels = desired.metadata.labels;
            updated.metadata.annotations = desired.metadata.annotations;
            ingresses
                .replace(&name, &PostParams::default(), &updated)
                .await
                .map_err(|err| {
                    ReconcileError::transient(format!("failed to update Ingress: {err}"))
                })
        }
    }
}

/// Points each Kubernetes Service at the Ingress' load balancer, once it has one.
async fn update_placeholder_services(
    services: &Api<K8sService>,
    placeholders: &[K8sService],
    ingress: &Ingress,
) -> Result<(), ReconcileError> {
    for service in placeholders {
        let private = is_cluster_local_service(service);
        let Some(desired) = resources::load_balancer_service_spec(ingress, private) else {
            continue;
        };
        if service
            .spec
            .as_ref()
            .is_some_and(|spec| service_spec_covers(spec, &desired))
        {
            continue;
        }
        let mut updated = service.clone();
        updated.spec = Some(desired);
        services
            .replace(&service.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    Ok(())
}

/// Knative's `MarkIngressNotConfigured`.
fn mark_ingress_not_configured(conditions: &mut ConditionManager<'_>) {
    conditions.mark_unknown(
        ROUTE_CONDITION_INGRESS_READY,
        "IngressNotConfigured",
        "Ingress has not yet been reconciled.",
    );
}

/// Knative's `PropagateIngressStatus`: `IngressReady` follows the Ingress' `Ready`.
fn propagate_ingress_ready(conditions: &mut ConditionManager<'_>, ingress: &Ingress) {
    let Some(ready) = ingress
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition(CONDITION_READY))
    else {
        mark_ingress_not_configured(conditions);
        return;
    };
    let reason = ready.reason.as_deref().unwrap_or_default();
    let message = ready.message.as_deref().unwrap_or_default();
    match ready.status {
        ConditionStatus::True => conditions.mark_true(ROUTE_CONDITION_INGRESS_READY),
        ConditionStatus::False => {
            conditions.mark_false(ROUTE_CONDITION_INGRESS_READY, reason, message);
        }
        ConditionStatus::Unknown => {
            conditions.mark_unknown(ROUTE_CONDITION_INGRESS_READY, reason, message);
        }
    }
}

/// A host name that cannot be made will not be made by retrying: the Route says why, and is
/// reconciled again when the configuration changes.
fn domain_error(err: DomainError) -> ReconcileError {
    ReconcileError::permanent("InvalidDomain", err.to_string())
}

fn referring<K: ResourceExt>(
    tracker: &Tracker,
    kind: TargetKind,
    obj: &K,
) -> Vec<ObjectRef<Compact<Route>>> {
    let namespace = obj.namespace().unwrap_or_default();
    tracker
        .routes_referring_to(&namespace, kind, &obj.name_any())
        .into_iter()
        .map(|route| ObjectRef::new(&route).within(&namespace))
        .collect()
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}
