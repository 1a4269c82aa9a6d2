//! Conditions and condition sets with exactly knative.dev/pkg's semantics.
//!
//! SKELETON: signatures are fixed; bodies are being written.

use std::fmt;

use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duck::Status;

/// The happy condition of a long-running ("living") resource.
pub const CONDITION_READY: &str = "Ready";
/// The happy condition of a run-to-completion ("batch") resource.
pub const CONDITION_SUCCEEDED: &str = "Succeeded";

/// The status of a condition: `True`, `False` or `Unknown`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known (yet) whether the condition holds.
    #[default]
    Unknown,
}

/// How much a condition that does not hold matters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ConditionSeverity {
    /// Serialised as the empty string: a dependent of the happy condition.
    #[default]
    #[serde(rename = "")]
    Error,
    /// Informational; never gates the happy condition.
    Warning,
    /// Informational; never gates the happy condition.
    Info,
}

/// One condition of a resource's status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Empty (Error), `Warning` or `Info`.
    #[serde(default, skip_serializing_if = "ConditionSeverity::is_error")]
    pub severity: ConditionSeverity,
    /// When the condition last changed status (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_transition_time: Option<Timestamp>,
    /// A one-word CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message about the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ConditionSeverity {
    /// `true` for [`ConditionSeverity::Error`] (serialised as the empty string).
    pub fn is_error(&self) -> bool {
        matches!(self, ConditionSeverity::Error)
    }
}

/// The set of conditions a kind of resource reports: a happy condition and its dependents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSet {
    happy: String,
    dependents: Vec<String>,
}

impl ConditionSet {
    /// A set for long-running resources whose happy condition is `Ready`.
    pub fn living(dependents: &[&str]) -> Self {
        unimplemented!("{dependents:?}")
    }
    /// A set for run-to-completion resources whose happy condition is `Succeeded`.
    pub fn batch(dependents: &[&str]) -> Self {
        unimplemented!("{dependents:?}")
    }
    /// The happy condition's type.
    pub fn happy(&self) -> &str {
        &self.happy
    }
    /// The dependents' types.
    pub fn dependents(&self) -> &[String] {
        &self.dependents
    }
    /// Manage `status` with this set, stamping transitions with `now`.
    pub fn manage<'a>(&'a self, status: &'a mut Status, now: Timestamp) -> ConditionManager<'a> {
        ConditionManager { set: self, status, now }
    }
}

/// Applies a [`ConditionSet`]'s rules to one status.
pub struct ConditionManager<'a> {
    set: &'a ConditionSet,
    status: &'a mut Status,
    now: Timestamp,
}

impl fmt::Debug for ConditionManager<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionManager").field("set", &self.set).field("status", &self.status).finish()
    }
}

impl ConditionManager<'_> {
    /// Sets every condition of the set that is missing to Unknown.
    pub fn initialize_conditions(&mut self) {
        unimplemented!("{}", self.now)
    }
    /// The condition of type `t`, if present.
    pub fn get_condition(&self, t: &str) -> Option<&Condition> {
        unimplemented!("{t}")
    }
    /// The happy condition, if present.
    pub fn get_top_level_condition(&self) -> Option<&Condition> {
        unimplemented!()
    }
    /// Whether the happy condition is True.
    pub fn is_happy(&self) -> bool {
        unimplemented!()
    }
    /// Marks `t` True (and recomputes the happy condition).
    pub fn mark_true(&mut self, t: &str) {
        unimplemented!("{t}")
    }
    /// Marks `t` True with a reason and message.
    pub fn mark_true_with_reason(&mut self, t: &str, reason: &str, message: &str) {
        unimplemented!("{t}{reason}{message}")
    }
    /// Marks `t` Unknown (and propagates to the happy condition).
    pub fn mark_unknown(&mut self, t: &str, reason: &str, message: &str) {
        unimplemented!("{t}{reason}{message}")
    }
    /// Marks `t` False (and propagates to the happy condition).
    pub fn mark_false(&mut self, t: &str, reason: &str, message: &str) {
        unimplemented!("{t}{reason}{message}")
    }
    /// Removes condition `t` (never the happy one).
    pub fn clear_condition(&mut self, t: &str) {
        unimplemented!("{t}")
    }
}
