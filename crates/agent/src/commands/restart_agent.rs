//! `RESTART_AGENT`: answered first, then the runtime stops (flushing the
//! sender) and returns [`RestartRequested`]; the `spectra-agent` binary then
//! re-executes itself with the same arguments on unix, or exits with
//! [`RESTART_EXIT_CODE`] elsewhere so a service manager starts it again.
//! An embedder that cannot restart (the server's in-process agent) answers
//! with an explicit error instead.

use super::CommandOutcome;

/// The exit code asking a service manager to restart the agent (non-unix).
pub const RESTART_EXIT_CODE: u8 = 75;

/// Returned (as the error of `run_with_transport`) after a `RESTART_AGENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("restart requested by the server")]
pub struct RestartRequested;

pub fn run(can_restart: bool) -> CommandOutcome {
    if can_restart {
        Ok(serde_json::json!({"status": "restarting"}))
    } else {
        Err("RESTART_AGENT is not supported here: this agent cannot restart itself".into())
    }
}

/// Replaces this process with a fresh copy of itself (same executable,
/// same arguments). Returns only on failure.
#[cfg(unix)]
pub fn exec_self() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    }
}
