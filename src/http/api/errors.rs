//! `/api/errors`: the error log, newest first; `/api/errors/groups`: the
//! same entries grouped by source and code, with counts.

use super::{page_limit, query_param};
use crate::domain::model::Stage;
use crate::http::error::{AppError, AppResult};
use crate::http::extract::Query;
use crate::http::AppState;
use crate::service::errors::{level_named, ErrorFilter, ErrorGroups, ErrorPage};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/errors", get(list))
        .route("/errors/groups", get(groups))
}

#[derive(Deserialize)]
struct ListQuery {
    source_id: Option<String>,
    stage: Option<String>,
    level: Option<String>,
    code: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

/// A query parameter that does not parse is the documented `invalid_query`.
fn invalid_query(e: AppError) -> AppError {
    AppError::Coded {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_query",
        message: e.to_string(),
    }
}

/// The filter the query names; `limit` defaults to one page of 50.
fn filter_of(q: ListQuery) -> AppResult<ErrorFilter> {
    let source_id = query_param(
        q.source_id,
        |s| s.parse().ok(),
        |s| format!("source_id `{s}` is not a source id"),
    )
    .map_err(invalid_query)?;
    let stage = query_param(q.stage, Stage::parse, |s| {
        format!(
            "stage `{s}` is not one of auth, limit, decode, records, store, sniff, map, identity"
        )
    })
    .map_err(invalid_query)?;
    let level = query_param(q.level, level_named, |s| {
        format!("level `{s}` is not one of error, warning")
    })
    .map_err(invalid_query)?;
    let before = query_param(
        q.before,
        |s| s.parse().ok(),
        |s| format!("before `{s}` is not an error id"),
    )
    .map_err(invalid_query)?;
    Ok(ErrorFilter {
        source_id,
        stage,
        level,
        code: q.code.filter(|c| !c.is_empty()),
        limit: page_limit(q.limit, 50, 500),
        before,
    })
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<ErrorPage>> {
    Ok(Json(state.services.errors(filter_of(q)?).await?))
}

/// The newest entries grouped by source and code (bounded: see
/// `service::errors::GROUP_READ_CAP`); the same filters as the list.
async fn groups(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<ErrorGroups>> {
    Ok(Json(state.services.error_groups(filter_of(q)?).await?))
}
