//! The scheduler with fake collectors, on tokio's paused clock (wall time
//! derived from it through `OffsetClock`, so alignment is deterministic).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_agent::collectors::{CollectError, Collector, CollectorKind};
use spectra_agent::scheduler::{
    EnvelopeSink, OffsetClock, ScheduledCollector, Scheduler, SystemClock,
};
use spectra_protocol::{CollectorState, CollectorStatus, Envelope, MemoryMetric, MetricData};
use tokio_util::sync::CancellationToken;

/// 2023-11-14T22:13:23.500Z: 3.5 s past a 5 s boundary.
const START_MS: i64 = 1_700_000_003_500;
const BASE_S: i64 = 1_700_000_000;

#[derive(Default)]
struct Recorder(Mutex<Vec<Envelope<MetricData>>>);

impl EnvelopeSink for Recorder {
    fn push(&self, envelope: &Envelope<MetricData>) {
        self.0.lock().unwrap().push(envelope.clone());
    }
}

impl Recorder {
    fn all(&self) -> Vec<Envelope<MetricData>> {
        self.0.lock().unwrap().clone()
    }
    /// Seconds after BASE_S of each data (non-status) envelope of `kind`.
    fn data_ticks(&self, metric_type: &str) -> Vec<i64> {
        self.all()
            .iter()
            .filter(|e| e.metric_type == metric_type)
            .map(|e| e.timestamp.timestamp() - BASE_S)
            .collect()
    }
    fn statuses(&self, collector: &str) -> Vec<CollectorState> {
        self.all()
            .iter()
            .filter_map(|e| match &e.data {
                MetricData::CollectorStatus(CollectorStatus {
                    collector: c,
                    state,
                    ..
                }) if c == collector => Some(*state),
                _ => None,
            })
            .collect()
    }
}

type Script = Box<dyn FnMut(usize) -> Result<Vec<MetricData>, CollectError> + Send>;

struct Fake {
    kind: CollectorKind,
    calls: Arc<AtomicUsize>,
    script: Script,
    may_block: bool,
}

impl Collector for Fake {
    fn kind(&self) -> CollectorKind {
        self.kind
    }
    fn may_block(&self) -> bool {
        self.may_block
    }
    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        (self.script)(n)
    }
}

fn memory_data() -> Vec<MetricData> {
    vec![MetricData::Memory(MemoryMetric {
        ram_total: 1,
        ..Default::default()
    })]
}

fn fake(kind: CollectorKind, script: Script) -> (Box<dyn Collector>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Fake {
        kind,
        calls: calls.clone(),
        script,
        may_block: false,
    };
    (Box::new(c), calls)
}

fn add<C: spectra_agent::scheduler::Clock>(
    s: &mut Scheduler<C>,
    collector: Box<dyn Collector>,
    secs: u64,
) {
    s.add(ScheduledCollector {
        collector,
        interval: Duration::from_secs(secs),
    });
}

/// Runs `scheduler` for `for_ms` of (paused) time.
async fn run_for<C: spectra_agent::scheduler::Clock>(
    scheduler: Scheduler<C>,
    sink: &Recorder,
    for_ms: u64,
) {
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(for_ms)).await;
        stopper.cancel();
    });
    scheduler.run(sink, stop).await;
}

#[tokio::test(start_paused = true)]
async fn fires_on_wall_clock_boundaries() {
    let mut s = Scheduler::new("h", OffsetClock::new(START_MS));
    let (mem, _) = fake(CollectorKind::Memory, Box::new(|_| Ok(memory_data())));
    add(&mut s, mem, 5);
    let sink = Recorder::default();
    // From :03.5 to :18.5: once at start (:03), then boundaries :05, :10, :15.
    run_for(s, &sink, 15_000).await;
    assert_eq!(sink.data_ticks("memory"), [3, 5, 10, 15]);
    assert!(sink.all().iter().all(|e| e.hostname == "h"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_collector_does_not_stop_another() {
    let mut s = Scheduler::new("h", OffsetClock::new(START_MS));
    let (bad, bad_calls) = fake(
        CollectorKind::Cpu,
        Box::new(|_| Err(CollectError::Other("boom".into()))),
    );
    let (good, _) = fake(CollectorKind::Memory, Box::new(|_| Ok(memory_data())));
    add(&mut s, bad, 5);
    add(&mut s, good, 5);
    let sink = Recorder::default();
    run_for(s, &sink, 15_000).await;
    assert_eq!(sink.data_ticks("memory"), [3, 5, 10, 15]);
    assert_eq!(
        bad_calls.load(Ordering::SeqCst),
        4,
        "an erroring collector is retried each tick"
    );
    // Reported once (state change), not every tick.
    assert_eq!(sink.statuses("cpu"), [CollectorState::Error]);
    let msg = sink.all().iter().find_map(|e| match &e.data {
        MetricData::CollectorStatus(st) => st.message.clone(),
        _ => None,
    });
    assert_eq!(msg.as_deref(), Some("boom"));
}

#[tokio::test(start_paused = true)]
async fn error_then_recovery_sends_ok() {
    let mut s = Scheduler::new("h", OffsetClock::new(START_MS));
    let (flaky, _) = fake(
        CollectorKind::Memory,
        Box::new(|n| {
            if n < 2 {
                Err(CollectError::Other("not yet".into()))
            } else {
                Ok(memory_data())
            }
        }),
    );
    add(&mut s, flaky, 5);
    let sink = Recorder::default();
    run_for(s, &sink, 20_000).await;
    assert_eq!(
        sink.statuses("memory"),
        [CollectorState::Error, CollectorState::Ok]
    );
    // Calls at :03 (start) and :05 fail; :10, :15 and :20 succeed.
    assert_eq!(sink.data_ticks("memory"), [10, 15, 20]);
}

#[tokio::test(start_paused = true)]
async fn persistent_error_is_repeated_hourly_only() {
    let mut s = Scheduler::new("h", OffsetClock::new(START_MS));
    let (bad, calls) = fake(
        CollectorKind::Cpu,
        Box::new(|_| Err(CollectError::Other("down".into()))),
    );
    add(&mut s, bad, 60);
    let sink = Recorder::default();
    // Two hours and a minute: ~121 failures, three reports (first, +1 h, +2 h).
    run_for(s, &sink, 2 * 3600 * 1000 + 60_000).await;
    assert!(calls.load(Ordering::SeqCst) >= 120);
    assert_eq!(sink.statuses("cpu"), [CollectorState::Error; 3]);
}

#[tokio::test(start_paused = true)]
async fn not_implemented_and_unsupported_are_reported_once_and_not_called_again() {
    let mut s = Scheduler::new("h", OffsetClock::new(START_MS));
    let (wifi, wifi_calls) = fake(
        CollectorKind::Wifi,
        Box::new(|_| Err(CollectError::NotImplemented)),
    );
    let (pi, pi_calls) = fake(
        CollectorKind::Pi,
        Box::new(|_| Err(CollectError::Unsupported("not a Raspberry Pi".into()))),
    );
    add(&mut s, wifi, 5);
    add(&mut s, pi, 5);
    s.add_disabled(CollectorKind::Updates);
    let sink = Recorder::default();
    run_for(s, &sink, 30_000).await;
    assert_eq!(wifi_calls.load(Ordering::SeqCst), 1);
    assert_eq!(pi_calls.load(Ordering::SeqCst), 1);
    assert_eq!(sink.statuses("wifi"), [CollectorState::NotImplemented]);
    assert_eq!(sink.statuses("pi"), [CollectorState::Unsupported]);
    assert_eq!(sink.statuses("updates"), [CollectorState::Disabled]);
}

#[tokio::test(start_paused = true)]
async fn collectors_with_different_intervals_share_one_task() {
    let mut s = Scheduler::new("h", OffsetClock::new(START_MS));
    let (fast, _) = fake(CollectorKind::Memory, Box::new(|_| Ok(memory_data())));
    let (slow, slow_calls) = fake(CollectorKind::System, Box::new(|_| Ok(Vec::new())));
    add(&mut s, fast, 5);
    add(&mut s, slow, 10);
    let sink = Recorder::default();
    run_for(s, &sink, 20_000).await;
    assert_eq!(sink.data_ticks("memory"), [3, 5, 10, 15, 20]);
    assert_eq!(
        slow_calls.load(Ordering::SeqCst),
        3,
        "the 10 s collector fires at start (:03), :10 and :20"
    );
}

/// Blocking collectors run on the blocking pool; real time here, since the
/// blocking pool does not follow tokio's paused clock. Waits for a signal
/// with a deadline, never a fixed sleep.
#[tokio::test]
async fn blocking_collectors_run_off_the_scheduler_thread() {
    let mut s = Scheduler::new("h", SystemClock);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Fake {
        kind: CollectorKind::Memory,
        calls: calls.clone(),
        script: Box::new(|_| Ok(memory_data())),
        may_block: true,
    };
    add(&mut s, Box::new(c), 1);
    let sink = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let (sink2, stop2) = (sink.clone(), stop.clone());
    let runner = tokio::spawn(async move { s.run(sink2.as_ref(), stop2).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.data_ticks("memory").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no envelope from the blocking collector"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    runner.await.unwrap();
    let e = &sink.all()[0];
    assert_eq!(
        e.timestamp.timestamp_subsec_nanos(),
        0,
        "timestamps are whole seconds"
    );
}
