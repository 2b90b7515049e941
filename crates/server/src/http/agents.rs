//! Read APIs over agents and their data (SPEC §4): the fleet list, one
//! agent with its collectors' statuses, metric history, and the latest
//! envelope of every type.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spectra_protocol::{HostInfo, RawEnvelope};
use spectra_store::{AgentRecord, HistoryQuery, Sample};

use super::error::AppError;
use super::extract::{AdminAuth, QueryParams};
use crate::services::agents::{
    collector_statuses, compute_status, AgentStatus, CollectorStatusView, StatusThresholds,
};
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
    _auth: AdminAuth,
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
    _auth: AdminAuth,
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
    _auth: AdminAuth,
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
    _auth: AdminAuth,
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
