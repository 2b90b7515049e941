//! Spectra's storage: the [`Store`] trait every backend implements, and the
//! embedded backend (SQLite through rusqlite, SPEC §5).
//!
//! Layout:
//! - `lib.rs` (this file): the trait and the records it trades in.
//! - `embedded/`: the embedded store (batch log with group commit, sealing
//!   into compressed per-series chunks and rollups, in-memory latest state,
//!   retention).
//! - `conformance.rs`: the behaviour every backend must show, as async test
//!   functions; each backend's tests run all of them (feature `conformance`
//!   exposes them to other crates, e.g. a PostgreSQL backend).
//!
//! Handlers never write SQL: the server's services call this trait only.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spectra_protocol::{CommandResult, HostInfo, RawEnvelope};

pub mod embedded;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use embedded::{EmbeddedConfig, EmbeddedStore};

/// A SHA-256 digest (hex) of a high-entropy secret (agent credential, API
/// token, enrollment token). Secrets themselves are never stored.
pub type SecretHash = String;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("the store is shut down")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

// ---------------------------------------------------------------- agents

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Active,
    /// Waiting for an admin's approval (approval mode, issue 5).
    Pending,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub hostname: String,
    pub host: HostInfo,
    pub labels: BTreeMap<String, String>,
    pub state: AgentState,
    /// The server's own in-process agent.
    pub local: bool,
    pub created_at: DateTime<Utc>,
    /// Last time the agent sent anything (metrics, poll, result).
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: String,
    pub host: HostInfo,
    pub labels: BTreeMap<String, String>,
    pub credential_hash: SecretHash,
    pub state: AgentState,
    pub local: bool,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- users, tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    /// PHC string (argon2id).
    #[serde(skip_serializing)]
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    #[serde(skip_serializing)]
    pub token_hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

/// A browser session (the cookie holds the secret; only its hash is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    #[serde(skip_serializing)]
    pub session_hash: SecretHash,
    pub user_id: String,
    /// Sent back in `X-CSRF-Token` by state-changing requests that
    /// authenticate with the cookie.
    #[serde(skip_serializing)]
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentTokenRecord {
    pub id: String,
    #[serde(skip_serializing)]
    pub token_hash: SecretHash,
    /// Remaining uses; `None` = unlimited.
    pub uses_left: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- metrics

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored durably; the count of envelopes.
    Stored { envelopes: usize },
    /// The batch id was seen before for this agent: nothing stored again.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    pub agent_id: String,
    pub metric_type: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Average numeric fields per step and per entity.
    pub step: Option<Duration>,
}

/// One point of a history answer: `data` has the shape the agent sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// What a maintenance pass did (sealing and retention).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub sealed_batches: u64,
    pub chunks_written: u64,
    pub chunks_deleted: u64,
    pub snapshots_deleted: u64,
}

/// Retention per tier (SPEC §5 defaults: raw 7 d, 1-minute 90 d, 1-hour 2 y).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub minute: Duration,
    pub hour: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            raw: Duration::from_secs(7 * DAY),
            minute: Duration::from_secs(90 * DAY),
            hour: Duration::from_secs(730 * DAY),
        }
    }
}

// ---------------------------------------------------------------- commands

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    Queued,
    Delivered,
    Done,
    Failed,
    Expired,
}

impl CommandStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Expired)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub command_type: String,
    pub agent_id: String,
    pub payload: serde_json::Value,
    pub status: CommandStatus,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    /// Who queued it (user name or token name).
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewCommand {
    pub id: String,
    pub agent_id: String,
    pub command_type: String,
    pub payload: serde_json::Value,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- audit

/// One audit-log entry: who did what to which agent, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `user:<name>`, `token:<name>`, `agent:<id>` or `system`.
    pub actor: String,
    /// Dotted event name: `command.queued`, `command.done`, `login.failed`...
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// What the action was about (a command id, a user name...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `ok`, `denied`, `failed`, ... with the reason where there is one.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Event-specific details (the command's payload...).
    #[serde(default)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub agent_id: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub source_ip: Option<String>,
    pub detail: serde_json::Value,
}

/// Filters of [`Store::list_audit`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub agent_id: Option<String>,
    pub actor: Option<String>,
    /// Matches `action` exactly or as a dotted prefix (`command` matches
    /// `command.queued`).
    pub action: Option<String>,
    /// Only events with a smaller id (paging backwards).
    pub before_id: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// The storage every backend provides. All methods are cancel-safe from
/// the caller's side: a dropped future never leaves half-written state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // -- agents
    async fn create_agent(&self, agent: NewAgent) -> Result<AgentRecord>;
    async fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>>;
    async fn list_agents(&self) -> Result<Vec<AgentRecord>>;
    /// The agent whose credential hashes to `credential_hash`, if any.
    async fn agent_by_credential(&self, credential_hash: &str) -> Result<Option<AgentRecord>>;
    async fn set_agent_credential(&self, id: &str, credential_hash: SecretHash) -> Result<()>;
    async fn set_agent_state(&self, id: &str, state: AgentState) -> Result<()>;
    async fn update_agent_host(&self, id: &str, host: HostInfo) -> Result<()>;
    /// Records activity; backends may keep this in memory and persist it lazily.
    async fn touch_agent(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Deletes the agent and purges its data.
    async fn delete_agent(&self, id: &str) -> Result<()>;

    // -- users and API tokens
    async fn create_user(&self, user: UserRecord) -> Result<()>;
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;
    async fn get_user(&self, id: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn create_api_token(&self, token: ApiTokenRecord) -> Result<()>;
    async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>>;
    /// Changes a user's role and/or password hash (`None` leaves it).
    async fn update_user(
        &self,
        id: &str,
        role: Option<Role>,
        password_hash: Option<String>,
    ) -> Result<()>;
    /// Deletes the user with their API tokens and sessions.
    async fn delete_user(&self, id: &str) -> Result<()>;
    /// API tokens, of one user or (`None`) of everyone, oldest first.
    async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiTokenRecord>>;
    async fn delete_api_token(&self, id: &str) -> Result<()>;
    /// Records a token's use (at most once a minute matters; callers
    /// decide how often to call).
    async fn touch_api_token(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    // -- browser sessions
    async fn create_session(&self, session: SessionRecord) -> Result<()>;
    async fn session_by_hash(&self, session_hash: &str) -> Result<Option<SessionRecord>>;
    async fn touch_session(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    async fn delete_session(&self, id: &str) -> Result<()>;
    /// Deletes sessions past `expires_at` or idle since before `idle_before`.
    async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> Result<u64>;
    /// Replaces an agent's labels.
    async fn set_agent_labels(&self, id: &str, labels: BTreeMap<String, String>) -> Result<()>;

    // -- enrollment tokens
    async fn create_enrollment_token(&self, token: EnrollmentTokenRecord) -> Result<()>;
    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenRecord>>;
    /// Atomically uses one use of the token if it exists, has uses left and
    /// has not expired at `now`; `None` otherwise.
    async fn consume_enrollment_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<EnrollmentTokenRecord>>;
    async fn delete_enrollment_token(&self, id: &str) -> Result<()>;

    // -- small key/value settings (e.g. the local agent's id)
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    // -- metrics
    /// Stores a batch for `agent_id` (whatever hostnames its envelopes
    /// carry). Returns only once the batch is durable. A `batch_id` seen
    /// before for the same agent is a [`IngestOutcome::Duplicate`].
    async fn ingest(
        &self,
        agent_id: &str,
        batch_id: &str,
        envelopes: Vec<RawEnvelope>,
    ) -> Result<IngestOutcome>;
    async fn history(&self, query: HistoryQuery) -> Result<Vec<Sample>>;
    /// The newest envelope of every type (and, for per-entity types, of
    /// every entity) the agent has sent.
    async fn latest(&self, agent_id: &str) -> Result<Vec<RawEnvelope>>;
    /// [`Store::latest`] restricted to `types` (the fleet overview reads
    /// the small gauges of every host and must not copy their process or
    /// package lists). Backends with the state in memory override this.
    async fn latest_of_types(&self, agent_id: &str, types: &[&str]) -> Result<Vec<RawEnvelope>> {
        let mut all = self.latest(agent_id).await?;
        all.retain(|e| types.contains(&e.metric_type.as_str()));
        Ok(all)
    }
    /// Seals what is due and applies retention, as of `now`.
    async fn maintenance(&self, now: DateTime<Utc>) -> Result<MaintenanceReport>;

    // -- commands
    async fn enqueue_command(&self, command: NewCommand) -> Result<CommandRecord>;
    /// Marks the oldest queued, unexpired command of the agent delivered
    /// and returns it. Each command is claimed at most once.
    async fn claim_command(
        &self,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CommandRecord>>;
    /// Records the agent's answer: `done` without error, `failed` with one.
    /// A result for another agent's command is [`StoreError::NotFound`].
    async fn complete_command(
        &self,
        agent_id: &str,
        result: CommandResult,
        now: DateTime<Utc>,
    ) -> Result<CommandRecord>;
    async fn get_command(&self, id: &str) -> Result<Option<CommandRecord>>;
    async fn list_commands(&self, agent_id: &str, limit: usize) -> Result<Vec<CommandRecord>>;
    /// Queued commands past `expires_at` become `expired`; delivered ones
    /// older than `delivered_timeout` become `failed` ("agent did not
    /// answer"). Returns the commands it changed, as they are now.
    async fn expire_commands(
        &self,
        now: DateTime<Utc>,
        delivered_timeout: Duration,
    ) -> Result<Vec<CommandRecord>>;
    /// Commands of the agent that are `queued` or `delivered`.
    async fn count_open_commands(&self, agent_id: &str) -> Result<u64>;
    /// Commands queued for the agent at or after `since` (any status).
    async fn count_commands_since(&self, agent_id: &str, since: DateTime<Utc>) -> Result<u64>;

    // -- audit log
    /// Appends an event; returns its id (increasing).
    async fn append_audit(&self, event: NewAuditEvent) -> Result<i64>;
    /// Events newest first, filtered by `query`.
    async fn list_audit(&self, query: AuditQuery) -> Result<Vec<AuditEvent>>;

    /// Makes everything acknowledged durable and stops background work.
    async fn close(&self) -> Result<()>;
}
