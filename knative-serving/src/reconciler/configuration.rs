//! The Configuration reconciler: stamps out one immutable Revision per generation of a
//! Configuration and follows their readiness (Knative's `pkg/reconciler/configuration`).
//!
//! For each generation the Configuration's template becomes a Revision named
//! `<configuration>-<generation, 5 digits>` (`hello-00001`), or the template's own
//! `metadata.name` when it has one ("bring your own name"). The Revision carries Knative's
//! labels (`serving.knative.dev/configuration`, `configurationGeneration`,
//! `configurationUID`, and `service` when a Service owns the Configuration), the template's
//! labels and annotations, and a controller reference to the Configuration.
//!
//! The status follows Knative: `latestCreatedRevisionName` is the Revision of the current
//! generation, `latestReadyRevisionName` the newest ready one, and `Ready` mirrors the latest
//! created Revision: True when it is the latest ready one, False (`RevisionFailed`) when it
//! failed, Unknown while it starts. A Revision of the chosen name that this Configuration does
//! not control is never adopted: the Configuration turns `Ready` False (`RevisionFailed`) and
//! is not retried until it changes.
//!
//! ```no_run
//! use knative_core::reconciler::{Caches, Driver};
//! use knative_serving::reconciler::configuration::ConfigurationReconciler;
//!
//! # async fn run(client: kube::Client) {
//! let caches = Caches::new(client.clone(), None);
//! let driver = Driver::new(client, ConfigurationReconciler::new()).with_caches(caches.clone());
//! // Watch the Revisions too, so that their readiness reaches their Configuration at once.
//! let watches = ConfigurationReconciler::watches(&caches);
//! driver.run_with(watches).await.unwrap();
//! # }
//! ```

pub(crate) mod names;

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use knative_core::apis::{CONDITION_READY, ConditionStatus, KnativeObject};
use knative_core::reconciler::{Caches, Compact, Context, Lister, ReconcileError, Reconciler};
use kube::api::PostParams;
use kube::runtime::Controller;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use crate::apis::serving::{
    CONFIGURATION_GENERATION_LABEL_KEY, CONFIGURATION_LABEL_KEY, CREATOR_ANNOTATION,
    ROUTING_STATE_LABEL_KEY, ROUTING_STATE_MODIFIED_ANNOTATION_KEY, SERVICE_LABEL_KEY,
    UPDATER_ANNOTATION,
};
use crate::apis::{Configuration, Revision};
use crate::reconciler::children::{controller_ref, is_controlled_by};
use crate::reconciler::gc;
use crate::reconciler::labeler::routing_state_modified;

/// Label on a Revision: the UID of the Configuration that created it (Knative's
/// `serving.knative.dev/configurationUID`).
pub const CONFIGURATION_UID_LABEL_KEY: &str = "serving.knative.dev/configurationUID";

/// Reconciles Configurations into Revisions. Stateless: every pass reads what it needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigurationReconciler;

impl ConfigurationReconciler {
    /// A Configuration reconciler.
    pub fn new() -> Self {
        Self
    }

    /// What the controller should watch besides Configurations: their Revisions, from the
    /// shared informer of `caches`, so that a Revision becoming ready reconciles its
    /// Configuration. Pass it to `Driver::run_with`.
    pub fn watches(
        caches: &Caches,
    ) -> impl Fn(Controller<Compact<Configuration>>) -> Controller<Compact<Configuration>> + use<>
    {
        let caches = caches.clone();
        move |controller| controller.owns_shared_stream(caches.changes::<Revision>())
    }
}

#[async_trait]
impl Reconciler<Configuration> for ConfigurationReconciler {
    async fn reconcile_kind(
        &self,
        config: &mut Configuration,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let namespace = config.namespace().unwrap_or_default();
        let revisions = ctx.lister::<Revision>(&namespace);

        let (latest_created, byo_name) = match latest_created_revision(config, &revisions).await? {
            Lookup::Found(rev, byo) => (*rev, byo),
            Lookup::Taken(name) => return Err(name_taken(config, ctx, &name)),
            Lookup::NotFound => match create_revision(config, revisions.api(), ctx).await? {
                Ok(rev) => (rev, byo_name(config).is_some()),
                Err(taken) => return Err(name_taken(config, ctx, &taken)),
            },
        };
        let name = latest_created.name_any();
        set_latest_created(config, ctx, &name);

        let ready = latest_created
            .status
            .as_ref()
            .and_then(|s| s.status.get_condition(CONDITION_READY))
            .cloned();
        match ready
            .as_ref()
            .map_or(ConditionStatus::Unknown, |c| c.status)
        {
            ConditionStatus::Unknown => {}
            ConditionStatus::True => {
                if latest_ready(config).is_none() {
                    ctx.publish(
                        EventType::Normal,
                        "ConfigurationReady",
                        "Configuration becomes ready",
                    )
                    .await;
                }
            }
            ConditionStatus::False => {
                let before = ready_condition(config);
                let message = ready.and_then(|c| c.message).unwrap_or_default();
                config.manage_conditions(ctx.now()).mark_false(
                    CONDITION_READY,
                    "RevisionFailed",
                    &format!("Revision {name:?} failed with message: {message}."),
                );
                if before != ready_condition(config) {
                    let (reason, what) = if latest_ready(config) == Some(name.as_str()) {
                        ("LatestReadyFailed", "Latest ready")
                    } else {
                        ("LatestCreatedFailed", "Latest created")
                    };
                    ctx.publish(
                        EventType::Warning,
                        reason,
                        format!("{what} revision {name:?} has failed"),
                    )
                    .await;
                }
            }
        }

        // Every Revision of this Configuration, read once for the two steps below (the one
        // created by this pass may not be among them yet: it is neither ready nor collectable).
        let owned = revisions
            .list(&[(CONFIGURATION_LABEL_KEY, &config.name_any())])
            .await?;
        find_and_set_latest_ready(config, ctx, &owned, &latest_created, byo_name).await;

        // Knative runs this as a controller of its own on Configurations; here it is the last
        // step of every pass. A failure to collect never fails the Configuration.
        let gc = &ctx.config().gc;
        if let Err(err) = gc::collect(revisions.api(), gc, config, &owned, ctx.now()).await {
            tracing::warn!(error = %err, "revision garbage collection failed");
        }
        Ok(())
    }
}

/// What looking for the Revision of the current generation found.
enum Lookup {
    /// The Revision, and whether its name is the template's own.
    Found(Box<Revision>, bool),
    /// A Revision of the wanted name exists that is not this generation's.
    Taken(String),
    /// No Revision yet.
    NotFound,
}

/// Knative's `latestCreatedRevision`: the template's own name if it has one (checked as
/// `CheckNameAvailability` does), else the Revision labelled with this Configuration and
/// generation.
async fn latest_created_revision(
    config: &Configuration,
    revisions: &Lister<Revision>,
) -> Result<Lookup, ReconcileError> {
    if let Some(name) = byo_name(config) {
        let Some(rev) = revisions.get(name).await? else {
            return Ok(Lookup::NotFound);
        };
        if !is_controlled_by(&rev.metadata, config) {
            return Ok(Lookup::Taken(name.to_owned()));
        }
        // The rest of a Revision is immutable; users may label or annotate it beyond the
        // template, so only the generation or the spec decides.
        let generation = rev.labels().get(CONFIGURATION_GENERATION_LABEL_KEY);
        if generation == Some(&generation_of(config).to_string())
            || rev.spec == config.spec.template.spec
        {
            return Ok(Lookup::Found(Box::new(rev), true));
        }
        return Ok(Lookup::Taken(name.to_owned()));
    }
    let list = revisions
        .list(&[
            (
                CONFIGURATION_GENERATION_LABEL_KEY,
                &generation_of(config).to_string(),
            ),
            (CONFIGURATION_LABEL_KEY, &config.name_any()),
        ])
        .await?;
    Ok(match list.into_iter().next() {
        Some(rev) => Lookup::Found(Box::new(rev), false),
        None => Lookup::NotFound,
    })
}

/// Creates the Revision of the current generation: the Revision, or the name when it is taken
/// by a Revision this Configuration does not control. Other failures are marked on the status
/// and retried.
async fn create_revision(
    config: &mut Configuration,
    revisions: &Api<Revision>,
    ctx: &Context,
) -> Result<Result<Revision, String>, ReconcileError> {
    let desired = make_revision(config, ctx.now());
    let name = desired.name_any();
    match revisions.create(&PostParams::default(), &desired).await {
        Ok(created) => {
            ctx.publish(
                EventType::Normal,
                "Created",
                format!("Created Revision {name:?}"),
            )
            .await;
            Ok(Ok(created))
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let existing = revisions.get_opt(&name).await?;
            if existing.is_some_and(|rev| !is_controlled_by(&rev.metadata, &*config)) {
                return Ok(Err(name));
            }
            // Ours, under another generation's labels: look again on the next pass.
            Err(ReconcileError::transient(format!(
                "failed to create Revision: {}",
                status.message
            )))
        }
        Err(err) => {
            ctx.publish(
                EventType::Warning,
                "CreationFailed",
                format!("Failed to create Revision: {err}"),
            )
            .await;
            mark_revision_creation_failed(config, ctx, &err.to_string());
            Err(ReconcileError::transient(format!(
                "failed to create Revision: {err}"
            )))
        }
    }
}

/// The Revision the Configuration's current generation stamps out at `now` (Knative's
/// `resources.MakeRevision`): routing state `pending` until the labeler sees a Route use it.
pub fn make_revision(config: &Configuration, now: Timestamp) -> Revision {
    let template = &config.spec.template;
    let mut metadata = template.metadata.clone();
    let name = byo_name(config).map_or_else(
        || {
            names::child_name(
                &config.name_any(),
                &format!("-{:05}", generation_of(config)),
            )
        },
        str::to_owned,
    );
    metadata.name = Some(name);
    metadata.generate_name = None;
    metadata.namespace = config.namespace();

    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(CONFIGURATION_LABEL_KEY.to_owned(), config.name_any());
    labels.insert(
        CONFIGURATION_GENERATION_LABEL_KEY.to_owned(),
        generation_of(config).to_string(),
    );
    if let Some(uid) = config.uid().filter(|u| !u.is_empty()) {
        labels.insert(CONFIGURATION_UID_LABEL_KEY.to_owned(), uid);
    }
    // An empty label value is left out rather than written (a standalone Configuration has
    // no Service).
    if let Some(service) = config.labels().get(SERVICE_LABEL_KEY)
        && !service.is_empty()
    {
        labels.insert(SERVICE_LABEL_KEY.to_owned(), service.clone());
    }

    labels.insert(ROUTING_STATE_LABEL_KEY.to_owned(), "pending".to_owned());

    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    if let Some(updater) = config.annotations().get(UPDATER_ANNOTATION) {
        annotations.insert(CREATOR_ANNOTATION.to_owned(), updater.clone());
    }
    annotations.insert(
        ROUTING_STATE_MODIFIED_ANNOTATION_KEY.to_owned(),
        routing_state_modified(now),
    );
    metadata
        .owner_references
        .get_or_insert_with(Vec::new)
        .push(controller_ref(config));

    Revision {
        metadata,
        spec: template.spec.clone(),
        status: None,
    }
}

/// Knative's `SetLatestCreatedRevisionName`: a new latest created Revision that is not the
/// latest ready one makes the Configuration not ready yet.
fn set_latest_created(config: &mut Configuration, ctx: &Context, name: &str) {
    let status = config.status.get_or_insert_with(Default::default);
    status.configuration.latest_created_revision_name = Some(name.to_owned());
    if latest_ready(config) != Some(name) {
        config
            .manage_conditions(ctx.now())
            .mark_unknown(CONDITION_READY, "", "");
    }
}

/// Knative's `findAndSetLatestReadyRevision`: the newest ready Revision among those created
/// since the latest ready one (the template's own name first), becomes the latest ready one;
/// when it is the latest created one, the Configuration is Ready.
async fn find_and_set_latest_ready(
    config: &mut Configuration,
    ctx: &Context,
    revisions: &[Revision],
    latest_created: &Revision,
    byo_name: bool,
) {
    let mut list: Vec<&Revision> = revisions.iter().collect();
    let generation = generation_of(config);
    if let Some(lrr) = latest_ready(config)
        && let Some(start) = list
            .iter()
            .find(|r| r.name_any() == lrr)
            .map(|r| revision_generation(r).unwrap_or(generation))
    {
        let byo_generation = byo_name
            .then(|| revision_generation(latest_created))
            .flatten();
        list.retain(|r| {
            revision_generation(r)
                .is_some_and(|g| (start..=generation).contains(&g) || Some(g) == byo_generation)
        });
    }
    let template_name = config.spec.template.metadata.name.clone();
    list.sort_by(|a, b| {
        let a_byo = template_name.as_deref() == Some(a.name_any().as_str());
        let b_byo = template_name.as_deref() == Some(b.name_any().as_str());
        b_byo
            .cmp(&a_byo)
            .then_with(|| revision_generation(b).cmp(&revision_generation(a)))
    });
    let Some(ready) = list.iter().find(|r| is_ready(r)) else {
        return;
    };
    let name = ready.name_any();
    let old = latest_ready(config).map(str::to_owned);
    let status = config.status.get_or_insert_with(Default::default);
    status.configuration.latest_ready_revision_name = Some(name.clone());
    if status.configuration.latest_created_revision_name.as_deref() == Some(name.as_str()) {
        config
            .manage_conditions(ctx.now())
            .mark_true(CONDITION_READY);
    }
    if old.as_deref() != Some(name.as_str()) {
        ctx.publish(
            EventType::Normal,
            "LatestReadyUpdate",
            format!("LatestReadyRevisionName updated to {name:?}"),
        )
        .await;
    }
}

/// Marks the name clash (Knative's `MarkRevisionCreationFailed` with an AlreadyExists error)
/// and refuses to go on until the Configuration changes.
fn name_taken(config: &mut Configuration, ctx: &Context, name: &str) -> ReconcileError {
    let message = format!("revisions.serving.knative.dev {name:?} already exists");
    let full = mark_revision_creation_failed(config, ctx, &message);
    ReconcileError::permanent("RevisionFailed", full)
}

fn mark_revision_creation_failed(config: &mut Configuration, ctx: &Context, err: &str) -> String {
    let message = format!("Revision creation failed with message: {err}.");
    config
        .manage_conditions(ctx.now())
        .mark_false(CONDITION_READY, "RevisionFailed", &message);
    message
}

fn byo_name(config: &Configuration) -> Option<&str> {
    config
        .spec
        .template
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn generation_of(config: &Configuration) -> i64 {
    config.metadata.generation.unwrap_or(0)
}

fn revision_generation(rev: &Revision) -> Option<i64> {
    rev.labels()
        .get(CONFIGURATION_GENERATION_LABEL_KEY)
        .and_then(|g| g.parse().ok())
}

fn is_ready(rev: &Revision) -> bool {
    rev.status
        .as_ref()
        .and_then(|s| s.status.get_condition(CONDITION_READY))
        .is_some_and(|c| c.is_true())
}

fn latest_ready(config: &Configuration) -> Option<&str> {
    config
        .status
        .as_ref()
        .and_then(|s| s.configuration.latest_ready_revision_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn ready_condition(config: &Configuration) -> Option<knative_core::apis::Condition> {
    config
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition(CONDITION_READY))
        .cloned()
}
