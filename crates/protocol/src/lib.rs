//! Spectra's wire protocol: the JSON the agent and the server exchange.
//!
//! Everything here is part of the contract in SPEC §3 and Appendix A: field
//! names never change, new fields are additive (and optional on the reading
//! side), and enums are append-only.
//!
//! Layout:
//! - [`envelope`]: the metric envelope and batch, and [`MetricData`], the
//!   typed payload of every collector.
//! - [`metrics`]: one payload struct per collector (`cpu`, `memory`, ...).
//! - [`command`]: the command queue's commands, their typed requests and
//!   results (`FETCH_LOGS`, `DISK_USAGE`, `LIST_MOUNTS`, `NETWORK_DIAG`,
//!   `RESTART_AGENT`).
//! - [`register`]: agent registration (enrollment) and host info.
//! - [`status`]: the `collector_status` envelope through which an agent tells
//!   the server that a collector failed, is unsupported, or not yet available.
//!
//! The golden tests in `tests/golden.rs` pin the exact JSON of each type.

pub mod command;
pub mod envelope;
pub mod metrics;
pub mod register;
pub mod status;

pub use command::*;
pub use envelope::*;
pub use metrics::*;
pub use register::*;
pub use status::*;

/// HTTP header carrying a metrics batch's id (SPEC §3).
pub const BATCH_ID_HEADER: &str = "x-spectra-batch-id";

/// Agent endpoint paths (SPEC §3).
pub mod paths {
    pub const REGISTER: &str = "/api/v1/agent/register";
    pub const METRICS: &str = "/api/v1/metrics";
    pub const COMMAND: &str = "/api/v1/agent/command";
    pub const COMMAND_RESULT: &str = "/api/v1/agent/command_result";
    /// `POST`: a new credential for the calling agent (the old one stops working).
    pub const ROTATE: &str = "/api/v1/agent/rotate";
    /// `PUT`: the calling agent's current host info.
    pub const HOST: &str = "/api/v1/agent/host";
}

/// Response header on an agent's command poll: `1` when an administrator
/// asked this agent to rotate its credential (`POST` [`paths::ROTATE`]).
pub const ROTATE_HEADER: &str = "x-spectra-rotate";

/// The version of this crate, sent by agents in their host info.
pub const PROTOCOL_VERSION: &str = env!("CARGO_PKG_VERSION");
