//! `agent` collector: the agent's own cost and health (issue 3), so the
//! server shows what monitoring a host costs.
//!
//! - This file: [`parse_self_status`], [`parse_self_stat_cpu_ticks`] and
//!   [`compute_cpu_pct`] (pure), [`build_agent_metric`] (pure assembly of the
//!   payload) and [`AgentCollector`].
//! - `linux.rs`: [`read_process_sample`] from `/proc/self/{status,stat}`;
//!   `unsupported.rs`: the same function answering "unknown" (every process
//!   field `None`) elsewhere.
//!
//! `/proc/self` is read on purpose rather than `<procfs>/self`: with the
//! host's /proc mounted elsewhere (`SPECTRA_PROCFS`), `self` there would not
//! be this process.
//!
//! Two ways to build it:
//! - [`AgentCollector::new`] (the running agent, see `runtime.rs`): reads the
//!   scheduler's [`AgentStats`] and the sender's [`SenderStats`].
//! - [`AgentCollector::standalone`] (`spectra-agent collect --collector
//!   agent`, via [`crate::collectors::build`]): there is no scheduler nor
//!   sender, so it reports only this process's own memory and CPU, an empty
//!   `collectors` list and zero batch counters (true: that process sent
//!   nothing).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::read_process_sample;
#[cfg(not(target_os = "linux"))]
pub use unsupported::read_process_sample;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use spectra_protocol::{AgentCollectorStat, AgentMetric, MetricData};

use super::{CollectError, Collector, CollectorKind};
use crate::sender::SenderStats;
use crate::stats::{AgentStats, CollectorRecord};

/// Memory figures of `/proc/self/status`, in bytes (threads: a count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelfUsage {
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub threads: Option<u64>,
}

/// One reading of this process: memory and cumulative CPU time. Every field
/// is `None` where the platform cannot tell (never a zero).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    pub usage: SelfUsage,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
}

impl ProcessSample {
    /// User plus system time, when both are known.
    pub fn cpu_total_seconds(&self) -> Option<f64> {
        Some(self.cpu_user_seconds? + self.cpu_system_seconds?)
    }
}

/// Parses `/proc/self/status` (`VmRSS:     5040 kB`, `VmHWM:`, `Threads:`).
pub fn parse_self_status(text: &str) -> SelfUsage {
    let mut usage = SelfUsage::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = value
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        match key {
            "VmRSS" => usage.rss_bytes = number.and_then(|kb| kb.checked_mul(1024)),
            "VmHWM" => usage.peak_rss_bytes = number.and_then(|kb| kb.checked_mul(1024)),
            "Threads" => usage.threads = number,
            _ => {}
        }
    }
    usage
}

/// utime and stime in clock ticks (fields 14 and 15 of proc(5) `stat`),
/// counted after the `)` that closes the command name, which may itself
/// hold spaces and parentheses.
pub fn parse_self_stat_cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // After the name, field 3 (state) comes first; utime is field 14.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// CPU used between two samples in % of one core: `None` without elapsed
/// wall time or when the CPU time went backwards (it cannot for one process;
/// a negative value would be a reading error, not a rate).
pub fn compute_cpu_pct(cpu_delta_seconds: f64, wall_delta_seconds: f64) -> Option<f64> {
    if wall_delta_seconds <= 0.0 || cpu_delta_seconds < 0.0 {
        return None;
    }
    let pct = cpu_delta_seconds / wall_delta_seconds * 100.0;
    // Two decimals are plenty for a cost figure and keep the JSON short.
    Some((pct * 100.0).round() / 100.0)
}

/// Assembles the payload from one process sample and copies of the stats.
pub fn build_agent_metric(
    process: &ProcessSample,
    cpu_pct: Option<f64>,
    uptime_seconds: u64,
    collectors: &BTreeMap<&'static str, CollectorRecord>,
    sender: Option<&SenderStats>,
) -> AgentMetric {
    let counter = |read: fn(&SenderStats) -> u64| sender.map_or(0, read);
    AgentMetric {
        rss_bytes: process.usage.rss_bytes,
        peak_rss_bytes: process.usage.peak_rss_bytes,
        cpu_user_seconds: process.cpu_user_seconds,
        cpu_system_seconds: process.cpu_system_seconds,
        cpu_pct,
        threads: process.usage.threads,
        uptime_seconds,
        spool_batches: counter(|s| SenderStats::get(&s.spool_len)),
        spool_dropped_batches: counter(|s| SenderStats::get(&s.spool_dropped)),
        sent_batches: counter(|s| SenderStats::get(&s.sent_batches)),
        rejected_batches: counter(|s| SenderStats::get(&s.rejected_batches)),
        collectors: collectors
            .iter()
            .map(|(name, r)| AgentCollectorStat {
                name: (*name).to_owned(),
                runs: r.runs,
                failures: r.failures,
                last_duration_us: r.last_duration_us,
                max_duration_us: r.max_duration_us,
                state: r.state,
                last_error: r.last_error.clone(),
            })
            .collect(),
    }
}

/// The `agent` collector. Not rate-based: the first sample is sent, with
/// `cpu_pct` absent until there is a previous one.
pub struct AgentCollector {
    collectors: Option<Arc<AgentStats>>,
    sender: Option<Arc<SenderStats>>,
    started_at: Instant,
    /// Reused across cycles for the `/proc/self` files.
    buf: String,
    previous_cpu: Option<(Instant, f64)>,
}

impl AgentCollector {
    /// The running agent's collector: `collectors` from the scheduler,
    /// `sender` from the sender, `started_at` when the agent started.
    pub fn new(collectors: Arc<AgentStats>, sender: Arc<SenderStats>, started_at: Instant) -> Self {
        Self {
            collectors: Some(collectors),
            sender: Some(sender),
            started_at,
            buf: String::new(),
            previous_cpu: None,
        }
    }

    /// Without a scheduler or sender (`collect` subcommand): this process's
    /// own memory and CPU only; see the module docs.
    pub fn standalone() -> Self {
        Self {
            collectors: None,
            sender: None,
            started_at: Instant::now(),
            buf: String::new(),
            previous_cpu: None,
        }
    }
}

impl Collector for AgentCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Agent
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let process = read_process_sample(&mut self.buf);
        let at = Instant::now();
        let cpu_pct = match (self.previous_cpu, process.cpu_total_seconds()) {
            (Some((prev_at, prev_cpu)), Some(cpu)) => {
                compute_cpu_pct(cpu - prev_cpu, at.duration_since(prev_at).as_secs_f64())
            }
            _ => None,
        };
        self.previous_cpu = process.cpu_total_seconds().map(|cpu| (at, cpu));
        let collectors = self
            .collectors
            .as_ref()
            .map(|s| s.snapshot())
            .unwrap_or_default();
        let metric = build_agent_metric(
            &process,
            cpu_pct,
            self.started_at.elapsed().as_secs(),
            &collectors,
            self.sender.as_deref(),
        );
        Ok(vec![MetricData::Agent(metric)])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use spectra_protocol::CollectorState;

    use super::*;

    #[test]
    fn parses_proc_self_status_and_stat() {
        // Captured from a spectra-agent on Debian 12 (x86_64), trimmed.
        let status =
            "Name:\tspectra-agent\nVmHWM:\t    5272 kB\nVmRSS:\t    5040 kB\nThreads:\t1\n";
        assert_eq!(
            parse_self_status(status),
            SelfUsage {
                rss_bytes: Some(5040 * 1024),
                peak_rss_bytes: Some(5272 * 1024),
                threads: Some(1)
            }
        );
        assert_eq!(parse_self_status("Name:\tx\n"), SelfUsage::default());
        let stat = "2047 (spectra agent) S 2044 2047 2044 0 -1 4194560 402 0 0 0 3 7 0 0 20 0 1 0 123 10440704 1260";
        assert_eq!(parse_self_stat_cpu_ticks(stat), Some((3, 7)));
        let tricky = "9 (a) b) R 1 9 9 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_self_stat_cpu_ticks(tricky), Some((11, 22)));
        assert_eq!(parse_self_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_self_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn cpu_pct_is_of_one_core_and_refuses_nonsense() {
        assert_eq!(compute_cpu_pct(0.3, 60.0), Some(0.5));
        assert_eq!(compute_cpu_pct(3.0, 2.0), Some(150.0));
        assert_eq!(compute_cpu_pct(1.0, 0.0), None);
        assert_eq!(compute_cpu_pct(-0.01, 5.0), None);
    }

    fn filled_stats() -> (Arc<AgentStats>, Arc<SenderStats>) {
        let stats = Arc::new(AgentStats::default());
        let t = Utc::now();
        stats.record_run(
            "memory",
            t,
            Some(Duration::from_micros(40)),
            CollectorState::Ok,
            1,
            None,
        );
        stats.record_run(
            "memory",
            t,
            Some(Duration::from_micros(90)),
            CollectorState::Error,
            0,
            Some("reading /proc/meminfo: gone"),
        );
        stats.record_run("pi", t, None, CollectorState::NotImplemented, 0, None);
        let sender = Arc::new(SenderStats::default());
        sender.sent_batches.store(12, Ordering::Relaxed);
        sender.rejected_batches.store(1, Ordering::Relaxed);
        sender.spool_len.store(3, Ordering::Relaxed);
        sender.spool_dropped.store(2, Ordering::Relaxed);
        (stats, sender)
    }

    #[test]
    fn builds_the_payload_from_exact_stats() {
        let (stats, sender) = filled_stats();
        let process = ProcessSample {
            usage: SelfUsage {
                rss_bytes: Some(5_160_960),
                peak_rss_bytes: Some(6_000_000),
                threads: Some(2),
            },
            cpu_user_seconds: Some(1.5),
            cpu_system_seconds: Some(0.25),
        };
        let m = build_agent_metric(&process, Some(0.4), 61, &stats.snapshot(), Some(&sender));
        let expected = AgentMetric {
            rss_bytes: Some(5_160_960),
            peak_rss_bytes: Some(6_000_000),
            cpu_user_seconds: Some(1.5),
            cpu_system_seconds: Some(0.25),
            cpu_pct: Some(0.4),
            threads: Some(2),
            uptime_seconds: 61,
            spool_batches: 3,
            spool_dropped_batches: 2,
            sent_batches: 12,
            rejected_batches: 1,
            collectors: vec![
                AgentCollectorStat {
                    name: "memory".into(),
                    runs: 2,
                    failures: 1,
                    last_duration_us: Some(90),
                    max_duration_us: Some(90),
                    state: CollectorState::Error,
                    last_error: Some("reading /proc/meminfo: gone".into()),
                },
                AgentCollectorStat {
                    name: "pi".into(),
                    runs: 1,
                    failures: 0,
                    last_duration_us: None,
                    max_duration_us: None,
                    state: CollectorState::NotImplemented,
                    last_error: None,
                },
            ],
        };
        assert_eq!(m, expected);
    }

    #[test]
    fn collector_reports_the_shared_stats_and_its_own_process() {
        let (stats, sender) = filled_stats();
        let mut collector = AgentCollector::new(stats, sender, Instant::now());
        assert_eq!(collector.kind(), CollectorKind::Agent);
        assert!(!collector.is_rate_based(), "the first sample is sent");
        let first = collector.collect(Utc::now()).unwrap();
        let [MetricData::Agent(first)] = first.as_slice() else {
            panic!("one agent payload: {first:?}");
        };
        assert_eq!(first.cpu_pct, None, "no previous sample yet");
        assert_eq!(
            (
                first.sent_batches,
                first.rejected_batches,
                first.spool_batches,
                first.spool_dropped_batches
            ),
            (12, 1, 3, 2)
        );
        let names: Vec<&str> = first.collectors.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["memory", "pi"]);
        let second = collector.collect(Utc::now()).unwrap();
        let [MetricData::Agent(second)] = second.as_slice() else {
            panic!("one agent payload: {second:?}");
        };
        if cfg!(target_os = "linux") {
            assert!(first.rss_bytes.is_some_and(|b| b > 0), "{first:?}");
            assert!(first.threads.is_some_and(|t| t >= 1), "{first:?}");
            assert!(second.cpu_pct.is_some_and(|p| p >= 0.0), "{second:?}");
        } else {
            assert_eq!((first.rss_bytes, second.cpu_pct), (None, None));
        }
    }

    #[test]
    fn standalone_reports_no_collectors_and_zero_batches() {
        let out = AgentCollector::standalone().collect(Utc::now()).unwrap();
        let [MetricData::Agent(m)] = out.as_slice() else {
            panic!("one agent payload: {out:?}");
        };
        assert!(m.collectors.is_empty());
        assert_eq!((m.sent_batches, m.spool_batches), (0, 0));
    }
}
