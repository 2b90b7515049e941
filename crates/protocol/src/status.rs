//! `collector_status`: how the agent tells the server that a collector is
//! not producing data, and why. Sent when a collector's state changes (and
//! again every hour while it stays bad), so "no data" is never silent.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorState {
    /// Collecting normally (sent when a collector recovers).
    Ok,
    /// The last run failed; `message` says why.
    Error,
    /// Cannot run on this host (no systemd, not a Raspberry Pi, no WiFi...).
    Unsupported,
    /// This agent version does not implement the collector yet.
    NotImplemented,
    /// Turned off in the agent's configuration.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorStatus {
    pub collector: String,
    pub state: CollectorState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
