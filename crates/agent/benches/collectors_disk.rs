//! Costs of `disk` and `disk_io` (SPEC §7): their parsers on fixtures, one
//! live `collect` of each, and the raw floor of reading the same kernel
//! files into a reused buffer.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_disk`.

use std::io::Read;
use std::path::Path;

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::disk::{select_mounts, DiskOptions};
use spectra_agent::collectors::disk_io::{parse_diskstats_into, DiskStat};
use spectra_agent::collectors::mounts::parse_mountinfo;
use spectra_agent::collectors::{disk, disk_io, HostRoots};

fn read_fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn bench_parsers(c: &mut Criterion) {
    let server = read_fixture("linux/server-nvme-mdraid/diskstats");
    let mut reused: Vec<DiskStat> = Vec::new();
    c.bench_function("parse_diskstats_into/nvme-mdraid-reused", |b| {
        b.iter(|| parse_diskstats_into(black_box(&server), &mut reused))
    });
    let mountinfo = read_fixture("linux/server-nvme-mdraid/mountinfo");
    let options = DiskOptions::default();
    c.bench_function("parse_mountinfo+select_mounts/server", |b| {
        b.iter(|| select_mounts(&parse_mountinfo(black_box(&mountinfo)).unwrap(), &options))
    });
}

fn bench_live(c: &mut Criterion) {
    let roots = HostRoots::default();
    let mut io = disk_io::new_collector(&roots);
    c.bench_function("collect/disk_io", |b| {
        b.iter(|| io.collect(Utc::now()).unwrap())
    });
    let mut disks = disk::new_collector(&roots);
    c.bench_function("collect/disk", |b| {
        b.iter(|| disks.collect(Utc::now()).unwrap())
    });
    let mut buf = String::new();
    c.bench_function("floor/read-diskstats", |b| {
        b.iter(|| {
            buf.clear();
            std::fs::File::open("/proc/diskstats")
                .unwrap()
                .read_to_string(&mut buf)
                .unwrap();
            black_box(buf.len())
        })
    });
    c.bench_function("floor/read-mountinfo+stat-root", |b| {
        b.iter(|| {
            buf.clear();
            std::fs::File::open("/proc/self/mountinfo")
                .unwrap()
                .read_to_string(&mut buf)
                .unwrap();
            black_box(std::fs::metadata("/").unwrap().is_dir())
        })
    });
}

criterion_group!(benches, bench_parsers, bench_live);
criterion_main!(benches);
