//! One application error type. Handlers return `Result<_, AppError>`; the
//! mapping from error to status code and JSON body lives only here.
//!
//! Every body is `{"error": <what to fix>, "code": <machine-readable>}`
//! (plus `fields` for validation): senders and API clients branch on the
//! code, people read the error.

use crate::service::error::{Refusal, StoreError};
use crate::service::ServiceError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// Everything that can go wrong in a request, with the status it answers:
/// what a use case failed with (`Service`, in the domain's words), and the
/// few refusals only HTTP makes (authentication, body size and deadline,
/// the hook path's coded refusals).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PayloadTooLarge(String),
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
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Service(e) => match e {
                ServiceError::BadRequest(_) | ServiceError::Invalid { .. } => {
                    StatusCode::BAD_REQUEST
                }
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::Conflict(_) => StatusCode::CONFLICT,
                ServiceError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                ServiceError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                ServiceError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::Store(StoreError::Unsupported(_)) => StatusCode::NOT_IMPLEMENTED,
                ServiceError::Store(_) | ServiceError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                ServiceError::Refused { kind, .. } => match kind {
                    Refusal::NotFound => StatusCode::NOT_FOUND,
                    Refusal::Conflict => StatusCode::CONFLICT,
                },
            },
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Coded { status, .. } => *status,
            AppError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The machine-readable code every answer carries: the specific one
    /// where the variant has it, else one per kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Service(e) => match e {
                ServiceError::BadRequest(_) => "bad_request",
                ServiceError::Invalid { code, .. } => code.unwrap_or("invalid"),
                ServiceError::NotFound(_) => "not_found",
                ServiceError::Conflict(_) => "conflict",
                ServiceError::TooLarge { code, .. } | ServiceError::Unavailable { code, .. } => {
                    code
                }
                ServiceError::RateLimited { .. } => crate::service::sources::RATE_LIMITED,
                ServiceError::Store(e) if e.is_unavailable() => STORE_UNAVAILABLE,
                ServiceError::Store(StoreError::Unsupported(_)) => "not_supported_by_backend",
                ServiceError::Store(_) | ServiceError::Internal(_) => "internal",
                ServiceError::Refused { code, .. } => code,
            },
            AppError::Unauthorized(_) => "unauthorized",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::Coded { code, .. } => code,
            AppError::TooManyAttempts { .. } => "too_many_attempts",
            AppError::BodyTimeout(_) => "body_timeout",
        }
    }

    /// The JSON body: `{"error", "code"}`, plus `fields` for validation.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        let message = match self {
            AppError::Service(ServiceError::Store(e)) if e.is_unavailable() => {
                "the database is unavailable; retry shortly".to_string()
            }
            AppError::Service(ServiceError::Store(StoreError::Unsupported(what))) => {
                format!("{what} is not available on this storage backend yet (docs/deploy.md)")
            }
            // Internal details go to the log, not to the client.
            AppError::Service(ServiceError::Store(_) | ServiceError::Internal(_)) => {
                "internal error; the server log has details".to_string()
            }
            other => other.to_string(),
        };
        body.insert("error".into(), Value::String(message));
        body.insert("code".into(), Value::String(self.code().into()));
        if let AppError::Service(ServiceError::Invalid { fields, .. }) = self {
            body.insert("fields".into(), json!(fields));
        }
        Value::Object(body)
    }

    /// A failure inside HTTP's own code (a panic caught by the guard).
    pub fn internal(message: impl Into<String>) -> Self {
        AppError::Service(ServiceError::Internal(message.into()))
    }

    /// A request HTTP itself cannot read (a body, a path segment).
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::Service(ServiceError::BadRequest(message.into()))
    }

    /// A path that names nothing (an id that does not parse, no route).
    pub fn not_found(message: impl Into<String>) -> Self {
        AppError::Service(ServiceError::NotFound(message.into()))
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
        if let AppError::TooManyAttempts { retry_after_secs }
        | AppError::Service(ServiceError::RateLimited {
            retry_after_secs, ..
        }) = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if self.code() == STORE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORE_RETRY_AFTER_SECS),
            );
        }
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The code of a request refused because the database cannot be reached.
pub const STORE_UNAVAILABLE: &str = crate::service::ingest::STORE_UNAVAILABLE;
/// What `Retry-After` says then: PostgreSQL's usual restart is seconds.
pub const STORE_RETRY_AFTER_SECS: u64 = 2;

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
            K::InProgress => StatusCode::CONFLICT,
            // The code is the refusal's (`store_unavailable`): `Retry-After`
            // is added by `into_response` for it.
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            K::Internal => return AppError::internal(refusal.message),
        };
        AppError::Coded {
            status,
            code: refusal.code,
            message: refusal.message,
        }
    }
}
