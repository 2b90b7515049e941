//! Sign-in and the fleet overview.
//!
//! - `GET /login`, `POST /login` (a plain HTML form: it works before any
//!   script loads), `POST /logout` (htmx; answers `HX-Redirect`).
//! - `GET /`: the overview. Search, status and label filters and the sort
//!   are query parameters of a GET form, so every view has a URL; htmx
//!   re-fetches the rows (`GET /ui/fleet/rows`, same parameters) every
//!   10 s and on every filter change.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use spectra_store::{AgentRecord, Role};

use super::format;
use super::{asset_version, render, Chrome, PageResult};
use crate::http::extract::{Caller, ClientIp, QueryParams};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::agents::{compute_status, AgentStatus};
use crate::services::auth::Via;
use crate::services::fleet::{glance, Glance, GLANCE_TYPES};
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::{get, post};
    const VIEWER: Access = Access::Page(Role::Viewer);
    vec![
        spec(Method::GET, "/login", Access::Public, get(login_page)),
        spec(Method::POST, "/login", Access::Public, post(login_submit)),
        spec(Method::POST, "/logout", VIEWER, post(logout)),
        spec(Method::GET, "/", VIEWER, get(fleet_page)),
        spec(Method::GET, "/ui/fleet/rows", VIEWER, get(fleet_rows)),
    ]
}

// ------------------------------------------------------------------ login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    v: &'static str,
    next: String,
    username: String,
    error: Option<String>,
    first_run_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    pub next: Option<String>,
}

/// Only a local path may follow sign-in (no open redirect to another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn first_run_hint(state: &AppState) -> Option<String> {
    let path = state
        .settings
        .data_dir
        .join(crate::first_run::CREDENTIALS_FILE);
    path.exists().then(|| path.display().to_string())
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<LoginQuery>,
) -> PageResult {
    let next = safe_next(q.next.as_deref());
    // Already signed in: straight on.
    if let Some(secret) = crate::http::routes::session_cookie(&headers) {
        if state
            .auth
            .principal_from_session(secret, state.session_policy())
            .await
            .is_ok()
        {
            return PageResult(Ok(redirect(&next)));
        }
    }
    render(&LoginPage {
        v: asset_version(),
        next,
        username: String::new(),
        error: None,
        first_run_file: first_run_hint(&state),
    })
    .into()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub next: Option<String>,
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

async fn login_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> PageResult {
    let Form(form) = match form {
        Ok(f) => f,
        Err(e) => {
            return PageResult(Err(AppError::BadRequest(format!(
                "the sign-in form was not sent as a form: {e}"
            ))))
        }
    };
    let next = safe_next(form.next.as_deref());
    match crate::http::auth::sign_in(&state, ip.0, &form.username, &form.password).await {
        Ok(signed) => {
            let mut r = redirect(&next);
            match HeaderValue::from_str(&signed.cookie) {
                Ok(v) => {
                    r.headers_mut().insert(SET_COOKIE, v);
                    PageResult(Ok(r))
                }
                Err(e) => PageResult(Err(AppError::internal(e))),
            }
        }
        Err(e) => {
            let status = e.status();
            let error = match e {
                AppError::Internal(_) => return PageResult(Err(e)),
                other => other.to_string(),
            };
            let page = LoginPage {
                v: asset_version(),
                next,
                username: form.username.chars().take(256).collect(),
                error: Some(error),
                first_run_file: first_run_hint(&state),
            };
            PageResult(render(&page).map(|r| (status, r).into_response()))
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
) -> PageResult {
    if let Via::Session { id, .. } = &principal.via {
        if let Err(e) = state.store.delete_session(id).await {
            return PageResult(Err(e.into()));
        }
        state
            .commands
            .audit()
            .record(
                &principal.actor(ip.0),
                crate::services::audit::Entry {
                    action: "logout",
                    agent_id: None,
                    target: Some(id),
                    outcome: "ok".into(),
                    detail: serde_json::Value::Null,
                },
            )
            .await;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    let cookie = crate::http::auth::session_cookie_header("", 0, state.tls_enabled());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r.headers_mut()
        .insert("hx-redirect", HeaderValue::from_static("/login"));
    PageResult(Ok(r))
}

// ------------------------------------------------------------------ fleet

/// The overview's filters and sort (query parameters).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FleetQuery {
    /// Matches hostname, OS, platform, kernel, IPs, labels and id.
    #[serde(default)]
    pub q: String,
    /// `online`, `stale`, `offline`, `pending`, `revoked`; empty: all.
    #[serde(default)]
    pub status: String,
    /// `key` or `key=value`.
    #[serde(default)]
    pub label: String,
    /// `hostname` (default), `status`, `cpu`, `memory`, `disk`, `network`,
    /// `temperature`, `uptime`, `last_seen`.
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub page: Option<usize>,
    #[serde(default)]
    pub per_page: Option<usize>,
}

pub const SORTS: &[(&str, &str)] = &[
    ("hostname", "Hostname"),
    ("status", "Status"),
    ("cpu", "CPU"),
    ("memory", "Memory"),
    ("disk", "Disk"),
    ("network", "Network"),
    ("temperature", "Temperature"),
    ("uptime", "Uptime"),
    ("last_seen", "Last seen"),
];
pub const STATUSES: &[&str] = &["online", "stale", "offline", "pending", "revoked"];
const DEFAULT_PER_PAGE: usize = 500;
const MAX_PER_PAGE: usize = 5000;

/// One host's row.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub id: String,
    pub hostname: String,
    pub status: &'static str,
    pub local: bool,
    pub os_line: String,
    pub kernel: String,
    pub ip: String,
    pub labels: Vec<(String, String)>,
    pub glance: Glance,
    pub cpu_text: String,
    pub cpu_spark: String,
    pub mem_text: String,
    pub mem_title: String,
    pub mem_spark: String,
    pub disk_text: String,
    pub disk_title: String,
    pub net_text: String,
    pub temp_text: String,
    pub temp_title: String,
    pub temp_hot: bool,
    pub uptime_text: String,
    pub last_seen_text: String,
    pub last_seen: Option<DateTime<Utc>>,
}

impl FleetRow {
    /// The disk meter's value (0-100) or none.
    pub fn disk_value(&self) -> String {
        self.glance
            .disk_pct
            .map(|p| format!("{p:.0}"))
            .unwrap_or_default()
    }
}

pub fn status_name(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Online => "online",
        AgentStatus::Stale => "stale",
        AgentStatus::Offline => "offline",
        AgentStatus::Pending => "pending",
        AgentStatus::Revoked => "revoked",
    }
}

const SPARK_W: f64 = 60.0;
const SPARK_H: f64 = 18.0;

fn os_line(a: &AgentRecord) -> String {
    let h = &a.host;
    let mut parts: Vec<&str> = Vec::new();
    for p in [&h.platform, &h.platform_ver] {
        if !p.is_empty() {
            parts.push(p);
        }
    }
    if parts.is_empty() && !h.os.is_empty() {
        parts.push(&h.os);
    }
    let mut s = parts.join(" ");
    if !h.arch.is_empty() {
        s.push_str(&format!(" · {}", h.arch));
    }
    s
}

/// One host before formatting: what filters and sorts read. The overview
/// sorts and filters every host but formats only the page it shows
/// (formatting 10,000 rows' numbers and sparklines dominated the cost).
#[derive(Debug, Clone)]
pub struct HostEntry {
    pub agent: AgentRecord,
    pub status: &'static str,
    pub os_line: String,
    pub glance: Glance,
}

/// Every host with its gauges (unfiltered).
pub async fn build_entries(
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Vec<HostEntry>, AppError> {
    let agents = state.store.list_agents().await?;
    let t = state.thresholds();
    let mut entries = Vec::with_capacity(agents.len());
    for a in agents {
        // The ingest-fed cache when it is current, else the store
        // (services::fleet explains why).
        let g = match state.trails.cached_glance(&a.id, a.last_seen) {
            Some(g) => g,
            None => {
                let latest = state.store.latest_of_types(&a.id, GLANCE_TYPES).await?;
                state.trails.refresh_gauges(&a.id, &latest, now);
                glance(&latest)
            }
        };
        entries.push(HostEntry {
            status: status_name(compute_status(&a, now, t)),
            os_line: os_line(&a),
            glance: g,
            agent: a,
        });
    }
    Ok(entries)
}

/// Formats one host's row for the table.
pub fn format_row(state: &AppState, e: HostEntry, now: DateTime<Utc>) -> FleetRow {
    let g = e.glance;
    let a = e.agent;
    let (cpu_trail, mem_trail) = state.trails.sparklines(&a.id, now);
    let opt = |v: Option<f64>, f: fn(f64) -> String| v.map(f).unwrap_or_else(|| "—".into());
    FleetRow {
        cpu_text: opt(g.cpu_pct, format::pct),
        cpu_spark: format::sparkline_points(&cpu_trail, SPARK_W, SPARK_H, 100.0),
        mem_text: opt(g.mem_pct, format::pct),
        mem_title: match (g.mem_used, g.mem_total) {
            (Some(u), Some(t)) => format!("{} of {}", format::bytes(u), format::bytes(t)),
            _ => String::new(),
        },
        mem_spark: format::sparkline_points(&mem_trail, SPARK_W, SPARK_H, 100.0),
        disk_text: opt(g.disk_pct, format::pct),
        disk_title: g
            .disk_mount
            .as_ref()
            .map(|m| format!("fullest mount: {m}"))
            .unwrap_or_default(),
        net_text: match (g.net_rx_bps, g.net_tx_bps) {
            (Some(rx), Some(tx)) => format!("↓ {} ↑ {}", format::rate(rx), format::rate(tx)),
            _ => "—".into(),
        },
        temp_text: g
            .temp_c
            .map(|t| format!("{t:.0} °C"))
            .unwrap_or_else(|| "—".into()),
        temp_title: g.temp_sensor.clone().unwrap_or_default(),
        temp_hot: g.temp_c.is_some_and(|t| t >= 80.0),
        uptime_text: opt(g.uptime_s, format::duration_secs),
        last_seen_text: format::ago(a.last_seen, now),
        last_seen: a.last_seen,
        os_line: e.os_line,
        kernel: a.host.kernel.clone(),
        ip: a.host.ips.first().cloned().unwrap_or_default(),
        labels: a.labels.into_iter().collect(),
        id: a.id,
        hostname: a.hostname,
        status: e.status,
        local: a.local,
        glance: g,
    }
}

/// Applies the query's filters and sort to the hosts.
pub fn filter_and_sort(rows: &mut Vec<HostEntry>, q: &FleetQuery) {
    let needle = q.q.trim().to_lowercase();
    if !needle.is_empty() {
        rows.retain(|r| {
            let a = &r.agent;
            a.hostname.to_lowercase().contains(&needle)
                || a.id.to_lowercase().starts_with(&needle)
                || r.os_line.to_lowercase().contains(&needle)
                || a.host.kernel.to_lowercase().contains(&needle)
                || a.host.ips.iter().any(|ip| ip.contains(&needle))
                || a.labels.iter().any(|(k, v)| {
                    k.to_lowercase().contains(&needle) || v.to_lowercase().contains(&needle)
                })
        });
    }
    if !q.status.is_empty() {
        rows.retain(|r| r.status == q.status);
    }
    let label = q.label.trim();
    if !label.is_empty() {
        let (key, value) = match label.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (label, None),
        };
        rows.retain(|r| {
            r.agent
                .labels
                .get(key)
                .is_some_and(|v| value.is_none_or(|want| v == want))
        });
    }
    let status_rank = |s: &str| STATUSES.iter().position(|x| *x == s).unwrap_or(99);
    // Metric sorts put the highest first and unknown values last.
    let desc = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    let net = |g: &Glance| match (g.net_rx_bps, g.net_tx_bps) {
        (None, None) => None,
        (rx, tx) => Some(rx.unwrap_or(0.0) + tx.unwrap_or(0.0)),
    };
    rows.sort_by(|a, b| {
        let (ga, gb) = (&a.glance, &b.glance);
        let by = match q.sort.as_str() {
            "status" => status_rank(a.status).cmp(&status_rank(b.status)),
            "cpu" => desc(ga.cpu_pct, gb.cpu_pct),
            "memory" => desc(ga.mem_pct, gb.mem_pct),
            "disk" => desc(ga.disk_pct, gb.disk_pct),
            "network" => desc(net(ga), net(gb)),
            "temperature" => desc(ga.temp_c, gb.temp_c),
            "uptime" => desc(ga.uptime_s, gb.uptime_s),
            "last_seen" => b.agent.last_seen.cmp(&a.agent.last_seen),
            _ => std::cmp::Ordering::Equal,
        };
        by.then_with(|| a.agent.hostname.cmp(&b.agent.hostname))
            .then_with(|| a.agent.id.cmp(&b.agent.id))
    });
}

/// Hosts per status, for the summary bar.
#[derive(Debug, Default)]
pub struct StatusCounts {
    pub total: usize,
    pub by_status: Vec<(&'static str, usize)>,
}

fn count_statuses(rows: &[HostEntry]) -> StatusCounts {
    let mut by: BTreeMap<usize, usize> = BTreeMap::new();
    for r in rows {
        if let Some(i) = STATUSES.iter().position(|s| *s == r.status) {
            *by.entry(i).or_default() += 1;
        }
    }
    StatusCounts {
        total: rows.len(),
        by_status: STATUSES
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, by.get(&i).copied().unwrap_or(0)))
            .collect(),
    }
}

/// Every label key=value in the fleet, for the label filter's choices.
fn all_labels(rows: &[HostEntry]) -> Vec<String> {
    let mut set = std::collections::BTreeSet::new();
    for r in rows {
        for (k, v) in &r.agent.labels {
            set.insert(format!("{k}={v}"));
        }
    }
    set.into_iter().collect()
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    q: FleetQuery,
    counts: StatusCounts,
    labels: Vec<String>,
    sorts: &'static [(&'static str, &'static str)],
    statuses: &'static [&'static str],
    body: FleetBody,
}

/// The live part: the summary line, the rows and the pager.
#[derive(Template)]
#[template(path = "fleet_rows.html")]
pub struct FleetBody {
    pub rows: Vec<FleetRow>,
    pub shown_from: usize,
    pub matched: usize,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    /// The query string without `page` (for pager links).
    pub base_query: String,
    pub generated: String,
}

fn query_string(q: &FleetQuery) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("q", &q.q),
        ("status", &q.status),
        ("label", &q.label),
        ("sort", &q.sort),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={}", format::url_encode(v)));
        }
    }
    if let Some(n) = q.per_page {
        parts.push(format!("per_page={n}"));
    }
    parts.join("&")
}

fn page_of(
    state: &AppState,
    mut rows: Vec<HostEntry>,
    q: &FleetQuery,
    total: usize,
    now: DateTime<Utc>,
) -> FleetBody {
    let per_page = q
        .per_page
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let matched = rows.len();
    let pages = matched.div_ceil(per_page).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let from = (page - 1) * per_page;
    rows.drain(..from.min(rows.len()));
    rows.truncate(per_page);
    FleetBody {
        rows: rows
            .into_iter()
            .map(|e| format_row(state, e, now))
            .collect(),
        shown_from: from + 1,
        matched,
        total,
        page,
        pages,
        base_query: query_string(q),
        generated: format::time(now),
    }
}

async fn fleet_page(
    State(state): State<AppState>,
    Caller(principal): Caller,
    QueryParams(q): QueryParams<FleetQuery>,
) -> PageResult {
    let now = Utc::now();
    let result = async {
        let mut rows = build_entries(&state, now).await?;
        let counts = count_statuses(&rows);
        let labels = all_labels(&rows);
        let total = rows.len();
        filter_and_sort(&mut rows, &q);
        let body = page_of(&state, rows, &q, total, now);
        render(&FleetPage {
            chrome: Chrome::new(&principal, "fleet", "Fleet"),
            q: q.clone(),
            counts,
            labels,
            sorts: SORTS,
            statuses: STATUSES,
            body,
        })
    }
    .await;
    result.into()
}

async fn fleet_rows(
    State(state): State<AppState>,
    _caller: Caller,
    QueryParams(q): QueryParams<FleetQuery>,
) -> PageResult {
    let now = Utc::now();
    let result = async {
        let mut rows = build_entries(&state, now).await?;
        let total = rows.len();
        filter_and_sort(&mut rows, &q);
        render(&page_of(&state, rows, &q, total, now))
    }
    .await;
    result.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spectra_protocol::HostInfo;

    fn row(
        hostname: &str,
        status: &'static str,
        cpu: Option<f64>,
        labels: &[(&str, &str)],
    ) -> HostEntry {
        HostEntry {
            agent: AgentRecord {
                id: format!("id-{hostname}"),
                hostname: hostname.into(),
                host: HostInfo {
                    hostname: hostname.into(),
                    kernel: "6.1.0".into(),
                    ips: vec!["10.0.0.1".into()],
                    ..HostInfo::default()
                },
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                state: spectra_store::AgentState::Active,
                local: false,
                created_at: Utc::now(),
                last_seen: None,
            },
            status,
            os_line: "debian 12 · x86_64".into(),
            glance: Glance {
                cpu_pct: cpu,
                ..Glance::default()
            },
        }
    }

    fn names(rows: &[HostEntry]) -> Vec<&str> {
        rows.iter().map(|r| r.agent.hostname.as_str()).collect()
    }

    #[test]
    fn filters_by_search_status_and_label() {
        let all = vec![
            row("web-01", "online", Some(10.0), &[("env", "prod")]),
            row("web-02", "offline", Some(90.0), &[("env", "staging")]),
            row("db-01", "online", None, &[("env", "prod"), ("role", "db")]),
        ];
        let run = |q: FleetQuery| {
            let mut rows = all.clone();
            filter_and_sort(&mut rows, &q);
            names(&rows)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let q = |s: &str, status: &str, label: &str| FleetQuery {
            q: s.into(),
            status: status.into(),
            label: label.into(),
            ..FleetQuery::default()
        };
        assert_eq!(run(q("WEB", "", "")), ["web-01", "web-02"]);
        assert_eq!(run(q("", "online", "")), ["db-01", "web-01"]);
        assert_eq!(run(q("", "", "env=prod")), ["db-01", "web-01"]);
        assert_eq!(run(q("", "", "role")), ["db-01"]);
        assert_eq!(run(q("staging", "", "")), ["web-02"]);
        assert_eq!(run(q("10.0.0", "", "")).len(), 3);
        assert!(run(q("", "pending", "")).is_empty());
    }

    #[test]
    fn metric_sorts_put_highest_first_and_unknown_last() {
        let mut rows = vec![
            row("a", "online", Some(10.0), &[]),
            row("b", "online", None, &[]),
            row("c", "online", Some(90.0), &[]),
        ];
        filter_and_sort(
            &mut rows,
            &FleetQuery {
                sort: "cpu".into(),
                ..FleetQuery::default()
            },
        );
        assert_eq!(names(&rows), ["c", "a", "b"]);
    }

    #[test]
    fn only_local_paths_follow_sign_in() {
        assert_eq!(safe_next(Some("/hosts/x?range=1h")), "/hosts/x?range=1h");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
