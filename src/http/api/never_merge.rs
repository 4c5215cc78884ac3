//! `/api/identity/never-merge`: the identifier pairs splits keep apart.
//! `GET` lists them; `DELETE .../{id}` removes one (later events may then
//! merge the pair again; removing a rule merges nothing back by itself).

use crate::domain::identity::NeverMergeRule;
use crate::http::error::{AppError, AppResult};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/identity/never-merge", get(list))
        .route("/identity/never-merge/{id}", delete(remove))
}

/// `{"rules": [...]}`, oldest first.
#[derive(Serialize)]
struct RuleList {
    rules: Vec<NeverMergeRule>,
}

async fn list(State(state): State<AppState>) -> AppResult<Json<RuleList>> {
    let rules = state.services.never_merge_rules().await?;
    Ok(Json(RuleList { rules }))
}

/// Answers the removed rule.
async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<NeverMergeRule>> {
    let id = id
        .parse()
        .map_err(|_| AppError::bad_request(format!("`{id}` is not a rule id (a UUID)")))?;
    Ok(Json(state.services.remove_never_merge(id).await?))
}
