//! `GET /healthz` (no credentials) and `GET /metrics` (Prometheus text:
//! the server's own counters and one `spectra_agent_up` per agent).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use super::error::AppError;
use super::extract::Caller;
use crate::services::agents::{compute_status, AgentStatus};
use crate::state::AppState;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Escapes a Prometheus label value (backslash, quote, newline).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn prometheus(
    State(state): State<AppState>,
    _auth: Caller,
) -> Result<Response, AppError> {
    let c = state.counters.snapshot();
    let mut out = String::new();
    let counters = [
        (
            "spectra_batches_stored_total",
            "Metric batches stored.",
            c.batches_stored,
        ),
        (
            "spectra_envelopes_stored_total",
            "Envelopes stored.",
            c.envelopes_stored,
        ),
        (
            "spectra_batches_duplicate_total",
            "Replayed batches ignored.",
            c.batches_duplicate,
        ),
        (
            "spectra_batches_rejected_total",
            "Batches refused for bad input.",
            c.batches_rejected,
        ),
        (
            "spectra_commands_queued_total",
            "Commands queued.",
            c.commands_queued,
        ),
    ];
    // Writing to a String cannot fail.
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let polling = state.commands.polling_agents();
    let _ = writeln!(out, "# HELP spectra_agents_polling Agents long-polling for commands now.\n# TYPE spectra_agents_polling gauge\nspectra_agents_polling {polling}");
    let _ = writeln!(out, "# HELP spectra_agent_up 1 when the agent was heard from recently.\n# TYPE spectra_agent_up gauge");
    let now = Utc::now();
    let t = state.thresholds();
    for a in state.store.list_agents().await? {
        let up = u8::from(compute_status(&a, now, t) == AgentStatus::Online);
        let _ = writeln!(
            out,
            "spectra_agent_up{{agent_id=\"{}\",hostname=\"{}\"}} {up}",
            escape_label(&a.id),
            escape_label(&a.hostname)
        );
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response())
}
