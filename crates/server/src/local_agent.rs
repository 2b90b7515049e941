//! The in-process local agent (SPEC §1): the server monitors its own host
//! by running the real agent runtime with a [`LocalTransport`] that calls
//! the server's services directly (decode + ingest, long-poll, results):
//! the same checks as over HTTP, without the round-trip or a credential.
//!
//! The agent registers once (`local: true`); its id is kept in the store's
//! settings under [`LOCAL_AGENT_ID_KEY`], so restarts keep its identity and
//! history. Its state dir (spool) is `<data-dir>/local-agent`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use spectra_agent::config::{AgentConfig, CliOverrides};
use spectra_agent::transport::{EncodedBatch, Encoding, Transport, TransportError};
use spectra_protocol::{Command, CommandResult, HostInfo};
use spectra_store::{AgentState, NewAgent, Store, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::services::auth::{generate_id, generate_secret, hash_secret};
use crate::services::commands::{CommandService, CommandServiceError};
use crate::services::ingest::{BodyEncoding, IngestError, IngestService};
use crate::state::AppState;

/// Store setting holding the local agent's id.
pub const LOCAL_AGENT_ID_KEY: &str = "local_agent_id";

#[derive(Debug, thiserror::Error)]
pub enum LocalAgentError {
    #[error("configuring the local agent: {0}")]
    Config(String),
    #[error("registering the local agent: {0}")]
    Store(#[from] StoreError),
}

/// Calls the server's services in-process.
pub struct LocalTransport {
    agent_id: String,
    ingest: IngestService,
    commands: CommandService,
}

impl LocalTransport {
    pub fn new(agent_id: String, ingest: IngestService, commands: CommandService) -> Self {
        Self {
            agent_id,
            ingest,
            commands,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> TransportError {
    TransportError::Unavailable(e.to_string())
}

#[async_trait]
impl Transport for LocalTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> Result<(), TransportError> {
        let encoding = match batch.encoding {
            Encoding::Gzip => BodyEncoding::Gzip,
            Encoding::Zstd => BodyEncoding::Zstd,
            Encoding::Identity => BodyEncoding::Identity,
        };
        match self
            .ingest
            .ingest_batch(
                &self.agent_id,
                &batch.id,
                encoding,
                Bytes::copy_from_slice(&batch.body),
            )
            .await
        {
            Ok(_) => Ok(()),
            // The store is closing or failing: keep the batch (spool) and retry.
            Err(e @ (IngestError::Store(_) | IngestError::Internal(_))) => Err(unavailable(e)),
            Err(e) => Err(TransportError::Rejected {
                status: 400,
                message: e.to_string(),
            }),
        }
    }

    async fn next_command(&self) -> Result<Option<Command>, TransportError> {
        let wait = self.commands.timings().long_poll_max;
        self.commands
            .next_for_agent(&self.agent_id, wait)
            .await
            .map_err(unavailable)
    }

    async fn send_result(&self, result: &CommandResult) -> Result<(), TransportError> {
        match self.commands.complete(&self.agent_id, result.clone()).await {
            Ok(_) => Ok(()),
            Err(e @ CommandServiceError::Store(StoreError::NotFound(_))) => {
                Err(TransportError::Rejected {
                    status: 404,
                    message: e.to_string(),
                })
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// The local agent's id: the one registered before, or a new registration.
/// Its host info is refreshed either way.
pub async fn ensure_local_agent(store: &dyn Store, host: HostInfo) -> Result<String, StoreError> {
    if let Some(id) = store.get_setting(LOCAL_AGENT_ID_KEY).await? {
        if store.get_agent(&id).await?.is_some() {
            store.update_agent_host(&id, host).await?;
            return Ok(id);
        }
    }
    let agent = store
        .create_agent(NewAgent {
            id: generate_id("agt"),
            host,
            labels: BTreeMap::new(),
            // It never authenticates; a random credential nobody knows.
            credential_hash: hash_secret(&generate_secret()),
            state: AgentState::Active,
            local: true,
            created_at: Utc::now(),
        })
        .await?;
    store.set_setting(LOCAL_AGENT_ID_KEY, &agent.id).await?;
    tracing::info!(agent_id = %agent.id, hostname = %agent.hostname, "registered the local agent");
    Ok(agent.id)
}

/// The local agent's configuration: default collectors, state in
/// `<data_dir>/local-agent`, hostname detected. Only the host-root and
/// hostname variables of the agent apply (`SPECTRA_PROCFS`, `SPECTRA_SYSFS`,
/// `SPECTRA_ROOTFS`, `SPECTRA_HOSTNAME`): the server's host is this one.
pub fn build_local_config(
    data_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<AgentConfig, LocalAgentError> {
    const PASSED: &[&str] = &[
        "SPECTRA_PROCFS",
        "SPECTRA_SYSFS",
        "SPECTRA_ROOTFS",
        "SPECTRA_HOSTNAME",
    ];
    let filtered = |name: &str| {
        if PASSED.contains(&name) {
            env(name)
        } else {
            None
        }
    };
    let cli = CliOverrides {
        state_dir: Some(data_dir.join("local-agent")),
        ..CliOverrides::default()
    };
    let mut config = AgentConfig::from_sources(None, &filtered, &cli)
        .map_err(|e| LocalAgentError::Config(e.to_string()))?;
    // Restarting the agent would mean restarting the server: refuse it.
    config.commands.allow_restart = false;
    Ok(config)
}

/// Registers (once) and starts the local agent; the task ends after
/// `shutdown`, once the agent has flushed what it collected.
pub async fn start_local_agent(
    state: &AppState,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, LocalAgentError> {
    let data_dir = state.settings.data_dir.clone();
    let (config, host) = tokio::task::spawn_blocking(move || {
        let config = build_local_config(&data_dir, |k| std::env::var(k).ok())?;
        let host =
            spectra_agent::collectors::host_info::read_host_info(&config.roots, &config.hostname);
        Ok::<_, LocalAgentError>((config, host))
    })
    .await
    .map_err(|e| LocalAgentError::Config(e.to_string()))??;
    std::fs::create_dir_all(&config.state_dir).map_err(|e| {
        LocalAgentError::Config(format!("creating {}: {e}", config.state_dir.display()))
    })?;
    let agent_id = ensure_local_agent(state.store.as_ref(), host).await?;
    let transport: Arc<dyn Transport> = Arc::new(LocalTransport::new(
        agent_id.clone(),
        state.ingest.clone(),
        state.commands.clone(),
    ));
    Ok(tokio::spawn(async move {
        match spectra_agent::runtime::run_with_transport(config, transport, shutdown).await {
            Ok(()) => tracing::info!(agent_id, "local agent stopped"),
            Err(e) => tracing::error!(agent_id, error = format!("{e:#}"), "local agent failed"),
        }
    }))
}
