//! What the reconcilers of this crate share about the children they own: controller
//! references, as knative.dev/pkg's `kmeta.NewControllerRef` makes them and
//! `metav1.IsControlledBy` reads them; the refusal of a child of the same name someone else
//! controls (`NotOwned`); and failed API calls on children, worth retrying.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use knative_core::apis::KnativeObject;
use knative_core::reconciler::ReconcileError;
use kube::Resource;

/// The reason of a child the reconciled object does not control.
pub const REASON_NOT_OWNED: &str = "NotOwned";

/// A reference from a child to `owner` as its controller, blocking the owner's deletion until
/// the child is gone (Knative's `kmeta.NewControllerRef`).
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

/// Whether `child`'s controller is `owner` (same UID), as `metav1.IsControlledBy`.
pub(crate) fn is_controlled_by<K: Resource>(child: &ObjectMeta, owner: &K) -> bool {
    let Some(uid) = owner.meta().uid.as_deref() else {
        return false;
    };
    child
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| r.uid == uid)
}

/// Knative's `ResourceNotOwnedMessage`.
pub(crate) fn not_owned_message(kind: &str, name: &str) -> String {
    format!("There is an existing {kind} {name:?} that we do not own.")
}

/// Marks `condition` of `owner` False `NotOwned` for the child of `kind` named `name` it does
/// not control, and refuses to go on: retrying will not help until that object goes.
pub(crate) fn refuse_not_owned<K: KnativeObject>(
    owner: &mut K,
    condition: &str,
    kind: &str,
    name: &str,
    now: Timestamp,
) -> ReconcileError {
    let message = not_owned_message(kind, name);
    owner
        .manage_conditions(now)
        .mark_false(condition, REASON_NOT_OWNED, &message);
    ReconcileError::permanent(REASON_NOT_OWNED, message)
}

/// A failed API call on a child, worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {kind} {name:?}: {source}")]
struct ApiFailure {
    action: &'static str,
    kind: &'static str,
    name: String,
    source: kube::Error,
}

/// A transient error for a failed API call: `action` (`get`, `create`, ...) on the `kind`
/// named `name`.
pub(crate) fn api_failure(
    action: &'static str,
    kind: &'static str,
    name: &str,
    source: kube::Error,
) -> ReconcileError {
    ReconcileError::transient(ApiFailure {
        action,
        kind,
        name: name.to_owned(),
        source,
    })
}
