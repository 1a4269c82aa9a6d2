//! `config-gc`: when old Revisions are garbage-collected (knative.dev/serving `pkg/gc`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::parse::{Keys, parse_go_duration};
use super::{ConfigError, ConfigMapConfig};

/// The value that disables a `config-gc` setting.
const DISABLED: &str = "disabled";

/// `config-gc`, with Knative's keys, defaults and validation. Knative writes a disabled setting
/// as `"disabled"` and holds it as -1; here it is `None`.
///
/// A non-active Revision (not routed to) is collected when it is past both retention times,
/// unless fewer than `min_non_active_revisions` would remain; past `max_non_active_revisions`
/// the oldest are collected regardless of the times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcConfig {
    /// `retain-since-create-time`: how long after its creation a Revision is kept (default 48h;
    /// `None`: disabled, the time never protects a Revision).
    pub retain_since_create_time: Option<Duration>,
    /// `retain-since-last-active-time`: how long after it last had traffic a Revision is kept
    /// (default 15h; `None`: disabled).
    pub retain_since_last_active_time: Option<Duration>,
    /// `min-non-active-revisions`: how many non-active Revisions are always kept (default 20).
    pub min_non_active_revisions: u64,
    /// `max-non-active-revisions`: how many non-active Revisions are kept at most (default
    /// 1000; `None`: disabled, no maximum).
    pub max_non_active_revisions: Option<u64>,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            retain_since_create_time: Some(Duration::from_secs(48 * 3600)),
            retain_since_last_active_time: Some(Duration::from_secs(15 * 3600)),
            min_non_active_revisions: 20,
            max_non_active_revisions: Some(1000),
        }
    }
}

impl ConfigMapConfig for GcConfig {
    const NAME: &'static str = "config-gc";

    fn from_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let keys = Keys::new(Self::NAME, data);
        let mut c = Self::default();
        let mut min: i64 = 20;
        keys.int("min-non-active-revisions", &mut min)?;
        disabled_or(
            &keys,
            "retain-since-create-time",
            &mut c.retain_since_create_time,
            |raw| parse_go_duration(raw).map_err(|err| err.to_string()),
        )?;
        disabled_or(
            &keys,
            "retain-since-last-active-time",
            &mut c.retain_since_last_active_time,
            |raw| parse_go_duration(raw).map_err(|err| err.to_string()),
        )?;
        disabled_or(
            &keys,
            "max-non-active-revisions",
            &mut c.max_non_active_revisions,
            |raw| {
                raw.parse::<u64>()
                    .ok()
                    .filter(|n| i64::try_from(*n).is_ok())
                    .ok_or_else(|| "expected \"disabled\" or a non-negative integer".to_owned())
            },
        )?;
        c.min_non_active_revisions = u64::try_from(min)
            .map_err(|_| keys.invalid("min-non-active-revisions", min, "must be non-negative"))?;
        if let Some(max) = c.max_non_active_revisions
            && c.min_non_active_revisions > max
        {
            return Err(keys.invalid(
                "min-non-active-revisions",
                c.min_non_active_revisions,
                format!("must be <= max-non-active-revisions ({max})"),
            ));
        }
        Ok(c)
    }
}

/// A setting that is `"disabled"` (any case), a value, or empty to keep the default.
fn disabled_or<T>(
    keys: &Keys<'_>,
    key: &str,
    target: &mut Option<T>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(), ConfigError> {
    match keys.raw(key) {
        None | Some("") => {}
        Some(raw) if raw.eq_ignore_ascii_case(DISABLED) => *target = None,
        Some(raw) => *target = Some(parse(raw).map_err(|reason| keys.invalid(key, raw, reason))?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<GcConfig, ConfigError> {
        crate::config::test_support::parse(pairs)
    }

    fn rejects(pairs: &[(&str, &str)], key: &str, value: &str) -> String {
        crate::config::test_support::rejects::<GcConfig>(pairs, key, value)
    }

    #[test]
    fn empty_data_is_knatives_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, GcConfig::default());
        assert_eq!(
            c.retain_since_create_time,
            Some(Duration::from_secs(48 * 3600))
        );
        assert_eq!(
            c.retain_since_last_active_time,
            Some(Duration::from_secs(15 * 3600))
        );
        assert_eq!(c.min_non_active_revisions, 20);
        assert_eq!(c.max_non_active_revisions, Some(1000));
    }

    #[test]
    fn every_key_parses() {
        let c = parse(&[
            ("retain-since-create-time", "17h"),
            ("retain-since-last-active-time", "16h"),
            ("min-non-active-revisions", "5"),
            ("max-non-active-revisions", "500"),
        ])
        .unwrap();
        assert_eq!(
            c,
            GcConfig {
                retain_since_create_time: Some(Duration::from_secs(17 * 3600)),
                retain_since_last_active_time: Some(Duration::from_secs(16 * 3600)),
                min_non_active_revisions: 5,
                max_non_active_revisions: Some(500),
            }
        );
    }

    #[test]
    fn disabled_turns_a_setting_off() {
        let c = parse(&[
            ("retain-since-create-time", "disabled"),
            ("retain-since-last-active-time", "Disabled"),
            ("min-non-active-revisions", "0"),
            ("max-non-active-revisions", "DISABLED"),
        ])
        .unwrap();
        assert_eq!(c.retain_since_create_time, None);
        assert_eq!(c.retain_since_last_active_time, None);
        assert_eq!(c.max_non_active_revisions, None);
    }

    #[test]
    fn empty_value_keeps_the_default() {
        assert_eq!(
            parse(&[
                ("retain-since-create-time", ""),
                ("max-non-active-revisions", "")
            ])
            .unwrap(),
            GcConfig::default()
        );
    }

    #[test]
    fn malformed_values_are_rejected_naming_key_and_value() {
        rejects(
            &[("retain-since-create-time", "2 days")],
            "retain-since-create-time",
            "2 days",
        );
        rejects(
            &[("retain-since-last-active-time", "15")],
            "retain-since-last-active-time",
            "15",
        );
        rejects(
            &[("min-non-active-revisions", "few")],
            "min-non-active-revisions",
            "few",
        );
        rejects(
            &[("max-non-active-revisions", "many")],
            "max-non-active-revisions",
            "many",
        );
    }

    #[test]
    fn retention_times_cannot_be_negative() {
        rejects(
            &[("retain-since-create-time", "-1h")],
            "retain-since-create-time",
            "-1h",
        );
        rejects(
            &[("retain-since-last-active-time", "-1h")],
            "retain-since-last-active-time",
            "-1h",
        );
    }

    #[test]
    fn min_non_active_revisions_cannot_be_negative() {
        rejects(
            &[("min-non-active-revisions", "-1")],
            "min-non-active-revisions",
            "-1",
        );
    }

    #[test]
    fn max_non_active_revisions_is_disabled_or_non_negative() {
        rejects(
            &[("max-non-active-revisions", "-1")],
            "max-non-active-revisions",
            "-1",
        );
        rejects(
            &[("max-non-active-revisions", "9223372036854775808")],
            "max-non-active-revisions",
            "9223372036854775808",
        );
    }

    #[test]
    fn min_cannot_exceed_max() {
        rejects(
            &[
                ("min-non-active-revisions", "20"),
                ("max-non-active-revisions", "10"),
            ],
            "min-non-active-revisions",
            "20",
        );
        assert!(
            parse(&[
                ("min-non-active-revisions", "2000"),
                ("max-non-active-revisions", "disabled")
            ])
            .is_ok()
        );
    }
}
