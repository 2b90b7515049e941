//! `process_list` cost (SPEC §7): the agent's full collect on this host
//! beside the raw-read floor, which lists `/proc` and reads every
//! `/proc/<pid>/stat` into one reused buffer and does nothing else. Both
//! report throughput in processes, so µs per process is 1 / throughput.
//!
//! Run: `cargo bench -p spectra-agent --bench collectors_process_list`.

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Read;
    use std::path::Path;

    use chrono::Utc;
    use criterion::{black_box, Criterion, Throughput};
    use spectra_agent::collectors::process_list::{
        new_collector, parse_pid_stat, ProcessListCollector,
    };
    use spectra_agent::collectors::{Collector, HostRoots};

    fn count_pids() -> u64 {
        std::fs::read_dir("/proc")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_str()
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .count() as u64
            })
            .unwrap_or(0)
    }

    /// Lists `/proc` and reads each pid's `stat` into `buf`: the floor.
    fn read_every_stat(buf: &mut Vec<u8>) -> usize {
        let mut bytes = 0;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        for entry in dir.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|n| n.parse::<u32>().is_ok()) else {
                continue;
            };
            let path = Path::new("/proc").join(pid).join("stat");
            buf.clear();
            if let Ok(mut file) = std::fs::File::open(&path) {
                if file.read_to_end(buf).is_ok() {
                    bytes += buf.len();
                }
            }
        }
        bytes
    }

    pub fn bench(c: &mut Criterion) {
        let processes = count_pids();
        println!("process_list bench: {processes} processes in /proc");
        let mut group = c.benchmark_group("process_list");
        group.throughput(Throughput::Elements(processes));

        let mut buf = Vec::with_capacity(4096);
        group.bench_function("raw_floor/read_every_stat", |b| {
            b.iter(|| black_box(read_every_stat(&mut buf)))
        });

        let mut collector = new_collector(&HostRoots::default());
        // Prime: the first collect only records the CPU baseline.
        let _ = collector.collect(Utc::now());
        group.bench_function("collect/top20", |b| {
            b.iter(|| black_box(collector.collect(Utc::now())))
        });
        // The scan alone (every stat, ranking, meminfo): no process is
        // selected, so no cmdline/status/io/task reads.
        let mut scan_only = ProcessListCollector::with_top_n(&HostRoots::default(), 0);
        let _ = scan_only.collect(Utc::now());
        group.bench_function("collect/top0_scan_only", |b| {
            b.iter(|| black_box(scan_only.collect(Utc::now())))
        });
        group.finish();

        let stat = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/linux/process_list/pid1/stat"
        ))
        .unwrap_or_default();
        c.bench_function("parse_pid_stat/pid1", |b| {
            b.iter(|| black_box(parse_pid_stat(black_box(&stat))).is_ok())
        });
    }
}

#[cfg(target_os = "linux")]
criterion::criterion_group!(benches, linux::bench);
#[cfg(target_os = "linux")]
criterion::criterion_main!(benches);

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("process_list benchmarks need Linux");
}
