//! Collector costs (SPEC §7): the parsers on captured fixtures, a full
//! cpu + memory + system cycle on the live host, and the "raw read floor":
//! reading the same kernel files into a reused buffer and doing nothing
//! else, which the agent's cycle is compared with.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors`.

use std::io::Read;
use std::path::Path;

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::cpu::{parse_proc_stat, parse_proc_stat_into, ProcStat};
use spectra_agent::collectors::memory::parse_meminfo;
use spectra_agent::collectors::{build, CollectorKind, HostRoots};

fn read_fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn bench_parsers(c: &mut Criterion) {
    let stat2 = read_fixture("linux/debian12-x86_64-docker-vm/stat.t0");
    let stat64 = read_fixture("linux/server64-x86_64-steal/stat.t0");
    let meminfo = read_fixture("linux/debian12-x86_64-docker-vm/meminfo");
    c.bench_function("parse_proc_stat/2-cores", |b| {
        b.iter(|| parse_proc_stat(black_box(&stat2)))
    });
    let mut reused = ProcStat::default();
    c.bench_function("parse_proc_stat_into/64-cores-reused", |b| {
        b.iter(|| parse_proc_stat_into(black_box(&stat64), &mut reused))
    });
    c.bench_function("parse_meminfo", |b| {
        b.iter(|| parse_meminfo(black_box(&meminfo)))
    });
}

fn bench_live_cycle(c: &mut Criterion) {
    let roots = HostRoots::default();
    let mut collectors: Vec<_> = [
        CollectorKind::Cpu,
        CollectorKind::Memory,
        CollectorKind::System,
    ]
    .into_iter()
    .map(|k| build(k, &roots))
    .collect();
    c.bench_function("cycle/cpu+memory+system", |b| {
        b.iter(|| {
            for collector in collectors.iter_mut() {
                // The cpu collector returns nothing when no tick elapsed:
                // still the full read + parse cost.
                let _ = black_box(collector.collect(Utc::now()));
            }
        })
    });

    // The same kernel files the cycle reads (cpu: stat, loadavg; memory:
    // meminfo; system: uptime, stat, the /proc listing, utmp, os-release,
    // osrelease), read by hand into one reused buffer: the floor a collector
    // cannot beat without keeping files open. Missing files (no utmp in a
    // container) cost their failed open, as in the agent.
    let files = [
        "/proc/stat",
        "/proc/loadavg",
        "/proc/meminfo",
        "/proc/uptime",
        "/proc/stat",
        "/run/utmp",
        "/var/run/utmp",
        "/etc/os-release",
        "/proc/sys/kernel/osrelease",
    ];
    let mut buf = String::with_capacity(64 * 1024);
    c.bench_function("raw_read_floor/cpu+memory+system-files", |b| {
        b.iter(|| {
            let mut total = 0;
            for path in files {
                buf.clear();
                if let Ok(mut f) = std::fs::File::open(path) {
                    total += f.read_to_string(&mut buf).unwrap_or(0);
                }
            }
            if let Ok(dir) = std::fs::read_dir("/proc") {
                total += dir.count();
            }
            black_box(total)
        })
    });
}

criterion_group!(benches, bench_parsers, bench_live_cycle);
criterion_main!(benches);
