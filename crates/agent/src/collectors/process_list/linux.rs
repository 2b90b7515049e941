//! Linux `process_list`: `<procfs>/<pid>/stat` of every process, then
//! `cmdline`, `status`, `io` and `task/*/stat` of the selected few.
//!
//! Cost model (SPEC §7): the per-process work is one `open` + `read` of
//! `stat` into one reused buffer and a parse that borrows from it; nothing
//! per process is allocated by this module except the directory entry that
//! `std::fs::read_dir` hands out. The previous sample lives in one `HashMap`
//! updated in place (entries of exited processes are dropped with `retain`),
//! so steady state reuses the same allocations. Only after ranking are the
//! selected processes' other files read: at most `2 × top_n` × (cmdline +
//! status + io) plus, for multi-threaded ones with at most
//! [`THREAD_STATES_MAX_THREADS`] threads, one `task/` listing and one read
//! per thread.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use spectra_protocol::{MetricData, ProcessInfo, ProcessListMetric};

use super::{
    cpu_percent, format_cmdline, parse_passwd, parse_pid_io, parse_pid_stat, parse_stat_state,
    parse_status_uids, select_top, state_name, status_class, PidIo, RankKey, CMDLINE_MAX_CHARS,
    DEFAULT_TOP_N, THREAD_STATES_MAX_THREADS,
};
use crate::collectors::memory::parse_meminfo;
use crate::collectors::rate::{delta_counter, CounterWidth};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

/// Bytes read at most from one small `/proc` file (`stat`, `status`, `io`):
/// far more than they hold, a bound in case of a surprise.
const SMALL_FILE_MAX_BYTES: usize = 16 * 1024;
/// Enough bytes for [`CMDLINE_MAX_CHARS`] characters of up to 4 bytes each,
/// plus one partial character; a command line can be megabytes long.
const CMDLINE_MAX_BYTES: usize = CMDLINE_MAX_CHARS * 4 + 4;
/// Kernel task names are at most 64 bytes with the NUL (`TASK_COMM_EXT_LEN`
/// for kernel threads); longer ones are cut.
const COMM_MAX_BYTES: usize = 64;

/// Keeps, per pid, the previous CPU ticks and start time (for rates and to
/// tell a reused pid), and the previous `io` counters of selected processes.
pub struct ProcessListCollector {
    procfs: PathBuf,
    meminfo_path: PathBuf,
    top_n: usize,
    clk_tck: u64,
    page_size: u64,
    users: UserNames,
    /// Reused path and read buffers.
    path: PathBuf,
    buf: ReadBuf,
    meminfo_text: String,
    prev: HashMap<u32, PrevSample>,
    prev_at: Option<Instant>,
    /// Marks the `prev` entries seen in the current scan.
    generation: u32,
    candidates: Vec<Candidate>,
    keys: Vec<RankKey>,
    scratch: Vec<usize>,
    selected: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct PrevSample {
    starttime: u64,
    cpu_ticks: u64,
    /// Only kept for a process whose `io` was read in the previous cycle.
    io: Option<PidIo>,
    generation: u32,
}

/// One process of the current scan: what ranking and the output need from
/// its `stat`, copied out of the shared read buffer.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    pid: u32,
    state: u8,
    num_threads: u64,
    rss_pages: u64,
    cpu_ticks_delta: u64,
    /// Not in the previous sample: started during the interval.
    is_new: bool,
    prev_io: Option<PidIo>,
    comm: [u8; COMM_MAX_BYTES],
    comm_len: u8,
}

impl Candidate {
    fn comm(&self) -> &[u8] {
        &self.comm[..usize::from(self.comm_len)]
    }
}

/// Per-state process counts of one scan, indexed by [`state_slot`].
const STATE_LETTERS: [u8; 13] = [
    b'R', b'S', b'D', b'T', b't', b'Z', b'X', b'x', b'I', b'K', b'W', b'P', b'?',
];

fn state_slot(state: u8) -> usize {
    STATE_LETTERS
        .iter()
        .position(|&l| l == state)
        .unwrap_or(STATE_LETTERS.len() - 1)
}

impl ProcessListCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self::with_top_n(roots, DEFAULT_TOP_N)
    }

    /// A collector keeping `top_n` processes by CPU and `top_n` by memory.
    pub fn with_top_n(roots: &HostRoots, top_n: usize) -> Self {
        Self {
            procfs: roots.procfs.clone(),
            meminfo_path: roots.procfs.join("meminfo"),
            top_n,
            clk_tck: read_clk_tck(),
            page_size: read_page_size(),
            users: UserNames::new(roots.rootfs.join("etc/passwd")),
            path: PathBuf::new(),
            buf: ReadBuf::default(),
            meminfo_text: String::new(),
            prev: HashMap::new(),
            prev_at: None,
            generation: 0,
            candidates: Vec::new(),
            keys: Vec::new(),
            scratch: Vec::new(),
            selected: Vec::new(),
        }
    }

    /// Reads `stat` of every process into `candidates` and updates `prev`.
    fn scan_processes(&mut self) -> Result<ScanTotals, CollectError> {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        self.candidates.clear();
        self.keys.clear();
        let mut totals = ScanTotals::default();

        let entries = std::fs::read_dir(&self.procfs).map_err(|source| CollectError::Io {
            path: self.procfs.clone(),
            source,
        })?;
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            set_pid_path(&mut self.path, &self.procfs, pid, "stat");
            if let Err(e) = self.buf.read_from(&self.path, SMALL_FILE_MAX_BYTES) {
                if !is_gone(&e) {
                    tracing::debug!(pid, error = %e, "process_list: stat unreadable, skipped");
                }
                continue;
            }
            let stat = match parse_pid_stat(self.buf.bytes()) {
                Ok(stat) => stat,
                // An exited process can leave an empty file behind.
                Err(_) if self.buf.bytes().is_empty() => continue,
                Err(e) => {
                    tracing::debug!(pid, error = %e, "process_list: bad stat, skipped");
                    continue;
                }
            };

            totals.processes += 1;
            totals.threads = totals.threads.saturating_add(stat.num_threads);
            totals.by_state[state_slot(stat.state)] += 1;

            let ticks = stat.cpu_ticks();
            let fresh = PrevSample {
                starttime: stat.starttime,
                cpu_ticks: ticks,
                io: None,
                generation,
            };
            // A pid not seen before, or seen with another start time (the
            // pid was reused), started during the interval: all its ticks
            // are this interval's.
            let (cpu_ticks_delta, is_new, prev_io) = match self.prev.entry(pid) {
                Entry::Occupied(mut slot) => {
                    let prev = slot.insert(fresh);
                    if prev.starttime == stat.starttime {
                        let delta = delta_counter(prev.cpu_ticks, ticks, CounterWidth::Bits64)
                            .grown()
                            .unwrap_or(0);
                        (delta, false, prev.io)
                    } else {
                        (ticks, true, None)
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(fresh);
                    (ticks, true, None)
                }
            };

            let mut comm = [0u8; COMM_MAX_BYTES];
            let comm_len = stat.comm.len().min(COMM_MAX_BYTES);
            comm[..comm_len].copy_from_slice(&stat.comm[..comm_len]);
            self.candidates.push(Candidate {
                pid,
                state: stat.state,
                num_threads: stat.num_threads,
                rss_pages: stat.rss_pages,
                cpu_ticks_delta,
                is_new,
                prev_io,
                comm,
                comm_len: comm_len as u8,
            });
            self.keys.push(RankKey {
                pid,
                cpu_ticks: cpu_ticks_delta,
                rss_pages: stat.rss_pages,
            });
        }
        self.prev.retain(|_, p| p.generation == generation);
        Ok(totals)
    }

    /// Everything reported for one selected process; reads its `cmdline`,
    /// `status`, `io` and thread states. A file that cannot be read (the
    /// process exited meanwhile, or `io` of another user's process) leaves
    /// that field `None`.
    fn describe(
        &mut self,
        candidate: &Candidate,
        elapsed_secs: f64,
        mem_total_bytes: u64,
    ) -> ProcessInfo {
        let pid = candidate.pid;
        let mem_rss = candidate.rss_pages.saturating_mul(self.page_size);
        let mem_percent = if mem_total_bytes > 0 {
            mem_rss as f64 / mem_total_bytes as f64 * 100.0
        } else {
            0.0
        };
        let cpu = cpu_percent(candidate.cpu_ticks_delta, self.clk_tck, elapsed_secs).unwrap_or(0.0);

        set_pid_path(&mut self.path, &self.procfs, pid, "cmdline");
        let cmdline = match self.buf.read_from(&self.path, CMDLINE_MAX_BYTES) {
            Ok(()) => format_cmdline(self.buf.bytes()),
            Err(_) => None,
        };

        set_pid_path(&mut self.path, &self.procfs, pid, "status");
        let user = match self.buf.read_from(&self.path, SMALL_FILE_MAX_BYTES) {
            // The effective uid, as `ps -o user` and `top` show.
            Ok(()) => parse_status_uids(self.buf.bytes())
                .ok()
                .map(|uids| self.users.name_of(uids.effective)),
            Err(_) => None,
        };

        let (read_bytes, write_bytes) = self.read_io_rates(candidate, elapsed_secs);
        let thread_states = self.read_thread_states(candidate);

        ProcessInfo {
            pid,
            name: String::from_utf8_lossy(candidate.comm()).into_owned(),
            cpu_percent: round_hundredths(cpu),
            mem_percent: round_hundredths(mem_percent),
            mem_rss,
            status: status_class(candidate.state).to_owned(),
            threads_total: u32::try_from(candidate.num_threads).unwrap_or(u32::MAX),
            cmdline,
            user,
            read_bytes,
            write_bytes,
            thread_states,
        }
    }

    /// Reads `io` and turns it into rates against the previous cycle's
    /// reading (kept only when the process was selected then), or against
    /// zero for a process that started during the interval (its counters
    /// start at zero). Unreadable (another user's process, not root or no
    /// `CAP_SYS_PTRACE`): `None`, never 0.
    fn read_io_rates(
        &mut self,
        candidate: &Candidate,
        elapsed_secs: f64,
    ) -> (Option<f64>, Option<f64>) {
        set_pid_path(&mut self.path, &self.procfs, candidate.pid, "io");
        if let Err(e) = self.buf.read_from(&self.path, SMALL_FILE_MAX_BYTES) {
            if !is_gone(&e) && e.kind() != io::ErrorKind::PermissionDenied {
                tracing::debug!(pid = candidate.pid, error = %e, "process_list: io unreadable");
            }
            return (None, None);
        }
        let Some(io) = std::str::from_utf8(self.buf.bytes())
            .ok()
            .and_then(|text| parse_pid_io(text).ok())
        else {
            return (None, None);
        };
        if let Some(prev) = self.prev.get_mut(&candidate.pid) {
            prev.io = Some(io);
        }
        let base = match (candidate.prev_io, candidate.is_new) {
            (Some(prev), _) => prev,
            (None, true) => PidIo::default(),
            (None, false) => return (None, None),
        };
        if elapsed_secs <= 0.0 {
            return (None, None);
        }
        let rate = |prev: u64, cur: u64| {
            delta_counter(prev, cur, CounterWidth::Bits64)
                .grown()
                .map(|d| round_hundredths(d as f64 / elapsed_secs))
        };
        (
            rate(base.read_bytes, io.read_bytes),
            rate(base.write_bytes, io.write_bytes),
        )
    }

    /// Thread states from `task/*/stat`: free for a single-threaded process
    /// (its one thread is in the process's state), one listing plus one read
    /// per thread otherwise, skipped (`None`) above
    /// [`THREAD_STATES_MAX_THREADS`] threads.
    fn read_thread_states(&mut self, candidate: &Candidate) -> Option<BTreeMap<String, u32>> {
        if candidate.num_threads <= 1 {
            return Some(BTreeMap::from([(
                state_name(candidate.state).to_owned(),
                1,
            )]));
        }
        if candidate.num_threads > THREAD_STATES_MAX_THREADS {
            return None;
        }
        set_pid_path(&mut self.path, &self.procfs, candidate.pid, "task");
        let tasks = std::fs::read_dir(&self.path).ok()?;
        let mut counts = [0u32; STATE_LETTERS.len()];
        for entry in tasks {
            let Ok(entry) = entry else { continue };
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            set_task_stat_path(&mut self.path, &self.procfs, candidate.pid, tid);
            // A thread that exits meanwhile is just not counted.
            if self
                .buf
                .read_from(&self.path, SMALL_FILE_MAX_BYTES)
                .is_err()
            {
                continue;
            }
            if let Some(state) = parse_stat_state(self.buf.bytes()) {
                counts[state_slot(state)] += 1;
            }
        }
        let states: BTreeMap<String, u32> = STATE_LETTERS
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .fold(BTreeMap::new(), |mut map, (&letter, n)| {
                *map.entry(state_name(letter).to_owned()).or_insert(0) += n;
                map
            });
        (!states.is_empty()).then_some(states)
    }
}

#[derive(Debug, Default)]
struct ScanTotals {
    processes: u64,
    threads: u64,
    by_state: [u64; STATE_LETTERS.len()],
}

impl Collector for ProcessListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ProcessList
    }

    fn is_rate_based(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        self.collect_at(Instant::now())
    }
}

impl ProcessListCollector {
    /// One cycle measured at `at` (tests pass their own instants so rates
    /// are exact).
    fn collect_at(&mut self, at: Instant) -> Result<Vec<MetricData>, CollectError> {
        let totals = self.scan_processes()?;
        let Some(prev_at) = self.prev_at.replace(at) else {
            return Ok(Vec::new());
        };
        let elapsed_secs = at.saturating_duration_since(prev_at).as_secs_f64();

        read_file_into(&self.meminfo_path, &mut self.meminfo_text)?;
        let mem_total_bytes = parse_meminfo(&self.meminfo_text)?.mem_total;
        self.users.refresh();

        select_top(
            &self.keys,
            self.top_n,
            &mut self.scratch,
            &mut self.selected,
        );
        let selected = std::mem::take(&mut self.selected);
        let mut processes = Vec::with_capacity(selected.len());
        for &index in &selected {
            let candidate = self.candidates[index];
            processes.push(self.describe(&candidate, elapsed_secs, mem_total_bytes));
        }
        self.selected = selected;

        let mut by_state = BTreeMap::new();
        for (&letter, &count) in STATE_LETTERS.iter().zip(&totals.by_state) {
            if count > 0 {
                *by_state.entry(state_name(letter).to_owned()).or_insert(0) += count;
            }
        }
        Ok(vec![MetricData::ProcessList(ProcessListMetric {
            processes,
            total_processes: Some(totals.processes),
            total_threads: Some(totals.threads),
            by_state: Some(by_state),
        })])
    }
}

/// Maps uids to names from `<rootfs>/etc/passwd`, parsed once and parsed
/// again only when the file's modification time or size changes.
struct UserNames {
    path: PathBuf,
    loaded: bool,
    stamp: Option<(SystemTime, u64)>,
    names: HashMap<u32, String>,
    text: String,
}

impl UserNames {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            loaded: false,
            stamp: None,
            names: HashMap::new(),
            text: String::new(),
        }
    }

    /// One `stat` of the file per cycle; a re-parse only when it changed.
    fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if self.loaded && stamp == self.stamp {
            return;
        }
        self.loaded = true;
        self.stamp = stamp;
        self.names = match read_file_into(&self.path, &mut self.text) {
            Ok(()) => parse_passwd(&self.text),
            Err(e) => {
                tracing::debug!(error = %e, "process_list: no passwd, users shown as uids");
                HashMap::new()
            }
        };
        self.text = String::new();
    }

    /// The user name of `uid`, or the uid as a string when passwd has none
    /// (users from LDAP/NSS, or a container's own users).
    fn name_of(&self, uid: u32) -> String {
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

/// A read buffer that stays allocated and initialised between reads, so a
/// read costs `open` + `read` + `close` and no allocation once it has grown.
#[derive(Default)]
struct ReadBuf {
    data: Vec<u8>,
    len: usize,
}

impl ReadBuf {
    /// Replaces the contents with at most `max_len` bytes of `path`.
    fn read_from(&mut self, path: &Path, max_len: usize) -> io::Result<()> {
        self.len = 0;
        let mut file = File::open(path)?;
        loop {
            if self.len == self.data.len() {
                if self.data.len() >= max_len {
                    return Ok(());
                }
                let grown = (self.data.len() * 2).clamp(1024, max_len);
                self.data.resize(grown, 0);
            }
            match file.read(&mut self.data[self.len..]) {
                Ok(0) => return Ok(()),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// A process that exited between listing `<procfs>` and reading its files:
/// `ENOENT` on open, `ESRCH` on read.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// `<procfs>/<pid>/<file>` into the reused `path`.
fn set_pid_path(path: &mut PathBuf, procfs: &Path, pid: u32, file: &str) {
    let s = path.as_mut_os_string();
    s.clear();
    s.push(procfs.as_os_str());
    // Writing into an OsString cannot fail.
    let _ = write!(s, "/{pid}/{file}");
}

/// `<procfs>/<pid>/task/<tid>/stat` into the reused `path`.
fn set_task_stat_path(path: &mut PathBuf, procfs: &Path, pid: u32, tid: u32) {
    let s = path.as_mut_os_string();
    s.clear();
    s.push(procfs.as_os_str());
    let _ = write!(s, "/{pid}/task/{tid}/stat");
}

fn round_hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// `CLK_TCK` (`USER_HZ`), the unit of `stat`'s times; 100 on every
/// mainstream architecture, used if `sysconf` fails.
fn read_clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions and only returns a value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The page size, the unit of `stat`'s `rss`; 4096 if `sysconf` fails.
fn read_page_size() -> u64 {
    // SAFETY: sysconf has no preconditions and only returns a value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/linux/process_list"
    );

    /// A procfs + rootfs tree in a temporary directory.
    struct Tree {
        dir: tempfile::TempDir,
        roots: HostRoots,
    }

    impl Tree {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let roots = HostRoots {
                procfs: dir.path().join("proc"),
                sysfs: dir.path().join("sys"),
                rootfs: dir.path().join("root"),
            };
            std::fs::create_dir_all(&roots.procfs).unwrap();
            std::fs::create_dir_all(roots.rootfs.join("etc")).unwrap();
            // 1 GiB of RAM, so mem_percent is easy to check.
            std::fs::write(
                roots.procfs.join("meminfo"),
                "MemTotal: 1048576 kB\nMemFree: 524288 kB\nMemAvailable: 524288 kB\n",
            )
            .unwrap();
            std::fs::write(roots.procfs.join("uptime"), "1.0 1.0\n").unwrap();
            Self { dir, roots }
        }

        fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
            let path = self.roots.procfs.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn passwd(&self, text: &str) {
            std::fs::write(self.roots.rootfs.join("etc/passwd"), text).unwrap();
        }

        /// A process with a synthetic `stat` (fields as proc(5) numbers them).
        fn process(&self, pid: u32, comm: &str, state: char, ticks: u64, start: u64, rss: u64) {
            self.write(
                &format!("{pid}/stat"),
                format!(
                    "{pid} ({comm}) {state} 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} 0 {rss} 0\n"
                ),
            );
            self.write(&format!("{pid}/cmdline"), format!("/bin/{comm}\0--flag\0"));
            self.write(
                &format!("{pid}/status"),
                "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n",
            );
        }

        /// A captured fixture directory installed as `<procfs>/<pid>/`.
        fn install(&self, fixture: &str, pid: u32) {
            copy_tree(
                &Path::new(FIXTURES).join(fixture),
                &self.roots.procfs.join(pid.to_string()),
            );
        }

        fn collector(&self, top_n: usize) -> ProcessListCollector {
            let mut c = ProcessListCollector::with_top_n(&self.roots, top_n);
            // Fixed units so the expected numbers do not depend on the host.
            c.clk_tck = 100;
            c.page_size = 4096;
            c
        }
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    fn metric(out: Vec<MetricData>) -> ProcessListMetric {
        match <[MetricData; 1]>::try_from(out) {
            Ok([MetricData::ProcessList(m)]) => m,
            Ok(other) => panic!("{other:?}"),
            Err(out) => panic!("expected one payload, got {out:?}"),
        }
    }

    fn find(m: &ProcessListMetric, pid: u32) -> &ProcessInfo {
        m.processes
            .iter()
            .find(|p| p.pid == pid)
            .unwrap_or_else(|| panic!("pid {pid} not listed: {:?}", m.processes))
    }

    #[test]
    fn first_collect_primes_then_ranks_the_union_by_cpu_and_memory() {
        let t = Tree::new();
        t.passwd("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n");
        t.process(10, "idle", 'S', 0, 5, 10);
        t.process(11, "busy", 'R', 100, 5, 1);
        t.process(12, "both", 'R', 100, 5, 65536);
        t.process(13, "fat", 'S', 0, 5, 131072);
        let mut c = t.collector(1);
        assert!(c.is_rate_based());
        let t0 = Instant::now();
        assert!(c.collect_at(t0).unwrap().is_empty());

        t.process(11, "busy", 'R', 300, 5, 1); // +200 ticks in 2 s: 100 %
        t.process(12, "both", 'R', 150, 5, 65536); // +50 ticks: 25 %
        let m = metric(c.collect_at(t0 + Duration::from_secs(2)).unwrap());
        let pids: Vec<u32> = m.processes.iter().map(|p| p.pid).collect();
        // Top 1 by CPU is 11, top 1 by memory is 13; ordered by CPU.
        assert_eq!(pids, vec![11, 13]);
        let busy = find(&m, 11);
        assert_eq!(busy.cpu_percent, 100.0);
        assert_eq!(busy.name, "busy");
        assert_eq!(busy.cmdline.as_deref(), Some("/bin/busy --flag"));
        assert_eq!(busy.user.as_deref(), Some("alice"));
        assert_eq!(busy.status, "running");
        assert_eq!(busy.threads_total, 1);
        assert_eq!(
            busy.thread_states,
            Some(BTreeMap::from([("running".to_owned(), 1)]))
        );
        let fat = find(&m, 13);
        assert_eq!(fat.cpu_percent, 0.0);
        assert_eq!(fat.mem_rss, 131072 * 4096);
        assert_eq!(fat.mem_percent, 50.0);
        assert_eq!(fat.status, "waiting");

        assert_eq!(m.total_processes, Some(4));
        assert_eq!(m.total_threads, Some(4));
        assert_eq!(
            m.by_state,
            Some(BTreeMap::from([
                ("running".to_owned(), 2),
                ("sleeping".to_owned(), 2)
            ]))
        );

        // With room for everyone, 12 comes second with its 25 %.
        let mut c = t.collector(20);
        c.collect_at(t0).unwrap();
        t.process(12, "both", 'R', 250, 5, 65536);
        let m = metric(c.collect_at(t0 + Duration::from_secs(4)).unwrap());
        assert_eq!(m.processes.len(), 4);
        assert_eq!(find(&m, 12).cpu_percent, 25.0);
    }

    #[test]
    fn reused_pid_with_new_start_time_is_rated_from_its_own_ticks() {
        let t = Tree::new();
        t.process(100, "old", 'S', 5000, 1000, 1);
        let mut c = t.collector(5);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();
        // The old process exited; a new one got pid 100 and used 50 ticks.
        // Subtracting the old 5000 ticks would be a "reset" (or, the other
        // way round, a huge bogus rate).
        t.process(100, "new", 'R', 50, 2000, 1);
        let m = metric(c.collect_at(t0 + Duration::from_secs(1)).unwrap());
        let p = find(&m, 100);
        assert_eq!(p.name, "new");
        assert_eq!(p.cpu_percent, 50.0);

        // And the other way: same start time, fewer ticks cannot happen for
        // one process; it must come out as 0, not a wrapped huge value.
        t.process(100, "new", 'R', 40, 2000, 1);
        let m = metric(c.collect_at(t0 + Duration::from_secs(2)).unwrap());
        assert_eq!(find(&m, 100).cpu_percent, 0.0);
    }

    #[test]
    fn process_exiting_mid_read_is_skipped_or_reported_without_its_files() {
        let t = Tree::new();
        t.process(20, "steady", 'S', 10, 5, 10);
        // Listed but already gone: a pid directory with no files at all.
        std::fs::create_dir_all(t.roots.procfs.join("21")).unwrap();
        // Gone after its stat was read: no cmdline, status or io.
        t.write(
            "22/stat",
            "22 (leaving) R 1 1 1 0 -1 0 0 0 0 0 7 0 0 0 20 0 1 0 9 0 3 0\n",
        );
        // An exited process can leave an empty stat.
        t.write("23/stat", "");
        // Not pids at all.
        t.write("self/stat", "x");
        t.write("sys/kernel", "y");
        let mut c = t.collector(20);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();
        let m = metric(c.collect_at(t0 + Duration::from_secs(1)).unwrap());
        assert_eq!(m.total_processes, Some(2));
        let pids: Vec<u32> = m.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![20, 22]);
        let leaving = find(&m, 22);
        assert_eq!(leaving.name, "leaving");
        assert_eq!(
            (leaving.cmdline.as_ref(), leaving.user.as_ref()),
            (None, None)
        );
        assert_eq!((leaving.read_bytes, leaving.write_bytes), (None, None));
    }

    #[test]
    fn missing_procfs_is_an_io_error_naming_it() {
        let t = Tree::new();
        let mut roots = t.roots.clone();
        roots.procfs = t.dir.path().join("nope");
        let err = ProcessListCollector::new(&roots)
            .collect(Utc::now())
            .unwrap_err();
        match err {
            CollectError::Io { path, .. } => assert!(path.ends_with("nope")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn io_rates_need_a_previous_reading_or_a_new_process() {
        let t = Tree::new();
        t.process(30, "writer", 'R', 10, 5, 10);
        t.write("30/io", "rchar: 1\nread_bytes: 1000\nwrite_bytes: 2000\n");
        let mut c = t.collector(20);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();

        // Cycle 2: first time 30 is selected, no earlier io reading: None.
        // 31 appeared during the interval: its counters started at 0.
        t.process(31, "fresh", 'R', 10, 500, 10);
        t.write("31/io", "read_bytes: 4096\nwrite_bytes: 0\n");
        let m = metric(c.collect_at(t0 + Duration::from_secs(2)).unwrap());
        assert_eq!(find(&m, 30).read_bytes, None);
        assert_eq!(find(&m, 30).write_bytes, None);
        assert_eq!(find(&m, 31).read_bytes, Some(2048.0));
        assert_eq!(find(&m, 31).write_bytes, Some(0.0));

        // Cycle 3: rates against cycle 2's reading.
        t.write("30/io", "read_bytes: 5000\nwrite_bytes: 2000\n");
        let m = metric(c.collect_at(t0 + Duration::from_secs(4)).unwrap());
        assert_eq!(find(&m, 30).read_bytes, Some(2000.0));
        assert_eq!(find(&m, 30).write_bytes, Some(0.0));
        // 31 has no io file now (unreadable): None, never 0.
        std::fs::remove_file(t.roots.procfs.join("31/io")).unwrap();
        let m = metric(c.collect_at(t0 + Duration::from_secs(6)).unwrap());
        assert_eq!(find(&m, 31).read_bytes, None);
    }

    #[test]
    fn captured_processes_end_to_end() {
        let t = Tree::new();
        t.passwd(&std::fs::read_to_string(Path::new(FIXTURES).join("passwd")).unwrap());
        t.install("pid1", 1);
        t.install("kthreadd", 2);
        t.install("sd-pam", 30467);
        t.install("paren-name", 30468);
        t.install("zombie", 30454);
        t.install("nobody", 30480);
        let mut c = t.collector(20);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();
        let m = metric(c.collect_at(t0 + Duration::from_secs(1)).unwrap());
        assert_eq!(m.total_processes, Some(6));
        // pid 1 has 14 threads, the others one each.
        assert_eq!(m.total_threads, Some(19));
        assert_eq!(m.by_state.as_ref().unwrap()["zombie"], 1);
        assert_eq!(m.by_state.as_ref().unwrap()["sleeping"], 5);

        let init = find(&m, 1);
        assert_eq!(init.name, "process_api");
        assert_eq!(init.user.as_deref(), Some("root"));
        assert!(init
            .cmdline
            .as_deref()
            .unwrap()
            .starts_with("/process_api --firecracker-init"));
        assert_eq!(init.threads_total, 14);
        // Counted from the 14 captured task/<tid>/stat files.
        assert_eq!(
            init.thread_states,
            Some(BTreeMap::from([("sleeping".to_owned(), 14)]))
        );
        // Captured as unreadable (io of PID 1 is denied even to root here).
        assert_eq!(init.read_bytes, None);

        let kthread = find(&m, 2);
        assert_eq!((kthread.cmdline.as_ref(), kthread.mem_rss), (None, 0));
        assert_eq!(find(&m, 30467).name, "(sd-pam)");
        let paren = find(&m, 30468);
        assert_eq!(paren.name, "a) b (c");
        assert_eq!(paren.cmdline.as_deref(), Some("/tmp/plfix/a) b (c 30"));
        let zombie = find(&m, 30454);
        assert_eq!(
            (zombie.status.as_str(), zombie.cmdline.as_ref()),
            ("other", None)
        );
        assert_eq!(find(&m, 30480).user.as_deref(), Some("nobody"));
    }

    #[test]
    fn users_fall_back_to_the_uid_and_follow_passwd_changes() {
        let t = Tree::new();
        t.process(40, "p", 'S', 0, 5, 10);
        let mut c = t.collector(20);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();
        // No passwd at all: the numeric uid.
        let m = metric(c.collect_at(t0 + Duration::from_secs(1)).unwrap());
        assert_eq!(find(&m, 40).user.as_deref(), Some("1000"));

        t.passwd("alice:x:1000:1000::/home/alice:/bin/sh\n");
        let m = metric(c.collect_at(t0 + Duration::from_secs(2)).unwrap());
        assert_eq!(find(&m, 40).user.as_deref(), Some("alice"));

        // Renamed (the size changes, whatever the mtime granularity).
        t.passwd("alice2:x:1000:1000::/home/alice:/bin/sh\n");
        let m = metric(c.collect_at(t0 + Duration::from_secs(3)).unwrap());
        assert_eq!(find(&m, 40).user.as_deref(), Some("alice2"));
    }

    #[test]
    fn thread_states_are_skipped_for_huge_thread_counts() {
        let t = Tree::new();
        let threads = THREAD_STATES_MAX_THREADS + 1;
        t.write(
            "50/stat",
            format!("50 (java) S 1 1 1 0 -1 0 0 0 0 0 1 0 0 0 20 0 {threads} 0 9 0 3 0\n"),
        );
        t.write(
            "60/stat",
            "60 (pool) S 1 1 1 0 -1 0 0 0 0 0 1 0 0 0 20 0 3 0 9 0 3 0\n",
        );
        for (tid, state) in [(60, 'S'), (61, 'R'), (62, 'D')] {
            t.write(
                &format!("60/task/{tid}/stat"),
                format!("{tid} (pool) {state} 1 1 1 0 -1 0\n"),
            );
        }
        let mut c = t.collector(20);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();
        let m = metric(c.collect_at(t0 + Duration::from_secs(1)).unwrap());
        assert_eq!(find(&m, 50).thread_states, None);
        assert_eq!(find(&m, 50).threads_total, threads as u32);
        assert_eq!(
            find(&m, 60).thread_states,
            Some(BTreeMap::from([
                ("disk_sleep".to_owned(), 1),
                ("running".to_owned(), 1),
                ("sleeping".to_owned(), 1)
            ]))
        );
    }

    #[test]
    fn previous_samples_of_exited_processes_are_dropped() {
        let t = Tree::new();
        t.process(70, "a", 'S', 0, 5, 1);
        t.process(71, "b", 'S', 0, 5, 1);
        let mut c = t.collector(20);
        let t0 = Instant::now();
        c.collect_at(t0).unwrap();
        assert_eq!(c.prev.len(), 2);
        std::fs::remove_dir_all(t.roots.procfs.join("71")).unwrap();
        c.collect_at(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(c.prev.keys().copied().collect::<Vec<_>>(), vec![70]);
    }
}
