//! Embedded store benchmarks (SPEC §7): ingest throughput in samples/s,
//! bytes per sample on disk after sealing, and history query latency for
//! 24 h and 30 days of 10-second data.
//!
//! Run: `CARGO_TARGET_DIR=/root/.cache/spectra-target cargo bench -p
//! spectra-store --bench ingest` (add `-- --measurement-time 2
//! --warm-up-time 1` for quick runs). The bytes-per-sample, seal and
//! per-query CPU figures are printed; `SPECTRA_BENCH_AGENTS` and
//! `SPECTRA_BENCH_HOURS` size the storage dataset (0 hours skips it).
//!
//! Simulated agents send what a Linux host sends every 10 s: cpu with 16
//! cores, memory, system, 8 disks, 8 disk_io devices and 8 network
//! interfaces (~250 numeric series per batch), values as random walks
//! rounded to one or two decimals like the collectors' gauges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use spectra_protocol::RawEnvelope;
use spectra_store::{EmbeddedConfig, EmbeddedStore, HistoryQuery, Store};

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Walk {
    state: u64,
}

impl Walk {
    fn next_unit(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value near `around`, `spread` wide, rounded to `decimals`.
    fn gauge(&mut self, around: f64, spread: f64, decimals: i32) -> f64 {
        let scale = 10f64.powi(decimals);
        ((around + (self.next_unit() - 0.5) * spread) * scale).round() / scale
    }
}

/// One agent's batch at `at`: ~250 numeric samples.
fn host_batch(walk: &mut Walk, at: DateTime<Utc>, hostname: &str) -> Vec<RawEnvelope> {
    let env = |metric_type: &str, data: Value| RawEnvelope {
        metric_type: metric_type.to_owned(),
        timestamp: at,
        hostname: hostname.to_owned(),
        data,
    };
    let mut batch = Vec::with_capacity(26);
    let cores: Vec<f64> = (0..16).map(|_| walk.gauge(30.0, 20.0, 2)).collect();
    batch.push(env(
        "cpu",
        json!({
            "usage": walk.gauge(30.0, 10.0, 2), "cores": cores, "iowait": walk.gauge(1.0, 1.0, 2),
            "steal": 0.0, "user": walk.gauge(20.0, 8.0, 2), "system": walk.gauge(8.0, 4.0, 2),
            "idle": walk.gauge(70.0, 10.0, 2), "load_1m": walk.gauge(2.0, 1.0, 2),
            "load_5m": walk.gauge(2.0, 0.5, 2), "load_15m": walk.gauge(2.0, 0.2, 2),
        }),
    ));
    batch.push(env(
        "memory",
        json!({
            "ram_total": 34_359_738_368u64, "ram_used": 12_000_000_000u64 + (walk.next_unit() * 1e8) as u64,
            "ram_available": 20_000_000_000u64 + (walk.next_unit() * 1e8) as u64,
            "ram_used_pct": walk.gauge(35.0, 1.0, 2), "swap_total": 2_147_483_648u64, "swap_used": 0,
            "swap_pct": 0.0, "ram_cached": 8_000_000_000u64 + (walk.next_unit() * 1e7) as u64,
        }),
    ));
    batch.push(env(
        "system",
        json!({"uptime": 864_000, "processes": 312, "users": 2, "boot_time": 1_760_000_000}),
    ));
    for d in 0..8 {
        batch.push(env(
            "disk",
            json!({
                "device": format!("/dev/sd{}1", (b'a' + d) as char), "mountpoint": format!("/mnt/disk{d}"),
                "filesystem": "ext4", "disk_type": "ssd", "disk_total": 1_000_204_886_016u64,
                "disk_used": 400_000_000_000u64 + u64::from(d) * 1_000_000, "disk_available": 550_000_000_000u64,
                "disk_used_pct": 42.1, "inodes_total": 61_054_976, "inodes_used": 1_200_000, "inodes_pct": 1.97,
            }),
        ));
        batch.push(env(
            "disk_io",
            json!({
                "device": format!("sd{}", (b'a' + d) as char), "read_bytes": walk.gauge(50_000.0, 40_000.0, 1),
                "write_bytes": walk.gauge(200_000.0, 100_000.0, 1), "read_ops": walk.gauge(10.0, 8.0, 1),
                "write_ops": walk.gauge(40.0, 20.0, 1), "read_time_ms": walk.gauge(0.5, 0.4, 2),
                "write_time_ms": walk.gauge(1.5, 1.0, 2), "io_in_progress": 0,
            }),
        ));
        batch.push(env(
            "network",
            json!({
                "interface": format!("eth{d}"), "mac_address": format!("52:54:00:12:34:{d:02x}"), "mtu": 1500,
                "speed": 10_000, "rx_bytes": walk.gauge(120_000.0, 80_000.0, 1),
                "rx_packets": walk.gauge(150.0, 80.0, 1), "rx_errors": 0.0, "rx_drops": 0.0,
                "tx_bytes": walk.gauge(60_000.0, 40_000.0, 1), "tx_packets": walk.gauge(90.0, 50.0, 1),
                "tx_errors": 0.0, "tx_drops": 0.0, "operstate": "up", "up": true,
            }),
        ));
    }
    batch
}

fn count_numeric(value: &Value) -> u64 {
    match value {
        Value::Number(_) | Value::Bool(_) => 1,
        Value::Array(items) => items.iter().map(count_numeric).sum(),
        Value::Object(map) => map.values().map(count_numeric).sum(),
        _ => 0,
    }
}

fn samples_in(batch: &[RawEnvelope]) -> u64 {
    batch.iter().map(|e| count_numeric(&e.data)).sum()
}

fn open(dir: &std::path::Path) -> EmbeddedStore {
    let mut config = EmbeddedConfig::new(dir);
    config.background_maintenance = false;
    EmbeddedStore::open(config).expect("open")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Ingest throughput: `agents` concurrent agents each sending one batch.
fn bench_ingest(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let agents = 200usize;
    let mut walk = Walk {
        state: 0x9e37_79b9_7f4a_7c15,
    };
    let start = Utc::now()
        .duration_trunc(TimeDelta::hours(1))
        .expect("trunc")
        - TimeDelta::days(1);
    let mut tick = 0i64;
    let per_batch = samples_in(&host_batch(&mut walk, start, "probe"));
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(per_batch * agents as u64));
    group.bench_function(BenchmarkId::new("concurrent_agents", agents), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                tick += 1;
                let at = start + TimeDelta::seconds(tick * 10);
                let batches: Vec<Vec<RawEnvelope>> = (0..agents)
                    .map(|a| host_batch(&mut walk, at, &format!("host-{a}")))
                    .collect();
                let began = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = batches
                        .into_iter()
                        .enumerate()
                        .map(|(a, batch)| {
                            let store = Arc::clone(&store);
                            tokio::spawn(async move {
                                store
                                    .ingest(&format!("agent-{a}"), &format!("b{tick}"), batch)
                                    .await
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task").expect("ingest");
                    }
                });
                total += began.elapsed();
            }
            total
        });
    });
    group.finish();
    rt.block_on(store.close()).expect("close");
}

/// Seeds agents with `SPECTRA_BENCH_HOURS` (default 25) of 10 s data, one
/// batch per agent per 10 s as real agents send, running maintenance
/// every `seal_interval` of simulated time as the background pass would
/// (so chunk sizes are the production ones, and the 25th hour crosses a
/// day boundary). Prints bytes per sample: used pages, the file after
/// `VACUUM`, and a per-table breakdown (SQLite's `dbstat`).
/// `SPECTRA_BENCH_HOURS=0` skips it (e.g. when profiling reads).
fn report_bytes_per_sample(_: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let agents: usize = std::env::var("SPECTRA_BENCH_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let hours: i64 = std::env::var("SPECTRA_BENCH_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    if hours <= 0 {
        return;
    }
    let seal_every = EmbeddedConfig::new(dir.path()).seal_interval.as_secs() as i64;
    let start = Utc::now()
        .duration_trunc(TimeDelta::days(1))
        .expect("trunc")
        - TimeDelta::days(3);
    let mut walk = Walk { state: 42 };
    let mut samples = 0u64;
    // The batch log's compressed bytes, computed as ingest does, to turn
    // seal time into writer hold time per seal step.
    let mut log_bytes = 0usize;
    let mut report = spectra_store::MaintenanceReport::default();
    let mut seal_secs = 0.0;
    let ingest_began = Instant::now();
    rt.block_on(async {
        for tick in 0..hours * 360 {
            let at = start + TimeDelta::seconds(tick * 10);
            if tick > 0 && (tick * 10) % seal_every == 0 {
                let began = Instant::now();
                let step = store.maintenance(at).await.expect("maintenance");
                seal_secs += began.elapsed().as_secs_f64();
                report.sealed_batches += step.sealed_batches;
                report.chunks_written += step.chunks_written;
            }
            let mut tasks = Vec::new();
            for a in 0..agents {
                let batch = host_batch(&mut walk, at, &format!("host-{a}"));
                samples += samples_in(&batch);
                let json = serde_json::to_vec(&batch).expect("json");
                log_bytes += zstd::bulk::compress(&json, 1).expect("zstd").len();
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    store
                        .ingest(&format!("agent-{a}"), &format!("b{tick}"), batch)
                        .await
                }));
            }
            for task in tasks {
                task.await.expect("task").expect("ingest");
            }
        }
        let began = Instant::now();
        let last = store
            .maintenance(start + TimeDelta::hours(hours) + TimeDelta::seconds(seal_every))
            .await
            .expect("maintenance");
        seal_secs += began.elapsed().as_secs_f64();
        report.sealed_batches += last.sealed_batches;
        report.chunks_written += last.chunks_written;
    });
    let ingest_secs = ingest_began.elapsed().as_secs_f64() - seal_secs;
    rt.block_on(store.close()).expect("close");

    let conn = rusqlite::Connection::open(store.path()).expect("open db");
    let pragma = |name: &str| -> i64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .expect(name)
    };
    let (pages, free, page_size) = (
        pragma("page_count"),
        pragma("freelist_count"),
        pragma("page_size"),
    );
    let file_bytes = std::fs::metadata(store.path()).expect("stat").len();
    let used_bytes = (pages - free) * page_size;
    let per = |bytes: i64| bytes as f64 / samples as f64;
    let blob_bytes = |tier: i64| -> i64 {
        conn.query_row(
            "SELECT coalesce(sum(length(data)), 0) FROM chunks WHERE tier = ?1",
            [tier],
            |row| row.get(0),
        )
        .expect("sum")
    };
    let (raw, minute, hour) = (blob_bytes(0), blob_bytes(1), blob_bytes(2));
    println!(
        "storage: {samples} samples from {agents} agents x {hours} h @ 10 s, sealed every {seal_every} s \
         ({} batches sealed, {} chunks written)",
        report.sealed_batches, report.chunks_written
    );
    println!(
        "storage: ingest {:.0} samples/s (sequential ticks, {agents} concurrent agents); seal {:.0} samples/s",
        samples as f64 / ingest_secs,
        samples as f64 / seal_secs
    );
    let step_bytes = EmbeddedConfig::new(dir.path()).seal_step_bytes;
    let seal_ms_per_kib = seal_secs * 1000.0 / (log_bytes as f64 / 1024.0);
    println!(
        "storage: sealing+compaction {:.3} ms per KiB of batch log ({:.0} B per batch): a seal step of {} KiB \
         holds the writer ~{:.0} ms",
        seal_ms_per_kib,
        log_bytes as f64 / report.sealed_batches.max(1) as f64,
        step_bytes / 1024,
        seal_ms_per_kib * (step_bytes / 1024) as f64
    );
    println!(
        "storage: {:.2} B/sample in used pages ({used_bytes} B), {:.2} B/sample whole file ({file_bytes} B, \
         {free} free pages left by the sealed batch log, reused by the next one)",
        per(used_bytes),
        per(file_bytes as i64),
    );
    println!(
        "storage: chunk blobs {:.2} B/sample (raw {:.2}, 1-minute {:.2}, 1-hour {:.2})",
        per(raw + minute + hour),
        per(raw),
        per(minute),
        per(hour)
    );
    let mut statement = conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .expect("dbstat");
    let tables: Vec<(String, i64)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("dbstat")
        .collect::<rusqlite::Result<_>>()
        .expect("dbstat");
    for (name, bytes) in tables.iter().filter(|(_, bytes)| per(*bytes) >= 0.005) {
        println!("storage:   {name:<24} {:.3} B/sample", per(*bytes));
    }
    drop(statement);
    conn.execute_batch("VACUUM").expect("vacuum");
    let vacuumed = std::fs::metadata(store.path()).expect("stat").len();
    println!(
        "storage: {:.2} B/sample after VACUUM ({vacuumed} B)",
        per(vacuumed as i64)
    );
}

/// This process's user + system CPU time in ms (Linux `/proc/self/stat`,
/// clock ticks assumed 100 Hz as on every mainstream Linux), or `None`.
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields overall.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// History latency over 30 days of 10 s cpu data for one agent (26 series:
/// usage, 16 cores, load...). A dashboard chart asks for ~300-1500 points
/// per series: a 24 h chart is step 60-300 s, a 30-day chart step
/// 1800-3600 s; `24h_raw` is every point (8,640 per series).
fn bench_history(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let now = Utc::now();
    let end = now.duration_trunc(TimeDelta::hours(1)).expect("trunc") - TimeDelta::hours(1);
    let start = end - TimeDelta::days(30);
    let mut walk = Walk { state: 7 };
    rt.block_on(async {
        // One batch per hour of data (360 cpu envelopes), sealed daily.
        let mut hour = 0i64;
        while start + TimeDelta::hours(hour) < end {
            let batch: Vec<RawEnvelope> = (0..360)
                .flat_map(|i| {
                    let at = start + TimeDelta::hours(hour) + TimeDelta::seconds(i * 10);
                    host_batch(&mut walk, at, "h").into_iter().take(1)
                })
                .collect();
            store
                .ingest("agent-0", &format!("h{hour}"), batch)
                .await
                .expect("ingest");
            hour += 1;
            // Sealed hourly on a simulated clock, as the background pass
            // would: finished days get compacted, the last one stays in
            // hourly chunks like the current day of a live server.
            store
                .maintenance(start + TimeDelta::hours(hour))
                .await
                .expect("maintenance");
        }
    });
    let mut group = c.benchmark_group("history_cpu");
    group.sample_size(20);
    for (name, days, step) in [
        ("24h_raw", 1, None),
        ("24h_step_60s", 1, Some(60)),
        ("24h_step_300s", 1, Some(300)),
        ("30d_step_600s", 30, Some(600)),
        ("30d_step_1800s", 30, Some(1800)),
        ("30d_step_3600s", 30, Some(3600)),
    ] {
        let query = HistoryQuery {
            agent_id: "agent-0".into(),
            metric_type: "cpu".into(),
            start: end - TimeDelta::days(days),
            end,
            step: step.map(Duration::from_secs),
        };
        let answered = rt
            .block_on(store.history(query.clone()))
            .expect("history")
            .len();
        assert!(answered > 0, "{name} answered nothing");
        // CPU time per query, less sensitive than wall time to the other
        // core being busy (the criterion figure below is wall time).
        if let Some(before) = process_cpu_ms() {
            let runs = 40;
            let began = Instant::now();
            for _ in 0..runs {
                rt.block_on(store.history(query.clone())).expect("history");
            }
            let wall = began.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
            if let Some(after) = process_cpu_ms() {
                println!(
                    "history {name}: {answered} samples, {:.2} ms CPU/query, {wall:.2} ms wall/query",
                    (after - before) / f64::from(runs)
                );
            }
        }
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(store.history(query.clone())).expect("history"));
        });
    }
    group.finish();
    rt.block_on(store.close()).expect("close");
}

criterion_group!(
    benches,
    report_bytes_per_sample,
    bench_ingest,
    bench_history
);
criterion_main!(benches);
