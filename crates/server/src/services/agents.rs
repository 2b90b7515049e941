//! Agents: registration with an enrollment token (SPEC §3), the status an
//! agent shows (`online`, `stale`, `offline`, or `pending`/`revoked`), and
//! resolving the `hostname=`/`agent_id=` of the seed's admin endpoints.
//!
//! Re-registering a hostname creates a new agent with a new id: simple and
//! safe (a stolen enrollment token cannot take over an existing agent's
//! identity or data); the old agent goes `offline` and can be deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use spectra_protocol::{CollectorState, CollectorStatus, HostInfo, RawEnvelope};
use spectra_store::{AgentRecord, AgentState, NewAgent, Store, StoreError};

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

/// Consumes one use of `enrollment_token` and creates an agent for `host`.
pub async fn register_agent(
    store: &dyn Store,
    enrollment_token: &str,
    host: HostInfo,
) -> Result<Registration, RegisterError> {
    validate_hostname(&host.hostname)?;
    let now = Utc::now();
    let token = store
        .consume_enrollment_token(&hash_secret(enrollment_token), now)
        .await?
        .ok_or(RegisterError::BadToken)?;
    let credential = generate_secret();
    let agent = store
        .create_agent(NewAgent {
            id: generate_id("agt"),
            host,
            labels: token.labels,
            credential_hash: hash_secret(&credential),
            state: AgentState::Active,
            local: false,
            created_at: now,
        })
        .await?;
    tracing::info!(agent_id = %agent.id, hostname = %agent.hostname, "agent registered");
    Ok(Registration { agent, credential })
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
