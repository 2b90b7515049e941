//! `updates` cost on the agent's side: parsing apt's simulation of this
//! Debian 12 VM (120 pending packages, 69 from the security archive). The
//! collect itself is dominated by the child: `apt-get -s dist-upgrade`
//! costs ~1.6 s of CPU and ~83 MB peak RSS of its own here, once a night.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_updates`.

use criterion::{criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::updates::parse_apt_simulation;

fn bench_parse_apt(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/updates/apt_debian12_vm.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    c.bench_function("updates/parse_apt_debian12_vm", |b| {
        b.iter(|| parse_apt_simulation(&text))
    });
}

criterion_group!(benches, bench_parse_apt);
criterion_main!(benches);
