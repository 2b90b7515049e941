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
    CommandRequest, CommandType, DiskUsageRequest, LogLevel, LogRequest, NetworkAction,
    NetworkDiagRequest, TraceProtocol,
};
use spectra_store::CommandRecord;

use super::agent_api::{parse_wait, read_body_capped, MAX_JSON_BODY_BYTES};
use super::error::AppError;
use super::extract::{parse_json, Caller, ClientIp, QueryParams};
use crate::services::agents::{resolve_agent, ResolveError};
use crate::services::audit::Actor;
use crate::state::AppState;

/// Longest `wait=` on `GET /api/v1/commands/{id}`.
pub const MAX_COMMAND_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub struct Target {
    hostname: Option<String>,
    agent_id: Option<String>,
}

/// The admin caller as the audit log names them.
fn actor_of(auth: &Caller, ip: &ClientIp) -> Actor {
    auth.0.actor(ip.0)
}

/// Queues a seed trigger's request for the agent named by `target`.
/// Whatever refuses it (a malformed parameter, validation, an unknown or
/// ambiguous host, a limit) is audited with the reason before the 4xx.
async fn queue_for_target(
    state: &AppState,
    target: &Target,
    command_type: CommandType,
    request: Result<CommandRequest, AppError>,
    actor: &Actor,
) -> Result<Response, AppError> {
    let refuse = |agent_id: Option<String>, e: AppError| async move {
        state
            .commands
            .audit_refusal(
                actor,
                agent_id.as_deref(),
                command_type.as_str(),
                &e.to_string(),
            )
            .await;
        Err(e)
    };
    let resolve = || {
        resolve_agent(
            state.store.as_ref(),
            target.agent_id.as_deref(),
            target.hostname.as_deref(),
        )
    };
    // Validate first: a bad request is a 400 whatever the target; the
    // audit entry still names the agent when the target resolves.
    let request = request.and_then(|r| {
        r.validate()
            .map(|()| r)
            .map_err(|e| AppError::BadRequest(e.to_string()))
    });
    let request = match request {
        Ok(r) => r,
        Err(e) => return refuse(resolve().await.ok().map(|a| a.id), e).await,
    };
    let agent = match resolve_agent(
        state.store.as_ref(),
        target.agent_id.as_deref(),
        target.hostname.as_deref(),
    )
    .await
    {
        Ok(agent) => agent,
        Err(e) => {
            let e = match e {
                ResolveError::Missing => AppError::BadRequest(e.to_string()),
                ResolveError::NotFound(_) => AppError::NotFound(e.to_string()),
                ResolveError::Ambiguous { .. } => AppError::Conflict(e.to_string()),
                ResolveError::Store(s) => s.into(),
            };
            return refuse(target.agent_id.clone(), e).await;
        }
    };
    queue_for_agent(state, &agent.id, request, actor).await
}

async fn queue_for_agent(
    state: &AppState,
    agent_id: &str,
    request: CommandRequest,
    actor: &Actor,
) -> Result<Response, AppError> {
    let record = state.commands.queue(agent_id, &request, actor).await?;
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
    since: Option<String>,
}

/// `POST /admin/trigger_logs?hostname=` (also `min_level`, `unit`,
/// `max_entries`, `grep`, `container`, `since`: RFC 3339 or a duration back
/// from now such as `1h`).
pub async fn trigger_logs(
    State(state): State<AppState>,
    auth: Caller,
    ip: ClientIp,
    QueryParams(q): QueryParams<LogsQuery>,
) -> Result<Response, AppError> {
    let request = (|| {
        let min_level = match q.min_level.as_deref() {
            None | Some("") => None,
            Some(l) => Some(LogLevel::parse(l).ok_or_else(|| AppError::BadRequest(format!("min_level: unknown level `{}` (DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY)", l.chars().take(32).collect::<String>())))?),
        };
        Ok(CommandRequest::FetchLogs(LogRequest {
            min_level,
            since: parse_since(q.since.as_deref())?,
            unit: q.unit.clone().filter(|u| !u.is_empty()),
            max_entries: parse_opt_number::<u32>("max_entries", q.max_entries.as_deref())?,
            grep: q.grep.clone().filter(|g| !g.is_empty()),
            container: q.container.clone().filter(|c| !c.is_empty()),
        }))
    })();
    let actor = actor_of(&auth, &ip);
    queue_for_target(&state, &q.target, CommandType::FetchLogs, request, &actor).await
}

/// `since=`: an RFC 3339 time, or a duration before now (`90m`, `1d`).
pub fn parse_since(value: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    let d = humantime::parse_duration(v).map_err(|_| {
        AppError::BadRequest(format!(
            "since: `{}` is neither an RFC 3339 time nor a duration like 1h",
            v.chars().take(64).collect::<String>()
        ))
    })?;
    let d = chrono::Duration::from_std(d)
        .map_err(|_| AppError::BadRequest("since: duration too long".into()))?;
    Ok(chrono::Utc::now().checked_sub_signed(d))
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
    auth: Caller,
    ip: ClientIp,
    QueryParams(q): QueryParams<DiskQuery>,
) -> Result<Response, AppError> {
    // `serde(flatten)` hands numbers over as strings: parse them here.
    let request = parse_opt_number::<u32>("top_n", q.top_n.as_deref()).map(|top_n| {
        CommandRequest::DiskUsage(DiskUsageRequest {
            path: q.path.clone().filter(|p| !p.is_empty()),
            top_n,
        })
    });
    let actor = actor_of(&auth, &ip);
    queue_for_target(&state, &q.target, CommandType::DiskUsage, request, &actor).await
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
    timeout_ms: Option<String>,
    interval_ms: Option<String>,
    size: Option<String>,
    max_hops: Option<String>,
    probes: Option<String>,
    protocol: Option<String>,
}

/// `POST /admin/trigger_network?hostname=&action=&target=` (also `count`,
/// `port`, `timeout_ms`, `interval_ms`, `size`, `max_hops`, `probes`,
/// `protocol=udp|icmp`).
pub async fn trigger_network(
    State(state): State<AppState>,
    auth: Caller,
    ip: ClientIp,
    QueryParams(q): QueryParams<NetworkQuery>,
) -> Result<Response, AppError> {
    let request = (|| {
        let action = q.action.as_deref().unwrap_or("");
        let action = NetworkAction::parse(action).ok_or_else(|| {
            AppError::BadRequest(format!(
                "action: unknown action `{}` (ping, connect, netstat, traceroute)",
                action.chars().take(64).collect::<String>()
            ))
        })?;
        let mut diag =
            NetworkDiagRequest::new(action, q.diag_target.clone().filter(|t| !t.is_empty()));
        diag.count = parse_opt_number("count", q.count.as_deref())?;
        diag.port = parse_opt_number("port", q.port.as_deref())?;
        diag.timeout_ms = parse_opt_number("timeout_ms", q.timeout_ms.as_deref())?;
        diag.interval_ms = parse_opt_number("interval_ms", q.interval_ms.as_deref())?;
        diag.size = parse_opt_number("size", q.size.as_deref())?;
        diag.max_hops = parse_opt_number("max_hops", q.max_hops.as_deref())?;
        diag.probes = parse_opt_number("probes", q.probes.as_deref())?;
        diag.protocol = match q.protocol.as_deref() {
            None | Some("") => None,
            Some("udp") => Some(TraceProtocol::Udp),
            Some("icmp") => Some(TraceProtocol::Icmp),
            Some(other) => {
                return Err(AppError::BadRequest(format!(
                    "protocol: `{}` is not udp or icmp",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        Ok(CommandRequest::NetworkDiag(diag))
    })();
    let actor = actor_of(&auth, &ip);
    queue_for_target(&state, &q.target, CommandType::NetworkDiag, request, &actor).await
}

/// Parses an optional numeric query parameter; the error names `name`.
pub fn parse_opt_number<T: std::str::FromStr>(
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
    auth: Caller,
    ip: ClientIp,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let actor = actor_of(&auth, &ip);
    let parsed = async {
        let body = read_body_capped(&headers, body, MAX_JSON_BODY_BYTES).await?;
        let body: CommandBody = parse_json(&body)?;
        let request = CommandRequest::from_parts(&body.command_type, &body.payload)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        Ok::<_, AppError>(request)
    }
    .await;
    match parsed {
        Ok(request) => queue_for_agent(&state, &agent_id, request, &actor).await,
        Err(e) => {
            state
                .commands
                .audit_refusal(&actor, Some(&agent_id), "unparsed", &e.to_string())
                .await;
            Err(e)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

/// `GET /api/v1/commands/{id}[?wait=30s]`
pub async fn get_command(
    State(state): State<AppState>,
    _auth: Caller,
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
    _auth: Caller,
    Path(agent_id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Vec<CommandRecord>>, AppError> {
    if state.store.get_agent(&agent_id).await?.is_none() {
        return Err(AppError::NotFound(format!("agent {agent_id} not found")));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.store.list_commands(&agent_id, limit).await?))
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    agent_id: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/audit?agent_id=&actor=&action=&since=&before=&limit=`:
/// newest first; `action` matches exactly or as a dotted prefix
/// (`command`), `before` is an event id for paging back, `limit` ≤ 1000
/// (default 100).
pub async fn list_audit(
    State(state): State<AppState>,
    _auth: Caller,
    QueryParams(q): QueryParams<AuditParams>,
) -> Result<Json<Vec<spectra_store::AuditEvent>>, AppError> {
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let limit = parse_opt_number::<usize>("limit", q.limit.as_deref())?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and 1000, got {limit}"
        )));
    }
    let query = spectra_store::AuditQuery {
        agent_id: non_empty(&q.agent_id),
        actor: non_empty(&q.actor),
        action: non_empty(&q.action),
        before_id: parse_opt_number::<i64>("before", q.before.as_deref())?,
        since: parse_since(q.since.as_deref())?,
        limit,
    };
    Ok(Json(state.commands.audit().list(query).await?))
}
