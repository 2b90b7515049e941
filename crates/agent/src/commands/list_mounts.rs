//! `LIST_MOUNTS` (SPEC Appendix A): `[{"mountpoint", "device", "fstype"}]`.
//! Reading the mount table is file I/O, so it runs on the blocking pool.

use crate::collectors::HostRoots;

use super::CommandOutcome;

pub async fn run(roots: &HostRoots) -> CommandOutcome {
    let roots = roots.clone();
    let mounts =
        tokio::task::spawn_blocking(move || crate::collectors::mounts::read_mounts(&roots))
            .await
            .map_err(|e| format!("LIST_MOUNTS failed: {e}"))?
            .map_err(|e| format!("LIST_MOUNTS failed: {e}"))?;
    serde_json::to_value(mounts).map_err(|e| format!("LIST_MOUNTS result: {e}"))
}
