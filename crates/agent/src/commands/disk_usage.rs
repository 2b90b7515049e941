//! `DISK_USAGE`: the largest directories and files under a path.

use spectra_protocol::DiskUsageRequest;

use super::{CommandContext, CommandOutcome};

pub async fn run(_ctx: &CommandContext, _request: &DiskUsageRequest) -> CommandOutcome {
    Err("DISK_USAGE is not supported by this agent yet".into())
}
