//! `FETCH_LOGS` with `container` set: the container's own output, from the
//! Docker (or Podman) Engine API's logs endpoint, so "why did it restart"
//! is one command away.
//!
//! The daemon sockets are the ones `container_list` finds (`DOCKER_HOST`,
//! Docker's, rootful and rootless Podman's); the first daemon that knows
//! the container answers. Container output has no severity: the level is
//! inferred from the text as for syslog files
//! ([`super::syslog::infer_level`]), and a line on stderr is at least a
//! `WARNING` (programs write their complaints there, and many write
//! everything there, so no stronger claim is made).

use std::time::Duration;

use spectra_protocol::{LogEntry, LogLevel, LogRequest};

use super::LogFilter;
use crate::collectors::container_list::{discover_sockets, docker};
use crate::collectors::HostRoots;

/// Each daemon gets this long to answer.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches a container's log lines, filtered like every other source,
/// newest last. Runs blocking I/O: call it off the async threads.
pub fn fetch_container_logs(
    roots: &HostRoots,
    docker_host: Option<&str>,
    request: &LogRequest,
    container: &str,
) -> Result<Vec<LogEntry>, String> {
    let filter = LogFilter::new(request);
    let (sockets, notes) = discover_sockets(&roots.rootfs, docker_host);
    if sockets.is_empty() {
        let mut why = "no Docker or Podman socket on this host".to_owned();
        for note in notes {
            why.push_str("; ");
            why.push_str(&note);
        }
        return Err(format!("cannot fetch logs of container {container}: {why}"));
    }
    // Without a level or text filter the daemon's `tail` is exact; with
    // one, ask for more and filter here (bounded by the logs cap).
    let filtered = filter.min_level.is_some() || filter.grep.is_some();
    let tail = if filtered {
        (filter.max as u32).saturating_mul(20).min(100_000)
    } else {
        filter.max as u32
    };
    let since = filter.since.map(|t| t.timestamp());
    let mut failures = Vec::new();
    for endpoint in &sockets {
        match docker::container_logs(&endpoint.socket, container, tail, since, DAEMON_TIMEOUT) {
            Ok(lines) => return Ok(to_entries(container, lines, &filter)),
            Err(e) => failures.push(format!("{}: {e}", endpoint.socket.display())),
        }
    }
    Err(format!(
        "cannot fetch logs of container {container}: {}",
        failures.join("; ")
    ))
}

/// Maps and filters decoded lines; keeps the newest `filter.max`.
pub fn to_entries(
    container: &str,
    lines: Vec<docker::LogLine>,
    filter: &LogFilter,
) -> Vec<LogEntry> {
    let mut entries: Vec<LogEntry> = lines
        .into_iter()
        .map(|(timestamp, stream, message)| {
            let mut level = super::syslog::infer_level(&message);
            if stream == "stderr" && level < LogLevel::Warning {
                level = LogLevel::Warning;
            }
            LogEntry {
                timestamp,
                source: format!("{container} ({stream})"),
                level,
                message,
                pid: None,
                process_name: None,
            }
        })
        .filter(|e| filter.matches(e))
        .collect();
    entries.sort_by_key(|e| e.timestamp);
    let excess = entries.len().saturating_sub(filter.max);
    entries.drain(..excess);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn line(sec: u32, stream: &str, text: &str) -> docker::LogLine {
        (
            Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, sec).unwrap(),
            stream.to_owned(),
            text.to_owned(),
        )
    }

    #[test]
    fn stderr_is_at_least_a_warning_and_filters_apply() {
        let lines = vec![
            line(1, "stdout", "listening on :80"),
            line(2, "stderr", "slow request"),
            line(3, "stdout", "ERROR: upstream refused"),
            line(4, "stdout", "GET / 200"),
        ];
        let all = to_entries(
            "web",
            lines.clone(),
            &LogFilter::new(&LogRequest::default()),
        );
        let levels: Vec<LogLevel> = all.iter().map(|e| e.level).collect();
        assert_eq!(
            levels,
            [
                LogLevel::Info,
                LogLevel::Warning,
                LogLevel::Error,
                LogLevel::Info
            ]
        );
        assert_eq!(all[1].source, "web (stderr)");

        let warnings = to_entries(
            "web",
            lines.clone(),
            &LogFilter::new(&LogRequest {
                min_level: Some(LogLevel::Warning),
                ..LogRequest::default()
            }),
        );
        assert_eq!(warnings.len(), 2);
        let newest = to_entries(
            "web",
            lines,
            &LogFilter::new(&LogRequest {
                max_entries: Some(2),
                ..LogRequest::default()
            }),
        );
        let texts: Vec<&str> = newest.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            texts,
            ["ERROR: upstream refused", "GET / 200"],
            "newest last"
        );
    }

    #[test]
    fn no_daemon_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            rootfs: dir.path().to_owned(),
            ..HostRoots::default()
        };
        let e = fetch_container_logs(&roots, None, &LogRequest::default(), "web").unwrap_err();
        assert!(e.contains("no Docker or Podman socket"), "{e}");
    }
}
