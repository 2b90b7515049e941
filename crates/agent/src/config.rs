//! The agent's one config struct, [`AgentConfig`], layered
//! defaults < TOML file (`--config`) < environment < CLI flags (STYLE.md).
//!
//! [`AgentConfig::from_sources`] is pure: it takes the file's text, an
//! environment lookup and the CLI overrides, so tests never touch the
//! process environment. [`AgentConfig::load`] is the I/O wrapper the binary
//! calls. Every default is written once, in [`defaults`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::collectors::{CollectorKind, CollectorOptions, HostRoots};
use crate::transport::tls::{split_token_pin, Fingerprint};
use crate::transport::Encoding;

/// Every default of the agent, in one place.
pub mod defaults {
    use std::time::Duration;

    pub const SERVER: &str = "http://127.0.0.1:8080";
    pub const PROCFS: &str = "/proc";
    pub const SYSFS: &str = "/sys";
    pub const ROOTFS: &str = "/";
    /// SPEC §2: the `DEBUG=true` endpoint.
    pub const DEBUG_LISTEN: &str = "127.0.0.1:6060";
    pub const ROOT_STATE_DIR: &str = "/var/lib/spectra-agent";
    pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
    /// A 5 s cycle of every collector is far below this; the cap only bounds
    /// memory when something floods the queue.
    pub const MAX_BATCH_ENVELOPES: usize = 1000;
    pub const SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;
    pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
    pub const COMMANDS_ENABLED: bool = true;
}

/// A configuration error; the message says which setting and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("reading config file {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

/// One collector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorSettings {
    pub enabled: bool,
    pub interval: Duration,
}

/// `[sender]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderSettings {
    pub compression: Encoding,
    pub flush_interval: Duration,
    pub max_batch_envelopes: usize,
    pub spool_max_bytes: u64,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// `[commands]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    /// `false` refuses every diagnostic (SPEC §6).
    pub enabled: bool,
    /// Command types refused even when diagnostics are enabled
    /// (`disabled = ["FETCH_LOGS"]`).
    pub disabled: std::collections::BTreeSet<spectra_protocol::CommandType>,
    /// `DISK_USAGE` may only scan under these directories (default `/`,
    /// i.e. anywhere on the host). Paths are as the host sees them; the
    /// agent maps them under its root filesystem.
    pub disk_roots: Vec<PathBuf>,
    /// Whether `RESTART_AGENT` may restart this process. Not a file setting:
    /// the `spectra-agent` binary turns it on (it can re-exec itself); an
    /// embedder such as the server's in-process agent leaves it off, and the
    /// command is then answered as not supported.
    pub allow_restart: bool,
}

/// The agent's configuration, fully resolved.
#[derive(Clone)]
pub struct AgentConfig {
    pub server: String,
    /// Enrollment token (secret: redacted from `Debug`), without the
    /// `#sha256:...` pin it may carry.
    pub token: Option<String>,
    /// Trust exactly the CA certificates in this PEM file (`SPECTRA_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Accept only a server certificate with this SHA-256
    /// (`SPECTRA_SERVER_FINGERPRINT`, or `<token>#sha256:<hex>`).
    pub server_fingerprint: Option<Fingerprint>,
    pub hostname: String,
    pub state_dir: PathBuf,
    pub roots: HostRoots,
    pub debug: bool,
    /// Where the `DEBUG=true` endpoint listens (loopback only).
    pub debug_listen: std::net::SocketAddr,
    /// Settings for every [`CollectorKind`].
    pub collectors: BTreeMap<CollectorKind, CollectorSettings>,
    /// Collector-specific settings (`top_n`, `include_tmpfs`).
    pub collector_options: CollectorOptions,
    pub sender: SenderSettings,
    pub commands: CommandSettings,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("server_fingerprint", &self.server_fingerprint)
            .field("hostname", &self.hostname)
            .field("state_dir", &self.state_dir)
            .field("roots", &self.roots)
            .field("debug", &self.debug)
            .field("debug_listen", &self.debug_listen)
            .field("collectors", &self.collectors)
            .field("collector_options", &self.collector_options)
            .field("sender", &self.sender)
            .field("commands", &self.commands)
            .finish()
    }
}

/// Command-line flags; `None`/`false` leaves the lower layers alone.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    /// Only used to name the file in error messages (the caller reads it).
    pub config: Option<PathBuf>,
    pub server: Option<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub hostname: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub procfs: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub rootfs: Option<PathBuf>,
    pub debug: bool,
}

// ---- the TOML file's shape ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    server_fingerprint: Option<String>,
    hostname: Option<String>,
    state_dir: Option<PathBuf>,
    procfs: Option<PathBuf>,
    sysfs: Option<PathBuf>,
    rootfs: Option<PathBuf>,
    debug: Option<bool>,
    debug_listen: Option<String>,
    #[serde(default)]
    collectors: BTreeMap<String, FileCollector>,
    #[serde(default)]
    sender: FileSender,
    #[serde(default)]
    commands: FileCommands,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCollector {
    enabled: Option<bool>,
    interval: Option<String>,
    /// `process_list` only.
    top_n: Option<usize>,
    /// `disk` only.
    include_tmpfs: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSender {
    compression: Option<String>,
    flush_interval: Option<String>,
    max_batch_envelopes: Option<usize>,
    spool_max_bytes: Option<u64>,
    backoff_initial: Option<String>,
    backoff_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCommands {
    enabled: Option<bool>,
    #[serde(default)]
    disabled: Vec<String>,
    disk_roots: Option<Vec<PathBuf>>,
}

impl AgentConfig {
    /// Reads `cli.config` (if any) and the process environment, then
    /// resolves with [`AgentConfig::from_sources`].
    pub fn load(cli: &CliOverrides) -> Result<Self, ConfigError> {
        let text = match &cli.config {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.display().to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Self::from_sources(text.as_deref(), &|name| std::env::var(name).ok(), cli)
    }

    /// Resolves defaults < `file_text` (TOML) < `env` < `cli`. Pure except
    /// for detecting the hostname when no layer sets it.
    pub fn from_sources(
        file_text: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        cli: &CliOverrides,
    ) -> Result<Self, ConfigError> {
        let file_name = cli
            .config
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<config>".to_owned());
        let file: FileConfig = match file_text {
            Some(text) => toml::from_str(text).map_err(|e| ConfigError::File {
                path: file_name.clone(),
                message: e.to_string(),
            })?,
            None => FileConfig::default(),
        };
        // Empty variables count as unset, as shells commonly export `X=`.
        let env_get = |name: &str| env(name).filter(|v| !v.is_empty());

        // Layer: defaults < file < env < cli, one setting at a time.
        let server = cli
            .server
            .clone()
            .or_else(|| env_get("SPECTRA_SERVER"))
            .or(file.server)
            .unwrap_or_else(|| defaults::SERVER.to_owned());
        let server = server.trim_end_matches('/').to_owned();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "server".into(),
                message: format!("`{server}` must start with http:// or https://"),
            });
        }
        let token = cli
            .token
            .clone()
            .or_else(|| env_get("SPECTRA_TOKEN"))
            .or(file.token);
        let (token, token_pin) = match token {
            Some(t) => {
                let (plain, pin) = split_token_pin(&t).map_err(|e| ConfigError::Invalid {
                    setting: "token (SPECTRA_TOKEN)".into(),
                    message: e.to_string(),
                })?;
                (Some(plain), pin)
            }
            None => (None, None),
        };
        let server_fingerprint = resolve_fingerprint(
            env_get("SPECTRA_SERVER_FINGERPRINT"),
            file.server_fingerprint,
            token_pin,
        )?;
        let ca_file = cli
            .ca_file
            .clone()
            .or_else(|| env_get("SPECTRA_CA_FILE").map(PathBuf::from))
            .or(file.ca_file);
        if (ca_file.is_some() || server_fingerprint.is_some()) && !server.starts_with("https://") {
            return Err(ConfigError::Invalid {
                setting: "server".into(),
                message: format!(
                    "`{server}` is plain HTTP, but a CA file or a server fingerprint is set: use https://"
                ),
            });
        }
        let hostname = cli
            .hostname
            .clone()
            .or_else(|| env_get("SPECTRA_HOSTNAME"))
            .or_else(|| env_get("HOSTNAME"))
            .or(file.hostname)
            .unwrap_or_else(crate::collectors::host_info::detect_hostname);
        let state_dir = match cli
            .state_dir
            .clone()
            .or_else(|| env_get("SPECTRA_AGENT_STATE_DIR").map(PathBuf::from))
            .or(file.state_dir)
        {
            Some(dir) => dir,
            None => default_state_dir(&env_get)?,
        };
        let roots = HostRoots {
            procfs: cli
                .procfs
                .clone()
                .or_else(|| env_get("SPECTRA_PROCFS").map(PathBuf::from))
                .or(file.procfs)
                .unwrap_or_else(|| PathBuf::from(defaults::PROCFS)),
            sysfs: cli
                .sysfs
                .clone()
                .or_else(|| env_get("SPECTRA_SYSFS").map(PathBuf::from))
                .or(file.sysfs)
                .unwrap_or_else(|| PathBuf::from(defaults::SYSFS)),
            rootfs: cli
                .rootfs
                .clone()
                .or_else(|| env_get("SPECTRA_ROOTFS").map(PathBuf::from))
                .or(file.rootfs)
                .unwrap_or_else(|| PathBuf::from(defaults::ROOTFS)),
        };
        let env_debug = match env_get("DEBUG") {
            Some(v) => Some(parse_bool(&v).ok_or_else(|| ConfigError::Env {
                var: "DEBUG",
                value: v.clone(),
                message: "expected true or false".into(),
            })?),
            None => None,
        };
        let debug = cli.debug || env_debug.or(file.debug).unwrap_or(false);
        let debug_listen = parse_debug_listen(
            env_get("SPECTRA_DEBUG_LISTEN")
                .or(file.debug_listen.clone())
                .as_deref(),
        )?;

        let mut collectors: BTreeMap<CollectorKind, CollectorSettings> = CollectorKind::ALL
            .into_iter()
            .map(|k| {
                let s = CollectorSettings {
                    enabled: true,
                    interval: k.default_interval(),
                };
                (k, s)
            })
            .collect();
        let mut collector_options = CollectorOptions::default();
        for (name, fc) in &file.collectors {
            let kind = CollectorKind::parse(name).ok_or_else(|| ConfigError::File {
                path: file_name.clone(),
                message: format!(
                    "unknown collector `{name}` in [collectors] (valid: {})",
                    valid_collector_names()
                ),
            })?;
            // `kind` comes from ALL, so the entry exists.
            if let Some(settings) = collectors.get_mut(&kind) {
                if let Some(enabled) = fc.enabled {
                    settings.enabled = enabled;
                }
                if let Some(text) = &fc.interval {
                    let key = format!("collectors.{name}.interval");
                    let interval = parse_duration_setting(text).map_err(|m| ConfigError::File {
                        path: file_name.clone(),
                        message: format!("{key}: {m}"),
                    })?;
                    settings.interval = check_interval(&key, interval)?;
                }
            }
            let only_for = |key: &str, owner: CollectorKind| -> Result<(), ConfigError> {
                if kind == owner {
                    Ok(())
                } else {
                    Err(ConfigError::File {
                        path: file_name.clone(),
                        message: format!(
                            "collectors.{name}.{key}: `{key}` is a setting of [collectors.{owner}] only"
                        ),
                    })
                }
            };
            if let Some(n) = fc.top_n {
                only_for("top_n", CollectorKind::ProcessList)?;
                if !(1..=MAX_PROCESS_TOP_N).contains(&n) {
                    return Err(ConfigError::Invalid {
                        setting: "collectors.process_list.top_n".into(),
                        message: format!("must be between 1 and {MAX_PROCESS_TOP_N}, got {n}"),
                    });
                }
                collector_options.process_list_top_n = n;
            }
            if let Some(b) = fc.include_tmpfs {
                only_for("include_tmpfs", CollectorKind::Disk)?;
                collector_options.disk_include_tmpfs = b;
            }
        }

        let file_duration = |key: &str, v: &Option<String>, default: Duration| match v {
            Some(text) => parse_duration_setting(text).map_err(|m| ConfigError::File {
                path: file_name.clone(),
                message: format!("sender.{key}: {m}"),
            }),
            None => Ok(default),
        };
        let compression_text = env_get("SPECTRA_COMPRESSION");
        let compression = match (&compression_text, &file.sender.compression) {
            (Some(v), _) => parse_compression(v).ok_or_else(|| ConfigError::Env {
                var: "SPECTRA_COMPRESSION",
                value: v.clone(),
                message: "expected gzip or zstd".into(),
            })?,
            (None, Some(v)) => parse_compression(v).ok_or_else(|| ConfigError::File {
                path: file_name.clone(),
                message: format!("sender.compression: `{v}` is not gzip or zstd"),
            })?,
            (None, None) => Encoding::Gzip,
        };
        let sender = SenderSettings {
            compression,
            flush_interval: file_duration(
                "flush_interval",
                &file.sender.flush_interval,
                defaults::FLUSH_INTERVAL,
            )?,
            max_batch_envelopes: file
                .sender
                .max_batch_envelopes
                .unwrap_or(defaults::MAX_BATCH_ENVELOPES),
            spool_max_bytes: file
                .sender
                .spool_max_bytes
                .unwrap_or(defaults::SPOOL_MAX_BYTES),
            backoff_initial: file_duration(
                "backoff_initial",
                &file.sender.backoff_initial,
                defaults::BACKOFF_INITIAL,
            )?,
            backoff_max: file_duration(
                "backoff_max",
                &file.sender.backoff_max,
                defaults::BACKOFF_MAX,
            )?,
        };
        validate_sender(&sender)?;
        let mut disabled = std::collections::BTreeSet::new();
        for name in &file.commands.disabled {
            let t = spectra_protocol::CommandType::parse(&name.to_ascii_uppercase()).ok_or_else(
                || ConfigError::Invalid {
                    setting: "commands.disabled".into(),
                    message: format!(
                        "unknown command `{name}` (FETCH_LOGS, DISK_USAGE, LIST_MOUNTS, NETWORK_DIAG, RESTART_AGENT)"
                    ),
                },
            )?;
            disabled.insert(t);
        }
        let disk_roots = file
            .commands
            .disk_roots
            .unwrap_or_else(|| vec![PathBuf::from("/")]);
        for root in &disk_roots {
            let text = root.to_string_lossy();
            spectra_protocol::validate_abs_path(&text).map_err(|e| ConfigError::Invalid {
                setting: "commands.disk_roots".into(),
                message: e.to_string(),
            })?;
        }
        let commands = CommandSettings {
            enabled: file.commands.enabled.unwrap_or(defaults::COMMANDS_ENABLED),
            disabled,
            disk_roots,
            allow_restart: false,
        };

        Ok(Self {
            server,
            token,
            ca_file,
            server_fingerprint,
            hostname,
            state_dir,
            roots,
            debug,
            debug_listen,
            collectors,
            collector_options,
            sender,
            commands,
        })
    }

    /// The settings of one collector (every kind has an entry).
    pub fn collector(&self, kind: CollectorKind) -> CollectorSettings {
        self.collectors
            .get(&kind)
            .copied()
            .unwrap_or(CollectorSettings {
                enabled: true,
                interval: kind.default_interval(),
            })
    }

    /// Where batches wait while the server is unreachable.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }
}

/// The pinned fingerprint: `SPECTRA_SERVER_FINGERPRINT` over the file's
/// `server_fingerprint`; one carried by the token must agree with it.
fn resolve_fingerprint(
    env: Option<String>,
    file: Option<String>,
    from_token: Option<Fingerprint>,
) -> Result<Option<Fingerprint>, ConfigError> {
    let explicit = match (env, file) {
        (Some(v), _) => Some(Fingerprint::parse(&v).map_err(|e| ConfigError::Env {
            var: "SPECTRA_SERVER_FINGERPRINT",
            value: v.clone(),
            message: e.to_string(),
        })?),
        (None, Some(v)) => Some(Fingerprint::parse(&v).map_err(|e| ConfigError::Invalid {
            setting: "server_fingerprint".into(),
            message: e.to_string(),
        })?),
        (None, None) => None,
    };
    match (explicit, from_token) {
        (Some(a), Some(b)) if a != b => Err(ConfigError::Invalid {
            setting: "server_fingerprint".into(),
            message: format!(
                "the enrollment token pins {b} but the server_fingerprint setting is {a}; keep one"
            ),
        }),
        (a, b) => Ok(a.or(b)),
    }
}

/// `cpu, memory, ...`: for error messages.
/// The largest `[collectors.process_list] top_n`.
pub const MAX_PROCESS_TOP_N: usize = 500;

pub fn valid_collector_names() -> String {
    CollectorKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_compression(text: &str) -> Option<Encoding> {
    match text.trim().to_ascii_lowercase().as_str() {
        "gzip" => Some(Encoding::Gzip),
        "zstd" => Some(Encoding::Zstd),
        _ => None,
    }
}

/// `"5s"`, `"1m 30s"`, `"500ms"` (humantime).
pub fn parse_duration_setting(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like \"5s\" or \"1m\": {e}"))
}

/// Envelope timestamps are whole seconds on interval boundaries, so an
/// interval must be a positive whole number of seconds.
fn check_interval(key: &str, interval: Duration) -> Result<Duration, ConfigError> {
    if interval.as_secs() == 0 || interval.subsec_nanos() != 0 {
        return Err(ConfigError::Invalid {
            setting: key.to_owned(),
            message: format!(
                "{} must be a whole number of seconds, at least 1s",
                humantime::format_duration(interval)
            ),
        });
    }
    Ok(interval)
}

fn validate_sender(s: &SenderSettings) -> Result<(), ConfigError> {
    let invalid = |setting: &str, message: &str| {
        Err(ConfigError::Invalid {
            setting: format!("sender.{setting}"),
            message: message.to_owned(),
        })
    };
    if s.flush_interval.is_zero() {
        return invalid("flush_interval", "must be more than 0");
    }
    if s.max_batch_envelopes == 0 {
        return invalid("max_batch_envelopes", "must be at least 1");
    }
    if s.backoff_initial.is_zero() {
        return invalid("backoff_initial", "must be more than 0");
    }
    if s.backoff_max < s.backoff_initial {
        return invalid("backoff_max", "must be at least backoff_initial");
    }
    Ok(())
}

/// SPEC §1: `/var/lib/spectra-agent` as root, else
/// `$XDG_STATE_HOME/spectra-agent` or `~/.local/state/spectra-agent`;
/// `%ProgramData%\Spectra` on Windows.
fn default_state_dir(env_get: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    if cfg!(windows) {
        let base = env_get("ProgramData").unwrap_or_else(|| r"C:\ProgramData".to_owned());
        return Ok(Path::new(&base).join("Spectra"));
    }
    if is_root() {
        return Ok(PathBuf::from(defaults::ROOT_STATE_DIR));
    }
    if let Some(xdg) = env_get("XDG_STATE_HOME") {
        return Ok(Path::new(&xdg).join("spectra-agent"));
    }
    match env_get("HOME") {
        Some(home) => Ok(Path::new(&home).join(".local/state/spectra-agent")),
        None => Err(ConfigError::Invalid {
            setting: "state_dir".into(),
            message: "HOME is not set: set SPECTRA_AGENT_STATE_DIR or --state-dir".into(),
        }),
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// The debug endpoint's address: `127.0.0.1:6060` unless set, and always a
/// loopback address: it exposes internals and must never face the network.
fn parse_debug_listen(value: Option<&str>) -> Result<std::net::SocketAddr, ConfigError> {
    let text = value.unwrap_or(defaults::DEBUG_LISTEN);
    let invalid = |message: String| ConfigError::Invalid {
        setting: "debug_listen (SPECTRA_DEBUG_LISTEN)".into(),
        message,
    };
    let addr: std::net::SocketAddr = text.parse().map_err(|e| {
        invalid(format!(
            "`{text}` is not an address such as 127.0.0.1:6060: {e}"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(invalid(format!(
            "`{text}` is not a loopback address; the debug endpoint only listens on 127.0.0.1 or ::1"
        )));
    }
    Ok(addr)
}
