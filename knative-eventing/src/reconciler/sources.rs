//! The source reconcilers: the sink resolved to `status.sinkUri` (`SinkProvided`), and
//!
//! - for PingSource, ApiServerSource and ContainerSource, an adapter Deployment that the source
//!   controls, with `K_SINK` (and `K_CE_OVERRIDES`) in every container's environment
//!   (`Deployed` follows the Deployment's `Available` condition);
//! - for SinkBinding, `K_SINK` and `K_CE_OVERRIDES` injected into the pod template of its
//!   subject (by name, or every object its selector matches), and removed again when the
//!   SinkBinding is deleted (a finalizer).
//!
//! ```no_run
//! use knative_core::reconciler::Driver;
//! use knative_eventing::reconciler::sources::{AdapterImages, PingSourceReconciler};
//!
//! # async fn run(client: kube::Client) {
//! let images = AdapterImages::default();
//! Driver::new(client, PingSourceReconciler::new(images)).run().await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, Namespace, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use knative_core::apis::{CloudEventOverrides, KnativeObject, SourceSpec, SourceStatus};
use knative_core::reconciler::{Context, ReconcileError, Reconciler};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::apis::sources::sink_binding::SINK_BINDING_CONDITION_BINDING_AVAILABLE;
use crate::apis::sources::{SOURCE_CONDITION_DEPLOYED, SOURCE_CONDITION_SINK_PROVIDED};
use crate::apis::{ApiServerSource, ContainerSource, PingSource, SinkBinding};
use crate::reconciler::{api_resource, controller_ref, reconcile_child};
use crate::resolver::Resolver;
use crate::sources::apiserver::SourceConfig;

pub use crate::sources::adapter::{K_CE_OVERRIDES, K_SINK, K_SOURCE_CONFIG};

/// The arguments of the PingSource adapter container: the image's entrypoint is `knative`,
/// and `knative eventing ping` reads the environment the reconciler sets.
pub const PING_ADAPTER_ARGS: &[&str] = &["eventing", "ping"];
/// The arguments of the ApiServerSource adapter container (`knative eventing apiserver`).
pub const API_SERVER_ADAPTER_ARGS: &[&str] = &["eventing", "apiserver"];

/// The images of the adapters the reconcilers deploy; each is run with its adapter's arguments
/// ([`PING_ADAPTER_ARGS`], [`API_SERVER_ADAPTER_ARGS`]) after an entrypoint that is `knative`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterImages {
    /// The image of the PingSource adapter.
    pub ping: String,
    /// The image of the ApiServerSource adapter.
    pub api_server: String,
}

impl Default for AdapterImages {
    fn default() -> Self {
        AdapterImages {
            ping: "ghcr.io/knative-rs/knative:latest".to_owned(),
            api_server: "ghcr.io/knative-rs/knative:latest".to_owned(),
        }
    }
}

/// Resolves a source's sink into `status.sinkUri` and `SinkProvided`. `Ok(None)` when it does
/// not resolve for good (the condition says why).
async fn resolve_sink<K>(
    source: &mut K,
    spec: &SourceSpec,
    ctx: &Context,
) -> Result<Option<String>, ReconcileError>
where
    K: KnativeObject<Status = SourceStatus>,
{
    let namespace = source.meta().namespace.clone().unwrap_or_default();
    let now = ctx.now();
    match Resolver::new(ctx.client().clone())
        .resolve(&spec.sink, &namespace)
        .await
    {
        Ok(resolved) => {
            let status = source.status_mut().get_or_insert_with(Default::default);
            status.sink_uri = Some(resolved.url.clone());
            status.sink_ca_certs = resolved.ca_certs;
            status.sink_audience = resolved.audience;
            source
                .manage_conditions(now)
                .mark_true(SOURCE_CONDITION_SINK_PROVIDED);
            Ok(Some(resolved.url))
        }
        Err(err) => {
            source
                .status_mut()
                .get_or_insert_with(Default::default)
                .sink_uri = None;
            source.manage_conditions(now).mark_false(
                SOURCE_CONDITION_SINK_PROVIDED,
                "NotFound",
                &format!("Sink not found: {err}"),
            );
            if err.is_retryable() {
                Err(ReconcileError::transient(err))
            } else {
                Ok(None)
            }
        }
    }
}

/// `K_SINK` and, when there are overrides, `K_CE_OVERRIDES`.
fn sink_env(sink: &str, overrides: Option<&CloudEventOverrides>) -> Vec<EnvVar> {
    let mut env = vec![EnvVar {
        name: K_SINK.to_owned(),
        value: Some(sink.to_owned()),
        ..EnvVar::default()
    }];
    if let Some(overrides) = overrides {
        env.push(EnvVar {
            name: K_CE_OVERRIDES.to_owned(),
            value: Some(serde_json::to_string(overrides).unwrap_or_default()),
            ..EnvVar::default()
        });
    }
    env
}

/// Sets (replacing) `vars` in `env`, keeping the order of the others.
fn upsert_env(env: &mut Vec<EnvVar>, vars: &[EnvVar]) {
    env.retain(|e| !vars.iter().any(|v| v.name == e.name));
    env.extend(vars.iter().cloned());
}

/// Creates or updates the adapter Deployment `name` of `source` and reflects its `Available`
/// condition in `Deployed`.
async fn reconcile_adapter<K>(
    source: &mut K,
    ctx: &Context,
    name: String,
    mut template: PodTemplateSpec,
    env: Vec<EnvVar>,
) -> Result<(), ReconcileError>
where
    K: KnativeObject<Status = SourceStatus> + Resource<DynamicType = ()>,
{
    let namespace = source.namespace().unwrap_or_default();
    let labels = BTreeMap::from([
        (
            "sources.knative.dev/source".to_owned(),
            K::kind(&()).to_lowercase(),
        ),
        ("sources.knative.dev/name".to_owned(), source.name_any()),
    ]);
    let pod_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    pod_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels.clone());
    if let Some(spec) = &mut template.spec {
        for container in &mut spec.containers {
            upsert_env(container.env.get_or_insert_with(Vec::new), &env);
        }
    }
    let desired = Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_ref(source)]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels),
                ..LabelSelector::default()
            },
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let api: Api<Deployment> = Api::namespaced(ctx.client().clone(), &namespace);
    let deployment = reconcile_child(
        &api,
        desired,
        source.uid().as_deref(),
        |existing, desired| {
            if existing.spec == desired.spec {
                return false;
            }
            existing.spec.clone_from(&desired.spec);
            true
        },
    )
    .await?;
    let available = deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
        .map(|c| c.status == "True");
    let now = ctx.now();
    let message = format!(
        "Deployment {:?} is not yet available",
        deployment.name_any()
    );
    match available {
        Some(true) => source
            .manage_conditions(now)
            .mark_true(SOURCE_CONDITION_DEPLOYED),
        Some(false) => source.manage_conditions(now).mark_false(
            SOURCE_CONDITION_DEPLOYED,
            "DeploymentUnavailable",
            &message,
        ),
        None => source.manage_conditions(now).mark_unknown(
            SOURCE_CONDITION_DEPLOYED,
            "DeploymentUnavailable",
            &message,
        ),
    }
    Ok(())
}

fn adapter_template(
    image: &str,
    args: &[&str],
    service_account: Option<String>,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            service_account_name: service_account,
            containers: vec![Container {
                name: "receive-adapter".to_owned(),
                image: Some(image.to_owned()),
                args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// Reconciles ContainerSources into a Deployment `<name>-deployment` of their pod template.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContainerSourceReconciler;

#[async_trait]
impl Reconciler<ContainerSource> for ContainerSourceReconciler {
    async fn reconcile_kind(
        &self,
        source: &mut ContainerSource,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let spec = source.spec.clone();
        let Some(sink) = resolve_sink(source, &spec.source, ctx).await? else {
            return Ok(());
        };
        let name = format!("{}-deployment", source.name_any());
        let env = sink_env(&sink, spec.source.ce_overrides.as_ref());
        reconcile_adapter(source, ctx, name, spec.template, env).await
    }
}

/// Reconciles ApiServerSources into an adapter Deployment `apiserversource-<name>`, configured
/// as Knative's: `K_SOURCE_CONFIG` is a [`SourceConfig`] (the source's namespace, or those its
/// `namespaceSelector` matches, or all of them for an empty selector; resources as
/// group/version/resource with their label selectors; owner, mode, filters).
#[derive(Clone, Debug, Default)]
pub struct ApiServerSourceReconciler {
    images: AdapterImages,
}

impl ApiServerSourceReconciler {
    /// A reconciler deploying `images.api_server`.
    pub fn new(images: AdapterImages) -> Self {
        ApiServerSourceReconciler { images }
    }
}

#[async_trait]
impl Reconciler<ApiServerSource> for ApiServerSourceReconciler {
    async fn reconcile_kind(
        &self,
        source: &mut ApiServerSource,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let spec = source.spec.clone();
        let Some(sink) = resolve_sink(source, &spec.source, ctx).await? else {
            return Ok(());
        };
        let namespace = source.namespace().unwrap_or_default();
        let (namespaces, all_namespaces) = match &spec.namespace_selector {
            None => (vec![namespace.clone()], false),
            Some(selector) if *selector == LabelSelector::default() => (Vec::new(), true),
            Some(selector) => {
                let api: Api<Namespace> = Api::all(ctx.client().clone());
                let params = ListParams::default().labels(&label_selector_string(selector));
                let mut names: Vec<String> = api
                    .list(&params)
                    .await?
                    .items
                    .iter()
                    .map(ResourceExt::name_any)
                    .collect();
                names.sort();
                (names, false)
            }
        };
        let config = SourceConfig::from_source(source, namespaces, all_namespaces);
        let config = serde_json::to_string(&config).unwrap_or_default();
        let mut vars = sink_env(&sink, spec.source.ce_overrides.as_ref());
        vars.push(env(K_SOURCE_CONFIG, config));
        vars.push(env("NAMESPACE", namespace));
        vars.push(env("NAME", source.name_any()));
        let template = adapter_template(
            &self.images.api_server,
            API_SERVER_ADAPTER_ARGS,
            Some(spec.service_account_name.clone()).filter(|s| !s.is_empty()),
        );
        let name = format!("apiserversource-{}", source.name_any());
        reconcile_adapter(source, ctx, name, template, vars).await
    }
}

/// Reconciles PingSources into an adapter Deployment `pingsource-<name>` configured with
/// `PING_SCHEDULE`, `PING_TIMEZONE`, `PING_CONTENT_TYPE`, `PING_DATA` or `PING_DATA_BASE64`,
/// and `K_SOURCE` (the CloudEvents `source`, `/apis/v1/namespaces/<ns>/pingsources/<name>`).
#[derive(Clone, Debug, Default)]
pub struct PingSourceReconciler {
    images: AdapterImages,
}

impl PingSourceReconciler {
    /// A reconciler deploying `images.ping`.
    pub fn new(images: AdapterImages) -> Self {
        PingSourceReconciler { images }
    }
}

#[async_trait]
impl Reconciler<PingSource> for PingSourceReconciler {
    async fn reconcile_kind(
        &self,
        source: &mut PingSource,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let spec = source.spec.clone();
        let Some(sink) = resolve_sink(source, &spec.source, ctx).await? else {
            return Ok(());
        };
        let namespace = source.namespace().unwrap_or_default();
        let mut vars = sink_env(&sink, spec.source.ce_overrides.as_ref());
        vars.push(env("PING_SCHEDULE", spec.schedule.clone()));
        for (name, value) in [
            ("PING_TIMEZONE", &spec.timezone),
            ("PING_CONTENT_TYPE", &spec.content_type),
            ("PING_DATA", &spec.data),
            ("PING_DATA_BASE64", &spec.data_base64),
        ] {
            if !value.is_empty() {
                vars.push(env(name, value.clone()));
            }
        }
        vars.push(env(
            "K_SOURCE",
            format!(
                "/apis/v1/namespaces/{namespace}/pingsources/{}",
                source.name_any()
            ),
        ));
        let template = adapter_template(&self.images.ping, PING_ADAPTER_ARGS, None);
        let name = format!("pingsource-{}", source.name_any());
        reconcile_adapter(source, ctx, name, template, vars).await
    }
}

/// Reconciles SinkBindings: `K_SINK` and `K_CE_OVERRIDES` in the containers (and init
/// containers) of each subject's `spec.template.spec`; removed on deletion.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkBindingReconciler;

#[async_trait]
impl Reconciler<SinkBinding> for SinkBindingReconciler {
    async fn reconcile_kind(
        &self,
        binding: &mut SinkBinding,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        let spec = binding.spec.clone();
        let Some(sink) = resolve_sink(binding, &spec.source, ctx).await? else {
            return Ok(());
        };
        let vars = sink_env(&sink, spec.source.ce_overrides.as_ref());
        let subjects = bind_subjects(binding, ctx, |containers| {
            let mut changed = false;
            for container in containers {
                let env = container
                    .as_object_mut()
                    .map(|c| c.entry("env").or_insert_with(|| Value::Array(Vec::new())));
                if let Some(Value::Array(env)) = env {
                    changed |= upsert_json_env(env, &vars);
                }
            }
            changed
        })
        .await?;
        let now = ctx.now();
        if subjects == 0 {
            binding.manage_conditions(now).mark_false(
                SINK_BINDING_CONDITION_BINDING_AVAILABLE,
                "SubjectMissing",
                "No subject found to bind",
            );
        } else {
            binding
                .manage_conditions(now)
                .mark_true(SINK_BINDING_CONDITION_BINDING_AVAILABLE);
        }
        Ok(())
    }

    async fn finalize_kind(
        &self,
        binding: &mut SinkBinding,
        ctx: &Context,
    ) -> Result<(), ReconcileError> {
        bind_subjects(binding, ctx, |containers| {
            let mut changed = false;
            for container in containers {
                if let Some(Value::Array(env)) = container.get_mut("env") {
                    let before = env.len();
                    env.retain(|e| {
                        !matches!(
                            e.get("name").and_then(Value::as_str),
                            Some(K_SINK | K_CE_OVERRIDES)
                        )
                    });
                    changed |= env.len() != before;
                }
            }
            changed
        })
        .await?;
        Ok(())
    }

    fn uses_finalizer(&self) -> bool {
        true
    }
}

/// Applies `edit` to the containers of every subject of `binding`, writing back the subjects
/// it changed; returns how many subjects there are.
async fn bind_subjects(
    binding: &SinkBinding,
    ctx: &Context,
    edit: impl Fn(&mut Vec<Value>) -> bool,
) -> Result<usize, ReconcileError> {
    let subject = &binding.spec.subject;
    let namespace = if subject.namespace.is_empty() {
        binding.namespace().unwrap_or_default()
    } else {
        subject.namespace.clone()
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client().clone(),
        &namespace,
        &api_resource(&subject.api_version, &subject.kind),
    );
    let objects = if subject.name.is_empty() {
        let selector = subject
            .selector
            .as_ref()
            .map(label_selector_string)
            .unwrap_or_default();
        api.list(&ListParams::default().labels(&selector))
            .await?
            .items
    } else {
        api.get_opt(&subject.name).await?.into_iter().collect()
    };
    let count = objects.len();
    for mut object in objects {
        let mut changed = false;
        for field in ["containers", "initContainers"] {
            if let Some(Value::Array(containers)) = object
                .data
                .pointer_mut(&format!("/spec/template/spec/{field}"))
            {
                changed |= edit(containers);
            }
        }
        if changed {
            api.replace(&object.name_any(), &PostParams::default(), &object)
                .await?;
        }
    }
    Ok(count)
}

/// Sets `vars` in a JSON `env` list; whether anything changed.
fn upsert_json_env(env: &mut Vec<Value>, vars: &[EnvVar]) -> bool {
    let mut changed = false;
    for var in vars {
        let wanted = serde_json::to_value(var).unwrap_or_default();
        match env
            .iter_mut()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(var.name.as_str()))
        {
            Some(existing) if *existing == wanted => {}
            Some(existing) => {
                *existing = wanted;
                changed = true;
            }
            None => {
                env.push(wanted);
                changed = true;
            }
        }
    }
    changed
}

/// A label selector as the API's `labelSelector` query parameter.
fn label_selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().join(",");
        parts.push(match expr.operator.as_str() {
            "In" => format!("{} in ({values})", expr.key),
            "NotIn" => format!("{} notin ({values})", expr.key),
            "Exists" => expr.key.clone(),
            _ => format!("!{}", expr.key),
        });
    }
    parts.join(",")
}
