//! Command endpoints for admins: the seed's `/admin/trigger_*` (SPEC §4,
//! kept as written), `POST /api/v1/agents/{id}/commands`, and reading
//! commands (`GET /api/v1/commands/{id}[?wait=30s]`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use spectra_protocol::{
    CommandRequest, DiskUsageRequest, LogLevel, LogRequest, NetworkAction, NetworkDiagRequest,
};
use spectra_store::CommandRecord;

use super::agent_api::{parse_wait, read_body_capped, MAX_JSON_BODY_BYTES};
use super::error::AppError;
use super::extract::{parse_json, AdminAuth, QueryParams};
use crate::services::agents::{resolve_agent, ResolveError};
use crate::state::AppState;

/// Longest `wait=` on `GET /api/v1/commands/{id}`.
pub const MAX_COMMAND_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub struct Target {
    hostname: Option<String>,
    agent_id: Option<String>,
}

async fn queue_for_target(
    state: &AppState,
    target: &Target,
    request: CommandRequest,
    by: &AdminAuth,
) -> Result<Response, AppError> {
    // Validate first: a bad request is a 400 whatever the target.
    request
        .validate()
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let agent = resolve_agent(
        state.store.as_ref(),
        target.agent_id.as_deref(),
        target.hostname.as_deref(),
    )
    .await
    .map_err(|e| match e {
        ResolveError::Missing => AppError::BadRequest(e.to_string()),
        ResolveError::NotFound(_) => AppError::NotFound(e.to_string()),
        ResolveError::Ambiguous { .. } => AppError::Conflict(e.to_string()),
        ResolveError::Store(s) => s.into(),
    })?;
    queue_for_agent(state, &agent.id, request, by).await
}

async fn queue_for_agent(
    state: &AppState,
    agent_id: &str,
    request: CommandRequest,
    by: &AdminAuth,
) -> Result<Response, AppError> {
    let record = state.commands.queue(agent_id, &request, &by.0.name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "command_id": record.id, "status": record.status })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    #[serde(flatten)]
    target: Target,
    min_level: Option<String>,
    unit: Option<String>,
    max_entries: Option<String>,
    grep: Option<String>,
    container: Option<String>,
}

/// `POST /admin/trigger_logs?hostname=`
pub async fn trigger_logs(
    State(state): State<AppState>,
    auth: AdminAuth,
    QueryParams(q): QueryParams<LogsQuery>,
) -> Result<Response, AppError> {
    let min_level = match q.min_level.as_deref() {
        None | Some("") => None,
        Some(l) => Some(LogLevel::parse(l).ok_or_else(|| AppError::BadRequest(format!("min_level: unknown level `{l}` (DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY)")))?),
    };
    let request = CommandRequest::FetchLogs(LogRequest {
        min_level,
        since: None,
        unit: q.unit,
        max_entries: parse_opt_number::<u32>("max_entries", q.max_entries.as_deref())?,
        grep: q.grep,
        container: q.container.filter(|c| !c.is_empty()),
    });
    queue_for_target(&state, &q.target, request, &auth).await
}

#[derive(Debug, Deserialize)]
pub struct DiskQuery {
    #[serde(flatten)]
    target: Target,
    path: Option<String>,
    top_n: Option<String>,
}

/// `POST /admin/trigger_disk?hostname=&path=&top_n=`
pub async fn trigger_disk(
    State(state): State<AppState>,
    auth: AdminAuth,
    QueryParams(q): QueryParams<DiskQuery>,
) -> Result<Response, AppError> {
    // `serde(flatten)` hands numbers over as strings: parse them here.
    let top_n = parse_opt_number::<u32>("top_n", q.top_n.as_deref())?;
    let request = CommandRequest::DiskUsage(DiskUsageRequest {
        path: q.path.filter(|p| !p.is_empty()),
        top_n,
    });
    queue_for_target(&state, &q.target, request, &auth).await
}

#[derive(Debug, Deserialize)]
pub struct NetworkQuery {
    #[serde(flatten)]
    target: Target,
    action: Option<String>,
    #[serde(rename = "target")]
    diag_target: Option<String>,
    count: Option<String>,
    port: Option<String>,
}

/// `POST /admin/trigger_network?hostname=&action=&target=` (also `count`, `port`).
pub async fn trigger_network(
    State(state): State<AppState>,
    auth: AdminAuth,
    QueryParams(q): QueryParams<NetworkQuery>,
) -> Result<Response, AppError> {
    let action = q.action.as_deref().unwrap_or("");
    let action = NetworkAction::parse(action).ok_or_else(|| {
        AppError::BadRequest(format!(
            "action: unknown action `{}` (ping, connect, netstat, traceroute)",
            action.chars().take(64).collect::<String>()
        ))
    })?;
    let mut diag = NetworkDiagRequest::new(action, q.diag_target.filter(|t| !t.is_empty()));
    diag.count = parse_opt_number::<u32>("count", q.count.as_deref())?;
    diag.port = parse_opt_number::<u16>("port", q.port.as_deref())?;
    let request = CommandRequest::NetworkDiag(diag);
    queue_for_target(&state, &q.target, request, &auth).await
}

fn parse_opt_number<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>, AppError>
where
    T::Err: std::fmt::Display,
{
    match value {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<T>().map(Some).map_err(|e| {
            AppError::BadRequest(format!(
                "{name}: `{}`: {e}",
                v.chars().take(32).collect::<String>()
            ))
        }),
    }
}

#[derive(Debug, Deserialize)]
struct CommandBody {
    #[serde(rename = "type")]
    command_type: String,
    #[serde(default)]
    payload: serde_json::Value,
}

/// `POST /api/v1/agents/{id}/commands` with `{"type", "payload"}`.
pub async fn create_command(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = read_body_capped(&headers, body, MAX_JSON_BODY_BYTES).await?;
    let body: CommandBody = parse_json(&body)?;
    let request = CommandRequest::from_parts(&body.command_type, &body.payload)
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    queue_for_agent(&state, &agent_id, request, &auth).await
}

#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

/// `GET /api/v1/commands/{id}[?wait=30s]`
pub async fn get_command(
    State(state): State<AppState>,
    _auth: AdminAuth,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<WaitQuery>,
) -> Result<Json<CommandRecord>, AppError> {
    let wait = match q.wait.as_deref() {
        None | Some("") => Duration::ZERO,
        Some(w) => parse_wait("wait", w)?.min(MAX_COMMAND_WAIT),
    };
    let record = state
        .commands
        .wait_for(&id, wait)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("command {id} not found")))?;
    Ok(Json(record))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/agents/{id}/commands` (newest first, `limit` ≤ 1000).
pub async fn list_commands(
    State(state): State<AppState>,
    _auth: AdminAuth,
    Path(agent_id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<CommandRecord>>, AppError> {
    if state.store.get_agent(&agent_id).await?.is_none() {
        return Err(AppError::NotFound(format!("agent {agent_id} not found")));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.store.list_commands(&agent_id, limit).await?))
}
