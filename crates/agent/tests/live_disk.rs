//! Live-host checks of `disk` and `disk_io` against `df` and the kernel's
//! own files. Only what holds on any Linux host is asserted.

#![cfg(target_os = "linux")]

use std::process::Command;

use chrono::Utc;
use spectra_agent::collectors::disk_io::{is_skipped_device, parse_block_stat, parse_diskstats};
use spectra_agent::collectors::{disk, disk_io, HostRoots};
use spectra_protocol::{DiskIoMetric, DiskMetric, MetricData};

/// stdout of a command, `None` when the tool is not installed or failed.
fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn collect_disks() -> Vec<DiskMetric> {
    let mut c = disk::new_collector(&HostRoots::default());
    c.collect(Utc::now())
        .unwrap()
        .into_iter()
        .map(|m| match m {
            MetricData::Disk(d) => d,
            other => panic!("not a disk payload: {other:?}"),
        })
        .collect()
}

/// Numbers of `df -B1 --output=target,size,used,avail` for one mount point.
fn df_numbers(target: &str) -> Option<[u64; 3]> {
    let text = run_tool("df", &["-B1", "--output=target,size,used,avail", target])?;
    let line = text.lines().nth(1)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let n = fields.len();
    let num = |i: usize| fields[i].parse::<u64>().unwrap();
    Some([num(n - 3), num(n - 2), num(n - 1)])
}

#[test]
fn root_mount_matches_df() {
    let disks = collect_disks();
    let root = disks
        .iter()
        .find(|d| d.mountpoint == "/")
        .unwrap_or_else(|| panic!("no / among {disks:?}"));
    assert_eq!(root.error, None);
    let Some([size, used, avail]) = df_numbers("/") else {
        println!("SKIPPED comparison with df: `df` is not installed or failed");
        assert!(root.disk_total.is_some_and(|t| t > 0), "{root:?}");
        return;
    };
    // The size of a filesystem does not change; used and available move
    // with whatever else writes on this live host: a few MB of slack.
    const SLACK: u64 = 64 * 1024 * 1024;
    let (Some(total), Some(root_used), Some(root_avail), Some(root_pct)) = (
        root.disk_total,
        root.disk_used,
        root.disk_available,
        root.disk_used_pct,
    ) else {
        panic!("/ has no numbers: {root:?}");
    };
    assert_eq!(total, size, "{root:?}");
    assert!(
        root_used.abs_diff(used) < SLACK,
        "{root:?} vs df used {used}"
    );
    assert!(
        root_avail.abs_diff(avail) < SLACK,
        "{root:?} vs df avail {avail}"
    );
    // df rounds its Use% up to a whole percent.
    let df_pct = (used as f64 / (used + avail) as f64 * 100.0).ceil();
    assert!((root_pct - df_pct).abs() <= 1.0, "{root:?}");
}

#[test]
fn root_inodes_match_df_i() {
    let disks = collect_disks();
    let root = disks.iter().find(|d| d.mountpoint == "/").unwrap();
    let Some(text) = run_tool("df", &["--output=itotal", "/"]) else {
        println!("SKIPPED comparison with df -i: `df` is not installed or failed");
        return;
    };
    let itotal: u64 = text.lines().nth(1).unwrap().trim().parse().unwrap();
    if itotal == 0 {
        assert_eq!(root.inodes_total, None, "{root:?}");
    } else {
        assert_eq!(root.inodes_total, Some(itotal), "{root:?}");
        assert!(root.inodes_used.unwrap() <= itotal);
    }
}

#[test]
fn every_reported_mount_is_listed_by_df_a() {
    let mut c = disk::new_collector(&HostRoots::default());
    assert!(c.may_block());
    let first = c.collect(Utc::now()).unwrap();
    // The second cycle reuses the parsed mount table (unchanged): same set.
    let second = c.collect(Utc::now()).unwrap();
    let points = |out: &[MetricData]| -> Vec<String> {
        out.iter()
            .map(|m| match m {
                MetricData::Disk(d) => d.mountpoint.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(points(&first), points(&second));
    let disks = collect_disks();
    assert!(!disks.is_empty());
    let Some(text) = run_tool("df", &["-a", "--output=target"]) else {
        println!("SKIPPED comparison with df -a: `df` is not installed or failed");
        return;
    };
    let targets: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
    for d in &disks {
        assert!(
            targets.contains(&d.mountpoint.as_str()),
            "{} not in df -a: {targets:?}",
            d.mountpoint
        );
    }
}

/// `loop<N>` or `ram<N>`, written independently of the collector's rule.
fn is_loop_or_ram(name: &str) -> bool {
    let numbered = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix("loop").is_some_and(numbered)
        || name.strip_prefix("ram").is_some_and(numbered)
}

fn collect_disk_io_twice() -> Vec<DiskIoMetric> {
    let mut c = disk_io::new_collector(&HostRoots::default());
    assert!(c.collect(Utc::now()).unwrap().is_empty());
    // Some time must pass for a rate; the collector keeps its baseline
    // when none did, so retry until a sample comes (bounded).
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let out = c.collect(Utc::now()).unwrap();
        if !out.is_empty() {
            return out
                .into_iter()
                .map(|m| match m {
                    MetricData::DiskIo(d) => d,
                    other => panic!("not a disk_io payload: {other:?}"),
                })
                .collect();
        }
    }
    panic!("disk_io never produced a sample");
}

#[test]
fn disk_io_devices_are_the_non_loop_non_ram_devices_of_diskstats() {
    let metrics = collect_disk_io_twice();
    let text = std::fs::read_to_string("/proc/diskstats").unwrap();
    // Independent reading: the third column of each line.
    let expected: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|n| !is_loop_or_ram(n))
        .collect();
    let got: Vec<&str> = metrics.iter().map(|m| m.device.as_str()).collect();
    assert_eq!(got, expected);
    for m in &metrics {
        let util = m.util_pct.unwrap();
        assert!((0.0..=100.0).contains(&util), "{m:?}");
        assert!(m.read_bytes >= 0.0 && m.write_bytes >= 0.0, "{m:?}");
        let is_partition = std::path::Path::new("/sys/class/block")
            .join(m.device.replace('/', "!"))
            .join("partition")
            .exists();
        assert_eq!(m.partition, Some(is_partition), "{m:?}");
    }
}

#[test]
fn sys_block_stat_agrees_with_diskstats() {
    let read = || parse_diskstats(&std::fs::read_to_string("/proc/diskstats").unwrap()).unwrap();
    let before = read();
    let Some(dev) = before.iter().find(|d| {
        !is_skipped_device(&d.name) && std::path::Path::new("/sys/block").join(&d.name).exists()
    }) else {
        println!("SKIPPED: no whole disk besides loop/ram devices in /sys/block");
        return;
    };
    let sys = parse_block_stat(
        &std::fs::read_to_string(format!("/sys/block/{}/stat", dev.name)).unwrap(),
    )
    .unwrap();
    let after = read();
    let after = after.iter().find(|d| d.name == dev.name).unwrap();
    // Counters only grow: the sysfs reading lies between the two others.
    let (b, a) = (&dev.counters, &after.counters);
    for (name, lo, mid, hi) in [
        ("reads", b.reads, sys.reads, a.reads),
        (
            "sectors_read",
            b.sectors_read,
            sys.sectors_read,
            a.sectors_read,
        ),
        ("writes", b.writes, sys.writes, a.writes),
        (
            "sectors_written",
            b.sectors_written,
            sys.sectors_written,
            a.sectors_written,
        ),
        ("io_ms", b.io_ms, sys.io_ms, a.io_ms),
    ] {
        assert!(
            lo <= mid && mid <= hi,
            "{}: {name} {lo} <= {mid} <= {hi}",
            dev.name
        );
    }
    assert_eq!(sys.discards.is_some(), b.discards.is_some());
    assert_eq!(sys.flushes.is_some(), b.flushes.is_some());
}
