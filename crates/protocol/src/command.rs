//! Commands (SPEC §3): the server's queue holds
//! `{"id", "type", "payload", "created_at", "expires_at"}`; the agent answers
//! with `{"id", "type", "payload", "error"}`.
//!
//! [`Command`] keeps `type` and `payload` as they travel, so an agent can
//! answer a command type it does not know with an explicit error;
//! [`CommandRequest`] is the typed, validated form.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A queued command as delivered to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    #[serde(rename = "type")]
    pub command_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The agent's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub id: String,
    #[serde(rename = "type")]
    pub command_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The command types of SPEC §3 (append-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandType {
    FetchLogs,
    DiskUsage,
    ListMounts,
    NetworkDiag,
    RestartAgent,
}

impl CommandType {
    pub const ALL: [CommandType; 5] = [
        Self::FetchLogs,
        Self::DiskUsage,
        Self::ListMounts,
        Self::NetworkDiag,
        Self::RestartAgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FetchLogs => "FETCH_LOGS",
            Self::DiskUsage => "DISK_USAGE",
            Self::ListMounts => "LIST_MOUNTS",
            Self::NetworkDiag => "NETWORK_DIAG",
            Self::RestartAgent => "RESTART_AGENT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for CommandType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed command request.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandRequest {
    FetchLogs(LogRequest),
    DiskUsage(DiskUsageRequest),
    ListMounts,
    NetworkDiag(NetworkDiagRequest),
    RestartAgent,
}

/// Why a command could not be accepted; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command type `{0}` (expected one of FETCH_LOGS, DISK_USAGE, LIST_MOUNTS, NETWORK_DIAG, RESTART_AGENT)")]
    UnknownType(String),
    #[error("invalid {command} payload: {message}")]
    BadPayload {
        command: CommandType,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CommandRequest {
    pub fn command_type(&self) -> CommandType {
        match self {
            Self::FetchLogs(_) => CommandType::FetchLogs,
            Self::DiskUsage(_) => CommandType::DiskUsage,
            Self::ListMounts => CommandType::ListMounts,
            Self::NetworkDiag(_) => CommandType::NetworkDiag,
            Self::RestartAgent => CommandType::RestartAgent,
        }
    }

    /// The `payload` JSON of this request.
    pub fn payload(&self) -> serde_json::Value {
        let v = match self {
            Self::FetchLogs(r) => serde_json::to_value(r),
            Self::DiskUsage(r) => serde_json::to_value(r),
            Self::NetworkDiag(r) => serde_json::to_value(r),
            Self::ListMounts | Self::RestartAgent => return serde_json::json!({}),
        };
        // Serialising these plain structs to a Value cannot fail.
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Decodes and validates `type` + `payload` as they travel.
    pub fn from_parts(
        command_type: &str,
        payload: &serde_json::Value,
    ) -> Result<Self, CommandError> {
        let t = CommandType::parse(command_type)
            .ok_or_else(|| CommandError::UnknownType(command_type.to_owned()))?;
        let empty = serde_json::json!({});
        let payload = if payload.is_null() { &empty } else { payload };
        let bad = |e: serde_json::Error| CommandError::BadPayload {
            command: t,
            message: e.to_string(),
        };
        let req = match t {
            CommandType::FetchLogs => {
                Self::FetchLogs(LogRequest::deserialize(payload).map_err(bad)?)
            }
            CommandType::DiskUsage => {
                Self::DiskUsage(DiskUsageRequest::deserialize(payload).map_err(bad)?)
            }
            CommandType::ListMounts => Self::ListMounts,
            CommandType::NetworkDiag => {
                Self::NetworkDiag(NetworkDiagRequest::deserialize(payload).map_err(bad)?)
            }
            CommandType::RestartAgent => Self::RestartAgent,
        };
        req.validate()?;
        Ok(req)
    }

    /// Checks every field a user can set (SPEC §6: typed requests, never
    /// shell strings). Both the server (before queueing) and the agent
    /// (before running) call this.
    pub fn validate(&self) -> Result<(), CommandError> {
        match self {
            Self::FetchLogs(r) => {
                if let Some(n) = r.max_entries {
                    check_range("max_entries", n as u64, 1, MAX_LOG_ENTRIES as u64)?;
                }
                if let Some(unit) = &r.unit {
                    validate_unit_name(unit)?;
                }
                if let Some(g) = &r.grep {
                    if g.len() > 256 {
                        return Err(CommandError::Invalid("grep: at most 256 characters".into()));
                    }
                }
                if let Some(c) = &r.container {
                    validate_container_ref(c)?;
                }
                Ok(())
            }
            Self::DiskUsage(r) => {
                if let Some(p) = &r.path {
                    validate_abs_path(p)?;
                }
                if let Some(n) = r.top_n {
                    check_range("top_n", n as u64, 1, MAX_TOP_N as u64)?;
                }
                Ok(())
            }
            Self::NetworkDiag(r) => r.validate(),
            Self::ListMounts | Self::RestartAgent => Ok(()),
        }
    }
}

pub const MAX_TOP_N: u32 = 1000;
pub const MAX_LOG_ENTRIES: u32 = 10_000;
pub const MAX_PING_COUNT: u32 = 100;

fn check_range(name: &str, v: u64, min: u64, max: u64) -> Result<(), CommandError> {
    if v < min || v > max {
        return Err(CommandError::Invalid(format!(
            "{name} must be between {min} and {max}, got {v}"
        )));
    }
    Ok(())
}

/// Severity, as syslog names it (SPEC Appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    /// Parses a level name case-insensitively (also `WARN`, `ERR`, `CRIT`, `EMERG`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "NOTICE" => Self::Notice,
            "WARNING" | "WARN" => Self::Warning,
            "ERROR" | "ERR" => Self::Error,
            "CRITICAL" | "CRIT" => Self::Critical,
            "ALERT" => Self::Alert,
            "EMERGENCY" | "EMERG" => Self::Emergency,
            _ => return None,
        })
    }
}

/// `FETCH_LOGS` payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<LogLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u32>,
    /// Plain substring filter on the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grep: Option<String>,
    /// A container's logs (Docker/Podman id or name) instead of the system
    /// journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// `DISK_USAGE` payload; no path lists the mounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskUsageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_n: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkAction {
    Ping,
    Connect,
    Netstat,
    Traceroute,
}

impl NetworkAction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ping" => Some(Self::Ping),
            "connect" => Some(Self::Connect),
            "netstat" => Some(Self::Netstat),
            "traceroute" => Some(Self::Traceroute),
            _ => None,
        }
    }
}

/// `NETWORK_DIAG` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDiagRequest {
    pub action: NetworkAction,
    /// Hostname or IP literal; for `connect` also `host:port` / `[v6]:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// ping: gap between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// ping: ICMP payload bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u16>,
    /// traceroute: highest TTL tried (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u8>,
    /// traceroute: probes per hop (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u8>,
    /// traceroute: probe protocol (default udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TraceProtocol>,
}

/// How traceroute probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    Udp,
    Icmp,
}

/// Bounds a user can set on `NETWORK_DIAG` requests.
pub const MAX_PING_SIZE: u16 = 65_000;
pub const MIN_PING_INTERVAL_MS: u64 = 200;
pub const MAX_TRACE_HOPS: u8 = 64;
pub const MAX_TRACE_PROBES: u8 = 10;

impl NetworkDiagRequest {
    /// A request with only `action` and `target` set.
    pub fn new(action: NetworkAction, target: Option<String>) -> Self {
        Self {
            action,
            target,
            count: None,
            port: None,
            timeout_ms: None,
            interval_ms: None,
            size: None,
            max_hops: None,
            probes: None,
            protocol: None,
        }
    }

    pub fn validate(&self) -> Result<(), CommandError> {
        if let Some(c) = self.count {
            check_range("count", c as u64, 1, MAX_PING_COUNT as u64)?;
        }
        if let Some(t) = self.timeout_ms {
            check_range("timeout_ms", t, 1, 60_000)?;
        }
        if let Some(i) = self.interval_ms {
            check_range("interval_ms", i, MIN_PING_INTERVAL_MS, 60_000)?;
        }
        if let Some(n) = self.size {
            check_range("size", n as u64, 0, MAX_PING_SIZE as u64)?;
        }
        if let Some(h) = self.max_hops {
            check_range("max_hops", h as u64, 1, MAX_TRACE_HOPS as u64)?;
        }
        if let Some(p) = self.probes {
            check_range("probes", p as u64, 1, MAX_TRACE_PROBES as u64)?;
        }
        if self.port == Some(0) {
            return Err(CommandError::Invalid(
                "port must be between 1 and 65535, got 0".into(),
            ));
        }
        match self.action {
            NetworkAction::Netstat => Ok(()),
            NetworkAction::Ping | NetworkAction::Traceroute => {
                let t = self.target.as_deref().ok_or_else(|| {
                    CommandError::Invalid(
                        format!("{:?} needs a target", self.action).to_lowercase(),
                    )
                })?;
                validate_target(t)
            }
            NetworkAction::Connect => {
                let t = self
                    .target
                    .as_deref()
                    .ok_or_else(|| CommandError::Invalid("connect needs a target".into()))?;
                let (host, port) = split_host_port(t)?;
                validate_target(host)?;
                match (port, self.port) {
                    (None, None) => Err(CommandError::Invalid(
                        "connect needs a port (target host:port, or port)".into(),
                    )),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Splits `host:port` / `[v6]:port`; a bare host or IPv6 literal has no port.
pub fn split_host_port(target: &str) -> Result<(&str, Option<u16>), CommandError> {
    let bad_port =
        |p: &str| CommandError::Invalid(format!("port must be between 1 and 65535, got `{p}`"));
    if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| CommandError::Invalid(format!("`{target}`: missing `]`")))?;
        return match after.strip_prefix(':') {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok((host, Some(n))),
                _ => Err(bad_port(p)),
            },
            None if after.is_empty() => Ok((host, None)),
            None => Err(CommandError::Invalid(format!(
                "`{target}` is not host:port"
            ))),
        };
    }
    if target.matches(':').count() == 1 {
        let (host, p) = target.split_once(':').unwrap_or((target, ""));
        return match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok((host, Some(n))),
            _ => Err(bad_port(p)),
        };
    }
    Ok((target, None))
}

/// A target is an IP literal or a DNS hostname (RFC 1123 labels): never an
/// option (`-f`), a shell fragment, or longer than 253 characters.
pub fn validate_target(target: &str) -> Result<(), CommandError> {
    if target.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let err = |why: &str| {
        let shown: String = target.chars().take(64).collect();
        CommandError::Invalid(format!(
            "target `{shown}` is not a hostname or IP address: {why}"
        ))
    };
    if target.is_empty() {
        return Err(err("empty"));
    }
    if target.len() > 253 {
        return Err(err("longer than 253 characters"));
    }
    let name = target.strip_suffix('.').unwrap_or(target);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(err("each label must be 1-63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err("only letters, digits, '-' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(err("a label cannot start or end with '-'"));
        }
    }
    Ok(())
}

/// An absolute path without `..`, NUL or control characters.
pub fn validate_abs_path(path: &str) -> Result<(), CommandError> {
    let err = |why: &str| {
        CommandError::Invalid(format!(
            "path `{}`: {why}",
            path.chars().take(128).collect::<String>()
        ))
    };
    if path.len() > 4096 {
        return Err(err("longer than 4096 bytes"));
    }
    let absolute = path.starts_with('/') || is_windows_absolute(path);
    if !absolute {
        return Err(err("must be absolute"));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(err("contains control characters"));
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Err(err("must not contain `..`"));
    }
    Ok(())
}

fn is_windows_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// A container id or name as Docker and Podman allow them
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters).
pub fn validate_container_ref(c: &str) -> Result<(), CommandError> {
    let ok = !c.is_empty()
        && c.len() <= 128
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CommandError::Invalid(format!(
            "container `{}` is not a container id or name",
            c.chars().take(64).collect::<String>()
        )))
    }
}

fn validate_unit_name(unit: &str) -> Result<(), CommandError> {
    let ok = !unit.is_empty()
        && unit.len() <= 256
        && !unit.starts_with('-')
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:\\".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CommandError::Invalid(format!(
            "unit `{}` is not a valid unit name",
            unit.chars().take(64).collect::<String>()
        )))
    }
}

// ---- results (Appendix A) ----

/// One `FETCH_LOGS` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub timestamp: DateTime<Utc>,
    pub source: String,
    pub level: LogLevel,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
}

/// `DISK_USAGE` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskUsageReport {
    pub root: String,
    pub top_dirs: Vec<PathUsage>,
    pub top_files: Vec<PathUsage>,
    pub scanned_dirs: u64,
    pub scanned_files: u64,
    pub error_count: u64,
    pub partial: bool,
    pub duration_ms: u64,
    pub scanned_at: DateTime<Utc>,
    /// Bytes under `root` (hard links counted once).
    #[serde(default)]
    pub total_size: u64,
    /// Why the result is partial (`time budget of 20s reached`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
    /// The first unreadable entries, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PathError>,
    /// Directories under `root` on another filesystem: not descended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_mounts: Vec<String>,
}

/// An entry a scan could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathError {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathUsage {
    pub path: String,
    pub size: u64,
    /// Files under a directory (1 for a file).
    pub count: u64,
}

/// One `LIST_MOUNTS` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
}

/// `NETWORK_DIAG` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkDiagResult {
    pub action: NetworkAction,
    #[serde(default)]
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_results: Option<Vec<PingResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netstat: Option<Vec<NetstatEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<Vec<TracerouteHop>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_output: Option<String>,
    /// ping: loss and RTT statistics over all probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_summary: Option<PingSummary>,
    /// The address `target` resolved to, where one was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

/// `ping` totals, as `ping`'s last two lines give them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingSummary {
    pub sent: u32,
    pub received: u32,
    pub loss_pct: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdev_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingResult {
    pub seq: u32,
    pub success: bool,
    /// Nanoseconds, as the Go agent sent it.
    pub rtt: u64,
    pub rtt_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(default)]
    pub response: String,
    #[serde(default)]
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetstatEntry {
    pub proto: String,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: String,
    pub remote_port: u16,
    pub state: String,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracerouteHop {
    pub hop: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// One entry per probe; `null` where the probe timed out.
    pub rtt_ms: Vec<Option<f64>>,
    /// Whether this hop is the destination.
    #[serde(default)]
    pub reached: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectResult {
    pub address: String,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `connected`, `refused`, `timeout`, `unreachable` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_hostile_targets_with_reason() {
        for bad in [
            ";rm -rf /",
            "-f",
            "$(id)",
            "a b",
            "",
            &"a".repeat(300),
            "x..y",
            "-lead.example",
        ] {
            let e = validate_target(bad).unwrap_err().to_string();
            assert!(e.contains("not a hostname or IP"), "{bad}: {e}");
        }
        for good in [
            "127.0.0.1",
            "::1",
            "example.com",
            "web-01",
            "a.b.c.",
            "fe80::1",
        ] {
            validate_target(good).unwrap();
        }
    }

    #[test]
    fn rejects_relative_and_dotdot_paths() {
        assert!(validate_abs_path("var/log").is_err());
        assert!(validate_abs_path("/var/../etc").is_err());
        assert!(validate_abs_path("/var/log\n").is_err());
        validate_abs_path("/var/log").unwrap();
        validate_abs_path("C:\\Users").unwrap();
    }

    #[test]
    fn splits_host_port_forms() {
        assert_eq!(
            split_host_port("example.com:443").unwrap(),
            ("example.com", Some(443))
        );
        assert_eq!(split_host_port("[::1]:22").unwrap(), ("::1", Some(22)));
        assert_eq!(split_host_port("::1").unwrap(), ("::1", None));
        assert!(split_host_port("h:0").is_err());
        assert!(split_host_port("h:99999").is_err());
    }

    #[test]
    fn unknown_command_type_is_named() {
        let e = CommandRequest::from_parts("FORMAT_DISK", &serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("FORMAT_DISK"));
    }

    #[test]
    fn top_n_out_of_range_is_rejected() {
        let e =
            CommandRequest::from_parts("DISK_USAGE", &serde_json::json!({"path": "/", "top_n": 0}))
                .unwrap_err();
        assert!(e.to_string().contains("top_n"), "{e}");
    }

    #[test]
    fn unknown_payload_field_is_rejected() {
        let e = CommandRequest::from_parts(
            "NETWORK_DIAG",
            &serde_json::json!({"action": "ping", "target": "x", "shell": "id"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("shell"), "{e}");
    }
}
