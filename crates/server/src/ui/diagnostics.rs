//! The diagnostics panel (SPEC §8, issue 6): a form per typed command
//! (SPEC §3), the run's live status, and its result rendered for people.
//!
//! Routes (all `Access::Page(Role::Operator)`, like the API that queues
//! commands):
//! - `GET /ui/hosts/{id}/diagnostics`: the panel, a fragment the host page
//!   loads into `<section id="diagnostics">`: one form per command, the
//!   result area `#diag-result` and the host's recent commands.
//! - `GET /ui/hosts/{id}/diagnostics/recent`: the recent-commands list
//!   alone (refreshed when a run is queued or ends).
//! - `POST /ui/hosts/{id}/diagnostics/{kind}`: a form (`kind` one of
//!   [`Kind`]) → a typed [`CommandRequest`] → the command service, the same
//!   path as `POST /api/v1/agents/{id}/commands`: the same validation
//!   (`CommandRequest::validate`), per-agent limits and audit entries. A
//!   form the builders refuse is audited as the API audits an unparsed
//!   request. Answers the run's status fragment, or a 4xx `.error-message`
//!   fragment with nothing queued.
//! - `GET /ui/commands/{id}`: the status/result fragment. While the command
//!   is not final it re-polls itself every second (`hx-swap="outerHTML"`).
//!
//! Results are decoded into the protocol's result types and turned into
//! small view structs here (all maths server-side: the Content-Security-
//! Policy allows no inline style, so bar lengths are SVG attributes); the
//! raw JSON stays available behind a `<details>`. Client-side filtering of
//! the netstat and log tables lives in `assets/diagnostics.js`.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use spectra_protocol::{
    CommandRequest, CommandType, ConnectResult, DiskUsageReport, DiskUsageRequest, LogEntry,
    LogLevel, LogRequest, MountEntry, NetstatEntry, NetworkAction, NetworkDiagRequest,
    NetworkDiagResult, PathError, PathUsage, PingResult, PingSummary, TraceProtocol, TracerouteHop,
};
use spectra_store::{AgentState, CommandRecord, CommandStatus, Role};

use super::{asset_version, error_page, format, render, PageResult};
use crate::http::commands::{parse_opt_number, parse_since};
use crate::http::extract::{Caller, ClientIp, QueryParams};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::agents::{compute_status, AgentStatus};
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::{get, post};
    const OPERATOR: Access = Access::Page(Role::Operator);
    vec![
        spec(
            Method::GET,
            "/ui/hosts/{id}/diagnostics",
            OPERATOR,
            get(panel),
        ),
        spec(
            Method::GET,
            "/ui/hosts/{id}/diagnostics/recent",
            OPERATOR,
            get(recent),
        ),
        spec(
            Method::POST,
            "/ui/hosts/{id}/diagnostics/{kind}",
            OPERATOR,
            post(run),
        ),
        spec(
            Method::GET,
            "/ui/commands/{id}",
            OPERATOR,
            get(command_fragment),
        ),
    ]
}

/// Event (`HX-Trigger`) sent when a run was queued: the recent list reloads.
const EVENT_QUEUED: &str = "diag-queued";
/// Event sent when a polled run reached a final status.
const EVENT_ENDED: &str = "diag-ended";
/// Commands shown in the recent list.
const RECENT_LIMIT: usize = 20;
/// Raw JSON longer than this is cut (the API has the whole result).
const RAW_JSON_MAX_CHARS: usize = 200_000;

// ------------------------------------------------------------------ forms

/// The commands the panel offers, as they appear in URLs and form ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ping,
    Traceroute,
    Connect,
    Netstat,
    Disk,
    Mounts,
    Logs,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Self::Ping,
        Self::Traceroute,
        Self::Connect,
        Self::Netstat,
        Self::Disk,
        Self::Mounts,
        Self::Logs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Traceroute => "traceroute",
            Self::Connect => "connect",
            Self::Netstat => "netstat",
            Self::Disk => "disk",
            Self::Mounts => "mounts",
            Self::Logs => "logs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn command_type(self) -> CommandType {
        match self {
            Self::Ping | Self::Traceroute | Self::Connect | Self::Netstat => {
                CommandType::NetworkDiag
            }
            Self::Disk => CommandType::DiskUsage,
            Self::Mounts => CommandType::ListMounts,
            Self::Logs => CommandType::FetchLogs,
        }
    }
}

/// Every field any of the panel's forms sends; a form leaves the others
/// empty. Numbers arrive as text so a bad one gets a message naming it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct DiagForm {
    pub target: String,
    pub count: String,
    pub interval_ms: String,
    pub max_hops: String,
    pub protocol: String,
    pub host: String,
    pub port: String,
    pub path: String,
    pub top_n: String,
    pub min_level: String,
    pub since: String,
    pub unit: String,
    pub container: String,
    pub grep: String,
    pub max_entries: String,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

/// A trimmed text field, `None` when empty.
fn text(v: &str) -> Option<String> {
    let t = v.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A number for a field of type `T`; a value too large for `T` is named
/// with the field's real bound (`max`) rather than a type error.
fn number<T: TryFrom<u64>>(name: &str, value: &str, max: u64) -> Result<Option<T>, AppError> {
    let Some(n) = parse_opt_number::<u64>(name, Some(value.trim()))? else {
        return Ok(None);
    };
    T::try_from(n)
        .map(Some)
        .map_err(|_| bad(format!("{name} must be at most {max}, got {n}")))
}

/// A TCP port: 1-65535, said in those words (not "number too large").
fn parse_port(value: &str) -> Result<Option<u16>, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n) if (1..=65_535).contains(&n) => Ok(Some(n as u16)),
        Ok(n) => Err(bad(format!("port must be between 1 and 65535, got {n}"))),
        Err(_) => Err(bad(format!(
            "port must be a number between 1 and 65535, got `{}`",
            v.chars().take(32).collect::<String>()
        ))),
    }
}

fn required_target(form: &DiagForm, what: &str) -> Result<String, AppError> {
    text(&form.target)
        .ok_or_else(|| bad(format!("target: enter a hostname or IP address to {what}")))
}

/// Builds the typed request a form asks for. Only parsing happens here;
/// the command service validates the request (targets, paths, ranges)
/// exactly as it does for the API.
pub fn build_request(kind: Kind, form: &DiagForm) -> Result<CommandRequest, AppError> {
    use spectra_protocol::command::{MAX_LOG_ENTRIES, MAX_PING_COUNT, MAX_TOP_N, MAX_TRACE_HOPS};
    Ok(match kind {
        Kind::Ping => {
            let mut d =
                NetworkDiagRequest::new(NetworkAction::Ping, Some(required_target(form, "ping")?));
            d.count = number("count", &form.count, u64::from(MAX_PING_COUNT))?;
            d.interval_ms = number("interval_ms", &form.interval_ms, 60_000)?;
            CommandRequest::NetworkDiag(d)
        }
        Kind::Traceroute => {
            let mut d = NetworkDiagRequest::new(
                NetworkAction::Traceroute,
                Some(required_target(form, "trace")?),
            );
            d.max_hops = number("max_hops", &form.max_hops, u64::from(MAX_TRACE_HOPS))?;
            d.protocol = match form.protocol.trim() {
                "" => None,
                "udp" => Some(TraceProtocol::Udp),
                "icmp" => Some(TraceProtocol::Icmp),
                other => {
                    return Err(bad(format!(
                        "protocol: `{}` is not udp or icmp",
                        other.chars().take(32).collect::<String>()
                    )))
                }
            };
            CommandRequest::NetworkDiag(d)
        }
        Kind::Connect => {
            let host = text(&form.host)
                .ok_or_else(|| bad("host: enter a hostname or IP address to connect to"))?;
            let mut d = NetworkDiagRequest::new(NetworkAction::Connect, Some(host));
            d.port = parse_port(&form.port)?;
            CommandRequest::NetworkDiag(d)
        }
        Kind::Netstat => {
            CommandRequest::NetworkDiag(NetworkDiagRequest::new(NetworkAction::Netstat, None))
        }
        Kind::Disk => {
            // The API lists the mounts when no path is given; the panel has
            // its own form for that, so an empty path here is a mistake.
            let path = text(&form.path).ok_or_else(|| {
                bad("path: enter an absolute path to scan, such as /var (List mounts shows the filesystems)")
            })?;
            CommandRequest::DiskUsage(DiskUsageRequest {
                path: Some(path),
                top_n: number("top_n", &form.top_n, u64::from(MAX_TOP_N))?,
            })
        }
        Kind::Mounts => CommandRequest::ListMounts,
        Kind::Logs => {
            let min_level = match form.min_level.trim() {
                "" => None,
                l => Some(LogLevel::parse(l).ok_or_else(|| {
                    bad(format!(
                        "min_level: unknown level `{}` ({})",
                        l.chars().take(32).collect::<String>(),
                        LEVEL_NAMES.join(", ")
                    ))
                })?),
            };
            CommandRequest::FetchLogs(LogRequest {
                min_level,
                since: parse_since(Some(form.since.trim()))?,
                unit: text(&form.unit),
                max_entries: number("max_entries", &form.max_entries, u64::from(MAX_LOG_ENTRIES))?,
                // Not trimmed: a leading space can be part of what is sought.
                grep: Some(form.grep.clone()).filter(|g| !g.is_empty()),
                container: text(&form.container),
            })
        }
    })
}

/// Level names, least severe first (SPEC Appendix A).
pub const LEVEL_NAMES: [&str; 8] = [
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
];

// ------------------------------------------------------------------ bar maths

/// One bar of a vertical bar chart, in the SVG's own units.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// No value (a lost probe): drawn full height in the "lost" colour.
    pub lost: bool,
}

/// Share of each slot left empty between bars.
const BAR_GAP: f64 = 0.2;
/// Shortest bar for a present value, so a tiny RTT still shows.
const MIN_BAR_HEIGHT: f64 = 1.0;

/// Bars for `values` across a `width`×`height` chart, scaled so the
/// largest value fills the height; `None` (lost) bars span the height.
pub fn vertical_bars(values: &[Option<f64>], width: f64, height: f64) -> Vec<Bar> {
    let n = values.len();
    if n == 0 || width <= 0.0 || height <= 0.0 {
        return Vec::new();
    }
    let max = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let slot = width / n as f64;
    let gap = slot * BAR_GAP;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = i as f64 * slot + gap / 2.0;
            let bar_width = slot - gap;
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    let scaled = if max > 0.0 {
                        v.max(0.0) / max * height
                    } else {
                        0.0
                    };
                    let h = scaled.max(MIN_BAR_HEIGHT.min(height));
                    Bar {
                        x,
                        y: height - h,
                        width: bar_width,
                        height: h,
                        lost: false,
                    }
                }
                None => Bar {
                    x,
                    y: 0.0,
                    width: bar_width,
                    height,
                    lost: true,
                },
            }
        })
        .collect()
}

/// Narrowest horizontal bar for a non-zero size, out of `full`.
const MIN_HBAR: f64 = 0.5;

/// Horizontal bar lengths out of `full`, relative to the largest size.
pub fn bar_widths(sizes: &[u64], full: f64) -> Vec<f64> {
    let max = sizes.iter().copied().max().unwrap_or(0);
    sizes
        .iter()
        .map(|&s| {
            if max == 0 || s == 0 {
                0.0
            } else {
                (s as f64 / max as f64 * full).max(MIN_HBAR)
            }
        })
        .collect()
}

/// `ping`'s statistics when the agent sent none (an older agent):
/// loss over all probes, mdev as iputils computes it.
pub fn summarize_ping(probes: &[PingResult]) -> PingSummary {
    let rtts: Vec<f64> = probes
        .iter()
        .filter(|p| p.success)
        .map(|p| p.rtt_ms)
        .collect();
    let sent = probes.len() as u32;
    let received = rtts.len() as u32;
    let loss_pct = if sent == 0 {
        0.0
    } else {
        f64::from(sent - received) * 100.0 / f64::from(sent)
    };
    if rtts.is_empty() {
        return PingSummary {
            sent,
            received,
            loss_pct,
            min_ms: None,
            avg_ms: None,
            max_ms: None,
            mdev_ms: None,
        };
    }
    let n = rtts.len() as f64;
    let avg = rtts.iter().sum::<f64>() / n;
    let mean_sq = rtts.iter().map(|r| r * r).sum::<f64>() / n;
    PingSummary {
        sent,
        received,
        loss_pct,
        min_ms: rtts.iter().copied().reduce(f64::min),
        avg_ms: Some(avg),
        max_ms: rtts.iter().copied().reduce(f64::max),
        mdev_ms: Some((mean_sq - avg * avg).max(0.0).sqrt()),
    }
}

// ------------------------------------------------------------------ formatting

/// Milliseconds with precision that suits their size: `0.043`, `12.35`, `143.2`.
fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_opt_ms(v: Option<f64>) -> String {
    v.map(fmt_ms).unwrap_or_else(|| "—".into())
}

/// A run's duration: `850 ms`, `4.2 s`, `3m 5s`.
fn fmt_elapsed(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format::duration_secs(ms as f64 / 1000.0)
    }
}

/// `addr:port`, IPv6 in brackets, port 0 as `*`.
fn endpoint(addr: &str, port: u16) -> String {
    let a = if addr.is_empty() {
        "*".to_owned()
    } else if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    };
    if port == 0 {
        format!("{a}:*")
    } else {
        format!("{a}:{port}")
    }
}

fn status_name(s: CommandStatus) -> &'static str {
    match s {
        CommandStatus::Queued => "queued",
        CommandStatus::Delivered => "delivered",
        CommandStatus::Done => "done",
        CommandStatus::Failed => "failed",
        CommandStatus::Expired => "expired",
    }
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Notice => "notice",
        LogLevel::Warning => "warning",
        LogLevel::Error => "error",
        LogLevel::Critical => "critical",
        LogLevel::Alert => "alert",
        LogLevel::Emergency => "emergency",
    }
}

/// A command in a few words: `ping 1.1.1.1`, `disk usage /var`.
pub fn describe(command_type: &str, payload: &serde_json::Value) -> String {
    let Ok(request) = CommandRequest::from_parts(command_type, payload) else {
        return command_type.to_owned();
    };
    match request {
        CommandRequest::NetworkDiag(d) => {
            let action = match d.action {
                NetworkAction::Ping => "ping",
                NetworkAction::Connect => "connect",
                NetworkAction::Netstat => "netstat",
                NetworkAction::Traceroute => "traceroute",
            };
            let mut s = action.to_owned();
            if let Some(t) = &d.target {
                s.push(' ');
                s.push_str(t);
            }
            if let Some(p) = d.port {
                s.push_str(&format!(" port {p}"));
            }
            s
        }
        CommandRequest::DiskUsage(d) => match d.path {
            Some(p) => format!("disk usage {p}"),
            None => "disk usage (mounts)".into(),
        },
        CommandRequest::ListMounts => "list mounts".into(),
        CommandRequest::FetchLogs(l) => {
            let mut s = "logs".to_owned();
            if let Some(level) = l.min_level {
                s.push_str(&format!(" ≥ {}", level_name(level)));
            }
            if let Some(u) = &l.unit {
                s.push_str(&format!(" unit {u}"));
            }
            if let Some(c) = &l.container {
                s.push_str(&format!(" container {c}"));
            }
            if let Some(g) = &l.grep {
                s.push_str(&format!(" “{g}”"));
            }
            s
        }
        CommandRequest::RestartAgent => "restart agent".into(),
    }
}

// ------------------------------------------------------------------ result views

pub struct BarView {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub lost: bool,
    pub title: String,
}

pub struct PingRow {
    pub seq: u32,
    pub peer: String,
    pub ttl: String,
    pub rtt: String,
    pub ok: bool,
    pub response: String,
}

pub struct PingView {
    pub target: String,
    pub resolved: String,
    pub rows: Vec<PingRow>,
    pub sent: u32,
    pub received: u32,
    pub loss: String,
    /// `min/avg/max/mdev`, empty when nothing answered.
    pub rtt_line: String,
    pub bars: Vec<BarView>,
    pub chart_w: u32,
    pub chart_h: u32,
    pub chart_label: String,
    pub max_label: String,
}

/// The address the target resolved to, unless the target was that address.
fn resolved_if_new(r: &NetworkDiagResult) -> String {
    r.resolved
        .clone()
        .filter(|a| *a != r.target)
        .unwrap_or_default()
}

const CHART_W: f64 = 400.0;
const CHART_H: f64 = 80.0;

fn ping_view(r: &NetworkDiagResult, probes: &[PingResult]) -> PingView {
    let summary = r
        .ping_summary
        .clone()
        .unwrap_or_else(|| summarize_ping(probes));
    let values: Vec<Option<f64>> = probes
        .iter()
        .map(|p| p.success.then_some(p.rtt_ms))
        .collect();
    let bars = vertical_bars(&values, CHART_W, CHART_H)
        .into_iter()
        .zip(probes)
        .map(|(b, p)| BarView {
            x: format!("{:.2}", b.x),
            y: format!("{:.2}", b.y),
            w: format!("{:.2}", b.width),
            h: format!("{:.2}", b.height),
            lost: b.lost,
            title: if b.lost {
                format!("seq {}: lost", p.seq)
            } else {
                format!("seq {}: {} ms", p.seq, fmt_ms(p.rtt_ms))
            },
        })
        .collect();
    let rtt_line = match (summary.min_ms, summary.avg_ms, summary.max_ms) {
        (Some(min), Some(avg), Some(max)) => format!(
            "{}/{}/{}/{}",
            fmt_ms(min),
            fmt_ms(avg),
            fmt_ms(max),
            fmt_opt_ms(summary.mdev_ms)
        ),
        _ => String::new(),
    };
    let max = values.iter().flatten().copied().fold(0.0_f64, f64::max);
    PingView {
        target: r.target.clone(),
        resolved: resolved_if_new(r),
        rows: probes
            .iter()
            .map(|p| PingRow {
                seq: p.seq,
                peer: if p.peer.is_empty() {
                    "—".into()
                } else {
                    p.peer.clone()
                },
                ttl: p.ttl.map(|t| t.to_string()).unwrap_or_else(|| "—".into()),
                rtt: if p.success {
                    fmt_ms(p.rtt_ms)
                } else {
                    "—".into()
                },
                ok: p.success,
                response: p.response.clone(),
            })
            .collect(),
        sent: summary.sent,
        received: summary.received,
        loss: format!("{:.0} %", summary.loss_pct),
        rtt_line,
        bars,
        chart_w: CHART_W as u32,
        chart_h: CHART_H as u32,
        chart_label: format!(
            "Round-trip time of {} probes, {} answered, longest {} ms",
            summary.sent,
            summary.received,
            fmt_ms(max)
        ),
        max_label: format!("{} ms", fmt_ms(max)),
    }
}

pub struct HopRow {
    pub hop: u32,
    pub address: String,
    pub rtts: Vec<String>,
    pub reached: bool,
}

pub struct TraceView {
    pub target: String,
    pub resolved: String,
    pub probes: Vec<usize>,
    pub rows: Vec<HopRow>,
    pub reached: bool,
}

fn trace_view(r: &NetworkDiagResult, hops: &[TracerouteHop]) -> TraceView {
    let probes = hops.iter().map(|h| h.rtt_ms.len()).max().unwrap_or(0);
    TraceView {
        target: r.target.clone(),
        resolved: resolved_if_new(r),
        probes: (1..=probes).collect(),
        rows: hops
            .iter()
            .map(|h| HopRow {
                hop: h.hop,
                address: h.address.clone().unwrap_or_else(|| "*".into()),
                rtts: (0..probes)
                    .map(|i| match h.rtt_ms.get(i).copied().flatten() {
                        Some(ms) => format!("{} ms", fmt_ms(ms)),
                        None => "*".into(),
                    })
                    .collect(),
                reached: h.reached,
            })
            .collect(),
        reached: hops.iter().any(|h| h.reached),
    }
}

pub struct ConnectView {
    pub outcome: String,
    pub ok: bool,
    pub address: String,
    pub latency: String,
    pub error: String,
}

fn connect_view(c: &ConnectResult) -> ConnectView {
    ConnectView {
        outcome: c.outcome.clone().unwrap_or_else(|| {
            if c.success {
                "connected".into()
            } else {
                "failed".into()
            }
        }),
        ok: c.success,
        address: c.address.clone(),
        latency: c
            .latency_ms
            .map(|l| format!("{} ms", fmt_ms(l)))
            .unwrap_or_default(),
        error: c.error.clone().unwrap_or_default(),
    }
}

pub struct NetRow {
    pub proto: String,
    pub local: String,
    pub remote: String,
    pub state: String,
    pub process: String,
    pub user: String,
}

pub struct NetstatView {
    pub rows: Vec<NetRow>,
    /// Sockets per state, most common first.
    pub states: Vec<(String, usize)>,
}

fn netstat_view(entries: &[NetstatEntry]) -> NetstatView {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        let state = if e.state.is_empty() { "—" } else { &e.state };
        *counts.entry(state.to_owned()).or_default() += 1;
    }
    let mut states: Vec<(String, usize)> = counts.into_iter().collect();
    states.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    NetstatView {
        rows: entries
            .iter()
            .map(|e| NetRow {
                proto: e.proto.clone(),
                local: endpoint(&e.local_addr, e.local_port),
                remote: endpoint(&e.remote_addr, e.remote_port),
                state: if e.state.is_empty() {
                    "—".into()
                } else {
                    e.state.clone()
                },
                process: match (e.pid, &e.process_name) {
                    (Some(pid), Some(name)) => format!("{pid}/{name}"),
                    (Some(pid), None) => pid.to_string(),
                    (None, Some(name)) => name.clone(),
                    (None, None) => "—".into(),
                },
                user: if e.user.is_empty() {
                    "—".into()
                } else {
                    e.user.clone()
                },
            })
            .collect(),
        states,
    }
}

pub struct SizeRow {
    pub path: String,
    pub size: String,
    pub width: String,
    pub share: String,
    pub count: u64,
}

pub struct DiskView {
    pub root: String,
    pub total: String,
    pub scanned_dirs: u64,
    pub scanned_files: u64,
    pub error_count: u64,
    pub duration: String,
    pub scanned_at: String,
    pub partial: bool,
    pub partial_reason: String,
    /// Largest directories, then largest files.
    pub tables: Vec<SizeTable>,
    pub skipped_mounts: Vec<String>,
    pub errors: Vec<PathError>,
    /// `first 20 of 130` when the agent sent only some unreadable entries.
    pub errors_note: String,
}

pub struct SizeTable {
    pub heading: &'static str,
    pub class: &'static str,
    pub rows: Vec<SizeRow>,
}

/// Width of the horizontal bars' viewBox.
const HBAR_FULL: f64 = 100.0;

fn size_rows(list: &[PathUsage], total: u64) -> Vec<SizeRow> {
    let mut list = list.to_vec();
    list.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let sizes: Vec<u64> = list.iter().map(|p| p.size).collect();
    bar_widths(&sizes, HBAR_FULL)
        .into_iter()
        .zip(list)
        .map(|(w, p)| SizeRow {
            size: format::bytes(p.size as f64),
            width: format!("{w:.1}"),
            share: if total > 0 {
                format::pct(p.size as f64 * 100.0 / total as f64)
            } else {
                String::new()
            },
            count: p.count,
            path: p.path,
        })
        .collect()
}

fn disk_view(r: &DiskUsageReport) -> DiskView {
    DiskView {
        root: r.root.clone(),
        total: if r.total_size > 0 {
            format::bytes(r.total_size as f64)
        } else {
            "—".into()
        },
        scanned_dirs: r.scanned_dirs,
        scanned_files: r.scanned_files,
        error_count: r.error_count,
        duration: fmt_elapsed(chrono::Duration::milliseconds(
            i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
        )),
        scanned_at: format::time(r.scanned_at),
        partial: r.partial,
        partial_reason: r.partial_reason.clone().unwrap_or_default(),
        tables: vec![
            SizeTable {
                heading: "Largest directories",
                class: "disk-dirs",
                rows: size_rows(&r.top_dirs, r.total_size),
            },
            SizeTable {
                heading: "Largest files",
                class: "disk-files",
                rows: size_rows(&r.top_files, r.total_size),
            },
        ],
        skipped_mounts: r.skipped_mounts.clone(),
        errors: r.errors.clone(),
        errors_note: if r.error_count > r.errors.len() as u64 && !r.errors.is_empty() {
            format!("first {} of {}", r.errors.len(), r.error_count)
        } else {
            String::new()
        },
    }
}

pub struct LogRow {
    pub time: String,
    pub iso: String,
    pub level: &'static str,
    pub rank: u8,
    pub source: String,
    pub message: String,
}

pub struct LogsView {
    pub rows: Vec<LogRow>,
    /// Entries per level present, most severe first.
    pub counts: Vec<(&'static str, usize)>,
    /// The level filter's choices: name and rank.
    pub levels: Vec<(&'static str, u8)>,
}

const LEVELS: [LogLevel; 8] = [
    LogLevel::Debug,
    LogLevel::Info,
    LogLevel::Notice,
    LogLevel::Warning,
    LogLevel::Error,
    LogLevel::Critical,
    LogLevel::Alert,
    LogLevel::Emergency,
];

/// 0 (debug) to 7 (emergency): the client-side filter keeps rows at or
/// above the chosen rank.
fn level_rank(l: LogLevel) -> u8 {
    LEVELS.iter().position(|x| *x == l).unwrap_or(0) as u8
}

fn logs_view(entries: &[LogEntry]) -> LogsView {
    let mut counts = [0usize; 8];
    let rows = entries
        .iter()
        .map(|e| {
            let rank = level_rank(e.level);
            counts[rank as usize] += 1;
            let mut source = e.source.clone();
            if let Some(p) = &e.process_name {
                if *p != e.source {
                    source = if source.is_empty() {
                        p.clone()
                    } else {
                        format!("{source} · {p}")
                    };
                }
            }
            if let Some(pid) = e.pid {
                source.push_str(&format!("[{pid}]"));
            }
            LogRow {
                time: format::time(e.timestamp),
                iso: e.timestamp.to_rfc3339(),
                level: level_name(e.level),
                rank,
                source,
                message: e.message.clone(),
            }
        })
        .collect();
    LogsView {
        rows,
        counts: LEVELS
            .iter()
            .rev()
            .filter_map(|l| {
                let n = counts[level_rank(*l) as usize];
                (n > 0).then(|| (level_name(*l), n))
            })
            .collect(),
        levels: LEVELS
            .iter()
            .skip(1)
            .map(|l| (level_name(*l), level_rank(*l)))
            .collect(),
    }
}

// ------------------------------------------------------------------ fragments

/// A run's status, and once it ended, its result.
#[derive(Template)]
#[template(path = "diag_run.html")]
pub struct RunView {
    pub id: String,
    pub command_type: String,
    pub status: &'static str,
    pub is_final: bool,
    pub title: String,
    pub requested_by: String,
    pub created: String,
    pub created_iso: String,
    pub status_text: String,
    pub error: Option<String>,
    pub error_hint: Option<String>,
    pub expired: Option<String>,
    /// Why the result is shown only raw.
    pub note: Option<String>,
    pub ping: Option<PingView>,
    pub trace: Option<TraceView>,
    pub connect: Option<ConnectView>,
    pub netstat: Option<NetstatView>,
    pub disk: Option<DiskView>,
    pub mounts: Option<Vec<MountEntry>>,
    pub logs: Option<LogsView>,
    /// A tool's own output, when the agent sent one.
    pub tool_output: Option<String>,
    pub raw_json: Option<String>,
    pub raw_truncated: bool,
}

fn decode<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, String> {
    T::deserialize(v).map_err(|e| e.to_string())
}

/// Fills the result views from a finished command's payload.
fn fill_result(view: &mut RunView, record: &CommandRecord) {
    let Some(result) = record.result.as_ref().filter(|r| !r.is_null()) else {
        return;
    };
    let outcome: Result<(), String> = match CommandType::parse(&record.command_type) {
        Some(CommandType::NetworkDiag) => decode::<NetworkDiagResult>(result).map(|r| {
            view.tool_output = r.raw_output.clone().filter(|o| !o.trim().is_empty());
            match r.action {
                NetworkAction::Ping => {
                    view.ping = Some(ping_view(&r, r.ping_results.as_deref().unwrap_or(&[])))
                }
                NetworkAction::Traceroute => {
                    view.trace = Some(trace_view(&r, r.hops.as_deref().unwrap_or(&[])))
                }
                NetworkAction::Connect => view.connect = r.connect.as_ref().map(connect_view),
                NetworkAction::Netstat => {
                    view.netstat = Some(netstat_view(r.netstat.as_deref().unwrap_or(&[])))
                }
            }
        }),
        // Without a path, DISK_USAGE answers with the mounts.
        Some(CommandType::DiskUsage) if result.is_array() => {
            decode::<Vec<MountEntry>>(result).map(|m| view.mounts = Some(m))
        }
        Some(CommandType::DiskUsage) => {
            decode::<DiskUsageReport>(result).map(|r| view.disk = Some(disk_view(&r)))
        }
        Some(CommandType::ListMounts) => {
            decode::<Vec<MountEntry>>(result).map(|m| view.mounts = Some(m))
        }
        Some(CommandType::FetchLogs) => {
            decode::<Vec<LogEntry>>(result).map(|l| view.logs = Some(logs_view(&l)))
        }
        Some(CommandType::RestartAgent) | None => Ok(()),
    };
    if let Err(e) = outcome {
        view.note = Some(format!(
            "This result is not in the shape this server knows ({e}); here it is as the agent sent it."
        ));
    }
}

fn raw_json(value: &serde_json::Value) -> (String, bool) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    if text.len() <= RAW_JSON_MAX_CHARS {
        return (text, false);
    }
    let mut cut = RAW_JSON_MAX_CHARS;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (text[..cut].to_owned(), true)
}

/// What an agent's error means when its configuration refuses diagnostics.
fn error_hint(error: &str) -> Option<String> {
    (error.contains("disabled on this agent")).then(|| {
        "This agent's configuration refuses it: `[commands] enabled = false` turns every \
         diagnostic off, `[commands] disabled = [...]` single types. Change the agent's config \
         file on that host and restart the agent to allow it."
            .to_owned()
    })
}

pub fn run_view(record: &CommandRecord, now: DateTime<Utc>) -> RunView {
    let status = status_name(record.status);
    let since = |t: DateTime<Utc>| format::duration_secs((now - t).num_seconds().max(0) as f64);
    let ended = record.completed_at.unwrap_or(now);
    let status_text = match record.status {
        CommandStatus::Queued => format!(
            "queued — waiting for the agent to pick it up ({} so far)",
            since(record.created_at)
        ),
        CommandStatus::Delivered => format!(
            "running on the agent ({} so far)",
            since(record.delivered_at.unwrap_or(record.created_at))
        ),
        CommandStatus::Done => format!("done in {}", fmt_elapsed(ended - record.created_at)),
        CommandStatus::Failed => format!("failed after {}", fmt_elapsed(ended - record.created_at)),
        CommandStatus::Expired => "expired — never picked up".to_owned(),
    };
    let mut view = RunView {
        id: record.id.clone(),
        command_type: record.command_type.clone(),
        status,
        is_final: record.status.is_final(),
        title: describe(&record.command_type, &record.payload),
        requested_by: record.requested_by.clone(),
        created: format::time(record.created_at),
        created_iso: record.created_at.to_rfc3339(),
        status_text,
        error: None,
        error_hint: None,
        expired: None,
        note: None,
        ping: None,
        trace: None,
        connect: None,
        netstat: None,
        disk: None,
        mounts: None,
        logs: None,
        tool_output: None,
        raw_json: None,
        raw_truncated: false,
    };
    match record.status {
        CommandStatus::Failed => {
            let e = record
                .error
                .clone()
                .unwrap_or_else(|| "the agent gave no reason".into());
            view.error_hint = error_hint(&e);
            view.error = Some(e);
        }
        CommandStatus::Expired => {
            view.expired = Some(format!(
                "The agent did not pick this command up in time: it expired {} after it was queued. \
                 The agent may be offline or not polling for commands; run it again once it is back.",
                format::duration_secs((record.expires_at - record.created_at).num_seconds().max(0) as f64)
            ));
        }
        _ => {}
    }
    if record.status == CommandStatus::Done {
        fill_result(&mut view, record);
    }
    if let Some(result) = record.result.as_ref().filter(|r| !r.is_null()) {
        let (text, truncated) = raw_json(result);
        view.raw_json = Some(text);
        view.raw_truncated = truncated;
    }
    view
}

/// A 4xx/5xx answer for `#diag-result` (app.js shows its `.error-message`).
#[derive(Template)]
#[template(path = "diag_error.html")]
struct ErrorFragment {
    status: u16,
    message: String,
}

fn error_fragment(error: AppError) -> Response {
    let status = error.status();
    let message = match &error {
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "diagnostics request failed");
            "internal server error (the server log has the cause)".to_owned()
        }
        other => other.to_string(),
    };
    match render(&ErrorFragment {
        status: status.as_u16(),
        message,
    }) {
        Ok(r) => (status, r).into_response(),
        Err(e) => error_page(e),
    }
}

fn fragment(result: Result<Response, AppError>) -> PageResult {
    PageResult(Ok(result.unwrap_or_else(error_fragment)))
}

fn with_trigger(mut response: Response, event: &'static str) -> Response {
    response
        .headers_mut()
        .insert("hx-trigger", HeaderValue::from_static(event));
    response
}

// ------------------------------------------------------------------ panel

pub struct RecentRow {
    pub id: String,
    pub what: String,
    pub type_name: String,
    pub status: &'static str,
    pub requested_by: String,
    pub ago: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "diag_recent.html")]
pub struct RecentList {
    pub rows: Vec<RecentRow>,
}

async fn recent_list(
    state: &AppState,
    agent_id: &str,
    now: DateTime<Utc>,
) -> Result<RecentList, AppError> {
    let records = state.store.list_commands(agent_id, RECENT_LIMIT).await?;
    Ok(RecentList {
        rows: records
            .into_iter()
            .map(|r| RecentRow {
                what: describe(&r.command_type, &r.payload),
                status: status_name(r.status),
                ago: format::ago(Some(r.created_at), now),
                at: format::time(r.created_at),
                requested_by: r.requested_by,
                type_name: r.command_type,
                id: r.id,
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "diag_panel.html")]
struct PanelFragment {
    agent_id: String,
    hostname: String,
    v: &'static str,
    notice: Option<String>,
    levels: [&'static str; 8],
    recent: RecentList,
}

async fn agent_or_404(
    state: &AppState,
    agent_id: &str,
) -> Result<spectra_store::AgentRecord, AppError> {
    state
        .store
        .get_agent(agent_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("agent {agent_id} not found")))
}

/// `GET /ui/hosts/{id}/diagnostics`
async fn panel(
    State(state): State<AppState>,
    _caller: Caller,
    Path(agent_id): Path<String>,
) -> PageResult {
    let now = Utc::now();
    fragment(
        async {
            let agent = agent_or_404(&state, &agent_id).await?;
            let ttl = format::duration_secs(state.commands.timings().ttl.as_secs_f64());
            let notice = match (agent.state, compute_status(&agent, now, state.thresholds())) {
                (AgentState::Pending, _) => Some(
                    "This agent awaits approval: an admin must approve it before it can run diagnostics."
                        .to_owned(),
                ),
                (AgentState::Revoked, _) => Some(
                    "This agent's credential was revoked: it cannot run diagnostics.".to_owned(),
                ),
                (_, AgentStatus::Offline | AgentStatus::Stale) => Some(format!(
                    "This agent was last seen {}: commands wait in the queue for up to {ttl} and expire if it does not come back.",
                    format::ago(agent.last_seen, now)
                )),
                _ => None,
            };
            render(&PanelFragment {
                recent: recent_list(&state, &agent.id, now).await?,
                agent_id: agent.id,
                hostname: agent.hostname,
                v: asset_version(),
                notice,
                levels: LEVEL_NAMES,
            })
        }
        .await,
    )
}

/// `GET /ui/hosts/{id}/diagnostics/recent`
async fn recent(
    State(state): State<AppState>,
    _caller: Caller,
    Path(agent_id): Path<String>,
) -> PageResult {
    fragment(
        async {
            let agent = agent_or_404(&state, &agent_id).await?;
            render(&recent_list(&state, &agent.id, Utc::now()).await?)
        }
        .await,
    )
}

/// `POST /ui/hosts/{id}/diagnostics/{kind}`
async fn run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path((agent_id, kind)): Path<(String, String)>,
    form: Result<Form<DiagForm>, FormRejection>,
) -> PageResult {
    let Some(kind) = Kind::parse(&kind) else {
        return fragment(Err(AppError::NotFound(format!(
            "no diagnostic named `{}` (ping, traceroute, connect, netstat, disk, mounts, logs)",
            kind.chars().take(32).collect::<String>()
        ))));
    };
    let actor = principal.actor(ip.0);
    let request = match form {
        Ok(Form(form)) => build_request(kind, &form),
        Err(e) => Err(bad(format!("the form could not be read: {e}"))),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            // Refused before the queue: audited as the API audits a request
            // it could not parse.
            state
                .commands
                .audit_refusal(
                    &actor,
                    Some(&agent_id),
                    kind.command_type().as_str(),
                    &e.to_string(),
                )
                .await;
            return fragment(Err(e));
        }
    };
    // Validation, per-agent limits and the audit entry: the command
    // service, as for `POST /api/v1/agents/{id}/commands`.
    let result = match state.commands.queue(&agent_id, &request, &actor).await {
        Ok(record) => render(&run_view(&record, Utc::now()))
            .map(|r| with_trigger((StatusCode::ACCEPTED, r).into_response(), EVENT_QUEUED)),
        Err(e) => Err(e.into()),
    };
    fragment(result)
}

#[derive(Debug, Default, Deserialize)]
pub struct PollQuery {
    /// Set by the run's own re-poll: a final answer then tells the page.
    #[serde(default)]
    pub poll: Option<String>,
}

/// `GET /ui/commands/{id}`
async fn command_fragment(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PollQuery>,
) -> PageResult {
    fragment(
        async {
            let record = state
                .store
                .get_command(&id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("command {id} not found")))?;
            let response = render(&run_view(&record, Utc::now()))?;
            Ok(if q.poll.is_some() && record.status.is_final() {
                with_trigger(response, EVENT_ENDED)
            } else {
                response
            })
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A form as the browser sends it (every value a string).
    fn form(pairs: &[(&str, &str)]) -> DiagForm {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).unwrap()
    }

    fn payload(kind: Kind, pairs: &[(&str, &str)]) -> serde_json::Value {
        let r = build_request(kind, &form(pairs)).unwrap();
        r.validate().unwrap();
        assert_eq!(r.command_type(), kind.command_type());
        r.payload()
    }

    fn error(kind: Kind, pairs: &[(&str, &str)]) -> String {
        match build_request(kind, &form(pairs)) {
            Err(e) => e.to_string(),
            Ok(r) => r.validate().unwrap_err().to_string(),
        }
    }

    #[test]
    fn ping_form_builds_the_ping_payload() {
        assert_eq!(
            payload(
                Kind::Ping,
                &[
                    ("target", " example.com "),
                    ("count", "3"),
                    ("interval_ms", "500")
                ]
            ),
            json!({"action": "ping", "target": "example.com", "count": 3, "interval_ms": 500})
        );
        assert_eq!(
            payload(Kind::Ping, &[("target", "10.0.0.1"), ("count", "")]),
            json!({"action": "ping", "target": "10.0.0.1"})
        );
    }

    #[test]
    fn every_kind_builds_its_command() {
        assert_eq!(
            payload(
                Kind::Traceroute,
                &[
                    ("target", "1.1.1.1"),
                    ("max_hops", "20"),
                    ("protocol", "icmp")
                ]
            ),
            json!({"action": "traceroute", "target": "1.1.1.1", "max_hops": 20, "protocol": "icmp"})
        );
        assert_eq!(
            payload(Kind::Connect, &[("host", "db.lan"), ("port", "5432")]),
            json!({"action": "connect", "target": "db.lan", "port": 5432})
        );
        assert_eq!(payload(Kind::Netstat, &[]), json!({"action": "netstat"}));
        assert_eq!(
            payload(Kind::Disk, &[("path", "/var"), ("top_n", "15")]),
            json!({"path": "/var", "top_n": 15})
        );
        assert_eq!(payload(Kind::Mounts, &[]), json!({}));
        let logs = payload(
            Kind::Logs,
            &[
                ("min_level", "warning"),
                ("since", "2026-11-25T10:00:00Z"),
                ("unit", "nginx.service"),
                ("grep", " timeout"),
                ("max_entries", "200"),
                ("container", ""),
            ],
        );
        assert_eq!(
            logs,
            json!({"min_level": "WARNING", "since": "2026-11-25T10:00:00Z", "unit": "nginx.service",
                   "grep": " timeout", "max_entries": 200})
        );
    }

    #[test]
    fn hostile_and_out_of_range_input_is_refused_with_the_reason() {
        assert!(error(Kind::Ping, &[("target", ";rm -rf /")]).contains("not a hostname or IP"));
        assert!(error(Kind::Ping, &[]).contains("target"));
        assert!(error(Kind::Ping, &[("target", "x"), ("count", "many")]).contains("count"));
        assert_eq!(
            error(Kind::Connect, &[("host", "db"), ("port", "70000")]),
            "port must be between 1 and 65535, got 70000"
        );
        assert!(error(Kind::Connect, &[("host", "db")]).contains("needs a port"));
        assert!(error(Kind::Disk, &[("path", "var/log")]).contains("must be absolute"));
        assert!(error(Kind::Disk, &[]).contains("absolute path"));
        assert_eq!(
            error(Kind::Traceroute, &[("target", "a"), ("max_hops", "300")]),
            "max_hops must be at most 64, got 300"
        );
        assert!(
            error(Kind::Traceroute, &[("target", "a"), ("protocol", "tcp")])
                .contains("udp or icmp")
        );
        assert!(error(Kind::Logs, &[("min_level", "loud")]).contains("min_level"));
        assert!(error(Kind::Logs, &[("since", "yesterday")]).contains("since"));
        assert!(error(Kind::Logs, &[("unit", "-x;id")]).contains("unit"));
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("format"), None);
    }

    #[test]
    fn vertical_bars_scale_to_the_largest_value() {
        let bars = vertical_bars(&[Some(10.0), Some(5.0), None, Some(0.0)], 400.0, 80.0);
        assert_eq!(bars.len(), 4);
        // Slots of 100, 20 % gap split on both sides.
        assert_eq!(bars[0].x, 10.0);
        assert_eq!(bars[0].width, 80.0);
        assert_eq!(bars[1].x, 110.0);
        // The largest fills the height; half is half; y is measured down.
        assert_eq!((bars[0].y, bars[0].height), (0.0, 80.0));
        assert_eq!((bars[1].y, bars[1].height), (40.0, 40.0));
        // Lost: full height, marked.
        assert!(bars[2].lost && bars[2].height == 80.0 && bars[2].y == 0.0);
        // Zero still shows a sliver.
        assert_eq!((bars[3].y, bars[3].height), (79.0, 1.0));
        assert!(!bars[3].lost);
    }

    #[test]
    fn vertical_bars_handle_empty_and_all_lost() {
        assert!(vertical_bars(&[], 400.0, 80.0).is_empty());
        assert!(vertical_bars(&[Some(1.0)], 0.0, 80.0).is_empty());
        let lost = vertical_bars(&[None, None], 100.0, 10.0);
        assert!(lost.iter().all(|b| b.lost && b.height == 10.0));
        let nan = vertical_bars(&[Some(f64::NAN), Some(2.0)], 100.0, 10.0);
        assert!(nan[0].lost, "a non-finite value is no answer");
        assert_eq!(nan[1].height, 10.0);
    }

    #[test]
    fn horizontal_bars_are_relative_to_the_largest() {
        assert_eq!(
            bar_widths(&[200, 100, 0, 1], 100.0),
            vec![100.0, 50.0, 0.0, 0.5]
        );
        assert_eq!(bar_widths(&[0, 0], 100.0), vec![0.0, 0.0]);
        assert!(bar_widths(&[], 100.0).is_empty());
    }

    fn probe(seq: u32, rtt: Option<f64>) -> PingResult {
        PingResult {
            seq,
            success: rtt.is_some(),
            rtt: rtt.map_or(0, |ms| (ms * 1e6) as u64),
            rtt_ms: rtt.unwrap_or(0.0),
            ttl: rtt.map(|_| 57),
            response: if rtt.is_some() { "reply" } else { "timeout" }.into(),
            peer: "1.1.1.1".into(),
        }
    }

    #[test]
    fn ping_summary_matches_iputils_maths() {
        let s = summarize_ping(&[
            probe(1, Some(10.0)),
            probe(2, Some(20.0)),
            probe(3, None),
            probe(4, Some(30.0)),
        ]);
        assert_eq!((s.sent, s.received), (4, 3));
        assert_eq!(s.loss_pct, 25.0);
        assert_eq!(
            (s.min_ms, s.avg_ms, s.max_ms),
            (Some(10.0), Some(20.0), Some(30.0))
        );
        // sqrt(mean(x²) - mean²) = sqrt(466.67 - 400) = 8.165
        assert!((s.mdev_ms.unwrap() - 8.165).abs() < 0.001);
        let none = summarize_ping(&[probe(1, None)]);
        assert_eq!((none.loss_pct, none.avg_ms), (100.0, None));
    }

    #[test]
    fn descriptions_name_the_command_and_its_target() {
        assert_eq!(
            describe(
                "NETWORK_DIAG",
                &json!({"action": "ping", "target": "1.1.1.1"})
            ),
            "ping 1.1.1.1"
        );
        assert_eq!(
            describe(
                "NETWORK_DIAG",
                &json!({"action": "connect", "target": "db", "port": 5432})
            ),
            "connect db port 5432"
        );
        assert_eq!(
            describe("DISK_USAGE", &json!({"path": "/var"})),
            "disk usage /var"
        );
        assert_eq!(describe("LIST_MOUNTS", &json!({})), "list mounts");
        assert_eq!(
            describe("FETCH_LOGS", &json!({"min_level": "ERROR"})),
            "logs ≥ error"
        );
        assert_eq!(describe("FUTURE_THING", &json!({})), "FUTURE_THING");
    }

    #[test]
    fn netstat_counts_states_most_common_first() {
        let e = |state: &str, port: u16| NetstatEntry {
            proto: "tcp".into(),
            local_addr: "::".into(),
            local_port: port,
            remote_addr: "::".into(),
            remote_port: 0,
            state: state.into(),
            user: "root".into(),
            pid: Some(10),
            process_name: Some("sshd".into()),
        };
        let v = netstat_view(&[e("ESTABLISHED", 22), e("LISTEN", 22), e("ESTABLISHED", 22)]);
        assert_eq!(
            v.states,
            vec![("ESTABLISHED".to_owned(), 2), ("LISTEN".to_owned(), 1)]
        );
        assert_eq!(v.rows[0].local, "[::]:22");
        assert_eq!(v.rows[0].remote, "[::]:*");
        assert_eq!(v.rows[0].process, "10/sshd");
    }

    #[test]
    fn traceroute_rows_pad_missing_probes_with_stars() {
        let r = NetworkDiagResult {
            action: NetworkAction::Traceroute,
            target: "x".into(),
            ping_results: None,
            netstat: None,
            hops: None,
            connect: None,
            raw_output: None,
            ping_summary: None,
            resolved: None,
        };
        let hops = vec![
            TracerouteHop {
                hop: 1,
                address: Some("10.0.0.1".into()),
                rtt_ms: vec![Some(1.5), None, Some(2.0)],
                reached: false,
            },
            TracerouteHop {
                hop: 2,
                address: None,
                rtt_ms: vec![None],
                reached: false,
            },
        ];
        let v = trace_view(&r, &hops);
        assert_eq!(v.probes, vec![1, 2, 3]);
        assert_eq!(v.rows[0].rtts, vec!["1.500 ms", "*", "2.000 ms"]);
        assert_eq!(v.rows[1].address, "*");
        assert_eq!(v.rows[1].rtts, vec!["*", "*", "*"]);
        assert!(!v.reached);
    }

    #[test]
    fn raw_json_is_cut_on_a_character_boundary() {
        let big = json!("é".repeat(RAW_JSON_MAX_CHARS));
        let (text, cut) = raw_json(&big);
        assert!(cut);
        assert!(text.len() <= RAW_JSON_MAX_CHARS);
        let (small, cut) = raw_json(&json!({"a": 1}));
        assert!(!cut && small.contains("\"a\": 1"));
    }

    #[test]
    fn a_disabled_agent_error_gets_a_hint() {
        assert!(error_hint("diagnostics are disabled on this agent").is_some());
        assert!(error_hint("DISK_USAGE is disabled on this agent by its configuration").is_some());
        assert!(error_hint("path outside the allowed roots").is_none());
    }
}
