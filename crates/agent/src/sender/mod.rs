//! The sender (SPEC §2): batches envelopes, compresses them, sends them
//! through a [`Transport`], and spools them to disk while the server is
//! unreachable.
//!
//! - [`BatchQueue`]: the scheduler serializes each typed envelope straight
//!   into the open batch's JSON buffer (no per-envelope `serde_json::Value`).
//! - [`encode_batch`]: closes the JSON array and compresses it (gzip/zstd)
//!   under a fresh random 128-bit batch id.
//! - [`Sender`]: the task that flushes every `flush_interval` (or when the
//!   batch is full), drains the spool oldest-first before anything newer,
//!   and backs off with [`backoff_delay`] (capped exponential, full jitter).
//! - [`spool`]: the bounded on-disk queue.
//!
//! Outcomes: `Unavailable` and `Unauthorized` keep the batch (spooled) and
//! back off; `Rejected` drops it and counts it, since a batch the server
//! will never accept would otherwise wedge the queue.

pub mod spool;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use spectra_protocol::{Envelope, MetricData};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::SenderSettings;
use crate::scheduler::EnvelopeSink;
use crate::transport::{EncodedBatch, Encoding, Transport, TransportError};
pub use spool::{Spool, SpoolError};

/// The batch being filled: a JSON array missing its closing `]`.
#[derive(Debug)]
struct OpenBatch {
    json: Vec<u8>,
    envelopes: u32,
}

/// How long shutdown waits for the server before leaving batches spooled.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The open batch, shared by the scheduler (writer) and the sender (reader).
#[derive(Debug)]
pub struct BatchQueue {
    inner: Mutex<OpenBatch>,
    max_envelopes: u32,
    full: Notify,
}

impl BatchQueue {
    pub fn new(max_envelopes: usize) -> Self {
        Self {
            inner: Mutex::new(OpenBatch {
                json: Vec::with_capacity(4096),
                envelopes: 0,
            }),
            max_envelopes: u32::try_from(max_envelopes).unwrap_or(u32::MAX).max(1),
            full: Notify::new(),
        }
    }

    /// Takes the open batch as a complete JSON array (`None` when empty),
    /// leaving an empty one behind.
    pub fn take(&self) -> Option<(Vec<u8>, u32)> {
        let mut open = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if open.envelopes == 0 {
            return None;
        }
        let mut json = std::mem::replace(&mut open.json, Vec::with_capacity(4096));
        let envelopes = std::mem::take(&mut open.envelopes);
        json.push(b']');
        Some((json, envelopes))
    }

    /// Envelopes waiting in the open batch.
    pub fn len(&self) -> u32 {
        self.inner.lock().map(|o| o.envelopes).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when the open batch reached `max_batch_envelopes`.
    pub async fn wait_full(&self) {
        self.full.notified().await;
    }
}

impl EnvelopeSink for BatchQueue {
    fn push(&self, envelope: &Envelope<MetricData>) {
        let mut open = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mark = open.json.len();
        let separator = if open.envelopes == 0 { b'[' } else { b',' };
        open.json.push(separator);
        if let Err(e) = serde_json::to_writer(&mut open.json, envelope) {
            // Cannot happen for our typed payloads (no non-string map keys);
            // roll back so the batch stays valid JSON.
            open.json.truncate(mark);
            tracing::error!(metric_type = %envelope.metric_type, error = %e, "cannot serialize envelope: dropped");
            return;
        }
        open.envelopes += 1;
        if open.envelopes >= self.max_envelopes {
            self.full.notify_one();
        }
    }
}

/// A new random 128-bit batch id, as 32 hex digits.
pub fn new_batch_id() -> String {
    let id: u128 = rand::thread_rng().gen();
    format!("{id:032x}")
}

#[derive(Debug, thiserror::Error)]
#[error("compressing a batch: {0}")]
pub struct EncodeError(#[from] std::io::Error);

/// Compresses the JSON array `json` under a new batch id.
pub fn encode_batch(
    json: &[u8],
    envelopes: u32,
    encoding: Encoding,
) -> Result<EncodedBatch, EncodeError> {
    let body = match encoding {
        Encoding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(json.len() / 4 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(json)?;
            enc.finish()?
        }
        // Level 3 is zstd's default: most of the ratio for little CPU.
        Encoding::Zstd => zstd::bulk::compress(json, 3)?,
        Encoding::Identity => json.to_vec(),
    };
    Ok(EncodedBatch {
        id: new_batch_id(),
        encoding,
        body,
        envelopes,
    })
}

/// Capped exponential backoff with full jitter: a uniform delay in
/// `[0, min(max, initial * 2^attempt)]` (attempt 0 is the first retry).
/// Jitter keeps a fleet that lost its server from returning in lockstep.
pub fn backoff_delay<R: Rng + ?Sized>(
    attempt: u32,
    initial: Duration,
    max: Duration,
    rng: &mut R,
) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let cap = initial.checked_mul(factor).unwrap_or(max).min(max);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.gen_range(0..=cap_ms))
}

/// What the sender has done, for logs, tests and the debug endpoint.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent_batches: AtomicU64,
    pub sent_envelopes: AtomicU64,
    /// Batches the server rejected (4xx) and that were dropped.
    pub rejected_batches: AtomicU64,
    pub spooled_batches: AtomicU64,
    /// Batches the spool dropped to respect its cap (persisted there; this
    /// mirrors it).
    pub spool_dropped: AtomicU64,
    pub spool_len: AtomicU64,
}

impl SenderStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The sending task. Build with [`Sender::new`], then [`Sender::run`].
pub struct Sender {
    transport: Arc<dyn Transport>,
    queue: Arc<BatchQueue>,
    spool: Spool,
    settings: SenderSettings,
    stats: Arc<SenderStats>,
    attempt: u32,
    /// While backing off: when to try the server again.
    retry_at: Option<tokio::time::Instant>,
}

enum SendOutcome {
    Sent,
    Dropped,
    Retry,
}

impl Sender {
    pub fn new(
        transport: Arc<dyn Transport>,
        queue: Arc<BatchQueue>,
        spool: Spool,
        settings: SenderSettings,
    ) -> Self {
        let stats = Arc::new(SenderStats::default());
        stats
            .spool_dropped
            .store(spool.dropped(), Ordering::Relaxed);
        stats.spool_len.store(spool.len() as u64, Ordering::Relaxed);
        Self {
            transport,
            queue,
            spool,
            settings,
            stats,
            attempt: 0,
            retry_at: None,
        }
    }

    pub fn stats(&self) -> Arc<SenderStats> {
        self.stats.clone()
    }

    /// Flushes every `flush_interval` (or when the batch is full) until
    /// `shutdown`; then flushes the open batch once more (sent, or spooled
    /// if the server is unreachable) and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + self.settings.flush_interval,
            self.settings.flush_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queue = self.queue.clone();
        loop {
            let retry_at = self.retry_at;
            let spool_waiting = !self.spool.is_empty();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                _ = queue.wait_full() => {}
                _ = sleep_until_opt(retry_at), if spool_waiting && retry_at.is_some() => {}
            }
            self.flush().await;
        }
        self.flush_for_shutdown().await;
        tracing::debug!(spooled = self.spool.len(), "sender stopped");
    }

    /// The open batch goes to the spool first, so nothing is lost even if
    /// the server hangs; then the spool gets a bounded chance to drain.
    async fn flush_for_shutdown(&mut self) {
        if let Some((json, envelopes)) = self.queue.take() {
            match encode_batch(&json, envelopes, self.settings.compression) {
                Ok(batch) => self.spool_batch(&batch),
                Err(e) => tracing::error!(error = %e, envelopes, "cannot encode batch: dropped"),
            }
        }
        if tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, self.drain_spool())
            .await
            .is_err()
        {
            tracing::warn!(
                spooled = self.spool.len(),
                "server too slow at shutdown; batches stay spooled"
            );
        }
        self.update_gauges();
    }

    /// Seals the open batch and sends what can be sent, oldest first.
    pub async fn flush(&mut self) {
        if let Some((json, envelopes)) = self.queue.take() {
            match encode_batch(&json, envelopes, self.settings.compression) {
                Ok(batch) => self.submit(batch).await,
                Err(e) => tracing::error!(error = %e, envelopes, "cannot encode batch: dropped"),
            }
        }
        self.drain_spool().await;
        self.update_gauges();
    }

    async fn submit(&mut self, batch: EncodedBatch) {
        // Anything older waiting in the spool goes first; so does a backoff.
        if self.spool.is_empty() && !self.backing_off() {
            match self.try_send(&batch).await {
                SendOutcome::Sent | SendOutcome::Dropped => return,
                SendOutcome::Retry => {}
            }
        }
        self.spool_batch(&batch);
    }

    fn spool_batch(&mut self, batch: &EncodedBatch) {
        match self.spool.push(batch) {
            Ok(()) => {
                self.stats.spooled_batches.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(batch_id = %batch.id, spooled = self.spool.len(), "batch spooled");
            }
            Err(e) => tracing::error!(batch_id = %batch.id, error = %e, "cannot spool batch: lost"),
        }
    }

    async fn drain_spool(&mut self) {
        while !self.backing_off() {
            let batch = match self.spool.peek_oldest() {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    return;
                }
            };
            match self.try_send(&batch).await {
                SendOutcome::Sent | SendOutcome::Dropped => {
                    if let Err(e) = self.spool.remove_oldest() {
                        tracing::error!(error = %e, "cannot remove a sent batch from the spool");
                        return;
                    }
                }
                SendOutcome::Retry => return,
            }
        }
    }

    async fn try_send(&mut self, batch: &EncodedBatch) -> SendOutcome {
        match self.transport.send_batch(batch).await {
            Ok(()) => {
                if self.attempt > 0 {
                    tracing::info!("server reachable again");
                }
                self.attempt = 0;
                self.retry_at = None;
                self.stats.sent_batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .sent_envelopes
                    .fetch_add(u64::from(batch.envelopes), Ordering::Relaxed);
                SendOutcome::Sent
            }
            Err(TransportError::Rejected { status, message }) => {
                tracing::error!(batch_id = %batch.id, status, message = %message, envelopes = batch.envelopes, "server rejected batch: dropped");
                self.stats.rejected_batches.fetch_add(1, Ordering::Relaxed);
                SendOutcome::Dropped
            }
            Err(e) => {
                let delay = backoff_delay(
                    self.attempt,
                    self.settings.backoff_initial,
                    self.settings.backoff_max,
                    &mut rand::thread_rng(),
                );
                match &e {
                    // Once per streak: an agent waiting for approval is
                    // refused on every retry until an admin acts.
                    TransportError::Unauthorized(_) if self.attempt == 0 => {
                        tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "credential refused; batches are kept in the spool")
                    }
                    _ if self.attempt == 0 => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot send batch; spooling")
                    }
                    _ => {
                        tracing::debug!(error = %e, attempt = self.attempt, retry_in_ms = delay.as_millis() as u64, "send retry failed")
                    }
                }
                self.attempt = self.attempt.saturating_add(1);
                self.retry_at = Some(tokio::time::Instant::now() + delay);
                SendOutcome::Retry
            }
        }
    }

    fn backing_off(&self) -> bool {
        self.retry_at
            .is_some_and(|t| tokio::time::Instant::now() < t)
    }

    fn update_gauges(&self) {
        self.stats
            .spool_len
            .store(self.spool.len() as u64, Ordering::Relaxed);
        self.stats
            .spool_dropped
            .store(self.spool.dropped(), Ordering::Relaxed);
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
