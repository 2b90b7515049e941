//! Fires each enabled collector on its interval boundary (SPEC §2: a 5 s
//! collector fires at :00, :05, ...; the envelope timestamp is the boundary,
//! in whole seconds) so charts from many hosts line up.
//!
//! One task drives every collector from a list of next-fire times, rather
//! than one task per collector, to keep the agent small (SPEC §7). Wall-clock
//! time comes from a [`Clock`]; [`SystemClock`] reads the real clock after
//! every wake-up (so a suspended machine skips to the next boundary instead
//! of bursting), and [`OffsetClock`] derives wall time from tokio's clock so
//! tests with `tokio::time::pause()` are deterministic.
//!
//! Outcomes: data becomes one envelope per payload; errors become a
//! `collector_status` envelope sent when the state changes and again at
//! most hourly while it persists. Unsupported and not-implemented
//! collectors are reported once and never called again; disabled ones are
//! reported once as `disabled`. Collectors that may block run on the
//! blocking pool with a timeout.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeZone, Utc};
use spectra_protocol::{CollectorState, CollectorStatus, Envelope, MetricData};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::collectors::{CollectError, Collector, CollectorKind};
use crate::stats::AgentStats;

/// How long a blocking collector may run before it counts as failed.
pub const BLOCKING_COLLECT_TIMEOUT: Duration = Duration::from_secs(30);
/// While a collector keeps failing, its status is re-sent this often.
pub const STATUS_REPEAT_INTERVAL: Duration = Duration::from_secs(3600);

/// Where the scheduler's envelopes go (the sender's batch queue, or a test
/// recorder).
pub trait EnvelopeSink: Send + Sync {
    fn push(&self, envelope: &Envelope<MetricData>);
}

/// Wall-clock time in milliseconds since the epoch.
pub trait Clock: Send + Sync {
    fn now_wall_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_wall_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970: treat as the epoch.
            Err(_) => 0,
        }
    }
}

/// Wall time = a fixed start + tokio's (possibly paused) elapsed time.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    start_wall_ms: i64,
    start: tokio::time::Instant,
}

impl OffsetClock {
    pub fn new(start_wall_ms: i64) -> Self {
        Self {
            start_wall_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now_wall_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_wall_ms.saturating_add(elapsed)
    }
}

/// The first boundary (a multiple of `interval_ms` since the epoch) strictly
/// after `now_ms`.
pub fn next_boundary_ms(now_ms: i64, interval_ms: i64) -> i64 {
    (now_ms.div_euclid(interval_ms) + 1) * interval_ms
}

/// The tick to fire when woken at `now_ms` for a tick due at `due_ms`: the
/// due tick if it is still current, else the latest boundary passed (missed
/// ticks are skipped, not replayed).
pub fn select_tick_ms(due_ms: i64, now_ms: i64, interval_ms: i64) -> i64 {
    let latest = now_ms.div_euclid(interval_ms) * interval_ms;
    due_ms.max(latest)
}

/// Collectors this rare (application_list, updates) parse megabytes once:
/// the heap is trimmed after them so the agent's resident set stays small.
const NIGHTLY_INTERVAL_MS: i64 = 3_600_000;

/// What the scheduler knows about one collector.
struct Slot {
    kind: CollectorKind,
    interval_ms: i64,
    next_due_ms: i64,
    /// `None` while a blocking run has it, or once retired.
    collector: Option<Box<dyn Collector>>,
    /// A blocking run that outlived its timeout; its collector comes back
    /// when it finishes.
    stuck: Option<tokio::task::JoinHandle<(Box<dyn Collector>, CollectResult)>>,
    running: bool,
    retired: bool,
    status: StatusTracker,
}

type CollectResult = Result<Vec<MetricData>, CollectError>;

/// Decides when a `collector_status` envelope is due.
#[derive(Debug, Default)]
pub struct StatusTracker {
    state: Option<CollectorState>,
    last_sent_ms: Option<i64>,
}

impl StatusTracker {
    /// Records `state` at `now_ms`; true when a status envelope should go
    /// out (state changed, or still bad an hour after the last one).
    pub fn observe(&mut self, state: CollectorState, now_ms: i64) -> bool {
        let changed = self.state != Some(state);
        let repeat_due = state != CollectorState::Ok
            && self.last_sent_ms.is_some_and(|t| {
                now_ms.saturating_sub(t) >= STATUS_REPEAT_INTERVAL.as_millis() as i64
            });
        // A collector that is fine from the start needs no `ok` status:
        // only a recovery does.
        let send = if self.state.is_none() && state == CollectorState::Ok {
            false
        } else {
            changed || repeat_due
        };
        self.state = Some(state);
        if send {
            self.last_sent_ms = Some(now_ms);
        }
        send
    }
}

/// A collector to schedule, with its settings.
pub struct ScheduledCollector {
    pub collector: Box<dyn Collector>,
    pub interval: Duration,
}

/// The collector scheduler.
pub struct Scheduler<C: Clock> {
    hostname: String,
    clock: C,
    slots: Vec<Slot>,
    disabled: Vec<CollectorKind>,
    blocking_timeout: Duration,
    stats: Arc<AgentStats>,
}

struct BlockingDone {
    index: usize,
    tick_ms: i64,
    outcome: BlockingOutcome,
}

enum BlockingOutcome {
    Finished(Box<dyn Collector>, CollectResult, Duration),
    TimedOut(tokio::task::JoinHandle<(Box<dyn Collector>, CollectResult)>),
    Recovered(Box<dyn Collector>),
    Panicked(String),
}

impl<C: Clock> Scheduler<C> {
    pub fn new(hostname: impl Into<String>, clock: C) -> Self {
        Self {
            hostname: hostname.into(),
            clock,
            slots: Vec::new(),
            disabled: Vec::new(),
            blocking_timeout: BLOCKING_COLLECT_TIMEOUT,
            stats: Arc::new(AgentStats::default()),
        }
    }

    /// Per-collector runs, failures and durations, updated as it runs.
    pub fn stats(&self) -> Arc<AgentStats> {
        self.stats.clone()
    }

    /// How long a blocking collector may run (tests shorten it).
    pub fn with_blocking_timeout(mut self, timeout: Duration) -> Self {
        self.blocking_timeout = timeout;
        self
    }

    /// Schedules `collector` every `interval` (whole seconds, at least 1 s;
    /// config validation guarantees that).
    pub fn add(&mut self, scheduled: ScheduledCollector) {
        let interval_ms = i64::try_from(scheduled.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1000);
        self.slots.push(Slot {
            kind: scheduled.collector.kind(),
            interval_ms,
            next_due_ms: 0,
            collector: Some(scheduled.collector),
            stuck: None,
            running: false,
            retired: false,
            status: StatusTracker::default(),
        });
    }

    /// Records a collector turned off in the config: reported once.
    pub fn add_disabled(&mut self, kind: CollectorKind) {
        self.disabled.push(kind);
    }

    /// Runs until `shutdown`, pushing envelopes to `sink`.
    pub async fn run(mut self, sink: &dyn EnvelopeSink, shutdown: CancellationToken) {
        let start_ms = self.clock.now_wall_ms();
        for kind in std::mem::take(&mut self.disabled) {
            let status = CollectorStatus {
                collector: kind.name().to_owned(),
                state: CollectorState::Disabled,
                message: None,
            };
            self.push_status(sink, start_ms, status);
        }
        // Every collector runs once right away (on the current whole second)
        // so a fresh agent shows data within seconds, even for the 300 s
        // `system` collector; rate-based ones take their priming sample here.
        // From then on each fires on its own interval boundary.
        let start_second_ms = start_ms - start_ms.rem_euclid(1000);
        for slot in &mut self.slots {
            slot.next_due_ms = start_second_ms;
        }
        let mut blocking: JoinSet<BlockingDone> = JoinSet::new();
        loop {
            let Some(due_ms) = self
                .slots
                .iter()
                .filter(|s| !s.retired)
                .map(|s| s.next_due_ms)
                .min()
            else {
                // Nothing left to schedule: wait for shutdown.
                shutdown.cancelled().await;
                break;
            };
            let wait_ms = due_ms.saturating_sub(self.clock.now_wall_ms()).max(0);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = blocking.join_next(), if !blocking.is_empty() => {
                    match done {
                        Ok(done) => self.finish_blocking(sink, done),
                        // The wrapper task itself never panics; a cancelled
                        // JoinSet only happens at drop.
                        Err(e) => tracing::error!(error = %e, "collector task failed"),
                    }
                    continue;
                }
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
            let now_ms = self.clock.now_wall_ms();
            for index in 0..self.slots.len() {
                let slot = &self.slots[index];
                if slot.retired || slot.next_due_ms > now_ms {
                    continue;
                }
                let tick_ms = select_tick_ms(slot.next_due_ms, now_ms, slot.interval_ms);
                if tick_ms > slot.next_due_ms {
                    tracing::debug!(
                        collector = slot.kind.name(),
                        missed_ms = tick_ms - slot.next_due_ms,
                        "skipped missed ticks"
                    );
                }
                self.slots[index].next_due_ms =
                    next_boundary_ms(tick_ms, self.slots[index].interval_ms);
                self.fire(sink, index, tick_ms, &mut blocking);
            }
        }
        blocking.abort_all();
    }

    fn fire(
        &mut self,
        sink: &dyn EnvelopeSink,
        index: usize,
        tick_ms: i64,
        blocking: &mut JoinSet<BlockingDone>,
    ) {
        let slot = &mut self.slots[index];
        if slot.running {
            let kind = slot.kind;
            let err = CollectError::Other("the previous run is still in progress".into());
            self.record(sink, index, tick_ms, Err(err), None);
            tracing::debug!(collector = kind.name(), "previous run still in progress");
            return;
        }
        // A run that timed out earlier: take its collector back if it ended.
        if let Some(handle) = slot.stuck.take() {
            if !handle.is_finished() {
                slot.stuck = Some(handle);
                let err = CollectError::Other(format!(
                    "a run that timed out after {}s is still blocked",
                    self.blocking_timeout.as_secs()
                ));
                self.record(sink, index, tick_ms, Err(err), None);
                return;
            }
            // Finished: its JoinHandle resolves at once; collect the
            // collector on the blocking set so this stays synchronous.
            slot.running = true;
            blocking.spawn(async move {
                let outcome = match handle.await {
                    // The stale result is dropped (its tick is long gone);
                    // the next tick runs afresh.
                    Ok((collector, _stale)) => BlockingOutcome::Recovered(collector),
                    Err(e) => BlockingOutcome::Panicked(e.to_string()),
                };
                BlockingDone {
                    index,
                    tick_ms,
                    outcome,
                }
            });
            return;
        }
        let Some(mut collector) = slot.collector.take() else {
            return;
        };
        let now = timestamp_of(tick_ms);
        if collector.may_block() {
            slot.running = true;
            let timeout = self.blocking_timeout;
            blocking.spawn(async move {
                let started = Instant::now();
                let mut handle = tokio::task::spawn_blocking(move || {
                    let result = collector.collect(now);
                    (collector, result)
                });
                let outcome = match tokio::time::timeout(timeout, &mut handle).await {
                    Ok(Ok((collector, result))) => {
                        BlockingOutcome::Finished(collector, result, started.elapsed())
                    }
                    Ok(Err(e)) => BlockingOutcome::Panicked(e.to_string()),
                    Err(_) => BlockingOutcome::TimedOut(handle),
                };
                BlockingDone {
                    index,
                    tick_ms,
                    outcome,
                }
            });
        } else {
            let started = Instant::now();
            let result = collector.collect(now);
            let took = started.elapsed();
            self.slots[index].collector = Some(collector);
            let nightly = self.slots[index].interval_ms >= NIGHTLY_INTERVAL_MS;
            self.record(sink, index, tick_ms, result, Some(took));
            if nightly {
                crate::collectors::release_freed_memory();
            }
        }
    }

    fn finish_blocking(&mut self, sink: &dyn EnvelopeSink, done: BlockingDone) {
        let BlockingDone {
            index,
            tick_ms,
            outcome,
        } = done;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        slot.running = false;
        match outcome {
            BlockingOutcome::Finished(collector, result, took) => {
                slot.collector = Some(collector);
                let nightly = slot.interval_ms >= NIGHTLY_INTERVAL_MS;
                self.record(sink, index, tick_ms, result, Some(took));
                if nightly {
                    // Its payload is serialised and dropped by now.
                    crate::collectors::release_freed_memory();
                }
            }
            BlockingOutcome::Recovered(collector) => slot.collector = Some(collector),
            BlockingOutcome::TimedOut(handle) => {
                slot.stuck = Some(handle);
                let err = CollectError::Other(format!(
                    "timed out after {}s",
                    self.blocking_timeout.as_secs()
                ));
                self.record(sink, index, tick_ms, Err(err), None);
            }
            BlockingOutcome::Panicked(message) => {
                // The collector is gone with its thread: stop calling it.
                slot.retired = true;
                let err = CollectError::Other(format!("collector panicked: {message}"));
                self.record(sink, index, tick_ms, Err(err), None);
            }
        }
    }

    /// Turns one outcome into envelopes and status changes.
    fn record(
        &mut self,
        sink: &dyn EnvelopeSink,
        index: usize,
        tick_ms: i64,
        result: CollectResult,
        duration: Option<Duration>,
    ) {
        let now_ms = self.clock.now_wall_ms();
        let timestamp = timestamp_of(tick_ms);
        let slot = &mut self.slots[index];
        let name = slot.kind.name();
        let envelopes = result.as_ref().map_or(0, Vec::len);
        let (state, message) = match result {
            Ok(payloads) => {
                for data in payloads {
                    let envelope = Envelope::new(timestamp, self.hostname.as_str(), data);
                    sink.push(&envelope);
                }
                (CollectorState::Ok, None)
            }
            Err(CollectError::NotImplemented) => {
                slot.retired = true;
                (
                    CollectorState::NotImplemented,
                    Some(CollectError::NotImplemented.to_string()),
                )
            }
            Err(CollectError::Unsupported(why)) => {
                slot.retired = true;
                (CollectorState::Unsupported, Some(why))
            }
            Err(e) => (CollectorState::Error, Some(e.to_string())),
        };
        self.stats.record_run(
            name,
            timestamp,
            duration,
            state,
            envelopes,
            message.as_deref(),
        );
        if !slot.status.observe(state, now_ms) {
            if state == CollectorState::Error {
                tracing::debug!(
                    collector = name,
                    error = message.as_deref().unwrap_or(""),
                    "collect failed again"
                );
            }
            return;
        }
        match state {
            CollectorState::Ok => tracing::info!(collector = name, "collector recovered"),
            CollectorState::Error => tracing::warn!(
                collector = name,
                error = message.as_deref().unwrap_or(""),
                "collect failed"
            ),
            _ => tracing::info!(
                collector = name,
                state = ?state,
                reason = message.as_deref().unwrap_or(""),
                "collector will not run"
            ),
        }
        let status = CollectorStatus {
            collector: name.to_owned(),
            state,
            message,
        };
        self.push_status(sink, tick_ms, status);
    }

    fn push_status(&self, sink: &dyn EnvelopeSink, tick_ms: i64, status: CollectorStatus) {
        let envelope = Envelope::new(
            timestamp_of(tick_ms),
            self.hostname.as_str(),
            MetricData::CollectorStatus(status),
        );
        sink.push(&envelope);
    }
}

/// The envelope timestamp of a tick: whole seconds.
pub fn timestamp_of(tick_ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(tick_ms.div_euclid(1000), 0)
        .single()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_boundary_is_strictly_after_now() {
        assert_eq!(next_boundary_ms(3_500, 5_000), 5_000);
        assert_eq!(next_boundary_ms(5_000, 5_000), 10_000);
        assert_eq!(next_boundary_ms(0, 10_000), 10_000);
    }

    #[test]
    fn missed_ticks_skip_to_latest_boundary() {
        // Due at 10 s, woke at 37 s (suspended): fire the 35 s tick once.
        assert_eq!(select_tick_ms(10_000, 37_000, 5_000), 35_000);
        // On time: the due tick.
        assert_eq!(select_tick_ms(10_000, 10_001, 5_000), 10_000);
    }

    #[test]
    fn status_sent_on_change_and_hourly_repeat() {
        let mut t = StatusTracker::default();
        assert!(
            !t.observe(CollectorState::Ok, 0),
            "healthy start sends nothing"
        );
        assert!(t.observe(CollectorState::Error, 1_000));
        assert!(!t.observe(CollectorState::Error, 2_000));
        assert!(t.observe(CollectorState::Error, 1_000 + 3_600_000));
        assert!(
            t.observe(CollectorState::Ok, 3_700_000),
            "recovery is reported"
        );
        assert!(!t.observe(CollectorState::Ok, 3_800_000));
    }
}
