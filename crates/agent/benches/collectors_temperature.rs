//! `temperature` cost: one collect over the Intel-laptop fixture tree
//! (4 hwmon devices, 2 thermal zones, 7 sensors reported); this
//! development VM has no sensors of its own.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_temperature`.

use std::path::PathBuf;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::temperature::new_collector;
use spectra_agent::collectors::HostRoots;

fn bench_fixture_collect(c: &mut Criterion) {
    let roots = HostRoots {
        sysfs: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/linux/hwmon-intel-laptop/sys"
        )),
        ..HostRoots::default()
    };
    let mut collector = new_collector(&roots);
    c.bench_function("temperature/intel-laptop-fixture", |b| {
        b.iter(|| collector.collect(Utc::now()))
    });
}

criterion_group!(benches, bench_fixture_collect);
criterion_main!(benches);
