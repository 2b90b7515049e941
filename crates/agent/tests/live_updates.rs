//! Live `updates` test on this machine: the collector against apt's own
//! simulation, run side by side (same moment, same package lists), and proof
//! that it neither touches nor waits for apt's locks.
#![cfg(target_os = "linux")]

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use chrono::Utc;
use spectra_agent::collectors::updates::new_collector;
use spectra_agent::collectors::HostRoots;
use spectra_protocol::MetricData;

/// apt's and dpkg's lock files (apt-get(8), dpkg(1)).
const LOCK_FILES: [&str; 4] = [
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
];

fn read_mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Holds dpkg's frontend lock (an fcntl write lock, as apt and dpkg take
/// it) for the life of the returned file; `None` when someone else (an
/// unattended upgrade) holds it or we may not open it.
fn hold_frontend_lock() -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(LOCK_FILES[0])
        .ok()?;
    // SAFETY: a valid open fd; lockf has no memory preconditions.
    let rc = unsafe { libc::lockf(file.as_raw_fd(), libc::F_TLOCK, 0) };
    (rc == 0).then_some(file)
}

#[test]
fn apt_pending_count_matches_apt_get_simulation() {
    if !Path::new("/usr/bin/apt-get").exists() && !Path::new("/bin/apt-get").exists() {
        println!("SKIP: apt-get is not installed here; this live test is for Debian/Ubuntu");
        return;
    }
    let mtimes_before: Vec<_> = LOCK_FILES.iter().map(|p| read_mtime(p)).collect();
    // While we hold the lock, a collector that wanted it would fail or
    // wait for the timeout: it must do neither.
    let lock = hold_frontend_lock();
    if lock.is_none() {
        println!(
            "note: could not hold {} (busy or no permission); lock-wait check skipped",
            LOCK_FILES[0]
        );
    }

    let mut collector = new_collector(&HostRoots::default());
    assert!(collector.may_block());
    let out = collector.collect(Utc::now()).unwrap();
    let reference = Command::new("apt-get")
        .args(["-s", "-o", "Debug::NoLocking=1", "dist-upgrade"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    drop(lock);
    assert!(reference.status.success(), "{reference:?}");
    let reference = String::from_utf8_lossy(&reference.stdout);
    let inst_lines = reference.lines().filter(|l| l.starts_with("Inst ")).count();
    let security_lines = reference
        .lines()
        .filter(|l| l.starts_with("Inst ") && l.to_ascii_lowercase().contains("-security"))
        .count();

    let [MetricData::Updates(m)] = out.as_slice() else {
        panic!("{out:?}");
    };
    println!(
        "updates: {} pending, {} security, reboot_required={}",
        m.pending_count, m.security_count, m.reboot_required
    );
    assert_eq!(m.package_manager, "apt");
    assert_eq!(m.pending_count as usize, inst_lines);
    assert_eq!(m.packages.len(), inst_lines);
    assert_eq!(m.security_count as usize, security_lines);
    let flag = Path::new("/var/run/reboot-required").exists()
        || Path::new("/run/reboot-required").exists();
    assert_eq!(m.reboot_required, flag);
    // Every reported package is one apt would install, at that version.
    for p in &m.packages {
        let needle = format!("Inst {} ", p.name);
        let line = reference
            .lines()
            .find(|l| l.starts_with(&needle))
            .unwrap_or_else(|| panic!("{} not in apt-get -s", p.name));
        assert!(
            line.contains(&format!("({} ", p.version)),
            "{line} vs {p:?}"
        );
    }

    let mtimes_after: Vec<_> = LOCK_FILES.iter().map(|p| read_mtime(p)).collect();
    for ((path, before), after) in LOCK_FILES.iter().zip(&mtimes_before).zip(&mtimes_after) {
        match before {
            Some(_) => assert_eq!(before, after, "{path} was touched"),
            None => println!("note: {path} does not exist; mtime check skipped for it"),
        }
    }
}
