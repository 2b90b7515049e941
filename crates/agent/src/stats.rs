//! What the agent knows about its own work: per-collector runs, failures and
//! durations, filled in by the scheduler. The `DEBUG=true` endpoint
//! ([`crate::debug_server`]) shows it; an `agent` self-monitoring collector
//! can read the same numbers.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use spectra_protocol::CollectorState;

/// One collector's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorRecord {
    pub runs: u64,
    pub failures: u64,
    pub envelopes: u64,
    /// Wall time of the last run, in microseconds.
    pub last_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    pub last_run: Option<DateTime<Utc>>,
    pub state: CollectorState,
    pub last_error: Option<String>,
}

impl Default for CollectorRecord {
    fn default() -> Self {
        Self {
            runs: 0,
            failures: 0,
            envelopes: 0,
            last_duration_us: None,
            max_duration_us: None,
            last_run: None,
            state: CollectorState::Ok,
            last_error: None,
        }
    }
}

/// Shared between the scheduler (writer) and readers; a short mutex per
/// collector run is far below the cost of the run itself.
#[derive(Debug, Default)]
pub struct AgentStats {
    collectors: Mutex<BTreeMap<&'static str, CollectorRecord>>,
}

impl AgentStats {
    /// Records one run of `collector`.
    pub fn record_run(
        &self,
        collector: &'static str,
        at: DateTime<Utc>,
        duration: Option<Duration>,
        state: CollectorState,
        envelopes: usize,
        error: Option<&str>,
    ) {
        let Ok(mut map) = self.collectors.lock() else {
            return;
        };
        let r = map.entry(collector).or_default();
        r.runs += 1;
        r.envelopes += envelopes as u64;
        r.last_run = Some(at);
        r.state = state;
        if state == CollectorState::Error {
            r.failures += 1;
        }
        if let Some(e) = error {
            r.last_error = Some(e.to_owned());
        }
        if let Some(d) = duration {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            r.last_duration_us = Some(us);
            r.max_duration_us = Some(r.max_duration_us.map_or(us, |m| m.max(us)));
        }
    }

    /// A copy of every collector's record, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, CollectorRecord> {
        self.collectors
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_runs_failures_and_durations() {
        let stats = AgentStats::default();
        let t = Utc::now();
        stats.record_run(
            "cpu",
            t,
            Some(Duration::from_micros(40)),
            CollectorState::Ok,
            1,
            None,
        );
        stats.record_run(
            "cpu",
            t,
            Some(Duration::from_micros(90)),
            CollectorState::Error,
            0,
            Some("boom"),
        );
        stats.record_run(
            "cpu",
            t,
            Some(Duration::from_micros(50)),
            CollectorState::Ok,
            1,
            None,
        );
        let cpu = &stats.snapshot()["cpu"];
        assert_eq!((cpu.runs, cpu.failures, cpu.envelopes), (3, 1, 2));
        assert_eq!(cpu.last_duration_us, Some(50));
        assert_eq!(cpu.max_duration_us, Some(90));
        assert_eq!(cpu.state, CollectorState::Ok);
        assert_eq!(
            cpu.last_error.as_deref(),
            Some("boom"),
            "the last error stays visible after recovery"
        );
    }
}
