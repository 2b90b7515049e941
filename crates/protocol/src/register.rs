//! Agent registration (SPEC §3): `POST /api/v1/agent/register`.

use serde::{Deserialize, Serialize};

/// Static facts about the host, sent at registration and kept current.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    /// `linux`, `windows`, ...
    pub os: String,
    /// Distribution id (`debian`, `ubuntu`, `raspbian`...) or Windows edition.
    pub platform: String,
    pub platform_ver: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub ram_total: u64,
    pub agent_version: String,
    /// Seconds since the epoch.
    pub boot_time: i64,
    pub ips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The enrollment token.
    pub token: String,
    pub host: HostInfo,
}

/// `200 {"agent_id", "credential"}`, or `202 {"agent_id", "status": "pending"}`
/// under approval mode. The 202 also carries the `credential` (additive): the
/// agent keeps it at once, and the server refuses it (403) until an
/// administrator approves the agent; from then on the same credential works.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl std::fmt::Debug for RegisterResponse {
    // The credential is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterResponse")
            .field("agent_id", &self.agent_id)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("status", &self.status)
            .finish()
    }
}

/// `POST /api/v1/agent/rotate` answer: the agent's new credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateResponse {
    pub credential: String,
}

impl std::fmt::Debug for RotateResponse {
    // The credential is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateResponse")
            .field("credential", &"<redacted>")
            .finish()
    }
}
