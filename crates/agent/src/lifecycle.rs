//! Keeping an enrolled agent current with its server (issue 5).
//!
//! - [`send_host_info`]: at every start the agent sends its host info (OS,
//!   kernel, IPs, agent version) to `PUT /api/v1/agent/host`, so the server
//!   does not keep what it learned at enrollment forever.
//! - [`RotatingTransport`]: the HTTP transport, plus credential rotation
//!   when the server asks (`X-Spectra-Rotate: 1` on a command poll, set by
//!   an admin's `POST /api/v1/agents/{id}/rotate`): the agent calls
//!   `POST /api/v1/agent/rotate`, saves the new credential to
//!   `identity.json` (temp file + rename, 0600) and only then uses it.
//!
//! The server retires the old credential as it answers, so an answer lost
//! in transit leaves the agent without a working credential: it then logs
//! that it is refused and needs a new enrollment (delete `identity.json`).
//! Rotation is rare and admin-triggered, which keeps that window small.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use spectra_protocol::{paths, Command, CommandResult, HostInfo, RotateResponse};

use crate::identity::{save_identity, Identity};
use crate::transport::http::{classify_status, map_request_error, HttpTransport, REQUEST_TIMEOUT};
use crate::transport::{EncodedBatch, Transport, TransportError};

fn url(server: &str, path: &str) -> String {
    format!("{}{path}", server.trim_end_matches('/'))
}

/// `PUT /api/v1/agent/host` with `host`.
pub async fn send_host_info(
    client: &reqwest::Client,
    server: &str,
    credential: &str,
    host: &HostInfo,
) -> Result<(), TransportError> {
    let resp = client
        .put(url(server, paths::HOST))
        .timeout(REQUEST_TIMEOUT)
        .bearer_auth(credential)
        .json(host)
        .send()
        .await
        .map_err(map_request_error)?;
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status();
    Err(classify_status(
        status,
        &resp.text().await.unwrap_or_default(),
    ))
}

/// `POST /api/v1/agent/rotate`: the new credential (the old one is dead
/// once this returns `Ok`).
pub async fn request_new_credential(
    client: &reqwest::Client,
    server: &str,
    credential: &str,
) -> Result<String, TransportError> {
    let resp = client
        .post(url(server, paths::ROTATE))
        .timeout(REQUEST_TIMEOUT)
        .bearer_auth(credential)
        .send()
        .await
        .map_err(map_request_error)?;
    let status = resp.status();
    let body = resp.text().await.map_err(map_request_error)?;
    if !status.is_success() {
        return Err(classify_status(status, &body));
    }
    serde_json::from_str::<RotateResponse>(&body)
        .map(|r| r.credential)
        .map_err(|e| TransportError::Rejected {
            status: status.as_u16(),
            message: format!("undecodable rotation answer: {e}"),
        })
}

/// The agent's HTTP transport with credential rotation on the server's
/// request (module docs).
pub struct RotatingTransport {
    client: reqwest::Client,
    state_dir: PathBuf,
    identity: Mutex<Identity>,
    current: Mutex<Arc<HttpTransport>>,
    /// One rotation at a time.
    rotating: tokio::sync::Mutex<()>,
}

impl RotatingTransport {
    pub fn new(client: reqwest::Client, state_dir: PathBuf, identity: Identity) -> Self {
        let transport = HttpTransport::new(client.clone(), &identity.server, &identity.credential);
        Self {
            client,
            state_dir,
            identity: Mutex::new(identity),
            current: Mutex::new(Arc::new(transport)),
            rotating: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Arc<HttpTransport> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn identity(&self) -> Identity {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rotates now: new credential from the server, saved, then used.
    pub async fn rotate(&self) -> Result<(), TransportError> {
        let _one = self.rotating.lock().await;
        let mut identity = self.identity();
        let credential =
            request_new_credential(&self.client, &identity.server, &identity.credential).await?;
        identity.credential = credential;
        // Saved before use: a crash right after still restarts with the
        // credential the server now expects.
        let dir = self.state_dir.clone();
        let to_save = identity.clone();
        let saved = tokio::task::spawn_blocking(move || save_identity(&dir, &to_save)).await;
        match saved {
            Ok(Ok(())) => tracing::info!(agent_id = %identity.agent_id, "credential rotated"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "credential rotated but not saved: this run uses it, a restart will need a new enrollment")
            }
            Err(e) => {
                tracing::error!(error = %e, "credential rotated but not saved: this run uses it, a restart will need a new enrollment")
            }
        }
        let transport =
            HttpTransport::new(self.client.clone(), &identity.server, &identity.credential);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(transport);
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
        Ok(())
    }
}

#[async_trait]
impl Transport for RotatingTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError> {
        self.current().send_batch(batch).await
    }

    async fn next_command(&self) -> Result<Option<Command>, TransportError> {
        let transport = self.current();
        let polled = transport.next_command().await;
        if transport.take_rotate_request() {
            // A failed rotation is retried: the server keeps asking until
            // it has happened.
            if let Err(e) = self.rotate().await {
                tracing::warn!(error = %e, "the server asked for a credential rotation, which failed; retrying at the next poll");
            }
        }
        polled
    }

    async fn send_result(&self, result: &CommandResult) -> Result<(), TransportError> {
        self.current().send_result(result).await
    }
}
