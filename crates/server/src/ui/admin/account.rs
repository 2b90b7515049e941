//! `/account/tokens`, for every signed-in user: their API tokens (create,
//! shown once; revoke), an admin also sees everyone's (as
//! `GET /api/v1/tokens?all=true` gives them), and a form to change one's
//! own password (the rules of `POST /api/v1/auth/password`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use spectra_store::{ApiTokenRecord, Role};

use super::{done, form_body, fragment, Fragment};
use crate::http::auth as api;
use crate::http::extract::{Caller, ClientIp};
use crate::http::routes::{spec, Access, RouteSpec};
use crate::http::AppError;
use crate::services::auth::Principal;
use crate::state::AppState;
use crate::ui::format;
use crate::ui::{render, Chrome, PageResult};

pub fn routes() -> Vec<RouteSpec> {
    use axum::routing::{get, post};
    const VIEWER: Access = Access::Page(Role::Viewer);
    vec![
        spec(Method::GET, "/account/tokens", VIEWER, get(tokens_page)),
        spec(
            Method::POST,
            "/ui/account/tokens",
            VIEWER,
            post(create_token),
        ),
        spec(
            Method::POST,
            "/ui/account/tokens/{id}/delete",
            VIEWER,
            post(delete_token),
        ),
        spec(
            Method::POST,
            "/ui/account/password",
            VIEWER,
            post(change_password),
        ),
    ]
}

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub created: String,
    pub last_used: String,
}

/// The signed-in user's tokens and, for an admin, everyone's.
#[derive(Template)]
#[template(path = "account_token_tables.html")]
pub struct TokenTables {
    pub mine: Vec<TokenRow>,
    /// `None` for non-admins.
    pub all: Option<Vec<TokenRow>>,
    pub oob: bool,
}

fn rows(tokens: Vec<ApiTokenRecord>, owners: &HashMap<String, String>) -> Vec<TokenRow> {
    let now = chrono::Utc::now();
    let mut tokens = tokens;
    tokens.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    tokens
        .into_iter()
        .map(|t| TokenRow {
            owner: owners
                .get(&t.user_id)
                .cloned()
                .unwrap_or_else(|| t.user_id.clone()),
            created: format::time(t.created_at),
            last_used: match t.last_used {
                Some(at) => format!("{} ({})", format::time(at), format::ago(Some(at), now)),
                None => "never".into(),
            },
            id: t.id,
            name: t.name,
        })
        .collect()
}

async fn token_tables(
    state: &AppState,
    principal: &Principal,
    oob: bool,
) -> Result<TokenTables, AppError> {
    let owners: HashMap<String, String> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let mine = rows(
        state
            .store
            .list_api_tokens(Some(&principal.user_id))
            .await?,
        &owners,
    );
    let all = if principal.may(Role::Admin) {
        Some(rows(state.store.list_api_tokens(None).await?, &owners))
    } else {
        None
    };
    Ok(TokenTables { mine, all, oob })
}

#[derive(Template)]
#[template(path = "account_tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tables: TokenTables,
    min_password: usize,
}

async fn tokens_page(State(state): State<AppState>, Caller(principal): Caller) -> PageResult {
    let result = async {
        render(&TokensPage {
            chrome: Chrome::new(&principal, "tokens", "API tokens"),
            tables: token_tables(&state, &principal, false).await?,
            min_password: api::MIN_PASSWORD_CHARS,
        })
    }
    .await;
    result.into()
}

#[derive(Debug, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    pub name: String,
}

/// A new API token, shown once.
#[derive(Template)]
#[template(path = "account_token_new.html")]
struct NewToken {
    id: String,
    name: String,
    token: String,
    server_url: String,
    oob: Vec<String>,
}

async fn create_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    headers: HeaderMap,
    form: Result<Form<NewTokenForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        let (record, token) = api::create_api_token(&state, &principal, ip.0, &form.name).await?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        render(&NewToken {
            id: record.id,
            name: record.name,
            token,
            server_url: super::enrollment::server_url_from(
                header("host"),
                header("x-forwarded-proto"),
                state.tls_enabled(),
                &state.settings.listen.to_string(),
            ),
            oob: vec![fragment(&token_tables(&state, &principal, true).await?)?],
        })
    }
    .await;
    result.into()
}

async fn delete_token(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    Path(id): Path<String>,
) -> Fragment {
    let result = async {
        let token = api::revoke_api_token(&state, &principal, ip.0, &id).await?;
        answer(
            &state,
            &principal,
            format!(
                "API token “{}” is revoked: it is refused from now on.",
                token.name
            ),
        )
        .await
    }
    .await;
    result.into()
}

async fn answer(
    state: &AppState,
    principal: &Principal,
    message: String,
) -> Result<Response, AppError> {
    done(
        message,
        vec![fragment(&token_tables(state, principal, true).await?)?],
    )
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current_password: String,
    #[serde(default)]
    pub new_password: String,
    #[serde(default)]
    pub confirm_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ip: ClientIp,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Fragment {
    let result = async {
        let form = form_body(form)?;
        if form.new_password != form.confirm_password {
            return Err(AppError::BadRequest(
                "the new password and its confirmation differ".into(),
            ));
        }
        api::change_password(
            &state,
            &principal,
            ip.0,
            &form.current_password,
            form.new_password,
        )
        .await?;
        done(
            "Your password is changed. Your current sessions stay signed in.",
            Vec::new(),
        )
    }
    .await;
    result.into()
}
