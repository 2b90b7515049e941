//! Seeding shared by the dashboard bench (`benches/dashboard.rs`) and the
//! `seed_history` example (the store behind the browser chart-load
//! measurement, `crates/e2e/examples/chart_load.rs`). Both include it with
//! `#[path = "../benches/seed.rs"] mod seed;`.
//!
//! - [`batch`]: one batch of what a Linux host sends (cpu with 4 cores,
//!   memory, system, 2 mounts, 2 disk devices, 2 interfaces, 2 sensors),
//!   values from a deterministic [`Walk`].
//! - [`add_agent`]: an active agent with that host's inventory.
//! - [`seed_history`]: `days` of that batch every 60 s ending now, sealed
//!   hourly through `Store::maintenance` as the background pass does.

use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{json, Value};
use spectra_protocol::{HostInfo, RawEnvelope};
use spectra_store::{AgentState, NewAgent, Store};

/// A deterministic walk (xorshift64*), so runs compare.
pub struct Walk(pub u64);

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

pub fn batch(w: &mut Walk, at: DateTime<Utc>, hostname: &str) -> Vec<RawEnvelope> {
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

/// An active (not local) Linux agent `id` named `hostname`.
pub async fn add_agent(store: &dyn Store, id: &str, hostname: &str) {
    store
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

/// What [`seed_history`] wrote.
pub struct History {
    /// The first sample's time; the last is one minute before `end`.
    pub start: DateTime<Utc>,
    /// Now, truncated to the minute.
    pub end: DateTime<Utc>,
    pub batches: u64,
    pub samples: u64,
}

/// `days` of [`batch`] for agent `id` every 60 s, ending now (the minute),
/// sealed after each hour by `Store::maintenance` at that hour's end. An
/// hour's 60 batches are ingested concurrently so group commit batches
/// the writes.
pub async fn seed_history(store: &Arc<dyn Store>, id: &str, hostname: &str, days: i64) -> History {
    let end = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .expect("trunc");
    let start = end - TimeDelta::days(days);
    let mut w = Walk(11);
    let (mut batches, mut samples) = (0u64, 0u64);
    for hour in 0..days * 24 {
        let mut tasks = Vec::new();
        for minute in 0..60 {
            let at = start + TimeDelta::minutes(hour * 60 + minute);
            let b = batch(&mut w, at, hostname);
            batches += 1;
            samples += b.len() as u64;
            let store = store.clone();
            let id = id.to_owned();
            tasks.push(tokio::spawn(async move {
                store.ingest(&id, &format!("b{hour}-{minute}"), b).await
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("ingest");
        }
        let at = start + TimeDelta::minutes((hour + 1) * 60);
        store.maintenance(at).await.expect("seal");
    }
    History {
        start,
        end,
        batches,
        samples,
    }
}
