//! The fleet overview's data: each host's gauges at a glance
//! ([`glance`], from the latest envelopes) and the short trails behind its
//! sparklines ([`FleetTrails`]).
//!
//! Why trails in memory: the overview draws two sparklines for every host
//! and must stay fast with thousands of hosts (SPEC §7: 10,000 hosts under
//! 50 ms). A history read per host would cost a store query each; instead
//! ingest feeds per-minute averages of CPU and memory use into a small ring
//! per host ([`TRAIL_MINUTES`] buckets, about 1 KiB per host), and start-up
//! fills the rings from the store's 1-minute tier in the background. Behind
//! a load balancer each replica keeps the trails of what it ingested plus
//! that backfill.
//!
//! The gauges are cached the same way: ingest keeps, per host, the newest
//! envelope of each glance type and entity, cut down to the fields the
//! overview reads ([`GLANCE_FIELDS`]), and the overview computes a
//! [`Glance`] from them under the lock, without copying. Reading every
//! host's latest envelopes from the store instead cost ~10 µs per host
//! (105 ms for 10,000 hosts, measured with the dashboard bench), most of it
//! copying envelopes. A host whose cache is older than its last contact
//! (data that arrived through another replica, or before this server
//! started) is refreshed from the store when the overview reads it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;
use spectra_protocol::RawEnvelope;

/// Minutes of history in a sparkline.
pub const TRAIL_MINUTES: usize = 30;

/// The envelope types the overview reads for each host.
pub const GLANCE_TYPES: &[&str] = &["cpu", "memory", "disk", "network", "temperature", "system"];

/// Per-minute averages of one gauge, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Trail {
    /// (minute since the epoch, sum, count)
    buckets: VecDeque<(i64, f64, u32)>,
}

impl Trail {
    /// Adds a value to its minute's bucket. Values older than the trail
    /// are dropped; the trail keeps [`TRAIL_MINUTES`] minutes behind its
    /// newest bucket.
    pub fn record(&mut self, minute: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let newest = self.buckets.back().map(|b| b.0);
        if let Some(newest) = newest {
            if minute <= newest - TRAIL_MINUTES as i64 {
                return;
            }
        }
        match self.buckets.binary_search_by_key(&minute, |b| b.0) {
            Ok(i) => {
                let b = &mut self.buckets[i];
                b.1 += value;
                b.2 += 1;
            }
            Err(i) => self.buckets.insert(i, (minute, value, 1)),
        }
        let newest = self.buckets.back().map_or(minute, |b| b.0);
        while self
            .buckets
            .front()
            .is_some_and(|b| b.0 <= newest - TRAIL_MINUTES as i64)
        {
            self.buckets.pop_front();
        }
    }

    /// The [`TRAIL_MINUTES`] minutes ending at `now_minute`, `None` where
    /// nothing arrived.
    pub fn values(&self, now_minute: i64) -> Vec<Option<f64>> {
        let first = now_minute - TRAIL_MINUTES as i64 + 1;
        let mut out = vec![None; TRAIL_MINUTES];
        for &(minute, sum, count) in &self.buckets {
            if minute >= first && minute <= now_minute && count > 0 {
                out[(minute - first) as usize] = Some(sum / f64::from(count));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Default)]
struct HostTrails {
    cpu: Trail,
    memory: Trail,
    /// (type, entity) → the newest envelope, cut to [`GLANCE_FIELDS`].
    gauges: HashMap<(String, String), RawEnvelope>,
    /// When this server last brought `gauges` up to date.
    gauges_at: Option<DateTime<Utc>>,
    /// [`glance`] of `gauges`, computed when they change (the overview
    /// reads it for every host on every refresh).
    glance: Glance,
}

/// The fields [`glance`] reads, per type (the entity key included).
pub const GLANCE_FIELDS: &[(&str, &[&str])] = &[
    ("cpu", &["usage", "load_1m", "cores"]),
    ("memory", &["ram_used_pct", "ram_used", "ram_total"]),
    ("disk", &["mountpoint", "disk_used_pct"]),
    ("network", &["interface", "rx_bytes", "tx_bytes"]),
    ("temperature", &["sensor", "temperature"]),
    ("system", &["uptime"]),
];

/// Slack between a host's last contact and its cached gauges before the
/// cache counts as behind (an agent polls for commands between batches).
const GAUGES_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(15);

/// The envelopes of a batch the overview reads, cut to [`GLANCE_FIELDS`].
pub fn glance_envelopes(envelopes: &[RawEnvelope]) -> Vec<RawEnvelope> {
    envelopes
        .iter()
        .filter_map(|e| {
            let fields = GLANCE_FIELDS.iter().find(|(t, _)| *t == e.metric_type)?.1;
            let data: serde_json::Map<String, Value> = fields
                .iter()
                .filter_map(|f| Some(((*f).to_owned(), e.data.get(*f)?.clone())))
                .collect();
            Some(RawEnvelope {
                metric_type: e.metric_type.clone(),
                timestamp: e.timestamp,
                hostname: String::new(),
                data: Value::Object(data),
            })
        })
        .collect()
}

fn entity_key(e: &RawEnvelope) -> String {
    ["mountpoint", "interface", "sensor"]
        .iter()
        .find_map(|f| e.data.get(*f).and_then(Value::as_str))
        .unwrap_or("")
        .to_owned()
}

/// Sparkline trails of every host (see the module docs).
#[derive(Debug, Default)]
pub struct FleetTrails {
    hosts: Mutex<HashMap<String, HostTrails>>,
}

/// The points of a batch that feed the trails: (type is memory, minute, value).
pub type TrailPoints = Vec<(bool, i64, f64)>;

/// Picks CPU `usage` and memory `ram_used_pct` out of a batch.
pub fn trail_points(envelopes: &[RawEnvelope]) -> TrailPoints {
    let mut out = Vec::new();
    for e in envelopes {
        let (is_memory, field) = match e.metric_type.as_str() {
            "cpu" => (false, "usage"),
            "memory" => (true, "ram_used_pct"),
            _ => continue,
        };
        if let Some(v) = e.data.get(field).and_then(Value::as_f64) {
            out.push((is_memory, minute_of(e.timestamp), v));
        }
    }
    out
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

impl FleetTrails {
    /// Applies a stored batch's glance envelopes ([`glance_envelopes`]):
    /// newer ones replace older ones per type and entity.
    pub fn record_gauges(&self, agent_id: &str, envelopes: Vec<RawEnvelope>, now: DateTime<Utc>) {
        let Ok(mut hosts) = self.hosts.lock() else {
            return;
        };
        let host = hosts.entry(agent_id.to_owned()).or_default();
        // Without a base from the store, a partial batch would show as the
        // whole picture: leave the host for the overview to refresh.
        if host.gauges_at.is_none() {
            return;
        }
        apply_gauges(host, envelopes);
        host.gauges_at = Some(now);
    }

    /// Whether the host's gauges are cached (otherwise ingest need not cut
    /// a batch's glance envelopes: the overview reads the store first).
    pub fn has_gauges(&self, agent_id: &str) -> bool {
        self.hosts
            .lock()
            .is_ok_and(|h| h.get(agent_id).is_some_and(|h| h.gauges_at.is_some()))
    }

    /// The host's [`Glance`] from the cache, if the cache is not behind
    /// `last_seen` (see the module docs); `None`: refresh it.
    pub fn cached_glance(
        &self,
        agent_id: &str,
        last_seen: Option<DateTime<Utc>>,
    ) -> Option<Glance> {
        let hosts = self.hosts.lock().ok()?;
        let host = hosts.get(agent_id)?;
        let at = host.gauges_at?;
        if last_seen.is_some_and(|seen| seen > at + GAUGES_SLACK) {
            return None;
        }
        Some(host.glance.clone())
    }

    /// Replaces the host's cached gauges with the store's latest.
    pub fn refresh_gauges(&self, agent_id: &str, latest: &[RawEnvelope], now: DateTime<Utc>) {
        let Ok(mut hosts) = self.hosts.lock() else {
            return;
        };
        let host = hosts.entry(agent_id.to_owned()).or_default();
        host.gauges.clear();
        apply_gauges(host, glance_envelopes(latest));
        host.gauges_at = Some(now);
    }

    pub fn record(&self, agent_id: &str, points: &TrailPoints) {
        if points.is_empty() {
            return;
        }
        let Ok(mut hosts) = self.hosts.lock() else {
            return;
        };
        let host = hosts.entry(agent_id.to_owned()).or_default();
        for &(is_memory, minute, value) in points {
            if is_memory {
                host.memory.record(minute, value);
            } else {
                host.cpu.record(minute, value);
            }
        }
    }

    /// (CPU, memory) sparkline values of a host, ending at `now`.
    pub fn sparklines(
        &self,
        agent_id: &str,
        now: DateTime<Utc>,
    ) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        let minute = minute_of(now);
        let hosts = match self.hosts.lock() {
            Ok(h) => h,
            Err(_) => return (vec![None; TRAIL_MINUTES], vec![None; TRAIL_MINUTES]),
        };
        match hosts.get(agent_id) {
            Some(h) => (h.cpu.values(minute), h.memory.values(minute)),
            None => (vec![None; TRAIL_MINUTES], vec![None; TRAIL_MINUTES]),
        }
    }

    pub fn forget(&self, agent_id: &str) {
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.remove(agent_id);
        }
    }

    /// Fills the trails of `agents` from the store's last
    /// [`TRAIL_MINUTES`] minutes (1-minute steps). Run once at start-up, in
    /// the background; errors are logged and skipped.
    pub async fn backfill(&self, store: &dyn spectra_store::Store, agents: &[String]) {
        let end = Utc::now();
        let start = end - chrono::Duration::minutes(TRAIL_MINUTES as i64);
        for agent_id in agents {
            for (metric_type, field, is_memory) in
                [("cpu", "usage", false), ("memory", "ram_used_pct", true)]
            {
                let query = spectra_store::HistoryQuery {
                    agent_id: agent_id.clone(),
                    metric_type: metric_type.into(),
                    start,
                    end,
                    step: Some(std::time::Duration::from_secs(60)),
                };
                match store.history(query).await {
                    Ok(samples) => {
                        let points: TrailPoints = samples
                            .iter()
                            .filter_map(|s| {
                                let v = s.data.get(field)?.as_f64()?;
                                Some((is_memory, minute_of(s.timestamp), v))
                            })
                            .collect();
                        self.record(agent_id, &points);
                    }
                    Err(e) => {
                        tracing::warn!(agent_id, error = %e, "sparkline backfill failed");
                    }
                }
            }
        }
    }
}

fn apply_gauges(host: &mut HostTrails, envelopes: Vec<RawEnvelope>) {
    for e in envelopes {
        let key = (e.metric_type.clone(), entity_key(&e));
        match host.gauges.get(&key) {
            Some(current) if current.timestamp > e.timestamp => {}
            _ => {
                host.gauges.insert(key, e);
            }
        }
    }
    host.glance = glance(host.gauges.values());
}

/// A host's gauges at a glance; `None` where the host has not reported
/// the value (shown as "—", never as 0).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Glance {
    pub cpu_pct: Option<f64>,
    pub load_1m: Option<f64>,
    pub cores: Option<usize>,
    pub mem_pct: Option<f64>,
    pub mem_used: Option<f64>,
    pub mem_total: Option<f64>,
    /// The fullest mount's use.
    pub disk_pct: Option<f64>,
    pub disk_mount: Option<String>,
    pub net_rx_bps: Option<f64>,
    pub net_tx_bps: Option<f64>,
    /// The hottest sensor.
    pub temp_c: Option<f64>,
    pub temp_sensor: Option<String>,
    pub uptime_s: Option<f64>,
}

fn num(data: &Value, field: &str) -> Option<f64> {
    data.get(field)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

/// Loopback and virtual links that would double-count or inflate traffic.
fn counts_as_traffic(interface: &str) -> bool {
    !(interface == "lo"
        || interface.starts_with("veth")
        || interface.starts_with("docker")
        || interface.starts_with("br-")
        || interface.starts_with("virbr")
        || interface.starts_with("cni")
        || interface.starts_with("flannel"))
}

/// Reads the overview's gauges out of a host's latest envelopes.
pub fn glance<'a>(envelopes: impl IntoIterator<Item = &'a RawEnvelope>) -> Glance {
    let mut g = Glance::default();
    for e in envelopes {
        let d = &e.data;
        match e.metric_type.as_str() {
            "cpu" => {
                g.cpu_pct = num(d, "usage");
                g.load_1m = num(d, "load_1m");
                g.cores = d.get("cores").and_then(Value::as_array).map(Vec::len);
            }
            "memory" => {
                g.mem_pct = num(d, "ram_used_pct");
                g.mem_used = num(d, "ram_used");
                g.mem_total = num(d, "ram_total");
            }
            "disk" => {
                if let Some(p) = num(d, "disk_used_pct") {
                    if g.disk_pct.is_none_or(|cur| p > cur) {
                        g.disk_pct = Some(p);
                        g.disk_mount = d
                            .get("mountpoint")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                    }
                }
            }
            "network" => {
                let name = d.get("interface").and_then(Value::as_str).unwrap_or("");
                if counts_as_traffic(name) {
                    if let Some(rx) = num(d, "rx_bytes") {
                        *g.net_rx_bps.get_or_insert(0.0) += rx;
                    }
                    if let Some(tx) = num(d, "tx_bytes") {
                        *g.net_tx_bps.get_or_insert(0.0) += tx;
                    }
                }
            }
            "temperature" => {
                if let Some(t) = num(d, "temperature") {
                    if g.temp_c.is_none_or(|cur| t > cur) {
                        g.temp_c = Some(t);
                        g.temp_sensor = d.get("sensor").and_then(Value::as_str).map(str::to_owned);
                    }
                }
            }
            "system" => g.uptime_s = num(d, "uptime"),
            _ => {}
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(t: &str, data: Value) -> RawEnvelope {
        serde_json::from_value(json!({
            "type": t, "timestamp": "2026-11-25T10:00:05Z", "hostname": "h", "data": data
        }))
        .unwrap()
    }

    #[test]
    fn trail_averages_per_minute_and_forgets_old_minutes() {
        let mut t = Trail::default();
        t.record(100, 10.0);
        t.record(100, 30.0);
        t.record(102, 50.0);
        let v = t.values(102);
        assert_eq!(v.len(), TRAIL_MINUTES);
        assert_eq!(v[TRAIL_MINUTES - 1], Some(50.0));
        assert_eq!(v[TRAIL_MINUTES - 2], None);
        assert_eq!(v[TRAIL_MINUTES - 3], Some(20.0));
        // A late point for an old minute inside the window still lands.
        t.record(101, 5.0);
        assert_eq!(t.values(102)[TRAIL_MINUTES - 2], Some(5.0));
        // Far ahead: everything older than the window goes.
        t.record(100 + TRAIL_MINUTES as i64 + 5, 1.0);
        assert_eq!(t.buckets.len(), 1);
        // Points older than the window are ignored.
        t.record(50, 99.0);
        assert_eq!(t.buckets.len(), 1);
        t.record(200, f64::NAN);
        assert_eq!(t.buckets.len(), 1);
    }

    #[test]
    fn glance_takes_the_fullest_disk_and_hottest_sensor_and_skips_loopback() {
        let g = glance(&[
            env(
                "cpu",
                json!({"usage": 12.5, "cores": [10.0, 15.0], "load_1m": 0.4}),
            ),
            env(
                "memory",
                json!({"ram_used_pct": 41.0, "ram_used": 4e9, "ram_total": 8e9}),
            ),
            env("disk", json!({"mountpoint": "/", "disk_used_pct": 40.0})),
            env("disk", json!({"mountpoint": "/var", "disk_used_pct": 91.5})),
            env(
                "network",
                json!({"interface": "lo", "rx_bytes": 1e9, "tx_bytes": 1e9}),
            ),
            env(
                "network",
                json!({"interface": "eth0", "rx_bytes": 1000.0, "tx_bytes": 10.0}),
            ),
            env(
                "network",
                json!({"interface": "wlan0", "rx_bytes": 500.0, "tx_bytes": 5.0}),
            ),
            env("temperature", json!({"sensor": "cpu", "temperature": 55.0})),
            env(
                "temperature",
                json!({"sensor": "nvme", "temperature": 61.0}),
            ),
            env("system", json!({"uptime": 3600.0})),
        ]);
        assert_eq!(g.cpu_pct, Some(12.5));
        assert_eq!(g.cores, Some(2));
        assert_eq!(g.disk_pct, Some(91.5));
        assert_eq!(g.disk_mount.as_deref(), Some("/var"));
        assert_eq!(g.net_rx_bps, Some(1500.0));
        assert_eq!(g.net_tx_bps, Some(15.0));
        assert_eq!(g.temp_c, Some(61.0));
        assert_eq!(g.temp_sensor.as_deref(), Some("nvme"));
        assert_eq!(g.uptime_s, Some(3600.0));
    }

    #[test]
    fn glance_of_a_silent_host_is_all_unknown() {
        assert_eq!(glance(&[]), Glance::default());
    }

    fn at(e: RawEnvelope, secs: i64) -> RawEnvelope {
        RawEnvelope {
            timestamp: e.timestamp + chrono::TimeDelta::seconds(secs),
            ..e
        }
    }

    #[test]
    fn cached_gauges_follow_ingest_and_give_way_to_the_store_when_behind() {
        let trails = FleetTrails::default();
        let now = Utc::now();
        let disk = |m: &str, p: f64| {
            env(
                "disk",
                json!({"mountpoint": m, "disk_used_pct": p, "device": "/dev/x"}),
            )
        };
        // Nothing cached: the overview must read the store.
        assert_eq!(trails.cached_glance("a", Some(now)), None);
        // An ingest before any refresh is not taken as the whole picture.
        trails.record_gauges("a", glance_envelopes(&[disk("/", 10.0)]), now);
        assert_eq!(trails.cached_glance("a", Some(now)), None);
        assert!(!trails.has_gauges("a"));
        trails.refresh_gauges(
            "a",
            &[
                disk("/", 10.0),
                disk("/var", 20.0),
                env("cpu", json!({"usage": 5.0, "cores": [5.0]})),
            ],
            now,
        );
        let g = trails.cached_glance("a", Some(now)).expect("fresh");
        assert_eq!(
            (g.disk_pct, g.cpu_pct, g.cores),
            (Some(20.0), Some(5.0), Some(1))
        );
        // A newer batch replaces its entity only; an older one is ignored.
        trails.record_gauges("a", glance_envelopes(&[at(disk("/", 95.0), 10)]), now);
        trails.record_gauges("a", glance_envelopes(&[at(disk("/var", 1.0), -10)]), now);
        let g = trails.cached_glance("a", Some(now)).expect("fresh");
        assert_eq!(
            (g.disk_pct, g.disk_mount.as_deref()),
            (Some(95.0), Some("/"))
        );
        // Contact well after the cache: behind, refresh from the store.
        let later = now + chrono::TimeDelta::seconds(60);
        assert_eq!(trails.cached_glance("a", Some(later)), None);
        // Fields the overview does not read are not kept.
        let cut = glance_envelopes(&[env(
            "disk",
            json!({"mountpoint": "/", "disk_used_pct": 1.0, "inodes_total": 5}),
        )]);
        assert_eq!(
            cut[0].data,
            json!({"mountpoint": "/", "disk_used_pct": 1.0})
        );
        assert!(glance_envelopes(&[env("process_list", json!({"processes": []}))]).is_empty());
    }
}
