//! `/admin/users`: the users, their roles and last sign-in; create, change
//! a role, reset a password, delete. The last admin can be neither
//! demoted nor deleted (the API's rule, through its shared functions).

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use spectra_store::{AuditQuery, Role};

use super::{done, form_body, fragment, Fragment};
use crate::http::auth as api;
use crate::http::extract::{Caller, ClientIp};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::auth::role_name;
use crate::state::AppState;
use crate::ui::format;
use crate::ui::{render, Chrome, PageResult};

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::{get, post};
    const ADMIN: Access = Access::Page(Role::Admin);
    vec![
        spec(Method::GET, "/admin/users", ADMIN, get(users_page)),
        spec(Method::POST, "/ui/admin/users", ADMIN, post(create_user)),
        spec(
            Method::POST,
            "/ui/admin/users/{id}/role",
            ADMIN,
            post(change_role),
        ),
        spec(
            Method::POST,
            "/ui/admin/users/{id}/password",
            ADMIN,
            post(reset_password),
        ),
        spec(
            Method::POST,
            "/ui/admin/users/{id}/delete",
            ADMIN,
            post(delete_user),
        ),
    ]
}

/// The roles, strongest first, as the forms offer them.
pub const ROLES: &[&str] = &["admin", "operator", "viewer"];

pub struct UserRow {
    pub id: String,
    pub username: String,
    pub role: &'static str,
    pub created: String,
    pub last_login: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "admin_users_table.html")]
pub struct UsersTable {
    pub rows: Vec<UserRow>,
    pub roles: &'static [&'static str],
    pub admins: usize,
    pub oob: bool,
}

/// The user's last successful sign-in, from the audit log.
async fn last_login(state: &AppState, username: &str) -> Result<String, AppError> {
    let events = state
        .commands
        .audit()
        .list(AuditQuery {
            actor: Some(format!("user:{username}")),
            action: Some("login.ok".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await?;
    Ok(events
        .first()
        .map(|e| format::time(e.at))
        .unwrap_or_else(|| "never".into()))
}

async fn users_table(state: &AppState, me: &str, oob: bool) -> Result<UsersTable, AppError> {
    let mut users = state.store.list_users().await?;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let admins = users.iter().filter(|u| u.role == Role::Admin).count();
    let mut rows = Vec::with_capacity(users.len());
    for u in users {
        rows.push(UserRow {
            last_login: last_login(state, &u.username).await?,
            role: role_name(u.role),
            created: format::time(u.created_at),
            is_me: u.id == me,
            id: u.id,
            username: u.username,
        });
    }
    Ok(UsersTable {
        rows,
        roles: ROLES,
        admins,
        oob,
    })
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    table: UsersTable,
    roles: &'static [&'static str],
    min_password: usize,
}

async fn users_page(State(state): State<AppState>, Caller(principal): Caller) -> PageResult {
    let result = async {
        render(&UsersPage {
            chrome: Chrome::new(&principal, "users", "Users"),
            table: users_table(&state, &principal.user_id, false).await?,
            roles: ROLES,
            min_password: api::MIN_PASSWORD_CHARS,
        })
    }
    .await;
    result.into()
}

async fn answer(state: &AppState, me: &str, message: String) -> Result<Response, AppError> {
    done(
        message,
        vec![fragment(&users_table(state, me, true).await?)?],
    )
}

#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub role: String,
}

async fn create_user(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    form: Result<Form<NewUserForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let user = api::create_user_account(
            &state,
            &principal.actor(ip.0),
            form.username.trim().to_owned(),
            form.password,
            &form.role,
        )
        .await?;
        let message = format!(
            "User {} created with the {} role.",
            user.username,
            role_name(user.role)
        );
        answer(&state, &principal.user_id, message).await
    }
    .await;
    result.into()
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    pub role: String,
}

async fn change_role(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let user =
            api::update_user_account(&state, &principal.actor(ip.0), &id, Some(&form.role), None)
                .await?;
        let message = format!(
            "{} now has the {} role.",
            user.username,
            role_name(user.role)
        );
        answer(&state, &principal.user_id, message).await
    }
    .await;
    result.into()
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let user = api::update_user_account(
            &state,
            &principal.actor(ip.0),
            &id,
            None,
            Some(form.password),
        )
        .await?;
        let message = format!(
            "{}'s password is reset; give them the new one by a safe way.",
            user.username
        );
        answer(&state, &principal.user_id, message).await
    }
    .await;
    result.into()
}

async fn delete_user(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        let user = api::delete_user_account(&state, &principal.actor(ip.0), &id).await?;
        let message = format!(
            "User {} is deleted, with their sessions and API tokens.",
            user.username
        );
        answer(&state, &principal.user_id, message).await
    }
    .await;
    result.into()
}
