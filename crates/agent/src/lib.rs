//! The Spectra agent: collects host metrics and sends them to the server,
//! and runs the server's diagnostic commands.
//!
//! Layout:
//! - [`config`]: the one config struct, layered defaults < TOML < env < CLI.
//! - [`collectors`]: one module per domain (cpu, memory, system, ...), each
//!   with pure `parse_*` functions and per-OS `read_*` parts.
//! - [`scheduler`]: fires each collector on its interval boundary; a failing
//!   collector never stops the others, and its error reaches the server as a
//!   `collector_status` envelope.
//! - [`sender`]: batches envelopes, compresses them (gzip or zstd), sends them
//!   with capped exponential backoff and jitter, and spools them to a bounded
//!   on-disk queue while the server is unreachable.
//! - [`identity`]: enrollment with `SPECTRA_TOKEN` and the credential kept in
//!   the state dir.
//! - [`transport`]: the [`transport::Transport`] trait (HTTP here; the
//!   server's in-process agent brings its own).
//! - [`commands`]: the long-poll command loop and the diagnostics it runs.
//! - [`stats`]: per-collector runs, failures and durations.
//! - [`debug_server`]: the `DEBUG=true` endpoint on 127.0.0.1:6060.
//! - [`runtime`]: wires it all together: `run` and `run_with_transport`.

pub mod collectors;
pub mod commands;
pub mod config;
pub mod debug_server;
pub mod identity;
pub mod lifecycle;
pub mod runtime;
pub mod scheduler;
pub mod sender;
pub mod stats;
pub mod transport;
