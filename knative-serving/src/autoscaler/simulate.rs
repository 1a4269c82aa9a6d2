//! Replays a metrics trace through an autoscaler, second by second, as
//! `knative autoscaler simulate` does; the format of Knative's KPA conformance traces.
//!
//! A trace is CSV with the header `second,observed_concurrency,ready_pods`: the revision's
//! total concurrency and ready pods in each second. Trace second `s` is the wall time
//! `base + s`. Each row's value is recorded once into the revision's 1-second metric buckets at
//! that time; then, on tick seconds (multiples of `tick`, starting at 0), the autoscaler
//! decides at that time with that row's ready pods. The autoscaler is made at second 0 with the
//! first row's ready pods. Each decision is a [`Row`], printed by [`format_rows`] as
//! `second,observed_concurrency,ready_pods,stable_concurrency,panic_concurrency,desired_pods,excess_burst_capacity,panic_mode,scale_valid`.
//!
//! ```
//! use knative_serving::autoscaler::simulate::{self, Settings};
//!
//! let trace = simulate::parse_trace("second,observed_concurrency,ready_pods\n0,0,1\n1,140,1\n").unwrap();
//! let rows = simulate::replay(&trace, &Settings::default()).unwrap();
//! assert_eq!(
//!     simulate::format_rows(&rows),
//!     "second,observed_concurrency,ready_pods,stable_concurrency,panic_concurrency,desired_pods,excess_burst_capacity,panic_mode,scale_valid\n\
//!      0,0,1,0.000,0.000,0,-111,0,true\n\
//!      1,140,1,70.000,70.000,1,-181,0,true\n"
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::num::NonZeroU32;

use k8s_openapi::jiff::Timestamp;
use knative_core::config::{AutoscalerConfig, ConfigError, ConfigMapConfig};

use super::metrics::{MetricSpec, RevisionMetrics, Stat};
use super::{AutoscalerError, AutoscalerParams, AutoscalerRegistry, MetricSnapshot};

/// The header of a trace.
pub const TRACE_HEADER: &str = "second,observed_concurrency,ready_pods";
/// The header of a replay's output.
pub const ROWS_HEADER: &str = "second,observed_concurrency,ready_pods,stable_concurrency,panic_concurrency,desired_pods,excess_burst_capacity,panic_mode,scale_valid";
/// The wall time of trace second 0 unless told otherwise (a whole, even second: the
/// scale-down delay window counts in 2-second steps of Unix time).
pub const DEFAULT_BASE_SECOND: i64 = 1_700_000_000;

/// One second of a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRow {
    /// Seconds since the start of the trace.
    pub second: i64,
    /// The revision's total concurrency in that second (what scraping all its pods reports).
    pub observed_concurrency: f64,
    /// The revision's ready pods then.
    pub ready_pods: i32,
}

/// One decision of a replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// The trace second decided at.
    pub second: i64,
    /// The trace's concurrency in that second.
    pub observed_concurrency: f64,
    /// The trace's ready pods in that second.
    pub ready_pods: i32,
    /// The stable-window average the decision used.
    pub stable_concurrency: f64,
    /// The panic-window average the decision used.
    pub panic_concurrency: f64,
    /// The desired scale.
    pub desired_pods: i32,
    /// The excess burst capacity.
    pub excess_burst_capacity: i32,
    /// Whether the autoscaler was in panic mode after the decision.
    pub panic_mode: bool,
    /// Whether the decision was valid (there was data to decide on).
    pub scale_valid: bool,
}

/// How a trace is replayed: the flags of `knative autoscaler simulate`.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Decide every `tick` seconds (Knative decides every 2).
    pub tick: NonZeroU32,
    /// The revision's `containerConcurrency` (0: unlimited).
    pub container_concurrency: i64,
    /// `config-autoscaler`.
    pub config: AutoscalerConfig,
    /// The revision's annotations (`autoscaling.knative.dev/*`).
    pub annotations: BTreeMap<String, String>,
    /// The wall time of trace second 0.
    pub base: Timestamp,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tick: NonZeroU32::MIN,
            container_concurrency: 0,
            config: AutoscalerConfig::default(),
            annotations: BTreeMap::new(),
            base: Timestamp::from_second(DEFAULT_BASE_SECOND).unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }
}

/// A flag of `knative autoscaler simulate` that cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// `--tick 0`.
    #[error("--tick must be at least 1 second")]
    ZeroTick,
    /// A negative `--container-concurrency`.
    #[error("--container-concurrency must be 0 (unlimited) or more, got {0}")]
    NegativeContainerConcurrency(i64),
    /// A `--cm` or `--annotation` that is not `key=value`.
    #[error("{flag} {value:?}: expected key=value")]
    NotKeyValue {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// `--cm` values `config-autoscaler` rejects.
    #[error("--cm: {0}")]
    Config(#[from] ConfigError),
}

impl Settings {
    /// Settings from the flags of `knative autoscaler simulate`: `--tick`,
    /// `--container-concurrency`, `--cm key=value` (`config-autoscaler` keys, parsed and
    /// validated as Knative does) and `--annotation key=value`.
    ///
    /// # Errors
    /// A zero tick, a negative container concurrency, a pair without `=`, or a `config-autoscaler`
    /// value Knative would reject.
    pub fn from_flags<S: AsRef<str>>(
        tick: u32,
        container_concurrency: i64,
        cm: &[S],
        annotations: &[S],
    ) -> Result<Self, SettingsError> {
        let tick = NonZeroU32::new(tick).ok_or(SettingsError::ZeroTick)?;
        if container_concurrency < 0 {
            return Err(SettingsError::NegativeContainerConcurrency(
                container_concurrency,
            ));
        }
        let config = AutoscalerConfig::from_data(&key_values("--cm", cm)?)?;
        Ok(Self {
            tick,
            container_concurrency,
            config,
            annotations: key_values("--annotation", annotations)?,
            ..Self::default()
        })
    }
}

fn key_values<S: AsRef<str>>(
    flag: &'static str,
    pairs: &[S],
) -> Result<BTreeMap<String, String>, SettingsError> {
    pairs
        .iter()
        .map(|pair| {
            let pair = pair.as_ref();
            match pair.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    Ok((key.trim().to_owned(), value.trim().to_owned()))
                }
                _ => Err(SettingsError::NotKeyValue {
                    flag,
                    value: pair.to_owned(),
                }),
            }
        })
        .collect()
}

/// A trace or rows file that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a trace: the header `second,observed_concurrency,ready_pods`, then one row per second
/// with strictly increasing, non-negative seconds, a finite concurrency and non-negative ready
/// pods. Blank lines are ignored.
///
/// # Errors
/// The line and the reason of the first problem.
pub fn parse_trace(text: &str) -> Result<Vec<TraceRow>, CsvError> {
    let mut rows: Vec<TraceRow> = Vec::new();
    for (line, fields) in records(text, TRACE_HEADER)? {
        let [second, concurrency, ready] = fields[..] else {
            return Err(CsvError {
                line,
                message: format!("expected 3 fields ({TRACE_HEADER}), got {}", fields.len()),
            });
        };
        let row = TraceRow {
            second: field(line, "second", second)?,
            observed_concurrency: field(line, "observed_concurrency", concurrency)?,
            ready_pods: field(line, "ready_pods", ready)?,
        };
        if row.second < 0 {
            return Err(CsvError {
                line,
                message: format!("second {} is negative", row.second),
            });
        }
        if let Some(previous) = rows.last()
            && row.second <= previous.second
        {
            return Err(CsvError {
                line,
                message: format!(
                    "second {} does not follow second {}",
                    row.second, previous.second
                ),
            });
        }
        if !row.observed_concurrency.is_finite() {
            return Err(CsvError {
                line,
                message: format!("observed_concurrency {concurrency:?} is not a finite number"),
            });
        }
        if row.ready_pods < 0 {
            return Err(CsvError {
                line,
                message: format!("ready_pods {} is negative", row.ready_pods),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Parses the output of a replay (the format [`format_rows`] writes).
///
/// # Errors
/// The line and the reason of the first problem.
pub fn parse_rows(text: &str) -> Result<Vec<Row>, CsvError> {
    records(text, ROWS_HEADER)?
        .into_iter()
        .map(|(line, fields)| {
            let [s, oc, rp, sc, pc, dp, ebc, pm, sv] = fields[..] else {
                return Err(CsvError {
                    line,
                    message: format!("expected 9 fields, got {}", fields.len()),
                });
            };
            Ok(Row {
                second: field(line, "second", s)?,
                observed_concurrency: field(line, "observed_concurrency", oc)?,
                ready_pods: field(line, "ready_pods", rp)?,
                stable_concurrency: field(line, "stable_concurrency", sc)?,
                panic_concurrency: field(line, "panic_concurrency", pc)?,
                desired_pods: field(line, "desired_pods", dp)?,
                excess_burst_capacity: field(line, "excess_burst_capacity", ebc)?,
                panic_mode: match pm {
                    "0" => false,
                    "1" => true,
                    _ => return Err(bad(line, "panic_mode", pm)),
                },
                scale_valid: field(line, "scale_valid", sv)?,
            })
        })
        .collect()
}

/// The header check and the non-blank lines split on commas, with their line numbers.
fn records<'t>(text: &'t str, header: &str) -> Result<Vec<(usize, Vec<&'t str>)>, CsvError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, first)) if first == header => {}
        Some((line, first)) => {
            return Err(CsvError {
                line,
                message: format!("expected the header {header:?}, got {first:?}"),
            });
        }
        None => {
            return Err(CsvError {
                line: 1,
                message: format!("empty file: expected the header {header:?}"),
            });
        }
    }
    Ok(lines
        .map(|(line, l)| (line, l.split(',').map(str::trim).collect()))
        .collect())
}

fn field<T: std::str::FromStr>(line: usize, name: &str, value: &str) -> Result<T, CsvError> {
    value.parse().map_err(|_| bad(line, name, value))
}

fn bad(line: usize, name: &str, value: &str) -> CsvError {
    CsvError {
        line,
        message: format!("{name} {value:?} is not valid"),
    }
}

/// Replays `trace` through the autoscaler of the revision's class, made by the default
/// registry (the KPA unless the annotations name another class).
///
/// # Errors
/// When no autoscaler can be made for the revision's class.
pub fn replay(trace: &[TraceRow], settings: &Settings) -> Result<Vec<Row>, AutoscalerError> {
    replay_with(&AutoscalerRegistry::default(), trace, settings)
}

/// Replays `trace` through an autoscaler made by `registry`.
///
/// # Errors
/// When `registry` cannot make an autoscaler for the revision's class.
pub fn replay_with(
    registry: &AutoscalerRegistry,
    trace: &[TraceRow],
    settings: &Settings,
) -> Result<Vec<Row>, AutoscalerError> {
    let base = settings.base;
    let params = AutoscalerParams {
        container_concurrency: settings.container_concurrency,
        ready_pods: trace.first().map_or(0, |row| row.ready_pods),
        ..AutoscalerParams::new(&settings.annotations, &settings.config, base)
    };
    let mut autoscaler = registry.create(&params)?;
    let mut metrics = RevisionMetrics::new(&MetricSpec::new(&params));
    let tick = i64::from(settings.tick.get());
    let mut rows = Vec::with_capacity(trace.len() / settings.tick.get() as usize + 1);
    for row in trace {
        let now = at(base, row.second);
        // The value feeds whichever metric the revision scales on.
        metrics.record(
            now,
            &Stat {
                average_concurrent_requests: row.observed_concurrency,
                request_count: row.observed_concurrency,
                ..Stat::default()
            },
        );
        if row.second % tick != 0 {
            continue;
        }
        let decision = autoscaler.scale(&MetricSnapshot {
            now,
            ready_pods: row.ready_pods,
            metrics: &metrics,
        });
        rows.push(Row {
            second: row.second,
            observed_concurrency: row.observed_concurrency,
            ready_pods: row.ready_pods,
            stable_concurrency: decision.observed_stable,
            panic_concurrency: decision.observed_panic,
            desired_pods: decision.desired_scale,
            excess_burst_capacity: decision.excess_burst_capacity,
            panic_mode: decision.panic,
            scale_valid: decision.valid,
        });
    }
    Ok(rows)
}

/// `base + second`, saturating at the end of time.
fn at(base: Timestamp, second: i64) -> Timestamp {
    Timestamp::from_second(base.as_second().saturating_add(second)).unwrap_or(Timestamp::MAX)
}

/// The rows as CSV with [`ROWS_HEADER`]: averages with three decimals, `panic_mode` as 0 or 1.
pub fn format_rows(rows: &[Row]) -> String {
    let mut out = String::with_capacity(ROWS_HEADER.len() + 1 + rows.len() * 48);
    out.push_str(ROWS_HEADER);
    out.push('\n');
    for row in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{:.3},{:.3},{},{},{},{}",
            row.second,
            row.observed_concurrency,
            row.ready_pods,
            row.stable_concurrency,
            row.panic_concurrency,
            row.desired_pods,
            row.excess_burst_capacity,
            u8::from(row.panic_mode),
            row.scale_valid,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(rows: &[(i64, f64, i32)]) -> Vec<TraceRow> {
        rows.iter()
            .map(|&(second, observed_concurrency, ready_pods)| TraceRow {
                second,
                observed_concurrency,
                ready_pods,
            })
            .collect()
    }

    #[test]
    fn a_trace_parses() {
        let rows =
            parse_trace("second,observed_concurrency,ready_pods\r\n0,0,1\r\n1, 8.333 ,1\r\n\r\n")
                .unwrap();
        assert_eq!(rows, trace(&[(0, 0.0, 1), (1, 8.333, 1)]));
    }

    #[test]
    fn malformed_traces_name_the_line_and_the_problem() {
        let cases = [
            (
                "",
                "line 1: empty file: expected the header \"second,observed_concurrency,ready_pods\"",
            ),
            (
                "a,b,c\n",
                "line 1: expected the header \"second,observed_concurrency,ready_pods\", got \"a,b,c\"",
            ),
            (
                "second,observed_concurrency,ready_pods\n0,1\n",
                "line 2: expected 3 fields (second,observed_concurrency,ready_pods), got 2",
            ),
            (
                "second,observed_concurrency,ready_pods\n0,lots,1\n",
                "line 2: observed_concurrency \"lots\" is not valid",
            ),
            (
                "second,observed_concurrency,ready_pods\n0,1,1.5\n",
                "line 2: ready_pods \"1.5\" is not valid",
            ),
            (
                "second,observed_concurrency,ready_pods\n1,1,1\n1,1,1\n",
                "line 3: second 1 does not follow second 1",
            ),
            (
                "second,observed_concurrency,ready_pods\n-1,1,1\n",
                "line 2: second -1 is negative",
            ),
            (
                "second,observed_concurrency,ready_pods\n0,inf,1\n",
                "line 2: observed_concurrency \"inf\" is not a finite number",
            ),
            (
                "second,observed_concurrency,ready_pods\n0,1,-1\n",
                "line 2: ready_pods -1 is negative",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_trace(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn rows_round_trip_through_csv() {
        let rows = vec![Row {
            second: 3,
            observed_concurrency: 25.0,
            ready_pods: 1,
            stable_concurrency: 12.5,
            panic_concurrency: 12.5,
            desired_pods: 1,
            excess_burst_capacity: -124,
            panic_mode: true,
            scale_valid: true,
        }];
        let text = format_rows(&rows);
        assert_eq!(
            text,
            format!("{ROWS_HEADER}\n3,25,1,12.500,12.500,1,-124,1,true\n")
        );
        assert_eq!(parse_rows(&text).unwrap(), rows);
    }

    #[test]
    fn settings_from_flags() {
        let s = Settings::from_flags(
            2,
            10,
            &["stable-window=30s", "panic-threshold-percentage = 150"],
            &["autoscaling.knative.dev/target=5"],
        )
        .unwrap();
        assert_eq!(s.tick.get(), 2);
        assert_eq!(s.container_concurrency, 10);
        assert_eq!(s.config.stable_window, std::time::Duration::from_secs(30));
        assert_eq!(s.config.panic_threshold_percentage, 150.0);
        assert_eq!(s.annotations["autoscaling.knative.dev/target"], "5");
    }

    #[test]
    fn bad_flags_are_explained() {
        let none: &[&str] = &[];
        assert_eq!(
            Settings::from_flags(0, 0, none, none)
                .unwrap_err()
                .to_string(),
            "--tick must be at least 1 second"
        );
        assert_eq!(
            Settings::from_flags(1, -1, none, none)
                .unwrap_err()
                .to_string(),
            "--container-concurrency must be 0 (unlimited) or more, got -1"
        );
        assert_eq!(
            Settings::from_flags(1, 0, &["stable-window"], none)
                .unwrap_err()
                .to_string(),
            "--cm \"stable-window\": expected key=value"
        );
        assert_eq!(
            Settings::from_flags(1, 0, &["stable-window=2s"], none)
                .unwrap_err()
                .to_string(),
            "--cm: config-autoscaler: stable-window: invalid value \"2s\": must be in [6s, 1h]"
        );
    }

    #[test]
    fn decisions_happen_on_tick_seconds_after_recording() {
        let settings = Settings {
            tick: NonZeroU32::new(2).unwrap(),
            ..Settings::default()
        };
        let rows = replay(
            &trace(&[(0, 70.0, 1), (1, 70.0, 1), (2, 70.0, 1), (3, 70.0, 1)]),
            &settings,
        )
        .unwrap();
        assert_eq!(rows.iter().map(|r| r.second).collect::<Vec<_>>(), [0, 2]);
        assert!(rows.iter().all(|r| r.desired_pods == 1 && r.scale_valid));
    }

    #[test]
    fn the_decider_is_made_with_the_first_rows_ready_pods() {
        let rows = replay(&trace(&[(0, 0.0, 3), (1, 0.0, 3)]), &Settings::default()).unwrap();
        assert!(rows[0].panic_mode, "made with 3 ready pods: panic");
        assert_eq!(rows[0].desired_pods, 3);
    }

    #[test]
    fn an_empty_trace_replays_to_no_rows() {
        assert_eq!(replay(&[], &Settings::default()).unwrap(), []);
        assert_eq!(format_rows(&[]), format!("{ROWS_HEADER}\n"));
    }

    #[test]
    fn an_unknown_class_cannot_be_replayed() {
        let settings = Settings::from_flags(
            1,
            0,
            &[],
            &["autoscaling.knative.dev/class=hpa.autoscaling.knative.dev"],
        )
        .unwrap();
        assert!(replay(&trace(&[(0, 1.0, 1)]), &settings).is_err());
    }
}
