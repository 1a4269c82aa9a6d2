//! The PodAutoscaler reconciler: from the autoscaler's decision to pods, as Knative's
//! `pkg/reconciler/autoscaling/{kpa,hpa}` do.
//!
//! **Classes with a decider** (the KPA, `kpa.autoscaling.knative.dev`, and every class a
//! platform registers in the [`AutoscalerRegistry`](crate::autoscaler::AutoscalerRegistry)):
//!
//! 1. the revision's decider is made or updated in the shared [`Deciders`] (which the
//!    [collector](crate::autoscaler::collector) feeds and the tick runs);
//! 2. its desired scale is bounded by `min-scale`/`max-scale` (and the initial scale until the
//!    target was initialised), and scale to zero waits as Knative waits ([`scaler::scale`]):
//!    a stable window active at one pod, then `enable-scale-to-zero`, the activator in the path,
//!    `scale-to-zero-grace-period` and `scale-to-zero-pod-retention-period`; an activation that
//!    outlasts the progress deadline goes back to zero;
//! 3. the scale target's `spec.replicas` is patched when it differs;
//! 4. the ServerlessService `<pa>` is created or updated: `Proxy` (the activator in the path)
//!    at zero or while the excess burst capacity is negative, `Serve` otherwise, with the
//!    number of activators the revision's capacity needs;
//! 5. status: `desiredScale`, `actualScale` (ready pods), `serviceName`,
//!    `metricsServiceName`, and the `Active`, `SKSReady` and `ScaleTargetInitialized`
//!    conditions.
//!
//! **HPA class** (`hpa.autoscaling.knative.dev`): a HorizontalPodAutoscaler `<pa>` in the
//! newest `autoscaling` version the server offers (`v2`, else `v2beta2`), a `Serve`
//! ServerlessService, and the HPA's replicas as the status; always `Active`.
//!
//! PodAutoscalers of a class that is neither are left to whichever controller serves it.
//!
//! ```no_run
//! use knative_core::reconciler::{Caches, Driver};
//! use knative_serving::autoscaler::AutoscalerRegistry;
//! use knative_serving::autoscaler::deciders::Deciders;
//! use knative_serving::reconciler::autoscaling::{PodAutoscalerReconciler, watch_children};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let deciders = Deciders::new(AutoscalerRegistry::default());
//! let reconciler = PodAutoscalerReconciler::new(deciders.clone());
//! let caches = Caches::new(client.clone(), None);
//! Driver::new(client, reconciler)
//!     .with_caches(caches.clone())
//!     .run_with(move |c| watch_children(c, &caches, &deciders))
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod resources;
pub mod scaler;

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use knative_core::apis::KnativeObject;
use knative_core::reconciler::{Caches, Compact, Context, ReconcileError, Reconciler};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::apis::autoscaling::v1alpha1::{
    POD_AUTOSCALER_CONDITION_ACTIVE, POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED,
    POD_AUTOSCALER_CONDITION_SKS_READY,
};
use crate::apis::autoscaling::{CLASS_ANNOTATION_KEY, HPA};
use crate::apis::networking::v1alpha1::ServerlessServiceOperationMode;
use crate::apis::{PodAutoscaler, ServerlessService};
use crate::autoscaler::AutoscalerParams;
use crate::autoscaler::collector::REVISION_LABEL_KEY;
use crate::autoscaler::deciders::{Deciders, RevisionKey};
use crate::autoscaler::kpa::DeciderSpec;
use crate::reconciler::children::{api_failure, refuse_not_owned};
use resources::{HpaVersion, contains, is_controlled_by, make_hpa, make_sks, sks_name};
use scaler::ScaleInputs;

pub use crate::reconciler::revision::DEFAULT_PROGRESS_DEADLINE;

pub use crate::reconciler::children::REASON_NOT_OWNED;
/// The reason of a PodAutoscaler whose class has no working autoscaler.
pub const REASON_INVALID_AUTOSCALER: &str = "InvalidAutoscaler";

/// Reconciles PodAutoscalers: the KPA and every class registered with the [`Deciders`], and
/// the HPA class.
#[derive(Debug)]
pub struct PodAutoscalerReconciler {
    deciders: Deciders,
    hpa_version: OnceCell<HpaVersion>,
    progress_deadline: Duration,
}

impl PodAutoscalerReconciler {
    /// A reconciler taking its decisions from `deciders`; the HPA version is discovered from
    /// the server on first use.
    pub fn new(deciders: Deciders) -> Self {
        Self {
            deciders,
            hpa_version: OnceCell::new(),
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
        }
    }

    /// Writes HorizontalPodAutoscalers in `version` instead of asking the server.
    pub fn with_hpa_version(self, version: HpaVersion) -> Self {
        Self {
            hpa_version: OnceCell::new_with(Some(version)),
            ..self
        }
    }

    /// The progress deadline of revisions that do not set one (`config-deployment`'s
    /// `progress-deadline`, 600 s by default).
    pub fn with_progress_deadline(self, progress_deadline: Duration) -> Self {
        Self {
            progress_deadline,
            ..self
        }
    }

    /// The deciders this reconciler reads.
    pub fn deciders(&self) -> &Deciders {
        &self.deciders
    }
}

#[async_trait]
impl Reconciler<PodAutoscaler> for PodAutoscalerReconciler {
    async fn reconcile_kind(
        &self,
        pa: &mut PodAutoscaler,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        if class_of(pa, ctx.config()) == HPA {
            self.reconcile_hpa(pa, ctx).await
        } else {
            self.reconcile_with_decider(pa, ctx).await
        }
    }

    /// Knative's class filter: PodAutoscalers of a class with no autoscaler here are left,
    /// status and all, to whichever controller serves it.
    fn accepts(&self, pa: &PodAutoscaler, config: &knative_core::config::Config) -> bool {
        let class = class_of(pa, config);
        let mine = class == HPA || self.deciders.registry().contains(&class);
        if !mine {
            tracing::debug!(pa = %pa.name_any(), %class, "no autoscaler of this class here");
        }
        mine
    }
}

/// The PodAutoscaler's class: its annotation, else `config-autoscaler`'s default.
fn class_of(pa: &PodAutoscaler, config: &knative_core::config::Config) -> String {
    pa.annotations()
        .get(CLASS_ANNOTATION_KEY)
        .cloned()
        .unwrap_or_else(|| config.autoscaler.pod_autoscaler_class.clone())
}

impl PodAutoscalerReconciler {
    /// Knative's KPA `ReconcileKind`, for any class with a decider.
    async fn reconcile_with_decider(
        &self,
        pa: &mut PodAutoscaler,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let now = ctx.now();
        let config = &ctx.config().autoscaler;
        let namespace = pa.namespace().unwrap_or_default();
        let key = RevisionKey::new(&namespace, pa.name_any());

        let sks_lister = ctx.lister::<ServerlessService>(&namespace);
        let sks = sks_lister
            .get(&sks_name(pa))
            .await
            .map_err(|e| api_failure("get", "ServerlessService", &sks_name(pa), e))?;
        if let Some(sks) = &sks
            && !is_controlled_by(&sks.metadata, pa)
        {
            return Err(refuse_not_owned(
                pa,
                "Ready",
                "ServerlessService",
                &sks_name(pa),
                now,
            ));
        }

        let ready = ready_pods(ctx.client(), pa).await?;
        let params = AutoscalerParams::from_pod_autoscaler(pa, config, ready, now);
        let decider = self
            .deciders
            .reconcile(&key, &params)
            .await
            .map_err(|e| ReconcileError::permanent(REASON_INVALID_AUTOSCALER, e.to_string()))?;
        self.deciders.set_ready_pods(&key, ready).await;
        let spec = DeciderSpec::new(&params);

        let outcome = scaler::scale(
            pa,
            &ScaleInputs {
                config,
                now,
                decided: decider.desired_scale,
                activator_in_path: scaler::activator_in_path(
                    sks.as_ref(),
                    spec.target_burst_capacity,
                ),
                proxy_for: scaler::proxy_for(sks.as_ref(), now),
                activation_timeout: scaler::activation_timeout(pa, self.progress_deadline),
            },
        );
        if outcome.apply {
            apply_scale(ctx.client(), pa, outcome.want).await?;
        }

        let mode = scaler::sks_mode(outcome.want, decider.excess_burst_capacity, pa);
        let sks = reconcile_sks(
            ctx.client(),
            pa,
            sks,
            mode,
            scaler::num_activators(&spec, ready),
        )
        .await?;

        let status = pa.status.get_or_insert_with(Default::default);
        let sks_status = sks.status.clone().unwrap_or_default();
        status.service_name = sks_status.service_name.unwrap_or_default();
        status.metrics_service_name = sks_status.private_service_name.unwrap_or_default();
        status.desired_scale = Some(outcome.want);
        status.actual_scale = Some(ready);
        scaler::mark_sks_ready(pa, &sks, now);
        scaler::compute_active_condition(pa, config, outcome.want, ready, now);
        tracing::debug!(pa = %key, want = outcome.want, got = ready, ebc = decider.excess_burst_capacity, ?mode, "reconciled");

        match outcome.requeue_after {
            Some(delay) => Err(ReconcileError::RequeueAfter(delay)),
            None => Ok(()),
        }
    }

    /// Knative's HPA `ReconcileKind`.
    async fn reconcile_hpa(
        &self,
        pa: &mut PodAutoscaler,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let now = ctx.now();
        let config = &ctx.config().autoscaler;
        let namespace = pa.namespace().unwrap_or_default();
        let name = pa.name_any();
        let version = *self
            .hpa_version
            .get_or_try_init(|| discover_hpa_version(ctx.client()))
            .await
            .map_err(|e| api_failure("discover", "autoscaling versions", "", e))?;
        let api = Api::<DynamicObject>::namespaced_with(
            ctx.client().clone(),
            &namespace,
            &version.api_resource(),
        );
        let want: DynamicObject = serde_json::from_value(make_hpa(pa, config, version))
            .map_err(ReconcileError::transient)?;
        let hpa = match api
            .get_opt(&name)
            .await
            .map_err(|e| api_failure("get", "HorizontalPodAutoscaler", &name, e))?
        {
            None => {
                let created = api
                    .create(&PostParams::default(), &want)
                    .await
                    .map_err(|e| api_failure("create", "HorizontalPodAutoscaler", &name, e))?;
                tracing::info!(pa = %name, version = version.api_version(), "created HorizontalPodAutoscaler");
                created
            }
            Some(have) if !is_controlled_by(&have.metadata, pa) => {
                return Err(refuse_not_owned(
                    pa,
                    "Ready",
                    "HorizontalPodAutoscaler",
                    &name,
                    now,
                ));
            }
            Some(have) if contains(&have.data["spec"], &want.data["spec"]) => have,
            Some(mut have) => {
                have.data["spec"] = want.data["spec"].clone();
                let updated = api
                    .replace(&name, &PostParams::default(), &have)
                    .await
                    .map_err(|e| api_failure("update", "HorizontalPodAutoscaler", &name, e))?;
                tracing::info!(pa = %name, "updated HorizontalPodAutoscaler");
                updated
            }
        };
        let existing = ctx
            .lister::<ServerlessService>(&namespace)
            .get(&sks_name(pa))
            .await
            .map_err(|e| api_failure("get", "ServerlessService", &sks_name(pa), e))?;
        if let Some(sks) = &existing
            && !is_controlled_by(&sks.metadata, pa)
        {
            return Err(refuse_not_owned(
                pa,
                "Ready",
                "ServerlessService",
                &sks_name(pa),
                now,
            ));
        }
        // 0 activators: all of them.
        let sks = reconcile_sks(
            ctx.client(),
            pa,
            existing,
            ServerlessServiceOperationMode::Serve,
            0,
        )
        .await?;

        let sks_status = sks.status.clone().unwrap_or_default();
        let sks_ready = sks_status
            .status
            .get_condition("Ready")
            .is_some_and(|c| c.is_true());
        let current = hpa.data["status"]["currentReplicas"].as_i64().unwrap_or(0);
        let desired = hpa.data["status"]["desiredReplicas"].as_i64().unwrap_or(0);
        let threshold = scaler::active_threshold(pa, config);
        let status = pa.status.get_or_insert_with(Default::default);
        status.service_name = sks_status.service_name.unwrap_or_default();
        status.metrics_service_name = sks_status.private_service_name.unwrap_or_default();
        status.desired_scale = Some(i32::try_from(desired).unwrap_or(i32::MAX));
        status.actual_scale = Some(i32::try_from(current).unwrap_or(i32::MAX));
        let mut conditions = pa.manage_conditions(now);
        if sks_ready {
            conditions.mark_true(POD_AUTOSCALER_CONDITION_SKS_READY);
            if current >= i64::from(threshold) {
                conditions.mark_true(POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED);
            }
        } else {
            conditions.mark_unknown(
                POD_AUTOSCALER_CONDITION_SKS_READY,
                "NotReady",
                "SKS Services are not ready yet",
            );
        }
        // The HPA is always active.
        conditions.mark_true(POD_AUTOSCALER_CONDITION_ACTIVE);
        Ok(())
    }
}

/// The newest `autoscaling` version with HorizontalPodAutoscalers the server offers: `v2`,
/// else `v2beta2`.
///
/// # Errors
/// When the server cannot be asked.
pub async fn discover_hpa_version(client: &Client) -> Result<HpaVersion, kube::Error> {
    match client.list_api_group_resources("autoscaling/v2").await {
        Ok(list)
            if list
                .resources
                .iter()
                .any(|r| r.name == "horizontalpodautoscalers") =>
        {
            Ok(HpaVersion::V2)
        }
        Ok(_) => Ok(HpaVersion::V2beta2),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(HpaVersion::V2beta2),
        Err(err) => Err(err),
    }
}

/// The PodAutoscaler's ready pods: those of its revision (`serving.knative.dev/revision`)
/// with the Ready condition True and not terminating.
async fn ready_pods(client: &Client, pa: &PodAutoscaler) -> Result<i32, ReconcileError> {
    let namespace = pa.namespace().unwrap_or_default();
    let revision = pa
        .labels()
        .get(REVISION_LABEL_KEY)
        .cloned()
        .unwrap_or_else(|| pa.name_any());
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(
            &ListParams::default()
                .match_any()
                .labels(&format!("{REVISION_LABEL_KEY}={revision}")),
        )
        .await
        .map_err(|e| api_failure("list", "pods of", &revision, e))?;
    let ready = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    Ok(i32::try_from(ready).unwrap_or(i32::MAX))
}

/// Writes `want` to the scale target's `spec.replicas` unless it holds it already (absent
/// counts as 1, as in Kubernetes).
async fn apply_scale(client: &Client, pa: &PodAutoscaler, want: i32) -> Result<(), ReconcileError> {
    let target = &pa.spec.scale_target_ref;
    let name = target.name.clone().unwrap_or_default();
    let api_version = target.api_version.as_deref().unwrap_or("apps/v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = target.kind.as_deref().unwrap_or("Deployment");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &pa.namespace().unwrap_or_default(),
        &resource,
    );
    let Some(current) = api
        .get_opt(&name)
        .await
        .map_err(|e| api_failure("get", "scale target", &name, e))?
    else {
        return Err(ReconcileError::transient(format!(
            "scale target {kind} {name:?} not found"
        )));
    };
    let replicas = current.data["spec"]["replicas"].as_i64().unwrap_or(1);
    if replicas == i64::from(want) {
        return Ok(());
    }
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": want}})),
    )
    .await
    .map_err(|e| api_failure("scale", "scale target", &name, e))?;
    tracing::info!(pa = %pa.name_any(), from = replicas, to = want, "scaled");
    Ok(())
}

/// Creates the ServerlessService, or puts its spec back to `mode` and `num_activators`.
async fn reconcile_sks(
    client: &Client,
    pa: &PodAutoscaler,
    existing: Option<ServerlessService>,
    mode: ServerlessServiceOperationMode,
    num_activators: i32,
) -> Result<ServerlessService, ReconcileError> {
    let namespace = pa.namespace().unwrap_or_default();
    let api = Api::<ServerlessService>::namespaced(client.clone(), &namespace);
    let want = make_sks(pa, mode, num_activators);
    let name = sks_name(pa);
    match existing {
        None => {
            let created = api
                .create(&PostParams::default(), &want)
                .await
                .map_err(|e| api_failure("create", "ServerlessService", &name, e))?;
            tracing::info!(pa = %pa.name_any(), ?mode, "created ServerlessService");
            Ok(created)
        }
        Some(have) if have.spec == want.spec => Ok(have),
        Some(mut have) => {
            have.spec = want.spec;
            let updated = api
                .replace(&name, &PostParams::default(), &have)
                .await
                .map_err(|e| api_failure("update", "ServerlessService", &name, e))?;
            tracing::info!(pa = %pa.name_any(), ?mode, "updated ServerlessService");
            Ok(updated)
        }
    }
}

/// Adds to a PodAutoscaler controller what makes it react: the ServerlessServices it owns
/// (from the shared informer of `caches`), the pods of its revision (by
/// `serving.knative.dev/revision`, with a watch of their own in the caches' namespace), and
/// each changed decision of `deciders` (which reconciles that revision's PodAutoscaler only).
pub fn watch_children(
    controller: Controller<Compact<PodAutoscaler>>,
    caches: &Caches,
    deciders: &Deciders,
) -> Controller<Compact<PodAutoscaler>> {
    let pods = caches.api::<Pod>();
    controller
        .owns_shared_stream(caches.changes::<ServerlessService>())
        .watches(
            pods,
            watcher::Config::default().labels(REVISION_LABEL_KEY),
            |pod: Pod| {
                let revision = pod.labels().get(REVISION_LABEL_KEY).cloned();
                revision
                    .zip(pod.namespace())
                    .map(|(name, ns)| ObjectRef::<Compact<PodAutoscaler>>::new(&name).within(&ns))
            },
        )
        .reconcile_on(decisions(deciders.subscribe()))
}

/// The PodAutoscaler of each changed decision (kube's scheduler merges a key already pending).
fn decisions(
    changes: tokio::sync::mpsc::UnboundedReceiver<RevisionKey>,
) -> impl futures::Stream<Item = ObjectRef<Compact<PodAutoscaler>>> + Send + 'static {
    futures::stream::unfold(changes, |mut rx| async move {
        let key = rx.recv().await?;
        let pa = ObjectRef::<Compact<PodAutoscaler>>::new(&key.name).within(&key.namespace);
        Some((pa, rx))
    })
}

/// Forgets the deciders of deleted PodAutoscalers (Knative deletes a decider when its
/// PodAutoscaler is gone), including those deleted while the watch was down, until the watch
/// ends.
pub async fn forget_deleted(client: Client, namespace: Option<String>, deciders: Deciders) {
    use futures::StreamExt;
    // Names are all it needs: a watch of metadata only.
    let api: Api<PartialObjectMeta<PodAutoscaler>> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut listed = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Delete(pa)) => {
                let key = RevisionKey::new(pa.namespace().unwrap_or_default(), pa.name_any());
                deciders.delete(&key).await;
            }
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pa)) => {
                listed.insert(RevisionKey::new(
                    pa.namespace().unwrap_or_default(),
                    pa.name_any(),
                ));
            }
            Ok(watcher::Event::InitDone) => {
                for key in deciders.revisions().await {
                    let watched = namespace.as_ref().is_none_or(|ns| *ns == key.namespace);
                    if watched && !listed.contains(&key) {
                        deciders.delete(&key).await;
                    }
                }
            }
            Ok(watcher::Event::Apply(_)) => {}
            Err(err) => {
                tracing::warn!(%err, "watching PodAutoscalers failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
