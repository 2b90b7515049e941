//! The server's own counters, exposed on `GET /metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    batches_stored: AtomicU64,
    envelopes_stored: AtomicU64,
    batches_duplicate: AtomicU64,
    batches_rejected: AtomicU64,
    commands_queued: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub batches_stored: u64,
    pub envelopes_stored: u64,
    pub batches_duplicate: u64,
    pub batches_rejected: u64,
    pub commands_queued: u64,
}

impl Counters {
    pub fn record_batch_stored(&self, envelopes: usize) {
        self.batches_stored.fetch_add(1, Ordering::Relaxed);
        self.envelopes_stored
            .fetch_add(envelopes as u64, Ordering::Relaxed);
    }

    pub fn record_duplicate(&self) {
        self.batches_duplicate.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_rejected(&self) {
        self.batches_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_command_queued(&self) {
        self.commands_queued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            batches_stored: self.batches_stored.load(Ordering::Relaxed),
            envelopes_stored: self.envelopes_stored.load(Ordering::Relaxed),
            batches_duplicate: self.batches_duplicate.load(Ordering::Relaxed),
            batches_rejected: self.batches_rejected.load(Ordering::Relaxed),
            commands_queued: self.commands_queued.load(Ordering::Relaxed),
        }
    }
}
