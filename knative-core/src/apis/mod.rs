//! Knative's API machinery: conditions, duck types and field errors.

pub mod condition;
pub mod duck;
pub mod validation;

pub use condition::{
    CONDITION_READY, CONDITION_SUCCEEDED, Condition, ConditionManager, ConditionSet,
    ConditionSeverity, ConditionStatus,
};
pub use duck::{
    AddressStatus, Addressable, AuthStatus, CloudEventAttributes, CloudEventOverrides, Destination,
    KReference, KnativeStatus, SourceSpec, SourceStatus, Status, ValidationOptions,
};
pub use validation::{CURRENT_FIELD, DiagnosticLevel, FieldError};

use k8s_openapi::jiff::Timestamp;
use kube::core::object::HasStatus;
use serde::{Serialize, de::DeserializeOwned};

/// The bounds the driver needs of a Knative resource's status type; implemented for every
/// type that meets them.
pub trait KnativeStatusType:
    KnativeStatus
    + Clone
    + Default
    + PartialEq
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<T> KnativeStatusType for T where
    T: KnativeStatus
        + Clone
        + Default
        + PartialEq
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A Knative resource: a Kubernetes object whose status embeds [`Status`] and whose
/// conditions follow a [`ConditionSet`].
///
/// Types derived with `kube::CustomResource` (with a `status`) need only name their condition set.
pub trait KnativeObject:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + HasStatus<Status: KnativeStatusType>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The conditions this kind reports.
    fn condition_set() -> &'static ConditionSet;

    /// A [`ConditionManager`] over this object's conditions (creating an empty status when
    /// there is none), stamping transitions with `now`.
    fn manage_conditions(&mut self, now: Timestamp) -> ConditionManager<'_> {
        let status = self.status_mut().get_or_insert_with(Default::default);
        Self::condition_set().manage(status.duck_mut(), now)
    }
}
