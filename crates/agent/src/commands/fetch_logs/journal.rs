//! The systemd journal through `journalctl --output=json`, run with typed
//! arguments (no shell), a timeout and an output cap.
//!
//! The JSON format is documented in systemd's "Journal JSON Format"
//! (<https://systemd.io/JOURNAL_EXPORT_FORMATS/#journal-json-format>): one
//! object per line; a field is a string, an array of byte values when it is
//! not valid UTF-8 (or holds control characters), or an array of those when
//! an entry repeats a field.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use spectra_protocol::{LogEntry, LogLevel, LogRequest};

use super::{level_of, priority_of, FetchLogsError, JournalRead, LogFilter, LogSources};

/// A journal line that is not an entry we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal entry: {0}")]
pub struct JournalParseError(String);

/// Messages longer than this are cut (`--all` prints them whole).
const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// stderr kept for error messages.
const STDERR_CAP: u64 = 16 << 10;

/// The `journalctl` arguments for a request.
///
/// Entries come newest first (`--reverse`) so reading can stop as soon as
/// enough have matched. Without `grep`, `--lines` bounds them; with it the
/// filter is applied here (`--grep` needs a PCRE2 build, and treats the
/// text as a regex), so journalctl runs unbounded and is stopped once
/// `max` entries matched, or at the output cap.
pub fn journal_args(request: &LogRequest, rootfs: &Path, max: usize) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--output=json".into(),
        "--no-pager".into(),
        // Long messages whole rather than `null`.
        "--all".into(),
        "--reverse".into(),
    ];
    if rootfs != Path::new("/") {
        // Looks in <root>/var/log/journal and <root>/run/log/journal.
        let mut root = OsString::from("--root=");
        root.push(rootfs.as_os_str());
        args.push(root);
    }
    if let Some(level) = request.min_level {
        args.push(format!("--priority={}", priority_of(level)).into());
    }
    if let Some(since) = request.since {
        args.push(format!("--since=@{}", since.timestamp()).into());
    }
    if let Some(unit) = &request.unit {
        // validate() has checked it is a unit name, never an option.
        args.push(format!("--unit={unit}").into());
    }
    let has_grep = request.grep.as_deref().is_some_and(|g| !g.is_empty());
    if !has_grep {
        args.push(format!("--lines={max}").into());
    }
    args
}

/// Parses one line of `journalctl --output=json`.
///
/// `timestamp` is `__REALTIME_TIMESTAMP` (µs since the epoch); `source` the
/// first of `SYSLOG_IDENTIFIER`, `_COMM`, `_SYSTEMD_UNIT`; `level` from
/// `PRIORITY` (journald stores `LOG_INFO` for entries that carry none, so a
/// missing one reads as INFO).
pub fn parse_journal_line(line: &str) -> Result<LogEntry, JournalParseError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| JournalParseError(format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| JournalParseError("not a JSON object".into()))?;
    let field = |name: &str| obj.get(name).and_then(field_text);

    let micros: i64 = field("__REALTIME_TIMESTAMP")
        .ok_or_else(|| JournalParseError("no __REALTIME_TIMESTAMP".into()))?
        .parse()
        .map_err(|_| JournalParseError("__REALTIME_TIMESTAMP is not a number".into()))?;
    let timestamp = DateTime::<Utc>::from_timestamp_micros(micros)
        .ok_or_else(|| JournalParseError(format!("__REALTIME_TIMESTAMP {micros} out of range")))?;
    let level = match field("PRIORITY") {
        Some(p) => level_of(
            p.trim()
                .parse()
                .map_err(|_| JournalParseError(format!("PRIORITY `{p}` is not 0-7")))?,
        ),
        None => LogLevel::Info,
    };
    let process_name = field("_COMM");
    let source = field("SYSLOG_IDENTIFIER")
        .or_else(|| process_name.clone())
        .or_else(|| field("_SYSTEMD_UNIT"))
        .unwrap_or_else(|| "unknown".into());
    let mut message = match obj.get("MESSAGE") {
        Some(Value::Null) | None => String::new(),
        Some(v) => {
            field_text(v).ok_or_else(|| JournalParseError("MESSAGE has an unknown form".into()))?
        }
    };
    truncate_at_char(&mut message, MAX_MESSAGE_BYTES);
    Ok(LogEntry {
        timestamp,
        source,
        level,
        message,
        pid: field("_PID").and_then(|p| p.parse().ok()),
        process_name,
    })
}

/// A field's text: a string, bytes decoded lossily, or the first value of a
/// repeated field.
fn field_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(Value::as_u64)
                .map(|b| u8::try_from(b).unwrap_or(b'?'))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.first().and_then(field_text),
        _ => None,
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" [truncated]");
    }
}

/// Runs `journalctl` and keeps the entries `filter` accepts.
pub fn read_journal(
    sources: &LogSources,
    request: &LogRequest,
    filter: &LogFilter,
) -> Result<JournalRead, FetchLogsError> {
    let args = journal_args(request, &sources.rootfs, filter.max);
    let program = sources.journalctl.display().to_string();
    let mut child = match Command::new(&sources.journalctl)
        .args(&args)
        .env("LC_ALL", "C")
        // journalctl pages and colours only on a terminal; say so anyway.
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(JournalRead::NoJournal("journalctl not found".into()))
        }
        Err(e) => {
            return Err(FetchLogsError::Journal(format!(
                "cannot run {program}: {e}"
            )))
        }
    };
    let pgid = child.id();

    // The watchdog kills the group past the timeout. It is joined before
    // the child is reaped, so the group id still names our child.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let timeout = sources.journal_timeout;
    let watchdog = std::thread::spawn(move || match done_rx.recv_timeout(timeout) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill_group(pgid);
            true
        }
        _ => false,
    });
    let stderr_reader = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.take(STDERR_CAP).read_to_string(&mut text);
            text
        })
    });

    let mut newest_first = Vec::new();
    let mut bytes_read = 0u64;
    let mut bad_lines = 0u64;
    let mut stopped = false;
    let mut read_error = None;
    if let Some(out) = child.stdout.take() {
        let mut out = BufReader::with_capacity(64 << 10, out);
        let mut line = Vec::new();
        loop {
            line.clear();
            match out.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => bytes_read += n as u64,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                continue;
            }
            match parse_journal_line(text) {
                Ok(entry) if filter.matches(&entry) => newest_first.push(entry),
                Ok(_) => {}
                Err(e) => {
                    bad_lines += 1;
                    if bad_lines == 1 {
                        tracing::warn!(error = %e, "skipping a journal line");
                    }
                }
            }
            if newest_first.len() >= filter.max || bytes_read >= sources.journal_output_cap as u64 {
                stopped = true;
                break;
            }
        }
    }
    if stopped {
        // Enough read: journalctl need not finish.
        kill_group(pgid);
    }
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait();
    let stderr = stderr_reader
        .and_then(|r| r.join().ok())
        .unwrap_or_default();

    if let Some(e) = read_error {
        return Err(FetchLogsError::Journal(format!(
            "reading {program} output: {e}"
        )));
    }
    if newest_first.is_empty() {
        if timed_out {
            return Err(FetchLogsError::Journal(format!(
                "{program} gave no entry within {} s and was killed",
                timeout.as_secs_f64()
            )));
        }
        match status {
            Ok(s) if !s.success() && !stopped => {
                return Err(FetchLogsError::Journal(format!(
                    "{program} failed ({s}): {}",
                    first_line(&stderr)
                )))
            }
            Err(e) => return Err(FetchLogsError::Journal(format!("{program}: {e}"))),
            _ => {}
        }
        // journalctl says so on stderr in its text modes only (with
        // --output=json, systemd 252 is silent and exits 0), so look for
        // journal files as well. Output that matched nothing is a journal.
        if bytes_read == 0
            && (stderr.contains("No journal files were found")
                || !has_journal_files(&sources.rootfs))
        {
            return Ok(JournalRead::NoJournal("no journal files were found".into()));
        }
    } else if timed_out {
        // The newest entries are complete records: return them.
        tracing::warn!(
            entries = newest_first.len(),
            "journalctl timed out; returning the entries read so far"
        );
    }
    newest_first.reverse();
    Ok(JournalRead::Entries {
        entries: newest_first,
        bytes_read,
    })
}

/// Whether `<rootfs>/var/log/journal` or `<rootfs>/run/log/journal` holds a
/// journal file, directly or in a machine-id (or namespace) directory, as
/// journald lays them out (systemd-journald.service(8)).
pub fn has_journal_files(rootfs: &Path) -> bool {
    let is_journal = |name: &std::ffi::OsStr| {
        let name = name.to_string_lossy();
        name.ends_with(".journal") || name.ends_with(".journal~")
    };
    ["var/log/journal", "run/log/journal"].iter().any(|dir| {
        let Ok(entries) = std::fs::read_dir(rootfs.join(dir)) else {
            return false;
        };
        entries.flatten().any(|entry| {
            is_journal(&entry.file_name())
                || std::fs::read_dir(entry.path())
                    .is_ok_and(|inner| inner.flatten().any(|e| is_journal(&e.file_name())))
        })
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
}

/// SIGKILL to a process group we started and have not reaped.
fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the caller
        // guarantees the group's leader is our unreaped child.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn priorities_round_trip() {
        for p in 0..=7 {
            assert_eq!(priority_of(level_of(p)), p);
        }
        assert_eq!(priority_of(LogLevel::Error), 3);
        // Facility bits are ignored.
        assert_eq!(level_of(4 * 8 + 3), LogLevel::Error);
    }

    #[test]
    fn args_are_typed_and_bounded() {
        let request = LogRequest {
            min_level: Some(LogLevel::Error),
            since: DateTime::from_timestamp(1_795_600_805, 0),
            unit: Some("ssh.service".into()),
            ..LogRequest::default()
        };
        let args = journal_args(&request, Path::new("/"), 50);
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        for want in [
            "--output=json",
            "--priority=3",
            "--since=@1795600805",
            "--unit=ssh.service",
            "--lines=50",
        ] {
            assert!(args.contains(&want), "{want} missing from {args:?}");
        }
        assert!(!args.iter().any(|a| a.starts_with("--root")));

        let grep = LogRequest {
            grep: Some("fail".into()),
            ..LogRequest::default()
        };
        let args = journal_args(&grep, &PathBuf::from("/host"), 50);
        assert!(args.contains(&OsString::from("--root=/host")));
        assert!(!args
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--lines")));
        assert!(!args
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--grep")));
    }

    #[test]
    fn message_forms_decode() {
        let e = parse_journal_line(
            r#"{"__REALTIME_TIMESTAMP":"1795600800000123","MESSAGE":[104,105,255],"_COMM":"x"}"#,
        )
        .unwrap();
        assert_eq!(e.message, "hi\u{fffd}");
        assert_eq!(e.level, LogLevel::Info);
        assert_eq!(e.source, "x");
        let e = parse_journal_line(
            r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":["first","second"],"PRIORITY":"4"}"#,
        )
        .unwrap();
        assert_eq!(e.message, "first");
        assert_eq!(e.source, "unknown");
        assert_eq!(e.level, LogLevel::Warning);
    }

    #[test]
    fn bad_lines_are_errors_naming_the_problem() {
        for (line, why) in [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"MESSAGE":"x"}"#, "__REALTIME_TIMESTAMP"),
            (r#"{"__REALTIME_TIMESTAMP":"1","PRIORITY":"x"}"#, "PRIORITY"),
        ] {
            let e = parse_journal_line(line).unwrap_err().to_string();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let mut s = "é".repeat(MAX_MESSAGE_BYTES);
        truncate_at_char(&mut s, MAX_MESSAGE_BYTES + 1);
        assert!(s.ends_with(" [truncated]"));
        assert!(s.len() <= MAX_MESSAGE_BYTES + 1 + " [truncated]".len());
    }
}
