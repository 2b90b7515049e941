//! The agent endpoints (SPEC §3): register, metrics, command long-poll and
//! command results.

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
use spectra_protocol::{CommandResult, RegisterRequest, RegisterResponse, BATCH_ID_HEADER};
use spectra_store::IngestOutcome;

use super::error::AppError;
use super::extract::{parse_json, AgentAuth, QueryParams};
use crate::services::agents::{register_agent, RegisterError};
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

pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = read_body_capped(&headers, body, MAX_JSON_BODY_BYTES).await?;
    let request: RegisterRequest = parse_json(&body)?;
    let registration = register_agent(state.store.as_ref(), &request.token, request.host)
        .await
        .map_err(|e| match e {
            RegisterError::BadToken => AppError::Unauthorized(e.to_string()),
            RegisterError::BadHostname(_) => AppError::BadRequest(e.to_string()),
            RegisterError::Store(s) => s.into(),
        })?;
    let answer = RegisterResponse {
        agent_id: registration.agent.id,
        credential: Some(registration.credential),
        status: None,
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
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
    match state.commands.next_for_agent(&agent.id, wait).await? {
        Some(command) => Ok((StatusCode::OK, Json(command)).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
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
