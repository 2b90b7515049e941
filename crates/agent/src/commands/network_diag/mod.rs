//! `NETWORK_DIAG`: ping, connect, netstat, traceroute.

use spectra_protocol::NetworkDiagRequest;

use super::{CommandContext, CommandOutcome};

pub async fn run(_ctx: &CommandContext, request: &NetworkDiagRequest) -> CommandOutcome {
    Err(format!(
        "NETWORK_DIAG {:?} is not supported by this agent yet",
        request.action
    )
    .to_lowercase())
}
