//! Parsing ConfigMap values as knative.dev/pkg's `configmap` package does, with errors that name
//! the ConfigMap, the key and the value.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

/// Parses a duration in Go's syntax (`time.ParseDuration`): a sequence of decimal numbers, each
/// with an optional fraction and a unit, such as `"300ms"`, `"1.5h"` or `"2h45m"`. Units are
/// `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; `"0"` needs no unit.
///
/// Knative rejects negative durations in every ConfigMap, and [`Duration`] is unsigned, so a
/// negative duration is an error here ([`DurationError::Negative`]) where Go returns it.
///
/// ```
/// use std::time::Duration;
/// use knative_core::config::parse_go_duration;
///
/// assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert!(parse_go_duration("60").is_err()); // a unit is required
/// ```
///
/// # Errors
/// When the text is not a Go duration, overflows Go's `time.Duration` (about 292 years), or is
/// negative.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Invalid);
    }
    // Go's time.Duration is an int64 of nanoseconds.
    const MAX: u64 = i64::MAX as u64;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let mut whole: u64 = 0;
        for digit in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(digit - b'0')))
                .filter(|w| *w <= MAX)
                .ok_or(DurationError::Overflow)?;
        }
        rest = after_int;
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut has_fraction_digits = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let (frac_digits, after_frac) = after_dot.split_at(frac_len);
            for digit in frac_digits.bytes() {
                // Like Go, digits past what fits are dropped rather than an overflow.
                if let Some(f) = fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                    .filter(|f| *f <= MAX)
                {
                    fraction = f;
                    scale *= 10.0;
                }
            }
            has_fraction_digits = frac_len > 0;
            rest = after_frac;
        }
        if int_len == 0 && !has_fraction_digits {
            return Err(DurationError::Invalid);
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, after_unit) = rest.split_at(unit_len);
        let nanos_per_unit: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(DurationError::MissingUnit),
            other => return Err(DurationError::UnknownUnit(other.to_owned())),
        };
        rest = after_unit;
        let mut nanos = whole
            .checked_mul(nanos_per_unit)
            .filter(|n| *n <= MAX)
            .ok_or(DurationError::Overflow)?;
        if fraction > 0 {
            // Go computes the fractional part in floating point, and so do we, to round alike.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let extra = (fraction as f64 * (nanos_per_unit as f64 / scale)) as u64;
            nanos = nanos
                .checked_add(extra)
                .filter(|n| *n <= MAX)
                .ok_or(DurationError::Overflow)?;
        }
        total = total
            .checked_add(nanos)
            .filter(|n| *n <= MAX)
            .ok_or(DurationError::Overflow)?;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    Ok(Duration::from_nanos(total))
}

/// Why a text is not a duration [`parse_go_duration`] accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a sequence of numbers with units.
    #[error("expected a duration such as \"60s\", \"1m30s\" or \"500ms\"")]
    Invalid,
    /// A number without a unit (only `0` may go without).
    #[error("missing unit in duration (use one of ns, us, ms, s, m, h)")]
    MissingUnit,
    /// A unit Go does not know.
    #[error("unknown unit {0:?} in duration (use one of ns, us, ms, s, m, h)")]
    UnknownUnit(String),
    /// More than Go's `time.Duration` holds.
    #[error("duration out of range")]
    Overflow,
    /// A negative duration.
    #[error("must not be negative")]
    Negative,
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether `text` is a Kubernetes resource quantity (`resource.ParseQuantity`'s grammar):
/// a signed decimal number followed by a binary SI suffix (`Ki` … `Ei`), a decimal SI suffix
/// (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`).
pub(crate) fn is_quantity(text: &str) -> bool {
    let rest = text.strip_prefix(['+', '-']).unwrap_or(text);
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut rest_after = &rest[int_len..];
    let mut digits = int_len;
    if let Some(after_dot) = rest_after.strip_prefix('.') {
        let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        digits += frac_len;
        rest_after = &after_dot[frac_len..];
    }
    if digits == 0 {
        return false;
    }
    match rest_after {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        exponent => match exponent.strip_prefix(['e', 'E']) {
            Some(power) => {
                let power = power.strip_prefix(['+', '-']).unwrap_or(power);
                !power.is_empty() && power.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        },
    }
}

/// The keys of one ConfigMap's `data`, read as knative.dev/pkg's `configmap.Parse` does: an
/// absent key leaves the target (the default) alone, a present one must parse.
pub(crate) struct Keys<'a> {
    config_map: &'static str,
    data: &'a BTreeMap<String, String>,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(config_map: &'static str, data: &'a BTreeMap<String, String>) -> Self {
        Self { config_map, data }
    }

    /// The raw value of `key`, if present.
    pub(crate) fn raw(&self, key: &str) -> Option<&'a str> {
        self.data.get(key).map(String::as_str)
    }

    /// An error about `key`, quoting its raw value, or `value` when the key is absent (a default
    /// that another key contradicts).
    pub(crate) fn invalid(
        &self,
        key: &str,
        value: impl Display,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            config_map: self.config_map,
            key: key.to_owned(),
            value: self
                .raw(key)
                .map_or_else(|| value.to_string(), str::to_owned),
            reason: reason.into(),
        }
    }

    pub(crate) fn string(&self, key: &str, target: &mut String) {
        if let Some(raw) = self.raw(key) {
            raw.clone_into(target);
        }
    }

    pub(crate) fn bool(&self, key: &str, target: &mut bool) -> Result<(), ConfigError> {
        if let Some(raw) = self.raw(key) {
            *target = parse_go_bool(raw)
                .ok_or_else(|| self.invalid(key, raw, "expected true or false"))?;
        }
        Ok(())
    }

    pub(crate) fn int<T: ConfigInt>(&self, key: &str, target: &mut T) -> Result<(), ConfigError> {
        if let Some(raw) = self.raw(key) {
            *target = raw.parse().map_err(|_| {
                self.invalid(
                    key,
                    raw,
                    format!(
                        "expected an integer between {} and {}",
                        T::MIN_TEXT,
                        T::MAX_TEXT
                    ),
                )
            })?;
        }
        Ok(())
    }

    pub(crate) fn float(&self, key: &str, target: &mut f64) -> Result<(), ConfigError> {
        if let Some(raw) = self.raw(key) {
            *target = raw
                .parse::<f64>()
                .ok()
                .filter(|f| !f.is_nan())
                .ok_or_else(|| self.invalid(key, raw, "expected a number"))?;
        }
        Ok(())
    }

    pub(crate) fn duration(&self, key: &str, target: &mut Duration) -> Result<(), ConfigError> {
        if let Some(raw) = self.raw(key) {
            *target =
                parse_go_duration(raw).map_err(|err| self.invalid(key, raw, err.to_string()))?;
        }
        Ok(())
    }
}

/// An integer type a ConfigMap value parses into (Go's `strconv.ParseInt` with a bit size).
pub(crate) trait ConfigInt: FromStr {
    /// The smallest value, for error messages.
    const MIN_TEXT: &'static str;
    /// The largest value, for error messages.
    const MAX_TEXT: &'static str;
}

impl ConfigInt for i32 {
    const MIN_TEXT: &'static str = "-2147483648";
    const MAX_TEXT: &'static str = "2147483647";
}

impl ConfigInt for i64 {
    const MIN_TEXT: &'static str = "-9223372036854775808";
    const MAX_TEXT: &'static str = "9223372036854775807";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("60s", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1h1m1s1ms1us1ns", Duration::from_nanos(3_661_001_001_001)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn malformed_go_durations_are_rejected() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Invalid));
        assert_eq!(parse_go_duration("-"), Err(DurationError::Invalid));
        assert_eq!(parse_go_duration(".s"), Err(DurationError::Invalid));
        assert_eq!(parse_go_duration("s"), Err(DurationError::Invalid));
        assert_eq!(parse_go_duration("60"), Err(DurationError::MissingUnit));
        assert_eq!(parse_go_duration("1m30"), Err(DurationError::MissingUnit));
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit("d".into()))
        );
        assert_eq!(
            parse_go_duration("1 s"),
            Err(DurationError::UnknownUnit(" s".into()))
        );
        assert_eq!(
            parse_go_duration("9223372036854775808ns"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse_go_duration("2562048h"), Err(DurationError::Overflow));
        assert_eq!(parse_go_duration("-1s"), Err(DurationError::Negative));
    }

    #[test]
    fn go_bools_parse_as_strconv() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(text), Some(true), "{text}");
        }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(text), Some(false), "{text}");
        }
        for text in ["yes", "tRUE", "", " true"] {
            assert_eq!(parse_go_bool(text), None, "{text}");
        }
    }

    #[test]
    fn quantities_follow_kubernetes_grammar() {
        for text in [
            "1", "400m", "0.5", ".5", "1.", "128Mi", "1Gi", "100M", "1e3", "7.5E-2", "+1k", "-1",
            "5n", "5u",
        ] {
            assert!(is_quantity(text), "{text}");
        }
        for text in ["", "m", "1Gb", "1 Gi", "1e", "abc", "1.2.3", "1mi"] {
            assert!(!is_quantity(text), "{text}");
        }
    }
}
