//! `/api/errors`: the error log, newest first.

use super::{page_limit, query_param};
use crate::domain::model::Stage;
use crate::http::error::AppResult;
use crate::http::extract::Query;
use crate::http::AppState;
use crate::service::errors::{ErrorFilter, ErrorPage};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/errors", get(list))
}

#[derive(Deserialize)]
struct ListQuery {
    source_id: Option<String>,
    stage: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<ErrorPage>> {
    let source_id = query_param(
        q.source_id,
        |s| s.parse().ok(),
        |s| format!("source_id `{s}` is not a source id"),
    )?;
    let stage = query_param(q.stage, Stage::parse, |s| {
        format!(
            "stage `{s}` is not one of auth, limit, decode, records, store, sniff, map, identity"
        )
    })?;
    let before = query_param(
        q.before,
        |s| s.parse().ok(),
        |s| format!("before `{s}` is not an error id"),
    )?;
    let filter = ErrorFilter {
        source_id,
        stage,
        limit: page_limit(q.limit, 50, 500),
        before,
    };
    Ok(Json(state.services.errors(filter).await?))
}
