//! `metav1.Duration`: a duration written as Go writes one (`10m`, `1h30m`, `2.5s`, `300ms`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration with Go's text form, as Kubernetes' `metav1.Duration` (Knative Build's
/// `timeout`). Reads `1h30m`, `90s`, `1.5h`, `250ms`; writes Go's canonical form (`1h30m0s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

/// Why a duration did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why}")]
pub struct ParseDurationError {
    text: String,
    why: &'static str,
}

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    /// Go's `time.ParseDuration`, without negative durations (a timeout cannot be negative).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| ParseDurationError {
            text: text.to_owned(),
            why,
        };
        let mut rest = text.strip_prefix('+').unwrap_or(text);
        if rest.starts_with('-') {
            return Err(err("negative durations are not allowed"));
        }
        if rest == "0" {
            return Ok(Self::default());
        }
        if rest.is_empty() {
            return Err(err("empty"));
        }
        let mut nanos: f64 = 0.0;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (number, after) = rest.split_at(number_len);
            if number.is_empty() || number == "." {
                return Err(err("expected a number"));
            }
            let value: f64 = number.parse().map_err(|_| err("bad number"))?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let scale = match unit {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit (use ns, us, ms, s, m or h)")),
            };
            nanos += value * scale;
            rest = after;
        }
        if nanos > u64::MAX as f64 {
            return Err(err("too large"));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Self(StdDuration::from_nanos(nanos.round() as u64)))
    }
}

impl fmt::Display for Duration {
    /// Go's `Duration.String`: `0s`, `1.5s`, `10m0s`, `1h30m0s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < 1_000_000_000 {
            let (unit, scale) = if total < 1_000 {
                ("ns", 1)
            } else if total < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{unit}", fraction(total, scale));
        }
        let hours = total / 3_600_000_000_000;
        let minutes = (total / 60_000_000_000) % 60;
        let seconds = total % 60_000_000_000;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if hours > 0 || minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write!(f, "{}s", fraction(seconds, 1_000_000_000))
    }
}

/// `value / scale` with the fraction's trailing zeros dropped, as Go prints it.
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> StdDuration {
        text.parse::<Duration>().unwrap().0
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("10m"), StdDuration::from_secs(600));
        assert_eq!(parse("1h30m"), StdDuration::from_secs(5400));
        assert_eq!(parse("1.5h"), StdDuration::from_secs(5400));
        assert_eq!(parse("250ms"), StdDuration::from_millis(250));
        assert_eq!(parse("2s500ms"), StdDuration::from_millis(2500));
        assert_eq!(parse("0"), StdDuration::ZERO);
    }

    #[test]
    fn malformed_durations_say_why() {
        let err = |t: &str| t.parse::<Duration>().unwrap_err().to_string();
        assert_eq!(err("10"), "invalid duration \"10\": missing unit");
        assert_eq!(
            err("3d"),
            "invalid duration \"3d\": unknown unit (use ns, us, ms, s, m or h)"
        );
        assert_eq!(
            err("-1s"),
            "invalid duration \"-1s\": negative durations are not allowed"
        );
        assert_eq!(err(""), "invalid duration \"\": empty");
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        let show = |d: StdDuration| Duration(d).to_string();
        assert_eq!(show(StdDuration::from_secs(600)), "10m0s");
        assert_eq!(show(StdDuration::from_secs(5400)), "1h30m0s");
        assert_eq!(show(StdDuration::from_millis(1500)), "1.5s");
        assert_eq!(show(StdDuration::from_millis(250)), "250ms");
        assert_eq!(show(StdDuration::ZERO), "0s");
    }

    #[test]
    fn durations_round_trip_through_json() {
        let d: Duration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m0s\"");
    }
}
