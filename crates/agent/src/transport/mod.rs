//! How the agent talks to a server: the [`Transport`] trait, with the HTTP
//! implementation in `http.rs`. The server's in-process local agent uses
//! its own implementation that calls the server's services directly.

pub mod http;
pub mod tls;

use async_trait::async_trait;
use spectra_protocol::{Command, CommandResult};

/// Content encoding of an encoded batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gzip,
    Zstd,
    Identity,
}

impl Encoding {
    /// The `Content-Encoding` header value (`None` for identity).
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Self::Gzip => Some("gzip"),
            Self::Zstd => Some("zstd"),
            Self::Identity => None,
        }
    }
}

/// A batch ready to send: the JSON array of envelopes, compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Unique per batch; the server drops a retried duplicate.
    pub id: String,
    pub encoding: Encoding,
    pub body: Vec<u8>,
    pub envelopes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Network error, timeout, 5xx, 429: keep the batch and retry later.
    #[error("server unreachable: {0}")]
    Unavailable(String),
    /// 401/403: the credential is wrong or revoked.
    #[error("server refused our credential: {0}")]
    Unauthorized(String),
    /// Another 4xx: the server will never accept this request; retrying is useless.
    #[error("server rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends one batch; `Ok` means the server stored it durably.
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError>;
    /// Long-polls for the next command (the server holds the request up to
    /// 30 s); `Ok(None)` when none came.
    async fn next_command(&self) -> Result<Option<Command>, TransportError>;
    async fn send_result(&self, result: &CommandResult) -> Result<(), TransportError>;
}
