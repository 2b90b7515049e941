//! Counter → rate: the one helper every rate-based collector uses.
//!
//! Kernel counters only grow, except when they do not: a driver reload or a
//! container restart resets them to zero, a 32-bit counter wraps around at
//! 2^32, and some (iowait, see proc(5)) can even step backwards a little.
//! A rate must never come out negative or absurdly large because of that.
//!
//! - [`delta_counter`] tells growth, wrap-around and reset apart for a
//!   counter of known width ([`CounterWidth`]).
//! - [`rate_per_sec`] turns two readings and the time between them into a
//!   per-second rate.
//! - [`CounterRate`] keeps the previous reading for callers that track one
//!   counter at a time.

use std::time::{Duration, Instant};

/// How wide the kernel's counter is: where it wraps around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterWidth {
    /// e.g. some `/proc/net/dev` fields on 32-bit kernels.
    Bits32,
    /// Almost every modern counter.
    Bits64,
}

impl CounterWidth {
    fn max_value(self) -> u64 {
        match self {
            Self::Bits32 => u64::from(u32::MAX),
            Self::Bits64 => u64::MAX,
        }
    }
}

/// How a counter moved between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterDelta {
    /// It grew (possibly wrapping around once) by this much.
    Grew(u64),
    /// It went backwards by more than a wrap-around could explain: the
    /// counter was reset (or is unreliable, like iowait). No delta is known.
    Reset,
}

impl CounterDelta {
    /// The delta, `None` after a reset.
    pub fn grown(self) -> Option<u64> {
        match self {
            Self::Grew(d) => Some(d),
            Self::Reset => None,
        }
    }
}

/// The delta of a counter of `width` from `prev` to `cur`.
///
/// `cur < prev` is a wrap-around when the wrapped distance is less than half
/// the counter's range (a counter that moved that far in one interval would
/// have had to run at an implausible speed otherwise), and a reset when it is
/// more: `prev = 100, cur = 40` is a reset, `prev = 2^32 - 10, cur = 5` on a
/// 32-bit counter is a wrap of 15. A reading above the width's maximum
/// (a caller mixing widths) is treated as a reset, never a panic.
pub fn delta_counter(prev: u64, cur: u64, width: CounterWidth) -> CounterDelta {
    if cur >= prev {
        return CounterDelta::Grew(cur - prev);
    }
    let max = width.max_value();
    if prev > max || cur > max {
        return CounterDelta::Reset;
    }
    // Distance from prev up to max, then one step to 0, then up to cur.
    let wrapped = (max - prev) + cur + 1;
    if wrapped <= max / 2 {
        CounterDelta::Grew(wrapped)
    } else {
        CounterDelta::Reset
    }
}

/// Per-second rate of a counter between two readings `elapsed` apart.
/// `None` when the counter was reset or no time passed (a rate over zero
/// time is undefined, not zero and not infinite).
pub fn rate_per_sec(prev: u64, cur: u64, width: CounterWidth, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let delta = delta_counter(prev, cur, width).grown()?;
    Some(delta as f64 / secs)
}

/// Tracks one counter and yields its rate at each new reading.
#[derive(Debug, Clone)]
pub struct CounterRate {
    width: CounterWidth,
    prev: Option<(u64, Instant)>,
}

impl CounterRate {
    pub fn new(width: CounterWidth) -> Self {
        Self { width, prev: None }
    }

    /// Records `value` read at `at` and returns the rate since the previous
    /// reading: `None` on the first reading, after a reset, or when `at` is
    /// not later than the previous reading. The reading is always kept, so
    /// the next call measures from it (after a reset, from the new base).
    pub fn update(&mut self, value: u64, at: Instant) -> Option<f64> {
        let rate = self.prev.and_then(|(prev_value, prev_at)| {
            let elapsed = at.checked_duration_since(prev_at)?;
            rate_per_sec(prev_value, value, self.width, elapsed)
        });
        self.prev = Some((value, at));
        rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_of_a_growing_counter_is_delta_over_seconds() {
        let rate = rate_per_sec(1_000, 6_000, CounterWidth::Bits64, Duration::from_secs(5));
        assert_eq!(rate, Some(1_000.0));
        let rate = rate_per_sec(0, 3, CounterWidth::Bits64, Duration::from_millis(500));
        assert_eq!(rate, Some(6.0));
    }

    #[test]
    fn unchanged_counter_has_zero_rate() {
        assert_eq!(
            rate_per_sec(42, 42, CounterWidth::Bits32, Duration::from_secs(1)),
            Some(0.0)
        );
    }

    #[test]
    fn counter_reset_gives_no_rate_instead_of_a_negative_one() {
        assert_eq!(
            delta_counter(100, 40, CounterWidth::Bits64),
            CounterDelta::Reset
        );
        assert_eq!(
            delta_counter(100, 40, CounterWidth::Bits32),
            CounterDelta::Reset
        );
        assert_eq!(
            rate_per_sec(1_000_000, 10, CounterWidth::Bits64, Duration::from_secs(5)),
            None
        );
    }

    #[test]
    fn u32_counter_wrap_around_counts_the_distance_through_zero() {
        // 9 steps up to u32::MAX, 1 to wrap to 0, 5 more: 15.
        let prev = u64::from(u32::MAX) - 9;
        assert_eq!(
            delta_counter(prev, 5, CounterWidth::Bits32),
            CounterDelta::Grew(15)
        );
        assert_eq!(
            rate_per_sec(prev, 5, CounterWidth::Bits32, Duration::from_secs(3)),
            Some(5.0)
        );
    }

    #[test]
    fn u64_counter_wrap_around_counts_the_distance_through_zero() {
        assert_eq!(
            delta_counter(u64::MAX, 0, CounterWidth::Bits64),
            CounterDelta::Grew(1)
        );
        assert_eq!(
            delta_counter(u64::MAX - 1, 3, CounterWidth::Bits64),
            CounterDelta::Grew(5)
        );
    }

    #[test]
    fn value_wider_than_the_declared_width_is_a_reset() {
        let too_wide = u64::from(u32::MAX) + 100;
        assert_eq!(
            delta_counter(too_wide, 5, CounterWidth::Bits32),
            CounterDelta::Reset
        );
    }

    #[test]
    fn zero_elapsed_time_gives_no_rate() {
        assert_eq!(
            rate_per_sec(1, 100, CounterWidth::Bits64, Duration::ZERO),
            None
        );
    }

    #[test]
    fn counter_rate_tracker_needs_two_readings_and_rebases_after_reset() {
        let t0 = Instant::now();
        let mut rate = CounterRate::new(CounterWidth::Bits64);
        assert_eq!(rate.update(1_000, t0), None, "first reading has no rate");
        assert_eq!(
            rate.update(3_000, t0 + Duration::from_secs(2)),
            Some(1_000.0)
        );
        assert_eq!(rate.update(10, t0 + Duration::from_secs(4)), None, "reset");
        assert_eq!(rate.update(110, t0 + Duration::from_secs(5)), Some(100.0));
        assert_eq!(
            rate.update(200, t0 + Duration::from_secs(5)),
            None,
            "no time passed"
        );
    }
}
