//! Controller references, as knative.dev/pkg's `kmeta.NewControllerRef` makes them and
//! `metav1.IsControlledBy` reads them; shared by the reconcilers of this crate.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

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
