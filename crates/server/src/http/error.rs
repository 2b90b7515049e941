//! [`AppError`]: the one error type of the HTTP layer. Each variant maps to
//! a status code and a `{"error": "..."}` body; internal errors are logged
//! with their cause and answered with a generic message, never echoed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use spectra_protocol::ErrorBody;
use spectra_store::StoreError;

use crate::services::commands::CommandServiceError;
use crate::services::ingest::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("the server is shutting down")]
    Unavailable,
    #[error("{0}")]
    Overloaded(String),
    /// Logged with its cause; the client sees only "internal server error".
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Invalid(why) => Self::BadRequest(why),
            StoreError::Conflict(why) => Self::Conflict(why),
            StoreError::Closed => Self::Unavailable,
            StoreError::Backend(_) => Self::internal(e),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::UnsupportedEncoding(_) => Self::UnsupportedMediaType(e.to_string()),
            IngestError::BodyTooLarge { .. } | IngestError::DecompressedTooLarge { .. } => {
                Self::PayloadTooLarge(e.to_string())
            }
            IngestError::Store(s) => s.into(),
            IngestError::Internal(_) => Self::internal(e),
            IngestError::BadBatchId(_)
            | IngestError::Decompress { .. }
            | IngestError::Json(_)
            | IngestError::BadEnvelope { .. } => Self::BadRequest(e.to_string()),
        }
    }
}

impl From<CommandServiceError> for AppError {
    fn from(e: CommandServiceError) -> Self {
        match e {
            CommandServiceError::Invalid(_) => Self::BadRequest(e.to_string()),
            CommandServiceError::UnknownAgent(_) => Self::NotFound(e.to_string()),
            CommandServiceError::AgentNotActive(_) => Self::Conflict(e.to_string()),
            CommandServiceError::Throttled(_) => Self::TooManyRequests(e.to_string()),
            CommandServiceError::Store(s) => s.into(),
        }
    }
}
