//! Extractors whose refusals are the API's JSON errors. axum's own answer
//! a bad query string with `text/plain`, which an API client cannot branch
//! on; these answer 400 `{"error", "code": "invalid_query"}` instead.

use crate::http::error::AppError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// `axum::extract::Query`, refused as a JSON error that names the
/// parameter and what was expected (e.g. `limit=abc`, `limit=-1`).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(AppError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_query",
                message: format!(
                    "{}; see docs/api.md for the parameters this endpoint takes",
                    rejection.body_text()
                ),
            }),
        }
    }
}
