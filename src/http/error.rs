//! One application error type. Handlers return `Result<_, AppError>`; the
//! mapping from error to status code and JSON body lives only here.
//!
//! Every body is `{"error": <what to fix>, "code": <machine-readable>}`
//! (plus `fields` for validation): senders and API clients branch on the
//! code, people read the error.

use axum::http::{header, HeaderValue, StatusCode};
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
        /// A machine-readable code, when a limit was broken.
        code: Option<&'static str>,
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
    /// A refusal with a code more specific than its status (the hook path:
    /// `too_deep`, `explosion_too_large`, ...).
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Too many failed admin-token attempts (`guard`): 429 with
    /// `Retry-After` and code `too_many_attempts`.
    #[error("too many failed admin-token attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// The body did not arrive within the body timeout: 408, `body_timeout`.
    #[error("{0}")]
    BodyTimeout(String),
    /// The service cannot do this now (e.g. too many concurrent searches);
    /// `code` says why, e.g. `search_busy`.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("storage error: {0}")]
    /// A storage failure a use case passed up (no `From`: HTTP code never
    /// calls the store itself).
    Store(#[source] crate::service::StoreError),
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
            AppError::Coded { status, .. } => *status,
            AppError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code every answer carries: the specific one
    /// where the variant has it, else one per kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Invalid { code, .. } => code.unwrap_or("invalid"),
            AppError::Unauthorized(_) => "unauthorized",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Coded { code, .. } | AppError::Unavailable { code, .. } => code,
            AppError::TooManyAttempts { .. } => "too_many_attempts",
            AppError::BodyTimeout(_) => "body_timeout",
            AppError::Store(_) | AppError::Internal(_) => "internal",
        }
    }

    /// The JSON body: `{"error", "code"}`, plus `fields` for validation.
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
        body.insert("code".into(), Value::String(self.code().into()));
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
            // Debug-escaped: a message can quote sender text, which must not
            // be able to start a log line of its own.
            tracing::error!(error = ?self.to_string(), "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let AppError::TooManyAttempts { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// A use case's failure, answered with the same status and code the API
/// has always given for it.
impl From<crate::service::ServiceError> for AppError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as E;
        match e {
            E::BadRequest(m) => AppError::BadRequest(m),
            E::Invalid {
                message,
                fields,
                code,
            } => AppError::Invalid {
                message,
                fields,
                code,
            },
            E::NotFound(m) => AppError::NotFound(m),
            E::Conflict(m) => AppError::Conflict(m),
            E::TooLarge { code, message } => AppError::Coded {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code,
                message,
            },
            E::Unavailable { code, message } => AppError::Unavailable { code, message },
            E::Store(e) => AppError::Store(e),
            E::Internal(m) => AppError::Internal(m),
        }
    }
}

/// A hook request's refusal: a client error carries its specific code in
/// the body; an internal failure is answered like every other one (500,
/// `internal`, no details).
impl From<crate::domain::decode::Refusal> for AppError {
    fn from(refusal: crate::domain::decode::Refusal) -> Self {
        use crate::domain::decode::RefusalKind as K;
        let status = match refusal.kind {
            K::BadInput => StatusCode::BAD_REQUEST,
            K::Unauthenticated => StatusCode::UNAUTHORIZED,
            K::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            K::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            K::TooSlow => StatusCode::REQUEST_TIMEOUT,
            K::Internal => return AppError::Internal(refusal.message),
        };
        AppError::Coded {
            status,
            code: refusal.code,
            message: refusal.message,
        }
    }
}
