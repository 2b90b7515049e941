//! Ingest (SPEC §3, §6): decoding a metrics batch (decompression with a
//! size cap, JSON, per-envelope checks) and storing it for the agent that
//! sent it. The HTTP handler and the in-process local agent both come
//! through here, so they accept exactly the same input.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use spectra_protocol::RawEnvelope;
use spectra_store::{IngestOutcome, Store, StoreError};

use super::stats::Counters;

/// Longest accepted batch id (SPEC: ≤ 128 of `[A-Za-z0-9_-]`).
pub const MAX_BATCH_ID_LEN: usize = 128;
/// Longest accepted envelope `type`.
pub const MAX_TYPE_LEN: usize = 64;

/// How a batch body is compressed (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Identity,
    Gzip,
    Zstd,
}

impl BodyEncoding {
    /// Parses a `Content-Encoding` header value; `None` (no header) is identity.
    pub fn parse_header(value: Option<&str>) -> Result<Self, IngestError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Self::Identity),
            Some("gzip" | "x-gzip") => Ok(Self::Gzip),
            Some("zstd") => Ok(Self::Zstd),
            Some(other) => Err(IngestError::UnsupportedEncoding(
                other.chars().take(64).collect(),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("batch id {0}")]
    BadBatchId(String),
    #[error("unsupported Content-Encoding `{0}` (use gzip, zstd or none)")]
    UnsupportedEncoding(String),
    #[error("body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("decompressed body exceeds {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("body is not valid {encoding}: {message}")]
    Decompress {
        encoding: &'static str,
        message: String,
    },
    #[error("invalid batch JSON (expected an array of envelopes): {0}")]
    Json(#[from] serde_json::Error),
    #[error("envelope {index}: {message}")]
    BadEnvelope { index: usize, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Checks a batch id: 1-128 characters of `[A-Za-z0-9_-]`.
pub fn validate_batch_id(id: &str) -> Result<(), IngestError> {
    if id.is_empty() {
        return Err(IngestError::BadBatchId(
            "is required (X-Spectra-Batch-Id header or batch_id query parameter)".into(),
        ));
    }
    if id.len() > MAX_BATCH_ID_LEN {
        return Err(IngestError::BadBatchId(format!(
            "is longer than {MAX_BATCH_ID_LEN} characters"
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IngestError::BadBatchId(
            "may only hold letters, digits, '-' and '_'".into(),
        ));
    }
    Ok(())
}

/// Decompresses (with the caps of `limits`), parses and checks a batch.
/// CPU-bound: call it off the async threads for large bodies.
/// Largest zstd window accepted: 2^23 = 8 MiB.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Metrics bodies decoded at once, per core: parsing hostile JSON can take
/// ~25x its size in memory, so decodes queue rather than run by thousands.
pub const DECODES_PER_CORE: usize = 2;

pub fn decode_batch(
    encoding: BodyEncoding,
    body: &[u8],
    limits: IngestLimits,
) -> Result<Vec<RawEnvelope>, IngestError> {
    if body.len() > limits.max_body_bytes {
        return Err(IngestError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let envelopes: Vec<RawEnvelope> = match encoding {
        BodyEncoding::Identity => {
            if body.len() > limits.max_decompressed_bytes {
                return Err(IngestError::DecompressedTooLarge {
                    limit: limits.max_decompressed_bytes,
                });
            }
            serde_json::from_slice(body)?
        }
        BodyEncoding::Gzip => {
            let json = read_capped(
                flate2::read::GzDecoder::new(body),
                limits.max_decompressed_bytes,
                "gzip",
            )?;
            serde_json::from_slice(&json)?
        }
        BodyEncoding::Zstd => {
            let zstd_error = |e: std::io::Error| IngestError::Decompress {
                encoding: "zstd",
                message: e.to_string(),
            };
            let mut decoder = zstd::stream::read::Decoder::new(body).map_err(zstd_error)?;
            // A frame may ask for a 128 MiB window beside the output; agents
            // compress at level 3 (a few MiB at most), so refuse more than
            // 8 MiB (found by fuzzing, docs/security.md).
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(zstd_error)?;
            let json = read_capped(decoder, limits.max_decompressed_bytes, "zstd")?;
            serde_json::from_slice(&json)?
        }
    };
    for (index, envelope) in envelopes.iter().enumerate() {
        validate_envelope(envelope)
            .map_err(|message| IngestError::BadEnvelope { index, message })?;
    }
    Ok(envelopes)
}

fn validate_envelope(envelope: &RawEnvelope) -> Result<(), String> {
    let t = &envelope.metric_type;
    if t.is_empty() {
        return Err("`type` must not be empty".into());
    }
    if t.chars().count() > MAX_TYPE_LEN {
        return Err(format!("`type` is longer than {MAX_TYPE_LEN} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("`type` must not hold control characters".into());
    }
    // Known types must have their documented shape (SPEC §6: wrong field
    // types are a 400); unknown types are stored as-is (SPEC §3).
    spectra_protocol::MetricData::validate_value(t, &envelope.data)
        .map_err(|e| format!("`{t}` data: {e}"))
}

/// Reads `reader` to its end, failing as soon as more than `cap` bytes come
/// out: a decompression bomb is stopped after `cap` bytes, never inflated
/// whole.
fn read_capped(
    mut reader: impl Read,
    cap: usize,
    encoding: &'static str,
) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(IngestError::Decompress {
                    encoding,
                    message: e.to_string(),
                })
            }
        };
        if out.len() + n > cap {
            return Err(IngestError::DecompressedTooLarge { limit: cap });
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Decodes and stores batches for agents.
#[derive(Clone)]
pub struct IngestService {
    store: Arc<dyn Store>,
    limits: IngestLimits,
    counters: Arc<Counters>,
    /// Bounds decodes in flight (see [`DECODES_PER_CORE`]).
    decodes: Arc<tokio::sync::Semaphore>,
    /// The fleet overview's sparklines, fed from stored batches.
    trails: Arc<super::fleet::FleetTrails>,
}

impl IngestService {
    pub fn new(
        store: Arc<dyn Store>,
        limits: IngestLimits,
        counters: Arc<Counters>,
        trails: Arc<super::fleet::FleetTrails>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            limits,
            counters,
            decodes: Arc::new(tokio::sync::Semaphore::new(cores * DECODES_PER_CORE)),
            trails,
        }
    }

    pub fn limits(&self) -> IngestLimits {
        self.limits
    }

    /// Decodes `body` and stores it for `agent_id`, whatever hostnames the
    /// envelopes carry. Returns once the store has made it durable.
    pub async fn ingest_batch(
        &self,
        agent_id: &str,
        batch_id: &str,
        encoding: BodyEncoding,
        body: Bytes,
    ) -> Result<IngestOutcome, IngestError> {
        let result = self
            .decode_and_store(agent_id, batch_id, encoding, body)
            .await;
        match &result {
            Ok(IngestOutcome::Stored { envelopes }) => {
                self.counters.record_batch_stored(*envelopes);
            }
            Ok(IngestOutcome::Duplicate) => self.counters.record_duplicate(),
            Err(IngestError::Store(_) | IngestError::Internal(_)) => {}
            Err(e) => {
                self.counters.record_rejected();
                tracing::info!(agent_id, batch_id, error = %e, "batch rejected");
            }
        }
        result
    }

    async fn decode_and_store(
        &self,
        agent_id: &str,
        batch_id: &str,
        encoding: BodyEncoding,
        body: Bytes,
    ) -> Result<IngestOutcome, IngestError> {
        validate_batch_id(batch_id)?;
        let limits = self.limits;
        // Decompressing up to 64 MiB and parsing it is CPU work: keep it off
        // the async worker threads. Waiting here is back-pressure on senders, not an error. The permit
        // covers the decode only, not the wait for the group commit.
        let permit = self
            .decodes
            .acquire()
            .await
            .map_err(|e| IngestError::Internal(format!("decode limit closed: {e}")))?;
        let envelopes = tokio::task::spawn_blocking(move || {
            let mut envelopes = decode_batch(encoding, body.as_ref(), limits)?;
            super::workloads::add_workload_series(&mut envelopes);
            Ok::<_, IngestError>(envelopes)
        })
        .await
        .map_err(|e| IngestError::Internal(format!("decode task failed: {e}")))??;
        drop(permit);
        let now = Utc::now();
        let outcome = if envelopes.is_empty() {
            // Nothing to store; not worth a commit.
            IngestOutcome::Stored { envelopes: 0 }
        } else {
            let points = super::fleet::trail_points(&envelopes);
            let gauges = self
                .trails
                .has_gauges(agent_id)
                .then(|| super::fleet::glance_envelopes(&envelopes));
            let outcome = self.store.ingest(agent_id, batch_id, envelopes).await?;
            if matches!(outcome, IngestOutcome::Stored { .. }) {
                self.trails.record(agent_id, &points);
                if let Some(gauges) = gauges {
                    self.trails.record_gauges(agent_id, gauges, now);
                }
            }
            outcome
        };
        if let Err(e) = self.store.touch_agent(agent_id, now).await {
            tracing::warn!(agent_id, error = %e, "recording agent activity failed");
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LIMITS: IngestLimits = IngestLimits {
        max_body_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 16,
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    const ONE: &str = r#"[{"type":"cpu","timestamp":"2026-11-25T10:00:05Z","hostname":"h","data":{"usage":1.5,"cores":[1.5]}}]"#;

    #[test]
    fn decodes_every_encoding_to_the_same_batch() {
        let plain = decode_batch(BodyEncoding::Identity, ONE.as_bytes(), LIMITS).unwrap();
        let gz = decode_batch(BodyEncoding::Gzip, &gzip(ONE.as_bytes()), LIMITS).unwrap();
        let zs = decode_batch(
            BodyEncoding::Zstd,
            &zstd::encode_all(ONE.as_bytes(), 3).unwrap(),
            LIMITS,
        )
        .unwrap();
        assert_eq!(plain.len(), 1);
        assert_eq!(plain, gz);
        assert_eq!(plain, zs);
        assert_eq!(plain[0].data["usage"], 1.5);
    }

    #[test]
    fn stops_inflating_at_the_cap() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        let err = decode_batch(BodyEncoding::Gzip, &bomb, LIMITS).unwrap_err();
        assert!(
            matches!(err, IngestError::DecompressedTooLarge { limit } if limit == 1 << 16),
            "{err}"
        );
        let zbomb = zstd::encode_all(&vec![0u8; 1 << 20][..], 3).unwrap();
        assert!(matches!(
            decode_batch(BodyEncoding::Zstd, &zbomb, LIMITS),
            Err(IngestError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        // Long-distance matching at window log 27 (128 MiB) declares that
        // window in the frame header.
        let data = vec![7u8; 1 << 16];
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.long_distance_matching(true).unwrap();
        encoder.window_log(27).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let frame = encoder.finish().unwrap();
        let err = decode_batch(BodyEncoding::Zstd, &frame, LIMITS).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::Decompress {
                    encoding: "zstd",
                    ..
                }
            ),
            "{err}"
        );
        // The agent's own frames (level 3) decode.
        let ok = zstd::encode_all(ONE.as_bytes(), 3).unwrap();
        assert!(decode_batch(BodyEncoding::Zstd, &ok, LIMITS).is_ok());
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let err = decode_batch(BodyEncoding::Identity, b"[{\"type\": 5}]", LIMITS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1 column"), "{err}");
    }

    #[test]
    fn rejects_empty_and_long_types() {
        let empty = ONE.replace("\"cpu\"", "\"\"");
        assert!(matches!(
            decode_batch(BodyEncoding::Identity, empty.as_bytes(), LIMITS),
            Err(IngestError::BadEnvelope { index: 0, .. })
        ));
        let long = ONE.replace("\"cpu\"", &format!("\"{}\"", "x".repeat(65)));
        assert!(matches!(
            decode_batch(BodyEncoding::Identity, long.as_bytes(), LIMITS),
            Err(IngestError::BadEnvelope { .. })
        ));
    }

    #[test]
    fn batch_ids_are_checked() {
        validate_batch_id("abc-DEF_123").unwrap();
        assert!(validate_batch_id("").is_err());
        assert!(validate_batch_id("a/b").is_err());
        assert!(validate_batch_id(&"a".repeat(129)).is_err());
        validate_batch_id(&"a".repeat(128)).unwrap();
    }

    #[test]
    fn unknown_content_encoding_is_refused() {
        assert!(matches!(
            BodyEncoding::parse_header(Some("br")),
            Err(IngestError::UnsupportedEncoding(_))
        ));
        assert_eq!(
            BodyEncoding::parse_header(Some("GZIP")).unwrap(),
            BodyEncoding::Gzip
        );
        assert_eq!(
            BodyEncoding::parse_header(None).unwrap(),
            BodyEncoding::Identity
        );
    }
}
