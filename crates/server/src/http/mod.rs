//! The HTTP layer: routers, extractors, DTOs. Handlers parse and check the
//! request, call a service or the store trait, and shape the answer; they
//! never see SQL.
//!
//! - [`error`]: [`AppError`], the one error type (JSON `{"error": "..."}`).
//! - [`extract`]: [`extract::AdminAuth`], [`extract::AgentAuth`], query and
//!   JSON extractors with JSON rejections.
//! - [`agent_api`]: the agent endpoints (register, metrics, command, result).
//! - [`agents`]: fleet, agent, history and latest read APIs.
//! - [`commands`]: the seed's `/admin/trigger_*` and the command APIs.
//! - [`system`]: `/healthz` and the Prometheus `/metrics`.

pub mod agent_api;
pub mod agents;
pub mod commands;
pub mod error;
pub mod extract;
pub mod system;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use error::AppError;

use crate::state::AppState;

/// The whole API as a router (tests drive it without a socket).
pub fn app(state: AppState) -> Router {
    // Handlers that read bodies cap them themselves (JSON 413s); this layer
    // only lifts axum's default so it does not answer first with plain text.
    let body_limit = state
        .settings
        .max_body_bytes
        .max(agent_api::MAX_JSON_BODY_BYTES);
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::prometheus))
        // Agent endpoints (SPEC §3).
        .route(spectra_protocol::paths::REGISTER, post(agent_api::register))
        .route(
            spectra_protocol::paths::METRICS,
            post(agent_api::ingest_metrics),
        )
        .route(
            spectra_protocol::paths::COMMAND,
            get(agent_api::poll_command),
        )
        .route(
            spectra_protocol::paths::COMMAND_RESULT,
            post(agent_api::command_result),
        )
        // Seed admin endpoints, kept as written (SPEC §4).
        .route("/admin/trigger_logs", post(commands::trigger_logs))
        .route("/admin/trigger_disk", post(commands::trigger_disk))
        .route("/admin/trigger_network", post(commands::trigger_network))
        // Server API (SPEC §4).
        .route("/api/v1/agents", get(agents::list_agents))
        .route("/api/v1/agents/{id}", get(agents::get_agent))
        .route("/api/v1/agents/{id}/latest", get(agents::latest))
        .route("/api/v1/agents/{id}/metrics/{type}", get(agents::history))
        .route(
            "/api/v1/agents/{id}/commands",
            post(commands::create_command).get(commands::list_commands),
        )
        .route("/api/v1/commands/{id}", get(commands::get_command))
        .route("/api/v1/audit", get(commands::list_audit))
        .fallback(|| async { AppError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown`, then stops accepting and
/// lets in-flight requests finish (long-polls answer 204 at once, as they
/// watch the same token through the state).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
