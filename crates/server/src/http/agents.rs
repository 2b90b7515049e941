//! Read APIs over agents and their data (SPEC §4): the fleet list, one
//! agent with its collectors' statuses, metric history, and the latest
//! envelope of every type; and the admin's lifecycle actions (issue 5):
//! enrollment tokens, approval mode, approve, revoke, delete, labels and
//! forced credential rotation.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use spectra_protocol::{HostInfo, RawEnvelope};
use spectra_store::{AgentRecord, AgentState, EnrollmentTokenRecord, HistoryQuery, Sample};

use super::error::AppError;
use super::extract::{Caller, ClientIp, QueryParams};
use crate::services::agents::{
    collector_statuses, compute_status, delete_agent as lifecycle_delete_agent,
    enrollment_token_usable, new_enrollment_token, request_rotation, require_approval,
    set_agent_labels, set_agent_state, set_require_approval, validate_labels, AgentStatus,
    CollectorStatusView, LifecycleError, NewEnrollmentToken, StatusThresholds,
};
use crate::services::audit::{Actor, Entry};
use crate::state::AppState;

/// One agent as the API shows it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub id: String,
    pub hostname: String,
    pub os: String,
    pub platform: String,
    pub status: AgentStatus,
    pub last_seen: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    pub local: bool,
    pub host: HostInfo,
}

impl AgentView {
    fn from_record(a: AgentRecord, now: DateTime<Utc>, t: StatusThresholds) -> Self {
        let status = compute_status(&a, now, t);
        Self {
            id: a.id,
            hostname: a.hostname,
            os: a.host.os.clone(),
            platform: a.host.platform.clone(),
            status,
            last_seen: a.last_seen,
            labels: a.labels,
            local: a.local,
            host: a.host,
        }
    }
}

/// `GET /api/v1/agents`
pub async fn list_agents(
    State(state): State<AppState>,
    _auth: Caller,
) -> Result<Json<Vec<AgentView>>, AppError> {
    let now = Utc::now();
    let t = state.thresholds();
    let mut agents: Vec<AgentView> = state
        .store
        .list_agents()
        .await?
        .into_iter()
        .map(|a| AgentView::from_record(a, now, t))
        .collect();
    agents.sort_by(|a, b| a.hostname.cmp(&b.hostname).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(agents))
}

#[derive(Debug, Serialize)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: AgentView,
    pub collectors: Vec<CollectorStatusView>,
}

async fn get_agent_record(state: &AppState, id: &str) -> Result<AgentRecord, AppError> {
    state
        .store
        .get_agent(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("agent {id} not found")))
}

/// `GET /api/v1/agents/{id}`
pub async fn get_agent(
    State(state): State<AppState>,
    _auth: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentDetail>, AppError> {
    let record = get_agent_record(&state, &id).await?;
    let latest = state.store.latest(&id).await?;
    Ok(Json(AgentDetail {
        agent: AgentView::from_record(record, Utc::now(), state.thresholds()),
        collectors: collector_statuses(&latest),
    }))
}

#[derive(Debug, Serialize)]
pub struct LatestAnswer {
    pub agent_id: String,
    pub envelopes: Vec<RawEnvelope>,
}

/// `GET /api/v1/agents/{id}/latest`: `{"agent_id", "envelopes": [...]}`.
pub async fn latest(
    State(state): State<AppState>,
    _auth: Caller,
    Path(id): Path<String>,
) -> Result<Json<LatestAnswer>, AppError> {
    get_agent_record(&state, &id).await?;
    let mut envelopes = state.store.latest(&id).await?;
    envelopes.sort_by(|a, b| {
        a.metric_type
            .cmp(&b.metric_type)
            .then_with(|| a.timestamp.cmp(&b.timestamp))
    });
    Ok(Json(LatestAnswer {
        agent_id: id,
        envelopes,
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    pub range: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub step: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryAnswer {
    #[serde(rename = "type")]
    pub metric_type: String,
    pub samples: Vec<Sample>,
}

/// The ranges the dashboard offers; any other humantime duration up to
/// [`MAX_RANGE`] is accepted too.
pub const NAMED_RANGES: &[&str] = &["15m", "1h", "6h", "24h", "7d", "30d"];
/// Longest history window (the 1-hour tier's default retention).
pub const MAX_RANGE: Duration = Duration::from_secs(730 * 86_400);
const DEFAULT_RANGE: Duration = Duration::from_secs(3600);

/// The `[start, end]` window and `step` of a history request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub step: Option<Duration>,
}

/// Checks a history request's parameters; the error names the parameter.
pub fn parse_history_params(
    p: &HistoryParams,
    now: DateTime<Utc>,
) -> Result<HistoryWindow, String> {
    let parse_time = |name: &str, v: &str| -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                format!("{name}: `{v}` is not an RFC 3339 time such as 2026-11-25T10:00:00Z: {e}")
            })
    };
    let nonempty = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let (start, end) = match (nonempty(&p.range), nonempty(&p.start), nonempty(&p.end)) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("range: give either range= or start=/end=, not both".into())
        }
        (Some(r), None, None) => {
            let d = humantime::parse_duration(&r).map_err(|_| {
                format!(
                    "range: `{r}` is not a duration (e.g. {})",
                    NAMED_RANGES.join(", ")
                )
            })?;
            if d.is_zero() || d > MAX_RANGE {
                return Err(format!(
                    "range: must be between 1s and {}",
                    humantime::format_duration(MAX_RANGE)
                ));
            }
            (now - to_chrono(d), now)
        }
        (None, Some(s), e) => {
            let start = parse_time("start", &s)?;
            let end = match e {
                Some(e) => parse_time("end", &e)?,
                None => now,
            };
            (start, end)
        }
        (None, None, Some(_)) => return Err("start: end= needs start= too".into()),
        (None, None, None) => (now - to_chrono(DEFAULT_RANGE), now),
    };
    if start > end {
        return Err("start: must not be after end".into());
    }
    let step = match nonempty(&p.step) {
        None => None,
        Some(s) => {
            let d = humantime::parse_duration(&s)
                .map_err(|_| format!("step: `{s}` is not a duration like 60s"))?;
            if d < Duration::from_secs(1) {
                return Err("step: must be at least 1s".into());
            }
            Some(d)
        }
    };
    Ok(HistoryWindow { start, end, step })
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `GET /api/v1/agents/{id}/metrics/{type}?range=|start=&end=[&step=]`
pub async fn history(
    State(state): State<AppState>,
    _auth: Caller,
    Path((id, metric_type)): Path<(String, String)>,
    QueryParams(p): QueryParams<HistoryParams>,
) -> Result<Json<HistoryAnswer>, AppError> {
    let HistoryWindow { start, end, step } =
        parse_history_params(&p, Utc::now()).map_err(AppError::BadRequest)?;
    if metric_type.is_empty() || metric_type.chars().count() > crate::services::ingest::MAX_TYPE_LEN
    {
        return Err(AppError::BadRequest("type: must be 1-64 characters".into()));
    }
    get_agent_record(&state, &id).await?;
    let samples = state
        .store
        .history(HistoryQuery {
            agent_id: id,
            metric_type: metric_type.clone(),
            start,
            end,
            step,
        })
        .await?;
    Ok(Json(HistoryAnswer {
        metric_type,
        samples,
    }))
}

// ---------------------------------------------------------------- lifecycle (issue 5)

async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<T, AppError> {
    let bytes =
        super::agent_api::read_body_capped(headers, body, super::agent_api::MAX_JSON_BODY_BYTES)
            .await?;
    super::extract::parse_json(&bytes)
}

async fn audit(
    state: &AppState,
    actor: &Actor,
    action: &str,
    agent_id: Option<&str>,
    target: Option<&str>,
    detail: serde_json::Value,
) {
    state
        .commands
        .audit()
        .record(
            actor,
            Entry {
                action,
                agent_id,
                target,
                outcome: "ok".into(),
                detail,
            },
        )
        .await;
}

impl From<LifecycleError> for AppError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::NotFound(_) => AppError::NotFound(e.to_string()),
            LifecycleError::LocalAgent(_) => AppError::Conflict(e.to_string()),
            LifecycleError::Store(s) => s.into(),
        }
    }
}

/// An enrollment token as listed (never its secret).
#[derive(Debug, Serialize)]
pub struct EnrollmentTokenView {
    pub id: String,
    /// Remaining uses; `null`: unlimited.
    pub uses_left: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `false` once used up or expired (kept until revoked, for the record).
    pub usable: bool,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// Every enrollment token as listed, oldest first (shared by the API and
/// the dashboard).
pub async fn enrollment_token_views(
    state: &AppState,
) -> Result<Vec<EnrollmentTokenView>, AppError> {
    let now = Utc::now();
    let mut tokens: Vec<EnrollmentTokenView> = state
        .store
        .list_enrollment_tokens()
        .await?
        .into_iter()
        .map(|t| EnrollmentTokenView {
            usable: enrollment_token_usable(&t, now),
            id: t.id,
            uses_left: t.uses_left,
            expires_at: t.expires_at,
            labels: t.labels,
            created_at: t.created_at,
        })
        .collect();
    tokens.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(tokens)
}

/// `GET /api/v1/enrollment-tokens`, oldest first.
pub async fn list_enrollment_tokens(
    State(state): State<AppState>,
) -> Result<Json<Vec<EnrollmentTokenView>>, AppError> {
    Ok(Json(enrollment_token_views(&state).await?))
}

/// `POST /api/v1/enrollment-tokens` `{"uses", "expires_in", "labels"}` →
/// `201 {"id", "token", "uses_left", "expires_at", "labels"}`; the token is
/// shown only here.
pub async fn create_enrollment_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    let request: NewEnrollmentToken = json_body(&headers, body).await?;
    let (record, token) = create_enrollment(&state, &principal.actor(ip.0), request).await?;
    let answer = json!({
        "id": record.id,
        "token": token,
        "uses_left": record.uses_left,
        "expires_at": record.expires_at,
        "labels": record.labels,
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Checks and stores a new enrollment token, audited; returns the record
/// and the plaintext token to show once (shared by the API and the
/// dashboard).
pub async fn create_enrollment(
    state: &AppState,
    actor: &Actor,
    request: NewEnrollmentToken,
) -> Result<(EnrollmentTokenRecord, String), AppError> {
    let (record, token) =
        new_enrollment_token(request, Utc::now()).map_err(AppError::BadRequest)?;
    state.store.create_enrollment_token(record.clone()).await?;
    audit(
        state,
        actor,
        "enrollment_token.create",
        None,
        Some(&record.id),
        json!({ "uses": record.uses_left, "expires_at": record.expires_at, "labels": record.labels }),
    )
    .await;
    Ok((record, token))
}

/// Revokes an enrollment token, audited (shared by the API and the dashboard).
pub async fn revoke_enrollment(state: &AppState, actor: &Actor, id: &str) -> Result<(), AppError> {
    state.store.delete_enrollment_token(id).await?;
    audit(
        state,
        actor,
        "enrollment_token.revoke",
        None,
        Some(id),
        json!({}),
    )
    .await;
    Ok(())
}

/// `DELETE /api/v1/enrollment-tokens/{id}`: revokes the token (agents it
/// enrolled keep working).
pub async fn delete_enrollment_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    revoke_enrollment(&state, &principal.actor(ip.0), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct EnrollmentSettings {
    pub require_approval: bool,
}

fn settings_shape() -> AppError {
    AppError::BadRequest("expected {\"require_approval\": true|false}".into())
}

/// `GET /api/v1/settings/enrollment` → `{"require_approval"}`.
pub async fn get_enrollment_settings(
    State(state): State<AppState>,
) -> Result<Json<EnrollmentSettings>, AppError> {
    let on = require_approval(state.store.as_ref(), state.settings.require_approval).await?;
    Ok(Json(EnrollmentSettings {
        require_approval: on,
    }))
}

/// `PUT /api/v1/settings/enrollment` `{"require_approval": bool}`: kept in
/// the store, so it outlives restarts and wins over `SPECTRA_REQUIRE_APPROVAL`.
pub async fn put_enrollment_settings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<EnrollmentSettings>, AppError> {
    // Parsed by hand so a wrong type names the field (serde's message does not).
    let value: serde_json::Value = json_body(&headers, body).await?;
    let wanted = match value.as_object() {
        Some(o) if o.len() == 1 => match o.get("require_approval") {
            Some(serde_json::Value::Bool(on)) => EnrollmentSettings {
                require_approval: *on,
            },
            Some(other) => {
                return Err(AppError::BadRequest(format!(
                    "require_approval: expected true or false, got {other}"
                )))
            }
            None => return Err(settings_shape()),
        },
        _ => return Err(settings_shape()),
    };
    set_approval_mode(&state, &principal.actor(ip.0), wanted.require_approval).await?;
    Ok(Json(wanted))
}

/// Keeps the approval mode, audited (shared by the API and the dashboard).
pub async fn set_approval_mode(state: &AppState, actor: &Actor, on: bool) -> Result<(), AppError> {
    set_require_approval(state.store.as_ref(), on).await?;
    audit(
        state,
        actor,
        "settings.require_approval",
        None,
        None,
        json!({ "require_approval": on }),
    )
    .await;
    Ok(())
}

/// Sets an agent's state, clears the credential cache (so it applies at
/// once) and audits `agent.<action>`; returns the agent as it was.
async fn change_agent_state(
    state: &AppState,
    actor: &Actor,
    id: &str,
    new_state: AgentState,
    action: &str,
) -> Result<AgentRecord, AppError> {
    let before = set_agent_state(state.store.as_ref(), id, new_state).await?;
    state.auth.clear_cache();
    audit(
        state,
        actor,
        action,
        Some(id),
        Some(&before.hostname),
        json!({ "was": before.state }),
    )
    .await;
    Ok(before)
}

/// Approves a pending (or revoked) agent, audited; returns it as it was
/// (shared by the API and the dashboard).
pub async fn approve(state: &AppState, actor: &Actor, id: &str) -> Result<AgentRecord, AppError> {
    change_agent_state(state, actor, id, AgentState::Active, "agent.approve").await
}

/// Revokes an agent (never the local one), audited; returns it as it was.
pub async fn revoke(state: &AppState, actor: &Actor, id: &str) -> Result<AgentRecord, AppError> {
    change_agent_state(state, actor, id, AgentState::Revoked, "agent.revoke").await
}

/// Deletes an agent and its data (never the local one), audited; returns
/// it as it was.
pub async fn remove_agent(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<AgentRecord, AppError> {
    let before = lifecycle_delete_agent(state.store.as_ref(), id).await?;
    state.auth.clear_cache();
    state.trails.forget(id);
    audit(
        state,
        actor,
        "agent.delete",
        Some(id),
        Some(&before.hostname),
        json!({ "labels": before.labels }),
    )
    .await;
    Ok(before)
}

/// Checks and replaces an agent's labels, audited; returns it as it was.
pub async fn relabel(
    state: &AppState,
    actor: &Actor,
    id: &str,
    labels: BTreeMap<String, String>,
) -> Result<AgentRecord, AppError> {
    validate_labels(&labels).map_err(AppError::BadRequest)?;
    let before = set_agent_labels(state.store.as_ref(), id, labels.clone()).await?;
    audit(
        state,
        actor,
        "agent.labels",
        Some(id),
        Some(&before.hostname),
        json!({ "before": before.labels, "after": labels }),
    )
    .await;
    Ok(before)
}

/// Flags the agent to rotate its credential on its next poll, audited.
pub async fn ask_rotation(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<AgentRecord, AppError> {
    let agent = request_rotation(state.store.as_ref(), id).await?;
    state
        .commands
        .audit()
        .record(
            actor,
            Entry {
                action: "agent.rotate",
                agent_id: Some(id),
                target: Some(&agent.hostname),
                outcome: "requested".into(),
                detail: json!({}),
            },
        )
        .await;
    Ok(agent)
}

/// The answer of the lifecycle actions: the agent as it is now.
async fn agent_now(state: &AppState, id: &str) -> Result<Json<AgentView>, AppError> {
    let record = get_agent_record(state, id).await?;
    Ok(Json(AgentView::from_record(
        record,
        Utc::now(),
        state.thresholds(),
    )))
}

/// `POST /api/v1/agents/{id}/approve`: a pending (or revoked) agent becomes
/// active; its credential works from this answer on.
pub async fn approve_agent(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, AppError> {
    approve(&state, &principal.actor(ip.0), &id).await?;
    agent_now(&state, &id).await
}

/// `POST /api/v1/agents/{id}/revoke`: the agent's credential is refused
/// (403) from this answer on; its history stays until it is deleted.
pub async fn revoke_agent(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, AppError> {
    revoke(&state, &principal.actor(ip.0), &id).await?;
    agent_now(&state, &id).await
}

/// `DELETE /api/v1/agents/{id}`: the agent and all its data are gone.
pub async fn delete_agent(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    remove_agent(&state, &principal.actor(ip.0), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsBody {
    pub labels: BTreeMap<String, String>,
}

/// `PUT /api/v1/agents/{id}/labels` `{"labels": {...}}`: replaces them.
pub async fn put_agent_labels(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<AgentView>, AppError> {
    let LabelsBody { labels } = json_body(&headers, body).await?;
    relabel(&state, &principal.actor(ip.0), &id, labels).await?;
    agent_now(&state, &id).await
}

/// `POST /api/v1/agents/{id}/rotate` → `202 {"agent_id", "status":
/// "rotation requested"}`: the agent's next command poll tells it to
/// rotate its credential (`POST /api/v1/agent/rotate`).
pub async fn request_agent_rotation(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    ask_rotation(&state, &principal.actor(ip.0), &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "agent_id": id, "status": "rotation requested" })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        range: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        step: Option<&str>,
    ) -> HistoryParams {
        HistoryParams {
            range: range.map(Into::into),
            start: start.map(Into::into),
            end: end.map(Into::into),
            step: step.map(Into::into),
        }
    }

    #[test]
    fn named_ranges_end_now() {
        let now = Utc::now();
        for r in NAMED_RANGES {
            let w = parse_history_params(&params(Some(r), None, None, None), now).unwrap();
            assert_eq!(w.end, now);
            assert!(w.start < w.end, "{r}");
            assert_eq!(w.step, None);
        }
        let w = parse_history_params(&params(Some("15m"), None, None, Some("60s")), now).unwrap();
        assert_eq!(now - w.start, chrono::Duration::minutes(15));
        assert_eq!(w.step, Some(Duration::from_secs(60)));
    }

    #[test]
    fn errors_name_the_parameter() {
        let now = Utc::now();
        let cases = [
            (params(Some("forever"), None, None, None), "range"),
            (params(None, Some("yesterday"), None, None), "start"),
            (
                params(
                    None,
                    Some("2026-01-02T00:00:00Z"),
                    Some("2026-01-01T00:00:00Z"),
                    None,
                ),
                "start",
            ),
            (params(None, None, None, Some("0s")), "step"),
            (params(None, None, None, Some("often")), "step"),
            (
                params(Some("1h"), Some("2026-01-01T00:00:00Z"), None, None),
                "range",
            ),
        ];
        for (p, name) in cases {
            let e = parse_history_params(&p, now).unwrap_err();
            assert!(e.starts_with(name), "{p:?}: {e}");
        }
    }
}
