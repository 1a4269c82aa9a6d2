//! Reconcilers of the Eventing resources, each a [`knative_core::reconciler::Reconciler`] run
//! by knative-core's generic driver.
//!
//! - [`broker`]: a Broker's address (the multi-tenant ingress, `/<namespace>/<name>`) and
//!   dead-letter sink.
//! - [`trigger`]: a Trigger's Broker, subscriber URI (through the Addressable duck type),
//!   dead-letter sink and dependency.
//! - [`channel`]: a Channel's backing channel; an InMemoryChannel's Service and address.
//! - [`subscription`]: a Subscription's subscriber, reply and dead-letter sink resolved and
//!   written into the channel's `spec.subscribers`.
//! - [`flows`]: Sequences and Parallels wired from channels and Subscriptions.
//! - [`sources`]: PingSource, ApiServerSource and ContainerSource adapter Deployments with
//!   `K_SINK`; SinkBinding's `K_SINK` and `K_CE_OVERRIDES` in its subjects' pod templates.

pub mod broker;
pub mod channel;
pub mod flows;
pub mod sources;
pub mod subscription;
pub mod trigger;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use knative_core::apis::{CONDITION_READY, ConditionStatus, KReference};
use knative_core::reconciler::cache::Cacheable;
use knative_core::reconciler::{Caches, Compact, ReconcileError};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The controller reference a child of `owner` carries.
pub(crate) fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `child`'s controller is the object with `uid`.
pub(crate) fn is_controlled_by(child: &ObjectMeta, uid: Option<&str>) -> bool {
    let Some(uid) = uid else {
        return false;
    };
    child
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Creates `desired`, or brings the existing child of its name in line with it (`update`
/// copies what the owner decides from `desired` into the existing child and says whether
/// anything changed). A child of that name that `owner_uid` does not control is not taken over:
/// a permanent `NotOwned` error.
pub(crate) async fn reconcile_child<C>(
    api: &Api<C>,
    desired: C,
    owner_uid: Option<&str>,
    update: impl Fn(&mut C, &C) -> bool,
) -> Result<C, ReconcileError>
where
    C: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = desired.name_any();
    match api.get_opt(&name).await? {
        None => Ok(api.create(&PostParams::default(), &desired).await?),
        Some(existing) if !is_controlled_by(existing.meta(), owner_uid) => {
            Err(ReconcileError::permanent(
                "NotOwned",
                format!("There is an existing {name} that we do not own."),
            ))
        }
        Some(mut existing) => {
            if update(&mut existing, &desired) {
                Ok(api
                    .replace(&name, &PostParams::default(), &existing)
                    .await?)
            } else {
                Ok(existing)
            }
        }
    }
}

/// The API resource of `apiVersion` + `kind` (the plural guessed as Kubernetes' conventions
/// make it).
pub(crate) fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// A dynamic object of `resource` named `name` in `namespace`.
pub(crate) fn dynamic_object(resource: &ApiResource, namespace: &str, name: &str) -> DynamicObject {
    let mut object = DynamicObject::new(name, resource);
    object.metadata.namespace = Some(namespace.to_owned());
    object
}

/// The status of the `Ready` condition in an object's JSON (`status.conditions`).
pub(crate) fn ready_status(
    data: &Value,
) -> Option<(ConditionStatus, Option<String>, Option<String>)> {
    let condition = data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(CONDITION_READY))?;
    let status = match condition.get("status").and_then(Value::as_str)? {
        "True" => ConditionStatus::True,
        "False" => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    let text = |k: &str| condition.get(k).and_then(Value::as_str).map(str::to_owned);
    Some((status, text("reason"), text("message")))
}

/// The `status.address.url` of an object's JSON.
pub(crate) fn address_url(data: &Value) -> Option<String> {
    data.pointer("/status/address/url")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A reference to a dynamic object (for Subscriptions and statuses).
pub(crate) fn kreference(resource: &ApiResource, namespace: &str, name: &str) -> KReference {
    KReference {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ..KReference::default()
    }
}

/// An API over `namespace`, or all namespaces.
pub(crate) fn scoped<T>(client: &kube::Client, namespace: &Option<String>) -> Api<T>
where
    T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What a controller of `K` should watch besides `K`: the children of kind `C` it controls (in
/// `namespace`, or all namespaces), so that their status reaches `K` at once. Pass it to
/// `Driver::run_with`.
pub fn owns<K, C>(
    client: kube::Client,
    namespace: Option<String>,
) -> impl Fn(kube::runtime::Controller<Compact<K>>) -> kube::runtime::Controller<Compact<K>>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    C: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    move |controller| controller.owns(scoped::<C>(&client, &namespace), Default::default())
}

/// As [`owns`], from the shared informer of `C` in `caches` (one watch of `C` for every
/// controller of the process) instead of a watch of its own. Give the driver the same `caches`.
pub fn owns_shared<K, C>(
    caches: &Caches,
) -> impl Fn(kube::runtime::Controller<Compact<K>>) -> kube::runtime::Controller<Compact<K>> + use<K, C>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    C: Cacheable,
{
    let caches = caches.clone();
    move |controller| controller.owns_shared_stream(caches.changes::<C>())
}
