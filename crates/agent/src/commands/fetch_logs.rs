//! `FETCH_LOGS`: entries from the system journal (or syslog files).

use spectra_protocol::LogRequest;

use super::{CommandContext, CommandOutcome};

pub async fn run(_ctx: &CommandContext, _request: &LogRequest) -> CommandOutcome {
    Err("FETCH_LOGS is not supported by this agent yet".into())
}
