//! `network` and `wifi` costs: the `/proc/net/dev` parser on fixtures, one
//! live `network` collect on this host (steady state: the tracker already
//! holds a previous sample, so every call computes rates and reads sysfs),
//! and the raw-read floor of the same files.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_network`.

use std::io::Read;
use std::path::Path;

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::network::{self, parse_net_dev, parse_net_dev_into};
use spectra_agent::collectors::wifi::parse_proc_net_wireless;
use spectra_agent::collectors::HostRoots;

fn read_fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn bench_parsers(c: &mut Criterion) {
    let server = read_fixture("linux/server-bond-vlan-docker/net-dev");
    c.bench_function("parse_net_dev/11-interfaces", |b| {
        b.iter(|| parse_net_dev(black_box(&server)))
    });
    let mut reused = Vec::new();
    c.bench_function("parse_net_dev_into/11-interfaces-reused", |b| {
        b.iter(|| parse_net_dev_into(black_box(&server), &mut reused))
    });
    let wireless = read_fixture("linux/laptop-iwlwifi/net-wireless");
    c.bench_function("parse_proc_net_wireless/laptop", |b| {
        b.iter(|| parse_proc_net_wireless(black_box(&wireless)))
    });
}

fn bench_live(c: &mut Criterion) {
    let mut collector = network::new_collector(&HostRoots::default());
    let _ = collector.collect(Utc::now());
    c.bench_function("network/live-collect", |b| {
        b.iter(|| black_box(collector.collect(Utc::now())))
    });

    // The same files read by hand into one buffer: /proc/net/dev and the
    // five sysfs attributes of each interface, plus the virtual check.
    let names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut files = vec!["/proc/net/dev".to_owned()];
    for name in &names {
        for attr in ["mtu", "address", "speed", "operstate", "flags"] {
            files.push(format!("/sys/class/net/{name}/{attr}"));
        }
    }
    let mut buf = String::with_capacity(4096);
    c.bench_function("raw_read_floor/network-files", |b| {
        b.iter(|| {
            let mut total = 0;
            for path in &files {
                buf.clear();
                if let Ok(mut f) = std::fs::File::open(path) {
                    total += f.read_to_string(&mut buf).unwrap_or(0);
                }
            }
            for name in &names {
                total += usize::from(Path::new("/sys/devices/virtual/net").join(name).exists());
            }
            black_box(total)
        })
    });
}

criterion_group!(benches, bench_parsers, bench_live);
criterion_main!(benches);
