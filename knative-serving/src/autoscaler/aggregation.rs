//! Metric windows, as knative/serving `pkg/autoscaler/aggregation` keeps them: timed float
//! buckets averaged linearly ([`TimedFloat64Buckets`]) or with exponentially decaying weights
//! ([`WeightedFloat64Buckets`]), and the descending-maxima window behind the scale-down delay
//! ([`MaxTimeWindow`], `aggregation/max`).
//!
//! Times are [`Timestamp`]s; a bucket is `granularity` whole seconds and is indexed by Unix
//! seconds divided by the granularity, as Knative indexes them, so that two windows fed the same
//! samples hold the same buckets. The arithmetic is Knative's operation for operation (the
//! running total is updated incrementally, averages are floored to six digits), so the averages
//! are bit-for-bit the ones Knative computes.
//!
//! ```
//! use std::time::Duration;
//! use k8s_openapi::jiff::Timestamp;
//! use knative_serving::autoscaler::aggregation::TimedFloat64Buckets;
//!
//! let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
//! let mut window = TimedFloat64Buckets::new(Duration::from_secs(60), Duration::from_secs(1));
//! window.record(at(0), 10.0);
//! window.record(at(1), 20.0);
//! // Two seconds of data so far: the average is over those two buckets, not sixty.
//! assert_eq!(window.window_average(at(1)), 15.0);
//! ```

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// No write yet: Go's zero `time.Time`, stored without an `Option`'s extra word.
const NEVER: i64 = i64::MIN;
/// Averages are floored to this many decimal digits (`precision` in `bucketing.go`).
const PRECISION: i32 = 6;
/// The smallest decay multiplier of the weighted average (`minExponent`).
const MIN_EXPONENT: f64 = 0.2;
/// The least sum of weights the weighted average's buckets reach (`weightPrecision`).
const WEIGHT_PRECISION: f64 = 0.9999;

/// A window of time-indexed float buckets whose average is the plain mean of its buckets
/// (Knative's `TimedFloat64Buckets`, the `linear` aggregation algorithm).
///
/// The average is over the buckets since the first write while the window has not filled yet,
/// and over the buckets up to the last write when data stopped arriving; gaps shorter than the
/// window count as zeros, and a window without any write starts over.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedFloat64Buckets {
    /// A ring indexed by `time_to_index(t) % len`.
    buckets: Box<[f64]>,
    /// The bucket time of the first write, reset after a window without writes (Unix seconds,
    /// [`NEVER`] for none).
    first_write: i64,
    /// The bucket time of the last write (Unix seconds, [`NEVER`] for none).
    last_write: i64,
    /// Seconds per bucket.
    granularity: i64,
    /// The window's length in nanoseconds.
    window: i64,
    /// The sum of all buckets, kept incrementally.
    window_total: f64,
}

impl TimedFloat64Buckets {
    /// A window of `window`, in buckets of `granularity` (whole seconds, at least one): there
    /// are `ceil(window / granularity)` buckets.
    ///
    /// # Panics
    /// When `granularity` is not a whole, positive number of seconds.
    pub fn new(window: Duration, granularity: Duration) -> Self {
        assert!(
            granularity.subsec_nanos() == 0 && granularity.as_secs() > 0,
            "bucket granularity must be whole seconds, got {granularity:?}"
        );
        Self {
            buckets: vec![0.0; bucket_count(window, granularity)].into_boxed_slice(),
            first_write: NEVER,
            last_write: NEVER,
            granularity: i64::try_from(granularity.as_secs()).unwrap_or(i64::MAX),
            window: duration_nanos(window),
            window_total: 0.0,
        }
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window.unsigned_abs())
    }

    /// The number of buckets.
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Whether nothing was written for longer than the window (`IsEmpty`).
    pub fn is_empty(&self, now: Timestamp) -> bool {
        let now = self.truncate(now);
        match self.last_write() {
            None => true,
            Some(last) => seconds_to_nanos(now - last) > i128::from(self.window),
        }
    }

    /// Adds `value` to the bucket of `now` (`Record`). Buckets skipped since the last write are
    /// zeroed; after a whole window without writes the window starts over; a value older than
    /// the window is dropped.
    pub fn record(&mut self, now: Timestamp, value: f64) {
        let bucket_time = self.truncate(now);
        let write_index = self.time_to_index(unix_seconds(now));
        if self.last_write != bucket_time {
            let window = i128::from(self.window);
            if let Some(last) = self.last_write()
                && seconds_to_nanos(bucket_time) + window <= seconds_to_nanos(last)
            {
                return;
            }
            if self.first_write().is_none_or(|first| first > bucket_time) {
                self.first_write = bucket_time;
            }
            match self.last_write() {
                Some(last) if bucket_time <= last => {}
                Some(last) if seconds_to_nanos(bucket_time - last) < window => {
                    let len = self.buckets.len() as i64;
                    for i in self.time_to_index(last) + 1..=write_index {
                        let slot = &mut self.buckets[i.rem_euclid(len) as usize];
                        self.window_total -= *slot;
                        *slot = 0.0;
                    }
                    self.last_write = bucket_time;
                }
                _ => {
                    self.first_write = bucket_time;
                    self.buckets.fill(0.0);
                    self.window_total = 0.0;
                    self.last_write = bucket_time;
                }
            }
        }
        let len = self.buckets.len() as i64;
        self.buckets[write_index.rem_euclid(len) as usize] += value;
        self.window_total += value;
    }

    /// The mean of the valid buckets at `now`, floored to six digits (`WindowAverage`); 0 when
    /// nothing was written for a whole window.
    pub fn window_average(&self, now: Timestamp) -> f64 {
        let now = self.truncate(now);
        let Some(last) = self.last_write() else {
            return 0.0;
        };
        let since_last = now - last;
        let written = self.written_buckets(last);
        if since_last <= 0 {
            let valid = written.min(self.buckets.len() as f64);
            round_to_digits(PRECISION, self.window_total / valid)
        } else if seconds_to_nanos(since_last) < i128::from(self.window) {
            // Buckets after the last write are stale data of an earlier lap of the ring.
            let len = self.buckets.len() as i64;
            let start = self.time_to_index(last);
            let end = self.time_to_index(now);
            let mut total = self.window_total;
            for i in start + 1..=end {
                total -= self.buckets[i.rem_euclid(len) as usize];
            }
            let valid = written.min((len - (end - start)) as f64);
            round_to_digits(PRECISION, total / valid)
        } else {
            0.0
        }
    }

    /// Changes the window's length, keeping the most recent buckets (`ResizeWindow`). `now`
    /// decides whether there is recent data worth keeping.
    pub fn resize_window(&mut self, window: Duration, now: Timestamp) {
        let window_nanos = duration_nanos(window);
        if window_nanos == self.window {
            return;
        }
        let granularity = Duration::from_secs(self.granularity.unsigned_abs());
        let mut buckets = vec![0.0; bucket_count(window, granularity)].into_boxed_slice();
        let mut total = 0.0;
        match self.last_write() {
            Some(last)
                if seconds_to_nanos(self.truncate(now) - last) <= i128::from(self.window) =>
            {
                let old_len = self.buckets.len() as i64;
                let new_len = buckets.len() as i64;
                let mut index = self.time_to_index(last);
                for _ in 0..old_len.min(new_len) {
                    let value = self.buckets[index.rem_euclid(old_len) as usize];
                    buckets[index.rem_euclid(new_len) as usize] = value;
                    total += value;
                    index -= 1;
                }
                self.first_write = last - (old_len - 1) * self.granularity;
            }
            _ => self.first_write = NEVER,
        }
        self.window = window_nanos;
        self.buckets = buckets;
        self.window_total = total;
    }

    /// The bytes this window holds, itself and its buckets (from their capacity).
    pub fn memory_footprint(&self) -> usize {
        size_of::<Self>() + size_of_val(&*self.buckets)
    }

    /// `lastWrite.Sub(firstWrite) / granularity + 1`: the buckets written since the first
    /// write. A window whose first write was forgotten counts as full, as Go's saturating
    /// subtraction from the zero time makes it.
    fn written_buckets(&self, last: i64) -> f64 {
        match self.first_write() {
            Some(first) => ((last - first) / self.granularity) as f64 + 1.0,
            None => f64::INFINITY,
        }
    }

    /// The exponentially weighted average of the buckets with smoothing coefficient `c`
    /// (`WeightedFloat64Buckets.WindowAverage`).
    pub(crate) fn weighted_average(&self, c: f64, now: Timestamp) -> f64 {
        if self.is_empty(now) {
            return 0.0;
        }
        let Some(last) = self.last_write() else {
            return 0.0;
        };
        let now = self.truncate(now);
        let total = self.buckets.len() as i64;
        let mut count = total;
        let mut multiplier = c;
        if now > last {
            let zeros = (now - last) / self.granularity;
            multiplier *= (1.0 - c).powf(zeros as f64);
            count -= zeros;
        }
        let start = self.time_to_index(last) + total;
        let mut average = 0.0;
        for i in 0..count.max(0) {
            average += self.buckets[(start - i).rem_euclid(total) as usize] * multiplier;
            multiplier *= 1.0 - c;
        }
        average
    }

    /// The first write, if any since the window last started over.
    fn first_write(&self) -> Option<i64> {
        (self.first_write != NEVER).then_some(self.first_write)
    }

    /// The last write, if any.
    fn last_write(&self) -> Option<i64> {
        (self.last_write != NEVER).then_some(self.last_write)
    }

    /// `now.Truncate(granularity)`, in Unix seconds.
    fn truncate(&self, now: Timestamp) -> i64 {
        unix_seconds(now).div_euclid(self.granularity) * self.granularity
    }

    /// `timeToIndex`: Unix seconds divided (truncating, as Go divides) by the granularity.
    fn time_to_index(&self, unix_seconds: i64) -> i64 {
        unix_seconds / self.granularity
    }
}

/// A window whose average weighs recent buckets exponentially more than old ones (Knative's
/// `WeightedFloat64Buckets`, the `weighted-exponential` aggregation algorithm).
///
/// The smoothing coefficient is chosen so that the window's buckets carry at least 99.99% of
/// the weight, and is at least 0.2.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedFloat64Buckets {
    buckets: TimedFloat64Buckets,
    smoothing_coefficient: f64,
}

impl WeightedFloat64Buckets {
    /// A window of `window`, in buckets of `granularity` (whole seconds, at least one).
    ///
    /// # Panics
    /// When `granularity` is not a whole, positive number of seconds.
    pub fn new(window: Duration, granularity: Duration) -> Self {
        let buckets = TimedFloat64Buckets::new(window, granularity);
        let smoothing_coefficient = smoothing_coefficient(buckets.num_buckets());
        Self {
            buckets,
            smoothing_coefficient,
        }
    }

    /// The multiplier by which each older bucket's weight decays.
    pub fn smoothing_coefficient(&self) -> f64 {
        self.smoothing_coefficient
    }

    /// Whether nothing was written for longer than the window.
    pub fn is_empty(&self, now: Timestamp) -> bool {
        self.buckets.is_empty(now)
    }

    /// Adds `value` to the bucket of `now`, as [`TimedFloat64Buckets::record`] does.
    pub fn record(&mut self, now: Timestamp, value: f64) {
        self.buckets.record(now, value);
    }

    /// The exponentially weighted average at `now`: the newest bucket weighs `c`, the one
    /// before `c(1-c)`, and so on; buckets since the last write count as zeros.
    pub fn window_average(&self, now: Timestamp) -> f64 {
        self.buckets
            .weighted_average(self.smoothing_coefficient, now)
    }

    /// Changes the window's length, keeping the most recent buckets, and recomputes the
    /// smoothing coefficient.
    pub fn resize_window(&mut self, window: Duration, now: Timestamp) {
        self.buckets.resize_window(window, now);
        self.smoothing_coefficient = smoothing_coefficient(self.buckets.num_buckets());
    }

    /// The bytes this window holds, itself and its buckets.
    pub fn memory_footprint(&self) -> usize {
        size_of::<Self>() - size_of::<TimedFloat64Buckets>() + self.buckets.memory_footprint()
    }
}

/// Knative's `computeSmoothingCoeff`: at least `WEIGHT_PRECISION` of the weight falls on the
/// window's buckets, bounded below by `MIN_EXPONENT`.
pub(crate) fn smoothing_coefficient(buckets: usize) -> f64 {
    (1.0 - (1.0 - WEIGHT_PRECISION).powf(1.0 / buckets as f64)).max(MIN_EXPONENT)
}

/// The maximum of the values recorded over a sliding window of time (Knative's
/// `max.TimeWindow`, an ascending-minima queue turned around): the scale-down delay applies the
/// largest recommendation of the last `scale-down-delay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxTimeWindow {
    /// Candidates for the maximum, descending in value and ascending in index, in a ring.
    maxima: Box<[MaxEntry]>,
    first: usize,
    length: usize,
    /// Seconds per index.
    granularity: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MaxEntry {
    value: i32,
    index: i64,
}

impl MaxTimeWindow {
    /// A window of `duration` in steps of `granularity` (whole seconds): it spans
    /// `ceil(duration / granularity)` indexes.
    ///
    /// # Panics
    /// When `granularity` is not a whole, positive number of seconds, or `duration` is zero.
    pub fn new(duration: Duration, granularity: Duration) -> Self {
        assert!(
            granularity.subsec_nanos() == 0 && granularity.as_secs() > 0,
            "window granularity must be whole seconds, got {granularity:?}"
        );
        let size = bucket_count(duration, granularity);
        assert!(size > 0, "a max window needs a positive duration");
        Self {
            maxima: vec![MaxEntry::default(); size].into_boxed_slice(),
            first: 0,
            length: 0,
            granularity: i64::try_from(granularity.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Records `value` at `now`; values recorded at the same index keep the largest.
    pub fn record(&mut self, now: Timestamp, value: i32) {
        let index = unix_seconds(now) / self.granularity;
        let size = self.maxima.len();
        // A value no larger than the newcomer can never be the maximum again.
        while self.length > 0 {
            if value < self.maxima[(self.first + self.length - 1) % size].value {
                break;
            }
            self.length -= 1;
        }
        // Drop what fell out of the window; indexes ascend, so the oldest come first.
        while self.length > 0 && index - self.maxima[self.first].index >= size as i64 {
            self.length -= 1;
            self.first = (self.first + 1) % size;
        }
        let mut value = value;
        if self.length > 0 {
            let last = self.maxima[(self.first + self.length - 1) % size];
            if last.index == index {
                value = value.max(last.value);
                self.length -= 1;
            }
        }
        self.maxima[(self.first + self.length) % size] = MaxEntry { value, index };
        self.length += 1;
    }

    /// The largest value recorded within the window (0 before the first record).
    pub fn current(&self) -> i32 {
        self.maxima[self.first].value
    }

    /// The bytes this window holds, itself and its ring.
    pub fn memory_footprint(&self) -> usize {
        size_of::<Self>() + size_of_val(&*self.maxima)
    }
}

/// `ceil(window / granularity)`, Knative's bucket count.
fn bucket_count(window: Duration, granularity: Duration) -> usize {
    let buckets = window.as_nanos().div_ceil(granularity.as_nanos());
    usize::try_from(buckets).unwrap_or(usize::MAX)
}

/// `math.Floor(f*10^n) / 10^n`.
fn round_to_digits(digits: i32, f: f64) -> f64 {
    let p = 10f64.powi(digits);
    (f * p).floor() / p
}

/// Go's `t.Unix()`: whole seconds since the epoch, rounded down.
pub(crate) fn unix_seconds(t: Timestamp) -> i64 {
    t.as_second() - i64::from(t.subsec_nanosecond() < 0)
}

/// A duration in nanoseconds, saturating past Go's largest `time.Duration` (292 years).
fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn seconds_to_nanos(seconds: i64) -> i128 {
    i128::from(seconds) * NANOS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_700_000_000;
    const SECOND: Duration = Duration::from_secs(1);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(BASE + second).unwrap()
    }

    fn at_millis(millis: i64) -> Timestamp {
        Timestamp::from_millisecond(BASE * 1000 + millis).unwrap()
    }

    fn linear(window_secs: u64) -> TimedFloat64Buckets {
        TimedFloat64Buckets::new(Duration::from_secs(window_secs), SECOND)
    }

    #[test]
    fn bucket_count_rounds_up() {
        assert_eq!(linear(60).num_buckets(), 60);
        assert_eq!(
            TimedFloat64Buckets::new(Duration::from_secs(61), Duration::from_secs(2)).num_buckets(),
            31
        );
        assert_eq!(
            TimedFloat64Buckets::new(Duration::from_millis(5500), SECOND).num_buckets(),
            6
        );
    }

    #[test]
    fn an_unwritten_window_is_empty_and_averages_zero() {
        let window = linear(6);
        assert!(window.is_empty(at(0)));
        assert_eq!(window.window_average(at(0)), 0.0);
    }

    #[test]
    fn the_average_covers_only_the_seconds_since_the_first_write() {
        let mut window = linear(60);
        window.record(at(0), 0.0);
        window.record(at(1), 8.333);
        assert_eq!(window.window_average(at(1)), 4.1665);
        window.record(at(2), 16.667);
        assert_eq!(window.window_average(at(2)), 8.333333);
    }

    #[test]
    fn values_in_the_same_second_add_up() {
        let mut window = linear(6);
        window.record(at_millis(0), 1.0);
        window.record(at_millis(400), 2.0);
        window.record(at_millis(999), 3.0);
        assert_eq!(window.window_average(at(0)), 6.0);
    }

    #[test]
    fn a_full_window_averages_its_last_buckets() {
        let mut window = linear(3);
        for (s, v) in [(0, 100.0), (1, 1.0), (2, 2.0), (3, 3.0)] {
            window.record(at(s), v);
        }
        // Second 0 fell out of the ring when second 3 was written.
        assert_eq!(window.window_average(at(3)), 2.0);
    }

    #[test]
    fn gaps_shorter_than_the_window_count_as_zeros() {
        let mut window = linear(6);
        window.record(at(0), 6.0);
        window.record(at(3), 6.0);
        assert_eq!(window.window_average(at(3)), 3.0);
    }

    #[test]
    fn without_recent_data_the_average_drops_the_stale_buckets() {
        let mut window = linear(6);
        for s in 0..6 {
            window.record(at(s), 6.0);
        }
        // Two seconds without data: the average is over the four buckets left.
        assert_eq!(window.window_average(at(7)), 6.0);
        let mut window = linear(6);
        window.record(at(0), 6.0);
        window.record(at(1), 6.0);
        assert_eq!(window.window_average(at(3)), 6.0);
    }

    #[test]
    fn after_a_window_without_data_the_average_is_zero_and_the_window_empty() {
        let mut window = linear(6);
        window.record(at(0), 6.0);
        assert!(!window.is_empty(at(6)));
        assert_eq!(window.window_average(at(5)), 6.0);
        assert_eq!(window.window_average(at(6)), 0.0);
        assert!(window.is_empty(at(7)));
    }

    #[test]
    fn writing_after_a_window_of_silence_starts_over() {
        let mut window = linear(6);
        for s in 0..6 {
            window.record(at(s), 100.0);
        }
        window.record(at(20), 1.0);
        assert_eq!(window.window_average(at(20)), 1.0);
        window.record(at(21), 3.0);
        assert_eq!(window.window_average(at(21)), 2.0);
    }

    #[test]
    fn a_value_older_than_the_window_is_dropped() {
        let mut window = linear(6);
        window.record(at(10), 6.0);
        window.record(at(4), 100.0);
        assert_eq!(window.window_average(at(10)), 6.0);
    }

    #[test]
    fn a_late_value_within_the_window_lands_in_its_bucket() {
        let mut window = linear(6);
        window.record(at(10), 6.0);
        window.record(at(8), 6.0);
        // The first write moved back to second 8: three buckets, 12 in total.
        assert_eq!(window.window_average(at(10)), 4.0);
    }

    #[test]
    fn averages_are_floored_to_six_digits() {
        let mut window = linear(6);
        window.record(at(0), 1.0);
        window.record(at(1), 1.0);
        window.record(at(2), 0.0);
        assert_eq!(window.window_average(at(2)), 0.666666);
    }

    #[test]
    fn growing_the_window_keeps_the_buckets_and_counts_the_old_window_as_written() {
        let mut window = linear(3);
        for s in 0..3 {
            window.record(at(s), 3.0);
        }
        window.resize_window(Duration::from_secs(6), at(2));
        assert_eq!(window.num_buckets(), 6);
        assert_eq!(window.window_average(at(2)), 3.0);
        window.record(at(3), 3.0);
        assert_eq!(window.window_average(at(3)), 3.0);
    }

    #[test]
    fn shrinking_the_window_keeps_the_newest_buckets() {
        let mut window = linear(6);
        for s in 0..6 {
            window.record(at(s), s as f64);
        }
        window.resize_window(Duration::from_secs(2), at(5));
        assert_eq!(window.num_buckets(), 2);
        assert_eq!(window.window_average(at(5)), 4.5);
    }

    #[test]
    fn resizing_without_recent_data_forgets_everything() {
        let mut window = linear(6);
        window.record(at(0), 6.0);
        window.resize_window(Duration::from_secs(3), at(100));
        assert_eq!(window.window_average(at(100)), 0.0);
        window.record(at(101), 2.0);
        assert_eq!(window.window_average(at(101)), 2.0);
    }

    #[test]
    fn weighted_average_matches_knatives_example() {
        // knative/serving docs/scaling/SYSTEM.md: concurrency [1, 3, 5, 4, 6, 7, 2, 8, 10, 20]
        // recorded one per second; the stable (10s) and panic (3s) averages.
        let mut stable = WeightedFloat64Buckets::new(Duration::from_secs(10), SECOND);
        let mut panic = WeightedFloat64Buckets::new(Duration::from_secs(3), SECOND);
        for (i, v) in [1.0, 3.0, 5.0, 4.0, 6.0, 7.0, 2.0, 8.0, 10.0, 20.0]
            .into_iter()
            .enumerate()
        {
            stable.record(at(i as i64 + 1), v);
            panic.record(at(i as i64 + 1), v);
        }
        assert!((stable.window_average(at(10)) - 15.430_728_028_66).abs() < 1e-9);
        // [8, 10, 20] with a coefficient of 1-(0.0001)^(1/3) ≈ 0.9536.
        let c = panic.smoothing_coefficient();
        let want = 20.0 * c + 10.0 * c * (1.0 - c) + 8.0 * c * (1.0 - c) * (1.0 - c);
        assert!((panic.window_average(at(10)) - want).abs() < 1e-12);
    }

    #[test]
    fn weighted_smoothing_coefficient_has_a_floor() {
        let long = WeightedFloat64Buckets::new(Duration::from_secs(3600), SECOND);
        assert_eq!(long.smoothing_coefficient(), MIN_EXPONENT);
        let short = WeightedFloat64Buckets::new(Duration::from_secs(10), SECOND);
        assert!(short.smoothing_coefficient() > MIN_EXPONENT);
    }

    #[test]
    fn weighted_average_decays_over_seconds_without_data() {
        let mut window = WeightedFloat64Buckets::new(Duration::from_secs(10), SECOND);
        window.record(at(0), 10.0);
        let c = window.smoothing_coefficient();
        assert!((window.window_average(at(0)) - 10.0 * c).abs() < 1e-12);
        assert!((window.window_average(at(2)) - 10.0 * c * (1.0 - c).powi(2)).abs() < 1e-12);
        assert_eq!(window.window_average(at(11)), 0.0);
    }

    #[test]
    fn weighted_resize_recomputes_the_coefficient() {
        let mut window = WeightedFloat64Buckets::new(Duration::from_secs(10), SECOND);
        window.resize_window(Duration::from_secs(3600), at(0));
        assert_eq!(window.smoothing_coefficient(), MIN_EXPONENT);
    }

    #[test]
    fn max_window_keeps_the_largest_value_of_its_span() {
        let mut window = MaxTimeWindow::new(Duration::from_secs(5), SECOND);
        assert_eq!(window.current(), 0);
        for (s, v) in [(0, 3), (1, 7), (2, 5), (3, 1), (4, 2)] {
            window.record(at(s), v);
        }
        assert_eq!(window.current(), 7);
        window.record(at(5), 1);
        assert_eq!(window.current(), 7);
        // Second 1 leaves the window at second 6.
        window.record(at(6), 1);
        assert_eq!(window.current(), 5);
        window.record(at(7), 1);
        assert_eq!(window.current(), 2);
        window.record(at(9), 9);
        assert_eq!(window.current(), 9);
    }

    #[test]
    fn max_window_keeps_the_largest_of_one_index() {
        let mut window = MaxTimeWindow::new(Duration::from_secs(20), Duration::from_secs(2));
        window.record(at(0), 10);
        window.record(at(1), 4);
        assert_eq!(window.current(), 10);
        window.record(at(2), 3);
        assert_eq!(window.current(), 10);
        // Index 0 covers seconds 0 and 1 and leaves when index 10 (second 20) arrives.
        window.record(at(20), 2);
        assert_eq!(window.current(), 3);
    }

    #[test]
    fn memory_footprint_counts_the_buckets() {
        let window = linear(60);
        assert_eq!(
            window.memory_footprint(),
            size_of::<TimedFloat64Buckets>() + 60 * 8
        );
        let max = MaxTimeWindow::new(Duration::from_secs(20), Duration::from_secs(2));
        assert_eq!(
            max.memory_footprint(),
            size_of::<MaxTimeWindow>() + 10 * size_of::<MaxEntry>()
        );
    }
}
