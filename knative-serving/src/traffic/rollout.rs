//! Gradual rollout of a Configuration's new Revision, as pure state and steps (Knative's
//! `pkg/reconciler/route/traffic/rollout.go`), with no I/O and no clock.
//!
//! When a Configuration that a Route follows (`latestRevision: true`) gets a new ready
//! Revision and a rollout duration is set (`config-network`'s `rollout-duration`, or the
//! Route's `serving.knative.dev/rollout-duration` annotation), the traffic does not jump to it
//! at once:
//!
//! 1. [`Rollout::build`] describes where the traffic should end up: per (tag, Configuration),
//!    its share on its latest ready Revision.
//! 2. [`Rollout::step`] merges that with the previous state (kept as JSON in the Ingress'
//!    [`ROLLOUT_ANNOTATION_KEY`] annotation). A new Revision starts at 1%, taken from the
//!    newest Revision that still has traffic, and the rollout's start time is stamped.
//! 3. Once the Ingress has programmed that first 1% ([`Rollout::observe_ready`]), the time it
//!    took is the smallest step duration: the rest of the duration is divided into equal steps
//!    of at least 1% and at least that long.
//! 4. Each later [`Rollout::step`] at or after `nextStepTime` moves one step of traffic from
//!    the older Revisions (the newest of them first) to the new one, until it has it all.
//!
//! A Configuration whose share changes mid-rollout gives the difference to (or takes it from)
//! its Revisions; a newer Revision arriving mid-rollout starts a new rollout that keeps the
//! older ones' shares and drains them in turn.
//!
//! ```
//! use k8s_openapi::jiff::Timestamp;
//! use knative_serving::traffic::rollout::{ConfigurationRollout, Rollout, RevisionRollout};
//! use std::time::Duration;
//!
//! let at = |secs: i64| Timestamp::from_second(secs).unwrap();
//! let on = |revision: &str| Rollout {
//!     configurations: vec![ConfigurationRollout {
//!         configuration_name: "hello".into(),
//!         percent: 100,
//!         revisions: vec![RevisionRollout { revision_name: revision.into(), percent: 100 }],
//!         ..Default::default()
//!     }],
//! };
//!
//! // hello-00002 becomes ready: 1% moves to it at once.
//! let (mut state, next) = on("hello-00002").step(Some(on("hello-00001")), at(1000));
//! assert_eq!(state.configurations[0].revisions[1].percent, 1);
//! assert_eq!(next, None);
//!
//! // The Ingress took 1s to program it: the other 59s go in steps of 2% every second.
//! state.observe_ready(at(1001), Duration::from_secs(60));
//! let (state, next) = on("hello-00002").step(Some(state), at(1002));
//! assert_eq!(state.configurations[0].revisions[1].percent, 3);
//! assert_eq!(next, Some(at(1003)));
//! ```

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Config, DEFAULT_TARGET};
use crate::apis::TrafficTarget;

/// The annotation on a Route's Ingress that keeps the rollout state as JSON (Knative's
/// `networking.RolloutAnnotationKey`).
pub const ROLLOUT_ANNOTATION_KEY: &str = "networking.internal.knative.dev/rollout";

/// The rollout state of a Route: one entry per (tag, Configuration) that receives traffic
/// through `latestRevision: true`, sorted by tag, then by Configuration name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The Configurations' rollouts. Only the default target (`""`) has more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configurations: Vec<ConfigurationRollout>,
}

/// The rollout of one Configuration under one tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRollout {
    /// The Configuration.
    #[serde(default)]
    pub configuration_name: String,
    /// The tag; empty for the default target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// The Configuration's share of the tag's traffic; the Revisions' shares sum to it.
    #[serde(default)]
    pub percent: i64,
    /// The Revisions receiving that traffic, oldest first. One (or none) in steady state; during
    /// a rollout the last one is the Revision rolled out to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<RevisionRollout>,
    /// Timing and size of the steps.
    #[serde(default)]
    pub step_params: RolloutParams,
}

/// One Revision in a Configuration's rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRollout {
    /// The Revision.
    #[serde(default)]
    pub revision_name: String,
    /// Its share of the tag's traffic (not of the Configuration's).
    #[serde(default)]
    pub percent: i64,
}

/// The timing and size of a Configuration's rollout steps; all zero when no rollout runs.
/// Times are Unix nanoseconds, as Knative writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutParams {
    /// When the rollout started (the new Revision got its first 1%).
    #[serde(
        rename = "starttime",
        alias = "startTime",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub start_time: i64,
    /// When the next step is due.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_step_time: i64,
    /// Nanoseconds between two steps; 0 until the Ingress has programmed the first 1%.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_duration: i64,
    /// The percentage moved by one step.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_size: i64,
}

/// A rollout annotation that cannot be used: the reconciler then starts from no previous
/// state, as Knative does.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRollout {
    /// Not the JSON of a [`Rollout`].
    #[error("rollout annotation is not a rollout: {0}")]
    Json(#[from] serde_json::Error),
    /// The shares or step sizes do not add up.
    #[error("rollout annotation is inconsistent: {0}")]
    Inconsistent(String),
}

impl Rollout {
    /// The rollout the resolved traffic asks for, with no history (Knative's `BuildRollout`):
    /// every target that follows a Configuration's latest Revision and has traffic, at its
    /// share, entirely on that Revision.
    pub fn build(traffic: &Config) -> Self {
        let mut rollout = Self::default();
        for (tag, targets) in &traffic.targets {
            for target in targets {
                if target.latest_revision != Some(true) || target.percent() == 0 {
                    continue;
                }
                rollout.configurations.push(ConfigurationRollout {
                    configuration_name: target.configuration_name.clone().unwrap_or_default(),
                    tag: tag.clone(),
                    percent: target.percent(),
                    revisions: vec![RevisionRollout {
                        revision_name: target.revision_name.clone(),
                        percent: target.percent(),
                    }],
                    step_params: RolloutParams::default(),
                });
            }
        }
        rollout.sort();
        rollout
    }

    /// Reads the rollout state from its annotation, keeping it only when it is consistent
    /// (Knative's `deserializeRollout` and `Validate`).
    ///
    /// # Errors
    /// When the text is not a rollout, or its shares or step sizes do not add up.
    pub fn parse(annotation: &str) -> Result<Self, InvalidRollout> {
        let mut rollout: Self = serde_json::from_str(annotation)?;
        rollout.validate()?;
        // Stepping relies on the order; a hand-edited annotation may not keep it.
        rollout.sort();
        Ok(rollout)
    }

    /// The annotation value of this state.
    pub fn to_annotation(&self) -> String {
        // Plain strings and integers always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the state is consistent (Knative's `Validate`): no share above 100%, the
    /// Revisions' shares sum to their Configuration's, the step size is within the share. Also
    /// refuses negative shares and step durations, which no step ever writes.
    ///
    /// # Errors
    /// What does not add up.
    pub fn validate(&self) -> Result<(), InvalidRollout> {
        for c in &self.configurations {
            let name = &c.configuration_name;
            if !(0..=100).contains(&c.percent) {
                return Err(InvalidRollout::Inconsistent(format!(
                    "configuration {name:?} has {}%",
                    c.percent
                )));
            }
            let p = &c.step_params;
            if p.step_size < 0 || p.step_size > c.percent || p.step_duration < 0 {
                return Err(InvalidRollout::Inconsistent(format!(
                    "configuration {name:?} steps {}% every {}ns out of {}%",
                    p.step_size, p.step_duration, c.percent
                )));
            }
            if c.revisions.iter().any(|r| r.percent < 0) {
                return Err(InvalidRollout::Inconsistent(format!(
                    "configuration {name:?} has a negative revision share"
                )));
            }
            let total: i64 = c.revisions.iter().map(|r| r.percent).sum();
            if total != c.percent {
                return Err(InvalidRollout::Inconsistent(format!(
                    "the revisions of configuration {name:?} have {total}%, not {}%",
                    c.percent
                )));
            }
        }
        Ok(())
    }

    /// Whether no Configuration is being rolled out.
    pub fn done(&self) -> bool {
        self.configurations.iter().all(ConfigurationRollout::done)
    }

    /// The rollouts of tag `tag` (Knative's `RolloutsByTag`).
    pub fn rollouts_by_tag(&self, tag: &str) -> &[ConfigurationRollout] {
        let start = self
            .configurations
            .partition_point(|c| c.tag.as_str() < tag);
        let len = self.configurations[start..]
            .iter()
            .take_while(|c| c.tag == tag)
            .count();
        &self.configurations[start..start + len]
    }

    /// The rollout of Configuration `configuration` under tag `tag`.
    pub fn configuration(&self, tag: &str, configuration: &str) -> Option<&ConfigurationRollout> {
        self.rollouts_by_tag(tag)
            .iter()
            .find(|c| c.configuration_name == configuration)
    }

    /// Records that the Ingress has programmed the state (Knative's `ObserveReady`): every
    /// rollout that started but has no step duration yet gets its steps, sized so that the
    /// rest of `duration` is used up in steps no shorter than the first 1% took.
    pub fn observe_ready(&mut self, now: Timestamp, duration: Duration) {
        let now = unix_nanos(now);
        for c in &mut self.configurations {
            if c.step_params.step_duration == 0 && c.step_params.start_time > 0 {
                let elapsed = now.saturating_sub(c.step_params.start_time) as f64 / NANOS_PER_SEC;
                // Clock drift aside, it always took some time: at least a second.
                let min_step_secs = elapsed.ceil().max(1.0);
                c.compute_properties(now as f64, min_step_secs, duration.as_secs_f64());
            }
        }
    }

    /// Merges the wanted state (`self`, from [`Rollout::build`]) with the previous one and
    /// returns the state to program, and when the next step is due (Knative's `Step`).
    ///
    /// Per (tag, Configuration) present in both: a new Revision starts a rollout at 1%; a
    /// rollout in progress moves a step when it is due; a changed share is given to the newest
    /// Revision or taken from the oldest. Configurations with 1% are not rolled out (they have
    /// nothing to move); new tags and Configurations start at their goal.
    pub fn step(self, prev: Option<Rollout>, now: Timestamp) -> (Rollout, Option<Timestamp>) {
        let Some(prev) = prev.filter(|p| !p.configurations.is_empty()) else {
            return (self, None);
        };
        let now_ns = unix_nanos(now);
        let mut prev_by_tag = group_by_tag(prev.configurations);
        let mut stepped = Vec::new();
        let mut next_step: Option<i64> = None;
        for (tag, goals) in group_by_tag(self.configurations) {
            let Some(prevs) = prev_by_tag.remove(&tag) else {
                // A tag with no history goes straight to its goal.
                stepped.extend(goals);
                continue;
            };
            let mut prevs = prevs.into_iter().peekable();
            for goal in goals {
                // Configurations that are gone are no longer rolled out.
                while prevs
                    .next_if(|p| p.configuration_name < goal.configuration_name)
                    .is_some()
                {}
                match prevs.next_if(|p| p.configuration_name == goal.configuration_name) {
                    Some(p) if goal.percent > 1 => {
                        let c = step_config(goal, p, now_ns);
                        let nst = c.step_params.next_step_time;
                        if nst > 0 && next_step.is_none_or(|n| nst < n) {
                            next_step = Some(nst);
                        }
                        stepped.push(c);
                    }
                    // With 1% (a common A/B test share) there is nothing to roll out.
                    Some(_) if goal.percent == 1 => stepped.push(goal),
                    // With no traffic there is nothing to roll out either.
                    Some(_) => {}
                    None if goal.percent != 0 => stepped.push(goal),
                    None => {}
                }
            }
        }
        let mut rollout = Rollout {
            configurations: stepped,
        };
        rollout.sort();
        let next = next_step.and_then(|ns| Timestamp::from_nanosecond(i128::from(ns)).ok());
        (rollout, next)
    }

    /// A Route's status traffic during a rollout (Knative's `GetRevisionTrafficTargets` with a
    /// rollout): `status` holds one entry per resolved target of `traffic` (as
    /// [`Config::status_traffic`] makes them); an entry that follows a Configuration under
    /// rollout becomes one entry per Revision of that rollout, with its share.
    pub fn status_traffic(
        &self,
        traffic: &Config,
        status: Vec<TrafficTarget>,
    ) -> Vec<TrafficTarget> {
        let mut out = Vec::with_capacity(status.len());
        for (target, entry) in traffic.revision_targets.iter().zip(status) {
            let rollout = if target.latest_revision == Some(true) {
                self.configuration(
                    target.tag.as_deref().unwrap_or(DEFAULT_TARGET),
                    target.configuration_name.as_deref().unwrap_or_default(),
                )
            } else {
                None
            };
            match rollout {
                Some(c) => out.extend(c.revisions.iter().map(|r| TrafficTarget {
                    revision_name: Some(r.revision_name.clone()),
                    percent: Some(r.percent),
                    ..entry.clone()
                })),
                None => out.push(entry),
            }
        }
        out
    }

    fn sort(&mut self) {
        self.configurations.sort_by(|a, b| {
            (a.tag.as_str(), a.configuration_name.as_str())
                .cmp(&(b.tag.as_str(), b.configuration_name.as_str()))
        });
    }
}

impl ConfigurationRollout {
    /// Whether no rollout is in progress: at most one Revision has the traffic.
    pub fn done(&self) -> bool {
        self.revisions.len() < 2
    }

    /// Sizes the steps when the first 1% has been programmed, `min_step_secs` after the start
    /// (Knative's `computeProperties`): the rest of the duration in equal steps of at least 1%
    /// and at least `min_step_secs`, the step size rounded to the nearest percent (rounding
    /// down would nearly double the duration of large steps: 1.9 → 1).
    fn compute_properties(&mut self, now_ns: f64, min_step_secs: f64, duration_secs: f64) {
        // The first step already took `min_step_secs` of the duration; a duration already used
        // up leaves a single step.
        let duration_secs = (duration_secs - min_step_secs).max(1.0);
        let mut num_steps = (duration_secs / min_step_secs).max(1.0);
        // 1% has moved; the smallest step is 1%.
        let remaining_percent = (self.percent - 1) as f64;
        if remaining_percent < num_steps {
            num_steps = remaining_percent;
        }
        let step_size = (remaining_percent / num_steps).round();
        let step_duration = duration_secs / num_steps * NANOS_PER_SEC;
        self.step_params.step_duration = step_duration as i64;
        self.step_params.step_size = step_size as i64;
        self.step_params.next_step_time = (now_ns + step_duration) as i64;
    }
}

const NANOS_PER_SEC: f64 = 1e9;

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn unix_nanos(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// The rollouts grouped by tag, each group in Configuration-name order (the input is sorted).
fn group_by_tag(
    configurations: Vec<ConfigurationRollout>,
) -> std::collections::BTreeMap<String, Vec<ConfigurationRollout>> {
    let mut groups = std::collections::BTreeMap::<String, Vec<_>>::new();
    for c in configurations {
        groups.entry(c.tag.clone()).or_default().push(c);
    }
    groups
}

/// The state of one Configuration, from its goal (one Revision, at the goal share) and its
/// previous state (Knative's `stepConfig`).
fn step_config(
    goal: ConfigurationRollout,
    mut prev: ConfigurationRollout,
    now: i64,
) -> ConfigurationRollout {
    if !prev.revisions.is_empty() {
        adjust_percentage(goal.percent, &mut prev);
    }
    let goal_revision = goal.revisions.first().cloned();
    let mut next = ConfigurationRollout {
        // Timing starts afresh unless the same rollout continues.
        step_params: RolloutParams::default(),
        ..goal
    };
    let same_revision = match (&goal_revision, prev.revisions.last()) {
        (Some(goal), Some(last)) => goal.revision_name == last.revision_name,
        // No history, or nothing to roll out to: the goal as it is.
        _ => true,
    };
    if same_revision {
        // A rollout in progress continues; with a single Revision it is over.
        if prev.revisions.len() > 1 {
            next.revisions = prev.revisions;
            next.step_params = prev.step_params;
            // Until the Ingress has programmed the first 1% there are no steps yet.
            if next.step_params.step_size > 0 {
                step_revisions(&mut next, now);
            }
        }
        return next;
    }

    // A new Revision: it starts with 1%, taken from the newest Revision that has traffic.
    next.step_params.start_time = now;
    if let Some(newest) = prev.revisions.iter_mut().rev().find(|r| r.percent > 0) {
        newest.percent -= 1;
    }
    let mut revisions: Vec<RevisionRollout> = prev
        .revisions
        .into_iter()
        .filter(|r| r.percent != 0)
        .collect();
    if let Some(mut goal) = goal_revision {
        goal.percent = 1;
        revisions.push(goal);
    }
    next.revisions = revisions;
    next
}

/// Gives the Configuration's new share to its Revisions (Knative's `adjustPercentage`): an
/// increase goes to the newest, a decrease is taken from the oldest first (dropping those that
/// reach 0%), and no share means no rollout.
fn adjust_percentage(goal: i64, rollout: &mut ConfigurationRollout) {
    let diff = goal - rollout.percent;
    if goal == 0 {
        rollout.revisions.clear();
    } else if diff > 0 {
        if let Some(newest) = rollout.revisions.last_mut() {
            newest.percent += diff;
        }
    } else if diff < 0 {
        let mut remaining = -diff;
        let mut drained = 0;
        for r in &mut rollout.revisions {
            if r.percent > remaining {
                r.percent -= remaining;
                break;
            }
            remaining -= r.percent;
            drained += 1;
            if remaining == 0 {
                break;
            }
        }
        rollout.revisions.drain(..drained);
    }
}

/// Moves one step of traffic to the newest Revision when the step is due (Knative's
/// `stepRevisions`): taken from the next newest first, dropping Revisions that reach 0%; the
/// newest never exceeds the Configuration's share. The last step clears the step parameters.
fn step_revisions(rollout: &mut ConfigurationRollout, now: i64) {
    if now < rollout.step_params.next_step_time || rollout.revisions.len() < 2 {
        return;
    }
    let newest = rollout.revisions.len() - 1;
    let mut remaining = rollout.step_params.step_size;
    // The Revisions from `keep` up to the newest (exclusive) are drained.
    let mut keep = newest;
    for i in (0..newest).rev() {
        if remaining <= 0 {
            break;
        }
        let r = &mut rollout.revisions[i];
        if r.percent > remaining {
            r.percent -= remaining;
            break;
        }
        remaining -= r.percent;
        keep = i;
    }
    let mut target = rollout.revisions[newest].clone();
    // When the share shrank below the step, the step may overshoot it.
    target.percent = (target.percent + rollout.step_params.step_size).min(rollout.percent);
    rollout.revisions.truncate(keep);
    rollout.revisions.push(target);
    if rollout.revisions.len() > 1 {
        rollout.step_params.next_step_time = now + rollout.step_params.step_duration;
    } else {
        rollout.step_params = RolloutParams::default();
    }
}

#[cfg(test)]
mod tests {
    //! Knative's `rollout_test.go`, case for case (the step-size cases of `ObserveReady` follow
    //! the current algorithm, which takes the first step's time off the duration).

    use std::collections::BTreeMap;

    use super::*;
    use crate::apis::networking::ProtocolType;
    use crate::traffic::RevisionTarget;

    const NOW: i64 = 2020;

    fn ts(ns: i64) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(ns)).unwrap()
    }

    fn rev(name: &str, percent: i64) -> RevisionRollout {
        RevisionRollout {
            revision_name: name.into(),
            percent,
        }
    }

    fn cfg(name: &str, percent: i64, revisions: &[(&str, i64)]) -> ConfigurationRollout {
        ConfigurationRollout {
            configuration_name: name.into(),
            percent,
            revisions: revisions.iter().map(|(n, p)| rev(n, *p)).collect(),
            ..ConfigurationRollout::default()
        }
    }

    fn tagged(tag: &str, c: ConfigurationRollout) -> ConfigurationRollout {
        ConfigurationRollout {
            tag: tag.into(),
            ..c
        }
    }

    fn params(start: i64, next: i64, duration: i64, size: i64) -> RolloutParams {
        RolloutParams {
            start_time: start,
            next_step_time: next,
            step_duration: duration,
            step_size: size,
        }
    }

    fn started(start: i64) -> RolloutParams {
        params(start, 0, 0, 0)
    }

    fn with(c: ConfigurationRollout, step_params: RolloutParams) -> ConfigurationRollout {
        ConfigurationRollout { step_params, ..c }
    }

    fn ro(configurations: Vec<ConfigurationRollout>) -> Rollout {
        Rollout { configurations }
    }

    /// Steps `cur` from `prev` at [`NOW`] and checks the state, its validity and the next step.
    fn assert_step(cur: Rollout, prev: Option<Rollout>, want: Rollout, want_next: Option<i64>) {
        let (got, next) = cur.step(prev, ts(NOW));
        assert_eq!(got, want);
        assert!(got.validate().is_ok(), "invalid: {got:?}");
        assert_eq!(next, want_next.map(ts));
    }

    // --- Step -------------------------------------------------------------------------------

    #[test]
    fn without_a_previous_state_the_goal_is_taken_as_it_is() {
        assert_step(ro(vec![]), None, ro(vec![]), None);
    }

    #[test]
    fn a_previous_configuration_without_revisions_takes_the_goal() {
        let goal = ro(vec![cfg("mick", 100, &[("let-it-bleed", 100)])]);
        assert_step(
            goal.clone(),
            Some(ro(vec![cfg("mick", 100, &[])])),
            goal,
            None,
        );
    }

    #[test]
    fn the_same_revision_is_not_rolled_out_and_has_no_step_params() {
        assert_step(
            ro(vec![with(
                cfg("mick", 100, &[("let-it-bleed", 100)]),
                params(2004, 2009, 2020, 14),
            )]),
            Some(ro(vec![cfg("mick", 100, &[("let-it-bleed", 100)])])),
            ro(vec![cfg("mick", 100, &[("let-it-bleed", 100)])]),
            None,
        );
    }

    #[test]
    fn a_due_step_moves_step_size_from_the_old_revision_to_the_new_one() {
        assert_step(
            ro(vec![cfg("mick", 100, &[("let-it-bleed", 100)])]),
            Some(ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("their-satanic-majesties-request", 95), ("let-it-bleed", 5)],
                ),
                params(2004, 2019, 5, 3),
            )])),
            ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("their-satanic-majesties-request", 92), ("let-it-bleed", 8)],
                ),
                params(2004, NOW + 5, 5, 3),
            )]),
            Some(NOW + 5),
        );
    }

    #[test]
    fn every_configuration_steps_and_the_earliest_next_step_is_returned() {
        assert_step(
            ro(vec![
                cfg("mick", 42, &[("let-it-bleed", 42)]),
                cfg("keith", 52, &[("beggars-banquet", 52)]),
            ]),
            Some(ro(vec![
                with(
                    cfg(
                        "mick",
                        42,
                        &[("their-satanic-majesties-request", 37), ("let-it-bleed", 5)],
                    ),
                    params(1961, 2019, 43, 3),
                ),
                with(
                    cfg(
                        "keith",
                        52,
                        &[("sticky-fingers", 36), ("beggars-banquet", 16)],
                    ),
                    params(1971, 2018, 55, 4),
                ),
            ])),
            ro(vec![
                with(
                    cfg(
                        "keith",
                        52,
                        &[("sticky-fingers", 32), ("beggars-banquet", 20)],
                    ),
                    params(1971, NOW + 55, 55, 4),
                ),
                with(
                    cfg(
                        "mick",
                        42,
                        &[("their-satanic-majesties-request", 34), ("let-it-bleed", 8)],
                    ),
                    params(1961, NOW + 43, 43, 3),
                ),
            ]),
            Some(NOW + 43),
        );
    }

    #[test]
    fn a_newer_revision_mid_rollout_starts_a_new_rollout_beside_a_stepping_one() {
        assert_step(
            ro(vec![
                cfg("mick", 42, &[("let-it-bleed", 42)]),
                cfg("keith", 52, &[("tattoo-you", 52)]),
            ]),
            Some(ro(vec![
                with(
                    cfg(
                        "mick",
                        42,
                        &[("their-satanic-majesties-request", 37), ("let-it-bleed", 5)],
                    ),
                    params(1961, 2019, 43, 3),
                ),
                with(
                    cfg(
                        "keith",
                        52,
                        &[("sticky-fingers", 36), ("beggars-banquet", 16)],
                    ),
                    params(1971, 2018, 55, 4),
                ),
            ])),
            ro(vec![
                with(
                    cfg(
                        "keith",
                        52,
                        &[
                            ("sticky-fingers", 36),
                            ("beggars-banquet", 15),
                            ("tattoo-you", 1),
                        ],
                    ),
                    started(NOW),
                ),
                with(
                    cfg(
                        "mick",
                        42,
                        &[("their-satanic-majesties-request", 34), ("let-it-bleed", 8)],
                    ),
                    params(1961, NOW + 43, 43, 3),
                ),
            ]),
            Some(NOW + 43),
        );
    }

    #[test]
    fn no_step_is_taken_before_the_ingress_programmed_the_first_percent() {
        assert_step(
            ro(vec![with(
                cfg("mick", 100, &[("let-it-bleed", 100)]),
                params(2004, 2009, 2020, 14),
            )]),
            Some(ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("their-satanic-majesties-request", 95), ("let-it-bleed", 5)],
                ),
                started(2004),
            )])),
            ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("their-satanic-majesties-request", 95), ("let-it-bleed", 5)],
                ),
                started(2004),
            )]),
            None,
        );
    }

    #[test]
    fn a_configuration_going_to_zero_percent_leaves_the_rollout() {
        assert_step(
            ro(vec![cfg("charlie", 0, &[("aftermath", 0)])]),
            Some(ro(vec![cfg(
                "charlie",
                100,
                &[("your-satanic-majesties-request", 100)],
            )])),
            ro(vec![]),
            None,
        );
    }

    #[test]
    fn a_new_configuration_at_zero_percent_is_left_out() {
        assert_step(
            ro(vec![
                cfg("charlie", 0, &[("aftermath", 0)]),
                cfg("mick", 100, &[("between-the-buttons", 100)]),
            ]),
            Some(ro(vec![cfg("mick", 100, &[("between-the-buttons", 100)])])),
            ro(vec![cfg("mick", 100, &[("between-the-buttons", 100)])]),
            None,
        );
    }

    #[test]
    fn a_new_revision_starts_at_one_percent_and_old_step_params_are_dropped() {
        assert_step(
            ro(vec![cfg("mick", 100, &[("let-it-bleed", 100)])]),
            Some(ro(vec![with(
                cfg("mick", 100, &[("goat-head-soup", 100)]),
                params(1981, 1984, 1988, 11),
            )])),
            ro(vec![with(
                cfg("mick", 100, &[("goat-head-soup", 99), ("let-it-bleed", 1)]),
                started(NOW),
            )]),
            None,
        );
    }

    #[test]
    fn a_new_revision_with_a_lower_share_takes_the_cut_from_the_oldest_revision() {
        assert_step(
            ro(vec![cfg("mick", 33, &[("let-it-bleed", 33)])]),
            Some(ro(vec![cfg(
                "mick",
                42,
                &[("goat-head-soup", 11), ("aftermath", 31)],
            )])),
            ro(vec![with(
                cfg(
                    "mick",
                    33,
                    &[
                        ("goat-head-soup", 2),
                        ("aftermath", 30),
                        ("let-it-bleed", 1),
                    ],
                ),
                started(NOW),
            )]),
            None,
        );
    }

    #[test]
    fn a_new_revision_with_a_higher_share_gives_the_raise_to_the_newest_revision() {
        assert_step(
            ro(vec![cfg("mick", 75, &[("let-it-bleed", 75)])]),
            Some(ro(vec![cfg(
                "mick",
                25,
                &[("goat-head-soup", 11), ("aftermath", 14)],
            )])),
            ro(vec![with(
                cfg(
                    "mick",
                    75,
                    &[
                        ("goat-head-soup", 11),
                        ("aftermath", 63),
                        ("let-it-bleed", 1),
                    ],
                ),
                started(NOW),
            )]),
            None,
        );
    }

    #[test]
    fn a_configuration_with_less_than_all_traffic_rolls_within_its_share() {
        assert_step(
            ro(vec![cfg("brian", 70, &[("let-it-bleed", 70)])]),
            Some(ro(vec![cfg("brian", 70, &[("exile-on-main-st", 70)])])),
            ro(vec![with(
                cfg(
                    "brian",
                    70,
                    &[("exile-on-main-st", 69), ("let-it-bleed", 1)],
                ),
                started(NOW),
            )]),
            None,
        );
    }

    #[test]
    fn a_third_revision_takes_its_first_percent_from_the_newest_old_one() {
        assert_step(
            ro(vec![cfg("mick", 100, &[("sticky-fingers", 100)])]),
            Some(ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("goat-head-soup", 95), ("beggars-banquet", 5)],
                ),
                started(NOW - 1982),
            )])),
            ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[
                        ("goat-head-soup", 95),
                        ("beggars-banquet", 4),
                        ("sticky-fingers", 1),
                    ],
                ),
                started(NOW),
            )]),
            None,
        );
    }

    #[test]
    fn a_revision_left_with_nothing_by_a_newer_one_is_dropped() {
        assert_step(
            ro(vec![cfg("mick", 100, &[("between-the-buttons", 100)])]),
            Some(ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("goat-head-soup", 99), ("bridges-to-babylon", 1)],
                ),
                started(NOW - 1984),
            )])),
            ro(vec![with(
                cfg(
                    "mick",
                    100,
                    &[("goat-head-soup", 99), ("between-the-buttons", 1)],
                ),
                started(NOW),
            )]),
            None,
        );
    }

    #[test]
    fn a_configuration_with_one_percent_switches_at_once() {
        assert_step(
            ro(vec![cfg("mick", 1, &[("between-the-buttons", 1)])]),
            Some(ro(vec![cfg("mick", 1, &[("bridges-to-babylon", 1)])])),
            ro(vec![cfg("mick", 1, &[("between-the-buttons", 1)])]),
            None,
        );
    }

    #[test]
    fn a_new_tag_goes_straight_to_its_goal() {
        let goal = ro(vec![
            cfg("mick", 100, &[("black-on-blue", 100)]),
            tagged("jagger", cfg("mick", 100, &[("black-on-blue", 100)])),
        ]);
        assert_step(
            goal.clone(),
            Some(ro(vec![cfg("mick", 100, &[("black-on-blue", 100)])])),
            goal,
            None,
        );
    }

    #[test]
    fn a_new_default_target_keeps_every_configuration() {
        // Knative keeps only the first; the others would go unrolled until the next pass.
        let goal = ro(vec![
            cfg("keith", 50, &[("black-on-blue", 50)]),
            cfg("mick", 50, &[("it's-only-rock-n-roll", 50)]),
            tagged(
                "jagger",
                cfg("mick", 100, &[("it's-only-rock-n-roll", 100)]),
            ),
        ]);
        assert_step(
            goal.clone(),
            Some(ro(vec![tagged(
                "jagger",
                cfg("mick", 100, &[("it's-only-rock-n-roll", 100)]),
            )])),
            goal,
            None,
        );
    }

    #[test]
    fn a_deleted_configuration_leaves_and_its_share_goes_to_the_remaining_one() {
        assert_step(
            ro(vec![cfg("mick", 100, &[("it's-only-rock-n-roll", 100)])]),
            Some(ro(vec![
                cfg("keith", 50, &[("black-on-blue", 50)]),
                cfg("mick", 50, &[("it's-only-rock-n-roll", 50)]),
            ])),
            ro(vec![cfg("mick", 100, &[("it's-only-rock-n-roll", 100)])]),
            None,
        );
    }

    #[test]
    fn in_an_a_b_split_only_the_configuration_with_more_than_one_percent_rolls() {
        assert_step(
            ro(vec![
                cfg("keith", 99, &[("black-on-blue", 99)]),
                cfg("mick", 1, &[("it's-only-rock-n-roll", 1)]),
            ]),
            Some(ro(vec![
                cfg("keith", 99, &[("can't-get-no-satisfaction", 99)]),
                cfg("mick", 1, &[("get-off-my-cloud", 1)]),
            ])),
            ro(vec![
                with(
                    cfg(
                        "keith",
                        99,
                        &[("can't-get-no-satisfaction", 98), ("black-on-blue", 1)],
                    ),
                    started(NOW),
                ),
                cfg("mick", 1, &[("it's-only-rock-n-roll", 1)]),
            ]),
            None,
        );
    }

    #[test]
    fn a_new_configuration_sorting_first_is_added_without_a_rollout() {
        let goal = ro(vec![
            cfg("keith", 50, &[("black-on-blue", 50)]),
            cfg("mick", 50, &[("it's-only-rock-n-roll", 50)]),
        ]);
        assert_step(
            goal.clone(),
            Some(ro(vec![cfg(
                "mick",
                100,
                &[("it's-only-rock-n-roll", 100)],
            )])),
            goal,
            None,
        );
    }

    #[test]
    fn a_new_configuration_sorting_last_is_added_without_a_rollout() {
        let goal = ro(vec![
            cfg("keith", 50, &[("black-on-blue", 50)]),
            cfg("mick", 50, &[("it's-only-rock-n-roll", 50)]),
        ]);
        assert_step(
            goal.clone(),
            Some(ro(vec![cfg("keith", 100, &[("black-on-blue", 100)])])),
            goal,
            None,
        );
    }

    #[test]
    fn a_share_cut_below_the_old_revisions_mid_rollout_ends_the_rollout() {
        assert_step(
            ro(vec![cfg("mick", 33, &[("let-it-bleed", 33)])]),
            Some(ro(vec![with(
                cfg("mick", 42, &[("goat-head-soup", 5), ("let-it-bleed", 37)]),
                params(1961, 2019, 43, 3),
            )])),
            ro(vec![cfg("mick", 33, &[("let-it-bleed", 33)])]),
            None,
        );
    }

    #[test]
    fn a_step_that_is_not_due_keeps_the_state_and_its_time() {
        let state = with(
            cfg("mick", 100, &[("goat-head-soup", 60), ("let-it-bleed", 40)]),
            params(1961, NOW + 7, 43, 3),
        );
        assert_step(
            ro(vec![cfg("mick", 100, &[("let-it-bleed", 100)])]),
            Some(ro(vec![state.clone()])),
            ro(vec![state]),
            Some(NOW + 7),
        );
    }

    // --- ObserveReady -----------------------------------------------------------------------

    #[test]
    fn observing_the_ingress_ready_sizes_the_steps_of_started_rollouts() {
        const NOW: i64 = 200_620_092_020 + 1982;
        const OLDEN_DAYS: i64 = 198_219_841_988;
        const SEC: i64 = 1_000_000_000;
        let named = |name: &str, percent: i64, step_params: RolloutParams| ConfigurationRollout {
            configuration_name: name.into(),
            percent,
            step_params,
            ..ConfigurationRollout::default()
        };
        let mut rollout = ro(vec![
            named("has-step", 100, params(0, 0, 11, 0)),
            named("no-step-no-begin", 100, RolloutParams::default()),
            named("step-begin < 1s", 100, started(200_620_092_020)),
            named("step-begin > 1s", 100, started(OLDEN_DAYS)),
            named(
                "step-begin > 1s, step size round up",
                75,
                started(OLDEN_DAYS),
            ),
            named("Percent not 100%", 50, started(OLDEN_DAYS)),
        ]);

        rollout.observe_ready(ts(NOW), Duration::from_secs(120));

        assert_eq!(
            rollout,
            ro(vec![
                named("has-step", 100, params(0, 0, 11, 0)),
                named("no-step-no-begin", 100, RolloutParams::default()),
                // 1s for the first step leaves 119s: 99 steps of 1% every 119/99s.
                named(
                    "step-begin < 1s",
                    100,
                    params(200_620_092_020, NOW + 1_202_020_202, 1_202_020_202, 1),
                ),
                // 2.4s rounds up to 3s, leaving 117s: 39 steps of 99/39 = 2.54 → 3%.
                named(
                    "step-begin > 1s",
                    100,
                    params(OLDEN_DAYS, NOW + 3 * SEC, 3 * SEC, 3),
                ),
                // 74/39 = 1.9 rounds up to 2%.
                named(
                    "step-begin > 1s, step size round up",
                    75,
                    params(OLDEN_DAYS, NOW + 3 * SEC, 3 * SEC, 2),
                ),
                // 49/39 = 1.26 rounds down to 1%.
                named(
                    "Percent not 100%",
                    50,
                    params(OLDEN_DAYS, NOW + 3 * SEC, 3 * SEC, 1),
                ),
            ])
        );
    }

    #[test]
    fn a_first_step_slower_than_the_whole_duration_leaves_one_step() {
        const SEC: i64 = 1_000_000_000;
        let mut rollout = ro(vec![with(
            cfg("c", 100, &[("c-1", 99), ("c-2", 1)]),
            started(SEC),
        )]);
        rollout.observe_ready(ts(91 * SEC), Duration::from_secs(60));
        assert_eq!(
            rollout.configurations[0].step_params,
            params(SEC, 92 * SEC, SEC, 99)
        );
    }

    // --- adjustPercentage -------------------------------------------------------------------

    fn adjusted(goal: i64, percent: i64, shares: &[i64]) -> Vec<i64> {
        let mut c = ConfigurationRollout {
            percent,
            revisions: shares.iter().map(|p| rev("", *p)).collect(),
            ..ConfigurationRollout::default()
        };
        adjust_percentage(goal, &mut c);
        c.revisions.iter().map(|r| r.percent).collect()
    }

    #[test]
    fn an_unchanged_share_keeps_the_revisions() {
        assert_eq!(adjusted(100, 100, &[71, 29]), [71, 29]);
        assert_eq!(adjusted(42, 42, &[21, 21]), [21, 21]);
    }

    #[test]
    fn a_raised_share_goes_to_the_newest_revision() {
        assert_eq!(adjusted(75, 42, &[21, 21]), [21, 54]);
    }

    #[test]
    fn a_lowered_share_drains_the_oldest_revision_first() {
        assert_eq!(adjusted(42, 75, &[21, 54]), [42]);
        assert_eq!(adjusted(42, 75, &[21, 22, 32]), [10, 32]);
        assert_eq!(adjusted(42, 75, &[10, 5, 60]), [42]);
    }

    #[test]
    fn no_share_means_no_revisions() {
        assert_eq!(adjusted(0, 75, &[10, 5, 60]), Vec::<i64>::new());
    }

    // --- Validate ---------------------------------------------------------------------------

    #[test]
    fn inconsistent_states_are_refused() {
        let invalid = [
            (
                "config > 100%",
                ro(vec![cfg("keith", 101, &[("black-on-blue", 101)])]),
            ),
            (
                "rev more than config",
                ro(vec![cfg("keith", 42, &[("black-on-blue", 43)])]),
            ),
            (
                "revs more than config",
                ro(vec![cfg(
                    "keith",
                    42,
                    &[("black-on-blue", 41), ("smith", 3)],
                )]),
            ),
            (
                "2nd config > 100%",
                ro(vec![
                    cfg("rob", 10, &[("roy", 10)]),
                    tagged("richards", cfg("keith", 101, &[("black-on-blue", 101)])),
                ]),
            ),
            (
                "step larger than the share",
                ro(vec![with(
                    cfg("keith", 42, &[("a", 42)]),
                    params(1, 2, 3, 43),
                )]),
            ),
            (
                "negative step",
                ro(vec![with(
                    cfg("keith", 42, &[("a", 42)]),
                    params(1, 2, 3, -1),
                )]),
            ),
            (
                "negative revision share",
                ro(vec![cfg("keith", 42, &[("a", 43), ("b", -1)])]),
            ),
        ];
        for (name, rollout) in invalid {
            assert!(rollout.validate().is_err(), "{name} was accepted");
            assert!(
                Rollout::parse(&rollout.to_annotation()).is_err(),
                "{name} was parsed"
            );
        }
    }

    #[test]
    fn an_annotation_that_is_not_json_is_refused() {
        assert!(matches!(
            Rollout::parse("{configurations: nope"),
            Err(InvalidRollout::Json(_))
        ));
        assert!(matches!(
            Rollout::parse(r#"{"configurations":[{"configurationName":"c","percent":1.5}]}"#),
            Err(InvalidRollout::Json(_))
        ));
    }

    // --- Done, JSON, RolloutsByTag ----------------------------------------------------------

    #[test]
    fn a_configuration_is_done_with_at_most_one_revision() {
        assert!(cfg("one", 100, &[("roy", 100)]).done());
        assert!(cfg("no", 0, &[]).done());
        assert!(!cfg("many", 100, &[("black-on-blue", 83), ("flowers", 17)]).done());
        assert!(
            !ro(vec![
                cfg("one", 50, &[("roy", 50)]),
                cfg("many", 50, &[("a", 40), ("b", 10)])
            ])
            .done()
        );
    }

    #[test]
    fn the_state_round_trips_through_its_annotation() {
        let orig = ro(vec![
            tagged(
                "",
                with(
                    cfg("one", 100, &[("roy", 100)]),
                    params(1955, 1988, 1984, 0),
                ),
            ),
            cfg("no", 0, &[]),
            cfg("many", 100, &[("black-on-blue", 83), ("flowers", 17)]),
        ]);
        let mut want = orig.clone();
        want.sort();
        assert_eq!(Rollout::parse(&orig.to_annotation()).unwrap(), want);
    }

    #[test]
    fn the_annotation_is_written_with_knatives_field_names() {
        let state = ro(vec![
            with(
                cfg("c", 100, &[("c-00001", 97), ("c-00002", 3)]),
                params(1, 2, 3, 4),
            ),
            tagged("t", cfg("c", 100, &[("c-00002", 100)])),
        ]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&state.to_annotation()).unwrap(),
            serde_json::json!({"configurations": [
                {"configurationName": "c", "percent": 100,
                 "revisions": [{"revisionName": "c-00001", "percent": 97},
                               {"revisionName": "c-00002", "percent": 3}],
                 "stepParams": {"starttime": 1, "nextStepTime": 2, "stepDuration": 3, "stepSize": 4}},
                {"configurationName": "c", "tag": "t", "percent": 100,
                 "revisions": [{"revisionName": "c-00002", "percent": 100}],
                 "stepParams": {}},
            ]})
        );
        assert_eq!(ro(vec![]).to_annotation(), "{}");
    }

    #[test]
    fn rollouts_are_found_by_tag() {
        let mut r = ro(vec![
            cfg("one", 50, &[("rob", 10), ("roy", 40)]),
            cfg("two", 40, &[("wish", 40)]),
            tagged("gilberto", cfg("two", 100, &[("wish", 100)])),
            cfg("three", 10, &[("forty-two", 5), ("flowers", 5)]),
            tagged(
                "jobim",
                cfg("three", 100, &[("forty-two", 60), ("flowers", 40)]),
            ),
        ]);
        r.sort();
        let names = |tag: &str| -> Vec<(String, String)> {
            r.rollouts_by_tag(tag)
                .iter()
                .map(|c| (c.tag.clone(), c.configuration_name.clone()))
                .collect()
        };
        let pair = |t: &str, c: &str| (t.to_owned(), c.to_owned());
        assert_eq!(
            names(""),
            [pair("", "one"), pair("", "three"), pair("", "two")]
        );
        assert_eq!(names("gilberto"), [pair("gilberto", "two")]);
        assert_eq!(names("jobim"), [pair("jobim", "three")]);
        assert!(names("nyaful").is_empty());
        assert_eq!(r.configuration("jobim", "three").unwrap().percent, 100);
        assert!(r.configuration("jobim", "two").is_none());
    }

    // --- stepRevisions ----------------------------------------------------------------------

    fn stepping(percent: i64, shares: &[i64], step_params: RolloutParams) -> ConfigurationRollout {
        ConfigurationRollout {
            percent,
            revisions: shares.iter().map(|p| rev("", *p)).collect(),
            step_params,
            ..ConfigurationRollout::default()
        }
    }

    #[test]
    fn no_step_before_it_is_due() {
        let mut c = stepping(75, &[10, 5, 60], params(0, 1984, 0, 10));
        let before = c.clone();
        step_revisions(&mut c, 1982);
        assert_eq!(c, before);
    }

    #[test]
    fn no_step_once_done() {
        let mut c = stepping(10, &[10], params(0, 1984, 10, 10));
        let before = c.clone();
        step_revisions(&mut c, 1982);
        assert_eq!(c, before);
    }

    #[test]
    fn a_step_at_its_exact_time_moves_traffic_and_schedules_the_next() {
        let mut c = stepping(90, &[30, 60], params(0, 1984, 55, 10));
        step_revisions(&mut c, 1984);
        assert_eq!(c, stepping(90, &[20, 70], params(0, 1984 + 55, 55, 10)));
    }

    #[test]
    fn a_step_drains_the_newest_old_revisions_first_and_drops_them() {
        let mut c = stepping(90, &[22, 5, 3, 60], params(0, 1984, 55, 10));
        step_revisions(&mut c, 1988);
        assert_eq!(c, stepping(90, &[20, 70], params(0, 1988 + 55, 55, 10)));
    }

    #[test]
    fn a_step_larger_than_what_is_left_ends_the_rollout_at_the_share() {
        let mut c = stepping(15, &[5, 1, 1, 8], params(0, 1984, 77, 10));
        step_revisions(&mut c, 1988);
        assert_eq!(c, stepping(15, &[15], RolloutParams::default()));
    }

    #[test]
    fn the_very_last_step_clears_the_step_params() {
        let mut c = stepping(15, &[5, 1, 1, 8], params(1977, 1984, 77, 8));
        step_revisions(&mut c, 2006);
        assert_eq!(c, stepping(15, &[15], RolloutParams::default()));
    }

    // --- BuildRollout and status ------------------------------------------------------------

    fn target(
        tag: Option<&str>,
        rev: &str,
        config: &str,
        latest: bool,
        pct: i64,
    ) -> RevisionTarget {
        RevisionTarget {
            tag: tag.map(str::to_owned),
            revision_name: rev.into(),
            configuration_name: Some(config.into()),
            latest_revision: Some(latest),
            percent: Some(pct),
            protocol: ProtocolType::Http1,
        }
    }

    #[test]
    fn the_goal_has_every_latest_revision_target_with_traffic_sorted_by_tag_and_name() {
        let traffic = Config {
            targets: [
                (
                    String::new(),
                    vec![
                        target(None, "b-1", "b", true, 40),
                        target(None, "a-3", "a", true, 30),
                        target(None, "a-1", "a", false, 30),
                        target(None, "z-1", "z", true, 0),
                    ],
                ),
                (
                    "x".to_owned(),
                    vec![target(Some("x"), "b-1", "b", true, 100)],
                ),
                (
                    "y".to_owned(),
                    vec![target(Some("y"), "a-1", "a", false, 100)],
                ),
            ]
            .into(),
            revision_targets: Vec::new(),
        };
        assert_eq!(
            Rollout::build(&traffic),
            ro(vec![
                cfg("a", 30, &[("a-3", 30)]),
                cfg("b", 40, &[("b-1", 40)]),
                tagged("x", cfg("b", 100, &[("b-1", 100)])),
            ])
        );
    }

    #[test]
    fn the_status_shows_each_revision_of_a_rollout_with_its_share() {
        let traffic = Config {
            targets: BTreeMap::new(),
            revision_targets: vec![
                target(None, "c-2", "c", true, 90),
                target(Some("old"), "c-1", "c", false, 10),
            ],
        };
        let status = vec![
            TrafficTarget {
                revision_name: Some("c-2".into()),
                latest_revision: Some(true),
                percent: Some(90),
                ..TrafficTarget::default()
            },
            TrafficTarget {
                tag: Some("old".into()),
                revision_name: Some("c-1".into()),
                latest_revision: Some(false),
                percent: Some(10),
                url: Some("http://old-r.ns.example.com".into()),
                ..TrafficTarget::default()
            },
        ];
        let rollout = ro(vec![with(
            cfg("c", 90, &[("c-1", 85), ("c-2", 5)]),
            started(1),
        )]);
        let got = rollout.status_traffic(&traffic, status.clone());
        let entry = |name: &str, pct: i64| TrafficTarget {
            revision_name: Some(name.into()),
            percent: Some(pct),
            ..status[0].clone()
        };
        assert_eq!(got, [entry("c-1", 85), entry("c-2", 5), status[1].clone()]);
    }

    #[test]
    fn a_rollout_of_60_seconds_moves_all_traffic_within_60_seconds() {
        const SEC: i64 = 1_000_000_000;
        let goal = || ro(vec![cfg("c", 100, &[("c-00002", 100)])]);
        let start = 1_000 * SEC;
        let (mut state, next) = goal().step(
            Some(ro(vec![cfg("c", 100, &[("c-00001", 100)])])),
            ts(start),
        );
        assert_eq!(
            state.configurations[0].revisions,
            [rev("c-00001", 99), rev("c-00002", 1)]
        );
        assert_eq!(next, None);

        // The Ingress programs the first 1% within half a second.
        let ready = start + SEC / 2;
        state.observe_ready(ts(ready), Duration::from_secs(60));
        let (mut state, mut next) = goal().step(Some(state), ts(ready));
        let mut shares = vec![1];
        while let Some(at) = next {
            let now = unix_nanos(at);
            (state, next) = goal().step(Some(state), at);
            assert!(state.validate().is_ok());
            let newest = state.configurations[0].revisions.last().unwrap();
            assert_eq!(newest.revision_name, "c-00002");
            assert!(
                newest.percent > *shares.last().unwrap(),
                "no progress at {now}"
            );
            shares.push(newest.percent);
            assert!(
                now - start <= 60 * SEC + SEC / 2,
                "still rolling after {}ns",
                now - start
            );
        }
        assert_eq!(state, goal());
        // 1% at once, then 2% a second: 51 programmed shares.
        assert_eq!(shares.len(), 51);
    }
}
