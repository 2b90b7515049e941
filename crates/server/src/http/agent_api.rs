//! The agent endpoints (SPEC §3): register, metrics, command long-poll and
//! command results; and (issue 5) credential rotation and host updates.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde_json::json;
use spectra_protocol::{
    CommandResult, HostInfo, RegisterRequest, RegisterResponse, RotateResponse, BATCH_ID_HEADER,
    ROTATE_HEADER,
};
use spectra_store::{AgentState, IngestOutcome};

use super::error::AppError;
use super::extract::{parse_json, AgentAuth, ClientIp, QueryParams};
use crate::services::agents::{
    register_agent, require_approval, rotate_credential, rotation_requested, validate_hostname,
    RegisterError,
};
use crate::services::audit::{Actor, Entry};
use crate::services::ingest::BodyEncoding;
use crate::state::AppState;

/// Largest registration / command-result body (results hold diagnostics
/// output, capped by the agent well below this).
pub const MAX_JSON_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Reads a request body, failing with 413 as soon as it passes `limit`
/// (a declared `Content-Length` over it is refused before reading).
pub async fn read_body_capped(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, AppError> {
    let too_large = || AppError::PayloadTooLarge(format!("body exceeds {limit} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(AppError::BadRequest(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// `POST /api/v1/agent/register` (SPEC §3). A wrong, used-up or expired
/// token counts as a failure of the client's address; past
/// [`crate::state::ENROLL_MAX_FAILURES`] in the window the address gets
/// 429 with the wait, whatever token it sends. Under approval mode the
/// answer is `202 {"agent_id", "status": "pending", "credential"}`.
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let key =
        ip.0.map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
    let anonymous = Actor {
        name: "anonymous".into(),
        source_ip: ip.0,
    };
    if let Err(wait) = state.enroll_throttle.check(&key) {
        return Err(AppError::TooManyRequests(format!(
            "too many failed enrollments from {key}; try again in {}s",
            wait.as_secs().max(1)
        )));
    }
    let body = read_body_capped(&headers, body, MAX_JSON_BODY_BYTES).await?;
    let request: RegisterRequest = parse_json(&body)?;
    let hostname: String = request.host.hostname.chars().take(64).collect();
    let require_approval =
        require_approval(state.store.as_ref(), state.settings.require_approval).await?;
    let registration = match register_agent(
        state.store.as_ref(),
        &request.token,
        request.host,
        require_approval,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, RegisterError::BadToken) {
                state.enroll_throttle.record_failure(&key);
                state
                    .commands
                    .audit()
                    .record(
                        &anonymous,
                        Entry {
                            action: "enroll.failed",
                            agent_id: None,
                            target: Some(&hostname),
                            outcome: format!("refused: {e}"),
                            detail: json!({ "hostname": hostname }),
                        },
                    )
                    .await;
            }
            return Err(match e {
                RegisterError::BadToken => AppError::Unauthorized(e.to_string()),
                RegisterError::BadHostname(_) => AppError::BadRequest(e.to_string()),
                RegisterError::Store(s) => s.into(),
            });
        }
    };
    state.enroll_throttle.record_success(&key);
    let agent = registration.agent;
    let pending = agent.state == AgentState::Pending;
    let actor = Actor {
        name: format!("agent:{}", agent.id),
        source_ip: ip.0,
    };
    state
        .commands
        .audit()
        .record(
            &actor,
            Entry {
                action: if pending {
                    "enroll.pending"
                } else {
                    "enroll.ok"
                },
                agent_id: Some(&agent.id),
                target: Some(&agent.hostname),
                outcome: if pending {
                    "pending approval".into()
                } else {
                    "ok".into()
                },
                detail: json!({ "hostname": agent.hostname, "labels": agent.labels }),
            },
        )
        .await;
    let (status, answer) = if pending {
        (
            StatusCode::ACCEPTED,
            RegisterResponse {
                agent_id: agent.id,
                credential: Some(registration.credential),
                status: Some("pending".into()),
            },
        )
    } else {
        (
            StatusCode::OK,
            RegisterResponse {
                agent_id: agent.id,
                credential: Some(registration.credential),
                status: None,
            },
        )
    };
    Ok((status, Json(answer)).into_response())
}

/// `POST /api/v1/agent/rotate` → `{"credential"}`: the calling agent's new
/// credential. The old one is refused from this answer on (the cache is
/// cleared); the agent saves the new one before using it.
pub async fn rotate(
    State(state): State<AppState>,
    ip: ClientIp,
    AgentAuth(agent): AgentAuth,
) -> Result<Response, AppError> {
    let credential = rotate_credential(state.store.as_ref(), &agent.id).await?;
    state.auth.clear_cache();
    touch(&state, &agent.id).await;
    let actor = Actor {
        name: format!("agent:{}", agent.id),
        source_ip: ip.0,
    };
    state
        .commands
        .audit()
        .record(
            &actor,
            Entry {
                action: "agent.rotate",
                agent_id: Some(&agent.id),
                target: Some(&agent.hostname),
                outcome: "ok".into(),
                detail: json!({}),
            },
        )
        .await;
    Ok((StatusCode::OK, Json(RotateResponse { credential })).into_response())
}

/// `PUT /api/v1/agent/host` with a host-info body: keeps the agent's OS,
/// kernel, IPs and agent version current (agents send it at every start).
pub async fn update_host(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = read_body_capped(&headers, body, MAX_JSON_BODY_BYTES).await?;
    let host: HostInfo = parse_json(&body)?;
    validate_hostname(&host.hostname).map_err(|e| AppError::BadRequest(e.to_string()))?;
    state.store.update_agent_host(&agent.id, host).await?;
    // The cached record holds the old host info.
    state.auth.clear_cache();
    touch(&state, &agent.id).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn ingest_metrics(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    QueryParams(query): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let batch_id = match headers.get(BATCH_ID_HEADER) {
        Some(v) => v
            .to_str()
            .map_err(|_| {
                AppError::BadRequest("batch id may only hold letters, digits, '-' and '_'".into())
            })?
            .to_owned(),
        None => query.get("batch_id").cloned().unwrap_or_default(),
    };
    crate::services::ingest::validate_batch_id(&batch_id)?;
    let encoding =
        BodyEncoding::parse_header(headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()))?;
    let limits = state.ingest.limits();
    let body = read_body_capped(&headers, body, limits.max_body_bytes)
        .await
        .inspect_err(|_| state.counters.record_rejected())?;
    let outcome = state
        .ingest
        .ingest_batch(&agent.id, &batch_id, encoding, body)
        .await?;
    let answer = match outcome {
        IngestOutcome::Stored { envelopes } => json!({ "stored": envelopes }),
        IngestOutcome::Duplicate => json!({ "duplicate": true }),
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
}

#[derive(serde::Deserialize)]
pub struct PollQuery {
    /// How long to hold the request (humantime; capped by `long_poll_max`).
    wait: Option<String>,
}

pub async fn poll_command(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    QueryParams(q): QueryParams<PollQuery>,
) -> Result<Response, AppError> {
    let max = state.commands.timings().long_poll_max;
    let wait = match q.wait.as_deref() {
        Some(w) => parse_wait("wait", w)?.min(max),
        None => max,
    };
    touch(&state, &agent.id).await;
    // An admin's rotation request rides on the poll's answer, at once
    // (no wait); one made during a poll shows on the next.
    let rotate = rotation_requested(state.store.as_ref(), &agent.id)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(agent_id = %agent.id, error = %e, "reading the rotation flag failed");
            false
        });
    let wait = if rotate { Duration::ZERO } else { wait };
    let mut response = match state.commands.next_for_agent(&agent.id, wait).await? {
        Some(command) => (StatusCode::OK, Json(command)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    if rotate {
        response
            .headers_mut()
            .insert(ROTATE_HEADER, axum::http::HeaderValue::from_static("1"));
    }
    Ok(response)
}

pub async fn command_result(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = read_body_capped(&headers, body, MAX_JSON_BODY_BYTES).await?;
    let result: CommandResult = parse_json(&body)?;
    touch(&state, &agent.id).await;
    let record = state.commands.complete(&agent.id, result).await?;
    Ok((
        StatusCode::OK,
        Json(json!({ "id": record.id, "status": record.status })),
    )
        .into_response())
}

async fn touch(state: &AppState, agent_id: &str) {
    if let Err(e) = state.store.touch_agent(agent_id, chrono::Utc::now()).await {
        tracing::warn!(agent_id, error = %e, "recording agent activity failed");
    }
}

/// Parses a `wait=` duration (`5s`, `30s`, `1m`; a bare number is seconds).
pub fn parse_wait(name: &str, value: &str) -> Result<Duration, AppError> {
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(value).map_err(|e| {
        AppError::BadRequest(format!("{name}: `{value}` is not a duration like 30s: {e}"))
    })
}
