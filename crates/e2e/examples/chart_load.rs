//! How long a host's charts take to load in a real browser (SPEC §7, §8).
//!
//! ```text
//! export CARGO_TARGET_DIR=/root/.cache/spectra-target
//! cargo build --release -p spectra-server
//! cargo run --release -p spectra-server --example seed_history -- --data-dir DIR --days 30
//! cargo run --release -p spectra-e2e --example chart_load -- --data-dir DIR [--runs 10]
//! ```
//!
//! Starts `spectra-server --no-local-agent --data-dir DIR` on 127.0.0.1:0
//! (the binary next to this example, so the release one under `--release`;
//! `SPECTRA_SERVER_BIN` names another), signs in through the login form in
//! a headless Chromium, then loads `/hosts/agt_chart?range=R` afresh
//! `--runs` times for R in 24h, 7d and 30d. Each load waits for
//! `#charts[data-loaded="true"]` and reads:
//! - `data-load-ms` on `#charts`: the page's own measure (charts.js), from
//!   the start of the `/ui/hosts/{id}/charts` request to drawn charts;
//! - the Resource Timing of that request (its duration);
//! - the Navigation Timing of the page (responseEnd, DOMContentLoaded end,
//!   load end, from navigation start);
//! - the charts and their `data-points`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use spectra_e2e::browser::Browser;
use spectra_e2e::Server;

const HOST_ID: &str = "agt_chart";
const RANGES: &[&str] = &["24h", "7d", "30d"];
/// The admin's password on the server's first start on DIR (a later start
/// keeps the password of the first).
const ADMIN_PASSWORD: &str = "chart-load-admin-password";
const WAIT: Duration = Duration::from_secs(60);
const USAGE: &str = "usage: chart_load --data-dir DIR [--runs N]";

/// What the page reports after one load.
const PROBE: &str = r#"
const root = document.getElementById('charts');
const nav = performance.getEntriesByType('navigation')[0];
const fetches = performance.getEntriesByType('resource').filter(e => e.name.includes('/charts?'));
const f = fetches[fetches.length - 1];
return {
  load_ms: Number(root.dataset.loadMs),
  tier: root.dataset.tier || '',
  step: Number(root.dataset.step),
  response_end: nav.responseEnd,
  dcl: nav.domContentLoadedEventEnd,
  load_end: nav.loadEventEnd,
  fetch_ms: f ? f.duration : null,
  fetch_bytes: f ? f.encodedBodySize : null,
  points: Array.from(root.querySelectorAll('.chart')).map(c => Number(c.dataset.points === undefined ? -1 : c.dataset.points)),
};
"#;

struct Args {
    data_dir: PathBuf,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut data_dir = None;
    let mut runs = 10;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--runs" => {
                let v = value()?;
                runs = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or(format!("--runs: expected 1 to 1000, got {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        data_dir: data_dir.ok_or("--data-dir is required")?,
        runs,
    })
}

/// The server binary: `SPECTRA_SERVER_BIN`, or the one next to this
/// example (`target/<profile>/spectra-server`, checked to be newer than
/// its sources).
fn server_binary() -> PathBuf {
    match std::env::var_os("SPECTRA_SERVER_BIN").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => spectra_e2e::binary("spectra-server"),
    }
}

fn profile_of(path: &Path) -> &'static str {
    let parts: Vec<_> = path.components().map(|c| c.as_os_str()).collect();
    if parts.iter().any(|p| *p == "release") {
        "release"
    } else if parts.iter().any(|p| *p == "debug") {
        "debug"
    } else {
        "unknown profile"
    }
}

/// Starts the server as the e2e harness does, with `bin` and the admin's
/// password; returns it as a harness [`Server`] (killed on drop).
fn start_server(bin: &Path, data_dir: &Path) -> Server {
    let mut child = Command::new(bin)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--no-local-agent")
        .env("SPECTRA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("spectra-server printed nothing within 60 s");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!("first stdout line should be `listening on <addr>`, got {first:?}")
        })
        .trim()
        .to_owned();
    Server {
        child,
        addr,
        data_dir: data_dir.to_owned(),
        stdout_rx: rx,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("the page reported no number for {key}: {v}"))
}

struct Row {
    range: &'static str,
    tier: String,
    step: f64,
    load_ms: Vec<f64>,
    fetch_ms: Vec<f64>,
    dcl: Vec<f64>,
    response_end: Vec<f64>,
    load_end: Vec<f64>,
    fetch_kib: f64,
    charts: usize,
    points: (i64, i64),
}

async fn measure(b: &Browser, base: &str, range: &'static str, runs: usize) -> Row {
    let url = format!("{base}/hosts/{HOST_ID}?range={range}");
    let mut row = Row {
        range,
        tier: String::new(),
        step: 0.0,
        load_ms: vec![],
        fetch_ms: vec![],
        dcl: vec![],
        response_end: vec![],
        load_end: vec![],
        fetch_kib: 0.0,
        charts: 0,
        points: (0, 0),
    };
    for run in 0..runs {
        b.goto(&url).await;
        b.wait_css("#charts[data-loaded=\"true\"]", WAIT).await;
        let v = b.js(PROBE).await;
        let points: Vec<i64> = v["points"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        assert!(!points.is_empty(), "{url}: no .chart on the page");
        let least = points.iter().copied().min().unwrap_or(0);
        let most = points.iter().copied().max().unwrap_or(0);
        // Every chart drawn, with data; 30 days of hourly rows is ~720.
        let floor = if range == "30d" { 100 } else { 0 };
        assert!(
            least > floor,
            "{url} run {run}: a chart has {least} points (want > {floor}): {points:?}"
        );
        let fetch = v["fetch_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("{url}: no resource timing for the /charts? request: {v}"));
        row.load_ms.push(num(&v, "load_ms"));
        row.fetch_ms.push(fetch);
        row.dcl.push(num(&v, "dcl"));
        row.response_end.push(num(&v, "response_end"));
        row.load_end.push(num(&v, "load_end"));
        row.fetch_kib = v["fetch_bytes"].as_f64().unwrap_or(0.0) / 1024.0;
        row.tier = v["tier"].as_str().unwrap_or_default().to_owned();
        row.step = v["step"].as_f64().unwrap_or(0.0);
        row.charts = points.len();
        row.points = (least, most);
    }
    row
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<6} {:>9} {:>6} {:>13} {:>10} {:>14} {:>13} {:>11} {:>9} {:>7} {:>12}",
        "range",
        "tier",
        "step",
        "load-ms med",
        "load max",
        "fetch ms med",
        "fetch KiB",
        "DCL ms med",
        "load ev",
        "charts",
        "points/chart"
    );
    for r in rows {
        let points = if r.points.0 == r.points.1 {
            r.points.0.to_string()
        } else {
            format!("{}-{}", r.points.0, r.points.1)
        };
        println!(
            "{:<6} {:>9} {:>5}s {:>13.0} {:>10.0} {:>14.1} {:>13.1} {:>11.1} {:>9.1} {:>7} {:>12}",
            r.range,
            r.tier,
            r.step,
            median(&r.load_ms),
            max(&r.load_ms),
            median(&r.fetch_ms),
            r.fetch_kib,
            median(&r.dcl),
            median(&r.load_end),
            r.charts,
            points
        );
    }
    println!();
    println!(
        "load-ms: #charts data-load-ms (charts request start to drawn charts, set by charts.js);"
    );
    println!("fetch: Resource Timing duration of GET /ui/hosts/{HOST_ID}/charts?range=R (KiB: encoded body);");
    println!("DCL / load ev: Navigation Timing domContentLoadedEventEnd / loadEventEnd (ms from navigation start).");
    for r in rows {
        let list: Vec<String> = r.load_ms.iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "{} data-load-ms per run: {}; responseEnd median {:.1} ms",
            r.range,
            list.join(" "),
            median(&r.response_end)
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("chart_load: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !args.data_dir.join("spectra.db").is_file() {
        eprintln!(
            "chart_load: {} has no spectra.db: seed it first with `cargo run --release -p spectra-server --example seed_history -- --data-dir {}`",
            args.data_dir.display(),
            args.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let bin = server_binary();
    println!("server binary: {} ({})", bin.display(), profile_of(&bin));
    println!(
        "example built: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let server = start_server(&bin, &args.data_dir);
    let base = server.url();
    println!("server: {base}, data dir {}", args.data_dir.display());
    let Some(b) = Browser::start().await else {
        eprintln!("chart_load: no browser (see above)");
        return ExitCode::FAILURE;
    };
    let version = b.js("return navigator.userAgent;").await;
    println!("browser: {}", version.as_str().unwrap_or_default());

    b.goto(&format!("{base}/")).await;
    b.wait_path("/login", WAIT).await;
    b.fill("#username", "admin", WAIT).await;
    b.fill("#password", ADMIN_PASSWORD, WAIT).await;
    b.click("#login-form button[type=submit]", WAIT).await;
    b.wait_path("/", WAIT).await;

    let mut rows = Vec::new();
    for range in RANGES {
        rows.push(measure(&b, &base, range, args.runs).await);
    }
    println!(
        "{} fresh loads of /hosts/{HOST_ID}?range=R per range",
        args.runs
    );
    print_table(&rows);

    b.close().await;
    server.stop();
    ExitCode::SUCCESS
}
