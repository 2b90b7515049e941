//! The sender over a fake in-memory transport: spooling while the server is
//! down, oldest-first draining, rejected batches dropped, unique ids, and
//! the backoff maths.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use rand::SeedableRng;
use spectra_agent::config::SenderSettings;
use spectra_agent::scheduler::EnvelopeSink;
use spectra_agent::sender::{backoff_delay, encode_batch, BatchQueue, Sender, Spool};
use spectra_agent::transport::{EncodedBatch, Encoding, Transport, TransportError};
use spectra_protocol::{Command, CommandResult, Envelope, MemoryMetric, MetricData, RawBatch};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Up,
    Down,
    Reject,
}

struct FakeTransport {
    mode: Mutex<Mode>,
    received: Mutex<Vec<EncodedBatch>>,
    attempts: Mutex<u32>,
}

impl FakeTransport {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            attempts: Mutex::new(0),
        })
    }
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    fn received(&self) -> Vec<EncodedBatch> {
        self.received.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for FakeTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError> {
        *self.attempts.lock().unwrap() += 1;
        match *self.mode.lock().unwrap() {
            Mode::Up => {
                self.received.lock().unwrap().push(batch.clone());
                Ok(())
            }
            Mode::Down => Err(TransportError::Unavailable("connection refused".into())),
            Mode::Reject => Err(TransportError::Rejected {
                status: 400,
                message: "bad batch".into(),
            }),
        }
    }
    async fn next_command(&self) -> Result<Option<Command>, TransportError> {
        Ok(None)
    }
    async fn send_result(&self, _result: &CommandResult) -> Result<(), TransportError> {
        Ok(())
    }
}

fn settings(compression: Encoding) -> SenderSettings {
    SenderSettings {
        compression,
        flush_interval: Duration::from_secs(5),
        max_batch_envelopes: 1000,
        spool_max_bytes: 1 << 20,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
    }
}

fn envelope(n: u64) -> Envelope<MetricData> {
    let data = MetricData::Memory(MemoryMetric {
        ram_total: n,
        ..Default::default()
    });
    Envelope::new(
        Utc.timestamp_opt(1_700_000_000 + n as i64, 0).unwrap(),
        "web-01",
        data,
    )
}

fn decode(batch: &EncodedBatch) -> RawBatch {
    let mut json = Vec::new();
    match batch.encoding {
        Encoding::Gzip => {
            flate2::read::GzDecoder::new(&batch.body[..])
                .read_to_end(&mut json)
                .unwrap();
        }
        Encoding::Zstd => json = zstd::decode_all(&batch.body[..]).unwrap(),
        Encoding::Identity => json = batch.body.clone(),
    }
    serde_json::from_slice(&json).unwrap()
}

fn ram_totals(batches: &[EncodedBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(decode)
        .map(|e| e.data["ram_total"].as_u64().unwrap())
        .collect()
}

#[test]
fn batches_round_trip_in_both_encodings() {
    for enc in [Encoding::Gzip, Encoding::Zstd] {
        let q = BatchQueue::new(100);
        q.push(&envelope(1));
        q.push(&envelope(2));
        let (json, n) = q.take().unwrap();
        assert_eq!(n, 2);
        assert!(q.take().is_none(), "taking empties the queue");
        let b = encode_batch(&json, n, enc).unwrap();
        assert_eq!(b.envelopes, 2);
        let decoded = decode(&b);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].metric_type, "memory");
        assert_eq!(decoded[1].hostname, "web-01");
    }
}

#[test]
fn batch_ids_are_unique_128_bit_hex() {
    let ids: HashSet<String> = (0..1000)
        .map(|_| encode_batch(b"[]", 0, Encoding::Gzip).unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1000);
    assert!(ids
        .iter()
        .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
}

#[test]
fn backoff_is_capped_exponential_with_full_jitter() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let initial = Duration::from_secs(1);
    let max = Duration::from_secs(60);
    for attempt in 0..40u32 {
        let cap = Duration::from_secs(1u64 << attempt.min(20)).min(max);
        let mut seen_max = Duration::ZERO;
        for _ in 0..200 {
            let d = backoff_delay(attempt, initial, max, &mut rng);
            assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
            seen_max = seen_max.max(d);
        }
        // Full jitter spreads over the whole range: the largest of 200
        // draws is in the top half (fails with probability 2^-200).
        assert!(
            seen_max > cap / 2,
            "attempt {attempt}: max {seen_max:?} of cap {cap:?}"
        );
    }
}

/// Lets the sender task run until `cond` holds, advancing paused time in
/// flush-sized steps; bounded so a bug fails instead of hanging.
async fn advance_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("condition not reached after 200 simulated seconds");
}

#[tokio::test(start_paused = true)]
async fn outage_is_spooled_then_drained_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let transport = FakeTransport::new(Mode::Down);
    let queue = Arc::new(BatchQueue::new(1000));
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let sender = Sender::new(
        transport.clone(),
        queue.clone(),
        spool,
        settings(Encoding::Gzip),
    );
    let stats = sender.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(sender.run(stop.clone()));

    // Three flushes while the server is down: three spooled batches.
    for n in 0..3u64 {
        queue.push(&envelope(n));
        let want = n + 1;
        advance_until(|| stats.spooled_batches.load(Ordering::Relaxed) == want).await;
    }
    assert!(transport.received().is_empty());
    assert_eq!(stats.spool_len.load(Ordering::Relaxed), 3);

    // The server returns; a newer batch must arrive after the spooled ones.
    transport.set(Mode::Up);
    queue.push(&envelope(3));
    advance_until(|| transport.received().len() == 4).await;
    assert_eq!(ram_totals(&transport.received()), [0, 1, 2, 3]);
    assert_eq!(stats.spool_len.load(Ordering::Relaxed), 0);

    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn spooled_batches_keep_their_ids_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let transport = FakeTransport::new(Mode::Down);
    let queue = Arc::new(BatchQueue::new(1000));
    let sender = Sender::new(
        transport.clone(),
        queue.clone(),
        Spool::open(dir.path(), 1 << 20).unwrap(),
        settings(Encoding::Zstd),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(sender.run(stop.clone()));
    queue.push(&envelope(42));
    // Shutdown with the server down: the open batch is spooled, not lost.
    stop.cancel();
    task.await.unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let spooled = spool
        .peek_oldest()
        .unwrap()
        .expect("open batch spooled at shutdown");
    assert_eq!(spooled.encoding, Encoding::Zstd);

    // A new agent process: the batch goes out with the same id.
    transport.set(Mode::Up);
    let queue = Arc::new(BatchQueue::new(1000));
    let sender = Sender::new(transport.clone(), queue, spool, settings(Encoding::Zstd));
    let stop = CancellationToken::new();
    let task = tokio::spawn(sender.run(stop.clone()));
    advance_until(|| transport.received().len() == 1).await;
    assert_eq!(transport.received()[0].id, spooled.id);
    assert_eq!(ram_totals(&transport.received()), [42]);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rejected_batches_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let transport = FakeTransport::new(Mode::Reject);
    let queue = Arc::new(BatchQueue::new(1000));
    let sender = Sender::new(
        transport.clone(),
        queue.clone(),
        Spool::open(dir.path(), 1 << 20).unwrap(),
        settings(Encoding::Gzip),
    );
    let stats = sender.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(sender.run(stop.clone()));
    queue.push(&envelope(1));
    advance_until(|| stats.rejected_batches.load(Ordering::Relaxed) == 1).await;
    assert_eq!(
        stats.spooled_batches.load(Ordering::Relaxed),
        0,
        "a rejected batch is not retried"
    );

    // The queue is not wedged: the next batch goes through.
    transport.set(Mode::Up);
    queue.push(&envelope(2));
    advance_until(|| transport.received().len() == 1).await;
    assert_eq!(ram_totals(&transport.received()), [2]);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn full_batch_flushes_before_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let transport = FakeTransport::new(Mode::Up);
    let queue = Arc::new(BatchQueue::new(3));
    let mut s = settings(Encoding::Gzip);
    s.flush_interval = Duration::from_secs(3600);
    let sender = Sender::new(
        transport.clone(),
        queue.clone(),
        Spool::open(dir.path(), 1 << 20).unwrap(),
        s,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(sender.run(stop.clone()));
    for n in 0..3 {
        queue.push(&envelope(n));
    }
    advance_until(|| transport.received().len() == 1).await;
    assert_eq!(transport.received()[0].envelopes, 3);
    stop.cancel();
    task.await.unwrap();
}
