//! The HTTP [`Transport`] (SPEC §3): one reqwest client (rustls) for every
//! request the agent makes, registration included, checking the server's
//! certificate as [`super::tls::ServerTrust`] says.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use spectra_protocol::{paths, Command, CommandResult, ErrorBody, BATCH_ID_HEADER};

use super::tls::{is_plaintext_remote, ServerTrust, TlsError};
use super::{EncodedBatch, Transport, TransportError};

/// A metrics or result POST that takes longer than this is retried later.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The server holds a command long-poll up to 30 s; wait a little longer.
pub const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(40);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Server error messages are shown to users; long bodies are cut.
const MAX_ERROR_CHARS: usize = 512;

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("spectra-agent/", env!("CARGO_PKG_VERSION")))
}

/// Builds an HTTP client with reqwest's built-in roots.
pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    client_builder().build()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Builds the agent's one HTTP client for `server`, trusting what `trust`
/// says; logs how the server is checked, and warns when credentials and
/// metrics would cross the network unencrypted.
pub fn build_agent_client(
    server: &str,
    trust: &ServerTrust,
) -> Result<reqwest::Client, ClientError> {
    if is_plaintext_remote(server) {
        tracing::warn!(
            server,
            "the server URL is plain http:// to a remote host: the enrollment token, the agent credential and all metrics travel unencrypted; use https:// (SPECTRA_CA_FILE or a pinned fingerprint for a private certificate)"
        );
    }
    let builder = match trust.client_config()? {
        None => client_builder(),
        Some(tls) => {
            match (&trust.ca_file, &trust.pin) {
                (Some(ca), Some(pin)) => {
                    tracing::info!(ca_file = %ca.display(), %pin, "server certificate must be signed by the CA file and match the pinned fingerprint")
                }
                (Some(ca), None) => {
                    tracing::info!(ca_file = %ca.display(), "trusting only the CA in the CA file for the server certificate")
                }
                (None, Some(pin)) => tracing::info!(%pin, "server certificate pinned"),
                (None, None) => {}
            }
            client_builder().use_preconfigured_tls(tls)
        }
    };
    Ok(builder.build()?)
}

/// Talks to a Spectra server with the agent's credential.
pub struct HttpTransport {
    client: reqwest::Client,
    server: String,
    bearer: String,
    /// Set when a command poll's answer carried `X-Spectra-Rotate: 1`.
    rotate_requested: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("server", &self.server)
            .field("bearer", &"<redacted>")
            .finish()
    }
}

impl HttpTransport {
    /// `server` is the base URL (`http://host:8080`).
    pub fn new(client: reqwest::Client, server: &str, credential: &str) -> Self {
        Self {
            client,
            server: server.trim_end_matches('/').to_owned(),
            bearer: format!("Bearer {credential}"),
            rotate_requested: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the server asked this agent to rotate its credential since
    /// the last call (see `crate::lifecycle`).
    pub fn take_rotate_request(&self) -> bool {
        self.rotate_requested
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }
}

/// Maps a network-level failure (connect, timeout, reset).
pub fn map_request_error(e: reqwest::Error) -> TransportError {
    TransportError::Unavailable(error_chain(&e))
}

/// The error and its causes on one line ("connection refused" is usually
/// only in the source chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Maps a non-2xx answer to a [`TransportError`]: 401/403 Unauthorized;
/// 408/429/5xx Unavailable (retry later); any other 4xx Rejected.
pub fn classify_status(status: StatusCode, body: &str) -> TransportError {
    let message = parse_error_message(body, status);
    match status.as_u16() {
        401 | 403 => TransportError::Unauthorized(message),
        408 | 429 => TransportError::Unavailable(format!("{status}: {message}")),
        s if status.is_server_error() => {
            TransportError::Unavailable(format!("HTTP {s}: {message}"))
        }
        s => TransportError::Rejected { status: s, message },
    }
}

/// The `{"error"}` of a Spectra error body, else the (cut) body text, else
/// the status reason.
pub fn parse_error_message(body: &str, status: StatusCode) -> String {
    if let Ok(e) = serde_json::from_str::<ErrorBody>(body) {
        return e.error;
    }
    let text = body.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

async fn fail(resp: reqwest::Response) -> TransportError {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    classify_status(status, &body)
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError> {
        let mut req = self
            .client
            .post(self.url(paths::METRICS))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, &self.bearer)
            .header(BATCH_ID_HEADER, &batch.id)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(enc) = batch.encoding.header_value() {
            req = req.header(reqwest::header::CONTENT_ENCODING, enc);
        }
        let resp = req
            .body(batch.body.clone())
            .send()
            .await
            .map_err(map_request_error)?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(fail(resp).await)
    }

    async fn next_command(&self) -> Result<Option<Command>, TransportError> {
        let resp = self
            .client
            .get(self.url(paths::COMMAND))
            .timeout(LONG_POLL_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, &self.bearer)
            .send()
            .await
            .map_err(map_request_error)?;
        if resp.headers().contains_key(spectra_protocol::ROTATE_HEADER) {
            self.rotate_requested
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match resp.status() {
            StatusCode::NO_CONTENT => Ok(None),
            s if s.is_success() => {
                let bytes = resp.bytes().await.map_err(map_request_error)?;
                serde_json::from_slice::<Command>(&bytes)
                    .map(Some)
                    .map_err(|e| TransportError::Rejected {
                        status: s.as_u16(),
                        message: format!("undecodable command from the server: {e}"),
                    })
            }
            _ => Err(fail(resp).await),
        }
    }

    async fn send_result(&self, result: &CommandResult) -> Result<(), TransportError> {
        let resp = self
            .client
            .post(self.url(paths::COMMAND_RESULT))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, &self.bearer)
            .json(result)
            .send()
            .await
            .map_err(map_request_error)?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(fail(resp).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses_to_transport_errors() {
        let body = r#"{"error":"batch too large"}"#;
        assert!(matches!(
            classify_status(StatusCode::UNAUTHORIZED, body),
            TransportError::Unauthorized(m) if m == "batch too large"
        ));
        assert!(matches!(
            classify_status(StatusCode::FORBIDDEN, ""),
            TransportError::Unauthorized(_)
        ));
        for s in [408u16, 429, 500, 503] {
            let status = StatusCode::from_u16(s).unwrap();
            assert!(
                matches!(classify_status(status, ""), TransportError::Unavailable(_)),
                "{s}"
            );
        }
        match classify_status(StatusCode::PAYLOAD_TOO_LARGE, body) {
            TransportError::Rejected { status, message } => {
                assert_eq!(status, 413);
                assert_eq!(message, "batch too large");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn non_json_error_body_is_kept_cut() {
        let long = "x".repeat(2000);
        let m = parse_error_message(&long, StatusCode::BAD_REQUEST);
        assert_eq!(m.len(), MAX_ERROR_CHARS);
        assert_eq!(
            parse_error_message("", StatusCode::BAD_REQUEST),
            "Bad Request"
        );
    }
}
