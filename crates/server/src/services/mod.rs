//! Services: what the HTTP handlers and the local agent call. They hold the
//! rules (limits, validation, wake-ups, statuses) and talk to the store
//! trait; they know nothing of HTTP.
//!
//! - [`ingest`]: `decode_batch` (decompression with caps, JSON, checks) and
//!   storing a batch for the agent that sent it.
//! - [`commands`]: the command queue with in-process long-poll wake-ups.
//! - [`auth`]: secrets, hashing, API-token and agent-credential checks.
//! - [`agents`]: registration, statuses, hostname resolution.
//! - [`stats`]: the server's own counters.
//! - [`audit`]: the audit log.
//! - [`throttle`]: per-address failure throttling (login, enrollment).
//! - [`workloads`]: per-workload series derived from `container_list`.

pub mod agents;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod fleet;
pub mod ingest;
pub mod stats;
pub mod throttle;
pub mod workloads;
