//! The audit log (SPEC §6): who did what, to which agent, when, and how it
//! ended. Commands are logged when queued or refused, and again when they
//! end (done, failed, expired); later issues add security events (logins,
//! tokens, enrollments) through the same [`Audit::record`].
//!
//! A failed audit write is logged and counted but does not undo the action
//! it describes: the action already happened, and refusing to report it
//! would hide it twice.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use spectra_store::{AuditEvent, AuditQuery, NewAuditEvent, Store, StoreError};

/// Who acted, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `token:<name>`, `user:<name>`, `agent:<id>` or `system`.
    pub name: String,
    pub source_ip: Option<IpAddr>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            name: "system".into(),
            source_ip: None,
        }
    }

    pub fn agent(agent_id: &str) -> Self {
        Self {
            name: format!("agent:{agent_id}"),
            source_ip: None,
        }
    }
}

/// One event to record; `outcome` is `ok`, or a word and the reason
/// (`refused: rate limit ...`).
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub agent_id: Option<&'a str>,
    pub target: Option<&'a str>,
    pub outcome: String,
    pub detail: serde_json::Value,
}

#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
}

impl Audit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Appends an event; a store error is logged, never returned.
    pub async fn record(&self, actor: &Actor, entry: Entry<'_>) {
        let event = NewAuditEvent {
            at: Utc::now(),
            actor: actor.name.clone(),
            action: entry.action.to_owned(),
            agent_id: entry.agent_id.map(str::to_owned),
            target: entry.target.map(str::to_owned),
            outcome: entry.outcome,
            source_ip: actor.source_ip.map(|ip| ip.to_string()),
            detail: entry.detail,
        };
        if let Err(e) = self.store.append_audit(event).await {
            tracing::error!(error = %e, action = entry.action, actor = %actor.name, "cannot write the audit log");
        }
    }

    pub async fn list(&self, query: AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.store.list_audit(query).await
    }
}
