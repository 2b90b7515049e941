//! Wires the agent together.
//!
//! - [`run`]: enrolls (or reuses the stored identity), builds the HTTP
//!   transport, then calls [`run_with_transport`].
//! - [`run_with_transport`]: scheduler + sender + command loop over any
//!   [`Transport`]; the server's in-process local agent calls it with its
//!   own transport, so nothing here assumes HTTP.
//!
//! Shutdown order: stop scheduling, then the sender seals the open batch
//! (sent, or spooled if the server is unreachable), then return.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::collectors::agent::AgentCollector;
use crate::collectors::{self, Collector, CollectorKind};
use crate::commands::restart_agent::RestartRequested;
use crate::commands::{self, CommandContext};
use crate::config::AgentConfig;
use crate::debug_server::{self, DebugSources};
use crate::identity::{self, IdentityError};
use crate::lifecycle;
use crate::scheduler::{ScheduledCollector, Scheduler, SystemClock};
use crate::sender::{BatchQueue, Sender, SenderStats, Spool};
use crate::transport::http::build_agent_client;
use crate::transport::Transport;

/// Runs the agent against `config.server` until `shutdown`.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating the state dir {}", config.state_dir.display()))?;
    let trust = identity::server_trust(&config)?;
    let client = build_agent_client(&config.server, &trust)?;
    let identity = match identity::ensure_identity(&config, &client, &shutdown).await {
        Ok(identity) => identity,
        Err(IdentityError::Cancelled) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // Host info may have changed since enrollment (upgrade, new kernel or
    // address): tell the server, without holding up the start.
    let host = crate::collectors::host_info::read_host_info(&config.roots, &config.hostname);
    let (host_client, server, credential) = (
        client.clone(),
        config.server.clone(),
        identity.credential.clone(),
    );
    tokio::spawn(async move {
        match lifecycle::send_host_info(&host_client, &server, &credential, &host).await {
            Ok(()) => tracing::debug!("host info sent"),
            Err(e) => tracing::debug!(error = %e, "host info not sent"),
        }
    });
    let transport = lifecycle::RotatingTransport::new(client, config.state_dir.clone(), identity);
    run_with_transport(config, Arc::new(transport), shutdown).await
}

/// Runs scheduler, sender and command loop over `transport` until
/// `shutdown`. Returns `Err(RestartRequested)` after a `RESTART_AGENT`
/// when `config.commands.allow_restart` is set (the caller restarts).
pub async fn run_with_transport(
    config: AgentConfig,
    transport: Arc<dyn Transport>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let spool_dir = config.spool_dir();
    let spool = Spool::open(&spool_dir, config.sender.spool_max_bytes)
        .with_context(|| format!("opening the spool in {}", spool_dir.display()))?;
    if !spool.is_empty() {
        tracing::info!(
            batches = spool.len(),
            bytes = spool.bytes(),
            "spooled batches from a previous run will be sent first"
        );
    }
    let queue = Arc::new(BatchQueue::new(config.sender.max_batch_envelopes));
    let sender = Sender::new(
        transport.clone(),
        queue.clone(),
        spool,
        config.sender.clone(),
    );

    // Internal stop signal: the caller's shutdown, or a restart request.
    let stop = shutdown.child_token();
    let (restart_tx, mut restart_rx) = mpsc::channel::<()>(1);
    let ctx = CommandContext {
        roots: config.roots.clone(),
        enabled: config.commands.enabled,
        disabled: config.commands.disabled.clone(),
        disk_roots: config.commands.disk_roots.clone(),
        restart: config.commands.allow_restart.then_some(restart_tx),
        timeout: commands::COMMAND_TIMEOUT,
        backoff_initial: config.sender.backoff_initial,
        backoff_max: config.sender.backoff_max,
    };

    let started_at = std::time::Instant::now();
    let scheduler = build_scheduler(&config, sender.stats(), started_at);
    if config.debug {
        let sources = DebugSources {
            collectors: scheduler.stats(),
            sender: sender.stats(),
            queue: queue.clone(),
            started: started_at,
        };
        start_debug_endpoint(config.debug_listen, sources, stop.clone()).await;
    }
    let sender_stop = CancellationToken::new();
    let sender_task = tokio::spawn(sender.run(sender_stop.clone()));
    let commands_task = tokio::spawn(commands::run_command_loop(transport, ctx, stop.clone()));

    tracing::info!(hostname = %config.hostname, "agent running");
    let restart = {
        let scheduling = scheduler.run(queue.as_ref(), stop.clone());
        tokio::pin!(scheduling);
        tokio::select! {
            _ = &mut scheduling => false,
            Some(()) = restart_rx.recv() => {
                tracing::info!("restarting at the server's request");
                stop.cancel();
                scheduling.await;
                true
            }
        }
    };
    // The scheduler returned: `stop` was cancelled (or we cancelled it).
    stop.cancel();
    sender_stop.cancel();
    if let Err(e) = sender_task.await {
        tracing::error!(error = %e, "sender task failed");
    }
    commands_task.abort();
    tracing::info!("agent stopped");
    if restart {
        return Err(RestartRequested.into());
    }
    Ok(())
}

/// Binds the `DEBUG=true` endpoint; a taken port is a warning, not a reason
/// for the agent to stop monitoring.
async fn start_debug_endpoint(
    addr: std::net::SocketAddr,
    sources: DebugSources,
    stop: CancellationToken,
) {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "debug endpoint: GET /debug/vars");
            tokio::spawn(debug_server::serve(listener, sources, stop));
        }
        Err(e) => tracing::warn!(%addr, error = %e, "debug endpoint not started"),
    }
}

/// A scheduler with every collector of the config: enabled ones scheduled
/// at their interval, disabled ones reported once. The `agent` collector
/// reads the scheduler's own stats and the sender's, which only exist here
/// (`collectors::build` makes a standalone one).
fn build_scheduler(
    config: &AgentConfig,
    sender_stats: Arc<SenderStats>,
    started_at: std::time::Instant,
) -> Scheduler<SystemClock> {
    let mut scheduler = Scheduler::new(config.hostname.clone(), SystemClock);
    for kind in CollectorKind::ALL {
        let settings = config.collector(kind);
        if settings.enabled {
            let collector: Box<dyn Collector> = match kind {
                CollectorKind::Agent => Box::new(AgentCollector::new(
                    scheduler.stats(),
                    sender_stats.clone(),
                    started_at,
                )),
                _ => collectors::build_with(kind, &config.roots, &config.collector_options),
            };
            scheduler.add(ScheduledCollector {
                collector,
                interval: settings.interval,
            });
        } else {
            scheduler.add_disabled(kind);
        }
    }
    scheduler
}

/// Resolves on ctrl-c or SIGTERM: how both Spectra binaries learn to shut
/// down gracefully (the server links this crate for its local agent).
pub async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only ctrl-c stops this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
