//! Extractors: the two kinds of callers ([`AdminAuth`], [`AgentAuth`]) and
//! query/JSON extractors whose rejections are [`AppError`]s, so every
//! failure answers with the same `{"error": "..."}` body.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use spectra_store::AgentRecord;

use super::error::AppError;
use crate::services::auth::{parse_bearer, AuthError, Principal};
use crate::state::AppState;

fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        AppError::Unauthorized("missing Authorization: Bearer <token> header".into())
    })?;
    header.to_str().ok().and_then(parse_bearer).ok_or_else(|| {
        AppError::Unauthorized("Authorization header must be `Bearer <token>`".into())
    })
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid => AppError::Unauthorized("invalid credentials".into()),
            AuthError::SessionExpired => AppError::Unauthorized(e.to_string()),
            AuthError::Revoked(_) | AuthError::Pending(_) => AppError::Forbidden(e.to_string()),
            AuthError::Store(s) => s.into(),
        }
    }
}

/// The signed-in user the route's guard let through
/// ([`super::routes`]); only on `Role` routes.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Self)
            .ok_or_else(|| AppError::Unauthorized("not signed in".into()))
    }
}

/// The peer address of the connection, when the server was started with
/// connect info (always, through [`super::serve`]; not in tests that call
/// the router directly).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// An active agent authenticated by its credential.
pub struct AgentAuth(pub AgentRecord);

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let credential = bearer(parts)?;
        Ok(Self(state.auth.check_agent(credential).await?))
    }
}

/// `Query<T>` answering bad parameters with a JSON 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(AppError::BadRequest(rejection.body_text())),
        }
    }
}

/// Parses a JSON body, answering a JSON 400 naming what was wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
