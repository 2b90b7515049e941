//! `/admin/agents`: every agent, those waiting for approval first, with
//! the admin's lifecycle actions (approve, revoke, delete, labels,
//! credential rotation), each through the API's shared function.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use spectra_store::{AgentRecord, AgentState, Role};

use super::{done, form_body, fragment, labels_text, parse_labels_text, retarget, Fragment};
use crate::http::agents as api;
use crate::http::extract::{Caller, ClientIp};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::agents::{compute_status, rotation_requested};
use crate::state::AppState;
use crate::ui::format;
use crate::ui::pages::status_name;
use crate::ui::{render, Chrome, PageResult};

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::{get, post};
    const ADMIN: Access = Access::Page(Role::Admin);
    vec![
        spec(Method::GET, "/admin/agents", ADMIN, get(agents_page)),
        spec(
            Method::POST,
            "/ui/admin/agents/{id}/approve",
            ADMIN,
            post(approve),
        ),
        spec(
            Method::POST,
            "/ui/admin/agents/{id}/revoke",
            ADMIN,
            post(revoke),
        ),
        spec(
            Method::POST,
            "/ui/admin/agents/{id}/rotate",
            ADMIN,
            post(rotate),
        ),
        spec(
            Method::POST,
            "/ui/admin/agents/{id}/delete",
            ADMIN,
            post(delete),
        ),
        spec(
            Method::POST,
            "/ui/admin/agents/{id}/labels",
            ADMIN,
            post(labels),
        ),
    ]
}

/// One agent's row.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub hostname: String,
    /// `online`, `stale`, `offline`, `pending` or `revoked`.
    pub status: &'static str,
    pub revoked: bool,
    pub local: bool,
    pub os_line: String,
    pub labels: Vec<(String, String)>,
    pub labels_text: String,
    pub last_seen_text: String,
    pub last_seen_title: String,
    pub enrolled: String,
    pub rotation_requested: bool,
}

fn os_line(a: &AgentRecord) -> String {
    let h = &a.host;
    let name = [h.platform.as_str(), h.platform_ver.as_str()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() { h.os.clone() } else { name };
    match (name.is_empty(), h.arch.is_empty()) {
        (_, true) => name,
        (true, false) => h.arch.clone(),
        (false, false) => format!("{name} · {}", h.arch),
    }
}

fn row(a: AgentRecord, now: DateTime<Utc>, state: &AppState, rotation: bool) -> AgentRow {
    let status = status_name(compute_status(&a, now, state.thresholds()));
    AgentRow {
        status,
        revoked: a.state == AgentState::Revoked,
        local: a.local,
        os_line: os_line(&a),
        labels_text: labels_text(&a.labels),
        labels: a.labels.into_iter().collect(),
        last_seen_text: format::ago(a.last_seen, now),
        last_seen_title: a.last_seen.map(format::time).unwrap_or_default(),
        enrolled: format::time(a.created_at),
        rotation_requested: rotation,
        id: a.id,
        hostname: a.hostname,
    }
}

/// The two tables: agents waiting for approval, then all the others.
#[derive(Template)]
#[template(path = "admin_agents_tables.html")]
pub struct AgentTables {
    pub pending: Vec<AgentRow>,
    pub others: Vec<AgentRow>,
    /// Rendered as an out-of-band swap (the answer of an action).
    pub oob: bool,
}

async fn build_tables(state: &AppState, oob: bool) -> Result<AgentTables, AppError> {
    let now = Utc::now();
    let mut agents = state.store.list_agents().await?;
    agents.sort_by(|a, b| a.hostname.cmp(&b.hostname).then_with(|| a.id.cmp(&b.id)));
    let mut pending = Vec::new();
    let mut others = Vec::new();
    for a in agents {
        let rotation = rotation_requested(state.store.as_ref(), &a.id).await?;
        let is_pending = a.state == AgentState::Pending;
        let r = row(a, now, state, rotation);
        if is_pending {
            pending.push(r);
        } else {
            others.push(r);
        }
    }
    Ok(AgentTables {
        pending,
        others,
        oob,
    })
}

#[derive(Template)]
#[template(path = "admin_agents.html")]
struct AgentsPage {
    chrome: Chrome,
    tables: AgentTables,
}

async fn agents_page(State(state): State<AppState>, Caller(principal): Caller) -> PageResult {
    let result = async {
        let tables = build_tables(&state, false).await?;
        render(&AgentsPage {
            chrome: Chrome::new(&principal, "agents", "Agents"),
            tables,
        })
    }
    .await;
    result.into()
}

/// An action's answer: the message, and the tables as they are now.
async fn answer(state: &AppState, message: String) -> Result<Response, AppError> {
    let tables = fragment(&build_tables(state, true).await?)?;
    done(message, vec![tables])
}

async fn approve(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        let before = api::approve(&state, &principal.actor(ip.0), &id).await?;
        let message = if before.state == AgentState::Active {
            format!("{} was already active.", before.hostname)
        } else {
            format!(
                "{} is approved: its credential is accepted from now on.",
                before.hostname
            )
        };
        answer(&state, message).await
    }
    .await;
    result.into()
}

async fn revoke(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        let before = api::revoke(&state, &principal.actor(ip.0), &id).await?;
        let message = format!(
            "{} is revoked: its credential is refused from now on; its history stays until you delete it.",
            before.hostname
        );
        answer(&state, message).await
    }
    .await;
    result.into()
}

async fn rotate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        let agent = api::ask_rotation(&state, &principal.actor(ip.0), &id).await?;
        let message = format!(
            "{} will rotate its credential at its next command poll (within about 30 seconds while it is online).",
            agent.hostname
        );
        answer(&state, message).await
    }
    .await;
    result.into()
}

async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        let before = api::remove_agent(&state, &principal.actor(ip.0), &id).await?;
        let message = format!(
            "{} ({}) and all its data are deleted.",
            before.hostname, before.id
        );
        answer(&state, message).await
    }
    .await;
    result.into()
}

#[derive(Debug, Deserialize)]
pub struct LabelsForm {
    #[serde(default)]
    pub labels: String,
}

/// Errors go to the form's own message area (its `hx-target`); success
/// goes to the page's, with the tables swapped out of band.
async fn labels(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
    form: Result<Form<LabelsForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let labels = parse_labels_text(&form.labels).map_err(AppError::BadRequest)?;
        let count = labels.len();
        let before = api::relabel(&state, &principal.actor(ip.0), &id, labels).await?;
        let message = format!(
            "{} now has {count} label{}.",
            before.hostname,
            if count == 1 { "" } else { "s" }
        );
        Ok(retarget(answer(&state, message).await?, "#agents-msg"))
    }
    .await;
    result.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spectra_protocol::HostInfo;

    #[test]
    fn os_line_prefers_platform_and_adds_arch() {
        let mut a = AgentRecord {
            id: "agt_1".into(),
            hostname: "h".into(),
            host: HostInfo::default(),
            labels: Default::default(),
            state: AgentState::Active,
            local: false,
            created_at: Utc::now(),
            last_seen: None,
        };
        assert_eq!(os_line(&a), "");
        a.host.os = "linux".into();
        a.host.arch = "aarch64".into();
        assert_eq!(os_line(&a), "linux · aarch64");
        a.host.platform = "debian".into();
        a.host.platform_ver = "12".into();
        assert_eq!(os_line(&a), "debian 12 · aarch64");
    }
}
