//! `cpu` collector: usage since the previous sample, per core, and load.
//!
//! - This file: the pure parts. [`parse_proc_stat`] / [`parse_proc_stat_into`]
//!   read `/proc/stat` text, [`parse_loadavg`] reads `/proc/loadavg`, and
//!   [`compute_cpu_metric`] turns two `/proc/stat` samples into a
//!   [`CpuMetric`].
//! - `linux.rs`: [`CpuCollector`] reading `<procfs>/stat` and
//!   `<procfs>/loadavg`; `windows.rs`: `GetSystemTimes`; `unsupported.rs`:
//!   everything else.
//!
//! How time is counted (proc(5), kernel `fs/proc/stat.c`): the kernel adds
//! guest time to `user` as well as to `guest` (and guest_nice to `nice` and
//! `guest_nice`). So the total of an interval is
//! `user + nice + system + idle + iowait + irq + softirq + steal` (guest
//! columns left out, they are already inside), and, as `mpstat` does, the
//! reported `user` is `user - guest`, `nice` is `nice - guest_nice` and
//! `guest` is `guest + guest_nice`: the nine percentages then add up to 100.
//! `usage` is everything but idle and iowait (iowait is idle time with I/O
//! pending, not CPU work).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(any(target_os = "linux", windows)))]
mod unsupported;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "linux")]
pub use linux::CpuCollector;
#[cfg(not(any(target_os = "linux", windows)))]
pub use unsupported::CpuCollector;
#[cfg(windows)]
pub use windows::CpuCollector;

use spectra_protocol::CpuMetric;

use super::rate::{delta_counter, CounterWidth};
use super::ParseError;

/// Jiffies spent in each state (USER_HZ ticks), one `cpu` line of
/// `/proc/stat`. Columns the kernel does not print are 0, and
/// [`ProcStat::columns`] says how many it printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    /// All time of the line, guest columns excluded (they are already
    /// counted in user and nice).
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }

    /// Per-field growth from `prev` to `self`. A field that went backwards
    /// (iowait does on some kernels, proc(5); a re-onlined CPU may too)
    /// counts as 0 for this interval rather than a negative share.
    fn delta_since(&self, prev: &CpuTimes) -> CpuTimes {
        let d = |p: u64, c: u64| {
            delta_counter(p, c, CounterWidth::Bits64)
                .grown()
                .unwrap_or(0)
        };
        CpuTimes {
            user: d(prev.user, self.user),
            nice: d(prev.nice, self.nice),
            system: d(prev.system, self.system),
            idle: d(prev.idle, self.idle),
            iowait: d(prev.iowait, self.iowait),
            irq: d(prev.irq, self.irq),
            softirq: d(prev.softirq, self.softirq),
            steal: d(prev.steal, self.steal),
            guest: d(prev.guest, self.guest),
            guest_nice: d(prev.guest_nice, self.guest_nice),
        }
    }
}

/// One parsed `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// The aggregate `cpu` line.
    pub total: CpuTimes,
    /// `cpuN` lines in file order as `(N, times)`. Offline CPUs have no line,
    /// so N is not always the index in this list.
    pub cores: Vec<(u32, CpuTimes)>,
    /// How many time columns the aggregate line has: 4 on 2.4 kernels, 7
    /// from 2.6.0 (iowait, irq, softirq), 8 from 2.6.11 (steal), 9 from
    /// 2.6.24 (guest), 10 from 2.6.33 (guest_nice).
    pub columns: usize,
    /// Boot time, seconds since the epoch.
    pub btime: Option<i64>,
    /// Forks since boot (not the number of processes that exist now).
    pub processes: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

/// Parses `/proc/stat` text.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, ParseError> {
    let mut stat = ProcStat::default();
    parse_proc_stat_into(text, &mut stat)?;
    Ok(stat)
}

/// Parses `/proc/stat` text into `out`, reusing its core list so a collector
/// that keeps two `ProcStat`s allocates nothing in steady state.
///
/// ```text
/// cpu  43542 0 5077 55427 545 0 92 27 0 0
/// cpu0 22515 0 2177 27602 55 0 18 12 0 0
/// btime 1795597022
/// ```
pub fn parse_proc_stat_into(text: &str, out: &mut ProcStat) -> Result<(), ParseError> {
    out.cores.clear();
    out.btime = None;
    out.processes = None;
    out.procs_running = None;
    out.procs_blocked = None;
    let mut seen_total = false;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(|c: char| c.is_ascii_whitespace()) else {
            continue;
        };
        if key == "cpu" {
            let (times, columns) = parse_cpu_columns(rest)?;
            out.total = times;
            out.columns = columns;
            seen_total = true;
        } else if let Some(index) = key.strip_prefix("cpu") {
            let index: u32 = index
                .parse()
                .map_err(|_| ParseError::new("/proc/stat", format!("bad cpu line key {key:?}")))?;
            let (times, _) = parse_cpu_columns(rest)?;
            out.cores.push((index, times));
        } else {
            match key {
                "btime" => out.btime = Some(parse_single(key, rest)?),
                "processes" => out.processes = Some(parse_single(key, rest)?),
                "procs_running" => out.procs_running = Some(parse_single(key, rest)?),
                "procs_blocked" => out.procs_blocked = Some(parse_single(key, rest)?),
                // intr, ctxt, softirq: not used here.
                _ => {}
            }
        }
    }
    if !seen_total {
        return Err(ParseError::new("/proc/stat", "no aggregate \"cpu\" line"));
    }
    Ok(())
}

fn parse_single<T: std::str::FromStr>(key: &str, rest: &str) -> Result<T, ParseError> {
    rest.trim()
        .parse()
        .map_err(|_| ParseError::new("/proc/stat", format!("bad {key} value {:?}", rest.trim())))
}

/// The time columns of one `cpu` line, and how many there were.
fn parse_cpu_columns(rest: &str) -> Result<(CpuTimes, usize), ParseError> {
    let mut values = [0u64; 10];
    let mut count = 0;
    for field in rest.split_ascii_whitespace() {
        // Columns past the tenth would be a future kernel's addition: ignore.
        if count < values.len() {
            values[count] = field.parse().map_err(|_| {
                ParseError::new("/proc/stat", format!("bad cpu time value {field:?}"))
            })?;
        }
        count += 1;
    }
    if count < 4 {
        return Err(ParseError::new(
            "/proc/stat",
            format!("cpu line has {count} columns, at least 4 expected"),
        ));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice] = values;
    let times = CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    };
    Ok((times, count.min(values.len())))
}

/// `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub load_1m: f64,
    pub load_5m: f64,
    pub load_15m: f64,
    /// Runnable scheduling entities (threads) now.
    pub running: u32,
    /// Scheduling entities (threads) that exist.
    pub total: u32,
}

/// Parses `/proc/loadavg`: `0.27 0.81 0.45 1/141 12922`.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
    let err = |m: &str| ParseError::new("/proc/loadavg", format!("{m} in {:?}", text.trim()));
    let mut fields = text.split_ascii_whitespace();
    let mut next_load = || -> Result<f64, ParseError> {
        fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| err("bad load average"))
    };
    let load_1m = next_load()?;
    let load_5m = next_load()?;
    let load_15m = next_load()?;
    let (running, total) = fields
        .next()
        .and_then(|f| f.split_once('/'))
        .and_then(|(r, t)| Some((r.parse().ok()?, t.parse().ok()?)))
        .ok_or_else(|| err("bad running/total field"))?;
    Ok(LoadAvg {
        load_1m,
        load_5m,
        load_15m,
        running,
        total,
    })
}

/// Rounds a percentage to 2 decimals: finer precision is noise and costs
/// bytes on the wire and in the store.
pub fn round_pct(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Percentages of one interval's deltas.
struct Shares {
    usage: f64,
    user: f64,
    nice: f64,
    system: f64,
    idle: f64,
    iowait: f64,
    irq: f64,
    softirq: f64,
    steal: f64,
    guest: f64,
}

/// `None` when no time passed (both samples within one tick).
fn compute_shares(d: &CpuTimes) -> Option<Shares> {
    let total = d.total();
    if total == 0 {
        return None;
    }
    let pct = |v: u64| round_pct(v as f64 * 100.0 / total as f64);
    // See the module docs: guest time is inside user/nice already.
    let busy = total.saturating_sub(d.idle).saturating_sub(d.iowait);
    Some(Shares {
        usage: pct(busy),
        user: pct(d.user.saturating_sub(d.guest)),
        nice: pct(d.nice.saturating_sub(d.guest_nice)),
        system: pct(d.system),
        idle: pct(d.idle),
        iowait: pct(d.iowait),
        irq: pct(d.irq),
        softirq: pct(d.softirq),
        steal: pct(d.steal),
        guest: pct(d.guest.saturating_add(d.guest_nice)),
    })
}

/// The CPU usage between two `/proc/stat` samples, or `None` when no time
/// passed between them (the caller keeps the older sample and tries later).
///
/// Per-core values are matched by CPU number, not position, so CPU hot-plug
/// never mixes cores up: a core present in only one sample (just onlined or
/// just offlined) is left out of `cores` for this interval, as is a core
/// whose counters did not move. Columns the kernel does not have (steal
/// before 2.6.11, guest before 2.6.24...) are `None`, not 0. Load averages
/// are left `None` for the caller to fill.
pub fn compute_cpu_metric(prev: &ProcStat, cur: &ProcStat) -> Option<CpuMetric> {
    let shares = compute_shares(&cur.total.delta_since(&prev.total))?;
    let columns = cur.columns.min(prev.columns);
    let has = |n: usize, v: f64| (columns >= n).then_some(v);

    let mut cores = Vec::with_capacity(cur.cores.len());
    for (position, (index, times)) in cur.cores.iter().enumerate() {
        // Usually the same position; search only when CPUs came or went.
        let prev_times = match prev.cores.get(position) {
            Some((i, t)) if i == index => Some(t),
            _ => prev.cores.iter().find(|(i, _)| i == index).map(|(_, t)| t),
        };
        let Some(prev_times) = prev_times else {
            continue;
        };
        if let Some(core) = compute_shares(&times.delta_since(prev_times)) {
            cores.push(core.usage);
        }
    }

    Some(CpuMetric {
        usage: shares.usage,
        cores,
        iowait: has(5, shares.iowait),
        steal: has(8, shares.steal),
        user: Some(shares.user),
        system: Some(shares.system),
        nice: Some(shares.nice),
        irq: has(6, shares.irq),
        softirq: has(7, shares.softirq),
        guest: has(9, shares.guest),
        idle: Some(shares.idle),
        load_1m: None,
        load_5m: None,
        load_15m: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    #[test]
    fn parses_proc_stat_with_guest_columns() {
        let stat = parse_proc_stat(&fixture("linux/debian12-x86_64-docker-vm/stat.t0")).unwrap();
        assert_eq!(stat.columns, 10);
        assert_eq!(stat.cores.len(), 2);
        assert_eq!(stat.cores[1].0, 1);
        assert_eq!(stat.btime, Some(1_795_597_022));
        assert!(stat.processes.unwrap() > 0);
        assert!(stat.procs_running.unwrap() >= 1);
        // The aggregate is the sum of the cores (within a tick of rounding).
        let sum: u64 = stat.cores.iter().map(|(_, t)| t.user).sum();
        assert!(
            stat.total.user.abs_diff(sum) <= 2,
            "{} vs {sum}",
            stat.total.user
        );
    }

    #[test]
    fn parses_proc_stat_of_old_kernel_without_steal_or_guest() {
        let stat = parse_proc_stat(&fixture("linux/raspberrypi4-aarch64/stat.t0")).unwrap();
        assert_eq!(stat.columns, 7);
        assert_eq!(stat.cores.len(), 4);
        assert_eq!(stat.total.steal, 0);
        assert_eq!(stat.total.guest, 0);
    }

    #[test]
    fn rejects_proc_stat_without_aggregate_line() {
        let err = parse_proc_stat("cpu0 1 2 3 4\nbtime 5\n").unwrap_err();
        assert!(err.message.contains("aggregate"), "{err}");
    }

    #[test]
    fn rejects_cpu_line_with_too_few_columns_or_garbage() {
        assert!(parse_proc_stat("cpu 1 2 3\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 x 4\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 3 4\ncpuX 1 2 3 4\n").is_err());
    }

    #[test]
    fn reuses_core_list_when_parsing_into() {
        let text = fixture("linux/debian12-x86_64-docker-vm/stat.t0");
        let mut stat = parse_proc_stat(&text).unwrap();
        let ptr = stat.cores.as_ptr();
        parse_proc_stat_into(&text, &mut stat).unwrap();
        assert_eq!(stat.cores.len(), 2);
        assert_eq!(stat.cores.as_ptr(), ptr, "the vector was reallocated");
    }

    #[test]
    fn computes_usage_from_two_captured_samples() {
        let dir = "linux/debian12-x86_64-docker-vm";
        let t0 = parse_proc_stat(&fixture(&format!("{dir}/stat.t0"))).unwrap();
        let t1 = parse_proc_stat(&fixture(&format!("{dir}/stat.t1"))).unwrap();
        let m = compute_cpu_metric(&t0, &t1).unwrap();
        assert_eq!(m.cores.len(), 2);
        assert!((0.0..=100.0).contains(&m.usage), "{}", m.usage);
        // usage is everything but idle and iowait.
        let idle = m.idle.unwrap() + m.iowait.unwrap();
        assert!((m.usage + idle - 100.0).abs() < 0.05, "{m:?}");
        let parts = [
            m.user, m.nice, m.system, m.idle, m.iowait, m.irq, m.softirq, m.steal, m.guest,
        ];
        let sum: f64 = parts.iter().map(|p| p.unwrap()).sum();
        assert!((sum - 100.0).abs() < 0.1, "shares add up to {sum}");
    }

    fn stat_line(columns: &[u64]) -> String {
        let cols: Vec<String> = columns.iter().map(u64::to_string).collect();
        cols.join(" ")
    }

    fn stat_text(total: &[u64], cores: &[(u32, &[u64])]) -> String {
        let mut s = format!("cpu  {}\n", stat_line(total));
        for (i, c) in cores {
            s.push_str(&format!("cpu{i} {}\n", stat_line(c)));
        }
        s
    }

    #[test]
    fn counts_guest_inside_user_like_mpstat() {
        // Interval deltas: user 60 (of which guest 40), nice 10 (guest_nice
        // 10), system 10, idle 20: total 100.
        let prev = parse_proc_stat(&stat_text(&[0; 10], &[])).unwrap();
        let cur = parse_proc_stat(&stat_text(&[60, 10, 10, 20, 0, 0, 0, 0, 40, 10], &[])).unwrap();
        let m = compute_cpu_metric(&prev, &cur).unwrap();
        assert_eq!(m.usage, 80.0);
        assert_eq!(m.user, Some(20.0));
        assert_eq!(m.nice, Some(0.0));
        assert_eq!(m.guest, Some(50.0));
        assert_eq!(m.idle, Some(20.0));
    }

    #[test]
    fn rounds_percentages_to_two_decimals() {
        let prev = parse_proc_stat(&stat_text(&[0; 8], &[])).unwrap();
        let cur = parse_proc_stat(&stat_text(&[1, 0, 0, 2, 0, 0, 0, 0], &[])).unwrap();
        let m = compute_cpu_metric(&prev, &cur).unwrap();
        assert_eq!(m.usage, 33.33);
        assert_eq!(m.idle, Some(66.67));
    }

    #[test]
    fn missing_kernel_columns_are_none_not_zero() {
        let prev = parse_proc_stat(&stat_text(&[0; 7], &[])).unwrap();
        let cur = parse_proc_stat(&stat_text(&[10, 0, 10, 70, 10, 0, 0], &[])).unwrap();
        let m = compute_cpu_metric(&prev, &cur).unwrap();
        assert_eq!(m.iowait, Some(10.0));
        assert_eq!(m.steal, None);
        assert_eq!(m.guest, None);
    }

    #[test]
    fn reports_steal_time_of_a_busy_64_core_guest() {
        let dir = "linux/server64-x86_64-steal";
        let t0 = parse_proc_stat(&fixture(&format!("{dir}/stat.t0"))).unwrap();
        let t1 = parse_proc_stat(&fixture(&format!("{dir}/stat.t1"))).unwrap();
        assert_eq!(t1.cores.len(), 64);
        let m = compute_cpu_metric(&t0, &t1).unwrap();
        assert_eq!(m.cores.len(), 64);
        // Written so that the interval has 12.5 % steal and 63 % busy
        // (fixtures README.md).
        assert_eq!(m.steal, Some(12.5));
        assert_eq!(m.usage, 63.0);
        assert_eq!(m.idle, Some(36.0));
        assert_eq!(m.cores[0], 63.0);
    }

    #[test]
    fn no_elapsed_ticks_gives_no_metric() {
        let s = parse_proc_stat(&stat_text(&[5, 0, 5, 90], &[(0, &[5, 0, 5, 90])])).unwrap();
        assert_eq!(compute_cpu_metric(&s, &s), None);
    }

    #[test]
    fn counter_going_backwards_never_gives_negative_percentages() {
        // iowait steps back by 5 ticks between samples (proc(5) warns it can).
        let prev = parse_proc_stat(&stat_text(&[100, 0, 100, 1000, 50, 0, 0, 0], &[])).unwrap();
        let cur = parse_proc_stat(&stat_text(&[150, 0, 150, 1100, 45, 0, 0, 0], &[])).unwrap();
        let m = compute_cpu_metric(&prev, &cur).unwrap();
        assert_eq!(m.iowait, Some(0.0));
        assert_eq!(m.usage, 50.0);
        for v in [
            m.user, m.system, m.idle, m.iowait, m.irq, m.softirq, m.steal,
        ] {
            assert!(v.unwrap() >= 0.0, "{m:?}");
        }
    }

    #[test]
    fn cpu_hotplug_keeps_cores_matched_by_number() {
        let busy: &[u64] = &[100, 0, 0, 0];
        let idle: &[u64] = &[0, 0, 0, 100];
        // Before: cpu0..cpu3. After: cpu1 went offline, cpu4 came online.
        let prev = parse_proc_stat(&stat_text(
            &[0; 4],
            &[(0, &[0; 4]), (1, &[0; 4]), (2, &[0; 4]), (3, &[0; 4])],
        ))
        .unwrap();
        let cur = parse_proc_stat(&stat_text(
            &[200, 0, 0, 200],
            &[(0, busy), (2, idle), (3, busy), (4, idle)],
        ))
        .unwrap();
        let m = compute_cpu_metric(&prev, &cur).unwrap();
        // cpu4 has no previous sample; cpu0, cpu2, cpu3 keep their own values.
        assert_eq!(m.cores, vec![100.0, 0.0, 100.0]);
        assert_eq!(m.usage, 50.0);
    }

    #[test]
    fn parses_loadavg() {
        let l = parse_loadavg("0.27 0.81 0.45 1/141 12922\n").unwrap();
        assert_eq!((l.load_1m, l.load_5m, l.load_15m), (0.27, 0.81, 0.45));
        assert_eq!((l.running, l.total), (1, 141));
        let live = parse_loadavg(&fixture("linux/debian12-x86_64-docker-vm/loadavg")).unwrap();
        assert!(live.total >= live.running);
    }

    #[test]
    fn rejects_truncated_loadavg() {
        assert!(parse_loadavg("0.27 0.81\n").is_err());
        assert!(parse_loadavg("0.27 0.81 0.45 1-141 5\n").is_err());
    }
}
