//! Per-key failure throttling (login and enrollment attempts per client
//! address): after `max_failures` failures within `window`, the key is
//! refused until the oldest of them leaves the window. Success clears the
//! key. Memory stays bounded: at most `max_keys` keys are tracked, and a
//! full table first drops keys whose failures have all expired, then the
//! stalest key.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    max_failures: usize,
    window: Duration,
    max_keys: usize,
    keys: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            max_keys: 100_000,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` when `key` is throttled now: how long until it may try.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut keys = self.lock();
        let Some(failures) = keys.get_mut(key) else {
            return Ok(());
        };
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            failures.pop_front();
        }
        if failures.len() < self.max_failures {
            return Ok(());
        }
        let oldest = failures.front().copied().unwrap_or(now);
        Err(self.window.saturating_sub(now.duration_since(oldest)))
    }

    pub fn record_failure(&self, key: &str) {
        self.record_failure_at(key, Instant::now())
    }

    pub fn record_failure_at(&self, key: &str, now: Instant) {
        let mut keys = self.lock();
        if keys.len() >= self.max_keys && !keys.contains_key(key) {
            let window = self.window;
            keys.retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < window));
            if keys.len() >= self.max_keys {
                if let Some(stalest) = keys
                    .iter()
                    .min_by_key(|(_, f)| f.back().copied())
                    .map(|(k, _)| k.clone())
                {
                    keys.remove(&stalest);
                }
            }
        }
        let failures = keys.entry(key.to_owned()).or_default();
        failures.push_back(now);
        // Only the newest `max_failures` matter.
        while failures.len() > self.max_failures {
            failures.pop_front();
        }
    }

    pub fn record_success(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_failure_throttles_until_the_window_passes() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.check_at("1.2.3.4", t0).is_ok(), "attempt {i}");
            t.record_failure_at("1.2.3.4", t0 + Duration::from_secs(i));
        }
        let wait = t
            .check_at("1.2.3.4", t0 + Duration::from_secs(3))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(57));
        assert!(
            t.check_at("5.6.7.8", t0).is_ok(),
            "other addresses are not affected"
        );
        assert!(
            t.check_at("1.2.3.4", t0 + Duration::from_secs(60)).is_ok(),
            "the first failure aged out"
        );
    }

    #[test]
    fn success_clears_and_memory_is_bounded() {
        let mut t = Throttle::new(2, Duration::from_secs(60));
        t.max_keys = 3;
        let t0 = Instant::now();
        t.record_failure_at("a", t0);
        t.record_failure_at("a", t0);
        assert!(t.check_at("a", t0).is_err());
        t.record_success("a");
        assert!(t.check_at("a", t0).is_ok());
        for k in ["b", "c", "d", "e"] {
            t.record_failure_at(k, t0);
        }
        assert!(t.lock().len() <= 3);
    }
}
