//! Live `process_list` checks on this host, compared with `/proc` itself and
//! with `ps` (procps) where installed.
//!
//! A busy child (`sh -c 'while :; do :; done'`) and a sleeping one
//! (`sleep 60`) are spawned; two collects ~300 ms apart must show the busy
//! one near the top by CPU. The children are killed when the test ends,
//! whether it passes or not.

#![cfg(target_os = "linux")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use spectra_agent::collectors::process_list::{new_collector, ProcessListCollector, DEFAULT_TOP_N};
use spectra_agent::collectors::{Collector, HostRoots};
use spectra_protocol::{MetricData, ProcessInfo, ProcessListMetric};

/// Kills and reaps the children on drop, also when an assertion fails.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits (with a deadline) until `pid` has exec'd into something whose
/// cmdline contains `needle`: right after fork the child still carries the
/// test binary's name.
fn wait_for_exec(pid: u32, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never exec'd {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spawn(program: &str, args: &[&str], needle: &str) -> Child {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    wait_for_exec(child.id(), needle);
    child
}

fn metric(out: Vec<MetricData>) -> ProcessListMetric {
    match <[MetricData; 1]>::try_from(out) {
        Ok([MetricData::ProcessList(m)]) => m,
        Ok(other) => panic!("{other:?}"),
        Err(out) => panic!("expected one payload, got {out:?}"),
    }
}

fn count_proc_pids() -> u64 {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count() as u64
}

/// `ps` output for `args`, or `None` (with the reason printed) when `ps` is
/// not installed.
fn run_ps(args: &[&str]) -> Option<String> {
    match Command::new("ps").args(args).output() {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(e) => {
            println!("SKIPPED comparison with ps: cannot run ps ({e})");
            None
        }
    }
}

fn find(m: &ProcessListMetric, pid: u32) -> Option<&ProcessInfo> {
    m.processes.iter().find(|p| p.pid == pid)
}

#[test]
fn busy_child_tops_the_cpu_list_and_matches_proc_and_ps() {
    let busy = spawn("sh", &["-c", "while :; do :; done"], "while");
    let sleeper = spawn("sleep", &["60"], "sleep");
    let (busy_pid, sleeper_pid) = (busy.id(), sleeper.id());
    let _children = Children(vec![busy, sleeper]);

    let roots = HostRoots::default();
    let mut collector = new_collector(&roots);
    // Every process, to check the sleeping child and the totals too.
    let mut everything = ProcessListCollector::with_top_n(&roots, 100_000);
    assert!(collector.is_rate_based());
    assert!(collector.collect(Utc::now()).unwrap().is_empty());
    assert!(everything.collect(Utc::now()).unwrap().is_empty());
    // The measurement interval, not a start-up wait.
    std::thread::sleep(Duration::from_millis(300));

    let before = count_proc_pids();
    let top = metric(collector.collect(Utc::now()).unwrap());
    let all = metric(everything.collect(Utc::now()).unwrap());
    let after = count_proc_pids();

    // The busy child: in the list, among the first by CPU, > 20 %.
    let entry = find(&top, busy_pid)
        .unwrap_or_else(|| panic!("busy child {busy_pid} not listed: {:#?}", top.processes));
    assert!(
        entry.cpu_percent > 20.0,
        "busy child at {} % CPU",
        entry.cpu_percent
    );
    // The list is ordered by CPU, so a rank below N is the top N by CPU
    // (other helpers' compilers may be busier on a shared machine).
    let rank = top
        .processes
        .iter()
        .position(|p| p.pid == busy_pid)
        .unwrap();
    assert!(
        rank < DEFAULT_TOP_N,
        "busy child ranked {rank}: {:#?}",
        &top.processes[..rank + 1]
    );
    assert_eq!(entry.name, "sh");
    assert_eq!(entry.cmdline.as_deref(), Some("sh -c while :; do :; done"));
    assert_eq!(entry.status, "running");
    assert_eq!(entry.threads_total, 1);
    assert!(entry.mem_rss > 0 && entry.mem_percent > 0.0 && entry.mem_percent < 100.0);
    // The list is ordered by CPU.
    for pair in top.processes.windows(2) {
        assert!(pair[0].cpu_percent >= pair[1].cpu_percent, "{pair:#?}");
    }
    // Each process once.
    let mut pids: Vec<u32> = top.processes.iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), top.processes.len());
    assert!(top.processes.len() <= 2 * DEFAULT_TOP_N);

    // The sleeping child, seen by the list of everything.
    let sleeping = find(&all, sleeper_pid).expect("sleeping child listed");
    assert_eq!(sleeping.name, "sleep");
    assert_eq!(sleeping.cmdline.as_deref(), Some("sleep 60"));
    assert_eq!(sleeping.status, "waiting");
    assert!(sleeping.cpu_percent < 5.0, "{sleeping:?}");
    // io is only read for listed processes, so the first cycle that lists
    // a process has no earlier reading: no rate rather than a made-up one.
    assert_eq!(sleeping.read_bytes, None, "{sleeping:?}");

    // Totals against /proc itself (other processes come and go meanwhile).
    let total = all.total_processes.unwrap();
    assert!(
        total + 10 >= before.min(after) && total <= before.max(after) + 10,
        "total_processes {total}, /proc had {before} then {after}"
    );
    assert!(all.total_threads.unwrap() >= total);
    let by_state_sum: u64 = all.by_state.as_ref().unwrap().values().sum();
    assert_eq!(by_state_sum, total);
    assert!(all.by_state.as_ref().unwrap()["running"] >= 1);

    // One more cycle: our own child's io is readable (same user) and a
    // sleeping `sleep` does no storage I/O.
    let again = metric(everything.collect(Utc::now()).unwrap());
    let sleeping = find(&again, sleeper_pid).expect("sleeping child listed again");
    assert_eq!(sleeping.read_bytes, Some(0.0), "{sleeping:?}");
    assert_eq!(sleeping.write_bytes, Some(0.0), "{sleeping:?}");
    println!(
        "top entries: {:#?}",
        &top.processes[..top.processes.len().min(4)]
    );

    // ps sees the same processes, user and memory.
    if let Some(listing) = run_ps(&["-eo", "pid="]) {
        let ps_pids: Vec<u32> = listing
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        assert!(ps_pids.contains(&busy_pid), "ps lacks the busy child");
        let missing: Vec<u32> = top
            .processes
            .iter()
            .map(|p| p.pid)
            .filter(|pid| !ps_pids.contains(pid))
            .collect();
        // A listed process may exit before ps runs, but not most of them.
        assert!(
            missing.len() <= 2,
            "ps -eo pid does not list {missing:?} of {pids:?}"
        );
        if let Some(line) = run_ps(&["-o", "user=,rss=,comm=", "-p", &busy_pid.to_string()]) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "ps said {line:?}");
            assert_eq!(entry.user.as_deref(), Some(fields[0]));
            assert_eq!(fields[2], "sh");
            let ps_rss_kib: u64 = fields[1].parse().unwrap();
            let ours_kib = entry.mem_rss / 1024;
            assert!(
                ours_kib.abs_diff(ps_rss_kib) <= 256,
                "rss {ours_kib} KiB, ps {ps_rss_kib} KiB"
            );
        }
    }
}
