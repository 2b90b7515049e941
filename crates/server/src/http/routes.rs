//! Every route of the API with who may call it, in one table
//! ([`route_table`]). The router is built from this table, so a route
//! cannot exist without a rule, and the role-matrix test reads the same
//! table (`tests/roles.rs`).
//!
//! Rules ([`Access`]):
//! - `Public`: no credentials (health, login, enrollment).
//! - `Agent`: an agent credential; the handler's `AgentAuth` checks it.
//! - `Role(min)`: a user with `min` or a stronger role, by API token
//!   (`Authorization: Bearer`) or by the session cookie. With the cookie, a
//!   state-changing method also needs the session's `X-CSRF-Token` header
//!   (a cross-site form cannot send it). The guard puts the
//!   [`Principal`] in the request for the handler ([`super::extract::Caller`]).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use spectra_store::Role;

use super::error::AppError;
use super::extract::ClientIp;
use super::{agent_api, agents, auth, commands, system};
use crate::services::audit::Entry;
use crate::services::auth::{parse_bearer, role_name, Principal, Via};
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "spectra_session";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Agent,
    Role(Role),
    /// A dashboard page or fragment: the same rule as `Role`, but a caller
    /// who is not signed in is sent to the login page (a 303, or
    /// `HX-Redirect` for htmx requests) and a refusal is an HTML page.
    Page(Role),
}

/// One route: method, path (axum syntax), rule, handler.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
}

pub fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        handler,
    }
}

/// The whole API. Order does not matter; one path may appear with several
/// methods.
pub fn route_table() -> Vec<RouteSpec> {
    use axum::routing::{delete, get, post, put};
    use Access::{Agent, Public};
    const VIEWER: Access = Access::Role(Role::Viewer);
    const OPERATOR: Access = Access::Role(Role::Operator);
    const ADMIN: Access = Access::Role(Role::Admin);
    let p = spectra_protocol::paths::REGISTER;
    vec![
        spec(Method::GET, "/healthz", Public, get(system::healthz)),
        spec(Method::GET, "/metrics", VIEWER, get(system::prometheus)),
        // Agent endpoints (SPEC §3).
        spec(Method::POST, p, Public, post(agent_api::register)),
        spec(
            Method::POST,
            spectra_protocol::paths::METRICS,
            Agent,
            post(agent_api::ingest_metrics),
        ),
        spec(
            Method::GET,
            spectra_protocol::paths::COMMAND,
            Agent,
            get(agent_api::poll_command),
        ),
        spec(
            Method::POST,
            spectra_protocol::paths::COMMAND_RESULT,
            Agent,
            post(agent_api::command_result),
        ),
        // Seed admin endpoints, kept as written (SPEC §4): diagnostics are
        // an operator's job.
        spec(
            Method::POST,
            "/admin/trigger_logs",
            OPERATOR,
            post(commands::trigger_logs),
        ),
        spec(
            Method::POST,
            "/admin/trigger_disk",
            OPERATOR,
            post(commands::trigger_disk),
        ),
        spec(
            Method::POST,
            "/admin/trigger_network",
            OPERATOR,
            post(commands::trigger_network),
        ),
        // Reading the fleet.
        spec(
            Method::GET,
            "/api/v1/agents",
            VIEWER,
            get(agents::list_agents),
        ),
        spec(
            Method::GET,
            "/api/v1/agents/{id}",
            VIEWER,
            get(agents::get_agent),
        ),
        spec(
            Method::GET,
            "/api/v1/agents/{id}/latest",
            VIEWER,
            get(agents::latest),
        ),
        spec(
            Method::GET,
            "/api/v1/agents/{id}/metrics/{type}",
            VIEWER,
            get(agents::history),
        ),
        // Commands.
        spec(
            Method::POST,
            "/api/v1/agents/{id}/commands",
            OPERATOR,
            post(commands::create_command),
        ),
        spec(
            Method::GET,
            "/api/v1/agents/{id}/commands",
            VIEWER,
            get(commands::list_commands),
        ),
        spec(
            Method::GET,
            "/api/v1/commands/{id}",
            VIEWER,
            get(commands::get_command),
        ),
        spec(
            Method::GET,
            "/api/v1/audit",
            ADMIN,
            get(commands::list_audit),
        ),
        // Sign-in (SPEC §4).
        spec(
            Method::POST,
            "/api/v1/auth/login",
            Public,
            post(auth::login),
        ),
        spec(
            Method::POST,
            "/api/v1/auth/logout",
            VIEWER,
            post(auth::logout),
        ),
        spec(Method::GET, "/api/v1/auth/me", VIEWER, get(auth::me)),
        spec(
            Method::POST,
            "/api/v1/auth/password",
            VIEWER,
            post(auth::change_own_password),
        ),
        // Users and their API tokens.
        spec(Method::GET, "/api/v1/users", ADMIN, get(auth::list_users)),
        spec(
            Method::POST,
            "/api/v1/users",
            ADMIN,
            post(auth::create_user),
        ),
        spec(
            Method::PUT,
            "/api/v1/users/{id}",
            ADMIN,
            put(auth::update_user),
        ),
        spec(
            Method::DELETE,
            "/api/v1/users/{id}",
            ADMIN,
            delete(auth::delete_user),
        ),
        spec(
            Method::GET,
            "/api/v1/tokens",
            VIEWER,
            get(auth::list_tokens),
        ),
        spec(
            Method::POST,
            "/api/v1/tokens",
            VIEWER,
            post(auth::create_token),
        ),
        spec(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            VIEWER,
            delete(auth::delete_token),
        ),
        // ---- agent lifecycle and enrollment tokens (issue 5) go below.
        spec(
            Method::GET,
            "/api/v1/enrollment-tokens",
            ADMIN,
            get(agents::list_enrollment_tokens),
        ),
        spec(
            Method::POST,
            "/api/v1/enrollment-tokens",
            ADMIN,
            post(agents::create_enrollment_token),
        ),
        spec(
            Method::DELETE,
            "/api/v1/enrollment-tokens/{id}",
            ADMIN,
            delete(agents::delete_enrollment_token),
        ),
        spec(
            Method::GET,
            "/api/v1/settings/enrollment",
            ADMIN,
            get(agents::get_enrollment_settings),
        ),
        spec(
            Method::PUT,
            "/api/v1/settings/enrollment",
            ADMIN,
            put(agents::put_enrollment_settings),
        ),
        spec(
            Method::POST,
            "/api/v1/agents/{id}/approve",
            ADMIN,
            post(agents::approve_agent),
        ),
        spec(
            Method::POST,
            "/api/v1/agents/{id}/revoke",
            ADMIN,
            post(agents::revoke_agent),
        ),
        spec(
            Method::DELETE,
            "/api/v1/agents/{id}",
            ADMIN,
            delete(agents::delete_agent),
        ),
        spec(
            Method::PUT,
            "/api/v1/agents/{id}/labels",
            ADMIN,
            put(agents::put_agent_labels),
        ),
        spec(
            Method::POST,
            "/api/v1/agents/{id}/rotate",
            ADMIN,
            post(agents::request_agent_rotation),
        ),
        spec(
            Method::PUT,
            spectra_protocol::paths::HOST,
            Agent,
            put(agent_api::update_host),
        ),
        // Last of the agent routes: the role-matrix test walks this table in
        // order with one agent credential, which this call replaces.
        spec(
            Method::POST,
            spectra_protocol::paths::ROTATE,
            Agent,
            post(agent_api::rotate),
        ),
    ]
    .into_iter()
    // The dashboard's pages, fragments and assets (issue 6).
    .chain(crate::ui::route_specs())
    .collect()
}

/// Adds the table's routes, each behind its rule, to a router.
pub fn add_routes(mut router: axum::Router<AppState>, state: &AppState) -> axum::Router<AppState> {
    for route in route_table() {
        let guarded = route.handler.route_layer(middleware::from_fn_with_state(
            (state.clone(), route.access),
            guard,
        ));
        router = router.route(route.path, guarded);
    }
    router
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

async fn guard(
    State((state, access)): State<(AppState, Access)>,
    ip: ClientIp,
    mut request: Request,
    next: Next,
) -> Response {
    let (min, page) = match access {
        Access::Public | Access::Agent => return next.run(request).await,
        Access::Role(min) => (min, false),
        Access::Page(min) => (min, true),
    };
    let headers = request.headers().clone();
    let method = request.method().clone();
    match check(&state, ip, &headers, &method, min).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) if page => crate::ui::page_denial(&headers, request.uri(), e),
        Err(e) => e.into_response(),
    }
}

/// Authenticates the caller, audits API-token use, and applies the role
/// and CSRF rules.
async fn check(
    state: &AppState,
    ip: ClientIp,
    headers: &HeaderMap,
    method: &Method,
    min: Role,
) -> Result<Principal, AppError> {
    let (principal, audit_token_use) = authenticate(state, headers).await?;
    if audit_token_use {
        if let Via::Token { id, name } = &principal.via {
            state
                .commands
                .audit()
                .record(
                    &principal.actor(ip.0),
                    Entry {
                        action: "token.use",
                        agent_id: None,
                        target: Some(id),
                        outcome: "ok".into(),
                        detail: serde_json::json!({ "name": name }),
                    },
                )
                .await;
        }
    }
    if !principal.may(min) {
        return Err(AppError::Forbidden(format!(
            "this needs the {} role; {} has {}",
            role_name(min),
            principal.username,
            role_name(principal.role)
        )));
    }
    if let Via::Session { csrf_token, .. } = &principal.via {
        let safe = matches!(*method, Method::GET | Method::HEAD);
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !safe && !crate::services::auth::constant_time_eq(sent.as_bytes(), csrf_token.as_bytes())
        {
            return Err(AppError::Forbidden(
                "missing or wrong X-CSRF-Token header (GET /api/v1/auth/me gives it)".into(),
            ));
        }
    }
    Ok(principal)
}

/// Bearer API token first, then the session cookie.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Principal, bool), AppError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = value.to_str().ok().and_then(parse_bearer).ok_or_else(|| {
            AppError::Unauthorized("Authorization header must be `Bearer <token>`".into())
        })?;
        return Ok(state.auth.principal_from_token(token).await?);
    }
    if let Some(secret) = session_cookie(headers) {
        let principal = state
            .auth
            .principal_from_session(secret, state.session_policy())
            .await?;
        return Ok((principal, false));
    }
    Err(AppError::Unauthorized(
        "log in, or send `Authorization: Bearer <API token>`".into(),
    ))
}
