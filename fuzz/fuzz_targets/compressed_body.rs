//! `decode_batch` (what `POST /api/v1/metrics` runs on a body) on arbitrary
//! bytes under each `Content-Encoding`, with small caps.
//!
//! Properties beyond "never panics":
//! - a body over `max_body_bytes` is refused before anything is decoded;
//! - an accepted body decompresses (checked independently here) to at most
//!   `max_decompressed_bytes`;
//! - the Rust heap in use while decoding stays linear in the decompressed
//!   cap, whatever the compression ratio: a bomb is stopped, not inflated.
//!   (zstd's own C allocations do not pass through the Rust allocator;
//!   libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb` bound those.)
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use spectra_server::services::ingest::{decode_batch, BodyEncoding, IngestError, IngestLimits};

/// The body cap sits just under libFuzzer's default `-max_len` (4096) so
/// inputs land on both sides of it; the decompressed cap is far below what
/// 4 KiB of gzip (~4 MiB) or zstd (far more) can expand to.
const LIMITS: IngestLimits = IngestLimits {
    max_body_bytes: 4000,
    max_decompressed_bytes: 64 * 1024,
};

/// Heap the decoder may hold at once: the capped buffer (grown by doubling)
/// plus the parsed JSON tree. serde_json's `Value` costs ~50x the text at
/// worst (`[{},{},...]`: an 80-byte `Value` per 3 input bytes, doubled by
/// `Vec` growth), hence the factor; an uncapped bomb (64 KiB of gzip is
/// ~64 MiB of output) is far above it.
const MAX_LIVE_HEAP: usize = 128 * LIMITS.max_decompressed_bytes + (1 << 20);

/// The system allocator, counting live and peak bytes so the target can
/// assert what decoding holds.
struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            add(new_size);
        }
        p
    }
}

fn add(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|body: &[u8]| {
    for encoding in [
        BodyEncoding::Identity,
        BodyEncoding::Gzip,
        BodyEncoding::Zstd,
    ] {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let result = decode_batch(encoding, body, LIMITS);
        let held = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        assert!(
            held <= MAX_LIVE_HEAP,
            "{encoding:?}: decoding held {held} bytes of heap (bound {MAX_LIVE_HEAP})"
        );
        if body.len() > LIMITS.max_body_bytes {
            assert!(
                matches!(result, Err(IngestError::BodyTooLarge { .. })),
                "{encoding:?}: a {}-byte body was not refused as too large",
                body.len()
            );
            continue;
        }
        let Ok(batch) = result else { continue };
        let size = decompressed_len(encoding, body);
        assert!(
            size <= LIMITS.max_decompressed_bytes,
            "{encoding:?}: accepted a body that decompresses to {size} bytes"
        );
        // What was accepted is what ingest hands to the store and the
        // workload deriver; the latter must cope with any accepted batch.
        let mut batch = batch;
        spectra_server::services::workloads::add_workload_series(&mut batch);
    }
});

/// Decompressed size of `body`, read independently of the code under test
/// and stopped one byte past the cap (enough to see a violation).
fn decompressed_len(encoding: BodyEncoding, body: &[u8]) -> usize {
    let limit = LIMITS.max_decompressed_bytes as u64 + 1;
    let mut sink = Vec::new();
    let read = match encoding {
        BodyEncoding::Identity => return body.len(),
        BodyEncoding::Gzip => flate2::read::GzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut sink),
        BodyEncoding::Zstd => match zstd::stream::read::Decoder::new(body) {
            Ok(d) => d.take(limit).read_to_end(&mut sink),
            Err(e) => Err(e),
        },
    };
    // Reading past the cap may hit the corruption the capped reader never
    // reached; what was read so far still counts.
    drop(read);
    sink.len()
}
