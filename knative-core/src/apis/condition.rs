//! Conditions and condition sets with exactly knative.dev/pkg's semantics
//! (`apis/condition_set.go`, `apis/condition_types.go`).
//!
//! A [`ConditionSet`] names a happy condition (`Ready` for long-running resources,
//! `Succeeded` for run-to-completion ones) and the dependents that gate it. A
//! [`ConditionManager`] applies the set's rules to one [`Status`]:
//!
//! ```
//! use knative_core::apis::{ConditionSet, ConditionStatus, Status};
//! use k8s_openapi::jiff::Timestamp;
//!
//! let set = ConditionSet::living(&["ConfigurationsReady", "RoutesReady"]);
//! let mut status = Status::default();
//! let mut conditions = set.manage(&mut status, Timestamp::UNIX_EPOCH);
//! conditions.initialize_conditions();
//! conditions.mark_true("ConfigurationsReady");
//! assert!(!conditions.is_happy());
//! conditions.mark_true("RoutesReady");
//! assert!(conditions.is_happy());
//! conditions.mark_false("RoutesReady", "IngressNotConfigured", "Ingress has not yet been reconciled.");
//! let ready = conditions.get_top_level_condition().unwrap();
//! assert_eq!(ready.status, ConditionStatus::False);
//! assert_eq!(ready.reason.as_deref(), Some("IngressNotConfigured"));
//! ```

use std::fmt;

use k8s_openapi::jiff::{self, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

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

impl ConditionStatus {
    /// `true` for [`ConditionStatus::True`].
    pub fn is_true(self) -> bool {
        self == ConditionStatus::True
    }
    /// `true` for [`ConditionStatus::False`].
    pub fn is_false(self) -> bool {
        self == ConditionStatus::False
    }
    /// `true` for [`ConditionStatus::Unknown`].
    pub fn is_unknown(self) -> bool {
        self == ConditionStatus::Unknown
    }
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
    /// When the condition last changed status (RFC 3339, serialised to the second like
    /// Kubernetes' `metav1.Time`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_time"
    )]
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

impl Condition {
    /// A condition of type `type_` with `status`, Error severity and nothing else set.
    pub fn new(type_: impl Into<String>, status: ConditionStatus) -> Self {
        Condition {
            type_: type_.into(),
            status,
            severity: ConditionSeverity::Error,
            last_transition_time: None,
            reason: None,
            message: None,
        }
    }
    /// Whether the condition is True.
    pub fn is_true(&self) -> bool {
        self.status.is_true()
    }
    /// Whether the condition is False.
    pub fn is_false(&self) -> bool {
        self.status.is_false()
    }
    /// Whether the condition is Unknown.
    pub fn is_unknown(&self) -> bool {
        self.status.is_unknown()
    }

    /// pkg compares conditions with `reflect.DeepEqual` after copying the old transition time,
    /// and Go has no absent string: an empty reason or message equals a missing one.
    fn same_ignoring_time(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.severity == other.severity
            && non_empty(&self.reason) == non_empty(&other.reason)
            && non_empty(&self.message) == non_empty(&other.message)
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
    ///
    /// The happy condition and duplicates are dropped from `dependents`.
    pub fn living(dependents: &[&str]) -> Self {
        Self::new(CONDITION_READY, dependents)
    }
    /// A set for run-to-completion resources whose happy condition is `Succeeded`.
    ///
    /// The happy condition and duplicates are dropped from `dependents`.
    pub fn batch(dependents: &[&str]) -> Self {
        Self::new(CONDITION_SUCCEEDED, dependents)
    }
    /// The happy condition's type.
    pub fn happy(&self) -> &str {
        &self.happy
    }
    /// The dependents' types.
    pub fn dependents(&self) -> &[String] {
        &self.dependents
    }
    /// Whether `t` is the happy condition or one of its dependents (pkg's "terminal"
    /// conditions, which have Error severity).
    pub fn is_terminal(&self, t: &str) -> bool {
        t == self.happy || self.dependents.iter().any(|d| d == t)
    }
    /// Manage `status` with this set, stamping transitions with `now`.
    pub fn manage<'a>(&'a self, status: &'a mut Status, now: Timestamp) -> ConditionManager<'a> {
        ConditionManager {
            set: self,
            status,
            now,
        }
    }

    fn new(happy: &str, dependents: &[&str]) -> Self {
        let mut deps: Vec<String> = Vec::with_capacity(dependents.len());
        for &d in dependents {
            if d != happy && !deps.iter().any(|x| x == d) {
                deps.push(d.to_owned());
            }
        }
        ConditionSet {
            happy: happy.to_owned(),
            dependents: deps,
        }
    }

    fn severity(&self, t: &str) -> ConditionSeverity {
        if self.is_terminal(t) {
            ConditionSeverity::Error
        } else {
            ConditionSeverity::Info
        }
    }
}

/// Applies a [`ConditionSet`]'s rules to one status.
///
/// Conditions the set does not name are marked with Info severity and never change the happy
/// condition; a condition is only rewritten (and its `lastTransitionTime` set to `now`) when
/// its status, severity, reason or message changes; conditions are kept sorted by type.
pub struct ConditionManager<'a> {
    set: &'a ConditionSet,
    status: &'a mut Status,
    now: Timestamp,
}

impl fmt::Debug for ConditionManager<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionManager")
            .field("set", &self.set)
            .field("status", &self.status)
            .finish()
    }
}

impl ConditionManager<'_> {
    /// Sets the happy condition to Unknown when it is missing, then every missing dependent to
    /// Unknown, or to True when the happy condition is True (it implies its dependents hold).
    /// Existing conditions are left as they are.
    pub fn initialize_conditions(&mut self) {
        let happy_status = match self.get_top_level_condition() {
            Some(happy) => happy.status,
            None => {
                let happy = Condition::new(self.set.happy.clone(), ConditionStatus::Unknown);
                self.set_condition(happy);
                ConditionStatus::Unknown
            }
        };
        let status = if happy_status.is_true() {
            ConditionStatus::True
        } else {
            ConditionStatus::Unknown
        };
        for t in &self.set.dependents {
            if self.get_condition(t).is_none() {
                self.set_condition(Condition::new(t.clone(), status));
            }
        }
    }
    /// The condition of type `t`, if present.
    pub fn get_condition(&self, t: &str) -> Option<&Condition> {
        self.status.conditions.iter().find(|c| c.type_ == t)
    }
    /// The happy condition, if present.
    pub fn get_top_level_condition(&self) -> Option<&Condition> {
        self.get_condition(&self.set.happy)
    }
    /// Whether the happy condition is True.
    pub fn is_happy(&self) -> bool {
        self.get_top_level_condition()
            .is_some_and(Condition::is_true)
    }
    /// Sets `cond`, replacing the condition of the same type; nothing changes (not even
    /// `lastTransitionTime`) when only the transition time would differ. Otherwise the new
    /// condition is stamped with `now` and the conditions are re-sorted by type.
    pub fn set_condition(&mut self, mut cond: Condition) {
        cond.reason = non_empty(&cond.reason).map(str::to_owned);
        cond.message = non_empty(&cond.message).map(str::to_owned);
        let mut conditions = Vec::with_capacity(self.status.conditions.len() + 1);
        for c in &self.status.conditions {
            if c.type_ != cond.type_ {
                conditions.push(c.clone());
            } else if cond.same_ignoring_time(c) {
                return;
            }
        }
        cond.last_transition_time = Some(self.now);
        conditions.push(cond);
        conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        self.status.conditions = conditions;
    }
    /// Marks `t` True (and recomputes the happy condition).
    ///
    /// The happy condition becomes True when no Error-severity condition is False or Unknown
    /// and every dependent is present; otherwise it copies the status, reason and message of the
    /// most recently changed False (or, failing that, Unknown) Error-severity condition.
    pub fn mark_true(&mut self, t: &str) {
        let severity = self.set.severity(t);
        self.set_condition(Condition {
            severity,
            ..Condition::new(t, ConditionStatus::True)
        });
        self.recompute_happiness(t);
    }
    /// Marks `t` True with a reason and message (the happy condition, if it becomes True, gets
    /// neither).
    pub fn mark_true_with_reason(&mut self, t: &str, reason: &str, message: &str) {
        self.set_condition(self.condition(t, ConditionStatus::True, reason, message));
        self.recompute_happiness(t);
    }
    /// Marks `t` Unknown and propagates to the happy condition: if a dependent is False the
    /// happy condition is (made) False, with this reason and message when it was not False
    /// already; otherwise, when `t` is a dependent, the happy condition becomes Unknown with this
    /// reason and message. A condition outside the set never makes the happy condition Unknown.
    pub fn mark_unknown(&mut self, t: &str, reason: &str, message: &str) {
        self.set_condition(self.condition(t, ConditionStatus::Unknown, reason, message));
        let mut is_dependent = false;
        for dep in &self.set.dependents {
            if self.get_condition(dep).is_some_and(Condition::is_false) {
                if !self
                    .get_top_level_condition()
                    .is_some_and(Condition::is_false)
                {
                    let happy = self.set.happy.clone();
                    self.mark_false(&happy, reason, message);
                }
                return;
            }
            if dep == t {
                is_dependent = true;
            }
        }
        if is_dependent {
            let happy = self.condition(&self.set.happy, ConditionStatus::Unknown, reason, message);
            self.set_condition(happy);
        }
    }
    /// Marks `t` False, and the happy condition too (with the same reason and message) when `t`
    /// is a dependent.
    pub fn mark_false(&mut self, t: &str, reason: &str, message: &str) {
        self.set_condition(self.condition(t, ConditionStatus::False, reason, message));
        if self.set.dependents.iter().any(|d| d == t) {
            let happy = self.condition(&self.set.happy, ConditionStatus::False, reason, message);
            self.set_condition(happy);
        }
    }
    /// Removes condition `t` (never the happy one).
    ///
    /// As in pkg, only conditions outside the set can be cleared: the happy condition and its
    /// dependents are left in place (pkg returns an error for them).
    pub fn clear_condition(&mut self, t: &str) {
        if self.set.is_terminal(t) || self.get_condition(t).is_none() {
            return;
        }
        self.status.conditions.retain(|c| c.type_ != t);
        self.status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    }

    fn condition(
        &self,
        t: &str,
        status: ConditionStatus,
        reason: &str,
        message: &str,
    ) -> Condition {
        Condition {
            severity: self.set.severity(t),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            ..Condition::new(t, status)
        }
    }

    fn recompute_happiness(&mut self, t: &str) {
        if let Some(unhappy) = self.find_unhappy_dependent() {
            let happy = Condition {
                reason: unhappy.reason,
                message: unhappy.message,
                ..Condition::new(self.set.happy.clone(), unhappy.status)
            };
            self.set_condition(happy);
        } else if t != self.set.happy {
            self.set_condition(Condition::new(
                self.set.happy.clone(),
                ConditionStatus::True,
            ));
        }
    }

    /// pkg's `findUnhappyDependent`: among Error-severity conditions other than the happy one
    /// (not only the set's dependents), the most recently changed False one, else the most
    /// recently changed Unknown one, else an anonymous Unknown if fewer such conditions exist
    /// than dependents. Sets without dependents are never unhappy.
    fn find_unhappy_dependent(&self) -> Option<Condition> {
        if self.set.dependents.is_empty() {
            return None;
        }
        let mut conditions: Vec<&Condition> = self
            .status
            .conditions
            .iter()
            .filter(|c| c.severity.is_error() && c.type_ != self.set.happy)
            .collect();
        // Newest first; a missing time is Go's zero time, the oldest of all.
        conditions.sort_by_key(|c| std::cmp::Reverse(c.last_transition_time));
        let found = conditions
            .iter()
            .find(|c| c.is_false())
            .or_else(|| conditions.iter().find(|c| c.is_unknown()));
        match found {
            Some(c) => Some((*c).clone()),
            None if self.set.dependents.len() > conditions.len() => {
                Some(Condition::new("", ConditionStatus::Unknown))
            }
            None => None,
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Kubernetes' `metav1.Time` is serialised to the second.
fn serialize_time<S: Serializer>(
    time: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", *t)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConditionStatus::{False, True, Unknown};

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn cond(t: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
        Condition {
            reason: Some(reason.to_owned()).filter(|r| !r.is_empty()),
            message: Some(message.to_owned()).filter(|m| !m.is_empty()),
            ..Condition::new(t, status)
        }
    }

    fn status_of(conditions: Vec<Condition>) -> Status {
        Status {
            conditions,
            ..Status::default()
        }
    }

    /// Like pkg's table tests: a living set over the given dependents, initialised, then `f`.
    fn after(
        deps: &[&str],
        conditions: Vec<Condition>,
        f: impl FnOnce(&mut ConditionManager<'_>),
    ) -> Status {
        let set = ConditionSet::living(deps);
        let mut status = status_of(conditions);
        set.manage(&mut status, at(1)).initialize_conditions();
        f(&mut set.manage(&mut status, at(100)));
        status
    }

    fn happy(status: &Status) -> (ConditionStatus, Option<&str>, Option<&str>) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .expect("Ready is set");
        (c.status, c.reason.as_deref(), c.message.as_deref())
    }

    #[test]
    fn living_and_batch_sets_name_their_happy_condition_and_never_repeat_it() {
        let living = ConditionSet::living(&["Foo", "Ready", "Bar", "Foo"]);
        assert_eq!(living.happy(), "Ready");
        assert_eq!(living.dependents(), ["Foo", "Bar"]);
        let batch = ConditionSet::batch(&["Succeeded", "Built"]);
        assert_eq!(batch.happy(), "Succeeded");
        assert_eq!(batch.dependents(), ["Built"]);
    }

    #[test]
    fn initialize_sets_missing_happy_and_dependents_unknown_with_error_severity() {
        let status = after(&["Foo"], vec![], |_| {});
        assert_eq!(status.conditions.len(), 2);
        for c in &status.conditions {
            assert_eq!(
                (c.status, c.severity, c.last_transition_time),
                (Unknown, ConditionSeverity::Error, Some(at(1)))
            );
        }
    }

    #[test]
    fn initialize_leaves_existing_conditions_alone() {
        let existing = vec![
            cond("Foo", False, "Broken", "it broke"),
            cond("Ready", False, "Broken", "it broke"),
        ];
        let status = after(&["Foo"], existing.clone(), |_| {});
        assert_eq!(status.conditions, existing);
    }

    #[test]
    fn initialize_sets_new_dependents_true_when_happy_is_already_true() {
        let set = ConditionSet::living(&["Foo"]);
        let mut status = Status::default();
        let mut m = set.manage(&mut status, at(1));
        m.initialize_conditions();
        m.mark_true("Foo");
        assert!(m.is_happy());
        let set = ConditionSet::living(&["Foo", "Bar"]);
        set.manage(&mut status, at(2)).initialize_conditions();
        assert_eq!(status.conditions.len(), 3);
        assert_eq!(status.get_condition("Bar").map(|c| c.status), Some(True));
    }

    #[test]
    fn mark_true_on_the_last_unhappy_dependent_makes_happy_true_without_reason() {
        let status = after(&["Foo", "Bar"], vec![cond("Bar", True, "", "")], |m| {
            m.mark_true_with_reason("Foo", "UnitTest", "calm down, just testing");
        });
        assert_eq!(happy(&status), (True, None, None));
        let foo = status.get_condition("Foo").unwrap();
        assert_eq!(
            (foo.reason.as_deref(), foo.message.as_deref()),
            (Some("UnitTest"), Some("calm down, just testing"))
        );
    }

    #[test]
    fn mark_true_keeps_happy_false_while_another_dependent_is_false() {
        let status = after(
            &["Foo", "Bar"],
            vec![
                cond("Ready", False, "FooReason", "FooMsg"),
                cond("Foo", False, "FooReason", "FooMsg"),
                cond("Bar", False, "BarReason", "BarMsg"),
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (False, Some("BarReason"), Some("BarMsg")));
    }

    #[test]
    fn false_dependents_trump_unknown_ones_when_recomputing_happy() {
        let status = after(
            &["Foo", "Bar", "Baz"],
            vec![
                cond("Ready", False, "FooReason", "FooMsg"),
                cond("Foo", False, "FooReason", "FooMsg"),
                cond("Bar", Unknown, "BarReason", "BarMsg"),
                cond("Baz", False, "BazReason", "BazMsg"),
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (False, Some("BazReason"), Some("BazMsg")));
    }

    #[test]
    fn an_unknown_dependent_makes_happy_unknown_with_its_reason() {
        let status = after(
            &["Foo", "Bar", "Baz"],
            vec![
                cond("Ready", False, "FooReason", "FooMsg"),
                cond("Foo", False, "FooReason", "FooMsg"),
                cond("Bar", Unknown, "BarReason", "BarMsg"),
                cond("Baz", Unknown, "BazReason", "BazMsg"),
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (Unknown, Some("BarReason"), Some("BarMsg")));
    }

    #[test]
    fn the_most_recently_changed_unhappy_dependent_wins() {
        let set = ConditionSet::living(&["A", "B", "C"]);
        let mut status = Status::default();
        set.manage(&mut status, at(1)).initialize_conditions();
        set.manage(&mut status, at(2)).mark_false("B", "BFirst", "");
        set.manage(&mut status, at(3)).mark_false("C", "CLater", "");
        // B changes again without touching the happy condition: it is now the newest.
        set.manage(&mut status, at(4))
            .set_condition(cond("B", False, "BNewest", ""));
        assert_eq!(happy(&status), (False, Some("CLater"), None));
        set.manage(&mut status, at(5)).mark_true("A");
        assert_eq!(happy(&status), (False, Some("BNewest"), None));
    }

    #[test]
    fn a_dependent_missing_from_the_status_keeps_happy_unknown() {
        let set = ConditionSet::living(&["Foo", "Bar"]);
        let mut status = status_of(vec![
            cond("Ready", False, "LongStory", "Set manually"),
            cond("Foo", True, "", ""),
        ]);
        set.manage(&mut status, at(1)).mark_true("Foo");
        assert_eq!(happy(&status), (Unknown, None, None));
    }

    #[test]
    fn mark_true_on_happy_copies_the_reason_of_a_false_dependent() {
        let status = after(
            &["Foo"],
            vec![
                cond("Ready", False, "ReadyReason", "ReadyMsg"),
                cond("Foo", False, "FooReason", "FooMsg"),
            ],
            |m| m.mark_true("Ready"),
        );
        assert_eq!(happy(&status), (False, Some("FooReason"), Some("FooMsg")));
        let status = after(&[], vec![cond("Ready", False, "", "")], |m| {
            m.mark_true("Ready")
        });
        assert_eq!(happy(&status).0, True);
    }

    #[test]
    fn info_severity_dependents_never_gate_happy() {
        let mut bar = cond("Bar", Unknown, "BarReason", "BarMsg");
        bar.severity = ConditionSeverity::Info;
        let mut baz = cond("Baz", False, "BazReason", "BazMsg");
        baz.severity = ConditionSeverity::Warning;
        let status = after(
            &["Foo"],
            vec![
                cond("Ready", False, "FooReason", "FooMsg"),
                cond("Foo", False, "", ""),
                bar,
                baz,
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (True, None, None));
    }

    #[test]
    fn error_severity_conditions_outside_the_set_still_count_like_pkg() {
        // pkg filters on severity, not on set membership: an extra True condition with Error
        // severity (e.g. read back from the API) is harmless...
        let status = after(
            &["Foo"],
            vec![
                cond("Ready", False, "LongStory", "Set manually"),
                cond("Foo", True, "", ""),
                cond("NewCondition", True, "", ""),
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (True, None, None));
        // ...but a False one gates the happy condition.
        let status = after(
            &["Foo"],
            vec![
                cond("Foo", True, "", ""),
                cond("Stale", False, "StaleReason", ""),
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (False, Some("StaleReason"), None));
    }

    #[test]
    fn conditions_outside_the_set_get_info_severity_and_leave_happy_alone() {
        let status = after(&["Foo"], vec![], |m| {
            m.mark_true("Foo");
            m.mark_false("Bar", "Broken", "but it does not matter");
        });
        assert_eq!(
            status.get_condition("Bar").map(|c| c.severity),
            Some(ConditionSeverity::Info)
        );
        assert_eq!(
            status.get_condition("Foo").map(|c| c.severity),
            Some(ConditionSeverity::Error)
        );
        assert_eq!(happy(&status), (True, None, None));
    }

    #[test]
    fn without_dependents_marking_anything_true_makes_happy_true() {
        let status = after(
            &[],
            vec![
                cond("Ready", False, "LongStory", "Set manually"),
                cond("Foo", False, "", ""),
            ],
            |m| m.mark_true("Foo"),
        );
        assert_eq!(happy(&status), (True, None, None));
    }

    #[test]
    fn mark_false_on_a_dependent_makes_happy_false_with_its_reason() {
        let status = after(
            &["Foo", "Bar"],
            vec![
                cond("Ready", True, "", ""),
                cond("Foo", True, "", ""),
                cond("Bar", True, "", ""),
            ],
            |m| m.mark_false("Foo", "UnitTest", "calm down, just testing"),
        );
        assert_eq!(
            happy(&status),
            (False, Some("UnitTest"), Some("calm down, just testing"))
        );
        assert_eq!(status.get_condition("Foo").map(|c| c.status), Some(False));
    }

    #[test]
    fn mark_false_on_happy_changes_only_happy() {
        let status = after(
            &["Foo"],
            vec![cond("Ready", True, "", ""), cond("Foo", True, "", "")],
            |m| m.mark_false("Ready", "UnitTest", ""),
        );
        assert_eq!(happy(&status), (False, Some("UnitTest"), None));
        assert_eq!(status.get_condition("Foo").map(|c| c.status), Some(True));
    }

    #[test]
    fn mark_unknown_on_a_dependent_makes_happy_unknown() {
        let status = after(
            &["Foo", "Bar"],
            vec![
                cond("Ready", True, "", ""),
                cond("Foo", True, "", ""),
                cond("Bar", True, "", ""),
            ],
            |m| m.mark_unknown("Foo", "UnitTest", "idk, just testing"),
        );
        assert_eq!(
            happy(&status),
            (Unknown, Some("UnitTest"), Some("idk, just testing"))
        );
    }

    #[test]
    fn mark_unknown_makes_happy_false_while_another_dependent_is_false() {
        let status = after(
            &["Foo", "Bar"],
            vec![
                cond("Ready", True, "", ""),
                cond("Foo", False, "", ""),
                cond("Bar", False, "BarReason", ""),
            ],
            |m| m.mark_unknown("Foo", "UnitTest", "idk, just testing"),
        );
        // pkg reuses the Unknown's reason and message for the happy condition.
        assert_eq!(
            happy(&status),
            (False, Some("UnitTest"), Some("idk, just testing"))
        );
        assert_eq!(status.get_condition("Foo").map(|c| c.status), Some(Unknown));
    }

    #[test]
    fn mark_unknown_leaves_an_already_false_happy_untouched() {
        let status = after(
            &["Foo", "Bar"],
            vec![
                cond("Ready", False, "BarReason", "BarMsg"),
                cond("Bar", False, "BarReason", "BarMsg"),
            ],
            |m| m.mark_unknown("Foo", "UnitTest", "idk"),
        );
        assert_eq!(happy(&status), (False, Some("BarReason"), Some("BarMsg")));
        // Untouched: still without the transition time it was given.
        assert_eq!(
            status.get_condition("Ready").unwrap().last_transition_time,
            None
        );
    }

    #[test]
    fn mark_unknown_outside_the_set_does_not_touch_happy() {
        let status = after(
            &["Foo"],
            vec![cond("Ready", True, "", ""), cond("Foo", True, "", "")],
            |m| m.mark_unknown("Bar", "UnitTest", "idk"),
        );
        assert_eq!(happy(&status), (True, None, None));
        assert_eq!(
            status.get_condition("Bar").map(|c| (c.status, c.severity)),
            Some((Unknown, ConditionSeverity::Info))
        );
    }

    #[test]
    fn mark_unknown_on_happy_sets_it_unknown() {
        let status = after(
            &["Foo"],
            vec![cond("Ready", True, "", ""), cond("Foo", True, "", "")],
            |m| {
                m.mark_unknown(
                    "Ready",
                    "NewObservedGenFailure",
                    "unsuccessfully observed a new generation",
                )
            },
        );
        assert_eq!(
            happy(&status),
            (
                Unknown,
                Some("NewObservedGenFailure"),
                Some("unsuccessfully observed a new generation")
            )
        );
    }

    #[test]
    fn last_transition_time_is_kept_when_nothing_changes() {
        let set = ConditionSet::living(&["Foo"]);
        let mut status = Status::default();
        set.manage(&mut status, at(10))
            .mark_false("Foo", "Broken", "msg");
        set.manage(&mut status, at(20))
            .mark_false("Foo", "Broken", "msg");
        assert_eq!(
            status.get_condition("Foo").unwrap().last_transition_time,
            Some(at(10))
        );
        assert_eq!(
            status.get_condition("Ready").unwrap().last_transition_time,
            Some(at(10))
        );
        // An empty reason equals a missing one, as Go's empty string does.
        let mut status = status_of(vec![Condition {
            reason: Some(String::new()),
            last_transition_time: Some(at(5)),
            ..Condition::new("Ready", False)
        }]);
        set.manage(&mut status, at(30))
            .set_condition(Condition::new("Ready", False));
        assert_eq!(status.conditions[0].last_transition_time, Some(at(5)));
    }

    #[test]
    fn last_transition_time_moves_when_status_reason_or_message_changes() {
        let set = ConditionSet::living(&[]);
        let mut status = status_of(vec![Condition {
            last_transition_time: Some(at(5)),
            ..Condition::new("Ready", False)
        }]);
        set.manage(&mut status, at(6))
            .set_condition(Condition::new("Ready", True));
        assert_eq!(status.conditions[0].last_transition_time, Some(at(6)));
        set.manage(&mut status, at(7))
            .mark_true_with_reason("Ready", "Because", "");
        assert_eq!(status.conditions[0].last_transition_time, Some(at(7)));
        set.manage(&mut status, at(8)).mark_true_with_reason(
            "Ready",
            "Because",
            "now with a message",
        );
        assert_eq!(status.conditions[0].last_transition_time, Some(at(8)));
    }

    #[test]
    fn conditions_are_kept_sorted_by_type() {
        let set = ConditionSet::living(&["Zeta", "Alpha"]);
        let mut status = Status::default();
        let mut m = set.manage(&mut status, at(1));
        m.initialize_conditions();
        m.mark_true("Middle");
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Alpha", "Middle", "Ready", "Zeta"]);
    }

    #[test]
    fn clear_condition_removes_only_conditions_outside_the_set() {
        let set = ConditionSet::living(&["Foo"]);
        let mut status = Status::default();
        let mut m = set.manage(&mut status, at(1));
        m.mark_true("Foo");
        m.mark_true("Bar");
        assert_eq!(m.status.conditions.len(), 3);
        m.clear_condition("Bar");
        m.clear_condition("Foo");
        m.clear_condition("Ready");
        m.clear_condition("Missing");
        assert!(m.is_happy());
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Foo", "Ready"]);
    }

    #[test]
    fn is_happy_only_when_the_happy_condition_is_true() {
        let set = ConditionSet::living(&[]);
        for (conditions, want) in [
            (vec![], false),
            (vec![cond("Foo", True, "", "")], false),
            (vec![cond("Ready", False, "", "")], false),
            (vec![cond("Ready", Unknown, "", "")], false),
            (
                vec![
                    cond("Foo", True, "", ""),
                    cond("Bar", False, "", ""),
                    cond("Ready", True, "", ""),
                ],
                true,
            ),
        ] {
            let mut status = status_of(conditions);
            assert_eq!(
                set.manage(&mut status, at(0)).is_happy(),
                want,
                "{:?}",
                status.conditions
            );
        }
        let batch = ConditionSet::batch(&[]);
        let mut status = status_of(vec![cond("Succeeded", True, "", "")]);
        assert!(batch.manage(&mut status, at(0)).is_happy());
    }

    #[test]
    fn conditions_serialise_like_knative() {
        let c = Condition {
            type_: "Ready".into(),
            status: False,
            severity: ConditionSeverity::Error,
            last_transition_time: Some("2024-05-01T12:00:00.123456789Z".parse().unwrap()),
            reason: Some("RevisionMissing".into()),
            message: Some("Configuration \"hello\" does not have any ready Revision.".into()),
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "Ready",
                "status": "False",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "reason": "RevisionMissing",
                "message": "Configuration \"hello\" does not have any ready Revision."
            })
        );
        let back: Condition = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.last_transition_time,
            Some("2024-05-01T12:00:00Z".parse().unwrap())
        );
        let info: Condition =
            serde_json::from_str(r#"{"type":"Foo","status":"Unknown","severity":"Info"}"#).unwrap();
        assert_eq!(
            (info.status, info.severity, info.last_transition_time),
            (Unknown, ConditionSeverity::Info, None)
        );
        let warning = serde_json::to_value(Condition {
            severity: ConditionSeverity::Warning,
            ..Condition::new("Foo", True)
        })
        .unwrap();
        assert_eq!(
            warning,
            serde_json::json!({"type": "Foo", "status": "True", "severity": "Warning"})
        );
        let error: Condition =
            serde_json::from_str(r#"{"type":"Foo","status":"True","severity":""}"#).unwrap();
        assert_eq!(error.severity, ConditionSeverity::Error);
    }
}
