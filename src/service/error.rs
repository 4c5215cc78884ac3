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
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
    /// As `Conflict`, with a code saying which (a split refused:
    /// `merge_already_split`, `profile_too_large_to_split`, ...).
    #[error("{message}")]
    ConflictCoded { code: &'static str, message: String },
}

pub type ServiceResult<T> = Result<T, ServiceError>;
