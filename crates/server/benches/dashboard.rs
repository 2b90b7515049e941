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
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use spectra_server::config::{Secret, Settings};
use spectra_server::{first_run, AppState};
use spectra_store::{EmbeddedConfig, EmbeddedStore, Store};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

// Walk, batch, add_agent and the chart host's history, shared with
// examples/seed_history.rs.
#[path = "../benches/seed.rs"]
mod seed;
use seed::{add_agent, batch, Walk};

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

/// `hosts` hosts with a batch each and 30 minutes of sparkline trail.
async fn seed_fleet(hosts: usize) -> Seeded {
    let seeded = open_state().await;
    let state = &seeded.state;
    let now = Utc::now();
    let mut w = Walk(7);
    for i in 0..hosts {
        let id = format!("agt_{i:06}");
        add_agent(state.store.as_ref(), &id, &format!("host-{i:05}")).await;
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
    let history = rt.block_on(async {
        add_agent(state.store.as_ref(), "agt_chart", "chart-host").await;
        seed::seed_history(&state.store, "agt_chart", "chart-host", 30).await
    });
    println!(
        "seeded {} batches ({} samples, {} to {}) for the chart host in {:.1} s",
        history.batches,
        history.samples,
        history.start,
        history.end,
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
