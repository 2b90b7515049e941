//! `FETCH_LOGS`: the journal parser on real `journalctl -o json` output, the
//! real `journalctl` on a journal built from a fixture, a fake `journalctl`
//! for the arguments and failure modes, and the syslog-file fallback.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Datelike, Local, TimeZone, Timelike, Utc};
use spectra_agent::collectors::HostRoots;
use spectra_agent::commands::fetch_logs::journal::parse_journal_line;
use spectra_agent::commands::fetch_logs::syslog::parse_syslog_line;
use spectra_agent::commands::fetch_logs::{
    fetch_system_logs, FetchLogsError, LogOrigin, LogSources,
};
use spectra_agent::commands::{self, CommandContext};
use spectra_protocol::{LogEntry, LogLevel, LogRequest};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name)
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// Skips a test whose system facility is missing, except under CI=true
/// where it must be there.
fn skip_unless_ci(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {why}");
    }
    eprintln!("SKIPPED: {why}");
}

fn messages(entries: &[LogEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.message.as_str()).collect()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

// ---- the journal parser ----

#[test]
fn parses_real_journalctl_json_lines() {
    let entries: Vec<LogEntry> = fixture_text("journalctl_o_json.jsonl")
        .lines()
        .map(|l| parse_journal_line(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 8);

    let first = &entries[0];
    assert_eq!(
        first.timestamp,
        DateTime::<Utc>::from_timestamp_micros(1_795_600_800_000_123).unwrap()
    );
    assert_eq!(first.source, "sshd");
    assert_eq!(first.level, LogLevel::Info);
    assert_eq!(first.pid, Some(812));
    assert_eq!(first.process_name.as_deref(), Some("sshd"));
    assert!(first.message.starts_with("Accepted publickey for admin"));

    let levels: Vec<LogLevel> = entries.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [
            LogLevel::Info,
            LogLevel::Error,
            LogLevel::Notice,
            LogLevel::Warning,
            LogLevel::Info,
            LogLevel::Critical,
            // cron's entry has no PRIORITY.
            LogLevel::Info,
            LogLevel::Debug,
        ]
    );
    let sources: Vec<&str> = entries.iter().map(|e| e.source.as_str()).collect();
    // systemd and dhclient set no SYSLOG_IDENTIFIER: _COMM names them.
    assert_eq!(
        sources,
        [
            "sshd",
            "sshd",
            "kernel",
            "systemd",
            "backup.sh",
            "myapp",
            "cron",
            "dhclient"
        ]
    );
    // The kernel has no _PID.
    assert_eq!(entries[2].pid, None);
    // Bytes that are not UTF-8 come as an array of numbers.
    assert_eq!(entries[4].message, "copied caf\u{fffd} files\u{1} done");
    assert_eq!(
        entries[5].message,
        "panic: runtime error\ngoroutine 1 [running]:"
    );
}

// ---- the real journalctl on a journal built from the fixture ----

/// A root filesystem whose journal holds the 8 fixture entries, written by
/// systemd-journal-remote from the export-format fixture.
fn rootfs_with_journal() -> Option<tempfile::TempDir> {
    let remote = Path::new("/lib/systemd/systemd-journal-remote");
    if !remote.exists() || which("journalctl").is_none() {
        skip_unless_ci(
            "journalctl or /lib/systemd/systemd-journal-remote missing \
             (apt-get install systemd systemd-journal-remote)",
        );
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root
        .path()
        .join("var/log/journal/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(remote)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg(fixture("journal_export.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some(root)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn fetch(sources: &LogSources, request: LogRequest) -> Vec<LogEntry> {
    let got = fetch_system_logs(sources, &request, now()).unwrap();
    assert_eq!(got.origin, LogOrigin::Journal);
    got.entries
}

#[test]
fn real_journalctl_reads_the_journal_under_the_root_filesystem() {
    let Some(root) = rootfs_with_journal() else {
        return;
    };
    let sources = LogSources::new(root.path());

    // The same newest five as journalctl itself, oldest first.
    let direct = Command::new("journalctl")
        .arg(format!("--root={}", root.path().display()))
        .args(["-o", "json", "-n", "5", "--no-pager"])
        .output()
        .unwrap();
    let direct: Vec<LogEntry> = String::from_utf8_lossy(&direct.stdout)
        .lines()
        .map(|l| parse_journal_line(l).unwrap())
        .collect();
    assert_eq!(direct.len(), 5);
    let ours = fetch(
        &sources,
        LogRequest {
            max_entries: Some(5),
            ..LogRequest::default()
        },
    );
    assert_eq!(ours, direct);

    let all = fetch(&sources, LogRequest::default());
    assert_eq!(all.len(), 8);
    assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    let errors = fetch(
        &sources,
        LogRequest {
            min_level: Some(LogLevel::Error),
            ..LogRequest::default()
        },
    );
    assert_eq!(
        messages(&errors),
        [
            "error: kex_exchange_identification: Connection closed by remote host",
            "panic: runtime error\ngoroutine 1 [running]:"
        ]
    );

    let ssh = fetch(
        &sources,
        LogRequest {
            unit: Some("ssh.service".into()),
            ..LogRequest::default()
        },
    );
    assert_eq!(ssh.len(), 2);
    assert!(ssh.iter().all(|e| e.source == "sshd"));

    // Case-insensitive substring, applied by the agent.
    let grep = fetch(
        &sources,
        LogRequest {
            grep: Some("CONNECTION CLOSED".into()),
            ..LogRequest::default()
        },
    );
    assert_eq!(grep.len(), 1);
    assert_eq!(grep[0].pid, Some(815));

    let since = fetch(
        &sources,
        LogRequest {
            since: DateTime::from_timestamp(1_795_600_805, 0),
            ..LogRequest::default()
        },
    );
    assert_eq!(since.len(), 4);
    assert_eq!(since[0].source, "backup.sh");

    // A journal with nothing matching is an empty answer, not a fallback.
    let none = fetch(
        &sources,
        LogRequest {
            unit: Some("nothing-logs-here.service".into()),
            ..LogRequest::default()
        },
    );
    assert!(none.is_empty());
}

#[test]
fn live_journal_matches_journalctl_or_falls_back() {
    // This host's own journal, when it has one.
    let direct = Command::new("journalctl")
        .args(["-o", "json", "-n", "5", "--no-pager"])
        .output();
    let sources = LogSources::new("/");
    let request = LogRequest {
        max_entries: Some(5),
        ..LogRequest::default()
    };
    match direct {
        Ok(out) if !out.stdout.is_empty() => {
            let direct: Vec<LogEntry> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| parse_journal_line(l).ok())
                .collect();
            let ours = fetch_system_logs(&sources, &request, Utc::now()).unwrap();
            assert_eq!(ours.origin, LogOrigin::Journal);
            assert_eq!(ours.entries.len(), direct.len());
            // The journal may grow between the two reads: compare the oldest.
            assert!(
                ours.entries.first().map(|e| e.timestamp) >= direct.first().map(|e| e.timestamp)
            );
        }
        _ => {
            eprintln!("this host has no journal: checking the fallback instead");
            match fetch_system_logs(&sources, &request, Utc::now()) {
                Ok(got) => assert!(matches!(got.origin, LogOrigin::File(_))),
                Err(e) => assert!(e.to_string().starts_with("no system journal"), "{e}"),
            }
        }
    }
}

// ---- a fake journalctl: arguments and failure modes ----

/// A `journalctl` stand-in that records its arguments (one per line) in
/// `args.txt` beside it, then runs `body`.
struct FakeJournalctl {
    dir: tempfile::TempDir,
}

impl FakeJournalctl {
    fn new(body: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("journalctl");
        let args = dir.path().join("args.txt");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n{body}\n",
                args.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    /// Prints the fixture newest first, as `--reverse` does.
    fn printing_fixture() -> Self {
        Self::new(&format!(
            "tac '{}'",
            fixture("journalctl_o_json.jsonl").display()
        ))
    }

    fn sources(&self, rootfs: &Path) -> LogSources {
        LogSources {
            journalctl: self.dir.path().join("journalctl"),
            ..LogSources::new(rootfs)
        }
    }

    fn args(&self) -> BTreeSet<String> {
        std::fs::read_to_string(self.dir.path().join("args.txt"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn request_fields_become_journalctl_arguments() {
    let fake = FakeJournalctl::printing_fixture();
    let since = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let got = fetch_system_logs(
        &fake.sources(Path::new("/")),
        &LogRequest {
            min_level: Some(LogLevel::Error),
            since: Some(since),
            unit: Some("ssh.service".into()),
            max_entries: Some(50),
            ..LogRequest::default()
        },
        now(),
    )
    .unwrap();
    let args = fake.args();
    for want in [
        "--output=json",
        "--no-pager",
        "--reverse",
        "--priority=3",
        "--since=@1795600800",
        "--unit=ssh.service",
        "--lines=50",
    ] {
        assert!(args.contains(want), "{want} not in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--root")), "{args:?}");
    // The fake ignores the filters; the agent applies the level itself too.
    assert_eq!(
        got.entries.iter().map(|e| e.level).collect::<Vec<_>>(),
        [LogLevel::Error, LogLevel::Critical]
    );

    // Another root filesystem is passed as --root; grep is not passed on.
    let root = tempfile::tempdir().unwrap();
    let got = fetch_system_logs(
        &fake.sources(root.path()),
        &LogRequest {
            min_level: Some(LogLevel::Debug),
            grep: Some("EXT4".into()),
            ..LogRequest::default()
        },
        now(),
    )
    .unwrap();
    let args = fake.args();
    assert!(args.contains(&format!("--root={}", root.path().display())));
    assert!(args.contains("--priority=7"));
    assert!(!args
        .iter()
        .any(|a| a.starts_with("--grep") || a.starts_with("--lines")));
    assert_eq!(got.entries.len(), 1);
    assert_eq!(got.entries[0].source, "kernel");
}

#[test]
fn grep_stops_an_endless_journal_after_enough_matches() {
    // Endless output: only stopping and killing it ends this test.
    let line = fixture_text("journalctl_o_json.jsonl")
        .lines()
        .nth(1)
        .unwrap()
        .replace('\'', "");
    let fake = FakeJournalctl::new(&format!("while :; do echo '{line}'; done"));
    let got = fetch_system_logs(
        &fake.sources(Path::new("/")),
        &LogRequest {
            grep: Some("kex_exchange".into()),
            max_entries: Some(3),
            ..LogRequest::default()
        },
        now(),
    )
    .unwrap();
    assert_eq!(got.entries.len(), 3);
}

#[test]
fn journal_output_is_capped() {
    let fake = FakeJournalctl::new(&format!(
        "while :; do cat '{}'; done",
        fixture("journalctl_o_json.jsonl").display()
    ));
    let sources = LogSources {
        journal_output_cap: 100_000,
        ..fake.sources(Path::new("/"))
    };
    let got = fetch_system_logs(
        &sources,
        &LogRequest {
            grep: Some("no entry says this".into()),
            ..LogRequest::default()
        },
        now(),
    )
    .unwrap();
    assert!(got.entries.is_empty());
    // Stopped at the first line past the cap.
    assert!(
        got.bytes_read >= 100_000 && got.bytes_read < 102_000,
        "{}",
        got.bytes_read
    );
}

#[test]
fn a_hung_journalctl_is_killed_and_named() {
    let fake = FakeJournalctl::new("exec sleep 600");
    let sources = LogSources {
        journal_timeout: Duration::from_millis(200),
        ..fake.sources(Path::new("/"))
    };
    let e = fetch_system_logs(&sources, &LogRequest::default(), now()).unwrap_err();
    assert!(
        e.to_string()
            .contains("gave no entry within 0.2 s and was killed"),
        "{e}"
    );
}

#[test]
fn a_failing_journalctl_reports_its_stderr() {
    let fake = FakeJournalctl::new("echo 'Failed to open journal: Permission denied' >&2; exit 1");
    let e = fetch_system_logs(&fake.sources(Path::new("/")), &LogRequest::default(), now())
        .unwrap_err();
    assert!(matches!(e, FetchLogsError::Journal(_)), "{e:?}");
    assert!(e.to_string().contains("Permission denied"), "{e}");
}

// ---- the syslog-file fallback ----

/// A root filesystem with `var/log/<name>` holding `text`.
fn rootfs_with_log(name: &str, text: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("var/log")).unwrap();
    std::fs::write(root.path().join("var/log").join(name), text).unwrap();
    root
}

/// journalctl as it answers on a host without journal files (systemd 252:
/// this text on stderr, exit status 0).
fn no_journal() -> FakeJournalctl {
    FakeJournalctl::new("echo 'No journal files were found.' >&2")
}

#[test]
fn without_a_journal_the_syslog_file_is_read() {
    let root = rootfs_with_log("syslog", &fixture_text("syslog_rsyslog_highprec.log"));
    let fake = no_journal();
    let got = fetch_system_logs(&fake.sources(root.path()), &LogRequest::default(), now()).unwrap();
    assert_eq!(
        got.origin,
        LogOrigin::File(root.path().join("var/log/syslog"))
    );
    assert_eq!(got.entries.len(), 7);
    let first = &got.entries[0];
    assert_eq!(
        first.timestamp,
        Utc.with_ymd_and_hms(2026, 11, 25, 11, 48, 33).unwrap()
            + chrono::Duration::microseconds(902_332)
    );
    assert_eq!((first.source.as_str(), first.pid), ("sshd", Some(812)));

    // Levels are inferred from words; min_level filters on them.
    let got = fetch_system_logs(
        &fake.sources(root.path()),
        &LogRequest {
            min_level: Some(LogLevel::Warning),
            ..LogRequest::default()
        },
        now(),
    )
    .unwrap();
    let seen: Vec<(&str, LogLevel)> = got
        .entries
        .iter()
        .map(|e| (e.source.as_str(), e.level))
        .collect();
    assert_eq!(
        seen,
        [
            ("sshd", LogLevel::Error),
            ("kernel", LogLevel::Warning),
            ("nginx", LogLevel::Error),
            ("backup.sh", LogLevel::Warning),
        ]
    );

    // A unit matches its program name.
    let got = fetch_system_logs(
        &fake.sources(root.path()),
        &LogRequest {
            unit: Some("sshd.service".into()),
            max_entries: Some(1),
            ..LogRequest::default()
        },
        now(),
    )
    .unwrap();
    assert_eq!(
        messages(&got.entries),
        ["error: kex_exchange_identification: Connection closed by remote host"]
    );
}

#[test]
fn messages_file_in_rfc3164_is_the_second_choice() {
    let root = rootfs_with_log("messages", &fixture_text("syslog_rfc3164.log"));
    // No journalctl at all.
    let sources = LogSources {
        journalctl: root.path().join("no-such-journalctl"),
        ..LogSources::new(root.path())
    };
    let got = fetch_system_logs(&sources, &LogRequest::default(), now()).unwrap();
    assert_eq!(
        got.origin,
        LogOrigin::File(root.path().join("var/log/messages"))
    );
    assert_eq!(got.entries.len(), 7);
    // RFC 3164 stamps are local time without a year.
    let t = got.entries[0].timestamp.with_timezone(&Local);
    assert_eq!(
        (
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        (2026, 11, 25, 11, 48, 33)
    );
    assert_eq!(got.entries[3].source, "CRON");
    assert_eq!(got.entries[3].pid, Some(4100));
    assert_eq!(got.entries[5].pid, None);
}

#[test]
fn rfc5424_lines_carry_their_own_level() {
    let levels: Vec<LogLevel> = fixture_text("syslog_rfc5424.log")
        .lines()
        .map(|l| parse_syslog_line(l, now(), &Utc).unwrap().level)
        .collect();
    assert_eq!(
        levels,
        [
            LogLevel::Info,
            LogLevel::Error,
            LogLevel::Warning,
            LogLevel::Info,
            LogLevel::Notice,
            LogLevel::Warning,
            LogLevel::Info,
        ]
    );
    let e = parse_syslog_line(
        fixture_text("syslog_rfc5424.log").lines().next().unwrap(),
        now(),
        &Utc,
    )
    .unwrap();
    assert_eq!(
        e.message,
        "Accepted publickey for admin from 192.0.2.10 port 50122 ssh2"
    );
    assert_eq!((e.source.as_str(), e.pid), ("sshd", Some(812)));
}

#[test]
fn no_journal_and_no_syslog_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let sources = LogSources {
        journalctl: root.path().join("no-such-journalctl"),
        ..LogSources::new(root.path())
    };
    let e = fetch_system_logs(&sources, &LogRequest::default(), now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no system journal (journalctl not found) and no /var/log/syslog or /var/log/messages"
    );
    let fake = no_journal();
    let e =
        fetch_system_logs(&fake.sources(root.path()), &LogRequest::default(), now()).unwrap_err();
    assert!(
        e.to_string().contains("(no journal files were found)"),
        "{e}"
    );
}

#[test]
fn a_huge_syslog_costs_only_its_tail() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("var/log")).unwrap();
    let path = root.path().join("var/log/syslog");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut n = 0u64;
    let mut written = 0u64;
    while written < 50 << 20 {
        let line = format!(
            "2026-11-25T10:{:02}:{:02}.000000+00:00 web-01 app[77]: line {n} of a large file\n",
            (n / 60) % 60,
            n % 60
        );
        file.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        n += 1;
    }
    file.flush().unwrap();
    drop(file);

    let got = fetch_system_logs(
        &no_journal().sources(root.path()),
        &LogRequest::default(),
        now(),
    )
    .unwrap();
    assert_eq!(got.entries.len(), 200);
    assert_eq!(
        got.entries.last().unwrap().message,
        format!("line {} of a large file", n - 1)
    );
    assert_eq!(
        got.entries[0].message,
        format!("line {} of a large file", n - 200)
    );
    // 200 lines of ~75 bytes: one 64 KiB block, not 50 MiB.
    assert!(got.bytes_read <= 64 << 10, "read {} bytes", got.bytes_read);
}

// ---- through the command ----

fn context(rootfs: &Path) -> CommandContext {
    CommandContext {
        roots: HostRoots {
            rootfs: rootfs.to_path_buf(),
            ..HostRoots::default()
        },
        enabled: true,
        disabled: BTreeSet::new(),
        disk_roots: vec![PathBuf::from("/")],
        restart: None,
        timeout: commands::COMMAND_TIMEOUT,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn the_command_answers_entries_or_says_why_a_container_has_none() {
    let root = rootfs_with_log("syslog", &fixture_text("syslog_rsyslog_highprec.log"));
    let ctx = context(root.path());
    // The system journalctl (if any) finds no journal under this root.
    let value = commands::fetch_logs::run(
        &ctx,
        &LogRequest {
            max_entries: Some(2),
            ..LogRequest::default()
        },
    )
    .await
    .unwrap();
    let entries: Vec<LogEntry> = serde_json::from_value(value).unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.source.as_str())
            .collect::<Vec<_>>(),
        ["backup.sh", "systemd"]
    );

    let e = commands::fetch_logs::run(
        &ctx,
        &LogRequest {
            container: Some("web".into()),
            ..LogRequest::default()
        },
    )
    .await
    .unwrap_err();
    // This test's root has no Docker or Podman socket (tests/container_list.rs
    // fetches container logs from a fake daemon).
    assert!(
        e.starts_with("cannot fetch logs of container web: no Docker or Podman socket"),
        "{e}"
    );
}
