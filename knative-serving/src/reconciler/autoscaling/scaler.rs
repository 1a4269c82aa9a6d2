//! The pure decisions of Knative's KPA reconciler (`pkg/reconciler/autoscaling/kpa`: `scaler.go`
//! and `kpa.go`): scale bounds, scale to zero, the ServerlessService's mode, the number of
//! activators and the `Active` condition. No I/O and no clock: `now` and the observed state
//! are arguments.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use knative_core::apis::{Condition, ConditionStatus, KnativeObject};
use knative_core::config::{AutoscalerConfig, parse_go_duration};

use crate::apis::autoscaling::v1alpha1::{
    POD_AUTOSCALER_CONDITION_ACTIVE, POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED,
    POD_AUTOSCALER_CONDITION_SKS_READY, Reachability,
};
use crate::apis::autoscaling::{
    INITIAL_SCALE_ANNOTATION, MAX_SCALE_ANNOTATION, MIN_SCALE_ANNOTATION,
    SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION, WINDOW_ANNOTATION_KEY,
};
use crate::apis::networking::v1alpha1::{
    SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED, ServerlessServiceOperationMode,
};
use crate::apis::{PodAutoscaler, ServerlessService};
use crate::autoscaler::kpa::DeciderSpec;

/// The desired scale while the autoscaler has not decided (`scaleUnknown`).
pub const SCALE_UNKNOWN: i32 = -1;
/// The fewest activators put in front of a revision (`MinActivators`).
pub const MIN_ACTIVATORS: i32 = 2;
/// Added to the progress deadline before an activation counts as failed
/// (`activationTimeoutBuffer`).
pub const ACTIVATION_TIMEOUT_BUFFER: Duration = Duration::from_secs(10);
/// How soon to look again while the activator is not yet on the request path (Knative's probe
/// period).
pub const PROBE_PERIOD: Duration = Duration::from_secs(1);
/// The PodAutoscaler annotation overriding the progress deadline
/// (`serving.knative.dev/progress-deadline`, copied from the Revision).
pub const PROGRESS_DEADLINE_ANNOTATION_KEY: &str = "serving.knative.dev/progress-deadline";

/// `Active` False because the revision gets no traffic.
pub const REASON_NO_TRAFFIC: &str = "NoTraffic";
/// `Active` False because the revision could not be activated in time.
pub const REASON_TIMED_OUT: &str = "TimedOut";
/// `Active` Unknown while requests are buffered and pods come up.
pub const REASON_QUEUED: &str = "Queued";

/// Knative's `ScaleBounds`: `min-scale` (only for a reachable revision) and `max-scale` (0: no
/// maximum), annotations over `config-autoscaler`.
pub fn scale_bounds(pa: &PodAutoscaler, config: &AutoscalerConfig) -> (i32, i32) {
    let annotation = |key: crate::apis::autoscaling::AnnotationKey| {
        pa.metadata
            .annotations
            .as_ref()
            .and_then(|a| key.get(a))
            .and_then(|(_, v)| v.parse::<i32>().ok())
    };
    let min = if pa.spec.reachability == Reachability::Unreachable {
        0
    } else {
        annotation(MIN_SCALE_ANNOTATION).unwrap_or(config.min_scale)
    };
    let max = annotation(MAX_SCALE_ANNOTATION).unwrap_or(config.max_scale);
    (min, max)
}

/// Knative's `GetInitialScale`: the annotation, unless it asks for 0 where that is not allowed.
pub fn initial_scale(pa: &PodAutoscaler, config: &AutoscalerConfig) -> i32 {
    match pa
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| INITIAL_SCALE_ANNOTATION.get(a))
        .and_then(|(_, v)| v.parse::<i32>().ok())
    {
        Some(0) if !config.allow_zero_initial_scale => config.initial_scale,
        Some(scale) => scale,
        None => config.initial_scale,
    }
}

/// `x` within `[min, max]`, `max` 0 meaning no maximum (`applyBounds`).
pub fn apply_bounds(min: i32, max: i32, x: i32) -> i32 {
    if x < min {
        min
    } else if max != 0 && x > max {
        max
    } else {
        x
    }
}

/// The ready pods the revision needs to count as active (`activeThreshold`): its minimum scale
/// and at least one; its initial scale too until the scale target was initialised.
pub fn active_threshold(pa: &PodAutoscaler, config: &AutoscalerConfig) -> i32 {
    let (min, _) = scale_bounds(pa, config);
    if is_true(pa, POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED) {
        min.max(1)
    } else {
        min.max(initial_scale(pa, config))
    }
}

/// The PodAutoscaler's `Active` condition.
pub fn active_condition(pa: &PodAutoscaler) -> Option<&Condition> {
    condition(pa, POD_AUTOSCALER_CONDITION_ACTIVE)
}

/// `Active` Unknown: the revision is being activated (`IsActivating`).
pub fn is_activating(pa: &PodAutoscaler) -> bool {
    active_condition(pa).is_some_and(|c| c.status == ConditionStatus::Unknown)
}

/// `Active` False: the revision is scaled, or scaling, to zero (`IsInactive`).
pub fn is_inactive(pa: &PodAutoscaler) -> bool {
    active_condition(pa).is_some_and(|c| c.status == ConditionStatus::False)
}

/// `Active` True (`IsActive`).
pub fn is_active(pa: &PodAutoscaler) -> bool {
    active_condition(pa).is_some_and(|c| c.status == ConditionStatus::True)
}

/// How long `Active` has had `status` at `now`; `None` when it has another status
/// (`inStatusFor` with no extra duration; negative spans count as zero).
fn in_status_for(pa: &PodAutoscaler, status: ConditionStatus, now: Timestamp) -> Option<Duration> {
    let cond = active_condition(pa).filter(|c| c.status == status)?;
    let since = cond.last_transition_time.unwrap_or(now);
    Some(since_until(since, now))
}

fn since_until(since: Timestamp, now: Timestamp) -> Duration {
    let nanos = now.as_nanosecond() - since.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

/// The revision's stable window: `autoscaling.knative.dev/window`, else `stable-window`.
pub fn stable_window(pa: &PodAutoscaler, config: &AutoscalerConfig) -> Duration {
    pa.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(WINDOW_ANNOTATION_KEY))
        .and_then(|v| parse_go_duration(v).ok())
        .unwrap_or(config.stable_window)
}

/// How long the last pod stays after the decision to scale to zero (`lastPodRetention`).
pub fn last_pod_retention(pa: &PodAutoscaler, config: &AutoscalerConfig) -> Duration {
    pa.metadata
        .annotations
        .as_ref()
        .and_then(|a| SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION.get(a))
        .and_then(|(_, v)| parse_go_duration(v).ok())
        .unwrap_or(config.scale_to_zero_pod_retention_period)
}

/// How long an activation may take before the revision is scaled back to zero: the
/// PodAutoscaler's progress deadline (else `default`) plus [`ACTIVATION_TIMEOUT_BUFFER`].
pub fn activation_timeout(pa: &PodAutoscaler, default: Duration) -> Duration {
    pa.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROGRESS_DEADLINE_ANNOTATION_KEY))
        .and_then(|v| parse_go_duration(v).ok())
        .unwrap_or(default)
        + ACTIVATION_TIMEOUT_BUFFER
}

/// How long the ServerlessService has had the activator on the path (`ProxyFor`): since its
/// `ActivatorEndpointsPopulated` turned True; zero otherwise.
pub fn proxy_for(sks: Option<&ServerlessService>, now: Timestamp) -> Duration {
    sks.and_then(|s| s.status.as_ref())
        .and_then(|s| {
            s.status
                .get_condition(SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED)
        })
        .filter(|c| c.status == ConditionStatus::True)
        .map_or(Duration::ZERO, |c| {
            since_until(c.last_transition_time.unwrap_or(now), now)
        })
}

/// Whether the activator is on the revision's request path, which Knative learns by probing
/// it: with a target burst capacity of -1 it always is; otherwise the ServerlessService says
/// so through `ActivatorEndpointsPopulated`, or, when it reports no such condition, by being in
/// `Proxy` mode.
pub fn activator_in_path(sks: Option<&ServerlessService>, target_burst_capacity: f64) -> bool {
    if target_burst_capacity == -1.0 {
        return true;
    }
    let Some(sks) = sks else {
        return false;
    };
    let populated = sks.status.as_ref().and_then(|s| {
        s.status
            .get_condition(SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED)
    });
    match populated {
        Some(condition) => condition.status == ConditionStatus::True,
        None => sks.spec.mode == Some(ServerlessServiceOperationMode::Proxy),
    }
}

/// What [`scale`] decides for one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleOutcome {
    /// The scale the PodAutoscaler wants (its `desiredScale`); -1 while unknown.
    pub want: i32,
    /// Whether to write `want` to the scale target now.
    pub apply: bool,
    /// When to look again (a grace period or timeout running out).
    pub requeue_after: Option<Duration>,
}

/// What [`scale`] looks at besides the PodAutoscaler.
#[derive(Clone, Copy, Debug)]
pub struct ScaleInputs<'a> {
    /// `config-autoscaler`.
    pub config: &'a AutoscalerConfig,
    /// The time of this pass.
    pub now: Timestamp,
    /// The autoscaler's desired scale (-1 until it decided).
    pub decided: i32,
    /// Whether the activator is on the request path ([`activator_in_path`]).
    pub activator_in_path: bool,
    /// How long the activator has been on the request path ([`proxy_for`]).
    pub proxy_for: Duration,
    /// How long an activation may take ([`activation_timeout`]).
    pub activation_timeout: Duration,
}

/// Knative's `scaler.scale` without its I/O: the autoscaler's decision within the scale bounds
/// (and the initial scale until the target was initialised), then the scale-to-zero rules.
pub fn scale(pa: &PodAutoscaler, inputs: &ScaleInputs<'_>) -> ScaleOutcome {
    let keep = |want| ScaleOutcome {
        want,
        apply: false,
        requeue_after: None,
    };
    if inputs.decided < 0 && !is_activating(pa) {
        // Metrics are not being collected yet.
        return keep(inputs.decided);
    }
    let (mut min, max) = scale_bounds(pa, inputs.config);
    let initial = initial_scale(pa, inputs.config);
    if initial > 1 && !is_true(pa, POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED) {
        min = min.max(initial);
    }
    let desired = apply_bounds(min, max, inputs.decided);
    handle_scale_to_zero(pa, inputs, desired)
}

/// Knative's `handleScaleToZero`: a desired scale of zero is applied only once the revision was
/// active for a stable window (then it turns inactive), has been inactive for the grace period
/// and the pod retention period, and the activator is on the path; an activation that takes
/// longer than the progress deadline goes back to zero.
fn handle_scale_to_zero(
    pa: &PodAutoscaler,
    inputs: &ScaleInputs<'_>,
    desired: i32,
) -> ScaleOutcome {
    let outcome = |want, apply, requeue_after| ScaleOutcome {
        want,
        apply,
        requeue_after,
    };
    if desired != 0 {
        return outcome(desired, true, None);
    }
    let config = inputs.config;
    if !config.enable_scale_to_zero {
        return outcome(1, true, None);
    }
    let now = inputs.now;
    if is_activating(pa) {
        let activating_for = in_status_for(pa, ConditionStatus::Unknown, now).unwrap_or_default();
        if activating_for > inputs.activation_timeout {
            tracing::info!(pa = ?pa.metadata.name, timeout = ?inputs.activation_timeout, "activation timed out");
            return outcome(desired, true, None);
        }
        return outcome(SCALE_UNKNOWN, false, Some(inputs.activation_timeout));
    }
    if is_active(pa) {
        let window = stable_window(pa, config);
        let active_for = in_status_for(pa, ConditionStatus::True, now).unwrap_or_default();
        if active_for >= window {
            // Not yet: the revision turns inactive first, which puts the activator in the path.
            return outcome(desired, false, None);
        }
        // At most one pod for the rest of the window.
        return outcome(1, true, Some(window - active_for));
    }
    if !inputs.activator_in_path {
        return outcome(desired, false, Some(PROBE_PERIOD));
    }
    let inactive_for = in_status_for(pa, ConditionStatus::False, now).unwrap_or_default();
    let retention = last_pod_retention(pa, config);
    if inactive_for >= config.scale_to_zero_grace_period.max(retention) {
        return outcome(desired, true, None);
    }
    if !retention.is_zero() && inactive_for < retention {
        return outcome(desired, false, Some(retention - inactive_for));
    }
    match config
        .scale_to_zero_grace_period
        .checked_sub(inputs.proxy_for)
    {
        Some(wait) if !wait.is_zero() => outcome(desired, false, Some(wait)),
        // Proxying for the whole grace period already.
        _ => outcome(desired, true, None),
    }
}

/// Who receives the revision's traffic: the activator (`Proxy`) while the revision is at zero
/// (or unknown and inactive) or has less spare capacity than the target burst capacity;
/// otherwise its pods (`Serve`).
pub fn sks_mode(
    want: i32,
    excess_burst_capacity: i32,
    pa: &PodAutoscaler,
) -> ServerlessServiceOperationMode {
    if want == 0 || excess_burst_capacity < 0 || (want == SCALE_UNKNOWN && is_inactive(pa)) {
        ServerlessServiceOperationMode::Proxy
    } else {
        ServerlessServiceOperationMode::Serve
    }
}

/// How many activators to put in front of the revision (the decider's `NumActivators`): enough
/// for its capacity (and the target burst capacity) at `activator-capacity` each, at least
/// [`MIN_ACTIVATORS`].
pub fn num_activators(spec: &DeciderSpec, ready_pods: i32) -> i32 {
    let total = f64::from(ready_pods) * spec.total_value;
    let needed = if spec.target_burst_capacity > 0.0 {
        ((total + spec.target_burst_capacity) / spec.activator_capacity).ceil()
    } else if spec.target_burst_capacity == -1.0 {
        (total / spec.activator_capacity).ceil()
    } else {
        0.0
    };
    (needed as i32).max(MIN_ACTIVATORS)
}

/// Knative's `computeActiveCondition` (with `ScaleTargetInitialized` once enough pods are
/// ready and the revision has a Service):
///
/// | want | ready       | Active before | Active after          |
/// |------|-------------|---------------|-----------------------|
/// | 0    | any         | Unknown       | False `TimedOut`      |
/// | 0    | any         | other         | False `NoTraffic`     |
/// | > 0  | < threshold | any           | Unknown `Queued`      |
/// | > 0  | ≥ threshold | any           | True                  |
/// | -1   | < threshold | False         | False `NoTraffic`     |
/// | -1   | < threshold | other         | Unknown `Queued`      |
/// | -1   | ≥ threshold | False         | False                 |
/// | -1   | ≥ threshold | other         | True                  |
pub fn compute_active_condition(
    pa: &mut PodAutoscaler,
    config: &AutoscalerConfig,
    want: i32,
    ready: i32,
    now: Timestamp,
) {
    let min_ready = active_threshold(pa, config);
    let has_service = pa
        .status
        .as_ref()
        .is_some_and(|s| !s.service_name.is_empty());
    let activating = is_activating(pa);
    let inactive = is_inactive(pa);
    let mut conditions = pa.manage_conditions(now);
    if ready >= min_ready && has_service {
        conditions.mark_true(POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED);
    }
    if want == 0 || min_ready == 0 {
        if activating && min_ready > 0 {
            conditions.mark_false(
                POD_AUTOSCALER_CONDITION_ACTIVE,
                REASON_TIMED_OUT,
                "The target could not be activated.",
            );
        } else {
            conditions.mark_false(
                POD_AUTOSCALER_CONDITION_ACTIVE,
                REASON_NO_TRAFFIC,
                "The target is not receiving traffic.",
            );
        }
    } else if ready < min_ready {
        if want > 0 || !inactive {
            conditions.mark_unknown(
                POD_AUTOSCALER_CONDITION_ACTIVE,
                REASON_QUEUED,
                "Requests to the target are being buffered as resources are provisioned.",
            );
        } else {
            conditions.mark_false(
                POD_AUTOSCALER_CONDITION_ACTIVE,
                REASON_NO_TRAFFIC,
                "The target is not receiving traffic.",
            );
        }
    } else if want > 0 || !inactive {
        conditions.mark_true(POD_AUTOSCALER_CONDITION_ACTIVE);
    }
}

/// Marks `SKSReady` from the ServerlessService's `Ready` (`MarkSKSReady`, `MarkSKSNotReady`).
pub fn mark_sks_ready(pa: &mut PodAutoscaler, sks: &ServerlessService, now: Timestamp) {
    let ready = sks
        .status
        .as_ref()
        .and_then(|s| s.status.get_condition("Ready"))
        .cloned();
    let mut conditions = pa.manage_conditions(now);
    match ready {
        Some(c) if c.status == ConditionStatus::True => {
            conditions.mark_true(POD_AUTOSCALER_CONDITION_SKS_READY);
        }
        other => conditions.mark_unknown(
            POD_AUTOSCALER_CONDITION_SKS_READY,
            "NotReady",
            other
                .and_then(|c| c.message)
                .as_deref()
                .unwrap_or("ServerlessService is not ready yet"),
        ),
    }
}

fn condition<'a>(pa: &'a PodAutoscaler, t: &str) -> Option<&'a Condition> {
    pa.status.as_ref().and_then(|s| s.status.get_condition(t))
}

fn is_true(pa: &PodAutoscaler, t: &str) -> bool {
    condition(pa, t).is_some_and(|c| c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use knative_core::apis::Status;

    use super::*;
    use crate::apis::PodAutoscalerStatus;

    const BASE: i64 = 1_700_000_000;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(BASE + second).unwrap()
    }

    fn pa(annotations: &[(&str, &str)], active: Option<(ConditionStatus, i64)>) -> PodAutoscaler {
        let mut pa = PodAutoscaler::default();
        pa.metadata.name = Some("hello-00001".into());
        pa.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        if let Some((status, since)) = active {
            let mut condition = Condition::new(POD_AUTOSCALER_CONDITION_ACTIVE, status);
            condition.last_transition_time = Some(at(since));
            pa.status = Some(PodAutoscalerStatus {
                status: Status {
                    conditions: vec![condition],
                    ..Status::default()
                },
                ..PodAutoscalerStatus::default()
            });
        }
        pa
    }

    fn inputs(config: &AutoscalerConfig, now: i64, decided: i32) -> ScaleInputs<'_> {
        ScaleInputs {
            config,
            now: at(now),
            decided,
            activator_in_path: true,
            proxy_for: Duration::ZERO,
            activation_timeout: Duration::from_secs(610),
        }
    }

    fn out(want: i32, apply: bool, requeue: Option<u64>) -> ScaleOutcome {
        ScaleOutcome {
            want,
            apply,
            requeue_after: requeue.map(Duration::from_secs),
        }
    }

    #[test]
    fn bounds_come_from_annotations_over_config_and_unreachable_has_no_minimum() {
        let config = AutoscalerConfig {
            min_scale: 1,
            max_scale: 9,
            ..AutoscalerConfig::default()
        };
        assert_eq!(scale_bounds(&pa(&[], None), &config), (1, 9));
        let annotated = pa(
            &[
                ("autoscaling.knative.dev/min-scale", "3"),
                ("autoscaling.knative.dev/maxScale", "5"),
            ],
            None,
        );
        assert_eq!(scale_bounds(&annotated, &config), (3, 5));
        let mut unreachable = annotated;
        unreachable.spec.reachability = Reachability::Unreachable;
        assert_eq!(scale_bounds(&unreachable, &config), (0, 5));
    }

    #[test]
    fn apply_bounds_treats_a_zero_maximum_as_none() {
        assert_eq!(apply_bounds(2, 0, 100), 100);
        assert_eq!(apply_bounds(2, 5, 100), 5);
        assert_eq!(apply_bounds(2, 5, 0), 2);
        assert_eq!(apply_bounds(0, 0, -1), 0);
    }

    #[test]
    fn no_decision_yet_is_not_applied_unless_activating() {
        let config = AutoscalerConfig::default();
        let active = pa(&[], Some((ConditionStatus::True, 0)));
        assert_eq!(
            scale(&active, &inputs(&config, 10, -1)),
            out(-1, false, None)
        );
    }

    #[test]
    fn min_scale_is_applied_while_activating_without_a_decision() {
        let config = AutoscalerConfig::default();
        let new = pa(
            &[("autoscaling.knative.dev/min-scale", "3")],
            Some((ConditionStatus::Unknown, 0)),
        );
        assert_eq!(scale(&new, &inputs(&config, 1, -1)), out(3, true, None));
    }

    #[test]
    fn initial_scale_raises_the_minimum_until_the_target_is_initialised() {
        let config = AutoscalerConfig::default();
        let new = pa(
            &[("autoscaling.knative.dev/initial-scale", "4")],
            Some((ConditionStatus::Unknown, 0)),
        );
        assert_eq!(scale(&new, &inputs(&config, 1, 1)), out(4, true, None));
        let mut initialised = new;
        initialised
            .manage_conditions(at(0))
            .mark_true(POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED);
        assert_eq!(
            scale(&initialised, &inputs(&config, 1, 1)),
            out(1, true, None)
        );
    }

    #[test]
    fn max_scale_caps_the_decision() {
        let config = AutoscalerConfig::default();
        let capped = pa(
            &[("autoscaling.knative.dev/max-scale", "5")],
            Some((ConditionStatus::True, 0)),
        );
        assert_eq!(scale(&capped, &inputs(&config, 1, 50)), out(5, true, None));
    }

    #[test]
    fn without_scale_to_zero_the_floor_is_one() {
        let config = AutoscalerConfig {
            enable_scale_to_zero: false,
            ..AutoscalerConfig::default()
        };
        let idle = pa(&[], Some((ConditionStatus::False, 0)));
        assert_eq!(scale(&idle, &inputs(&config, 1000, 0)), out(1, true, None));
    }

    #[test]
    fn an_active_revision_keeps_one_pod_for_a_stable_window_then_turns_inactive() {
        let config = AutoscalerConfig::default();
        let active = pa(&[], Some((ConditionStatus::True, 0)));
        assert_eq!(
            scale(&active, &inputs(&config, 20, 0)),
            out(1, true, Some(40))
        );
        assert_eq!(scale(&active, &inputs(&config, 60, 0)), out(0, false, None));
        let short = pa(
            &[("autoscaling.knative.dev/window", "10s")],
            Some((ConditionStatus::True, 0)),
        );
        assert_eq!(scale(&short, &inputs(&config, 10, 0)), out(0, false, None));
    }

    #[test]
    fn an_inactive_revision_scales_to_zero_after_the_grace_period() {
        let config = AutoscalerConfig::default();
        let inactive = pa(&[], Some((ConditionStatus::False, 0)));
        assert_eq!(
            scale(&inactive, &inputs(&config, 10, 0)),
            out(0, false, Some(30))
        );
        assert_eq!(
            scale(&inactive, &inputs(&config, 30, 0)),
            out(0, true, None)
        );
    }

    #[test]
    fn proxying_for_the_grace_period_already_scales_to_zero_at_once() {
        let config = AutoscalerConfig::default();
        let inactive = pa(&[], Some((ConditionStatus::False, 0)));
        let proxied = ScaleInputs {
            proxy_for: Duration::from_secs(31),
            ..inputs(&config, 5, 0)
        };
        assert_eq!(scale(&inactive, &proxied), out(0, true, None));
        let partly = ScaleInputs {
            proxy_for: Duration::from_secs(20),
            ..inputs(&config, 5, 0)
        };
        assert_eq!(scale(&inactive, &partly), out(0, false, Some(10)));
    }

    #[test]
    fn pod_retention_keeps_the_last_pod_longer_than_the_grace_period() {
        let config = AutoscalerConfig::default();
        let retained = pa(
            &[(
                "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
                "2m",
            )],
            Some((ConditionStatus::False, 0)),
        );
        let proxied = ScaleInputs {
            proxy_for: Duration::from_secs(1000),
            ..inputs(&config, 50, 0)
        };
        assert_eq!(scale(&retained, &proxied), out(0, false, Some(70)));
        assert_eq!(
            scale(&retained, &inputs(&config, 120, 0)),
            out(0, true, None)
        );
    }

    #[test]
    fn no_scale_to_zero_before_the_activator_is_in_the_path() {
        let config = AutoscalerConfig::default();
        let inactive = pa(&[], Some((ConditionStatus::False, 0)));
        let unprobed = ScaleInputs {
            activator_in_path: false,
            ..inputs(&config, 1000, 0)
        };
        assert_eq!(scale(&inactive, &unprobed), out(0, false, Some(1)));
    }

    #[test]
    fn an_activation_past_the_progress_deadline_goes_back_to_zero() {
        let config = AutoscalerConfig::default();
        let activating = pa(&[], Some((ConditionStatus::Unknown, 0)));
        assert_eq!(
            scale(&activating, &inputs(&config, 600, 0)),
            out(-1, false, Some(610))
        );
        assert_eq!(
            scale(&activating, &inputs(&config, 611, 0)),
            out(0, true, None)
        );
        let annotated = pa(
            &[("serving.knative.dev/progress-deadline", "30s")],
            Some((ConditionStatus::Unknown, 0)),
        );
        assert_eq!(
            activation_timeout(&annotated, Duration::from_secs(600)),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn the_activator_is_in_the_path_at_zero_and_without_burst_capacity() {
        let inactive = pa(&[], Some((ConditionStatus::False, 0)));
        let active = pa(&[], Some((ConditionStatus::True, 0)));
        use ServerlessServiceOperationMode::{Proxy, Serve};
        assert_eq!(sks_mode(0, 10, &active), Proxy);
        assert_eq!(sks_mode(3, -1, &active), Proxy);
        assert_eq!(sks_mode(-1, 10, &inactive), Proxy);
        assert_eq!(sks_mode(-1, 10, &active), Serve);
        assert_eq!(sks_mode(3, 0, &active), Serve);
    }

    #[test]
    fn the_activator_path_is_read_from_the_sks() {
        let mut sks = ServerlessService::default();
        assert!(!activator_in_path(None, 211.0));
        assert!(activator_in_path(None, -1.0));
        sks.spec.mode = Some(ServerlessServiceOperationMode::Proxy);
        assert!(
            activator_in_path(Some(&sks), 211.0),
            "proxy mode, no condition"
        );
        let mut populated = Condition::new(
            SERVERLESS_SERVICE_CONDITION_ACTIVATOR_ENDPOINTS_POPULATED,
            ConditionStatus::False,
        );
        populated.last_transition_time = Some(at(0));
        sks.status = Some(crate::apis::ServerlessServiceStatus {
            status: Status {
                conditions: vec![populated.clone()],
                ..Status::default()
            },
            ..Default::default()
        });
        assert!(
            !activator_in_path(Some(&sks), 211.0),
            "endpoints not populated"
        );
        assert_eq!(proxy_for(Some(&sks), at(100)), Duration::ZERO);
        populated.status = ConditionStatus::True;
        sks.status.as_mut().unwrap().status.conditions = vec![populated];
        assert!(activator_in_path(Some(&sks), 211.0));
        assert_eq!(proxy_for(Some(&sks), at(100)), Duration::from_secs(100));
    }

    #[test]
    fn activators_cover_capacity_and_burst_with_at_least_two() {
        let spec = |tbc: f64| DeciderSpec {
            target_burst_capacity: tbc,
            total_value: 100.0,
            activator_capacity: 100.0,
            ..DeciderSpec::new(&crate::autoscaler::AutoscalerParams::new(
                &BTreeMap::new(),
                &AutoscalerConfig::default(),
                at(0),
            ))
        };
        assert_eq!(num_activators(&spec(0.0), 10), 2);
        assert_eq!(num_activators(&spec(211.0), 0), 3);
        assert_eq!(num_activators(&spec(211.0), 10), 13);
        assert_eq!(num_activators(&spec(-1.0), 10), 10);
        assert_eq!(num_activators(&spec(-1.0), 1), 2);
    }

    fn active_after(
        before: Option<ConditionStatus>,
        want: i32,
        ready: i32,
    ) -> (ConditionStatus, Option<String>) {
        let mut pa = pa(&[], before.map(|s| (s, 0)));
        compute_active_condition(&mut pa, &AutoscalerConfig::default(), want, ready, at(5));
        let c = active_condition(&pa).unwrap();
        (c.status, c.reason.clone())
    }

    #[test]
    fn the_active_condition_follows_knatives_table() {
        use ConditionStatus::{False, True, Unknown};
        let reason = |r: &str| Some(r.to_owned());
        assert_eq!(
            active_after(Some(Unknown), 0, 0),
            (False, reason("TimedOut"))
        );
        assert_eq!(active_after(Some(True), 0, 1), (False, reason("NoTraffic")));
        assert_eq!(active_after(Some(False), 2, 0), (Unknown, reason("Queued")));
        assert_eq!(active_after(Some(False), 2, 1), (True, None));
        assert_eq!(
            active_after(Some(False), -1, 0),
            (False, reason("NoTraffic"))
        );
        assert_eq!(active_after(Some(True), -1, 0), (Unknown, reason("Queued")));
        assert_eq!(active_after(Some(False), -1, 1), (False, None));
        assert_eq!(active_after(Some(Unknown), -1, 1), (True, None));
    }

    #[test]
    fn the_scale_target_is_initialised_once_ready_with_a_service() {
        let config = AutoscalerConfig::default();
        let mut pa = pa(&[], Some((ConditionStatus::Unknown, 0)));
        compute_active_condition(&mut pa, &config, 1, 1, at(1));
        assert!(!is_true(
            &pa,
            POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED
        ));
        pa.status.as_mut().unwrap().service_name = "hello-00001".into();
        compute_active_condition(&mut pa, &config, 1, 1, at(2));
        assert!(is_true(
            &pa,
            POD_AUTOSCALER_CONDITION_SCALE_TARGET_INITIALIZED
        ));
    }
}
