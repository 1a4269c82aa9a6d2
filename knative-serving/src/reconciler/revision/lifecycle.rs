//! How a Revision's conditions follow its Deployment, pods and PodAutoscaler: Knative's
//! `revision_lifecycle.go`, `serving.TransformDeploymentStatus` and the pod checks of
//! `reconcileDeployment`.

use std::sync::LazyLock;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use knative_core::apis::{ConditionSet, ConditionStatus, KnativeObject, Status};

use crate::apis::autoscaling::v1alpha1::POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED;
use crate::apis::serving::v1::{
    REVISION_CONDITION_ACTIVE, REVISION_CONDITION_CONTAINER_HEALTHY,
    REVISION_CONDITION_RESOURCES_AVAILABLE,
};
use crate::apis::{PodAutoscalerStatus, Revision};

/// Reason: the Revision's resources are being created or are not ready yet.
pub const REASON_DEPLOYING: &str = "Deploying";
/// Reason: an object of the name of one of the Revision's children exists but is not the
/// Revision's.
pub use crate::reconciler::children::REASON_NOT_OWNED;
/// Reason: the Revision's pods did not become available in time.
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// The Event the Revision gets when it becomes Ready.
pub const REASON_REVISION_READY: &str = "RevisionReady";

/// The reason of a PodAutoscaler that never reached its initial scale.
const PA_REASON_TIMED_OUT: &str = "TimedOut";
const DEPLOYMENT_PROGRESSING: &str = "Progressing";
const DEPLOYMENT_REPLICA_SET_READY: &str = "ReplicaSetReady";

/// Whether the Revision is Ready for its current generation (`Revision.IsReady`).
pub(crate) fn is_ready(rev: &Revision) -> bool {
    let status = rev.status.as_ref().map(|s| &s.status);
    status.and_then(|s| s.observed_generation) == rev.metadata.generation
        && status
            .and_then(|s| s.get_condition(Revision::condition_set().happy()))
            .is_some_and(|c| c.is_true())
}

/// Whether condition `t` of the Revision is True.
pub(crate) fn is_true(rev: &Revision, t: &str) -> bool {
    condition_status(rev, t) == Some(ConditionStatus::True)
}

fn condition_status(rev: &Revision, t: &str) -> Option<ConditionStatus> {
    rev.status
        .as_ref()
        .and_then(|s| s.status.get_condition(t))
        .map(|c| c.status)
}

/// `PropagateDeploymentStatus`: `ResourcesAvailable` follows the Deployment's readiness, which
/// is its `Progressing` condition and the inverse of its `ReplicaFailure` condition
/// (`TransformDeploymentStatus`).
pub(crate) fn propagate_deployment_status(
    rev: &mut Revision,
    status: Option<&DeploymentStatus>,
    now: Timestamp,
) {
    static SET: LazyLock<ConditionSet> = LazyLock::new(|| {
        ConditionSet::living(&[DEPLOYMENT_PROGRESSING, DEPLOYMENT_REPLICA_SET_READY])
    });
    let mut transformed = Status::default();
    let mut manager = SET.manage(&mut transformed, now);
    manager.initialize_conditions();
    // The absence of a ReplicaFailure condition means no failure.
    manager.mark_true(DEPLOYMENT_REPLICA_SET_READY);
    for cond in status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        let reason = cond.reason.as_deref().unwrap_or_default();
        let message = cond.message.as_deref().unwrap_or_default();
        match (cond.type_.as_str(), cond.status.as_str()) {
            ("Progressing", "True") => manager.mark_true(DEPLOYMENT_PROGRESSING),
            ("Progressing", "False") => manager.mark_false(DEPLOYMENT_PROGRESSING, reason, message),
            ("Progressing", "Unknown") => {
                manager.mark_unknown(DEPLOYMENT_PROGRESSING, reason, message);
            }
            ("ReplicaFailure", "True") => {
                manager.mark_false(DEPLOYMENT_REPLICA_SET_READY, reason, message);
            }
            ("ReplicaFailure", "False") => manager.mark_true(DEPLOYMENT_REPLICA_SET_READY),
            ("ReplicaFailure", "Unknown") => {
                manager.mark_unknown(DEPLOYMENT_REPLICA_SET_READY, reason, message);
            }
            _ => {}
        }
    }
    let Some(ready) = manager.get_top_level_condition().cloned() else {
        return;
    };
    let reason = ready.reason.as_deref().unwrap_or_default();
    let message = ready.message.as_deref().unwrap_or_default();
    let mut conditions = rev.manage_conditions(now);
    match ready.status {
        ConditionStatus::True => conditions.mark_true(REVISION_CONDITION_RESOURCES_AVAILABLE),
        ConditionStatus::False => {
            conditions.mark_false(REVISION_CONDITION_RESOURCES_AVAILABLE, reason, message);
        }
        ConditionStatus::Unknown => {
            conditions.mark_unknown(REVISION_CONDITION_RESOURCES_AVAILABLE, reason, message);
        }
    }
}

/// Whether the Deployment gave up progressing (`Progressing` False, `ProgressDeadlineExceeded`).
pub(crate) fn has_deployment_timed_out(deployment: &Deployment) -> bool {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.status == "False"
                && c.type_ == "Progressing"
                && c.reason.as_deref() == Some(REASON_PROGRESS_DEADLINE_EXCEEDED)
        })
}

/// The pod checks of `reconcileDeployment`, for a Deployment that wants pods and has none
/// available: an unschedulable pod makes the resources unavailable (the scheduler's reason); a
/// serving container that terminated makes the container unhealthy (`ExitCode<N>`, with its
/// termination message); one still waiting once the Deployment timed out (an image that cannot
/// be pulled, say) makes the resources unavailable with the waiting reason and message.
pub(crate) fn propagate_pod_status(
    rev: &mut Revision,
    pod: &Pod,
    serving_container: &str,
    deployment_timed_out: bool,
    now: Timestamp,
) {
    let Some(status) = pod.status.as_ref() else {
        return;
    };
    let mut conditions = rev.manage_conditions(now);
    if let Some(unschedulable) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        conditions.mark_false(
            REVISION_CONDITION_RESOURCES_AVAILABLE,
            unschedulable.reason.as_deref().unwrap_or_default(),
            unschedulable.message.as_deref().unwrap_or_default(),
        );
    }
    let Some(container) = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == serving_container)
    else {
        return;
    };
    if let Some(terminated) = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
    {
        let message = terminated.message.as_deref().unwrap_or_default();
        // With nothing to say, still say something.
        let message = if terminated.exit_code == 0 && message.is_empty() {
            "container exited with no error"
        } else {
            message
        };
        conditions.mark_false(
            REVISION_CONDITION_CONTAINER_HEALTHY,
            &format!("ExitCode{}", terminated.exit_code),
            &format!("Container failed with: {message}"),
        );
    } else if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref())
        && deployment_timed_out
    {
        conditions.mark_false(
            REVISION_CONDITION_RESOURCES_AVAILABLE,
            waiting.reason.as_deref().unwrap_or_default(),
            waiting.message.as_deref().unwrap_or_default(),
        );
    }
}

/// `PropagateAutoscalerStatus`: replicas from the PodAutoscaler's scales; `Active` from its
/// readiness; resources available and containers healthy once it reached its initial scale
/// and has a Service (unless the Deployment or pods said otherwise); a PodAutoscaler that timed
/// out before reaching its initial scale fails the Revision.
pub(crate) fn propagate_autoscaler_status(
    rev: &mut Revision,
    pa: &PodAutoscalerStatus,
    now: Timestamp,
) {
    let unavailable = condition_status(rev, REVISION_CONDITION_RESOURCES_AVAILABLE)
        == Some(ConditionStatus::False)
        || condition_status(rev, REVISION_CONDITION_CONTAINER_HEALTHY)
            == Some(ConditionStatus::False);
    let status = rev.status.get_or_insert_with(Default::default);
    status.actual_replicas = pa.actual_scale.filter(|s| *s >= 0);
    status.desired_replicas = pa.desired_scale.filter(|s| *s >= 0);

    let initialized = pa
        .status
        .get_condition(POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED)
        .is_some_and(|c| c.is_true());
    let mut conditions = rev.manage_conditions(now);
    let Some(ready) = pa.status.get_condition("Ready") else {
        conditions.mark_unknown(REVISION_CONDITION_ACTIVE, REASON_DEPLOYING, "");
        if !unavailable {
            conditions.mark_unknown(REVISION_CONDITION_RESOURCES_AVAILABLE, REASON_DEPLOYING, "");
        }
        return;
    };
    // Don't mark the resources available if the Deployment already said they are not.
    if initialized && !unavailable {
        conditions.mark_true(REVISION_CONDITION_RESOURCES_AVAILABLE);
        conditions.mark_true(REVISION_CONDITION_CONTAINER_HEALTHY);
    }
    // Not available without a Service to reach the pods (e.g. an initial scale of 0).
    let available = conditions
        .get_condition(REVISION_CONDITION_RESOURCES_AVAILABLE)
        .is_some_and(|c| c.is_true());
    if available && (pa.service_name.is_empty() || !initialized) {
        conditions.mark_unknown(REVISION_CONDITION_RESOURCES_AVAILABLE, REASON_DEPLOYING, "");
    }
    let reason = ready.reason.as_deref().unwrap_or_default();
    let message = ready.message.as_deref().unwrap_or_default();
    match ready.status {
        ConditionStatus::Unknown => {
            conditions.mark_unknown(REVISION_CONDITION_ACTIVE, reason, message);
        }
        ConditionStatus::False => {
            // Scaled to zero without ever reaching the initial scale: the deadline was missed.
            // Only a timed-out PodAutoscaler says so; one without traffic is merely idle.
            if !initialized
                && !unavailable
                && !pa.service_name.is_empty()
                && reason == PA_REASON_TIMED_OUT
            {
                conditions.mark_false(
                    REVISION_CONDITION_RESOURCES_AVAILABLE,
                    REASON_PROGRESS_DEADLINE_EXCEEDED,
                    "Initial scale was never achieved",
                );
            }
            conditions.mark_false(REVISION_CONDITION_ACTIVE, reason, message);
        }
        ConditionStatus::True => conditions.mark_true(REVISION_CONDITION_ACTIVE),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentCondition;
    use knative_core::apis::Condition;

    use super::*;
    use crate::apis::RevisionSpec;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    /// A Revision as the driver hands it over: conditions initialised.
    fn revision() -> Revision {
        let mut rev = Revision::new("r", RevisionSpec::default());
        rev.manage_conditions(now()).initialize_conditions();
        rev
    }

    fn condition<'a>(rev: &'a Revision, t: &str) -> &'a Condition {
        rev.status
            .as_ref()
            .and_then(|s| s.status.get_condition(t))
            .unwrap_or_else(|| panic!("no condition {t}"))
    }

    fn deployment_status(conditions: &[(&str, &str, &str)]) -> DeploymentStatus {
        DeploymentStatus {
            conditions: Some(
                conditions
                    .iter()
                    .map(|(t, s, r)| DeploymentCondition {
                        type_: (*t).to_owned(),
                        status: (*s).to_owned(),
                        reason: Some((*r).to_owned()),
                        message: Some(format!("{t} is {s}")),
                        ..DeploymentCondition::default()
                    })
                    .collect(),
            ),
            ..DeploymentStatus::default()
        }
    }

    #[test]
    fn a_progressing_deployment_without_failures_makes_resources_available() {
        let mut rev = revision();
        let status = deployment_status(&[("Progressing", "True", "NewReplicaSetAvailable")]);
        propagate_deployment_status(&mut rev, Some(&status), now());
        assert!(condition(&rev, "ResourcesAvailable").is_true());
    }

    #[test]
    fn a_replica_failure_makes_resources_unavailable_with_its_reason() {
        let mut rev = revision();
        let status = deployment_status(&[
            ("Progressing", "True", "ReplicaSetUpdated"),
            ("ReplicaFailure", "True", "FailedCreate"),
        ]);
        propagate_deployment_status(&mut rev, Some(&status), now());
        let available = condition(&rev, "ResourcesAvailable");
        assert!(available.is_false());
        assert_eq!(available.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(available.message.as_deref(), Some("ReplicaFailure is True"));
    }

    #[test]
    fn a_deployment_without_conditions_leaves_resources_unknown() {
        let mut rev = revision();
        propagate_deployment_status(&mut rev, None, now());
        assert!(condition(&rev, "ResourcesAvailable").is_unknown());
    }

    #[test]
    fn a_ready_initialized_autoscaler_with_a_service_makes_the_revision_ready_and_active() {
        let mut rev = revision();
        let mut pa = PodAutoscalerStatus {
            service_name: "r".to_owned(),
            actual_scale: Some(1),
            desired_scale: Some(1),
            ..PodAutoscalerStatus::default()
        };
        let set = crate::apis::PodAutoscaler::condition_set();
        let mut m = set.manage(&mut pa.status, now());
        m.mark_true("ScaleTargetInitialized");
        m.mark_true("SKSReady");
        m.mark_true("Active");
        propagate_autoscaler_status(&mut rev, &pa, now());
        assert!(condition(&rev, "Ready").is_true());
        assert!(condition(&rev, "Active").is_true());
        let status = rev.status.as_ref().unwrap();
        assert_eq!(
            (status.actual_replicas, status.desired_replicas),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn an_autoscaler_that_timed_out_before_its_initial_scale_fails_the_revision() {
        let mut rev = revision();
        let mut pa = PodAutoscalerStatus {
            service_name: "r".to_owned(),
            ..PodAutoscalerStatus::default()
        };
        let set = crate::apis::PodAutoscaler::condition_set();
        set.manage(&mut pa.status, now())
            .mark_false("Active", "TimedOut", "never got there");
        propagate_autoscaler_status(&mut rev, &pa, now());
        let available = condition(&rev, "ResourcesAvailable");
        assert_eq!(
            available.reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
        assert!(condition(&rev, "Active").is_false());
    }

    #[test]
    fn an_idle_autoscaler_does_not_fail_the_revision() {
        let mut rev = revision();
        let mut pa = PodAutoscalerStatus {
            service_name: "r".to_owned(),
            ..PodAutoscalerStatus::default()
        };
        let set = crate::apis::PodAutoscaler::condition_set();
        set.manage(&mut pa.status, now())
            .mark_false("Active", "NoTraffic", "idle");
        propagate_autoscaler_status(&mut rev, &pa, now());
        assert!(!condition(&rev, "ResourcesAvailable").is_false());
        assert_eq!(
            condition(&rev, "Active").reason.as_deref(),
            Some("NoTraffic")
        );
    }
}
