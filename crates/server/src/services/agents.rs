//! Agents: registration with an enrollment token (SPEC §3), the status an
//! agent shows (`online`, `stale`, `offline`, or `pending`/`revoked`), and
//! resolving the `hostname=`/`agent_id=` of the seed's admin endpoints.
//!
//! Re-registering a hostname creates a new agent with a new id: simple and
//! safe (a stolen enrollment token cannot take over an existing agent's
//! identity or data); the old agent goes `offline` and can be deleted.
//!
//! Lifecycle (issue 5): enrollment tokens (uses, expiry, labels given to
//! the agents they enroll), approval mode (a new agent is `pending`, its
//! credential refused until approved), revoke, delete (data purged),
//! labels, and credential rotation (by the agent, or asked by an admin
//! through a flag the agent sees on its next command poll).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use spectra_protocol::{CollectorState, CollectorStatus, HostInfo, RawEnvelope};
use spectra_store::{AgentRecord, AgentState, EnrollmentTokenRecord, NewAgent, Store, StoreError};

use super::auth::{generate_id, generate_secret, hash_secret};

/// The status shown for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Online,
    Stale,
    Offline,
    Pending,
    Revoked,
}

/// When an agent counts as stale or offline.
#[derive(Debug, Clone, Copy)]
pub struct StatusThresholds {
    pub stale_after: Duration,
    pub offline_after: Duration,
}

/// `online` while heard from within `stale_after`, `stale` until
/// `offline_after`, then `offline` (also when never heard from).
pub fn compute_status(agent: &AgentRecord, now: DateTime<Utc>, t: StatusThresholds) -> AgentStatus {
    match agent.state {
        AgentState::Pending => return AgentStatus::Pending,
        AgentState::Revoked => return AgentStatus::Revoked,
        AgentState::Active => {}
    }
    let Some(last_seen) = agent.last_seen else {
        return AgentStatus::Offline;
    };
    // A clock step backwards makes the age negative: count that as fresh.
    let age = (now - last_seen).to_std().unwrap_or(Duration::ZERO);
    if age <= t.stale_after {
        AgentStatus::Online
    } else if age <= t.offline_after {
        AgentStatus::Stale
    } else {
        AgentStatus::Offline
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("enrollment token is invalid, expired or used up")]
    BadToken,
    #[error("host.hostname {0}")]
    BadHostname(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registered agent and the credential to give it (shown once).
pub struct Registration {
    pub agent: AgentRecord,
    pub credential: String,
}

/// Checks a hostname sent by an agent: present, printable, not huge.
pub fn validate_hostname(hostname: &str) -> Result<(), RegisterError> {
    if hostname.trim().is_empty() {
        return Err(RegisterError::BadHostname("must not be empty"));
    }
    if hostname.len() > 253 {
        return Err(RegisterError::BadHostname("must be at most 253 characters"));
    }
    if hostname.chars().any(char::is_control) {
        return Err(RegisterError::BadHostname(
            "must not hold control characters",
        ));
    }
    Ok(())
}

/// Consumes one use of `enrollment_token` and creates an agent for `host`,
/// carrying the token's labels. With `require_approval` the agent starts
/// `pending`: its credential is issued now but refused until approved.
pub async fn register_agent(
    store: &dyn Store,
    enrollment_token: &str,
    host: HostInfo,
    require_approval: bool,
) -> Result<Registration, RegisterError> {
    validate_hostname(&host.hostname)?;
    let now = Utc::now();
    let token = store
        .consume_enrollment_token(&hash_secret(enrollment_token), now)
        .await?
        .ok_or(RegisterError::BadToken)?;
    let credential = generate_secret();
    let state = if require_approval {
        AgentState::Pending
    } else {
        AgentState::Active
    };
    let agent = store
        .create_agent(NewAgent {
            id: generate_id("agt"),
            host,
            labels: token.labels,
            credential_hash: hash_secret(&credential),
            state,
            local: false,
            created_at: now,
        })
        .await?;
    tracing::info!(agent_id = %agent.id, hostname = %agent.hostname, state = ?agent.state, "agent registered");
    Ok(Registration { agent, credential })
}

// ---------------------------------------------------------------- approval mode

/// Store setting holding the approval mode an admin chose at runtime
/// (`true`/`false`); absent, the server setting `require_approval` applies.
pub const REQUIRE_APPROVAL_KEY: &str = "enrollment.require_approval";

/// Whether new agents wait for approval: the admin's runtime choice if
/// they made one, else `configured` (`SPECTRA_REQUIRE_APPROVAL`).
pub async fn require_approval(store: &dyn Store, configured: bool) -> Result<bool, StoreError> {
    Ok(
        match store.get_setting(REQUIRE_APPROVAL_KEY).await?.as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => configured,
        },
    )
}

/// Keeps the admin's choice of approval mode (it outlives restarts and
/// wins over the server setting).
pub async fn set_require_approval(store: &dyn Store, on: bool) -> Result<(), StoreError> {
    store
        .set_setting(REQUIRE_APPROVAL_KEY, if on { "true" } else { "false" })
        .await
}

// ---------------------------------------------------------------- enrollment tokens

/// Longest `expires_in` of an enrollment token.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 366 * 86_400);
/// Labels per agent or token, and their sizes.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_LEN: usize = 63;
pub const MAX_LABEL_VALUE_LEN: usize = 255;

/// Checks labels: at most [`MAX_LABELS`], keys of letters, digits and
/// `._/-` (so they work as Prometheus label values and in URLs), values
/// printable. The error names the offending label.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("labels: at most {MAX_LABELS} labels"));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > MAX_LABEL_KEY_LEN {
            return Err(format!(
                "labels: key `{key}` must be 1-{MAX_LABEL_KEY_LEN} characters"
            ));
        }
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        {
            return Err(format!(
                "labels: key `{key}` may only hold letters, digits and . _ / -"
            ));
        }
        if value.len() > MAX_LABEL_VALUE_LEN {
            return Err(format!(
                "labels: value of `{key}` must be at most {MAX_LABEL_VALUE_LEN} bytes"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!(
                "labels: value of `{key}` must not hold control characters"
            ));
        }
    }
    Ok(())
}

/// What an admin asks for in `POST /api/v1/enrollment-tokens`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    /// Uses before the token is spent; absent or `null`: unlimited. Signed
    /// so that `-1` gets this module's message rather than serde's.
    #[serde(default)]
    pub uses: Option<i64>,
    /// Lifetime (`"1h"`, `"7d"`); absent or `null`: never expires.
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Checks a token request and builds the record to store (as of `now`),
/// with the plaintext token to show once. Errors name the field.
pub fn new_enrollment_token(
    request: NewEnrollmentToken,
    now: DateTime<Utc>,
) -> Result<(EnrollmentTokenRecord, String), String> {
    let uses_left = match request.uses {
        None => None,
        Some(n) if n >= 1 && n <= i64::from(u32::MAX) => Some(n as u32),
        Some(n) => {
            return Err(format!(
                "uses: `{n}` must be a positive integer, or null for unlimited"
            ))
        }
    };
    let expires_at = match request.expires_in.as_deref() {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text.trim())
                .map_err(|_| format!("expires_in: `{text}` is not a duration like 1h or 7d"))?;
            if d.is_zero() || d > MAX_TOKEN_LIFETIME {
                return Err("expires_in: must be between 1s and 10 years".into());
            }
            Some(now + chrono::Duration::from_std(d).map_err(|e| format!("expires_in: {e}"))?)
        }
    };
    validate_labels(&request.labels)?;
    let token = generate_secret();
    let record = EnrollmentTokenRecord {
        id: generate_id("enr"),
        token_hash: hash_secret(&token),
        uses_left,
        expires_at,
        labels: request.labels,
        created_at: now,
    };
    Ok((record, token))
}

/// Whether a token can still enroll an agent at `now`.
pub fn enrollment_token_usable(t: &EnrollmentTokenRecord, now: DateTime<Utc>) -> bool {
    t.uses_left != Some(0) && t.expires_at.is_none_or(|at| at > now)
}

// ---------------------------------------------------------------- lifecycle

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("agent {0} not found")]
    NotFound(String),
    #[error(
        "agent {0} is the server's own local agent: start the server with --no-local-agent instead"
    )]
    LocalAgent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn existing(store: &dyn Store, id: &str) -> Result<AgentRecord, LifecycleError> {
    store
        .get_agent(id)
        .await?
        .ok_or_else(|| LifecycleError::NotFound(id.to_owned()))
}

/// Sets an agent's state (approve: `active`, revoke: `revoked`) and
/// returns the agent as it was before. The local agent cannot be revoked.
/// The caller clears the credential cache so the change applies at once.
pub async fn set_agent_state(
    store: &dyn Store,
    id: &str,
    state: AgentState,
) -> Result<AgentRecord, LifecycleError> {
    let agent = existing(store, id).await?;
    if agent.local && state != AgentState::Active {
        return Err(LifecycleError::LocalAgent(id.to_owned()));
    }
    if agent.state != state {
        store.set_agent_state(id, state).await?;
    }
    Ok(agent)
}

/// Deletes an agent and purges its data (history, latest, commands), and
/// any rotation it had pending.
pub async fn delete_agent(store: &dyn Store, id: &str) -> Result<AgentRecord, LifecycleError> {
    let agent = existing(store, id).await?;
    if agent.local {
        return Err(LifecycleError::LocalAgent(id.to_owned()));
    }
    store.delete_agent(id).await?;
    clear_rotation_request(store, id).await?;
    tracing::info!(agent_id = %id, hostname = %agent.hostname, "agent deleted");
    Ok(agent)
}

/// Replaces an agent's labels (checked by [`validate_labels`] first).
pub async fn set_agent_labels(
    store: &dyn Store,
    id: &str,
    labels: BTreeMap<String, String>,
) -> Result<AgentRecord, LifecycleError> {
    let agent = existing(store, id).await?;
    store.set_agent_labels(id, labels).await?;
    Ok(agent)
}

/// Store setting flagging that an admin asked the agent to rotate.
fn rotation_key(agent_id: &str) -> String {
    format!("agent.rotate.{agent_id}")
}

/// Flags the agent: its next command poll answers with
/// `X-Spectra-Rotate: 1`, and the agent then rotates. Kept in the store so
/// it survives restarts and reaches an agent polling another replica.
pub async fn request_rotation(store: &dyn Store, id: &str) -> Result<AgentRecord, LifecycleError> {
    let agent = existing(store, id).await?;
    store.set_setting(&rotation_key(id), "1").await?;
    Ok(agent)
}

/// Whether an admin asked this agent to rotate and it has not yet.
pub async fn rotation_requested(store: &dyn Store, id: &str) -> Result<bool, StoreError> {
    Ok(store.get_setting(&rotation_key(id)).await?.as_deref() == Some("1"))
}

async fn clear_rotation_request(store: &dyn Store, id: &str) -> Result<(), StoreError> {
    // The settings table has no delete: an empty value means "not asked".
    if store.get_setting(&rotation_key(id)).await?.is_some() {
        store.set_setting(&rotation_key(id), "").await?;
    }
    Ok(())
}

/// Gives the agent a new credential; the old one stops working as soon as
/// the caller clears the credential cache. Clears a rotation request.
pub async fn rotate_credential(store: &dyn Store, id: &str) -> Result<String, StoreError> {
    let credential = generate_secret();
    store
        .set_agent_credential(id, hash_secret(&credential))
        .await?;
    clear_rotation_request(store, id).await?;
    tracing::info!(agent_id = %id, "agent credential rotated");
    Ok(credential)
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("give hostname= or agent_id=")]
    Missing,
    #[error("no agent named {0}")]
    NotFound(String),
    #[error("hostname {hostname} names several agents: {}; use agent_id= instead", ids.join(", "))]
    Ambiguous { hostname: String, ids: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The one agent `agent_id` or `hostname` names (revoked agents excluded
/// from hostname matches: they can no longer run anything).
pub async fn resolve_agent(
    store: &dyn Store,
    agent_id: Option<&str>,
    hostname: Option<&str>,
) -> Result<AgentRecord, ResolveError> {
    if let Some(id) = agent_id.filter(|s| !s.is_empty()) {
        return store
            .get_agent(id)
            .await?
            .ok_or_else(|| ResolveError::NotFound(id.to_owned()));
    }
    let hostname = hostname
        .filter(|s| !s.is_empty())
        .ok_or(ResolveError::Missing)?;
    let mut matches: Vec<AgentRecord> = store
        .list_agents()
        .await?
        .into_iter()
        .filter(|a| a.hostname == hostname && a.state != AgentState::Revoked)
        .collect();
    match matches.len() {
        0 => Err(ResolveError::NotFound(hostname.to_owned())),
        1 => Ok(matches.remove(0)),
        _ => Err(ResolveError::Ambiguous {
            hostname: hostname.to_owned(),
            ids: matches.into_iter().map(|a| a.id).collect(),
        }),
    }
}

/// A collector's last reported status, from the `collector_status` envelopes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatusView {
    pub collector: String,
    pub state: CollectorState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub reported_at: DateTime<Utc>,
}

/// The newest status of each collector among `latest` envelopes.
pub fn collector_statuses(latest: &[RawEnvelope]) -> Vec<CollectorStatusView> {
    let mut out: Vec<CollectorStatusView> = Vec::new();
    for e in latest
        .iter()
        .filter(|e| e.metric_type == spectra_protocol::metric_type::COLLECTOR_STATUS)
    {
        // An envelope that does not decode is skipped: it was stored as sent
        // and is still visible raw in `latest`.
        let Ok(status) = serde_json::from_value::<CollectorStatus>(e.data.clone()) else {
            continue;
        };
        match out.iter_mut().find(|v| v.collector == status.collector) {
            Some(v) if v.reported_at >= e.timestamp => {}
            Some(v) => *v = view(status, e.timestamp),
            None => out.push(view(status, e.timestamp)),
        }
    }
    out.sort_by(|a, b| a.collector.cmp(&b.collector));
    out
}

fn view(s: CollectorStatus, at: DateTime<Utc>) -> CollectorStatusView {
    CollectorStatusView {
        collector: s.collector,
        state: s.state,
        message: s.message,
        reported_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(state: AgentState, last_seen: Option<DateTime<Utc>>) -> AgentRecord {
        AgentRecord {
            id: "a".into(),
            hostname: "h".into(),
            host: HostInfo::default(),
            labels: Default::default(),
            state,
            local: false,
            created_at: Utc::now(),
            last_seen,
        }
    }

    #[test]
    fn status_follows_last_seen_and_state() {
        let t = StatusThresholds {
            stale_after: Duration::from_secs(30),
            offline_after: Duration::from_secs(300),
        };
        let now = Utc::now();
        let ago = |s: i64| Some(now - chrono::Duration::seconds(s));
        assert_eq!(
            compute_status(&agent(AgentState::Active, ago(5)), now, t),
            AgentStatus::Online
        );
        assert_eq!(
            compute_status(&agent(AgentState::Active, ago(60)), now, t),
            AgentStatus::Stale
        );
        assert_eq!(
            compute_status(&agent(AgentState::Active, ago(600)), now, t),
            AgentStatus::Offline
        );
        assert_eq!(
            compute_status(&agent(AgentState::Active, None), now, t),
            AgentStatus::Offline
        );
        assert_eq!(
            compute_status(&agent(AgentState::Revoked, ago(1)), now, t),
            AgentStatus::Revoked
        );
        assert_eq!(
            compute_status(&agent(AgentState::Pending, ago(1)), now, t),
            AgentStatus::Pending
        );
    }

    #[test]
    fn newest_collector_status_wins() {
        let env = |secs: i64, state: &str| RawEnvelope {
            metric_type: "collector_status".into(),
            timestamp: DateTime::from_timestamp(secs, 0).unwrap(),
            hostname: "h".into(),
            data: serde_json::json!({"collector": "wifi", "state": state}),
        };
        let v = collector_statuses(&[env(10, "error"), env(20, "unsupported"), env(15, "ok")]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].state, CollectorState::Unsupported);
    }
}
