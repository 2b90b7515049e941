//! Seeds a data dir with a host's history, for measuring the dashboard's
//! charts on a real server (crates/e2e/examples/chart_load.rs):
//!
//! ```text
//! cargo run --release -p spectra-server --example seed_history -- --data-dir DIR [--days 30]
//! ```
//!
//! Opens the embedded store at `DIR/spectra.db`, creates the active agent
//! `agt_chart` (hostname `chart-host`) and writes `--days` (default 30) of
//! the dashboard bench's batch every 60 s ending now, sealed hourly, as
//! `host_charts` in benches/dashboard.rs does. It creates no user: the
//! server's first start on DIR does that.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use spectra_store::{EmbeddedConfig, EmbeddedStore, Store};

#[path = "../benches/seed.rs"]
mod seed;

const AGENT_ID: &str = "agt_chart";
const HOSTNAME: &str = "chart-host";
const USAGE: &str = "usage: seed_history --data-dir DIR [--days N]";

struct Args {
    data_dir: PathBuf,
    days: i64,
}

fn parse_args() -> Result<Args, String> {
    let mut data_dir = None;
    let mut days = 30;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match name.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--days" => {
                let v = value()?;
                days = v
                    .parse::<i64>()
                    .ok()
                    .filter(|d| (1..=400).contains(d))
                    .ok_or(format!("--days: expected 1 to 400, got {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let data_dir = data_dir.ok_or("--data-dir is required")?;
    Ok(Args { data_dir, days })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("seed_history: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!("seed_history: creating {}: {e}", args.data_dir.display());
        return ExitCode::FAILURE;
    }
    let path = args.data_dir.join("spectra.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config = EmbeddedConfig::with_path(&path);
        config.background_maintenance = false;
        let store: Arc<dyn Store> = match EmbeddedStore::open(config) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("seed_history: opening {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        if let Ok(Some(_)) = store.get_agent(AGENT_ID).await {
            eprintln!(
                "seed_history: {} already has agent {AGENT_ID}; use a fresh data dir",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        let began = Instant::now();
        seed::add_agent(store.as_ref(), AGENT_ID, HOSTNAME).await;
        let h = seed::seed_history(&store, AGENT_ID, HOSTNAME, args.days).await;
        let took = began.elapsed().as_secs_f64();
        if let Err(e) = store.close().await {
            eprintln!("seed_history: closing the store: {e}");
            return ExitCode::FAILURE;
        }
        let size: u64 = std::fs::read_dir(&args.data_dir)
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("spectra.db"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        println!("store: {}", path.display());
        println!("agent: {AGENT_ID} (hostname {HOSTNAME}, active)");
        println!(
            "history: {} days, {} to {} (one batch every 60 s, sealed hourly)",
            args.days,
            h.start.format("%Y-%m-%dT%H:%MZ"),
            (h.end - chrono::TimeDelta::minutes(1)).format("%Y-%m-%dT%H:%MZ"),
        );
        println!(
            "wrote {} batches, {} samples in {took:.1} s; store files {:.1} MiB",
            h.batches,
            h.samples,
            size as f64 / (1024.0 * 1024.0)
        );
        ExitCode::SUCCESS
    })
}
