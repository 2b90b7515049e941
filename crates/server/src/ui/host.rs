//! The host page (SPEC §8, issue 6).
//!
//! - `GET /hosts/{id}`: identity (OS, kernel, CPU, RAM, IPs, agent version,
//!   uptime, last seen, labels), every collector's status (an unsupported
//!   collector says so with its reason, never as zeros), current WiFi and
//!   temperature readings, the chart slots and the table sections, which
//!   htmx fills after the page has shown. Operators also get the
//!   diagnostics slot (`#diagnostics`, served by [`super::diagnostics`]).
//! - `GET /ui/hosts/{id}/charts?range=|start=&end=`: every chart of the page
//!   as one JSON document in uPlot's columnar form ([`ChartsAnswer`]).
//! - `GET /ui/hosts/{id}/{processes,services,applications,updates,workloads,pi}`:
//!   the tables, as HTML fragments. Processes are read from history, so
//!   "what was running at 03:12?" has an answer (`?at=`).
//!
//! Charts: [`CHARTS`] lists every chart with the metric type it reads and
//! how its series come out of that type's samples ([`Layout`]: fixed fields,
//! the per-core array, or one series per entity: mount, device, interface,
//! sensor, workload). [`choose_step`] keeps a chart near [`MAX_POINTS`]
//! points, and the step picks the store's tier (raw below 60 s, 1-minute
//! rollups below an hour, 1-hour rollups above: `tier_for_step` in the
//! embedded store). Each type is read once, all of them in parallel, and
//! the answer is serialised from plain vectors (no JSON value per point).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::Json;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use spectra_protocol::{
    metric_type as t, AgentMetric, ApplicationListMetric, ClockMetric, CollectorState,
    ContainerListMetric, GpuMetric, PiHealthMetric, ProcessListMetric, RawEnvelope,
    ServiceListMetric, ThrottleMetric, UpdatesMetric, VoltageMetric,
};
use spectra_store::{AgentRecord, HistoryQuery, Role, Sample};

use super::format;
use super::pages::status_name;
use super::{render, Chrome, PageResult};
use crate::http::agents::{parse_history_params, HistoryParams};
use crate::http::extract::{Caller, QueryParams};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::agents::{collector_statuses, compute_status, AgentStatus};
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::get;
    const VIEWER: Access = Access::Page(Role::Viewer);
    vec![
        spec(Method::GET, "/hosts/{id}", VIEWER, get(host_page)),
        spec(Method::GET, "/ui/hosts/{id}/charts", VIEWER, get(charts)),
        spec(
            Method::GET,
            "/ui/hosts/{id}/processes",
            VIEWER,
            get(processes),
        ),
        spec(
            Method::GET,
            "/ui/hosts/{id}/services",
            VIEWER,
            get(services),
        ),
        spec(
            Method::GET,
            "/ui/hosts/{id}/applications",
            VIEWER,
            get(applications),
        ),
        spec(Method::GET, "/ui/hosts/{id}/updates", VIEWER, get(updates)),
        spec(
            Method::GET,
            "/ui/hosts/{id}/workloads",
            VIEWER,
            get(workloads),
        ),
        spec(Method::GET, "/ui/hosts/{id}/pi", VIEWER, get(pi)),
    ]
}

// ================================================================== charts

/// Points a chart aims at, at most (a little more where a gap is marked).
pub const MAX_POINTS: u64 = 600;
/// The fastest default collector interval (cpu, disk_io, network): no step
/// is finer than the data.
pub const RAW_INTERVAL_S: u64 = 5;
/// Steps a chart may use: round numbers, so buckets line up with clocks.
const NICE_STEPS_S: &[u64] = &[
    5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 21_600, 43_200,
    86_400, 172_800, 345_600, 604_800,
];
/// The range picker's choices: query value and label.
pub const RANGES: &[(&str, &str)] = &[
    ("15m", "15 min"),
    ("1h", "1 h"),
    ("6h", "6 h"),
    ("24h", "24 h"),
    ("7d", "7 d"),
    ("30d", "30 d"),
    ("90d", "90 d"),
    ("1y", "1 y"),
    ("2y", "2 y"),
];
/// The range shown when the URL names none.
pub const DEFAULT_RANGE: &str = "1h";

/// The step for a chart spanning `span_s` seconds: at most [`MAX_POINTS`]
/// points, never finer than `floor_s`, snapped up to a round value.
pub fn choose_step(span_s: u64, floor_s: u64) -> u64 {
    let want = span_s.div_ceil(MAX_POINTS).max(floor_s).max(1);
    NICE_STEPS_S
        .iter()
        .copied()
        .find(|s| *s >= want)
        .unwrap_or_else(|| want.div_ceil(86_400) * 86_400)
}

/// The storage tier a step reads (the embedded store's `tier_for_step`).
pub fn tier_name(step_s: u64) -> &'static str {
    if step_s < 60 {
        "raw"
    } else if step_s < 3600 {
        "1-minute"
    } else {
        "1-hour"
    }
}

/// The finest step whose tier still holds data at `start`: retention has
/// deleted raw points older than `retention_raw`, and minute rollups older
/// than `retention_minute`.
pub fn step_floor(
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    retention_raw: Duration,
    retention_minute: Duration,
) -> u64 {
    let age = (now - start).to_std().unwrap_or(Duration::ZERO);
    if age > retention_minute {
        3600
    } else if age > retention_raw {
        60
    } else {
        RAW_INTERVAL_S
    }
}

/// `1y`/`2y` as whole days: humantime's year is 365.25 days, which would
/// put `2y` just past the longest range the API accepts.
fn canonical_range(range: &str) -> String {
    match range {
        "1y" => "365d".into(),
        "2y" => "730d".into(),
        other => other.into(),
    }
}

/// A span for people: `15 min`, `24 h`, `7 days`, `1 year`.
pub fn human_span(secs: u64) -> String {
    const DAY: u64 = 86_400;
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 365 * DAY && secs % (365 * DAY) == 0 {
        plural(secs / (365 * DAY), "year")
    } else if secs >= 2 * DAY && secs % DAY == 0 {
        plural(secs / DAY, "day")
    } else if secs >= 3600 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else if secs >= 3600 {
        format!("{:.1} h", secs as f64 / 3600.0)
    } else {
        format!("{secs} s")
    }
}

/// One numeric field charted as a series.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// Multiplies the stored value (flags 0/1 → % of the time).
    pub scale: f64,
}

const fn field(name: &'static str, label: &'static str) -> Field {
    Field {
        name,
        label,
        scale: 1.0,
    }
}

const fn flag(name: &'static str, label: &'static str) -> Field {
    Field {
        name,
        label,
        scale: 100.0,
    }
}

/// How a chart's series come out of its type's samples.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// One series per field, in this order.
    Fields(&'static [Field]),
    /// One series per item of the `cores` array.
    Cores,
    /// Per entity (the type's entity field, e.g. `mountpoint`), one series
    /// per field, entities in name order.
    PerEntity(&'static [Field]),
}

/// One chart of the host page.
#[derive(Debug, Clone, Copy)]
pub struct ChartDef {
    pub id: &'static str,
    pub title: &'static str,
    /// `%`, `B`, `B/s`, `°C`, `dBm`, `Hz`, `V`, `W` or empty (a count).
    pub unit: &'static str,
    pub metric_type: &'static str,
    /// The agent collector that sends the type (for "why is it missing").
    pub collector: &'static str,
    pub layout: Layout,
    /// The y axis reaches at least this (100 for shares of a whole).
    pub y_max: Option<f64>,
    /// Leave out entities that stayed at zero (idle interfaces, unused
    /// devices), unless every entity did.
    pub hide_idle: bool,
}

const fn chart(
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    metric_type: &'static str,
    collector: &'static str,
    layout: Layout,
) -> ChartDef {
    ChartDef {
        id,
        title,
        unit,
        metric_type,
        collector,
        layout,
        y_max: None,
        hide_idle: false,
    }
}

const fn percent(def: ChartDef) -> ChartDef {
    ChartDef {
        y_max: Some(100.0),
        ..def
    }
}

const fn idle_hidden(def: ChartDef) -> ChartDef {
    ChartDef {
        hide_idle: true,
        ..def
    }
}

/// Every chart of the host page, in page order.
pub const CHARTS: &[ChartDef] = &[
    percent(chart(
        "cpu",
        "CPU",
        "%",
        t::CPU,
        "cpu",
        Layout::Fields(&[
            field("usage", "usage"),
            field("iowait", "iowait"),
            field("steal", "steal"),
        ]),
    )),
    percent(chart(
        "cpu_cores",
        "CPU per core",
        "%",
        t::CPU,
        "cpu",
        Layout::Cores,
    )),
    chart(
        "load",
        "Load average",
        "",
        t::CPU,
        "cpu",
        Layout::Fields(&[
            field("load_1m", "1 min"),
            field("load_5m", "5 min"),
            field("load_15m", "15 min"),
        ]),
    ),
    chart(
        "memory",
        "Memory",
        "B",
        t::MEMORY,
        "memory",
        Layout::Fields(&[
            field("ram_used", "used"),
            field("ram_cached", "cached"),
            field("ram_available", "available"),
            field("swap_used", "swap used"),
        ]),
    ),
    percent(chart(
        "disk_usage",
        "Disk usage per mount",
        "%",
        t::DISK,
        "disk",
        Layout::PerEntity(&[field("disk_used_pct", "used")]),
    )),
    idle_hidden(chart(
        "disk_io",
        "Disk I/O per device",
        "B/s",
        t::DISK_IO,
        "disk_io",
        Layout::PerEntity(&[field("read_bytes", "read"), field("write_bytes", "write")]),
    )),
    idle_hidden(chart(
        "network",
        "Network per interface",
        "B/s",
        t::NETWORK,
        "network",
        Layout::PerEntity(&[field("rx_bytes", "rx"), field("tx_bytes", "tx")]),
    )),
    chart(
        "temperature",
        "Temperatures",
        "°C",
        t::TEMPERATURE,
        "temperature",
        Layout::PerEntity(&[field("temperature", "")]),
    ),
    chart(
        "wifi_signal",
        "WiFi signal",
        "dBm",
        t::WIFI,
        "wifi",
        Layout::PerEntity(&[field("signal_dbm", "")]),
    ),
    percent(chart(
        "pi_throttle",
        "Raspberry Pi throttling (share of the time)",
        "%",
        t::THROTTLE,
        "pi",
        Layout::Fields(&[
            flag("undervoltage", "under-voltage"),
            flag("arm_freq_capped", "frequency capped"),
            flag("throttled", "throttled"),
            flag("soft_temp_limit", "soft temperature limit"),
        ]),
    )),
    chart(
        "pi_clocks",
        "Raspberry Pi clocks",
        "Hz",
        t::CLOCK,
        "pi",
        Layout::Fields(&[
            field("arm_freq_hz", "ARM"),
            field("core_freq_hz", "core"),
            field("gpu_freq_hz", "GPU"),
        ]),
    ),
    chart(
        "pi_voltages",
        "Raspberry Pi voltages",
        "V",
        t::VOLTAGE,
        "pi",
        Layout::Fields(&[
            field("core_volts", "core"),
            field("sdram_c_volts", "SDRAM controller"),
            field("sdram_i_volts", "SDRAM I/O"),
            field("sdram_p_volts", "SDRAM PHY"),
        ]),
    ),
    chart(
        "pi_gpu_memory",
        "Raspberry Pi GPU memory",
        "B",
        t::GPU,
        "pi",
        Layout::Fields(&[
            field("gpu_mem_used", "used"),
            field("gpu_mem_total", "total"),
        ]),
    ),
    chart(
        "pi_soc_temperature",
        "Raspberry Pi SoC temperature",
        "°C",
        t::PI_HEALTH,
        "pi",
        Layout::Fields(&[field("soc_temp_c", "SoC")]),
    ),
    chart(
        "pi_power",
        "Raspberry Pi PMIC power (SoC and memory rails)",
        "W",
        t::PI_HEALTH,
        "pi",
        Layout::Fields(&[field("pmic_watts", "PMIC")]),
    ),
    percent(chart(
        "workload_cpu",
        "Workload CPU",
        "%",
        t::WORKLOAD,
        "container_list",
        Layout::PerEntity(&[field("cpu_percent", "")]),
    )),
    chart(
        "workload_memory",
        "Workload memory",
        "B",
        t::WORKLOAD,
        "container_list",
        Layout::PerEntity(&[field("memory_bytes", "")]),
    ),
];

/// The metric types the charts read, each once.
pub fn chart_types() -> Vec<&'static str> {
    let mut types: Vec<&'static str> = Vec::new();
    for def in CHARTS {
        if !types.contains(&def.metric_type) {
            types.push(def.metric_type);
        }
    }
    types
}

/// Whether the agent ever sent what `def` charts: its type, with one of
/// its fields, among the newest envelopes.
pub fn chart_reported(def: &ChartDef, latest: &[RawEnvelope]) -> bool {
    latest
        .iter()
        .filter(|e| e.metric_type == def.metric_type)
        .any(|e| match def.layout {
            Layout::Fields(fields) | Layout::PerEntity(fields) => fields
                .iter()
                .any(|f| e.data.get(f.name).is_some_and(is_number)),
            Layout::Cores => e
                .data
                .get("cores")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty()),
        })
}

fn is_number(v: &Value) -> bool {
    number(v).is_some()
}

/// A chartable number: JSON numbers, and flags as 0/1.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Fewer digits on the wire: charts show three or four significant ones.
fn tidy(v: f64) -> f64 {
    let a = v.abs();
    if a >= 1000.0 {
        v.round()
    } else if a >= 1.0 {
        (v * 100.0).round() / 100.0
    } else {
        (v * 10_000.0).round() / 10_000.0
    }
}

/// The charts answer: `{"start", "end", "range", "step_s", "tier",
/// "description", "charts": [...]}`.
#[derive(Debug, Serialize)]
pub struct ChartsAnswer {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The named range asked for, or `custom` for `start=`/`end=`.
    pub range: String,
    pub step_s: u64,
    /// `raw`, `1-minute` or `1-hour`.
    pub tier: &'static str,
    /// For people: `last 24 h · 1-minute rollups · step 3 min`.
    pub description: String,
    pub charts: Vec<ChartData>,
}

/// One chart in uPlot's columnar form: `x` in unix seconds, one `y` array
/// per series, `null` where a series has no value (gaps included).
#[derive(Debug, Serialize, PartialEq)]
pub struct ChartData {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y_max: Option<f64>,
    pub series: Vec<SeriesLabel>,
    pub x: Vec<i64>,
    pub y: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SeriesLabel {
    pub label: String,
}

/// One series while a chart is built.
struct Column {
    /// The entity key (empty for single-entity types): the sort order.
    entity: String,
    field: usize,
    label: String,
    /// Values by row; shorter than `x` until [`ChartColumns::finish`].
    y: Vec<Option<f64>>,
}

/// A chart being built: the shared time axis and the series.
#[derive(Default)]
struct ChartColumns {
    x: Vec<i64>,
    columns: Vec<Column>,
    /// First column of each entity (its fields follow in order).
    by_entity: HashMap<String, usize>,
}

impl ChartColumns {
    /// The row for time `t`. Samples come in time order, so this is the
    /// last row or a new one; an out-of-order time joins an existing row
    /// or is dropped (a chart's x axis must be sorted).
    fn row(&mut self, t: i64) -> Option<usize> {
        match self.x.last() {
            Some(last) if *last == t => Some(self.x.len() - 1),
            Some(last) if *last > t => self.x.binary_search(&t).ok(),
            _ => {
                self.x.push(t);
                Some(self.x.len() - 1)
            }
        }
    }

    fn set(&mut self, column: usize, row: usize, value: f64) {
        let y = &mut self.columns[column].y;
        if y.len() <= row {
            y.resize(row + 1, None);
        }
        y[row] = Some(tidy(value));
    }

    fn finish(self, def: &ChartDef, step_s: u64) -> ChartData {
        let n = self.x.len();
        let mut columns = self.columns;
        for c in &mut columns {
            c.y.resize(n, None);
        }
        columns.retain(|c| c.y.iter().any(Option::is_some));
        if def.hide_idle {
            let busy: HashSet<String> = columns
                .iter()
                .filter(|c| c.y.iter().any(|v| v.is_some_and(|v| v != 0.0)))
                .map(|c| c.entity.clone())
                .collect();
            if !busy.is_empty() {
                columns.retain(|c| busy.contains(&c.entity));
            }
        }
        columns.sort_by(|a, b| (&a.entity, a.field).cmp(&(&b.entity, b.field)));
        let (x, y) = if columns.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let series: Vec<Vec<Option<f64>>> = columns
                .iter_mut()
                .map(|c| std::mem::take(&mut c.y))
                .collect();
            mark_gaps(self.x, series, step_s)
        };
        ChartData {
            id: def.id,
            title: def.title,
            unit: def.unit,
            y_max: def.y_max,
            series: columns
                .into_iter()
                .map(|c| SeriesLabel { label: c.label })
                .collect(),
            x,
            y,
        }
    }
}

/// Inserts a row of `null`s where the data stops for a while (more than
/// 2.5 times the usual spacing), so uPlot breaks the line there instead of
/// drawing a straight line across an outage.
fn mark_gaps(
    x: Vec<i64>,
    y: Vec<Vec<Option<f64>>>,
    step_s: u64,
) -> (Vec<i64>, Vec<Vec<Option<f64>>>) {
    if x.len() < 2 {
        return (x, y);
    }
    let mut deltas: Vec<i64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    deltas.sort_unstable();
    let usual = deltas[deltas.len() / 2].max(i64::try_from(step_s).unwrap_or(i64::MAX));
    let limit = usual.saturating_mul(5) / 2;
    if !x.windows(2).any(|w| w[1] - w[0] > limit) {
        return (x, y);
    }
    let mut gx = Vec::with_capacity(x.len() + 8);
    let mut gy: Vec<Vec<Option<f64>>> = y.iter().map(|_| Vec::with_capacity(x.len() + 8)).collect();
    for (i, t) in x.iter().enumerate() {
        if i > 0 && t - x[i - 1] > limit {
            gx.push(x[i - 1] + usual);
            for s in &mut gy {
                s.push(None);
            }
        }
        gx.push(*t);
        for (s, source) in gy.iter_mut().zip(&y) {
            s.push(source[i]);
        }
    }
    (gx, gy)
}

/// An entity's name in a legend: a workload's name, else the entity key.
fn entity_label(def: &ChartDef, key: &str, data: &Map<String, Value>) -> String {
    if def.metric_type == t::WORKLOAD {
        if let Some(name) = data.get("name").and_then(Value::as_str) {
            return name.to_owned();
        }
    }
    key.to_owned()
}

/// Builds one chart from its type's samples (time-sorted, as the store
/// answers them).
pub fn build_chart(def: &ChartDef, samples: &[Sample], step_s: u64) -> ChartData {
    let mut c = ChartColumns::default();
    if let Layout::Fields(fields) = def.layout {
        for (i, f) in fields.iter().enumerate() {
            c.columns.push(Column {
                entity: String::new(),
                field: i,
                label: f.label.to_owned(),
                y: Vec::new(),
            });
        }
    }
    let entity_field = t::entity_field(def.metric_type);
    for sample in samples {
        let Some(data) = sample.data.as_object() else {
            continue;
        };
        let ts = sample.timestamp.timestamp();
        match def.layout {
            Layout::Fields(fields) => {
                let mut row = None;
                for (i, f) in fields.iter().enumerate() {
                    let Some(v) = data.get(f.name).and_then(number) else {
                        continue;
                    };
                    let r = match row {
                        Some(r) => r,
                        None => match c.row(ts) {
                            Some(r) => {
                                row = Some(r);
                                r
                            }
                            None => break,
                        },
                    };
                    c.set(i, r, v * f.scale);
                }
            }
            Layout::Cores => {
                let Some(cores) = data.get("cores").and_then(Value::as_array) else {
                    continue;
                };
                if cores.is_empty() {
                    continue;
                }
                let Some(r) = c.row(ts) else { continue };
                for (i, v) in cores.iter().enumerate() {
                    let Some(v) = number(v) else { continue };
                    while c.columns.len() <= i {
                        let n = c.columns.len();
                        c.columns.push(Column {
                            entity: String::new(),
                            field: n,
                            label: format!("core {n}"),
                            y: Vec::new(),
                        });
                    }
                    c.set(i, r, v);
                }
            }
            Layout::PerEntity(fields) => {
                let Some(key) = entity_field
                    .and_then(|k| data.get(k))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                if !fields
                    .iter()
                    .any(|f| data.get(f.name).is_some_and(is_number))
                {
                    continue;
                }
                let base = match c.by_entity.get(key) {
                    Some(base) => *base,
                    None => {
                        let base = c.columns.len();
                        let name = entity_label(def, key, data);
                        for (i, f) in fields.iter().enumerate() {
                            c.columns.push(Column {
                                entity: key.to_owned(),
                                field: i,
                                label: if fields.len() == 1 || f.label.is_empty() {
                                    name.clone()
                                } else {
                                    format!("{name} {}", f.label)
                                },
                                y: Vec::new(),
                            });
                        }
                        c.by_entity.insert(key.to_owned(), base);
                        base
                    }
                };
                let Some(r) = c.row(ts) else { continue };
                for (i, f) in fields.iter().enumerate() {
                    if let Some(v) = data.get(f.name).and_then(number) {
                        c.set(base + i, r, v * f.scale);
                    }
                }
            }
        }
    }
    c.finish(def, step_s)
}

#[derive(Debug, Default, Deserialize)]
pub struct ChartsQuery {
    pub range: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
}

fn nonempty(o: &Option<String>) -> Option<String> {
    o.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

async fn agent_record(state: &AppState, id: &str) -> Result<AgentRecord, AppError> {
    state
        .store
        .get_agent(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no host with agent id {id}")))
}

/// Reads each type's history over the window at `step_s`, all at once.
async fn read_types(
    state: &AppState,
    agent_id: &str,
    types: &[&'static str],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step_s: u64,
) -> Result<HashMap<&'static str, Vec<Sample>>, AppError> {
    let mut reads = tokio::task::JoinSet::new();
    for metric_type in types {
        let store = state.store.clone();
        let query = HistoryQuery {
            agent_id: agent_id.to_owned(),
            metric_type: (*metric_type).to_owned(),
            start,
            end,
            step: Some(Duration::from_secs(step_s)),
        };
        let metric_type = *metric_type;
        reads.spawn(async move { (metric_type, store.history(query).await) });
    }
    let mut out = HashMap::with_capacity(types.len());
    while let Some(joined) = reads.join_next().await {
        let (metric_type, samples) = joined.map_err(AppError::internal)?;
        out.insert(metric_type, samples?);
    }
    Ok(out)
}

/// `GET /ui/hosts/{id}/charts?range=15m|1h|...|2y` or `?start=&end=`.
async fn charts(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ChartsQuery>,
) -> Result<Json<ChartsAnswer>, AppError> {
    let now = Utc::now();
    let (range, start, end) = (nonempty(&q.range), nonempty(&q.start), nonempty(&q.end));
    let label = match (&range, &start, &end) {
        (Some(r), _, _) => r.clone(),
        (None, None, None) => DEFAULT_RANGE.to_owned(),
        _ => "custom".to_owned(),
    };
    let params = HistoryParams {
        range: match (&range, &start, &end) {
            (None, None, None) => Some(DEFAULT_RANGE.to_owned()),
            _ => range.as_deref().map(canonical_range),
        },
        start,
        end,
        step: None,
    };
    let window = parse_history_params(&params, now).map_err(AppError::BadRequest)?;
    agent_record(&state, &id).await?;
    let span_s = u64::try_from((window.end - window.start).num_seconds())
        .unwrap_or(0)
        .max(1);
    let floor = step_floor(
        window.start,
        now,
        state.settings.retention_raw,
        state.settings.retention_minute,
    );
    let step_s = choose_step(span_s, floor);
    let all_types = chart_types();
    let latest = state.store.latest_of_types(&id, &all_types).await?;
    let types: Vec<&'static str> = all_types
        .into_iter()
        .filter(|ty| latest.iter().any(|e| e.metric_type == *ty))
        .collect();
    let samples = read_types(&state, &id, &types, window.start, window.end, step_s).await?;
    let charts = CHARTS
        .iter()
        .filter_map(|def| {
            samples
                .get(def.metric_type)
                .map(|s| build_chart(def, s, step_s))
        })
        .collect();
    let tier = tier_name(step_s);
    let tier_text = match tier {
        "raw" => "raw samples",
        "1-minute" => "1-minute rollups",
        _ => "1-hour rollups",
    };
    let window_text = if label == "custom" {
        format!(
            "{} – {}",
            format::time(window.start),
            format::time(window.end)
        )
    } else {
        format!("last {}", human_span(span_s))
    };
    Ok(Json(ChartsAnswer {
        start: window.start,
        end: window.end,
        range: label,
        step_s,
        tier,
        description: format!("{window_text} · {tier_text} · step {}", human_span(step_s)),
        charts,
    }))
}

// ================================================================== page

/// A collector's state for people, and the CSS class token of its colour.
fn collector_state(s: CollectorState) -> (&'static str, &'static str) {
    match s {
        CollectorState::Ok => ("ok", "ok"),
        CollectorState::Error => ("error", "error"),
        CollectorState::Unsupported => ("unsupported", "unsupported"),
        CollectorState::NotImplemented => ("not implemented", "unsupported"),
        CollectorState::Disabled => ("disabled", "inactive"),
    }
}

/// One collector in the host's status list.
#[derive(Debug, Clone)]
pub struct CollectorRow {
    pub name: String,
    pub state: CollectorState,
    pub state_text: &'static str,
    pub class: &'static str,
    pub message: String,
    pub reported: String,
}

/// Every collector the agent told about: its `collector_status` reports,
/// and the collectors listed in its own `agent` envelope (which also
/// names those running fine). The newer of the two wins.
pub fn collector_rows(latest: &[RawEnvelope]) -> Vec<CollectorRow> {
    let mut by_name: BTreeMap<String, (CollectorState, Option<String>, DateTime<Utc>)> =
        BTreeMap::new();
    for s in collector_statuses(latest) {
        by_name.insert(s.collector, (s.state, s.message, s.reported_at));
    }
    if let Some(agent) = latest.iter().find(|e| e.metric_type == t::AGENT) {
        if let Ok(m) = serde_json::from_value::<AgentMetric>(agent.data.clone()) {
            for c in m.collectors {
                match by_name.get_mut(&c.name) {
                    Some(entry) if entry.2 >= agent.timestamp || entry.0 == c.state => {}
                    Some(entry) => *entry = (c.state, c.last_error, agent.timestamp),
                    None => {
                        by_name.insert(c.name, (c.state, c.last_error, agent.timestamp));
                    }
                }
            }
        }
    }
    by_name
        .into_iter()
        .map(|(name, (state, message, at))| {
            let (state_text, class) = collector_state(state);
            CollectorRow {
                name,
                state,
                state_text,
                class,
                message: message.unwrap_or_default(),
                reported: format::time(at),
            }
        })
        .collect()
}

/// Why `collector` sends nothing, when it said so: `unsupported: no
/// wireless interface`.
fn collector_problem(rows: &[CollectorRow], collector: &str) -> Option<String> {
    rows.iter()
        .find(|r| r.name == collector && r.state != CollectorState::Ok)
        .map(|r| {
            if r.message.is_empty() {
                format!("{} collector {}", r.name, r.state_text)
            } else {
                format!("{} collector {}: {}", r.name, r.state_text, r.message)
            }
        })
}

/// A chart slot on the page.
#[derive(Debug, Clone)]
pub struct ChartSlot {
    pub id: &'static str,
    pub title: &'static str,
}

/// A current WiFi reading.
#[derive(Debug, Clone)]
pub struct WifiNow {
    pub interface: String,
    pub text: String,
}

/// A current temperature.
#[derive(Debug, Clone)]
pub struct TempNow {
    pub sensor: String,
    pub text: String,
    pub hot: bool,
}

/// The newest envelopes of a per-entity type, leaving out entities that
/// stopped reporting well before the others (an unplugged adapter).
fn current_of<'a>(latest: &'a [RawEnvelope], metric_type: &str) -> Vec<&'a RawEnvelope> {
    let of_type: Vec<&RawEnvelope> = latest
        .iter()
        .filter(|e| e.metric_type == metric_type)
        .collect();
    let Some(newest) = of_type.iter().map(|e| e.timestamp).max() else {
        return Vec::new();
    };
    let mut out: Vec<&RawEnvelope> = of_type
        .into_iter()
        .filter(|e| newest - e.timestamp <= chrono::Duration::minutes(10))
        .collect();
    let key = t::entity_field(metric_type).unwrap_or("");
    out.sort_by(|a, b| {
        let name = |e: &RawEnvelope| {
            e.data
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        name(a).cmp(&name(b))
    });
    out
}

fn wifi_now(latest: &[RawEnvelope]) -> Vec<WifiNow> {
    current_of(latest, t::WIFI)
        .into_iter()
        .map(|e| {
            let d = &e.data;
            let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
            let n = |k: &str| d.get(k).and_then(Value::as_f64);
            let mut parts = Vec::new();
            match s("ssid") {
                Some(ssid) if !ssid.is_empty() => parts.push(format!("“{ssid}”")),
                _ => parts.push("not connected".to_owned()),
            }
            if let Some(v) = n("signal_dbm") {
                parts.push(format!("{v:.0} dBm"));
            }
            if let Some(v) = n("link_quality") {
                parts.push(format!("quality {}", format::pct(v)));
            }
            if let Some(v) = n("frequency_ghz") {
                parts.push(format!("{v:.3} GHz"));
            }
            if let Some(v) = n("bitrate_mbps") {
                parts.push(format!("{v:.0} Mbit/s"));
            }
            WifiNow {
                interface: s("interface").unwrap_or_default(),
                text: parts.join(" · "),
            }
        })
        .collect()
}

fn temps_now(latest: &[RawEnvelope]) -> Vec<TempNow> {
    current_of(latest, t::TEMPERATURE)
        .into_iter()
        .filter_map(|e| {
            let d = &e.data;
            let temp = d.get("temperature").and_then(Value::as_f64)?;
            let max = d.get("max_temp").and_then(Value::as_f64);
            let crit = d.get("crit_temp").and_then(Value::as_f64);
            let mut text = format!("{temp:.1} °C");
            let limits: Vec<String> = [("max", max), ("critical", crit)]
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| format!("{name} {v:.0} °C")))
                .collect();
            if !limits.is_empty() {
                text.push_str(&format!(" ({})", limits.join(", ")));
            }
            // Hot: at the sensor's own limit, or 80 °C without one.
            let hot = temp >= max.or(crit).unwrap_or(80.0);
            Some(TempNow {
                sensor: d
                    .get("sensor")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                text,
                hot,
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    chrome: Chrome,
    id: String,
    hostname: String,
    status: &'static str,
    local: bool,
    os_line: String,
    info: Vec<(&'static str, String)>,
    last_seen_title: String,
    labels: Vec<(String, String)>,
    collectors: Vec<CollectorRow>,
    ranges: &'static [(&'static str, &'static str)],
    range: String,
    start: String,
    end: String,
    slots: Vec<ChartSlot>,
    missing: Vec<String>,
    wifi: Vec<WifiNow>,
    temps: Vec<TempNow>,
    has_workloads: bool,
    has_pi: bool,
}

fn or_dash(s: &str) -> String {
    if s.trim().is_empty() {
        "—".to_owned()
    } else {
        s.to_owned()
    }
}

fn host_info(
    agent: &AgentRecord,
    latest: &[RawEnvelope],
    status: AgentStatus,
    now: DateTime<Utc>,
) -> (String, Vec<(&'static str, String)>) {
    let h = &agent.host;
    let system = latest.iter().find(|e| e.metric_type == t::SYSTEM);
    let sys = |k: &str| {
        system
            .and_then(|e| e.data.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut os = sys("os").unwrap_or_else(|| {
        [h.platform.as_str(), h.platform_ver.as_str()]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    });
    if os.is_empty() {
        os = h.os.clone();
    } else if !h.os.is_empty() && !os.to_lowercase().contains(&h.os.to_lowercase()) {
        os = format!("{os} ({})", h.os);
    }
    let boot_time = system
        .and_then(|e| e.data.get("boot_time"))
        .and_then(Value::as_i64)
        .filter(|b| *b > 0)
        .or(Some(h.boot_time).filter(|b| *b > 0));
    // Offline hosts: the uptime they had when last heard from.
    let reference = match status {
        AgentStatus::Online => Some(now),
        _ => agent.last_seen,
    };
    let uptime = match (boot_time, reference) {
        (Some(boot), Some(at)) if at.timestamp() >= boot => {
            let text = format::duration_secs((at.timestamp() - boot) as f64);
            if status == AgentStatus::Online {
                text
            } else {
                format!("{text} (when last seen)")
            }
        }
        _ => "—".to_owned(),
    };
    let ram = if h.ram_total > 0 {
        format::bytes(h.ram_total as f64)
    } else {
        "—".to_owned()
    };
    let info = vec![
        ("OS", or_dash(&os)),
        (
            "Kernel",
            or_dash(&sys("kernel").unwrap_or_else(|| h.kernel.clone())),
        ),
        ("Architecture", or_dash(&h.arch)),
        ("CPU", or_dash(&h.cpu_model)),
        (
            "Cores",
            if h.cpu_cores > 0 {
                h.cpu_cores.to_string()
            } else {
                "—".to_owned()
            },
        ),
        ("RAM", ram),
        ("IP addresses", or_dash(&h.ips.join(", "))),
        ("Agent version", or_dash(&h.agent_version)),
        ("Uptime", uptime),
        ("Last seen", format::ago(agent.last_seen, now)),
        ("Agent id", agent.id.clone()),
    ];
    (or_dash(&os), info)
}

/// `GET /hosts/{id}`.
async fn host_page(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ChartsQuery>,
) -> PageResult {
    let now = Utc::now();
    let result = async {
        let agent = agent_record(&state, &id).await?;
        let latest = state.store.latest(&id).await?;
        let status = compute_status(&agent, now, state.thresholds());
        let collectors = collector_rows(&latest);
        let mut slots = Vec::new();
        let mut missing_by_collector: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for def in CHARTS {
            if chart_reported(def, &latest) {
                slots.push(ChartSlot {
                    id: def.id,
                    title: def.title,
                });
            } else if latest.iter().any(|e| e.metric_type == def.metric_type) {
                // The type reports, without this field (a Pi 4 has no PMIC):
                // nothing to say.
            } else {
                match missing_by_collector
                    .iter_mut()
                    .find(|(c, _)| *c == def.collector)
                {
                    Some((_, titles)) => titles.push(def.title),
                    None => missing_by_collector.push((def.collector, vec![def.title])),
                }
            }
        }
        let missing = missing_by_collector
            .into_iter()
            .map(|(collector, titles)| {
                let why = collector_problem(&collectors, collector)
                    .unwrap_or_else(|| "no data reported yet".to_owned());
                let what = match collector {
                    "pi" => "Raspberry Pi charts".to_owned(),
                    "container_list" => "Workload charts".to_owned(),
                    _ => titles.join(", "),
                };
                format!("{what}: {why}")
            })
            .collect();
        let (start, end) = (
            nonempty(&q.start).unwrap_or_default(),
            nonempty(&q.end).unwrap_or_default(),
        );
        let range = match nonempty(&q.range) {
            Some(r) => r,
            None if !start.is_empty() => "custom".to_owned(),
            None => DEFAULT_RANGE.to_owned(),
        };
        let (os_line, info) = host_info(&agent, &latest, status, now);
        let has = |ty: &str| latest.iter().any(|e| e.metric_type == ty);
        let page = HostPage {
            chrome: Chrome::new(&principal, "host", agent.hostname.clone()),
            hostname: agent.hostname.clone(),
            status: status_name(status),
            local: agent.local,
            os_line,
            info,
            last_seen_title: agent.last_seen.map(format::time).unwrap_or_default(),
            labels: agent.labels.clone().into_iter().collect(),
            collectors,
            ranges: RANGES,
            range,
            start,
            end,
            slots,
            missing,
            wifi: wifi_now(&latest),
            temps: temps_now(&latest),
            has_workloads: has(t::CONTAINER_LIST),
            has_pi: [t::THROTTLE, t::CLOCK, t::VOLTAGE, t::GPU, t::PI_HEALTH]
                .iter()
                .any(|ty| has(ty)),
            id,
        };
        render(&page)
    }
    .await;
    result.into()
}

// ================================================================== tables

/// The newest envelope of `metric_type` and the collector rows, for a
/// fragment (404 for an unknown host).
async fn latest_for(
    state: &AppState,
    id: &str,
    metric_type: &str,
) -> Result<(Option<RawEnvelope>, Vec<CollectorRow>), AppError> {
    agent_record(state, id).await?;
    let latest = state
        .store
        .latest_of_types(id, &[metric_type, t::COLLECTOR_STATUS, t::AGENT])
        .await?;
    let collectors = collector_rows(&latest);
    let newest = latest
        .into_iter()
        .filter(|e| e.metric_type == metric_type)
        .max_by_key(|e| e.timestamp);
    Ok((newest, collectors))
}

/// What a section says when its type never arrived.
fn absent_note(collectors: &[CollectorRow], collector: &str, what: &str) -> String {
    match collector_problem(collectors, collector) {
        Some(why) => format!("No {what}: {why}."),
        None => format!("No {what} reported yet."),
    }
}

fn decode<T: serde::de::DeserializeOwned>(e: &RawEnvelope) -> Result<T, String> {
    serde_json::from_value(e.data.clone()).map_err(|err| {
        format!(
            "the agent's {} report could not be read: {err}",
            e.metric_type
        )
    })
}

/// A word usable in a CSS class: `s-{token}`.
fn class_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub q: Option<String>,
}

// ------------------------------------------------------------- processes

#[derive(Debug, Default, Deserialize)]
pub struct ProcessesQuery {
    pub at: Option<String>,
}

/// How far back a process snapshot may be for the time asked.
const SNAPSHOT_LOOKBACK_MIN: i64 = 10;
/// Rows shown: the agent sends its top N by CPU and by memory.
const MAX_PROCESS_ROWS: usize = 200;

/// `at=`: an RFC 3339 time, or a `datetime-local` value (`2026-11-25T03:12`,
/// seconds optional) read as UTC; empty means now.
pub fn parse_at(at: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let Some(text) = at.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(now);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "at: `{text}` is not a time such as 2026-11-25T03:12 (UTC) or 2026-11-25T03:12:00Z"
    ))
}

#[derive(Debug, Clone)]
pub struct ProcessRow {
    pub pid: u32,
    pub name: String,
    pub user: String,
    pub cpu: String,
    pub mem: String,
    pub rss: String,
    pub state: String,
    pub threads: u32,
    pub cmd_short: String,
    pub cmd_full: String,
}

#[derive(Template)]
#[template(path = "host_processes.html")]
struct ProcessesFragment {
    id: String,
    at_value: String,
    asked: String,
    snapshot: Option<String>,
    note: String,
    summary: String,
    rows: Vec<ProcessRow>,
}

async fn processes(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ProcessesQuery>,
) -> PageResult {
    let now = Utc::now();
    let result = async {
        let at = parse_at(q.at.as_deref(), now).map_err(AppError::BadRequest)?;
        let asked_now = q.at.as_deref().is_none_or(|a| a.trim().is_empty());
        agent_record(&state, &id).await?;
        let newest = if asked_now {
            // Now: the newest list ever sent, however old (an offline host
            // still shows what it ran last), said with its time.
            state
                .store
                .latest_of_types(&id, &[t::PROCESS_LIST])
                .await?
                .into_iter()
                .max_by_key(|e| e.timestamp)
                .map(|e| Sample {
                    timestamp: e.timestamp,
                    data: e.data,
                })
        } else {
            state
                .store
                .history(HistoryQuery {
                    agent_id: id.clone(),
                    metric_type: t::PROCESS_LIST.to_owned(),
                    start: at - chrono::Duration::minutes(SNAPSHOT_LOOKBACK_MIN),
                    end: at,
                    step: None,
                })
                .await?
                .into_iter()
                .filter(|s| s.timestamp <= at)
                .max_by_key(|s| s.timestamp)
        };
        let mut fragment = ProcessesFragment {
            at_value: at.format("%Y-%m-%dT%H:%M").to_string(),
            asked: if asked_now {
                "now".to_owned()
            } else {
                format::time(at)
            },
            snapshot: None,
            note: String::new(),
            summary: String::new(),
            rows: Vec::new(),
            id: id.clone(),
        };
        match newest {
            None => {
                let collectors = collector_rows(
                    &state
                        .store
                        .latest_of_types(&id, &[t::COLLECTOR_STATUS, t::AGENT])
                        .await?,
                );
                let why = collector_problem(&collectors, "process_list")
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default();
                fragment.note = if asked_now {
                    format!("No process list reported yet{why}.")
                } else {
                    format!(
                        "No process list was reported in the {SNAPSHOT_LOOKBACK_MIN} minutes up to {}{why}.",
                        format::time(at)
                    )
                };
            }
            Some(sample) => {
                let before = (at - sample.timestamp).num_seconds().max(0) as f64;
                let ago = if asked_now { "ago" } else { "before the time asked" };
                fragment.snapshot = Some(format!(
                    "{}{}",
                    format::time(sample.timestamp),
                    if before >= 1.0 {
                        format!(" ({} {ago})", format::duration_secs(before))
                    } else {
                        String::new()
                    }
                ));
                match serde_json::from_value::<ProcessListMetric>(sample.data) {
                    Err(e) => fragment.note = format!("The process list could not be read: {e}"),
                    Ok(list) => {
                        let mut procs = list.processes;
                        procs.sort_by(|a, b| {
                            b.cpu_percent
                                .total_cmp(&a.cpu_percent)
                                .then_with(|| b.mem_percent.total_cmp(&a.mem_percent))
                                .then_with(|| a.pid.cmp(&b.pid))
                        });
                        let shown = procs.len().min(MAX_PROCESS_ROWS);
                        fragment.summary = match list.total_processes {
                            Some(total) => format!(
                                "top {shown} of {total} processes{}",
                                list.total_threads
                                    .map(|t| format!(", {t} threads"))
                                    .unwrap_or_default()
                            ),
                            None => format!("{shown} processes (the agent's top by CPU and memory)"),
                        };
                        fragment.rows = procs
                            .into_iter()
                            .take(MAX_PROCESS_ROWS)
                            .map(|p| {
                                let cmd = p.cmdline.unwrap_or_default();
                                ProcessRow {
                                    pid: p.pid,
                                    user: p.user.unwrap_or_default(),
                                    cpu: format!("{:.1}", p.cpu_percent),
                                    mem: format!("{:.1}", p.mem_percent),
                                    rss: format::bytes(p.mem_rss as f64),
                                    state: p.status,
                                    threads: p.threads_total,
                                    cmd_short: ellipsize(&cmd, 80),
                                    cmd_full: cmd,
                                    name: p.name,
                                }
                            })
                            .collect();
                    }
                }
            }
        }
        render(&fragment)
    }
    .await;
    result.into()
}

// ------------------------------------------------------------- services

#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub name: String,
    pub status: String,
    pub class: String,
    pub sub_status: String,
    pub load_state: String,
    pub enabled: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "host_services.html")]
struct ServicesFragment {
    id: String,
    q: String,
    reported: String,
    note: String,
    total: usize,
    failed: usize,
    active: usize,
    rows: Vec<ServiceRow>,
}

/// Failed first, then by name.
pub fn sort_services(rows: &mut [ServiceRow]) {
    rows.sort_by(|a, b| (a.status != "failed", &a.name).cmp(&(b.status != "failed", &b.name)));
}

async fn services(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> PageResult {
    let result = async {
        let (newest, collectors) = latest_for(&state, &id, t::SERVICE_LIST).await?;
        let needle = nonempty(&q.q).unwrap_or_default();
        let mut fragment = ServicesFragment {
            id: id.clone(),
            q: needle.clone(),
            reported: String::new(),
            note: String::new(),
            total: 0,
            failed: 0,
            active: 0,
            rows: Vec::new(),
        };
        match newest {
            None => fragment.note = absent_note(&collectors, "service_list", "service list"),
            Some(e) => {
                fragment.reported = format::time(e.timestamp);
                match decode::<ServiceListMetric>(&e) {
                    Err(why) => fragment.note = why,
                    Ok(list) => {
                        fragment.total = list.services.len();
                        fragment.failed = list
                            .services
                            .iter()
                            .filter(|s| s.status == "failed")
                            .count();
                        fragment.active = list
                            .services
                            .iter()
                            .filter(|s| s.status == "active")
                            .count();
                        let lower = needle.to_lowercase();
                        let mut rows: Vec<ServiceRow> = list
                            .services
                            .into_iter()
                            .filter(|s| {
                                lower.is_empty()
                                    || s.name.to_lowercase().contains(&lower)
                                    || s.description.to_lowercase().contains(&lower)
                                    || s.status == lower
                            })
                            .map(|s| ServiceRow {
                                class: class_token(&s.status),
                                name: s.name,
                                status: s.status,
                                sub_status: s.sub_status,
                                load_state: s.load_state,
                                enabled: s.enabled.unwrap_or_default(),
                                description: s.description,
                            })
                            .collect();
                        sort_services(&mut rows);
                        fragment.rows = rows;
                    }
                }
            }
        }
        render(&fragment)
    }
    .await;
    result.into()
}

// ------------------------------------------------------------- applications

/// Rows shown at once; the search narrows the rest.
const MAX_APPLICATION_ROWS: usize = 300;

#[derive(Debug, Clone)]
pub struct ApplicationRow {
    pub name: String,
    pub version: String,
    pub vendor: String,
    pub source: String,
}

#[derive(Template)]
#[template(path = "host_applications.html")]
struct ApplicationsFragment {
    id: String,
    q: String,
    reported: String,
    note: String,
    total: usize,
    matched: usize,
    rows: Vec<ApplicationRow>,
}

async fn applications(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> PageResult {
    let result = async {
        let (newest, collectors) = latest_for(&state, &id, t::APPLICATION_LIST).await?;
        let needle = nonempty(&q.q).unwrap_or_default();
        let mut fragment = ApplicationsFragment {
            id: id.clone(),
            q: needle.clone(),
            reported: String::new(),
            note: String::new(),
            total: 0,
            matched: 0,
            rows: Vec::new(),
        };
        match newest {
            None => {
                fragment.note = absent_note(&collectors, "application_list", "application list")
            }
            Some(e) => {
                fragment.reported = format::time(e.timestamp);
                match decode::<ApplicationListMetric>(&e) {
                    Err(why) => fragment.note = why,
                    Ok(list) => {
                        fragment.total = list.applications.len();
                        let lower = needle.to_lowercase();
                        let mut rows: Vec<ApplicationRow> = list
                            .applications
                            .into_iter()
                            .filter(|a| {
                                lower.is_empty()
                                    || a.name.to_lowercase().contains(&lower)
                                    || a.vendor.to_lowercase().contains(&lower)
                                    || a.version.to_lowercase().contains(&lower)
                            })
                            .map(|a| ApplicationRow {
                                name: a.name,
                                version: a.version,
                                vendor: a.vendor,
                                source: a.source.unwrap_or_default(),
                            })
                            .collect();
                        rows.sort_by(|a, b| {
                            a.name
                                .to_lowercase()
                                .cmp(&b.name.to_lowercase())
                                .then_with(|| a.version.cmp(&b.version))
                        });
                        fragment.matched = rows.len();
                        rows.truncate(MAX_APPLICATION_ROWS);
                        fragment.rows = rows;
                    }
                }
            }
        }
        render(&fragment)
    }
    .await;
    result.into()
}

// ------------------------------------------------------------- updates

#[derive(Debug, Clone)]
pub struct UpdateRow {
    pub name: String,
    pub version: String,
    pub security: bool,
}

#[derive(Template)]
#[template(path = "host_updates.html")]
struct UpdatesFragment {
    reported: String,
    note: String,
    present: bool,
    pending: u32,
    security: u32,
    reboot_required: bool,
    package_manager: String,
    rows: Vec<UpdateRow>,
}

async fn updates(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> PageResult {
    let result = async {
        let (newest, collectors) = latest_for(&state, &id, t::UPDATES).await?;
        let mut fragment = UpdatesFragment {
            reported: String::new(),
            note: String::new(),
            present: false,
            pending: 0,
            security: 0,
            reboot_required: false,
            package_manager: String::new(),
            rows: Vec::new(),
        };
        match newest {
            None => fragment.note = absent_note(&collectors, "updates", "update check"),
            Some(e) => {
                fragment.reported = format::time(e.timestamp);
                match decode::<UpdatesMetric>(&e) {
                    Err(why) => fragment.note = why,
                    Ok(u) => {
                        fragment.present = true;
                        fragment.pending = u.pending_count;
                        fragment.security = u.security_count;
                        fragment.reboot_required = u.reboot_required;
                        fragment.package_manager = u.package_manager;
                        let mut rows: Vec<UpdateRow> = u
                            .packages
                            .into_iter()
                            .map(|p| UpdateRow {
                                name: p.name,
                                version: p.version,
                                security: p.security,
                            })
                            .collect();
                        rows.sort_by(|a, b| (!a.security, &a.name).cmp(&(!b.security, &b.name)));
                        fragment.rows = rows;
                    }
                }
            }
        }
        render(&fragment)
    }
    .await;
    result.into()
}

// ------------------------------------------------------------- workloads

#[derive(Debug, Clone)]
pub struct WorkloadRow {
    pub name: String,
    pub id_short: String,
    pub image: String,
    pub source: String,
    pub kind: String,
    pub state: String,
    pub class: String,
    pub status_line: String,
    pub health: String,
    pub health_class: String,
    pub restarts: String,
    pub cpu: String,
    pub memory: String,
    pub net: String,
    pub stats_error: String,
}

#[derive(Template)]
#[template(path = "host_workloads.html")]
struct WorkloadsFragment {
    reported: String,
    note: String,
    errors: Vec<String>,
    running: usize,
    rows: Vec<WorkloadRow>,
}

fn enum_word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn workloads(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> PageResult {
    let result = async {
        let (newest, collectors) = latest_for(&state, &id, t::CONTAINER_LIST).await?;
        let mut fragment = WorkloadsFragment {
            reported: String::new(),
            note: String::new(),
            errors: Vec::new(),
            running: 0,
            rows: Vec::new(),
        };
        match newest {
            None => fragment.note = absent_note(&collectors, "container_list", "workloads"),
            Some(e) => {
                fragment.reported = format::time(e.timestamp);
                match decode::<ContainerListMetric>(&e) {
                    Err(why) => fragment.note = why,
                    Ok(list) => {
                        fragment.errors = list.errors;
                        fragment.running = list
                            .containers
                            .iter()
                            .filter(|w| w.state == "running")
                            .count();
                        let mut rows: Vec<WorkloadRow> = list
                            .containers
                            .into_iter()
                            .map(|w| {
                                let unknown = w.stats_error.is_some();
                                let measured = |text: String| {
                                    if unknown {
                                        "—".to_owned()
                                    } else {
                                        text
                                    }
                                };
                                let cpu = measured(match w.cpu_limit_cores {
                                    Some(c) => format!("{:.1} % of {c} cores", w.cpu_percent),
                                    None => format!("{:.1} %", w.cpu_percent),
                                });
                                let memory = measured(match w.memory_limit {
                                    Some(l) if l > 0 => format!(
                                        "{} / {}",
                                        format::bytes(w.memory_bytes as f64),
                                        format::bytes(l as f64)
                                    ),
                                    _ => format::bytes(w.memory_bytes as f64),
                                });
                                let net = measured(format!(
                                    "↓ {} ↑ {}",
                                    format::bytes(w.net_rx_bytes as f64),
                                    format::bytes(w.net_tx_bytes as f64)
                                ));
                                let health = w.health.clone().unwrap_or_default();
                                WorkloadRow {
                                    id_short: w.id.chars().take(12).collect(),
                                    image: w.image,
                                    source: enum_word(&w.source),
                                    kind: enum_word(&w.kind),
                                    class: class_token(&w.state),
                                    state: w.state,
                                    status_line: w.status.unwrap_or_default(),
                                    health_class: class_token(&health),
                                    health,
                                    restarts: w
                                        .restarts
                                        .map(|r| r.to_string())
                                        .unwrap_or_else(|| "—".to_owned()),
                                    cpu,
                                    memory,
                                    net,
                                    stats_error: w.stats_error.unwrap_or_default(),
                                    name: w.name,
                                }
                            })
                            .collect();
                        rows.sort_by(|a, b| {
                            (a.state != "running", &a.name).cmp(&(b.state != "running", &b.name))
                        });
                        fragment.rows = rows;
                    }
                }
            }
        }
        render(&fragment)
    }
    .await;
    result.into()
}

// ------------------------------------------------------------- Raspberry Pi

/// The throttle flags in words: (now, since boot).
pub fn throttle_words(m: &ThrottleMetric) -> (Vec<&'static str>, Vec<&'static str>) {
    let now = [
        (m.undervoltage, "Under-voltage detected"),
        (m.arm_freq_capped, "ARM frequency capped"),
        (m.throttled, "Currently throttled"),
        (m.soft_temp_limit, "Soft temperature limit active"),
    ];
    let since = [
        (m.undervoltage_occurred, "Under-voltage has occurred"),
        (m.freq_cap_occurred, "Frequency capping has occurred"),
        (m.throttled_occurred, "Throttling has occurred"),
        (m.soft_temp_occurred, "Soft temperature limit has occurred"),
    ];
    let pick = |flags: &[(bool, &'static str)]| {
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
    };
    (pick(&now), pick(&since))
}

/// An eMMC life-time band (JEDEC: 1 = 0-10 % used ... 10 = 90-100 %, 11 =
/// past its rated life).
fn life_band(band: u8) -> String {
    match band {
        0 => "not defined".to_owned(),
        1..=10 => format!("{}-{} % of rated life used", (band - 1) * 10, band * 10),
        _ => "past its rated life".to_owned(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct StorageRow {
    pub device: String,
    pub kind: String,
    pub name: String,
    pub wear: String,
}

#[derive(Template)]
#[template(path = "host_pi.html")]
struct PiFragment {
    reported: String,
    model: String,
    facts: Vec<(&'static str, String)>,
    throttle_known: bool,
    throttle_now: Vec<&'static str>,
    throttle_since: Vec<&'static str>,
    throttle_raw: String,
    storage: Vec<StorageRow>,
    unavailable: Vec<String>,
    note: String,
}

async fn pi(State(state): State<AppState>, _caller: Caller, Path(id): Path<String>) -> PageResult {
    let result = async {
        agent_record(&state, &id).await?;
        let types = [
            t::THROTTLE,
            t::CLOCK,
            t::VOLTAGE,
            t::GPU,
            t::PI_HEALTH,
            t::COLLECTOR_STATUS,
            t::AGENT,
        ];
        let latest = state.store.latest_of_types(&id, &types).await?;
        let newest = |ty: &str| {
            latest
                .iter()
                .filter(|e| e.metric_type == ty)
                .max_by_key(|e| e.timestamp)
        };
        let mut fragment = PiFragment {
            reported: String::new(),
            model: String::new(),
            facts: Vec::new(),
            throttle_known: false,
            throttle_now: Vec::new(),
            throttle_since: Vec::new(),
            throttle_raw: String::new(),
            storage: Vec::new(),
            unavailable: Vec::new(),
            note: String::new(),
        };
        let newest_at = types[..5]
            .iter()
            .filter_map(|ty| newest(ty))
            .map(|e| e.timestamp)
            .max();
        let Some(at) = newest_at else {
            fragment.note = absent_note(&collector_rows(&latest), "pi", "Raspberry Pi readings");
            return render(&fragment);
        };
        fragment.reported = format::time(at);
        let mhz = |hz: u64| format!("{:.0} MHz", hz as f64 / 1e6);
        if let Some(h) = newest(t::PI_HEALTH).and_then(|e| decode::<PiHealthMetric>(e).ok()) {
            fragment.model = h.model.clone();
            if let Some(r) = &h.revision {
                fragment.facts.push(("Revision", r.clone()));
            }
            if let Some(c) = h.soc_temp_c {
                fragment
                    .facts
                    .push(("SoC temperature", format!("{c:.1} °C")));
            }
            if let Some(w) = h.pmic_watts {
                fragment
                    .facts
                    .push(("PMIC power (SoC and memory rails)", format!("{w:.2} W")));
            }
            fragment.facts.push(("Read through", h.source.clone()));
            fragment.storage = h
                .storage
                .iter()
                .map(|s| {
                    let mut wear = Vec::new();
                    if let Some(a) = s.life_time_a {
                        wear.push(format!("type A: {}", life_band(a)));
                    }
                    if let Some(b) = s.life_time_b {
                        wear.push(format!("type B: {}", life_band(b)));
                    }
                    if let Some(p) = s.pre_eol_info {
                        wear.push(match p {
                            1 => "reserved blocks normal".to_owned(),
                            2 => "reserved blocks: warning (80 % used)".to_owned(),
                            3 => "reserved blocks: urgent (90 % used)".to_owned(),
                            other => format!("pre-EOL {other}"),
                        });
                    }
                    StorageRow {
                        device: s.device.clone(),
                        kind: s.kind.clone(),
                        name: s.name.clone().unwrap_or_default(),
                        wear: if wear.is_empty() {
                            "not reported by this card (SD cards do not expose wear)".to_owned()
                        } else {
                            wear.join("; ")
                        },
                    }
                })
                .collect();
            fragment.unavailable = h.unavailable.clone();
        }
        if let Some(c) = newest(t::CLOCK).and_then(|e| decode::<ClockMetric>(e).ok()) {
            fragment.facts.push(("ARM clock", mhz(c.arm_freq_hz)));
            if let Some(v) = c.core_freq_hz {
                fragment.facts.push(("Core clock", mhz(v)));
            }
            if let Some(v) = c.gpu_freq_hz {
                fragment.facts.push(("GPU clock", mhz(v)));
            }
        }
        if let Some(v) = newest(t::VOLTAGE).and_then(|e| decode::<VoltageMetric>(e).ok()) {
            fragment
                .facts
                .push(("Core voltage", format!("{:.4} V", v.core_volts)));
            for (name, value) in [
                ("SDRAM controller voltage", v.sdram_c_volts),
                ("SDRAM I/O voltage", v.sdram_i_volts),
                ("SDRAM PHY voltage", v.sdram_p_volts),
            ] {
                if let Some(value) = value {
                    fragment.facts.push((name, format!("{value:.4} V")));
                }
            }
        }
        if let Some(g) = newest(t::GPU).and_then(|e| decode::<GpuMetric>(e).ok()) {
            let text = match g.gpu_mem_used {
                Some(u) => format!(
                    "{} used of {}",
                    format::bytes(u as f64),
                    format::bytes(g.gpu_mem_total as f64)
                ),
                None => format::bytes(g.gpu_mem_total as f64),
            };
            fragment.facts.push(("GPU memory", text));
            if let Some(a) = g.arm_mem_total {
                fragment.facts.push(("ARM memory", format::bytes(a as f64)));
            }
        }
        if let Some(th) = newest(t::THROTTLE).and_then(|e| decode::<ThrottleMetric>(e).ok()) {
            let (now, since) = throttle_words(&th);
            fragment.throttle_known = true;
            fragment.throttle_now = now;
            fragment.throttle_since = since;
            fragment.throttle_raw = th
                .throttled_raw
                .map(|r| format!("0x{r:x}"))
                .unwrap_or_default();
        }
        render(&fragment)
    }
    .await;
    result.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(ts: i64, data: Value) -> Sample {
        Sample {
            timestamp: DateTime::from_timestamp(ts, 0).unwrap(),
            data,
        }
    }

    fn def(id: &str) -> &'static ChartDef {
        CHARTS.iter().find(|d| d.id == id).unwrap()
    }

    #[test]
    fn step_keeps_charts_near_600_points_and_picks_the_tier() {
        let cases = [
            (900, 5, "raw"),
            (3600, 10, "raw"),
            (6 * 3600, 60, "1-minute"),
            (86_400, 180, "1-minute"),
            (7 * 86_400, 1200, "1-minute"),
            (30 * 86_400, 7200, "1-hour"),
            (90 * 86_400, 21_600, "1-hour"),
            (365 * 86_400, 86_400, "1-hour"),
            (730 * 86_400, 172_800, "1-hour"),
        ];
        for (span, step, tier) in cases {
            let s = choose_step(span, RAW_INTERVAL_S);
            assert_eq!(s, step, "span {span}");
            assert_eq!(tier_name(s), tier, "span {span}");
            assert!(span / s <= MAX_POINTS, "span {span}: {} points", span / s);
        }
        // A ten-year custom window still gets whole days.
        assert_eq!(choose_step(3650 * 86_400, 5) % 86_400, 0);
    }

    #[test]
    fn old_windows_read_a_tier_that_still_has_them() {
        let now = Utc::now();
        let raw = Duration::from_secs(7 * 86_400);
        let minute = Duration::from_secs(90 * 86_400);
        let ago = |d: i64| now - chrono::Duration::days(d);
        assert_eq!(step_floor(ago(1), now, raw, minute), RAW_INTERVAL_S);
        assert_eq!(step_floor(ago(10), now, raw, minute), 60);
        assert_eq!(step_floor(ago(100), now, raw, minute), 3600);
        // Fifteen minutes of ten days ago: one-minute rollups.
        assert_eq!(choose_step(900, step_floor(ago(10), now, raw, minute)), 60);
    }

    #[test]
    fn ranges_of_years_fit_the_api_limit() {
        let now = Utc::now();
        for (r, _) in RANGES {
            let p = HistoryParams {
                range: Some(canonical_range(r)),
                ..HistoryParams::default()
            };
            assert!(parse_history_params(&p, now).is_ok(), "{r}");
        }
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(human_span(900), "15 min");
        assert_eq!(human_span(86_400), "24 h");
        assert_eq!(human_span(7 * 86_400), "7 days");
        assert_eq!(human_span(365 * 86_400), "1 year");
        assert_eq!(human_span(180), "3 min");
        assert_eq!(human_span(5), "5 s");
    }

    #[test]
    fn fixed_fields_become_aligned_columns() {
        let samples = [
            sample(
                100,
                json!({"usage": 40.0, "iowait": 1.5, "cores": [30.0, 50.0]}),
            ),
            sample(105, json!({"usage": 60.0, "cores": [55.0, 65.0]})),
        ];
        let c = build_chart(def("cpu"), &samples, 5);
        assert_eq!(c.x, [100, 105]);
        let labels: Vec<&str> = c.series.iter().map(|s| s.label.as_str()).collect();
        // `steal` never came: no series for it.
        assert_eq!(labels, ["usage", "iowait"]);
        assert_eq!(c.y[0], [Some(40.0), Some(60.0)]);
        assert_eq!(c.y[1], [Some(1.5), None]);
        assert_eq!(c.y_max, Some(100.0));

        let cores = build_chart(def("cpu_cores"), &samples, 5);
        assert_eq!(cores.series[1].label, "core 1");
        assert_eq!(cores.y[1], [Some(50.0), Some(65.0)]);
    }

    #[test]
    fn per_entity_samples_group_by_their_key() {
        let samples = [
            sample(60, json!({"mountpoint": "/var", "disk_used_pct": 10.0})),
            sample(60, json!({"mountpoint": "/", "disk_used_pct": 50.0})),
            sample(120, json!({"mountpoint": "/", "disk_used_pct": 51.0})),
        ];
        let c = build_chart(def("disk_usage"), &samples, 60);
        assert_eq!(c.x, [60, 120]);
        let labels: Vec<&str> = c.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["/", "/var"]);
        assert_eq!(c.y[0], [Some(50.0), Some(51.0)]);
        assert_eq!(c.y[1], [Some(10.0), None]);

        let net = [
            sample(
                5,
                json!({"interface": "eth0", "rx_bytes": 1024.0, "tx_bytes": 10.0}),
            ),
            sample(
                5,
                json!({"interface": "veth1", "rx_bytes": 0.0, "tx_bytes": 0.0}),
            ),
        ];
        let c = build_chart(def("network"), &net, 5);
        let labels: Vec<&str> = c.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            ["eth0 rx", "eth0 tx"],
            "idle interfaces are left out"
        );
    }

    #[test]
    fn workloads_are_named_and_flags_become_percentages() {
        let samples = [sample(
            60,
            json!({"workload": "docker/abc", "name": "web", "cpu_percent": 12.5}),
        )];
        let c = build_chart(def("workload_cpu"), &samples, 60);
        assert_eq!(c.series[0].label, "web");
        let throttle = [
            sample(60, json!({"undervoltage": true, "throttled": false})),
            sample(120, json!({"undervoltage": 0.25, "throttled": 0.0})),
        ];
        let c = build_chart(def("pi_throttle"), &throttle, 60);
        assert_eq!(c.y[0], [Some(100.0), Some(25.0)]);
    }

    #[test]
    fn outages_break_the_line() {
        let samples: Vec<Sample> = [0, 5, 10, 200, 205]
            .into_iter()
            .map(|t| sample(t, json!({"usage": 1.0})))
            .collect();
        let c = build_chart(def("cpu"), &samples, 5);
        assert_eq!(c.x, [0, 5, 10, 15, 200, 205]);
        assert_eq!(c.y[0][3], None);
        assert_eq!(c.y[0][4], Some(1.0));
    }

    #[test]
    fn a_chart_without_values_is_empty() {
        let c = build_chart(def("cpu"), &[sample(0, json!({"other": 1}))], 5);
        assert!(c.x.is_empty() && c.series.is_empty() && c.y.is_empty());
    }

    #[test]
    fn at_takes_rfc3339_or_a_datetime_local_value_in_utc() {
        let now = Utc::now();
        assert_eq!(parse_at(None, now).unwrap(), now);
        assert_eq!(parse_at(Some(" "), now).unwrap(), now);
        let want: DateTime<Utc> = "2026-11-25T03:12:00Z".parse().unwrap();
        assert_eq!(parse_at(Some("2026-11-25T03:12"), now).unwrap(), want);
        assert_eq!(
            parse_at(Some("2026-11-25T04:12:00+01:00"), now).unwrap(),
            want
        );
        let e = parse_at(Some("yesterday"), now).unwrap_err();
        assert!(e.starts_with("at:"), "{e}");
    }

    #[test]
    fn failed_services_come_first() {
        let row = |name: &str, status: &str| ServiceRow {
            name: name.into(),
            status: status.into(),
            class: class_token(status),
            sub_status: String::new(),
            load_state: String::new(),
            enabled: String::new(),
            description: String::new(),
        };
        let mut rows = vec![
            row("a.service", "active"),
            row("z.service", "failed"),
            row("b.service", "inactive"),
        ];
        sort_services(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["z.service", "a.service", "b.service"]);
    }

    #[test]
    fn throttle_flags_read_as_words() {
        let m = ThrottleMetric {
            undervoltage: true,
            undervoltage_occurred: true,
            throttled_occurred: true,
            ..ThrottleMetric::default()
        };
        let (now, since) = throttle_words(&m);
        assert_eq!(now, ["Under-voltage detected"]);
        assert_eq!(
            since,
            ["Under-voltage has occurred", "Throttling has occurred"]
        );
        assert_eq!(life_band(1), "0-10 % of rated life used");
        assert_eq!(life_band(11), "past its rated life");
    }

    #[test]
    fn collectors_merge_status_reports_with_the_agent_list() {
        let at = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let env = |ty: &str, ts: &str, data: Value| RawEnvelope {
            metric_type: ty.into(),
            timestamp: at(ts),
            hostname: "h".into(),
            data,
        };
        let latest = vec![
            env(
                t::COLLECTOR_STATUS,
                "2026-11-25T10:00:00Z",
                json!({"collector": "wifi", "state": "unsupported", "message": "no wireless interface"}),
            ),
            env(
                t::AGENT,
                "2026-11-25T10:05:00Z",
                json!({"uptime_seconds": 1, "spool_batches": 0, "spool_dropped_batches": 0,
                       "sent_batches": 0, "rejected_batches": 0,
                       "collectors": [
                           {"name": "cpu", "runs": 3, "failures": 0, "state": "ok"},
                           {"name": "wifi", "runs": 0, "failures": 0, "state": "unsupported"}]}),
            ),
        ];
        let rows = collector_rows(&latest);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["cpu", "wifi"]);
        assert_eq!(rows[1].state_text, "unsupported");
        assert_eq!(rows[1].message, "no wireless interface");
        assert_eq!(
            collector_problem(&rows, "wifi").unwrap(),
            "wifi collector unsupported: no wireless interface"
        );
        assert!(collector_problem(&rows, "cpu").is_none());
    }
}
