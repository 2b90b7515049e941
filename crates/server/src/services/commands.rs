//! The command queue (SPEC §3, §4): queueing typed, validated commands,
//! the agents' long-poll, results, and waiting for a command to finish.
//!
//! The queue itself lives in the store; this module adds in-process wake-ups
//! ([`KeyedNotify`]): queueing a command wakes the agent's long-poll at
//! once, and a result (or an expiry) wakes `GET /api/v1/commands/{id}?wait=`.
//!
//! Limits per agent, checked before queueing: at most
//! `max_open_per_agent` commands queued or running at once, and at most
//! `max_per_minute` queued in any 60 s. Over either → refused
//! ([`CommandServiceError::Throttled`], HTTP 429), audited like every other
//! outcome (see [`super::audit`]).
//!
//! Delivery is at most once: the store marks a command `delivered` when it
//! is claimed, right before the answer is written. If the client goes away
//! between the claim and receiving the answer, the command is lost in
//! flight; it then fails after `command_delivered_timeout` ("agent did not
//! answer"), which the admin sees. Re-delivering instead could run a
//! diagnostic twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use spectra_protocol::{Command, CommandRequest, CommandResult};
use spectra_store::{AgentState, CommandRecord, NewCommand, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::audit::{Actor, Audit, Entry};
use super::stats::Counters;

#[derive(Debug, thiserror::Error)]
pub enum CommandServiceError {
    #[error("{0}")]
    Invalid(String),
    #[error("agent {0} not found")]
    UnknownAgent(String),
    #[error("agent {0} is not active (pending approval or revoked)")]
    AgentNotActive(String),
    #[error("{0}")]
    Throttled(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One [`Notify`] per key (agent id or command id), created on demand and
/// dropped when its last waiter leaves.
#[derive(Default)]
pub struct KeyedNotify {
    entries: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A waiter's handle on a key's [`Notify`]; removes the entry when the last
/// handle is dropped.
pub struct NotifyHandle<'a> {
    owner: &'a KeyedNotify,
    key: String,
    notify: Arc<Notify>,
}

impl std::ops::Deref for NotifyHandle<'_> {
    type Target = Notify;
    fn deref(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for NotifyHandle<'_> {
    fn drop(&mut self) {
        let mut entries = self.owner.lock();
        // The map holds one reference and this handle another: nobody else
        // waits, so the entry can go. Handles are only cloned out under this
        // same lock, so the count cannot grow meanwhile.
        if Arc::strong_count(&self.notify) == 2 {
            entries.remove(&self.key);
        }
    }
}

impl KeyedNotify {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self, key: &str) -> NotifyHandle<'_> {
        let notify = self.lock().entry(key.to_owned()).or_default().clone();
        NotifyHandle {
            owner: self,
            key: key.to_owned(),
            notify,
        }
    }

    /// Wakes every current waiter on `key` (if any).
    pub fn notify(&self, key: &str) {
        if let Some(n) = self.lock().get(key) {
            n.notify_waiters();
        }
    }

    /// How many keys have waiters now.
    pub fn waiting_keys(&self) -> usize {
        self.lock().len()
    }

    /// Wakes every waiter on every key.
    pub fn notify_all(&self) {
        for n in self.lock().values() {
            n.notify_waiters();
        }
    }
}

/// Long-polls one agent may hold open at once.
pub const MAX_LONG_POLLS_PER_AGENT: usize = 2;

/// Timings of the queue.
#[derive(Debug, Clone, Copy)]
pub struct CommandTimings {
    /// Queued commands expire after this.
    pub ttl: Duration,
    /// Delivered commands without an answer fail after this.
    pub delivered_timeout: Duration,
    /// Longest agent long-poll.
    pub long_poll_max: Duration,
    /// Commands queued or delivered at once, per agent.
    pub max_open_per_agent: u64,
    /// Commands queued per agent in any 60 s.
    pub max_per_minute: u64,
}

#[derive(Clone)]
pub struct CommandService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    audit: Audit,
    /// Serialises limit checks with queueing, so two requests racing
    /// cannot both pass the last free slot (queueing is rare: one lock is
    /// enough on one server).
    queue_lock: tokio::sync::Mutex<()>,
    timings: CommandTimings,
    counters: Arc<Counters>,
    agents: KeyedNotify,
    commands: KeyedNotify,
    shutdown: CancellationToken,
}

impl CommandService {
    pub fn new(
        store: Arc<dyn Store>,
        timings: CommandTimings,
        counters: Arc<Counters>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                audit: Audit::new(store.clone()),
                queue_lock: tokio::sync::Mutex::new(()),
                store,
                timings,
                counters,
                agents: KeyedNotify::default(),
                commands: KeyedNotify::default(),
                shutdown,
            }),
        }
    }

    pub fn timings(&self) -> CommandTimings {
        self.inner.timings
    }

    /// The audit log commands write to.
    pub fn audit(&self) -> &Audit {
        &self.inner.audit
    }

    /// How many agents are long-polling right now.
    pub fn polling_agents(&self) -> usize {
        self.inner.agents.waiting_keys()
    }

    /// Validates `request`, checks the agent's limits and queues it;
    /// wakes the agent. Every outcome is audited.
    pub async fn queue(
        &self,
        agent_id: &str,
        request: &CommandRequest,
        actor: &Actor,
    ) -> Result<CommandRecord, CommandServiceError> {
        let result = self.try_queue(agent_id, request, actor).await;
        let detail = serde_json::json!({
            "type": request.command_type().as_str(),
            "payload": request.payload(),
        });
        let (target, outcome) = match &result {
            Ok(record) => (Some(record.id.as_str()), "queued".to_owned()),
            Err(CommandServiceError::Store(e)) => (None, format!("error: {e}")),
            Err(e) => (None, format!("refused: {e}")),
        };
        self.inner
            .audit
            .record(
                actor,
                Entry {
                    action: "command.queue",
                    agent_id: Some(agent_id),
                    target,
                    outcome,
                    detail,
                },
            )
            .await;
        result
    }

    /// Audits a request refused before it reached [`Self::queue`] (a
    /// malformed query string, an unknown hostname).
    pub async fn audit_refusal(
        &self,
        actor: &Actor,
        agent_id: Option<&str>,
        command_type: &str,
        reason: &str,
    ) {
        self.inner
            .audit
            .record(
                actor,
                Entry {
                    action: "command.queue",
                    agent_id,
                    target: None,
                    outcome: format!("refused: {reason}"),
                    detail: serde_json::json!({ "type": command_type }),
                },
            )
            .await;
    }

    async fn try_queue(
        &self,
        agent_id: &str,
        request: &CommandRequest,
        actor: &Actor,
    ) -> Result<CommandRecord, CommandServiceError> {
        request
            .validate()
            .map_err(|e| CommandServiceError::Invalid(e.to_string()))?;
        let inner = &self.inner;
        let agent = inner
            .store
            .get_agent(agent_id)
            .await?
            .ok_or_else(|| CommandServiceError::UnknownAgent(agent_id.to_owned()))?;
        if agent.state != AgentState::Active {
            return Err(CommandServiceError::AgentNotActive(agent_id.to_owned()));
        }
        let _guard = inner.queue_lock.lock().await;
        let now = Utc::now();
        let open = inner.store.count_open_commands(agent_id).await?;
        if open >= inner.timings.max_open_per_agent {
            return Err(CommandServiceError::Throttled(format!(
                "agent {agent_id} already has {open} commands queued or running (limit {}); wait for one to finish",
                inner.timings.max_open_per_agent
            )));
        }
        let recent = inner
            .store
            .count_commands_since(agent_id, now - chrono::Duration::seconds(60))
            .await?;
        if recent >= inner.timings.max_per_minute {
            return Err(CommandServiceError::Throttled(format!(
                "agent {agent_id} was sent {recent} commands in the last minute (limit {}); try again shortly",
                inner.timings.max_per_minute
            )));
        }
        let ttl =
            chrono::Duration::from_std(inner.timings.ttl).unwrap_or(chrono::Duration::minutes(10));
        let record = inner
            .store
            .enqueue_command(NewCommand {
                id: super::auth::generate_id("cmd"),
                agent_id: agent_id.to_owned(),
                command_type: request.command_type().as_str().to_owned(),
                payload: request.payload(),
                requested_by: actor.name.clone(),
                created_at: now,
                expires_at: now + ttl,
            })
            .await?;
        inner.counters.record_command_queued();
        tracing::info!(command_id = %record.id, agent_id, command_type = %record.command_type, requested_by = %actor.name, "command queued");
        inner.agents.notify(agent_id);
        Ok(record)
    }

    /// The agent's long-poll: the next command, waiting up to `wait` (capped
    /// at `long_poll_max`) for one to be queued. `None` when none came, or
    /// at once when the server shuts down.
    pub async fn next_for_agent(
        &self,
        agent_id: &str,
        wait: Duration,
    ) -> Result<Option<Command>, CommandServiceError> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + wait.min(inner.timings.long_poll_max);
        let handle = inner.agents.subscribe(agent_id);
        // The map holds one reference, each waiting poll one more. A real
        // agent has one poll open (two briefly, around a reconnect); more
        // is a misbehaving or cloned credential holding server resources.
        let polls = Arc::strong_count(&handle.notify).saturating_sub(1);
        if polls > MAX_LONG_POLLS_PER_AGENT {
            return Err(CommandServiceError::Throttled(format!(
                "agent {agent_id} already has {} command polls open (limit {MAX_LONG_POLLS_PER_AGENT})",
                polls - 1
            )));
        }
        loop {
            // Register interest before looking, so a command queued between
            // the claim and the wait still wakes us.
            let notified = handle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(record) = inner.store.claim_command(agent_id, Utc::now()).await? {
                tracing::info!(command_id = %record.id, agent_id, "command delivered");
                return Ok(Some(to_wire(record)));
            }
            tokio::select! {
                _ = &mut notified => continue,
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                _ = inner.shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// Records an agent's answer and wakes whoever waits for the command.
    pub async fn complete(
        &self,
        agent_id: &str,
        result: CommandResult,
    ) -> Result<CommandRecord, CommandServiceError> {
        let record = self
            .inner
            .store
            .complete_command(agent_id, result, Utc::now())
            .await?;
        tracing::info!(command_id = %record.id, agent_id, status = ?record.status, "command completed");
        self.audit_end(&Actor::agent(agent_id), &record).await;
        self.inner.commands.notify(&record.id);
        Ok(record)
    }

    /// The command, once it reached a final status or after `wait`.
    pub async fn wait_for(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<Option<CommandRecord>, CommandServiceError> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + wait;
        let handle = inner.commands.subscribe(id);
        loop {
            let notified = handle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = inner.store.get_command(id).await?;
            match &record {
                Some(r) if !r.status.is_final() && !wait.is_zero() => {}
                _ => return Ok(record),
            }
            tokio::select! {
                _ = &mut notified => continue,
                _ = tokio::time::sleep_until(deadline) => return Ok(inner.store.get_command(id).await?),
                _ = inner.shutdown.cancelled() => return Ok(record),
            }
        }
    }

    /// Expires overdue commands, audits and wakes their waiters.
    pub async fn expire_due(&self) -> Result<u64, StoreError> {
        let ended = self
            .inner
            .store
            .expire_commands(Utc::now(), self.inner.timings.delivered_timeout)
            .await?;
        if !ended.is_empty() {
            tracing::info!(count = ended.len(), "commands expired or timed out");
            for record in &ended {
                self.audit_end(&Actor::system(), record).await;
            }
            self.inner.commands.notify_all();
        }
        Ok(ended.len() as u64)
    }

    /// Audits how a command ended (`command.done`, `command.failed`,
    /// `command.expired`), naming who asked for it.
    async fn audit_end(&self, actor: &Actor, record: &CommandRecord) {
        let (action, outcome) = match record.status {
            spectra_store::CommandStatus::Done => ("command.done", "ok".to_owned()),
            spectra_store::CommandStatus::Failed => (
                "command.failed",
                format!(
                    "failed: {}",
                    record.error.as_deref().unwrap_or("no reason given")
                ),
            ),
            spectra_store::CommandStatus::Expired => (
                "command.expired",
                "expired: no agent claimed it in time".to_owned(),
            ),
            // Not an end: nothing to audit.
            _ => return,
        };
        self.inner
            .audit
            .record(
                actor,
                Entry {
                    action,
                    agent_id: Some(&record.agent_id),
                    target: Some(&record.id),
                    outcome,
                    detail: serde_json::json!({
                        "type": record.command_type,
                        "requested_by": record.requested_by,
                    }),
                },
            )
            .await;
    }

    /// Runs [`Self::expire_due`] every `every` until `shutdown`.
    pub async fn run_expiry(self, every: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(e) = self.expire_due().await {
                        tracing::warn!(error = %e, "expiring commands failed");
                    }
                }
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// The queue entry as the agent receives it.
pub fn to_wire(record: CommandRecord) -> Command {
    Command {
        id: record.id,
        command_type: record.command_type,
        payload: record.payload,
        created_at: record.created_at,
        expires_at: record.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keyed_notify_drops_entries_after_the_last_waiter() {
        let n = KeyedNotify::default();
        {
            let a = n.subscribe("k");
            let b = n.subscribe("k");
            assert_eq!(n.lock().len(), 1);
            drop(a);
            assert_eq!(n.lock().len(), 1, "b still waits");
            drop(b);
        }
        assert!(n.lock().is_empty());
    }

    #[tokio::test]
    async fn keyed_notify_wakes_an_enabled_waiter() {
        let n = KeyedNotify::default();
        let h = n.subscribe("agent");
        let notified = h.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        n.notify("other");
        n.notify("agent");
        tokio::time::timeout(Duration::from_secs(5), notified)
            .await
            .expect("woken");
    }
}
