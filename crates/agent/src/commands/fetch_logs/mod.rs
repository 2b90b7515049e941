//! `FETCH_LOGS` (SPEC Appendix A): recent system log entries, newest last.
//!
//! Sources, in order:
//! 1. the systemd journal, through `journalctl --output=json` ([`journal`]);
//! 2. when there is no journal (no `journalctl`, or it finds no journal
//!    files): the tail of `<rootfs>/var/log/syslog`, else
//!    `<rootfs>/var/log/messages` ([`syslog`]).
//!
//! Neither is an error that says so, never an empty success. Container logs
//! (`container` set) come from the Docker/Podman API ([`container`]).

#[cfg(target_os = "linux")]
pub mod container;
#[cfg(unix)]
pub mod journal;
pub mod syslog;

/// Reading the journal needs `journalctl` and Unix process groups.
#[cfg(unix)]
mod platform {
    pub(super) use super::journal::read_journal;
}

#[cfg(not(unix))]
mod platform {
    use super::{FetchLogsError, JournalRead, LogFilter, LogSources};
    use spectra_protocol::LogRequest;

    pub(super) fn read_journal(
        _sources: &LogSources,
        _request: &LogRequest,
        _filter: &LogFilter,
    ) -> Result<JournalRead, FetchLogsError> {
        Ok(JournalRead::NoJournal(format!(
            "no systemd journal on {}",
            std::env::consts::OS
        )))
    }
}

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_protocol::{LogEntry, LogLevel, LogRequest};

use super::{CommandContext, CommandOutcome};

/// Entries returned when the request does not say (`max_entries`).
pub const DEFAULT_MAX_ENTRIES: usize = 200;

/// Where logs are read from, and the bounds on reading them.
#[derive(Debug, Clone)]
pub struct LogSources {
    /// The host's root filesystem as this agent sees it (`/`, or e.g.
    /// `/host` in a container).
    pub rootfs: PathBuf,
    /// The `journalctl` program: a bare name is looked up on `PATH`; tests
    /// point it at a fake.
    pub journalctl: PathBuf,
    /// `journalctl` is killed past this.
    pub journal_timeout: Duration,
    /// Bytes of `journalctl` output read at most; reading stops there and
    /// the entries gathered so far are returned.
    pub journal_output_cap: usize,
    /// Bytes of a syslog file read at most (from its end).
    pub file_read_cap: u64,
}

impl LogSources {
    /// Default program and bounds for a host root filesystem.
    pub fn new(rootfs: impl Into<PathBuf>) -> Self {
        Self {
            rootfs: rootfs.into(),
            journalctl: PathBuf::from("journalctl"),
            journal_timeout: Duration::from_secs(15),
            journal_output_cap: 8 << 20,
            file_read_cap: 32 << 20,
        }
    }
}

/// Which source answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOrigin {
    Journal,
    /// A syslog file, as this agent sees it.
    File(PathBuf),
}

/// Entries (oldest first) and what reading them cost.
#[derive(Debug, Clone)]
pub struct FetchedLogs {
    pub entries: Vec<LogEntry>,
    pub origin: LogOrigin,
    /// Bytes read from `journalctl` or from the file.
    pub bytes_read: u64,
}

/// Why no entries could be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchLogsError {
    #[error("no system journal ({journal}) and no /var/log/syslog or /var/log/messages")]
    NoSource { journal: String },
    #[error("{0}")]
    Journal(String),
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `journalctl` gave.
#[derive(Debug)]
pub enum JournalRead {
    /// Matching entries, oldest first.
    Entries {
        entries: Vec<LogEntry>,
        bytes_read: u64,
    },
    /// There is no journal to read (the reason, for the error message).
    NoJournal(String),
}

/// The syslog priority (RFC 5424 §6.2.1) of a level: `journalctl
/// --priority=N` keeps entries of priority 0..=N.
pub fn priority_of(level: LogLevel) -> u8 {
    match level {
        LogLevel::Emergency => 0,
        LogLevel::Alert => 1,
        LogLevel::Critical => 2,
        LogLevel::Error => 3,
        LogLevel::Warning => 4,
        LogLevel::Notice => 5,
        LogLevel::Info => 6,
        LogLevel::Debug => 7,
    }
}

/// The level of a syslog priority (severity bits only).
pub fn level_of(priority: u8) -> LogLevel {
    match priority & 7 {
        0 => LogLevel::Emergency,
        1 => LogLevel::Alert,
        2 => LogLevel::Critical,
        3 => LogLevel::Error,
        4 => LogLevel::Warning,
        5 => LogLevel::Notice,
        6 => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

/// The request's filters, applied the same way to every source.
#[derive(Debug, Clone)]
pub struct LogFilter {
    pub min_level: Option<LogLevel>,
    pub since: Option<DateTime<Utc>>,
    /// Lower-cased `grep`: a plain case-insensitive substring.
    pub grep: Option<String>,
    pub max: usize,
}

impl LogFilter {
    pub fn new(request: &LogRequest) -> Self {
        Self {
            min_level: request.min_level,
            since: request.since,
            grep: request
                .grep
                .as_deref()
                .filter(|g| !g.is_empty())
                .map(str::to_lowercase),
            max: request
                .max_entries
                .map_or(DEFAULT_MAX_ENTRIES, |n| n as usize)
                .max(1),
        }
    }

    pub fn matches(&self, entry: &LogEntry) -> bool {
        // LogLevel orders DEBUG < ... < EMERGENCY.
        self.min_level.is_none_or(|min| entry.level >= min)
            && self.since.is_none_or(|since| entry.timestamp >= since)
            && self
                .grep
                .as_deref()
                .is_none_or(|g| entry.message.to_lowercase().contains(g))
    }
}

/// Runs `FETCH_LOGS` off the async threads (it reads files and waits on a
/// child process).
pub async fn run(ctx: &CommandContext, request: &LogRequest) -> CommandOutcome {
    match &request.container {
        #[cfg(target_os = "linux")]
        Some(name) => {
            let roots = ctx.roots.clone();
            let request = request.clone();
            let name = name.clone();
            let docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
            let entries = tokio::task::spawn_blocking(move || {
                container::fetch_container_logs(&roots, docker_host.as_deref(), &request, &name)
            })
            .await
            .map_err(|e| format!("FETCH_LOGS failed: {e}"))??;
            serde_json::to_value(entries).map_err(|e| format!("FETCH_LOGS result: {e}"))
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => Err("container logs are not supported by this agent on this platform".into()),
        None => {
            let sources = LogSources::new(&ctx.roots.rootfs);
            let request = request.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                fetch_system_logs(&sources, &request, Utc::now())
            })
            .await
            .map_err(|e| format!("FETCH_LOGS failed: {e}"))?
            .map_err(|e| e.to_string())?;
            serde_json::to_value(fetched.entries).map_err(|e| format!("FETCH_LOGS result: {e}"))
        }
    }
}

/// The system's logs: the journal, else the syslog files. `now` dates
/// syslog lines that carry no year.
pub fn fetch_system_logs(
    sources: &LogSources,
    request: &LogRequest,
    now: DateTime<Utc>,
) -> Result<FetchedLogs, FetchLogsError> {
    let filter = LogFilter::new(request);
    let no_journal = match platform::read_journal(sources, request, &filter)? {
        JournalRead::Entries {
            entries,
            bytes_read,
        } => {
            return Ok(FetchedLogs {
                entries,
                origin: LogOrigin::Journal,
                bytes_read,
            })
        }
        JournalRead::NoJournal(why) => why,
    };
    tracing::debug!(reason = %no_journal, "no journal, reading syslog files");
    let program = request.unit.as_deref().map(unit_program);
    for name in ["syslog", "messages"] {
        let path = sources.rootfs.join("var/log").join(name);
        match syslog::read_syslog_tail(
            &path,
            &filter,
            program,
            sources.file_read_cap,
            now,
            &chrono::Local,
        ) {
            Ok(tail) => {
                return Ok(FetchedLogs {
                    entries: tail.entries,
                    origin: LogOrigin::File(path),
                    bytes_read: tail.bytes_read,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(FetchLogsError::Io { path, source }),
        }
    }
    Err(FetchLogsError::NoSource {
        journal: no_journal,
    })
}

/// The program name a syslog line carries for a unit: `ssh.service` logs
/// as `ssh`.
fn unit_program(unit: &str) -> &str {
    unit.strip_suffix(".service").unwrap_or(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(level: LogLevel, message: &str) -> LogEntry {
        LogEntry {
            timestamp: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
            source: "sshd".into(),
            level,
            message: message.into(),
            pid: None,
            process_name: None,
        }
    }

    #[test]
    fn filter_applies_level_grep_and_since() {
        let f = LogFilter::new(&LogRequest {
            min_level: Some(LogLevel::Warning),
            grep: Some("DISK".into()),
            ..LogRequest::default()
        });
        assert!(f.matches(&entry(LogLevel::Error, "disk full")));
        assert!(!f.matches(&entry(LogLevel::Info, "disk full")));
        assert!(!f.matches(&entry(LogLevel::Error, "cpu hot")));
        assert_eq!(f.max, DEFAULT_MAX_ENTRIES);

        let f = LogFilter::new(&LogRequest {
            since: Some(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 1).unwrap()),
            max_entries: Some(5),
            ..LogRequest::default()
        });
        assert!(!f.matches(&entry(LogLevel::Error, "older")));
        assert_eq!(f.max, 5);
    }

    #[test]
    fn unit_maps_to_its_program_name() {
        assert_eq!(unit_program("ssh.service"), "ssh");
        assert_eq!(unit_program("cron"), "cron");
        assert_eq!(unit_program("user@1000.service"), "user@1000");
    }
}
