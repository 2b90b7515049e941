//! The agent's identity and enrollment (SPEC §1, §3).
//!
//! `<state_dir>/identity.json` holds `{"agent_id", "credential", "server"}`
//! (and `"server_fingerprint"` when enrolled over a pinned connection),
//! written atomically with mode 0600, so a restarted agent keeps its
//! identity and keeps pinning the server's certificate. At start [`ensure_identity`] reuses the stored identity for the
//! configured server, or enrolls with the token (`POST
//! /api/v1/agent/register`), waiting while the server's approval is pending.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spectra_protocol::{paths, RegisterRequest, RegisterResponse};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::sender::backoff_delay;
use crate::transport::http::{error_chain, parse_error_message, LONG_POLL_TIMEOUT};
use crate::transport::tls::{Fingerprint, ServerTrust};

const IDENTITY_FILE: &str = "identity.json";
/// How often a pending enrollment asks again.
pub const APPROVAL_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Who this agent is to its server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub agent_id: String,
    /// Secret: never in `Debug` output or logs.
    pub credential: String,
    pub server: String,
    /// The server certificate pinned when enrolling, so restarts keep
    /// pinning without the setting (files written before pins had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fingerprint: Option<Fingerprint>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("agent_id", &self.agent_id)
            .field("credential", &"<redacted>")
            .field("server", &self.server)
            .field("server_fingerprint", &self.server_fingerprint)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid identity file ({message}); delete it to enroll again")]
    Corrupt { path: PathBuf, message: String },
    #[error("enrollment token rejected: {0}")]
    TokenRejected(String),
    #[error("no identity in {state_dir} and no enrollment token: set SPECTRA_TOKEN (or --token) to the token the server printed")]
    NoToken { state_dir: PathBuf },
    #[error("enrollment refused by the server ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the server answered enrollment with {0}")]
    BadResponse(String),
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("stopped while enrolling")]
    Cancelled,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Two spellings of one server (`http://h:8080` vs `http://h:8080/`) are
/// the same server.
fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Reads `<state_dir>/identity.json`; `Ok(None)` when there is none.
pub fn load_identity(state_dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = state_dir.join(IDENTITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| IdentityError::Corrupt {
            path,
            message: e.to_string(),
        })
}

/// Writes the identity atomically (tmp + fsync + rename), mode 0600.
pub fn save_identity(state_dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    std::fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
    let path = state_dir.join(IDENTITY_FILE);
    let tmp = state_dir.join("identity.json.tmp");
    let json = serde_json::to_vec_pretty(identity).map_err(|e| IdentityError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(io_err(&tmp))?;
        // A tmp file left by an older run may have other permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_err(&tmp))?;
        }
        f.write_all(&json).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(())
}

/// How to check the server's certificate: the configured CA file and pin;
/// without either, the pin stored when this agent enrolled with the same
/// server (a configured CA or pin is the administrator's newer word).
pub fn server_trust(config: &AgentConfig) -> Result<ServerTrust, IdentityError> {
    let mut trust = ServerTrust {
        ca_file: config.ca_file.clone(),
        pin: config.server_fingerprint,
    };
    if trust.ca_file.is_none() && trust.pin.is_none() {
        trust.pin = load_identity(&config.state_dir)?
            .filter(|i| same_server(&i.server, &config.server))
            .and_then(|i| i.server_fingerprint);
    }
    Ok(trust)
}

/// The identity to use: the stored one for this server, or a new one from
/// enrollment with the configured token (waiting while approval is pending).
pub async fn ensure_identity(
    config: &AgentConfig,
    client: &reqwest::Client,
    shutdown: &CancellationToken,
) -> Result<Identity, IdentityError> {
    if let Some(mut identity) = load_identity(&config.state_dir)? {
        if same_server(&identity.server, &config.server) {
            tracing::info!(agent_id = %identity.agent_id, server = %identity.server, "using stored identity");
            // A newly configured pin replaces the stored one (certificate
            // rotated): later starts without the setting keep the new one.
            if config.server_fingerprint.is_some()
                && identity.server_fingerprint != config.server_fingerprint
            {
                identity.server_fingerprint = config.server_fingerprint;
                save_identity(&config.state_dir, &identity)?;
            }
            return Ok(identity);
        }
        tracing::info!(stored = %identity.server, configured = %config.server, "stored identity is for another server; enrolling");
    }
    let Some(token) = config.token.clone() else {
        return Err(IdentityError::NoToken {
            state_dir: config.state_dir.clone(),
        });
    };
    // Host info is read once: it does not change while we wait.
    let host = crate::collectors::host_info::read_host_info(&config.roots, &config.hostname);
    let request = RegisterRequest { token, host };
    let identity = enroll(config, client, &request, shutdown).await?;
    save_identity(&config.state_dir, &identity)?;
    tracing::info!(agent_id = %identity.agent_id, "enrolled");
    Ok(identity)
}

enum Attempt {
    Done(Identity),
    Pending(String),
    Retry(String),
}

async fn enroll(
    config: &AgentConfig,
    client: &reqwest::Client,
    request: &RegisterRequest,
    shutdown: &CancellationToken,
) -> Result<Identity, IdentityError> {
    let mut failures = 0u32;
    let mut logged_pending = false;
    loop {
        let delay = match register_once(config, client, request).await? {
            Attempt::Done(identity) => return Ok(identity),
            Attempt::Pending(agent_id) => {
                if !logged_pending {
                    tracing::info!(agent_id = %agent_id, "enrollment waiting for approval by an administrator");
                    logged_pending = true;
                }
                APPROVAL_POLL_INTERVAL
            }
            Attempt::Retry(why) => {
                let delay = backoff_delay(
                    failures,
                    config.sender.backoff_initial,
                    config.sender.backoff_max,
                    &mut rand::thread_rng(),
                );
                failures = failures.saturating_add(1);
                tracing::warn!(server = %config.server, error = %why, retry_in_ms = delay.as_millis() as u64, "cannot enroll yet");
                delay
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Err(IdentityError::Cancelled),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn register_once(
    config: &AgentConfig,
    client: &reqwest::Client,
    request: &RegisterRequest,
) -> Result<Attempt, IdentityError> {
    let url = format!("{}{}", config.server, paths::REGISTER);
    let resp = match client
        .post(&url)
        .timeout(LONG_POLL_TIMEOUT)
        .json(request)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Ok(Attempt::Retry(error_chain(&e))),
    };
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    match status.as_u16() {
        200..=202 => {
            let parsed: RegisterResponse = serde_json::from_str(&body).map_err(|e| {
                IdentityError::BadResponse(format!("{status} and an undecodable body: {e}"))
            })?;
            match parsed.credential {
                // Pending with a credential (approval mode): keep it now; the
                // server refuses it (403) until approved, and the sender
                // spools and retries meanwhile.
                Some(credential) => {
                    if status.as_u16() == 202 {
                        tracing::info!(agent_id = %parsed.agent_id, "enrolled; waiting for approval by an administrator (metrics are kept in the spool until then)");
                    }
                    Ok(Attempt::Done(Identity {
                        agent_id: parsed.agent_id,
                        credential,
                        server: config.server.clone(),
                        server_fingerprint: config.server_fingerprint,
                    }))
                }
                // A server that gives no credential while pending: ask again.
                None => Ok(Attempt::Pending(parsed.agent_id)),
            }
        }
        401 | 403 => Err(IdentityError::TokenRejected(parse_error_message(
            &body, status,
        ))),
        408 | 429 => Ok(Attempt::Retry(format!("{status}"))),
        s if status.is_server_error() => Ok(Attempt::Retry(format!(
            "HTTP {s}: {}",
            parse_error_message(&body, status)
        ))),
        s => Err(IdentityError::Refused {
            status: s,
            message: parse_error_message(&body, status),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_identity(dir.path()).unwrap().is_none());
        let id = Identity {
            agent_id: "a1".into(),
            credential: "secret-cred".into(),
            server: "http://127.0.0.1:8080".into(),
            server_fingerprint: None,
        };
        save_identity(dir.path(), &id).unwrap();
        assert_eq!(load_identity(dir.path()).unwrap(), Some(id.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(IDENTITY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{id:?}").contains("secret-cred"));
    }

    #[test]
    fn corrupt_identity_file_says_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IDENTITY_FILE), "{not json").unwrap();
        let e = load_identity(dir.path()).unwrap_err().to_string();
        assert!(e.contains("delete it to enroll again"), "{e}");
    }

    fn https_config(state_dir: &Path, env: &[(&str, &str)]) -> AgentConfig {
        let cli = crate::config::CliOverrides {
            server: Some("https://monitor.example:8443".into()),
            state_dir: Some(state_dir.to_owned()),
            hostname: Some("h".into()),
            ..Default::default()
        };
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentConfig::from_sources(None, &|k| env.get(k).cloned(), &cli).unwrap()
    }

    fn pinned_identity(pin: Fingerprint) -> Identity {
        Identity {
            agent_id: "a1".into(),
            credential: "c".into(),
            server: "https://monitor.example:8443/".into(),
            server_fingerprint: Some(pin),
        }
    }

    #[test]
    fn identity_files_from_before_pins_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(IDENTITY_FILE),
            r#"{"agent_id":"a1","credential":"c","server":"http://h:8080"}"#,
        )
        .unwrap();
        let id = load_identity(dir.path()).unwrap().unwrap();
        assert_eq!(id.server_fingerprint, None);
        // And a pin-less identity is written without the key.
        save_identity(dir.path(), &id).unwrap();
        let text = std::fs::read_to_string(dir.path().join(IDENTITY_FILE)).unwrap();
        assert!(!text.contains("server_fingerprint"), "{text}");
    }

    #[test]
    fn stored_pin_is_kept_across_restarts_without_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let pin = Fingerprint::of_der(b"server certificate");
        save_identity(dir.path(), &pinned_identity(pin)).unwrap();
        let trust = server_trust(&https_config(dir.path(), &[])).unwrap();
        assert_eq!(trust.pin, Some(pin));
        assert_eq!(trust.ca_file, None);
    }

    #[test]
    fn configured_trust_wins_over_the_stored_pin() {
        let dir = tempfile::tempdir().unwrap();
        let stored = Fingerprint::of_der(b"old certificate");
        save_identity(dir.path(), &pinned_identity(stored)).unwrap();
        let new = Fingerprint::of_der(b"new certificate");
        let new_text = new.to_string();
        let config = https_config(dir.path(), &[("SPECTRA_SERVER_FINGERPRINT", &new_text)]);
        assert_eq!(server_trust(&config).unwrap().pin, Some(new));
        let config = https_config(dir.path(), &[("SPECTRA_CA_FILE", "/etc/spectra/ca.pem")]);
        let trust = server_trust(&config).unwrap();
        assert_eq!(trust.pin, None);
        assert_eq!(trust.ca_file, Some(PathBuf::from("/etc/spectra/ca.pem")));
    }

    #[tokio::test]
    async fn a_newly_configured_pin_replaces_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        save_identity(
            dir.path(),
            &pinned_identity(Fingerprint::of_der(b"old certificate")),
        )
        .unwrap();
        let new = Fingerprint::of_der(b"new certificate");
        let new_text = new.to_string();
        let config = https_config(dir.path(), &[("SPECTRA_SERVER_FINGERPRINT", &new_text)]);
        // The stored identity is used: no request is made.
        let client = crate::transport::http::build_client().unwrap();
        let id = ensure_identity(&config, &client, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(id.server_fingerprint, Some(new));
        let stored = load_identity(dir.path()).unwrap().unwrap();
        assert_eq!(stored.server_fingerprint, Some(new));
    }

    #[test]
    fn trailing_slash_is_the_same_server() {
        assert!(same_server("http://h:8080/", "http://h:8080"));
        assert!(!same_server("http://h:8080", "http://h:9090"));
    }
}
