//! `/admin/audit`: the audit log, newest first, filtered by actor, action
//! (exact or dotted prefix, as the API's `action=`) and agent, and paged
//! backwards with `before=<event id>` ("Older"). The filters are a plain
//! GET form, so every view has a URL.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::Method;
use serde::Deserialize;
use spectra_store::{AuditEvent, AuditQuery, Role};

use crate::http::extract::{Caller, QueryParams};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::state::AppState;
use crate::ui::format;
use crate::ui::{render, Chrome, PageResult};

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::get;
    vec![spec(
        Method::GET,
        "/admin/audit",
        Access::Page(Role::Admin),
        get(audit_page),
    )]
}

/// Events per page unless `limit=` says otherwise (the API's bounds).
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Longest detail shown in the table (the whole of it is in the tooltip).
const DETAIL_SHOWN_CHARS: usize = 240;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    /// An agent id, or a hostname that names one agent.
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub limit: String,
}

pub struct EventRow {
    pub id: i64,
    pub time: String,
    pub time_iso: String,
    pub actor: String,
    pub actor_filter: String,
    pub source_ip: String,
    pub action: String,
    pub action_filter: String,
    pub agent_id: String,
    pub agent_filter: String,
    /// The agent's hostname while it exists.
    pub hostname: Option<String>,
    pub target: String,
    pub outcome: String,
    /// `ok`, `refused`, `failed`...: the outcome's first word, for styling.
    pub outcome_class: &'static str,
    pub detail: String,
    pub detail_full: String,
}

/// The outcome as a status class: `ok` (and `queued`, `requested`,
/// `done`) are fine; refusals and failures are not.
fn outcome_class(outcome: &str) -> &'static str {
    let word = outcome
        .split([':', ' '])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match word.as_str() {
        "ok" | "done" | "queued" | "requested" | "delivered" => "s-ok",
        "refused" | "denied" | "failed" | "expired" | "error" | "invalid" => "s-failed",
        _ => "s-inactive",
    }
}

fn compact(detail: &serde_json::Value) -> (String, String) {
    if detail.is_null() || detail.as_object().is_some_and(|o| o.is_empty()) {
        return (String::new(), String::new());
    }
    let full = detail.to_string();
    let shown = if full.chars().count() > DETAIL_SHOWN_CHARS {
        let mut s: String = full.chars().take(DETAIL_SHOWN_CHARS).collect();
        s.push('…');
        s
    } else {
        full.clone()
    };
    (shown, full)
}

/// A filter link keeps the other filters and starts at the newest event.
fn filter_link(f: &AuditFilter, key: &str, value: &str) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("actor", &f.actor),
        ("action", &f.action),
        ("agent", &f.agent),
    ] {
        let v = if k == key { value } else { v.as_str() };
        if !v.is_empty() {
            parts.push(format!("{k}={}", format::url_encode(v)));
        }
    }
    format!("/admin/audit?{}", parts.join("&"))
}

fn event_row(e: AuditEvent, f: &AuditFilter, hostnames: &HashMap<String, String>) -> EventRow {
    let (detail, detail_full) = compact(&e.detail);
    let agent_id = e.agent_id.unwrap_or_default();
    EventRow {
        id: e.id,
        time: format::time(e.at),
        time_iso: e.at.to_rfc3339(),
        actor_filter: filter_link(f, "actor", &e.actor),
        actor: e.actor,
        source_ip: e.source_ip.unwrap_or_default(),
        action_filter: filter_link(f, "action", &e.action),
        action: e.action,
        agent_filter: if agent_id.is_empty() {
            String::new()
        } else {
            filter_link(f, "agent", &agent_id)
        },
        hostname: hostnames.get(&agent_id).cloned(),
        agent_id,
        target: e.target.unwrap_or_default(),
        outcome_class: outcome_class(&e.outcome),
        outcome: e.outcome,
        detail,
        detail_full,
    }
}

/// The store query for the filters; an agent may be named by hostname.
/// Errors say which filter is wrong.
pub fn audit_query(
    f: &AuditFilter,
    hostnames: &HashMap<String, String>,
) -> Result<AuditQuery, String> {
    let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let before_id = match f.before.trim() {
        "" => None,
        text => Some(
            text.parse::<i64>()
                .map_err(|_| format!("before: `{text}` is not an event id"))?,
        ),
    };
    let limit = match f.limit.trim() {
        "" => DEFAULT_LIMIT,
        text => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(format!("limit: must be between 1 and {MAX_LIMIT}")),
        },
    };
    let agent_id = match non_empty(&f.agent) {
        None => None,
        Some(a) if hostnames.contains_key(&a) => Some(a),
        Some(a) => {
            let ids: Vec<&String> = hostnames
                .iter()
                .filter(|(_, h)| **h == a)
                .map(|(id, _)| id)
                .collect();
            match ids.as_slice() {
                [one] => Some((*one).clone()),
                [] => Some(a), // a deleted agent's id still names its events
                many => {
                    let mut ids: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                    ids.sort_unstable();
                    return Err(format!(
                        "agent: hostname {a} names several agents ({}); give an agent id",
                        ids.join(", ")
                    ));
                }
            }
        }
    };
    Ok(AuditQuery {
        agent_id,
        actor: non_empty(&f.actor),
        action: non_empty(&f.action),
        before_id,
        since: None,
        limit,
    })
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    chrome: Chrome,
    f: AuditFilter,
    error: Option<String>,
    rows: Vec<EventRow>,
    /// The "Older" link, when this page is full.
    older: Option<String>,
    /// Paged back: a link to the newest events with the same filters.
    newest: Option<String>,
    actions: &'static [&'static str],
}

/// Action prefixes offered as suggestions for the action filter.
const ACTION_SUGGESTIONS: &[&str] = &[
    "agent",
    "command",
    "enrollment_token",
    "login",
    "logout",
    "settings",
    "token",
    "user",
];

async fn audit_page(
    State(state): State<AppState>,
    Caller(principal): Caller,
    QueryParams(f): QueryParams<AuditFilter>,
) -> PageResult {
    let result = async {
        let hostnames: HashMap<String, String> = state
            .store
            .list_agents()
            .await?
            .into_iter()
            .map(|a| (a.id, a.hostname))
            .collect();
        let (rows, older, error) = match audit_query(&f, &hostnames) {
            Err(message) => (Vec::new(), None, Some(message)),
            Ok(query) => {
                let limit = query.limit;
                let events = state.commands.audit().list(query).await?;
                let older = match events.last() {
                    Some(last) if events.len() == limit => {
                        let base = filter_link(&f, "", "");
                        let sep = if base.ends_with('?') { "" } else { "&" };
                        let keep_limit = if f.limit.trim().is_empty() {
                            String::new()
                        } else {
                            format!("&limit={}", format::url_encode(f.limit.trim()))
                        };
                        Some(format!("{base}{sep}before={}{keep_limit}", last.id))
                    }
                    _ => None,
                };
                let rows = events
                    .into_iter()
                    .map(|e| event_row(e, &f, &hostnames))
                    .collect();
                (rows, older, None)
            }
        };
        let newest = (!f.before.trim().is_empty()).then(|| filter_link(&f, "", ""));
        render(&AuditPage {
            chrome: Chrome::new(&principal, "audit", "Audit log"),
            f: f.clone(),
            error,
            rows,
            older,
            newest,
            actions: ACTION_SUGGESTIONS,
        })
    }
    .await;
    result.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(agent: &str, before: &str, limit: &str) -> AuditFilter {
        AuditFilter {
            agent: agent.into(),
            before: before.into(),
            limit: limit.into(),
            ..AuditFilter::default()
        }
    }

    #[test]
    fn agents_are_found_by_id_or_unique_hostname() {
        let hosts: HashMap<String, String> = [
            ("agt_1".to_owned(), "web".to_owned()),
            ("agt_2".to_owned(), "db".to_owned()),
            ("agt_3".to_owned(), "db".to_owned()),
        ]
        .into();
        let q = audit_query(&filter("agt_2", "", ""), &hosts).unwrap();
        assert_eq!(q.agent_id.as_deref(), Some("agt_2"));
        let q = audit_query(&filter("web", "", ""), &hosts).unwrap();
        assert_eq!(q.agent_id.as_deref(), Some("agt_1"));
        let q = audit_query(&filter("agt_gone", "", ""), &hosts).unwrap();
        assert_eq!(q.agent_id.as_deref(), Some("agt_gone"));
        let e = audit_query(&filter("db", "", ""), &hosts).unwrap_err();
        assert!(e.contains("agt_2, agt_3"), "{e}");
    }

    #[test]
    fn bad_paging_parameters_name_themselves() {
        let hosts = HashMap::new();
        let q = audit_query(&filter("", "42", ""), &hosts).unwrap();
        assert_eq!((q.before_id, q.limit), (Some(42), DEFAULT_LIMIT));
        assert!(audit_query(&filter("", "x", ""), &hosts)
            .unwrap_err()
            .starts_with("before:"));
        assert!(audit_query(&filter("", "", "0"), &hosts)
            .unwrap_err()
            .starts_with("limit:"));
        assert!(audit_query(&filter("", "", "5000"), &hosts).is_err());
    }

    #[test]
    fn outcomes_are_classed_by_their_first_word() {
        assert_eq!(outcome_class("ok"), "s-ok");
        assert_eq!(outcome_class("ok: role viewer"), "s-ok");
        assert_eq!(outcome_class("refused: wrong current password"), "s-failed");
        assert_eq!(outcome_class("something else"), "s-inactive");
    }

    #[test]
    fn details_are_compact_and_capped() {
        assert_eq!(compact(&serde_json::Value::Null).0, "");
        assert_eq!(compact(&serde_json::json!({})).0, "");
        let (shown, full) = compact(&serde_json::json!({"a": 1}));
        assert_eq!(shown, r#"{"a":1}"#);
        assert_eq!(full, shown);
        let long = serde_json::json!({"x": "y".repeat(1000)});
        let (shown, full) = compact(&long);
        assert_eq!(shown.chars().count(), DETAIL_SHOWN_CHARS + 1);
        assert!(full.len() > 1000);
    }

    #[test]
    fn filter_links_keep_the_other_filters() {
        let f = AuditFilter {
            actor: "user:admin".into(),
            action: "agent".into(),
            before: "10".into(),
            ..AuditFilter::default()
        };
        assert_eq!(
            filter_link(&f, "action", "user.create"),
            "/admin/audit?actor=user%3Aadmin&action=user.create"
        );
        assert_eq!(
            filter_link(&f, "", ""),
            "/admin/audit?actor=user%3Aadmin&action=agent"
        );
    }
}
