//! The HTTP layer: routers, extractors, DTOs. Handlers parse and check the
//! request, call a service or the store trait, and shape the answer; they
//! never see SQL.
//!
//! - [`error`]: [`AppError`], the one error type (JSON `{"error": "..."}`).
//! - [`extract`]: [`extract::Caller`], [`extract::AgentAuth`], query and
//!   JSON extractors with JSON rejections.
//! - [`agent_api`]: the agent endpoints (register, metrics, command, result).
//! - [`agents`]: fleet, agent, history and latest read APIs.
//! - [`commands`]: the seed's `/admin/trigger_*` and the command APIs.
//! - [`system`]: `/healthz` and the Prometheus `/metrics`.

pub mod agent_api;
pub mod agents;
pub mod auth;
pub mod commands;
pub mod error;
pub mod extract;
pub mod routes;
pub mod system;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
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
    routes::add_routes(Router::new(), &state)
        .fallback(|| async { AppError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        // No request outlives this: the longest legitimate one is a
        // 60 s `?wait=` on a command (long-polls are capped at 30 s).
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS)),
            limit_concurrency,
        ))
        .layer(security_header("x-content-type-options", "nosniff"))
        .layer(security_header("x-frame-options", "DENY"))
        .layer(security_header("referrer-policy", "no-referrer"))
        .layer(security_header(
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'",
        ))
        .with_state(state)
}

/// Requests in flight at once (long-polls included: SPEC §7 plans for
/// 10,000 agents polling); past it the server answers 503 at once rather
/// than queueing without bound.
pub const MAX_CONCURRENT_REQUESTS: usize = 20_000;

async fn limit_concurrency(
    axum::extract::State(permits): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            use axum::response::IntoResponse;
            let mut response = AppError::Overloaded(format!(
                "the server is handling {MAX_CONCURRENT_REQUESTS} requests; retry shortly"
            ))
            .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            response
        }
    }
}

/// The longest any request may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Sets a response header unless the handler set it.
fn security_header(
    name: &'static str,
    value: &'static str,
) -> tower_http::set_header::SetResponseHeaderLayer<axum::http::HeaderValue> {
    tower_http::set_header::SetResponseHeaderLayer::if_not_present(
        axum::http::HeaderName::from_static(name),
        axum::http::HeaderValue::from_static(value),
    )
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
