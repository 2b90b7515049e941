//! `process_list` collector: the top N processes by CPU and by memory, plus
//! totals (SPEC §2, Appendix A).
//!
//! - This file: the pure parts. [`parse_pid_stat`] (`/proc/<pid>/stat`,
//!   borrowing, no allocation), [`parse_status_uids`] (`/proc/<pid>/status`),
//!   [`parse_pid_io`] (`/proc/<pid>/io`), [`parse_passwd`] (`/etc/passwd`),
//!   [`format_cmdline`], the state tables [`state_name`] / [`status_class`],
//!   [`cpu_percent`] and the ranking [`select_top`].
//! - `linux.rs`: `ProcessListCollector`, which reads `stat` of every pid into
//!   one reused buffer, ranks, and only then reads `cmdline`, `status`, `io`
//!   (and `task/*/stat`) of the few selected processes.
//! - `unsupported.rs`: every other platform, answering
//!   [`CollectError::Unsupported`](super::CollectError::Unsupported).
//!
//! Definitions (proc(5), kernel `fs/proc/array.c`):
//! - `cpu_percent` is per-core scaled like `top`'s default (Irix mode):
//!   Δ(utime + stime) / `CLK_TCK` / Δwall × 100, so a process keeping two
//!   cores busy shows 200. A process that appeared since the previous sample
//!   (new pid, or a reused pid whose `starttime` changed) counts all of its
//!   ticks: it started inside the interval, so they were all spent in it.
//! - `mem_percent` is RSS / `MemTotal` × 100, `mem_rss` is `stat`'s `rss`
//!   pages × the page size.
//! - `status` is the seed's class of the state letter ([`status_class`]);
//!   `by_state` and `thread_states` use the finer kernel names
//!   ([`state_name`]).
//! - `read_bytes` / `write_bytes` are per-second rates of `/proc/<pid>/io`'s
//!   storage-layer counters. They are `None` (never 0) when the file is not
//!   readable (another user's process without `CAP_SYS_PTRACE`) and on the
//!   first cycle a long-running process enters the top list: `io` is only
//!   read for selected processes, so there is no earlier reading to subtract.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::ProcessListCollector;
#[cfg(not(target_os = "linux"))]
pub use unsupported::ProcessListCollector;

use std::cmp::Ordering;
use std::collections::HashMap;

use super::{Collector, HostRoots, ParseError};

/// How many processes are kept by CPU and, separately, by memory (the list
/// is the union of both, each process once).
pub const DEFAULT_TOP_N: usize = 20;

/// `cmdline` is cut to this many characters (on a character boundary).
pub const CMDLINE_MAX_CHARS: usize = 256;

/// `thread_states` is only counted for selected processes with at most this
/// many threads: it costs one `task/` directory listing plus one `stat` read
/// per thread, and a process with thousands of threads would cost more than
/// the rest of the cycle together.
pub const THREAD_STATES_MAX_THREADS: u64 = 256;

/// The `process_list` collector for this platform: the real one on Linux,
/// one that answers `Unsupported` elsewhere.
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(ProcessListCollector::new(roots))
}

/// The fields of `/proc/<pid>/stat` this collector uses, borrowing the
/// command name from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    pub pid: u32,
    /// `comm`, raw bytes: the kernel prints the task name unescaped, so it
    /// may contain spaces, parentheses and bytes that are not UTF-8.
    pub comm: &'a [u8],
    /// The state letter (`R`, `S`, `D`, `Z`, `T`, `t`, `X`, `I`, ...).
    pub state: u8,
    /// Clock ticks (`CLK_TCK`) in user mode, all threads of the group.
    pub utime: u64,
    /// Clock ticks in kernel mode.
    pub stime: u64,
    pub num_threads: u64,
    /// Clock ticks after boot when the process started: with the pid, the
    /// identity of a process (pids are reused).
    pub starttime: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

impl PidStat<'_> {
    pub fn cpu_ticks(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

/// Parses `/proc/<pid>/stat`.
///
/// `comm` is everything between the first `(` and the **last** `)`: a
/// process can name itself `a) b (c`, and only the last `)` is the kernel's.
/// After it come space-separated fields, numbered from 3 (`state`) as in
/// proc(5): `utime` 14, `stime` 15, `num_threads` 20, `starttime` 22,
/// `rss` 24.
///
/// Takes bytes, not `&str`, because `comm` need not be UTF-8.
pub fn parse_pid_stat(text: &[u8]) -> Result<PidStat<'_>, ParseError> {
    const WHAT: &str = "/proc/<pid>/stat";
    let open = text
        .iter()
        .position(|&b| b == b'(')
        .ok_or_else(|| ParseError::new(WHAT, "no '(' before the command name"))?;
    let close = text
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&close| close > open)
        .ok_or_else(|| ParseError::new(WHAT, "no ')' after the command name"))?;
    let pid = parse_decimal(trim_ascii(&text[..open]))
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| ParseError::new(WHAT, "bad pid"))?;
    let comm = &text[open + 1..close];

    // Field N of proc(5) is at index N - 3 after the command name.
    let mut fields = text[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = match fields.next() {
        Some([letter]) => *letter,
        _ => return Err(ParseError::new(WHAT, "bad state field")),
    };
    let mut number = |skip: usize, name: &'static str| {
        fields
            .nth(skip)
            .and_then(parse_decimal)
            .ok_or_else(|| ParseError::new(WHAT, format!("missing or bad field {name}")))
    };
    // After state (3): skip 4..=13, read 14, 15; skip 16..=19, read 20;
    // skip 21, read 22; skip 23, read 24.
    let utime = number(10, "utime")?;
    let stime = number(0, "stime")?;
    let num_threads = number(4, "num_threads")?;
    let starttime = number(1, "starttime")?;
    let rss_pages = number(1, "rss")?;
    Ok(PidStat {
        pid,
        comm,
        state,
        utime,
        stime,
        num_threads,
        starttime,
        rss_pages,
    })
}

/// The state letter of a `/proc/<pid>/task/<tid>/stat` line, without
/// parsing the rest (counting thread states reads many of them).
pub fn parse_stat_state(text: &[u8]) -> Option<u8> {
    let close = text.iter().rposition(|&b| b == b')')?;
    match text.get(close + 1..close + 3)? {
        [b' ', letter] => Some(*letter),
        _ => None,
    }
}

/// The real and effective uid from the `Uid:` line of `/proc/<pid>/status`
/// (`Uid:\t<real>\t<effective>\t<saved>\t<filesystem>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusUids {
    pub real: u32,
    pub effective: u32,
}

/// Parses the `Uid:` line of `/proc/<pid>/status` (bytes: the `Name:` line
/// before it may hold a name that is not UTF-8).
pub fn parse_status_uids(text: &[u8]) -> Result<StatusUids, ParseError> {
    const WHAT: &str = "/proc/<pid>/status";
    let line = text
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Uid:"))
        .ok_or_else(|| ParseError::new(WHAT, "no Uid: line"))?;
    let mut ids = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .map(|f| parse_decimal(f).and_then(|v| u32::try_from(v).ok()));
    match (ids.next(), ids.next()) {
        (Some(Some(real)), Some(Some(effective))) => Ok(StatusUids { real, effective }),
        _ => Err(ParseError::new(WHAT, "bad Uid: line")),
    }
}

/// The storage-layer byte counters of `/proc/<pid>/io`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidIo {
    /// Bytes this process caused to be fetched from storage.
    pub read_bytes: u64,
    /// Bytes this process caused to be sent to storage.
    pub write_bytes: u64,
}

/// Parses `/proc/<pid>/io`. `read_bytes` / `write_bytes` are the counters of
/// real storage I/O (`rchar` / `wchar` also count reads from the page cache
/// and pipes, which is not disk traffic).
pub fn parse_pid_io(text: &str) -> Result<PidIo, ParseError> {
    const WHAT: &str = "/proc/<pid>/io";
    let (mut read, mut write) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "read_bytes" => &mut read,
            "write_bytes" => &mut write,
            _ => continue,
        };
        *slot = Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| ParseError::new(WHAT, format!("bad {key} value {value:?}")))?,
        );
    }
    match (read, write) {
        (Some(read_bytes), Some(write_bytes)) => Ok(PidIo {
            read_bytes,
            write_bytes,
        }),
        _ => Err(ParseError::new(WHAT, "no read_bytes/write_bytes lines")),
    }
}

/// Parses `/etc/passwd` (`name:password:uid:gid:gecos:home:shell`) into
/// uid → name. The first entry of a uid wins, as `getpwuid(3)` on files
/// does; comments, blank and malformed lines (and NIS `+`/`-` entries) are
/// skipped.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_password), Some(uid)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(uid) = uid.trim().parse::<u32>() {
            names.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    names
}

/// `/proc/<pid>/cmdline` as one line: the NUL separators become spaces,
/// trailing NULs are dropped, bytes that are not UTF-8 become U+FFFD, and
/// the result is cut to [`CMDLINE_MAX_CHARS`] characters. `None` when empty
/// (kernel threads and zombies have no command line).
pub fn format_cmdline(raw: &[u8]) -> Option<String> {
    let end = raw.iter().rposition(|&b| b != 0)? + 1;
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut line: String = text
        .chars()
        .take(CMDLINE_MAX_CHARS)
        .map(|c| if c == '\0' { ' ' } else { c })
        .collect();
    line.shrink_to_fit();
    Some(line)
}

/// The seed's class (Appendix A: `running`, `runnable`, `waiting`, `other`)
/// of a Linux state letter:
///
/// | letter | kernel meaning | class |
/// |---|---|---|
/// | `R` | running or on the run queue | `running` |
/// | `S` | interruptible sleep (waiting for an event) | `waiting` |
/// | `D` | uninterruptible sleep (usually disk I/O) | `waiting` |
/// | `I` | idle kernel thread (waiting for work) | `waiting` |
/// | `T`, `t`, `Z`, `X`, `x`, `K`, `W`, `P`, other | stopped, traced, zombie, dead, ... | `other` |
///
/// Linux never yields `runnable`: its `R` covers both a task on a CPU and
/// one queued for a CPU, and `/proc/<pid>/stat` cannot tell them apart.
pub fn status_class(state: u8) -> &'static str {
    match state {
        b'R' => "running",
        b'S' | b'D' | b'I' => "waiting",
        _ => "other",
    }
}

/// The name of a state letter in `by_state` and `thread_states` (proc(5)).
pub fn state_name(state: u8) -> &'static str {
    match state {
        b'R' => "running",
        b'S' => "sleeping",
        b'D' => "disk_sleep",
        b'T' => "stopped",
        b't' => "tracing_stop",
        b'Z' => "zombie",
        b'X' | b'x' => "dead",
        b'I' => "idle",
        b'K' => "wakekill",
        b'W' => "waking",
        b'P' => "parked",
        _ => "unknown",
    }
}

/// CPU use over an interval, per-core scaled (`top`'s default): 100 is one
/// core fully busy, a multi-threaded process can exceed 100. `None` when no
/// time passed or `clk_tck` is 0.
pub fn cpu_percent(delta_ticks: u64, clk_tck: u64, elapsed_secs: f64) -> Option<f64> {
    if clk_tck == 0 || elapsed_secs <= 0.0 || !elapsed_secs.is_finite() {
        return None;
    }
    Some(delta_ticks as f64 / clk_tck as f64 / elapsed_secs * 100.0)
}

/// What a process is ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankKey {
    pub pid: u32,
    /// CPU ticks used in the interval (same interval for every process, so
    /// ranking by ticks is ranking by CPU %).
    pub cpu_ticks: u64,
    pub rss_pages: u64,
}

/// CPU first, then memory, then the lower pid: a total order, so the list
/// is the same for the same input.
fn compare_by_cpu(a: &RankKey, b: &RankKey) -> Ordering {
    b.cpu_ticks
        .cmp(&a.cpu_ticks)
        .then(b.rss_pages.cmp(&a.rss_pages))
        .then(a.pid.cmp(&b.pid))
}

fn compare_by_memory(a: &RankKey, b: &RankKey) -> Ordering {
    b.rss_pages
        .cmp(&a.rss_pages)
        .then(b.cpu_ticks.cmp(&a.cpu_ticks))
        .then(a.pid.cmp(&b.pid))
}

/// Indices into `keys` of the top `top_n` by CPU and the top `top_n` by
/// memory, each once, written to `out` ordered by CPU (then memory, then
/// pid). `scratch` is a reused work list. O(n) selection, then a sort of at
/// most `2 × top_n` entries.
pub fn select_top(keys: &[RankKey], top_n: usize, scratch: &mut Vec<usize>, out: &mut Vec<usize>) {
    out.clear();
    if top_n == 0 || keys.is_empty() {
        return;
    }
    let comparators: [fn(&RankKey, &RankKey) -> Ordering; 2] = [compare_by_cpu, compare_by_memory];
    for compare in comparators {
        scratch.clear();
        scratch.extend(0..keys.len());
        if scratch.len() > top_n {
            scratch.select_nth_unstable_by(top_n - 1, |&a, &b| compare(&keys[a], &keys[b]));
            scratch.truncate(top_n);
        }
        out.extend_from_slice(scratch);
    }
    out.sort_unstable_by(|&a, &b| compare_by_cpu(&keys[a], &keys[b]));
    out.dedup();
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

/// An unsigned decimal from ASCII digits; `None` on anything else or
/// overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture;

    const DIR: &str = "linux/process_list";

    fn fixture_bytes(path: &str) -> Vec<u8> {
        let full = format!("{}/tests/fixtures/{DIR}/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    #[test]
    fn parses_stat_of_pid_1_captured_on_this_vm() {
        let text = fixture_bytes("pid1/stat");
        let s = parse_pid_stat(&text).unwrap();
        assert_eq!(s.pid, 1);
        assert_eq!(s.comm, b"process_api");
        assert_eq!(s.state, b'S');
        assert_eq!((s.utime, s.stime), (284, 1810));
        assert_eq!(s.cpu_ticks(), 2094);
        assert_eq!(s.num_threads, 14);
        assert_eq!(s.starttime, 22);
        assert_eq!(s.rss_pages, 3475);
    }

    #[test]
    fn parses_comm_with_parentheses_and_spaces_up_to_the_last_paren() {
        let text = fixture_bytes("paren-name/stat");
        let s = parse_pid_stat(&text).unwrap();
        assert_eq!(s.comm, b"a) b (c");
        assert_eq!((s.pid, s.state, s.num_threads), (30468, b'S', 1));
        assert_eq!(s.starttime, 552_811);
        assert_eq!(s.rss_pages, 412);

        let text = fixture_bytes("sd-pam/stat");
        let s = parse_pid_stat(&text).unwrap();
        assert_eq!(s.comm, b"(sd-pam)");
        assert_eq!(s.rss_pages, 413);
    }

    #[test]
    fn parses_zombie_and_kernel_threads() {
        let text = fixture_bytes("zombie/stat");
        let z = parse_pid_stat(&text).unwrap();
        assert_eq!((z.comm, z.state, z.rss_pages), (&b"sleep"[..], b'Z', 0));
        assert_eq!(status_class(z.state), "other");
        assert_eq!(state_name(z.state), "zombie");

        let text = fixture_bytes("kthreadd/stat");
        let k = parse_pid_stat(&text).unwrap();
        assert_eq!((k.pid, k.comm, k.rss_pages), (2, &b"kthreadd"[..], 0));
        let text = fixture_bytes("kworker-long-name/stat");
        let long = parse_pid_stat(&text).unwrap();
        // Longer than TASK_COMM_LEN: kernel threads print their full name.
        assert_eq!(long.comm, b"rcu_exp_par_gp_kthread_worker/0");
    }

    #[test]
    fn parses_comm_that_is_not_utf8_and_rejects_truncated_lines() {
        let s = parse_pid_stat(b"7 (a\xff\n) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 3 0 99 0 12\n")
            .unwrap();
        assert_eq!(s.comm, b"a\xff\n");
        assert_eq!((s.state, s.cpu_ticks(), s.num_threads), (b'R', 11, 3));
        assert_eq!((s.starttime, s.rss_pages), (99, 12));

        let err = parse_pid_stat(b"7 (x) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 3 0 99").unwrap_err();
        assert!(err.message.contains("rss"), "{err}");
        assert!(parse_pid_stat(b"7 x R").is_err());
        assert!(parse_pid_stat(b"").is_err());
        assert!(parse_pid_stat(b"x (y) R 1")
            .unwrap_err()
            .message
            .contains("pid"));
    }

    #[test]
    fn reads_the_state_letter_of_thread_stat_lines() {
        for tid in ["1", "59", "2237"] {
            let text = fixture_bytes(&format!("pid1/task/{tid}/stat"));
            assert_eq!(parse_stat_state(&text), Some(b'S'), "tid {tid}");
        }
        assert_eq!(parse_stat_state(b"3 (a) b) R 0"), Some(b'R'));
        assert_eq!(parse_stat_state(b"3 (a"), None);
    }

    #[test]
    fn parses_uids_from_status() {
        let nobody = parse_status_uids(&fixture_bytes("nobody/status")).unwrap();
        assert_eq!(
            nobody,
            StatusUids {
                real: 65534,
                effective: 65534
            }
        );
        let root = parse_status_uids(&fixture_bytes("pid1/status")).unwrap();
        assert_eq!(root.effective, 0);
        assert!(parse_status_uids(b"Name:\tx\nGid:\t0\t0\t0\t0\n").is_err());
        assert!(parse_status_uids(b"Uid:\tx\t0\n").is_err());
    }

    #[test]
    fn parses_io_counters() {
        let io = parse_pid_io(&test_fixture(&format!("{DIR}/nobody/io"))).unwrap();
        assert_eq!(
            io,
            PidIo {
                read_bytes: 110_592,
                write_bytes: 0
            }
        );
        let io = parse_pid_io(&test_fixture(&format!("{DIR}/bash-self/io"))).unwrap();
        assert_eq!(io.write_bytes, 12_288);
        // cancelled_write_bytes must not be taken for write_bytes.
        let io = parse_pid_io("write_bytes: 5\nread_bytes: 4\ncancelled_write_bytes: 9\n").unwrap();
        assert_eq!((io.read_bytes, io.write_bytes), (4, 5));
        assert!(parse_pid_io("rchar: 1\n").is_err());
        assert!(parse_pid_io("read_bytes: x\nwrite_bytes: 1\n").is_err());
    }

    #[test]
    fn parses_passwd_first_entry_wins_and_skips_junk() {
        let names = parse_passwd(&test_fixture(&format!("{DIR}/passwd")));
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&65534).map(String::as_str), Some("nobody"));
        let names = parse_passwd(
            "# c\n\nalice:x:1000:1000::/h:/bin/sh\nalias:x:1000:1\n+nis\nbad\nbob:x:zz:1\n",
        );
        assert_eq!(names.len(), 1);
        assert_eq!(names[&1000], "alice");
    }

    #[test]
    fn formats_cmdline_with_spaces_and_truncates_on_char_boundary() {
        let raw = fixture_bytes("bash-self/cmdline");
        let line = format_cmdline(&raw).unwrap();
        assert!(line.starts_with("bash -c for f in stat"), "{line}");
        assert!(!line.contains('\0') && !line.ends_with(' '));
        assert_eq!(
            format_cmdline(&fixture_bytes("paren-name/cmdline")).as_deref(),
            Some("/tmp/plfix/a) b (c 30")
        );
        // Kernel threads and zombies: empty cmdline.
        assert_eq!(format_cmdline(&fixture_bytes("kthreadd/cmdline")), None);
        assert_eq!(format_cmdline(&fixture_bytes("zombie/cmdline")), None);
        assert_eq!(format_cmdline(b"\0\0"), None);

        let long = "é".repeat(300);
        let line = format_cmdline(long.as_bytes()).unwrap();
        assert_eq!(line.chars().count(), CMDLINE_MAX_CHARS);
        assert_eq!(line.len(), CMDLINE_MAX_CHARS * 2);
        assert_eq!(format_cmdline(b"a\xffb\0").as_deref(), Some("a\u{fffd}b"));
    }

    #[test]
    fn maps_state_letters_to_classes_and_names() {
        assert_eq!(status_class(b'R'), "running");
        for s in [b'S', b'D', b'I'] {
            assert_eq!(status_class(s), "waiting");
        }
        for s in [b'T', b't', b'Z', b'X', b'?'] {
            assert_eq!(status_class(s), "other");
        }
        assert_eq!(state_name(b'D'), "disk_sleep");
        assert_eq!(state_name(b'I'), "idle");
        assert_eq!(state_name(b't'), "tracing_stop");
        assert_eq!(state_name(b'?'), "unknown");
    }

    #[test]
    fn cpu_percent_is_per_core_scaled() {
        // 150 ticks at 100 Hz in 1 s: one and a half cores.
        assert_eq!(cpu_percent(150, 100, 1.0), Some(150.0));
        assert_eq!(cpu_percent(25, 100, 0.5), Some(50.0));
        assert_eq!(cpu_percent(25, 100, 0.0), None);
        assert_eq!(cpu_percent(25, 0, 1.0), None);
    }

    fn key(pid: u32, cpu_ticks: u64, rss_pages: u64) -> RankKey {
        RankKey {
            pid,
            cpu_ticks,
            rss_pages,
        }
    }

    fn pids_of(keys: &[RankKey], top_n: usize) -> Vec<u32> {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        select_top(keys, top_n, &mut scratch, &mut out);
        out.iter().map(|&i| keys[i].pid).collect()
    }

    #[test]
    fn selects_union_of_top_cpu_and_top_memory_each_once() {
        let keys = [
            key(10, 0, 10),
            key(11, 50, 1),   // top cpu
            key(12, 40, 500), // top cpu and top memory
            key(13, 0, 900),  // top memory
            key(14, 1, 2),
            key(15, 30, 3),
        ];
        // CPU top 2: 11, 12; memory top 2: 13, 12. Ordered by CPU.
        assert_eq!(pids_of(&keys, 2), vec![11, 12, 13]);
        assert_eq!(pids_of(&keys, 1), vec![11, 13]);
        assert_eq!(pids_of(&keys, 0), Vec::<u32>::new());
        // More slots than processes: everyone, once.
        assert_eq!(pids_of(&keys, 20), vec![11, 12, 15, 14, 13, 10]);
    }

    #[test]
    fn ties_break_by_memory_then_pid() {
        let keys = [key(3, 0, 5), key(1, 0, 5), key(2, 0, 7)];
        assert_eq!(pids_of(&keys, 2), vec![2, 1]);
    }
}
