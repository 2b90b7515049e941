//! `application_list` cost: parsing dpkg's status database at this host's
//! size and at a ~3 MB / ~3000-package size (this host's status file
//! repeated four times with renamed packages), and a full collect of the
//! live host.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_application_list`.

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use spectra_agent::collectors::application_list::{new_collector, parse_dpkg_status};
use spectra_agent::collectors::HostRoots;

/// `text` four times, each copy's `Package:` names suffixed so the packages
/// stay distinct.
fn inflate_status(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 4 + 16);
    for copy in 0..4 {
        for line in text.lines() {
            out.push_str(line);
            if copy > 0 && line.starts_with("Package: ") {
                out.push_str(&format!("-copy{copy}"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn bench_dpkg(c: &mut Criterion) {
    let Ok(status) = std::fs::read_to_string("/var/lib/dpkg/status") else {
        eprintln!("no /var/lib/dpkg/status on this host: dpkg benchmarks skipped");
        return;
    };
    let big = inflate_status(&status);
    eprintln!(
        "dpkg status: host {} bytes / {} packages; inflated {} bytes / {} packages",
        status.len(),
        parse_dpkg_status(&status).len(),
        big.len(),
        parse_dpkg_status(&big).len()
    );
    c.bench_function("parse_dpkg_status/host", |b| {
        b.iter(|| parse_dpkg_status(black_box(&status)))
    });
    c.bench_function("parse_dpkg_status/3MB", |b| {
        b.iter(|| parse_dpkg_status(black_box(&big)))
    });
}

fn bench_live_collect(c: &mut Criterion) {
    let mut collector = new_collector(&HostRoots::default());
    c.bench_function("application_list/live-collect", |b| {
        b.iter(|| collector.collect(Utc::now()))
    });
}

criterion_group!(benches, bench_dpkg, bench_live_collect);
criterion_main!(benches);
