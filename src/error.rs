//! One application error type. Handlers return `Result<_, AppError>`; the
//! mapping from error to status code and JSON body lives only here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Everything that can go wrong in a request, with the status it answers.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    /// A validation failure with one message per offending field.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: BTreeMap<String, String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The service cannot do this now; `code` says why (machine-readable).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("storage error: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) | AppError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: always `{"error": ...}`, plus `fields` for validation.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        let message = match self {
            // Internal details go to the log, not to the client.
            AppError::Store(_) | AppError::Internal(_) => {
                "internal error; the server log has details".to_string()
            }
            other => other.to_string(),
        };
        body.insert("error".into(), Value::String(message));
        if let AppError::Invalid { fields, .. } = self {
            body.insert("fields".into(), json!(fields));
        }
        if let AppError::Unavailable { code, .. } = self {
            body.insert("code".into(), json!(code));
        }
        Value::Object(body)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(self.body())).into_response()
    }
}

pub type AppResult<T> = Result<T, AppError>;
