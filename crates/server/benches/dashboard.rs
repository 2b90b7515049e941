//! Dashboard benchmarks (issue 6, SPEC §7): the fleet overview rendered
//! for 1,000 and 10,000 hosts, and a host's 30-day charts, each through
//! the real router (`app(state)`) with an embedded store in a tempdir.
//!
//! Run: `CARGO_TARGET_DIR=/root/.cache/spectra-target cargo bench -p
//! spectra-server --bench dashboard` (add `-- --measurement-time 3
//! --warm-up-time 1` for quick runs). Figures go to docs/performance.md.
//!
//! Seeding: every host gets one batch of what a Linux host sends (cpu
//! with 4 cores, memory, system, 2 mounts, 2 disk devices, 2 interfaces,
//! 2 sensors) and 30 minutes of sparkline trail. The chart host gets 30
//! days of that batch every 60 s (sealed hourly as the background pass
//! does): the 30-day chart reads the 1-hour tier, whose rows are the same
//! whether the raw data came every 10 s or every 60 s, and raw data older
//! than 7 days is gone by default retention anyway.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use spectra_protocol::{HostInfo, RawEnvelope};
use spectra_server::config::{Secret, Settings};
use spectra_server::{first_run, AppState};
use spectra_store::{AgentState, EmbeddedConfig, EmbeddedStore, NewAgent, Store};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const TOKEN: &str = "bench-admin-token";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

struct Seeded {
    _dir: tempfile::TempDir,
    state: AppState,
}

async fn open_state() -> Seeded {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EmbeddedConfig::with_path(dir.path().join("spectra.db"));
    config.background_maintenance = false;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).expect("open"));
    let settings = Settings {
        data_dir: dir.path().to_owned(),
        local_agent: false,
        admin_token: Some(Secret::new(TOKEN)),
        ..Settings::default()
    };
    first_run::ensure_credentials(store.as_ref(), &settings)
        .await
        .expect("credentials");
    let state = AppState::new(store, settings, CancellationToken::new());
    Seeded { _dir: dir, state }
}

/// A deterministic walk (xorshift64*), so runs compare.
struct Walk(u64);

impl Walk {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauge(&mut self, around: f64, spread: f64) -> f64 {
        ((around + (self.unit() - 0.5) * spread) * 100.0).round() / 100.0
    }
}

fn batch(w: &mut Walk, at: DateTime<Utc>, hostname: &str) -> Vec<RawEnvelope> {
    let env = |t: &str, data: Value| RawEnvelope {
        metric_type: t.into(),
        timestamp: at,
        hostname: hostname.into(),
        data,
    };
    let cores: Vec<f64> = (0..4).map(|_| w.gauge(30.0, 20.0)).collect();
    let mut out = vec![
        env(
            "cpu",
            json!({"usage": w.gauge(30.0, 20.0), "cores": cores, "iowait": w.gauge(1.0, 1.0), "steal": 0.0,
                   "load_1m": w.gauge(1.0, 1.0), "load_5m": w.gauge(1.0, 0.5), "load_15m": w.gauge(1.0, 0.2)}),
        ),
        env(
            "memory",
            json!({"ram_total": 8e9, "ram_used": w.gauge(4e9, 1e9), "ram_available": w.gauge(4e9, 1e9),
                   "ram_used_pct": w.gauge(50.0, 10.0), "swap_total": 2e9, "swap_used": 1e8, "swap_pct": 5.0}),
        ),
        env(
            "system",
            json!({"uptime": 86_400.0, "processes": 120.0, "users": 1.0, "boot_time": 1.7e9}),
        ),
    ];
    for (m, dev) in [("/", "/dev/sda1"), ("/var", "/dev/sdb1")] {
        out.push(env(
            "disk",
            json!({"mountpoint": m, "device": dev, "filesystem": "ext4", "disk_total": 1e11,
                   "disk_used": w.gauge(5e10, 1e9), "disk_available": 5e10, "disk_used_pct": w.gauge(50.0, 2.0),
                   "inodes_total": 1e6, "inodes_used": 1e5, "inodes_pct": 10.0}),
        ));
    }
    for dev in ["sda", "sdb"] {
        out.push(env(
            "disk_io",
            json!({"device": dev, "read_bytes": w.gauge(1e5, 1e5), "write_bytes": w.gauge(2e5, 1e5),
                   "read_ops": w.gauge(10.0, 5.0), "write_ops": w.gauge(20.0, 5.0), "io_in_progress": 0.0}),
        ));
    }
    for iface in ["eth0", "wlan0"] {
        out.push(env(
            "network",
            json!({"interface": iface, "rx_bytes": w.gauge(5e4, 5e4), "tx_bytes": w.gauge(2e4, 2e4),
                   "rx_packets": w.gauge(50.0, 20.0), "tx_packets": w.gauge(40.0, 20.0), "rx_errors": 0.0,
                   "tx_errors": 0.0, "rx_drops": 0.0, "tx_drops": 0.0}),
        ));
    }
    for sensor in ["cpu", "nvme"] {
        out.push(env(
            "temperature",
            json!({"sensor": sensor, "temperature": w.gauge(50.0, 10.0), "max_temp": 90.0}),
        ));
    }
    out
}

async fn add_agent(state: &AppState, id: &str, hostname: &str) {
    state
        .store
        .create_agent(NewAgent {
            id: id.into(),
            host: HostInfo {
                hostname: hostname.into(),
                os: "linux".into(),
                platform: "debian".into(),
                platform_ver: "12".into(),
                kernel: "6.1.0-26-amd64".into(),
                arch: "x86_64".into(),
                cpu_cores: 4,
                ram_total: 8_000_000_000,
                ips: vec!["10.0.0.1".into()],
                ..HostInfo::default()
            },
            labels: [("env".to_owned(), "prod".to_owned())].into(),
            credential_hash: format!("hash-{id}"),
            state: AgentState::Active,
            local: false,
            created_at: Utc::now(),
        })
        .await
        .expect("create agent");
}

/// `hosts` hosts with a batch each and 30 minutes of sparkline trail.
async fn seed_fleet(hosts: usize) -> Seeded {
    let seeded = open_state().await;
    let state = &seeded.state;
    let now = Utc::now();
    let mut w = Walk(7);
    for i in 0..hosts {
        let id = format!("agt_{i:06}");
        add_agent(state, &id, &format!("host-{i:05}")).await;
        let points: Vec<(bool, i64, f64)> = (0..30)
            .flat_map(|m| {
                let minute = now.timestamp() / 60 - m;
                [(false, minute, 20.0 + m as f64), (true, minute, 40.0)]
            })
            .collect();
        state.trails.record(&id, &points);
    }
    // Ingest concurrently so group commit batches the writes.
    let mut tasks = Vec::new();
    for i in 0..hosts {
        let b = batch(&mut w, now, &format!("host-{i:05}"));
        let store = state.store.clone();
        tasks.push(tokio::spawn(async move {
            store.ingest(&format!("agt_{i:06}"), "b1", b).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("ingest");
    }
    seeded
}

async fn get(state: &AppState, uri: &str) -> (u16, usize) {
    let response = spectra_server::app(state.clone())
        .oneshot(
            Request::get(uri)
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body.len())
}

fn fleet_overview(c: &mut Criterion) {
    let rt = runtime();
    for hosts in [1_000usize, 10_000] {
        let seeded = rt.block_on(seed_fleet(hosts));
        let uri = format!("/?per_page={hosts}");
        let (status, bytes) = rt.block_on(get(&seeded.state, &uri));
        assert_eq!(status, 200, "{uri}");
        println!("fleet overview, {hosts} hosts: {bytes} bytes of HTML");
        c.bench_function(&format!("fleet_page_{hosts}_hosts"), |b| {
            b.to_async(&rt).iter(|| get(&seeded.state, &uri))
        });
        // The live refresh htmx makes every 10 s (the default page: 500).
        c.bench_function(&format!("fleet_rows_refresh_{hosts}_hosts"), |b| {
            b.to_async(&rt)
                .iter(|| get(&seeded.state, "/ui/fleet/rows"))
        });
    }
}

/// 30 days of one host, sealed hourly; then the host page's chart data.
fn host_charts(c: &mut Criterion) {
    let rt = runtime();
    let seeded = rt.block_on(open_state());
    let state = &seeded.state;
    let began = Instant::now();
    rt.block_on(async {
        add_agent(state, "agt_chart", "chart-host").await;
        let end = Utc::now()
            .duration_trunc(TimeDelta::minutes(1))
            .expect("trunc");
        let start = end - TimeDelta::days(30);
        let mut w = Walk(11);
        for hour in 0..30 * 24 {
            let mut tasks = Vec::new();
            for minute in 0..60 {
                let at = start + TimeDelta::minutes(hour * 60 + minute);
                let b = batch(&mut w, at, "chart-host");
                let store = state.store.clone();
                tasks.push(tokio::spawn(async move {
                    store
                        .ingest("agt_chart", &format!("b{hour}-{minute}"), b)
                        .await
                }));
            }
            for t in tasks {
                t.await.expect("join").expect("ingest");
            }
            let at = start + TimeDelta::minutes((hour + 1) * 60);
            state.store.maintenance(at).await.expect("seal");
        }
    });
    println!(
        "seeded 30 days for the chart host in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    for range in ["24h", "7d", "30d"] {
        let uri = format!("/ui/hosts/agt_chart/charts?range={range}");
        let (status, bytes) = rt.block_on(get(state, &uri));
        if status != 200 {
            println!("{uri}: {status}; skipped");
            continue;
        }
        println!("host charts {range}: {bytes} bytes of JSON");
        c.bench_function(&format!("host_charts_{range}"), |b| {
            b.to_async(&rt).iter(|| get(state, &uri))
        });
    }
    let (status, bytes) = rt.block_on(get(state, "/hosts/agt_chart"));
    if status == 200 {
        println!("host page: {bytes} bytes of HTML");
        c.bench_function("host_page", |b| {
            b.to_async(&rt).iter(|| get(state, "/hosts/agt_chart"))
        });
    }
}

criterion_group!(benches, fleet_overview, host_charts);
criterion_main!(benches);
