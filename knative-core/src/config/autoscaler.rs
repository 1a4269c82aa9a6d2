//! `config-autoscaler`: the cluster-wide autoscaling defaults (knative.dev/serving
//! `pkg/autoscaler/config`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::parse::Keys;
use super::{ConfigError, ConfigMapConfig};

/// The class of Knative's own Pod Autoscaler.
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// The smallest target (concurrency or requests per second) Knative allows.
const TARGET_MIN: f64 = 0.01;
/// The stable window's bounds.
const WINDOW_MIN: Duration = Duration::from_secs(6);
const WINDOW_MAX: Duration = Duration::from_secs(3600);
/// The panic window's bounds, in percent of the stable window.
const PANIC_WINDOW_PERCENTAGE_MIN: f64 = 1.0;
const PANIC_WINDOW_PERCENTAGE_MAX: f64 = 100.0;

/// `config-autoscaler`, with Knative's keys, defaults and validation.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerConfig {
    /// `enable-scale-to-zero` (default `true`).
    pub enable_scale_to_zero: bool,
    /// `container-concurrency-target-percentage` as a fraction in (0, 1] (default 0.7). The key
    /// takes a percentage (`"70"`) or, for legacy reasons, a fraction (`"0.7"`): values above 1
    /// are divided by 100.
    pub container_concurrency_target_fraction: f64,
    /// `container-concurrency-target-default`: the concurrency target of a Revision with
    /// unlimited concurrency (default 100).
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default` (default 200).
    pub rps_target_default: f64,
    /// `target-burst-capacity`: spare capacity below which the activator stays in the path;
    /// 0 only at zero scale, -1 always (default 211).
    pub target_burst_capacity: f64,
    /// `stable-window` (default 60s), in [6s, 1h] and whole seconds.
    pub stable_window: Duration,
    /// `panic-window-percentage`: the panic window in percent of the stable window, in
    /// [1, 100] (default 10).
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage`: the load, in percent of the target, that starts panic mode
    /// (default 200).
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate`: the largest ratio of desired to ready pods per decision, above 1
    /// (default 1000).
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`: the largest ratio of ready to desired pods per decision, above 1
    /// (default 2).
    pub max_scale_down_rate: f64,
    /// `activator-capacity`: requests one activator takes, at least 1 (default 100).
    pub activator_capacity: f64,
    /// `initial-scale`: a new Revision's scale (default 1); 0 only with
    /// `allow-zero-initial-scale`.
    pub initial_scale: i32,
    /// `allow-zero-initial-scale` (default `false`).
    pub allow_zero_initial_scale: bool,
    /// `min-scale`: the default lower bound of a Revision's scale (default 0).
    pub min_scale: i32,
    /// `max-scale`: the default upper bound of a Revision's scale, 0 for none (default 0).
    pub max_scale: i32,
    /// `max-scale-limit`: the largest `max-scale` a Revision may ask for, 0 for none (default 0).
    pub max_scale_limit: i32,
    /// `scale-to-zero-grace-period`: how long an inactive Revision keeps its last pod while the
    /// network reprograms, positive (default 30s).
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period`: the least time the last pod is kept after the
    /// decision to scale to zero (default 0s).
    pub scale_to_zero_pod_retention_period: Duration,
    /// `scale-down-delay`: how long a lower scale must persist before it is applied, whole
    /// seconds (default 0s).
    pub scale_down_delay: Duration,
    /// `pod-autoscaler-class` (default `kpa.autoscaling.knative.dev`).
    pub pod_autoscaler_class: String,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            enable_scale_to_zero: true,
            container_concurrency_target_fraction: 0.7,
            container_concurrency_target_default: 100.0,
            rps_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            activator_capacity: 100.0,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            scale_down_delay: Duration::ZERO,
            pod_autoscaler_class: KPA_CLASS.to_owned(),
        }
    }
}

impl ConfigMapConfig for AutoscalerConfig {
    const NAME: &'static str = "config-autoscaler";

    fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let keys = Keys::new(Self::NAME, data);
        let mut c = Self::default();
        keys.string("pod-autoscaler-class", &mut c.pod_autoscaler_class);
        keys.bool("enable-scale-to-zero", &mut c.enable_scale_to_zero)?;
        keys.bool("allow-zero-initial-scale", &mut c.allow_zero_initial_scale)?;
        keys.float("max-scale-up-rate", &mut c.max_scale_up_rate)?;
        keys.float("max-scale-down-rate", &mut c.max_scale_down_rate)?;
        keys.float(
            "container-concurrency-target-percentage",
            &mut c.container_concurrency_target_fraction,
        )?;
        keys.float(
            "container-concurrency-target-default",
            &mut c.container_concurrency_target_default,
        )?;
        keys.float(
            "requests-per-second-target-default",
            &mut c.rps_target_default,
        )?;
        keys.float("target-burst-capacity", &mut c.target_burst_capacity)?;
        keys.float("panic-window-percentage", &mut c.panic_window_percentage)?;
        keys.float("activator-capacity", &mut c.activator_capacity)?;
        keys.float(
            "panic-threshold-percentage",
            &mut c.panic_threshold_percentage,
        )?;
        keys.int("initial-scale", &mut c.initial_scale)?;
        keys.int("min-scale", &mut c.min_scale)?;
        keys.int("max-scale", &mut c.max_scale)?;
        keys.int("max-scale-limit", &mut c.max_scale_limit)?;
        keys.duration("stable-window", &mut c.stable_window)?;
        keys.duration("scale-down-delay", &mut c.scale_down_delay)?;
        keys.duration(
            "scale-to-zero-grace-period",
            &mut c.scale_to_zero_grace_period,
        )?;
        keys.duration(
            "scale-to-zero-pod-retention-period",
            &mut c.scale_to_zero_pod_retention_period,
        )?;

        // For legacy reasons a fraction in (0, 1] is accepted too, so percentages start above 1.
        if c.container_concurrency_target_fraction > 1.0 {
            c.container_concurrency_target_fraction /= 100.0;
        }
        c.validate(&keys)?;
        Ok(c)
    }
}

impl AutoscalerConfig {
    /// Knative's `validate()`, rule for rule and in its order. Negative durations were already
    /// rejected by the parser.
    fn validate(&self, keys: &Keys<'_>) -> Result<(), ConfigError> {
        if self.scale_to_zero_grace_period.is_zero() {
            return Err(keys.invalid("scale-to-zero-grace-period", "30s", "must be positive"));
        }
        if self.scale_down_delay.subsec_nanos() != 0 {
            return Err(keys.invalid(
                "scale-down-delay",
                "0s",
                "must be specified with at most second precision",
            ));
        }
        if self.target_burst_capacity < 0.0 && self.target_burst_capacity != -1.0 {
            return Err(keys.invalid(
                "target-burst-capacity",
                self.target_burst_capacity,
                "must be either non-negative or -1 (for unlimited)",
            ));
        }
        if self.container_concurrency_target_fraction <= 0.0
            || self.container_concurrency_target_fraction > 1.0
        {
            return Err(keys.invalid(
                "container-concurrency-target-percentage",
                self.container_concurrency_target_fraction * 100.0,
                "must be in (0, 100]",
            ));
        }
        let target =
            self.container_concurrency_target_fraction * self.container_concurrency_target_default;
        if target < TARGET_MIN {
            return Err(keys.invalid(
                "container-concurrency-target-default",
                self.container_concurrency_target_default,
                format!(
                    "with container-concurrency-target-percentage it yields a target concurrency of {target}, which can't be less than {TARGET_MIN}"
                ),
            ));
        }
        if self.rps_target_default < TARGET_MIN {
            return Err(keys.invalid(
                "requests-per-second-target-default",
                self.rps_target_default,
                format!("must be at least {TARGET_MIN}"),
            ));
        }
        if self.activator_capacity < 1.0 {
            return Err(keys.invalid(
                "activator-capacity",
                self.activator_capacity,
                "must be at least 1",
            ));
        }
        if self.max_scale_up_rate <= 1.0 {
            return Err(keys.invalid(
                "max-scale-up-rate",
                self.max_scale_up_rate,
                "must be greater than 1.0",
            ));
        }
        if self.max_scale_down_rate <= 1.0 {
            return Err(keys.invalid(
                "max-scale-down-rate",
                self.max_scale_down_rate,
                "must be greater than 1.0",
            ));
        }
        if self.stable_window < WINDOW_MIN || self.stable_window > WINDOW_MAX {
            return Err(keys.invalid("stable-window", "60s", "must be in [6s, 1h]"));
        }
        if self.stable_window.subsec_nanos() != 0 {
            return Err(keys.invalid(
                "stable-window",
                "60s",
                "must be specified with at most second precision",
            ));
        }
        if self.panic_window_percentage < PANIC_WINDOW_PERCENTAGE_MIN
            || self.panic_window_percentage > PANIC_WINDOW_PERCENTAGE_MAX
        {
            return Err(keys.invalid(
                "panic-window-percentage",
                self.panic_window_percentage,
                format!(
                    "must be in [{PANIC_WINDOW_PERCENTAGE_MIN}, {PANIC_WINDOW_PERCENTAGE_MAX}]"
                ),
            ));
        }
        if self.initial_scale < 0 || (self.initial_scale == 0 && !self.allow_zero_initial_scale) {
            return Err(keys.invalid(
                "initial-scale",
                self.initial_scale,
                "must be at least 0 (or at least 1 when allow-zero-initial-scale is false)",
            ));
        }
        // A default max-scale must be set when max-scale-limit is.
        let min_max_scale = i32::from(self.max_scale_limit > 0);
        if self.max_scale < min_max_scale
            || (self.max_scale_limit > 0 && self.max_scale > self.max_scale_limit)
        {
            return Err(keys.invalid(
                "max-scale",
                self.max_scale,
                format!(
                    "must be in [{min_max_scale}, max-scale-limit ({})]",
                    self.max_scale_limit
                ),
            ));
        }
        if self.max_scale_limit < 0 {
            return Err(keys.invalid(
                "max-scale-limit",
                self.max_scale_limit,
                "must be at least 0",
            ));
        }
        if self.min_scale < 0 || (self.max_scale > 0 && self.min_scale > self.max_scale) {
            return Err(keys.invalid(
                "min-scale",
                self.min_scale,
                format!(
                    "must be in [0, max-scale ({})] (max-scale 0 means no bound)",
                    self.max_scale
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<AutoscalerConfig, ConfigError> {
        crate::config::test_support::parse(pairs)
    }

    fn rejects(pairs: &[(&str, &str)], key: &str, value: &str) -> String {
        crate::config::test_support::rejects::<AutoscalerConfig>(pairs, key, value)
    }

    #[test]
    fn empty_data_is_knatives_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, AutoscalerConfig::default());
        assert!(c.enable_scale_to_zero);
        assert!((c.container_concurrency_target_fraction - 0.7).abs() < f64::EPSILON);
        assert_eq!(c.container_concurrency_target_default, 100.0);
        assert_eq!(c.rps_target_default, 200.0);
        assert_eq!(c.target_burst_capacity, 211.0);
        assert_eq!(c.stable_window, Duration::from_secs(60));
        assert_eq!(c.panic_window_percentage, 10.0);
        assert_eq!(c.panic_threshold_percentage, 200.0);
        assert_eq!(c.max_scale_up_rate, 1000.0);
        assert_eq!(c.max_scale_down_rate, 2.0);
        assert_eq!(c.activator_capacity, 100.0);
        assert_eq!(c.initial_scale, 1);
        assert!(!c.allow_zero_initial_scale);
        assert_eq!((c.min_scale, c.max_scale, c.max_scale_limit), (0, 0, 0));
        assert_eq!(c.scale_to_zero_grace_period, Duration::from_secs(30));
        assert_eq!(c.scale_to_zero_pod_retention_period, Duration::ZERO);
        assert_eq!(c.scale_down_delay, Duration::ZERO);
        assert_eq!(c.pod_autoscaler_class, "kpa.autoscaling.knative.dev");
    }

    #[test]
    fn example_key_is_ignored() {
        assert_eq!(
            parse(&[("_example", "stable-window: nonsense")]).unwrap(),
            AutoscalerConfig::default()
        );
    }

    #[test]
    fn every_key_parses() {
        let c = parse(&[
            ("enable-scale-to-zero", "false"),
            ("container-concurrency-target-percentage", "50"),
            ("container-concurrency-target-default", "10"),
            ("requests-per-second-target-default", "150.5"),
            ("target-burst-capacity", "-1"),
            ("stable-window", "2m"),
            ("panic-window-percentage", "20"),
            ("panic-threshold-percentage", "300"),
            ("max-scale-up-rate", "10"),
            ("max-scale-down-rate", "4"),
            ("activator-capacity", "50"),
            ("initial-scale", "0"),
            ("allow-zero-initial-scale", "true"),
            ("min-scale", "2"),
            ("max-scale", "10"),
            ("max-scale-limit", "20"),
            ("scale-to-zero-grace-period", "45s"),
            ("scale-to-zero-pod-retention-period", "1m30s"),
            ("scale-down-delay", "15m"),
            ("pod-autoscaler-class", "hpa.autoscaling.knative.dev"),
        ])
        .unwrap();
        assert_eq!(
            c,
            AutoscalerConfig {
                enable_scale_to_zero: false,
                container_concurrency_target_fraction: 0.5,
                container_concurrency_target_default: 10.0,
                rps_target_default: 150.5,
                target_burst_capacity: -1.0,
                stable_window: Duration::from_secs(120),
                panic_window_percentage: 20.0,
                panic_threshold_percentage: 300.0,
                max_scale_up_rate: 10.0,
                max_scale_down_rate: 4.0,
                activator_capacity: 50.0,
                initial_scale: 0,
                allow_zero_initial_scale: true,
                min_scale: 2,
                max_scale: 10,
                max_scale_limit: 20,
                scale_to_zero_grace_period: Duration::from_secs(45),
                scale_to_zero_pod_retention_period: Duration::from_secs(90),
                scale_down_delay: Duration::from_secs(900),
                pod_autoscaler_class: "hpa.autoscaling.knative.dev".to_owned(),
            }
        );
    }

    #[test]
    fn target_percentage_accepts_a_legacy_fraction() {
        let c = parse(&[("container-concurrency-target-percentage", "0.5")]).unwrap();
        assert!((c.container_concurrency_target_fraction - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn malformed_values_are_rejected_naming_key_and_value() {
        rejects(
            &[("enable-scale-to-zero", "yes")],
            "enable-scale-to-zero",
            "yes",
        );
        rejects(
            &[("allow-zero-initial-scale", "nope")],
            "allow-zero-initial-scale",
            "nope",
        );
        rejects(
            &[("container-concurrency-target-default", "abc")],
            "container-concurrency-target-default",
            "abc",
        );
        rejects(&[("max-scale-up-rate", "NaN")], "max-scale-up-rate", "NaN");
        rejects(&[("initial-scale", "1.5")], "initial-scale", "1.5");
        rejects(&[("max-scale", "3000000000")], "max-scale", "3000000000");
        rejects(&[("stable-window", "60")], "stable-window", "60");
        rejects(&[("scale-down-delay", "soon")], "scale-down-delay", "soon");
    }

    #[test]
    fn grace_period_must_be_positive() {
        rejects(
            &[("scale-to-zero-grace-period", "0s")],
            "scale-to-zero-grace-period",
            "0s",
        );
        rejects(
            &[("scale-to-zero-grace-period", "-5s")],
            "scale-to-zero-grace-period",
            "-5s",
        );
    }

    #[test]
    fn scale_down_delay_cannot_be_negative() {
        rejects(&[("scale-down-delay", "-1s")], "scale-down-delay", "-1s");
    }

    #[test]
    fn scale_down_delay_must_be_whole_seconds() {
        rejects(
            &[("scale-down-delay", "1500ms")],
            "scale-down-delay",
            "1500ms",
        );
        assert!(parse(&[("scale-down-delay", "2000ms")]).is_ok());
    }

    #[test]
    fn pod_retention_period_cannot_be_negative() {
        rejects(
            &[("scale-to-zero-pod-retention-period", "-1m")],
            "scale-to-zero-pod-retention-period",
            "-1m",
        );
    }

    #[test]
    fn target_burst_capacity_is_non_negative_or_minus_one() {
        assert!(parse(&[("target-burst-capacity", "0")]).is_ok());
        assert!(parse(&[("target-burst-capacity", "-1")]).is_ok());
        rejects(
            &[("target-burst-capacity", "-2")],
            "target-burst-capacity",
            "-2",
        );
    }

    #[test]
    fn target_percentage_must_be_in_zero_to_hundred() {
        rejects(
            &[("container-concurrency-target-percentage", "0")],
            "container-concurrency-target-percentage",
            "0",
        );
        rejects(
            &[("container-concurrency-target-percentage", "101")],
            "container-concurrency-target-percentage",
            "101",
        );
        assert!(parse(&[("container-concurrency-target-percentage", "100")]).is_ok());
    }

    #[test]
    fn concurrency_target_must_reach_the_minimum_target() {
        let message = rejects(
            &[
                ("container-concurrency-target-percentage", "1.5"),
                ("container-concurrency-target-default", "0.5"),
            ],
            "container-concurrency-target-default",
            "0.5",
        );
        assert!(
            message.contains("container-concurrency-target-percentage"),
            "{message}"
        );
    }

    #[test]
    fn rps_target_must_reach_the_minimum_target() {
        rejects(
            &[("requests-per-second-target-default", "0.001")],
            "requests-per-second-target-default",
            "0.001",
        );
        assert!(parse(&[("requests-per-second-target-default", "0.01")]).is_ok());
    }

    #[test]
    fn activator_capacity_is_at_least_one() {
        rejects(
            &[("activator-capacity", "0.5")],
            "activator-capacity",
            "0.5",
        );
        assert!(parse(&[("activator-capacity", "1")]).is_ok());
    }

    #[test]
    fn max_scale_up_rate_is_greater_than_one() {
        rejects(&[("max-scale-up-rate", "1")], "max-scale-up-rate", "1");
        assert!(parse(&[("max-scale-up-rate", "1.01")]).is_ok());
    }

    #[test]
    fn max_scale_down_rate_is_greater_than_one() {
        rejects(
            &[("max-scale-down-rate", "1.0")],
            "max-scale-down-rate",
            "1.0",
        );
    }

    #[test]
    fn stable_window_is_between_six_seconds_and_an_hour() {
        rejects(&[("stable-window", "5s")], "stable-window", "5s");
        rejects(&[("stable-window", "61m")], "stable-window", "61m");
        assert!(parse(&[("stable-window", "6s")]).is_ok());
        assert!(parse(&[("stable-window", "1h")]).is_ok());
    }

    #[test]
    fn stable_window_is_whole_seconds() {
        rejects(&[("stable-window", "6500ms")], "stable-window", "6500ms");
    }

    #[test]
    fn panic_window_percentage_is_between_one_and_hundred() {
        rejects(
            &[("panic-window-percentage", "0.5")],
            "panic-window-percentage",
            "0.5",
        );
        rejects(
            &[("panic-window-percentage", "101")],
            "panic-window-percentage",
            "101",
        );
        assert!(parse(&[("panic-window-percentage", "1")]).is_ok());
        assert!(parse(&[("panic-window-percentage", "100")]).is_ok());
    }

    #[test]
    fn initial_scale_zero_needs_allow_zero_initial_scale() {
        rejects(&[("initial-scale", "0")], "initial-scale", "0");
        rejects(
            &[
                ("initial-scale", "-1"),
                ("allow-zero-initial-scale", "true"),
            ],
            "initial-scale",
            "-1",
        );
        assert!(parse(&[("initial-scale", "0"), ("allow-zero-initial-scale", "true")]).is_ok());
    }

    #[test]
    fn max_scale_is_within_max_scale_limit() {
        rejects(&[("max-scale", "-1")], "max-scale", "-1");
        rejects(
            &[("max-scale", "11"), ("max-scale-limit", "10")],
            "max-scale",
            "11",
        );
        assert!(parse(&[("max-scale", "10"), ("max-scale-limit", "10")]).is_ok());
    }

    #[test]
    fn max_scale_limit_requires_a_default_max_scale() {
        let message = rejects(&[("max-scale-limit", "10")], "max-scale", "0");
        assert!(message.contains("max-scale-limit (10)"), "{message}");
    }

    #[test]
    fn max_scale_limit_cannot_be_negative() {
        rejects(&[("max-scale-limit", "-1")], "max-scale-limit", "-1");
    }

    #[test]
    fn min_scale_is_within_zero_and_max_scale() {
        rejects(&[("min-scale", "-1")], "min-scale", "-1");
        rejects(&[("min-scale", "5"), ("max-scale", "3")], "min-scale", "5");
        assert!(parse(&[("min-scale", "5")]).is_ok());
    }
}
