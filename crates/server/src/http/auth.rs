//! Signing in, users and API tokens (SPEC §4):
//! `POST /api/v1/auth/login|logout`, `GET /api/v1/auth/me`,
//! `POST /api/v1/auth/password`, `/api/v1/users[/{id}]`,
//! `/api/v1/tokens[/{id}]`.
//!
//! Rules an administrator expects:
//! - a failed login says only "invalid username or password" (never which
//!   one), costs the same argon2 work either way, and counts against the
//!   client address: after [`crate::state::LOGIN_MAX_FAILURES`] failures in
//!   five minutes that address gets 429 until the window passes, while
//!   other addresses log in normally;
//! - the last admin can be neither demoted nor deleted;
//! - an API token is shown once, at creation, and acts with its owner's
//!   current role; users see and revoke their own tokens, admins anyone's;
//! - sessions survive a password change (they are short-lived and idle out
//!   in 30 minutes); deleting a user ends their sessions and tokens.
//!
//! Every change and every login, failed or not, is in the audit log.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use spectra_store::{Role, Store, UserRecord};

use super::agent_api::{read_body_capped, MAX_JSON_BODY_BYTES};
use super::error::AppError;
use super::extract::{parse_json, Caller, ClientIp, QueryParams};
use super::routes::SESSION_COOKIE;
use crate::services::audit::{Actor, Entry};
use crate::services::auth::{
    generate_id, generate_secret, hash_password, new_api_token_record, parse_role, role_name,
    role_rank, Principal, Via,
};
use crate::state::AppState;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 cost grows with it).
pub const MAX_PASSWORD_BYTES: usize = 1024;

async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, AppError> {
    let bytes = read_body_capped(headers, body, MAX_JSON_BODY_BYTES).await?;
    parse_json(&bytes)
}

async fn audit(
    state: &AppState,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    outcome: String,
) {
    state
        .commands
        .audit()
        .record(
            actor,
            Entry {
                action,
                agent_id: None,
                target,
                outcome,
                detail: serde_json::Value::Null,
            },
        )
        .await;
}

/// A username: 1-64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_username(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AppError::BadRequest(format!(
            "username `{}` must be 1-64 letters, digits, '.', '_', '-' or '@'",
            name.chars().take(64).collect::<String>()
        )))
    }
}

pub fn validate_password(password: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::BadRequest(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::BadRequest(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

fn role_from(text: &str) -> Result<Role, AppError> {
    parse_role(text).ok_or_else(|| {
        AppError::BadRequest(format!(
            "role `{}` is not admin, operator or viewer",
            text.chars().take(32).collect::<String>()
        ))
    })
}

async fn hash_off_thread(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

// ------------------------------------------------------------- sessions

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// `Set-Cookie` for a session: HttpOnly, SameSite=Strict, Secure under TLS.
pub fn session_cookie_header(secret: &str, max_age_secs: i64, secure: bool) -> String {
    let mut cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// A successful sign-in: the `Set-Cookie` value and who signed in.
pub struct SignedIn {
    pub cookie: String,
    pub username: String,
    pub role: Role,
    pub csrf_token: String,
}

/// Checks a username and password (throttled per client address, every
/// outcome audited) and starts a session. Shared by the JSON API and the
/// dashboard's login form.
pub async fn sign_in(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    username: &str,
    password: &str,
) -> Result<SignedIn, AppError> {
    let key = ip
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let anonymous = Actor {
        name: "anonymous".into(),
        source_ip: ip,
    };
    if let Err(wait) = state.login_throttle.check(&key) {
        audit(state, &anonymous, "login.throttled", None, "refused".into()).await;
        return Err(AppError::TooManyRequests(format!(
            "too many failed logins from {key}; try again in {}s",
            wait.as_secs().max(1)
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES || username.len() > 256 {
        return Err(AppError::BadRequest("username or password too long".into()));
    }
    let user = match state.auth.verify_login(username, password).await {
        Ok(user) => user,
        Err(_) => {
            state.login_throttle.record_failure(&key);
            let shown: String = username.chars().take(64).collect();
            audit(
                state,
                &anonymous,
                "login.failed",
                Some(&shown),
                "invalid username or password".into(),
            )
            .await;
            return Err(AppError::Unauthorized(
                "invalid username or password".into(),
            ));
        }
    };
    state.login_throttle.record_success(&key);
    let policy = state.session_policy();
    let (session, secret) = state.auth.start_session(&user, policy).await?;
    let actor = Actor {
        name: format!("user:{}", user.username),
        source_ip: ip,
    };
    audit(state, &actor, "login.ok", Some(&session.id), "ok".into()).await;
    Ok(SignedIn {
        cookie: session_cookie_header(&secret, policy.ttl.as_secs() as i64, state.tls_enabled()),
        username: user.username,
        role: user.role,
        csrf_token: session.csrf_token,
    })
}

/// `POST /api/v1/auth/login` `{"username", "password"}` → sets the session
/// cookie, answers `{"username", "role", "csrf_token"}`.
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body: LoginBody = json_body(&headers, body).await?;
    let signed = sign_in(&state, ip.0, &body.username, &body.password).await?;
    let mut response = Json(json!({
        "username": signed.username,
        "role": role_name(signed.role),
        "csrf_token": signed.csrf_token,
    }))
    .into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&signed.cookie).map_err(AppError::internal)?,
    );
    Ok(response)
}

/// `POST /api/v1/auth/logout`: ends the session (a token caller has none:
/// nothing to end) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
) -> Result<Response, AppError> {
    if let Via::Session { id, .. } = &principal.via {
        state.store.delete_session(id).await?;
        audit(
            &state,
            &principal.actor(ip.0),
            "logout",
            Some(id),
            "ok".into(),
        )
        .await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&session_cookie_header("", 0, state.tls_enabled()))
            .map_err(AppError::internal)?,
    );
    Ok(response)
}

/// `GET /api/v1/auth/me` → `{"username", "role", "csrf_token"?}`.
pub async fn me(Caller(principal): Caller) -> Json<serde_json::Value> {
    let mut body = json!({
        "id": principal.user_id,
        "username": principal.username,
        "role": role_name(principal.role),
    });
    if let Via::Session { csrf_token, .. } = &principal.via {
        body["csrf_token"] = json!(csrf_token);
    }
    Json(body)
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/auth/password` `{"current_password", "new_password"}`:
/// any user changes their own password.
pub async fn change_own_password(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, AppError> {
    let body: PasswordBody = json_body(&headers, body).await?;
    change_password(
        &state,
        &principal,
        ip.0,
        &body.current_password,
        body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user changes their own password, given the current one;
/// audited either way (shared by the API and the dashboard).
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    ip: Option<std::net::IpAddr>,
    current_password: &str,
    new_password: String,
) -> Result<(), AppError> {
    validate_password(&new_password)?;
    if state
        .auth
        .verify_login(&principal.username, current_password)
        .await
        .is_err()
    {
        audit(
            state,
            &principal.actor(ip),
            "user.password",
            Some(&principal.username),
            "refused: wrong current password".into(),
        )
        .await;
        return Err(AppError::Forbidden("the current password is wrong".into()));
    }
    let hash = hash_off_thread(new_password).await?;
    state
        .store
        .update_user(&principal.user_id, None, Some(hash))
        .await?;
    audit(
        state,
        &principal.actor(ip),
        "user.password",
        Some(&principal.username),
        "ok".into(),
    )
    .await;
    Ok(())
}

// ------------------------------------------------------------- users

#[derive(Serialize)]
pub struct UserView {
    id: String,
    username: String,
    role: &'static str,
    created_at: DateTime<Utc>,
}

fn view(user: &UserRecord) -> UserView {
    UserView {
        id: user.id.clone(),
        username: user.username.clone(),
        role: role_name(user.role),
        created_at: user.created_at,
    }
}

/// `GET /api/v1/users`
pub async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<UserView>>, AppError> {
    Ok(Json(
        state.store.list_users().await?.iter().map(view).collect(),
    ))
}

#[derive(Deserialize)]
struct NewUserBody {
    username: String,
    password: String,
    role: String,
}

/// `POST /api/v1/users` `{"username", "password", "role"}` → 201.
pub async fn create_user(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body: NewUserBody = json_body(&headers, body).await?;
    let user = create_user_account(
        &state,
        &principal.actor(ip.0),
        body.username,
        body.password,
        &body.role,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&user))).into_response())
}

/// Checks and creates a user, audited (shared by the API and the dashboard).
pub async fn create_user_account(
    state: &AppState,
    actor: &Actor,
    username: String,
    password: String,
    role: &str,
) -> Result<UserRecord, AppError> {
    validate_username(&username)?;
    validate_password(&password)?;
    let role = role_from(role)?;
    if state.store.user_by_name(&username).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "user {username} already exists"
        )));
    }
    let user = UserRecord {
        id: generate_id("usr"),
        username,
        password_hash: hash_off_thread(password).await?,
        role,
        created_at: Utc::now(),
    };
    state.store.create_user(user.clone()).await?;
    audit(
        state,
        actor,
        "user.create",
        Some(&user.username),
        format!("ok: role {}", role_name(role)),
    )
    .await;
    Ok(user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    role: Option<String>,
    password: Option<String>,
}

async fn admin_count(store: &dyn Store) -> Result<usize, AppError> {
    Ok(store
        .list_users()
        .await?
        .iter()
        .filter(|u| u.role == Role::Admin)
        .count())
}

/// `PUT /api/v1/users/{id}` `{"role"?, "password"?}`: change a role, reset
/// a password. The last admin keeps the admin role.
pub async fn update_user(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UserView>, AppError> {
    let body: UpdateUserBody = json_body(&headers, body).await?;
    let updated = update_user_account(
        &state,
        &principal.actor(ip.0),
        &id,
        body.role.as_deref(),
        body.password,
    )
    .await?;
    Ok(Json(view(&updated)))
}

/// Changes a user's role and/or resets their password, audited. The last
/// admin keeps the admin role (shared by the API and the dashboard).
pub async fn update_user_account(
    state: &AppState,
    actor: &Actor,
    id: &str,
    role: Option<&str>,
    password: Option<String>,
) -> Result<UserRecord, AppError> {
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {id} not found")))?;
    let role = role.map(role_from).transpose()?;
    if let Some(p) = &password {
        validate_password(p)?;
    }
    if role.is_none() && password.is_none() {
        return Err(AppError::BadRequest(
            "nothing to change: give role and/or password".into(),
        ));
    }
    if let Some(new_role) = role {
        if user.role == Role::Admin
            && role_rank(new_role) < role_rank(Role::Admin)
            && admin_count(state.store.as_ref()).await? <= 1
        {
            return Err(AppError::Conflict(format!(
                "{} is the last admin; make another user admin first",
                user.username
            )));
        }
    }
    let hash = match password {
        Some(p) => Some(hash_off_thread(p).await?),
        None => None,
    };
    let reset = hash.is_some();
    state.store.update_user(id, role, hash).await?;
    if let Some(r) = role {
        audit(
            state,
            actor,
            "user.role",
            Some(&user.username),
            format!("ok: {} -> {}", role_name(user.role), role_name(r)),
        )
        .await;
    }
    if reset {
        audit(
            state,
            actor,
            "user.password_reset",
            Some(&user.username),
            "ok".into(),
        )
        .await;
    }
    state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {id} not found")))
}

/// `DELETE /api/v1/users/{id}`: never the last admin.
pub async fn delete_user(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    delete_user_account(&state, &principal.actor(ip.0), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user (never the last admin), audited; returns who it was
/// (shared by the API and the dashboard).
pub async fn delete_user_account(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<UserRecord, AppError> {
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {id} not found")))?;
    if user.role == Role::Admin && admin_count(state.store.as_ref()).await? <= 1 {
        return Err(AppError::Conflict(format!(
            "{} is the last admin and cannot be deleted",
            user.username
        )));
    }
    state.store.delete_user(id).await?;
    audit(
        state,
        actor,
        "user.delete",
        Some(&user.username),
        "ok".into(),
    )
    .await;
    Ok(user)
}

// ------------------------------------------------------------- API tokens

#[derive(Deserialize)]
pub struct TokenListQuery {
    all: Option<String>,
}

/// `GET /api/v1/tokens[?all=true]`: the caller's tokens (an admin may ask
/// for everyone's). Never the secrets.
pub async fn list_tokens(
    State(state): State<AppState>,
    Caller(principal): Caller,
    QueryParams(q): QueryParams<TokenListQuery>,
) -> Result<Json<Vec<spectra_store::ApiTokenRecord>>, AppError> {
    let all = matches!(q.all.as_deref(), Some("true" | "1"));
    if all && !principal.may(Role::Admin) {
        return Err(AppError::Forbidden(
            "only an admin lists everyone's tokens".into(),
        ));
    }
    let owner = (!all).then_some(principal.user_id.as_str());
    Ok(Json(state.store.list_api_tokens(owner).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
}

/// `POST /api/v1/tokens` `{"name"}` → 201 `{"id", "name", "token"}`: the
/// token is shown this once.
pub async fn create_token(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body: NewTokenBody = json_body(&headers, body).await?;
    let (record, token) = create_api_token(&state, &principal, ip.0, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": record.id, "name": record.name, "token": token })),
    )
        .into_response())
}

/// Creates an API token for the signed-in user, audited; returns the
/// record and the token to show once (shared by the API and the dashboard).
pub async fn create_api_token(
    state: &AppState,
    principal: &Principal,
    ip: Option<std::net::IpAddr>,
    name: &str,
) -> Result<(spectra_store::ApiTokenRecord, String), AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "name must be 1-100 printable characters".into(),
        ));
    }
    let token = generate_secret();
    let record = new_api_token_record(&principal.user_id, name, &token);
    state.store.create_api_token(record.clone()).await?;
    audit(
        state,
        &principal.actor(ip),
        "token.create",
        Some(&record.id),
        format!("ok: {name}"),
    )
    .await;
    Ok((record, token))
}

/// Revokes an API token: one's own, or anyone's for an admin; audited
/// (shared by the API and the dashboard).
pub async fn revoke_api_token(
    state: &AppState,
    principal: &Principal,
    ip: Option<std::net::IpAddr>,
    id: &str,
) -> Result<spectra_store::ApiTokenRecord, AppError> {
    let token = state
        .store
        .list_api_tokens(None)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .filter(|t| t.user_id == principal.user_id || principal.may(Role::Admin))
        // Someone else's token is "not found" to a non-admin: no probing.
        .ok_or_else(|| AppError::NotFound(format!("token {id} not found")))?;
    state.store.delete_api_token(&token.id).await?;
    audit(
        state,
        &principal.actor(ip),
        "token.revoke",
        Some(&token.id),
        format!("ok: {}", token.name),
    )
    .await;
    Ok(token)
}

/// `DELETE /api/v1/tokens/{id}`: one's own, or anyone's for an admin.
pub async fn delete_token(
    State(state): State<AppState>,
    ip: ClientIp,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    revoke_api_token(&state, &principal, ip.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
