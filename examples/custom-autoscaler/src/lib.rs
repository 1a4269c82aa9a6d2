//! # A custom autoscaler plug-in: capacity by schedule
//!
//! Knative's KPA reacts to load. Many services know their load in advance: office hours, a
//! nightly batch, a Saturday sale. The **schedule autoscaler** (class
//! `schedule.autoscaling.example.com`) keeps a fixed number of pods warm during the windows a
//! revision names, and outside them follows load with a plain target per pod — scaling to
//! zero when idle. It reacts to nothing faster than that: no panic mode, no windows of
//! averages, which makes it predictable (and cheap) where the schedule is known.
//!
//! A revision opts in with annotations:
//!
//! ```yaml
//! autoscaling.knative.dev/class: schedule.autoscaling.example.com
//! # UTC; days Mon..Sun, ranges Mon-Fri, or *; end exclusive, 24:00 allowed.
//! schedule.autoscaling.example.com/windows: "Mon-Fri 08:00-18:00=5, Sat 10:00-14:00=2"
//! autoscaling.knative.dev/target: "50"   # outside the windows: 50 requests in flight per pod
//! ```
//!
//! The policy is an ordinary [`Autoscaler`]: registered by class in an
//! [`AutoscalerRegistry`] next to the KPA, it is made per revision by the same
//! machinery (multi-scaler, deciders, PodAutoscaler reconciler), which applies scale bounds,
//! scale to zero and the activator exactly as for the KPA.
//!
//! ```
//! use std::collections::BTreeMap;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_core::config::AutoscalerConfig;
//! use knative_serving::autoscaler::AutoscalerParams;
//!
//! let registry = custom_autoscaler::registry();
//! let annotations = BTreeMap::from([
//!     ("autoscaling.knative.dev/class".to_owned(), "schedule.autoscaling.example.com".to_owned()),
//!     ("schedule.autoscaling.example.com/windows".to_owned(), "Mon-Fri 08:00-18:00=5".to_owned()),
//! ]);
//! let config = AutoscalerConfig::default();
//! // Monday 2024-01-01, 09:00 UTC.
//! let now: Timestamp = "2024-01-01T09:00:00Z".parse().unwrap();
//! let params = AutoscalerParams::new(&annotations, &config, now);
//! let mut autoscaler = registry.create(&params).unwrap();
//! # let metrics = knative_serving::autoscaler::metrics::RevisionMetrics::new(
//! #     &knative_serving::autoscaler::metrics::MetricSpec::new(&params));
//! let decision = autoscaler.scale(&knative_serving::autoscaler::MetricSnapshot {
//!     now, ready_pods: 0, metrics: &metrics,
//! });
//! assert_eq!(decision.desired_scale, 5, "office hours: five warm pods, load or not");
//! ```

use std::fmt;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use knative_serving::apis::autoscaling::TARGET_ANNOTATION_KEY;
use knative_serving::autoscaler::metrics::ScalingMetric;
use knative_serving::autoscaler::{
    Autoscaler, AutoscalerError, AutoscalerParams, AutoscalerRegistry, MetricSnapshot,
    ScaleRecommendation,
};

/// The class that selects the schedule autoscaler.
pub const SCHEDULE_CLASS: &str = "schedule.autoscaling.example.com";
/// The annotation listing the windows: `DAYS HH:MM-HH:MM=PODS`, comma-separated.
pub const WINDOWS_ANNOTATION_KEY: &str = "schedule.autoscaling.example.com/windows";
/// Requests in flight per pod outside the windows when the revision sets no
/// `autoscaling.knative.dev/target`.
pub const DEFAULT_TARGET: f64 = 100.0;

/// A registry with the KPA and the schedule autoscaler.
pub fn registry() -> AutoscalerRegistry {
    let mut registry = AutoscalerRegistry::default();
    registry.register(SCHEDULE_CLASS, factory);
    registry
}

/// The registry's factory of [`SCHEDULE_CLASS`].
///
/// # Errors
/// When the windows annotation or the target does not parse.
pub fn factory(params: &AutoscalerParams<'_>) -> Result<Box<dyn Autoscaler>, AutoscalerError> {
    Ok(Box::new(ScheduleAutoscaler::new(params)?))
}

/// Days of the week, Monday first, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Days(u8);

/// One window: on `days`, from `start` to `end` (minutes of the day, UTC), keep `pods` warm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    days: Days,
    start: u16,
    end: u16,
    /// The pods kept during the window.
    pub pods: i32,
}

impl Window {
    fn contains(&self, weekday: u8, minute: u16) -> bool {
        self.days.0 & (1 << weekday) != 0 && self.start <= minute && minute < self.end
    }
}

/// Why the windows annotation does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{WINDOWS_ANNOTATION_KEY}: window {index} ({text:?}): {problem}")]
pub struct WindowError {
    index: usize,
    text: String,
    problem: String,
}

/// Parses `Mon-Fri 08:00-18:00=5, Sat 10:00-14:00=2`.
///
/// # Errors
/// Names the window (from 0) and what is wrong with it.
pub fn parse_windows(text: &str) -> Result<Vec<Window>, WindowError> {
    text.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(index, window)| {
            parse_window(window).map_err(|problem| WindowError {
                index,
                text: window.to_owned(),
                problem,
            })
        })
        .collect()
}

fn parse_window(text: &str) -> Result<Window, String> {
    let (span, pods) = text
        .rsplit_once('=')
        .ok_or("expected DAYS HH:MM-HH:MM=PODS")?;
    let pods: i32 = pods
        .trim()
        .parse()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| format!("pods {:?} is not a non-negative integer", pods.trim()))?;
    let (days, hours) = span
        .trim()
        .split_once(' ')
        .ok_or("expected DAYS HH:MM-HH:MM=PODS")?;
    let (start, end) = hours
        .trim()
        .split_once('-')
        .ok_or_else(|| format!("hours {hours:?} are not HH:MM-HH:MM"))?;
    let (start, end) = (minute_of_day(start)?, minute_of_day(end)?);
    if start >= end {
        return Err(format!("{hours} ends before it starts"));
    }
    Ok(Window {
        days: parse_days(days)?,
        start,
        end,
        pods,
    })
}

fn parse_days(text: &str) -> Result<Days, String> {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = |name: &str| {
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown day {name:?} (Mon..Sun)"))
    };
    if text == "*" {
        return Ok(Days(0x7f));
    }
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (day(a)?, day(b)?),
        None => (day(text)?, day(text)?),
    };
    if first > last {
        return Err(format!("days {text} run backwards"));
    }
    Ok(Days((first..=last).fold(0, |bits, d| bits | 1 << d)))
}

fn minute_of_day(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The schedule autoscaler of one revision. Pure: the time comes in each snapshot.
#[derive(Clone, PartialEq)]
pub struct ScheduleAutoscaler {
    windows: Vec<Window>,
    target: f64,
}

impl fmt::Debug for ScheduleAutoscaler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleAutoscaler")
            .field("windows", &self.windows)
            .field("target", &self.target)
            .finish()
    }
}

impl ScheduleAutoscaler {
    /// The autoscaler `params` describe.
    ///
    /// # Errors
    /// When the windows annotation or the target does not parse (a target must be positive).
    pub fn new(params: &AutoscalerParams<'_>) -> Result<Self, AutoscalerError> {
        let invalid = |message: String| AutoscalerError::Invalid {
            class: SCHEDULE_CLASS.to_owned(),
            message,
        };
        let windows = params
            .annotations
            .get(WINDOWS_ANNOTATION_KEY)
            .map(|w| parse_windows(w))
            .transpose()
            .map_err(|e| invalid(e.to_string()))?
            .unwrap_or_default();
        let target = match params.annotations.get(TARGET_ANNOTATION_KEY) {
            None => DEFAULT_TARGET,
            Some(v) => v.parse::<f64>().ok().filter(|t| *t > 0.0).ok_or_else(|| {
                invalid(format!(
                    "{TARGET_ANNOTATION_KEY}: {v:?} is not a positive number"
                ))
            })?,
        };
        Ok(Self { windows, target })
    }

    /// The pods the schedule asks for at `now` (the largest of the windows open then; 0 when
    /// none is).
    pub fn scheduled(&self, now: Timestamp) -> i32 {
        let zoned = now.to_zoned(TimeZone::UTC);
        let weekday = u8::try_from(zoned.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute = u16::try_from(zoned.hour()).unwrap_or(0) * 60
            + u16::try_from(zoned.minute()).unwrap_or(0);
        self.windows
            .iter()
            .filter(|w| w.contains(weekday, minute))
            .map(|w| w.pods)
            .max()
            .unwrap_or(0)
    }
}

impl Autoscaler for ScheduleAutoscaler {
    /// The scheduled pods, or more when the load (the stable average of concurrency) needs
    /// more at the target. Without any data, the schedule alone decides.
    fn scale(&mut self, snapshot: &MetricSnapshot<'_>) -> ScaleRecommendation {
        let scheduled = self.scheduled(snapshot.now);
        let observed = snapshot
            .metrics
            .stable_and_panic(ScalingMetric::Concurrency, snapshot.now)
            .map_or(0.0, |(stable, _)| stable);
        let by_load = (observed / self.target).ceil() as i32;
        let capacity = f64::from(snapshot.ready_pods) * self.target;
        ScaleRecommendation {
            desired_scale: scheduled.max(by_load),
            // Spare capacity right now; negative keeps the activator buffering.
            excess_burst_capacity: (capacity - observed).floor() as i32,
            panic: false,
            valid: true,
            observed_stable: observed,
            observed_panic: observed,
        }
    }

    fn update(&mut self, params: &AutoscalerParams<'_>) -> Result<(), AutoscalerError> {
        *self = Self::new(params)?;
        Ok(())
    }

    fn memory_footprint(&self) -> usize {
        size_of::<Self>() + self.windows.capacity() * size_of::<Window>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_days_hours_and_pods() {
        let windows =
            parse_windows("Mon-Fri 08:00-18:00=5, Sat 10:00-24:00=2,* 00:00-00:30=1").unwrap();
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[0].days, Days(0b001_1111));
        assert_eq!(
            (windows[0].start, windows[0].end, windows[0].pods),
            (480, 1080, 5)
        );
        assert_eq!(windows[1].days, Days(0b010_0000));
        assert_eq!(windows[1].end, 1440);
        assert_eq!(windows[2].days, Days(0x7f));
    }

    #[test]
    fn bad_windows_name_the_window_and_the_problem() {
        let err = |text: &str| parse_windows(text).unwrap_err().to_string();
        assert_eq!(
            err("Mon 08:00-18:00=5, Funday 10:00-11:00=1"),
            "schedule.autoscaling.example.com/windows: window 1 (\"Funday 10:00-11:00=1\"): unknown day \"Funday\" (Mon..Sun)"
        );
        assert!(err("Mon 18:00-08:00=1").ends_with("18:00-08:00 ends before it starts"));
        assert!(err("Mon 08:00-25:00=1").contains("\"25:00\" is not HH:MM"));
        assert!(err("Mon 08:00-09:00=-1").contains("not a non-negative integer"));
        assert!(err("Fri-Mon 08:00-09:00=1").contains("run backwards"));
        assert!(err("Mon").contains("expected DAYS HH:MM-HH:MM=PODS"));
    }
}
