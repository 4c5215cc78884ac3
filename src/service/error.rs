//! What a use case can fail with, in the domain's words. `http::error`
//! turns each variant into a status and a `{"error", "code"}` body; nothing
//! here knows HTTP.

/// The storage failure a use case passes up, named here so the layers
/// above need not import the store.
pub use crate::store::StoreError;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input cannot be understood (malformed JSON, unknown parameter).
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
    NotFound(String),
    /// The request contradicts the current state (e.g. an empty mapping
    /// for a source that must have one).
    #[error("{0}")]
    Conflict(String),
    /// The input is larger than a limit allows; `code` says which.
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// The service cannot do this now (too many concurrent searches, the
    /// pipeline far behind); `code` says why.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The source's rate limit is reached; retry after that many seconds.
    #[error("{message}")]
    RateLimited {
        retry_after_secs: u64,
        message: String,
    },
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A refusal whose code says more than its kind (`kind_exists`,
    /// `kind_in_use`, `unknown_kind`): clients branch on the code.
    #[error("{message}")]
    Refused {
        kind: Refusal,
        code: &'static str,
        message: String,
    },
}

/// What kind of refusal a [`ServiceError::Refused`] is (its status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing by that name.
    NotFound,
    /// The current state does not allow it.
    Conflict,
}

impl ServiceError {
    /// A coded 404-like refusal.
    pub fn not_found_as(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Refused {
            kind: Refusal::NotFound,
            code,
            message: message.into(),
        }
    }

    /// A coded 409-like refusal.
    pub fn conflict_as(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Refused {
            kind: Refusal::Conflict,
            code,
            message: message.into(),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
