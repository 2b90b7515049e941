//! Live-host checks: the collectors against this machine's own tools and
//! kernel files. Only what holds on any Linux host is asserted.

#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use spectra_agent::collectors::host_info::read_host_info;
use spectra_agent::collectors::mounts::read_mounts;
use spectra_agent::collectors::{build, CollectorKind, HostRoots};
use spectra_protocol::MetricData;

/// stdout of a command, `None` when the tool is not installed.
fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn collect_one(kind: CollectorKind) -> MetricData {
    let mut c = build(kind, &HostRoots::default());
    let mut out = c.collect(Utc::now()).unwrap();
    assert_eq!(out.len(), 1, "{kind}: {out:?}");
    out.remove(0)
}

#[test]
fn memory_total_matches_proc_meminfo_and_free() {
    let MetricData::Memory(m) = collect_one(CollectorKind::Memory) else {
        panic!("not a memory payload");
    };
    assert_eq!(m.ram_total, meminfo_total_bytes());
    assert!(m.ram_used <= m.ram_total);
    assert!((0.0..=100.0).contains(&m.ram_used_pct));
    if let Some(free) = run_tool("free", &["-b"]) {
        let total: u64 = free
            .lines()
            .find(|l| l.starts_with("Mem:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("free -b has a Mem: line");
        assert_eq!(m.ram_total, total);
    }
}

#[test]
fn cpu_cores_match_the_kernels_cpu_lines_and_nproc() {
    let mut cpu = build(CollectorKind::Cpu, &HostRoots::default());
    assert!(
        cpu.collect(Utc::now()).unwrap().is_empty(),
        "first call only records"
    );
    // Rate-based: wait (with a deadline) until at least one tick elapsed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metric = loop {
        std::thread::sleep(Duration::from_millis(20));
        let out = cpu.collect(Utc::now()).unwrap();
        if let Some(MetricData::Cpu(m)) = out.into_iter().next() {
            break m;
        }
        assert!(Instant::now() < deadline, "no cpu sample within 10 s");
    };
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu_lines = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    assert_eq!(metric.cores.len(), cpu_lines);
    assert!((0.0..=100.0).contains(&metric.usage), "{metric:?}");
    assert!(metric.load_1m.is_some_and(|l| l >= 0.0));

    // nproc counts the CPUs this process may run on (its affinity mask), so
    // under taskset or a cpuset it is lower than the online CPUs the kernel
    // lists; it can never be higher.
    let allowed = match run_tool("nproc", &[]) {
        Some(out) => out.trim().parse::<usize>().unwrap(),
        None => std::thread::available_parallelism().unwrap().get(),
    };
    assert!(
        allowed >= 1 && allowed <= cpu_lines,
        "nproc {allowed} vs {cpu_lines} cpu lines"
    );
}

#[test]
fn system_uptime_is_within_seconds_of_proc_uptime() {
    let MetricData::System(s) = collect_one(CollectorKind::System) else {
        panic!("not a system payload");
    };
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    let uptime: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        (uptime - s.uptime as f64).abs() < 5.0,
        "{} vs {uptime}",
        s.uptime
    );
    let now = Utc::now().timestamp();
    assert!((s.boot_time + s.uptime as i64 - now).abs() < 5, "{s:?}");
    assert!(s.processes >= 1, "at least this test runs");
    assert_eq!(
        s.kernel.as_deref(),
        Some(
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap()
                .trim()
        )
    );
}

#[test]
fn mounts_include_root() {
    let mounts = read_mounts(&HostRoots::default()).unwrap();
    assert!(mounts.iter().any(|m| m.mountpoint == "/"), "{mounts:?}");
}

#[test]
fn host_info_matches_the_kernel() {
    let info = read_host_info(&HostRoots::default(), "live");
    assert_eq!(info.ram_total, meminfo_total_bytes());
    if let Some(uname_r) = run_tool("uname", &["-r"]) {
        assert_eq!(info.kernel, uname_r.trim());
    }
    if let Some(uname_m) = run_tool("uname", &["-m"]) {
        assert_eq!(info.arch, uname_m.trim());
    }
    assert!(info.boot_time > 0);
}
