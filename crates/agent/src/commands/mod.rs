//! The command loop (SPEC §3): long-polls the server for commands, runs
//! each in its own task with a timeout, and always answers, even when the
//! command fails or is not supported.
//!
//! One module per command: [`fetch_logs`], [`disk_usage`], [`list_mounts`],
//! [`network_diag`], [`restart_agent`]. Policy (SPEC §6) is applied here
//! before any of them runs: diagnostics off, a command type disabled.

pub mod disk_usage;
pub mod fetch_logs;
pub mod list_mounts;
pub mod network_diag;
pub mod restart_agent;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spectra_protocol::{Command, CommandRequest, CommandResult, CommandType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::collectors::HostRoots;
use crate::sender::backoff_delay;
use crate::transport::{Transport, TransportError};

/// Longest any command may run before it is answered with a timeout error.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The shortest gap between two polls that came back empty.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What commands may use.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub roots: HostRoots,
    /// `false`: every diagnostic is refused (SPEC §6).
    pub enabled: bool,
    /// Command types refused by configuration.
    pub disabled: BTreeSet<CommandType>,
    /// `DISK_USAGE` scans only under these host paths.
    pub disk_roots: Vec<PathBuf>,
    /// `Some` when this process can restart itself: the runtime listens.
    pub restart: Option<mpsc::Sender<()>>,
    pub timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// A command's outcome before it becomes a [`CommandResult`].
pub type CommandOutcome = Result<serde_json::Value, String>;

/// Long-polls and dispatches until `shutdown`.
pub async fn run_command_loop(
    transport: Arc<dyn Transport>,
    ctx: CommandContext,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let polled_at = tokio::time::Instant::now();
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = transport.next_command() => r,
        };
        let delay = match polled {
            Ok(Some(command)) => {
                failures = 0;
                tracing::info!(command_id = %command.id, command_type = %command.command_type, "command received");
                let transport = transport.clone();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let result = execute(&ctx, &command).await;
                    if let Err(e) = transport.send_result(&result).await {
                        tracing::warn!(command_id = %command.id, error = %e, "cannot send command result");
                    }
                    // RESTART_AGENT restarts only after its answer is out.
                    if result.error.is_none()
                        && command.command_type == CommandType::RestartAgent.as_str()
                    {
                        if let Some(tx) = &ctx.restart {
                            let _ = tx.send(()).await;
                        }
                    }
                });
                continue;
            }
            Ok(None) => {
                failures = 0;
                // A long poll normally lasts ~30 s; a transport that answers
                // "nothing" at once must not turn this into a busy loop.
                let elapsed = polled_at.elapsed();
                if elapsed >= MIN_POLL_INTERVAL {
                    continue;
                }
                MIN_POLL_INTERVAL - elapsed
            }
            Err(e) => {
                let delay = backoff_delay(
                    failures,
                    ctx.backoff_initial,
                    ctx.backoff_max,
                    &mut rand::thread_rng(),
                );
                failures = failures.saturating_add(1);
                match e {
                    // Refusals are logged once per streak (a pending agent is
                    // refused until approved); the sender says it too.
                    TransportError::Unavailable(_) => {
                        tracing::debug!(error = %e, "command poll failed")
                    }
                    _ if failures == 1 => tracing::warn!(error = %e, "command poll refused"),
                    _ => tracing::debug!(error = %e, "command poll refused"),
                }
                delay
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Validates, runs (with the context's timeout) and answers one command.
pub async fn execute(ctx: &CommandContext, command: &Command) -> CommandResult {
    let outcome = match tokio::time::timeout(ctx.timeout, dispatch(ctx, command)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "{} timed out after {}s",
            command.command_type,
            ctx.timeout.as_secs()
        )),
    };
    let (payload, error) = match outcome {
        Ok(payload) => (payload, None),
        Err(message) => {
            tracing::info!(command_id = %command.id, command_type = %command.command_type, error = %message, "command failed");
            (serde_json::Value::Null, Some(message))
        }
    };
    CommandResult {
        id: command.id.clone(),
        command_type: command.command_type.clone(),
        payload,
        error,
    }
}

async fn dispatch(ctx: &CommandContext, command: &Command) -> CommandOutcome {
    let request = CommandRequest::from_parts(&command.command_type, &command.payload)
        .map_err(|e| e.to_string())?;
    if !ctx.enabled {
        return Err("diagnostics are disabled on this agent".into());
    }
    let t = request.command_type();
    if ctx.disabled.contains(&t) {
        return Err(format!(
            "{t} is disabled on this agent by its configuration"
        ));
    }
    match request {
        CommandRequest::FetchLogs(r) => fetch_logs::run(ctx, &r).await,
        CommandRequest::DiskUsage(r) => disk_usage::run(ctx, &r).await,
        CommandRequest::ListMounts => list_mounts::run(&ctx.roots).await,
        CommandRequest::NetworkDiag(r) => network_diag::run(ctx, &r).await,
        CommandRequest::RestartAgent => restart_agent::run(ctx.restart.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ctx(enabled: bool) -> CommandContext {
        CommandContext {
            roots: HostRoots::default(),
            enabled,
            disabled: BTreeSet::new(),
            disk_roots: vec![PathBuf::from("/")],
            restart: None,
            timeout: COMMAND_TIMEOUT,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }

    fn command(t: &str, payload: serde_json::Value) -> Command {
        Command {
            id: "c1".into(),
            command_type: t.into(),
            payload,
            created_at: Utc::now(),
            expires_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_disabled_command_type_is_refused_by_name() {
        let mut c = ctx(true);
        c.disabled.insert(CommandType::DiskUsage);
        let r = execute(&c, &command("DISK_USAGE", serde_json::json!({"path": "/"}))).await;
        assert_eq!(r.id, "c1");
        assert_eq!(
            r.error.as_deref(),
            Some("DISK_USAGE is disabled on this agent by its configuration")
        );
        // Other types still run.
        let r = execute(&c, &command("LIST_MOUNTS", serde_json::Value::Null)).await;
        assert!(r.error.is_none(), "{:?}", r.error);
    }

    #[tokio::test]
    async fn unknown_type_is_named() {
        let r = execute(&ctx(true), &command("FORMAT_DISK", serde_json::Value::Null)).await;
        assert!(r.error.unwrap().contains("FORMAT_DISK"));
    }

    #[tokio::test]
    async fn invalid_payload_is_answered_with_the_reason() {
        let r = execute(
            &ctx(true),
            &command(
                "NETWORK_DIAG",
                serde_json::json!({"action": "ping", "target": ";id"}),
            ),
        )
        .await;
        assert!(r.error.unwrap().contains("not a hostname"));
    }

    #[tokio::test]
    async fn disabled_diagnostics_are_refused() {
        let r = execute(
            &ctx(false),
            &command("LIST_MOUNTS", serde_json::Value::Null),
        )
        .await;
        assert_eq!(
            r.error.as_deref(),
            Some("diagnostics are disabled on this agent")
        );
    }

    #[tokio::test]
    async fn restart_without_a_restarter_is_not_supported() {
        let r = execute(
            &ctx(true),
            &command("RESTART_AGENT", serde_json::Value::Null),
        )
        .await;
        assert!(r.error.unwrap().contains("cannot restart itself"));
    }
}
